"""ChargeX Minimum Required Error Codes (MREC) and how OCPP reports reach them.

Source: ChargeX Consortium (INL/ANL/NREL), "Recommendations for Minimum Required
Error Codes", Rev. 5, 12 Sept. 2023 (https://inl.gov/chargex/mrec,
ChargeX_MREC_Rev5_09.12.23.pdf): 26 codes, CX001-CX026, each with a name and a
description. The report pairs CX001-CX007 with the OCPP 1.6 ChargePointErrorCode
of the same name; the other codes have none, and a charger sends them in
``vendorErrorCode`` (1.6 StatusNotification, with ``errorCode`` OtherError or the
nearest code and ``vendorId`` ``https://chargex.inl.gov`` as EVerest does) or in
``techCode`` (2.0.1 NotifyEvent). The names below were cross-checked against two
independent transcriptions: EVerest's error definitions (everest-core
``errors/evse_board_support.yaml``, ``MREC<n><Name>``) and the kwwhat project's
``seeds/chargex_mrec_codes.csv``; where they differ (CX011) the report's wording
as kwwhat gives it is kept and EVerest's spelling is noted.

Only exact pairs are taken. An OCPP 1.6 code that merely resembles an MREC
(PowerSwitchFailure and CX017, ...) is ``unmapped``: a guessed code would be
counted in a regulator's failure table as if the charger had said it.
"""

from __future__ import annotations

__all__ = [
    "CHARGEX_VENDOR_ID",
    "MREC",
    "MREC_CODES",
    "MREC_OF_ERROR_CODE",
    "UNMAPPED",
    "Mrec",
    "mrec_of",
    "mrec_of_report",
    "mrec_of_vendor_code",
]

import re
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Mrec:
    code: str  # CX001 ...
    name: str
    description: str


#: The ChargeX table, in its order (descriptions shortened where long).
MREC: tuple[Mrec, ...] = (
    Mrec(
        "CX001", "ConnectorLockFailure", "Failure to lock or unlock connector on the vehicle side"
    ),
    Mrec("CX002", "GroundFailure", "Ground fault circuit interrupter has been activated"),
    Mrec("CX003", "HighTemperature", "High temperature inside the EVSE is derating power delivery"),
    Mrec("CX004", "OverCurrentFailure", "Over current protection device has tripped"),
    Mrec(
        "CX005", "OverVoltage", "Input voltage to the vehicle has risen above an acceptable level"
    ),
    Mrec(
        "CX006",
        "UnderVoltage",
        "Input voltage to the vehicle has dropped below an acceptable level",
    ),
    Mrec("CX007", "WeakSignal", "Wireless communication device reported a weak signal"),
    Mrec("CX008", "EmergencyStop", "Emergency stop is pressed by the user (required if equipped)"),
    Mrec(
        "CX009",
        "AuthorizationTimeout",
        "The user plugs in but does not authorize a session before the connection times out",
    ),
    Mrec("CX010", "InvalidVehicleMode", "The vehicle is in an invalid mode for charging"),
    # EVerest spells it CableCheckFault (MREC11CableCheckFault).
    Mrec("CX011", "CableCheckFailure", "Failure during the cable check phase, incl. isolation"),
    Mrec("CX012", "PreChargeFailure", "The EVSE did not reach the correct pre-charge voltage"),
    Mrec("CX013", "NoInternet", "The EVSE has no internet connectivity"),
    Mrec("CX014", "PilotFault", "The control pilot voltage is out of range"),
    Mrec("CX015", "PowerLoss", "The EVSE is unable to supply any power due to mains failure"),
    Mrec("CX016", "EVContactorFault", "Contactors fail to open or close on the vehicle side"),
    Mrec("CX017", "EVSEContactorFault", "Contactors fail to open or close on the EVSE side"),
    Mrec("CX018", "CableOverTempDerate", "Cable or connector too hot: power reduced"),
    Mrec("CX019", "CableOverTempStop", "Cable or connector too hot: charging session stopped"),
    Mrec(
        "CX020",
        "PartialInsertion",
        "Cable latch raised: connector not fully inserted in the vehicle",
    ),
    Mrec(
        "CX021", "CapacitanceFault", "Isolation monitor tripped on high capacitance while charging"
    ),
    Mrec("CX022", "ResistanceFault", "Isolation monitor tripped on low resistance to chassis"),
    Mrec("CX023", "ProximityFault", "The proximity voltage is out of range"),
    Mrec(
        "CX024",
        "ConnectorVoltageHigh",
        "EVSE output voltage high before charging starts or after it ends",
    ),
    Mrec("CX025", "BrokenLatch", "The latch on the connector is broken"),
    Mrec("CX026", "CutCable", "The output cable has been severed from the EVSE"),
)
MREC_CODES: dict[str, Mrec] = {m.code: m for m in MREC}

#: OCPP 1.6 ChargePointErrorCode -> MREC: the pairs the ChargeX table itself makes.
MREC_OF_ERROR_CODE: dict[str, str] = {m.name: m.code for m in MREC[:7]}
#: The ``vendorId`` under which chargers (EVerest) send an MREC in ``vendorErrorCode``.
CHARGEX_VENDOR_ID = "https://chargex.inl.gov"
UNMAPPED = "unmapped"

_CX = re.compile(r"CX0\d\d", re.IGNORECASE)
_BY_NAME = {m.name.lower(): m.code for m in MREC} | {"cablecheckfault": "CX011"}


def mrec_of(error_code: str) -> str:
    """The MREC code of an OCPP 1.6 ChargePointErrorCode; ``unmapped`` when none is paired."""
    return MREC_OF_ERROR_CODE.get(error_code, UNMAPPED)


def mrec_of_vendor_code(code: str) -> str:
    """The MREC a vendor code states, else "".

    Accepts the code itself (``CX014``), a list of them as EVgo's convention sends
    concurrent errors (``CX014,CX023``: the first one counts), and EVerest's error
    type names (``evse_board_support/MREC14PilotFault``, ``MREC14PilotFault``).
    """
    for raw in code.split(","):
        part = raw.strip()
        if _CX.fullmatch(part) and part.upper() in MREC_CODES:
            return part.upper()
        tail = part.rsplit("/", 1)[-1]
        name = re.sub(r"^MREC\d+", "", tail, flags=re.IGNORECASE).lower()
        if tail.upper().startswith("MREC") and name in _BY_NAME:
            return _BY_NAME[name]
    return ""


def mrec_of_report(error_code: str, vendor_error_code: str = "", tech_code: str = "") -> str:
    """The MREC of one error report: a code the charger states (1.6 ``vendorErrorCode``,
    2.0.1 ``techCode``) wins over the pairing of its ChargePointErrorCode (2.0.1
    problems arrive as the 1.6 code the decoder maps them onto)."""
    return (
        mrec_of_vendor_code(vendor_error_code)
        or mrec_of_vendor_code(tech_code)
        or mrec_of(error_code)
    )
