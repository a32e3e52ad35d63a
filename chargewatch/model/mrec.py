"""ChargeX Minimum Required Error Codes (MREC) for OCPP 1.6 ChargePointErrorCodes.

Source: ChargeX Consortium (INL/ANL/NREL), "Recommendations for Minimum Required
Error Codes" (https://inl.gov/chargex/mrec, Dec. 2023). Its table pairs an OCPP
error code with an MREC fault code for the first six; those are the only pairs
taken here. The report lists 26 codes in all (payment, communication, power
module, …); the others could not be checked against the source when this was
written and are reported as ``unmapped`` rather than guessed. OCPP 2.0.1
NotifyEvent/StatusNotification problems reach the rules as the 1.6 code the
decoder maps them onto (model/events.py), so they share these codes.
"""

from __future__ import annotations

__all__ = ["MREC_OF_ERROR_CODE", "UNMAPPED", "mrec_of"]

MREC_OF_ERROR_CODE: dict[str, str] = {
    "ConnectorLockFailure": "CX001",  # lock/unlock failed on the vehicle side
    "GroundFailure": "CX002",  # ground fault circuit interrupter activated
    "HighTemperature": "CX003",  # high temperature inside the EVSE derating power
    "OverCurrentFailure": "CX004",  # over-current protection tripped
    "OverVoltage": "CX005",  # input voltage to the vehicle too high
    "UnderVoltage": "CX006",  # input voltage to the vehicle too low
}
UNMAPPED = "unmapped"


def mrec_of(error_code: str) -> str:
    """The MREC code of an OCPP 1.6 ChargePointErrorCode; ``unmapped`` when none is known."""
    return MREC_OF_ERROR_CODE.get(error_code, UNMAPPED)
