"""Discrete (low-rate) telemetry events, shared by the native and OCPP decoders.

Meter samples travel as columnar :class:`~chargewatch.model.batch.MeterBatch`
rows; everything else a charger says is one of these small records. Times are
epoch seconds: ``ts`` is the charger's clock, ``recv`` the collector's.
``connector`` 0 means the charger as a whole (OCPP's convention).
"""

from __future__ import annotations

__all__ = [
    "CONNECTOR_STATUSES",
    "ERROR_CODES",
    "BootEvent",
    "CommandResult",
    "Event",
    "HeartbeatEvent",
    "HeartbeatIntervalEvent",
    "MeterIntervalEvent",
    "MeterReading",
    "OnlineEvent",
    "ProblemEvent",
    "SignedReading",
    "StatusEvent",
    "TransactionEvent",
    "charger_stamped",
]

import math
from dataclasses import dataclass, field
from typing import Literal, TypeGuard

#: Connector status vocabulary: OCPP 1.6 ChargePointStatus. OCPP 2.0.1's
#: ConnectorStatus is mapped onto it by the OCPP decoder (Occupied -> Preparing
#: or Charging from the transaction state), with the original kept in ``raw_status``.
CONNECTOR_STATUSES: tuple[str, ...] = (
    "Available",
    "Preparing",
    "Charging",
    "SuspendedEVSE",
    "SuspendedEV",
    "Finishing",
    "Reserved",
    "Unavailable",
    "Faulted",
)

#: OCPP 1.6 ChargePointErrorCode: the ``error_code`` label of alerts.
ERROR_CODES: tuple[str, ...] = (
    "NoError",
    "ConnectorLockFailure",
    "EVCommunicationError",
    "GroundFailure",
    "HighTemperature",
    "InternalError",
    "LocalListConflict",
    "OtherError",
    "OverCurrentFailure",
    "OverVoltage",
    "PowerMeterFailure",
    "PowerSwitchFailure",
    "ReaderFailure",
    "ResetFailure",
    "UnderVoltage",
    "WeakSignal",
)

Source = Literal["native", "ocpp1.6", "ocpp2.0.1"]


@dataclass(frozen=True, slots=True)
class StatusEvent:
    charger: str
    connector: int
    ts: float
    recv: float
    status: str  # one of CONNECTOR_STATUSES
    error_code: str = "NoError"  # one of ERROR_CODES
    info: str = ""
    vendor_error_code: str = ""
    raw_status: str = ""  # as the charger said it, when mapped
    source: Source = "native"
    # 2.0.1: implied by a transaction's chargingState, not a StatusNotification;
    # it says nothing about the connector's errors.
    derived: bool = False


@dataclass(frozen=True, slots=True)
class SignedReading:
    """A signed meter value (OCMF) decoded: the reading it signs, and what verifies it.

    ``raw`` is the signed data exactly as received (OCPP 1.6 SignedData value,
    2.0.1 ``signedMeterData``, possibly base64); ``ocmf`` its decoded
    ``OCMF|{payload}|{signature}`` text, which a verifier checks against
    ``public_key``. ``value``/``unit`` are the OCMF reading's RV and RU as
    written (a decimal, not a float, is what was signed); ``energy_wh`` is that
    reading in Wh. ``error`` says why the data could not be decoded (then only
    ``raw`` and the OCPP attributes are set).
    """

    raw: str
    ocmf: str = ""
    encoding: str = ""  # OCPP encodingMethod ("OCMF", ...), "" if not given
    signing_method: str = ""  # OCPP signingMethod, as given
    public_key: str = ""  # OCPP publicKey, as given
    meter_serial: str = ""  # OCMF MS
    gateway_serial: str = ""  # OCMF GS (the signing unit when the meter serial is absent)
    reading_time: str = ""  # OCMF TM, as written
    reading_reason: str = ""  # OCMF TX: B(egin), C(harging), E(nd), ...
    value: str = ""  # OCMF RV, as written
    unit: str = ""  # OCMF RU (kWh, Wh)
    energy_wh: float | None = None
    error: str = ""


@dataclass(frozen=True, slots=True)
class TransactionEvent:
    """A transaction started, was updated, or stopped.

    ``meter_wh`` is the import register the charger reported with the event
    (OCPP meterStart/meterStop, 2.0.1 Transaction.Begin/End values), if any.
    """

    charger: str
    connector: int
    ts: float
    recv: float
    kind: Literal["start", "update", "stop"]
    transaction_id: str
    meter_wh: float | None = None
    id_tag: str = ""
    reason: str = ""  # stop reason / 2.0.1 triggerReason or stoppedReason
    seq_no: int | None = None  # OCPP 2.0.1 seqNo
    offline: bool = False  # OCPP 2.0.1: queued while the charger was offline
    charging_state: str = ""  # OCPP 2.0.1 chargingState
    signed_data: str = ""  # OCMF or other signed meter data, passed through to the CDR
    source: Source = "native"
    #: Data-quality marks set by the decoder, e.g. "transaction_id_unknown" (the
    #: CSMS's StartTransaction result never arrived) or "connector_unknown".
    flags: tuple[str, ...] = ()
    signed: SignedReading | None = None  # ``signed_data`` decoded


@dataclass(frozen=True, slots=True)
class MeterReading:
    """A register reading that matters to billing (OCPP context and transaction).

    The same values also go into the MeterBatch for storage and detection; this
    record keeps what the batch does not: the reading's context
    (Transaction.Begin, Sample.Periodic, ...) and the transaction it belongs to.
    """

    charger: str
    connector: int
    ts: float
    recv: float
    energy_wh: float | None
    power_w: float | None
    context: str = "Sample.Periodic"
    transaction_id: str = ""
    signed_data: str = ""
    source: Source = "native"
    flags: tuple[str, ...] = ()  # data-quality marks, as on TransactionEvent
    signed: SignedReading | None = None  # ``signed_data`` decoded


@dataclass(frozen=True, slots=True)
class HeartbeatEvent:
    charger: str
    ts: float
    recv: float
    source: Source = "native"


@dataclass(frozen=True, slots=True)
class HeartbeatIntervalEvent:
    """The heartbeat interval a charger was told to keep, from the moment it applies.

    ``origin`` says how it was learned: "BootNotification" (the CSMS's answer's
    ``interval``; while the boot is Pending or Rejected it is the wait before the
    next BootNotification, so the charger speaks again within it all the same),
    "ChangeConfiguration" (1.6 key HeartbeatInterval) or "SetVariables" (2.0.1
    OCPPCommCtrlr.HeartbeatInterval), the last two only once the charger accepted.
    ``status`` is the boot's registration status, "" otherwise.
    """

    charger: str
    ts: float
    recv: float
    interval_s: float
    origin: str
    status: str = ""
    source: Source = "native"


@dataclass(frozen=True, slots=True)
class MeterIntervalEvent:
    """A meter-value interval a charger was told to keep, from the moment it applies.

    ``kind`` "sampled": values during a transaction every ``interval_s`` (1.6
    MeterValueSampleInterval, 2.0.1 SampledDataCtrlr.TxUpdatedInterval);
    "aligned": clock-aligned values every ``interval_s``, in and out of
    transactions (1.6 ClockAlignedDataInterval, 2.0.1 AlignedDataCtrlr.Interval).
    ``interval_s`` 0: none are sent. ``origin`` says how it was learned:
    "ChangeConfiguration" / "SetVariables" (once the charger accepted) or
    "GetConfiguration" / "GetVariables" (the value the charger reported).
    Charger-wide: it applies to every connector.
    """

    charger: str
    ts: float
    recv: float
    kind: Literal["sampled", "aligned"]
    interval_s: float
    origin: str
    source: Source = "native"


@dataclass(frozen=True, slots=True)
class OnlineEvent:
    """The retained ``ev/<charger>/online`` flag (true on connect, false by last will)."""

    charger: str
    online: bool
    recv: float
    source: Source = "native"


@dataclass(frozen=True, slots=True)
class BootEvent:
    charger: str
    ts: float
    recv: float
    vendor: str = ""
    model: str = ""
    firmware: str = ""
    serial: str = ""
    reason: str = ""
    extra: dict[str, str] = field(default_factory=dict)
    source: Source = "native"


@dataclass(frozen=True, slots=True)
class ProblemEvent:
    """A component/variable problem a charger reported (OCPP 2.0.1 NotifyEvent).

    ``error_code`` is the OCPP 1.6 ChargePointErrorCode it maps onto (one of
    ERROR_CODES; "NoError" when ``cleared``; "" when the event is informational,
    e.g. a periodic monitor value); the original component/variable are kept.
    """

    charger: str
    connector: int  # EVSE id, 0 for the station as a whole
    ts: float
    recv: float
    error_code: str
    component: str
    variable: str
    actual_value: str = ""
    cleared: bool = False
    trigger: str = ""  # Alerting | Delta | Periodic
    tech_code: str = ""
    tech_info: str = ""
    event_id: int = 0
    transaction_id: str = ""
    source: Source = "native"


@dataclass(frozen=True, slots=True)
class CommandResult:
    """The charger's answer to a command chargewatch sent (e.g. a remediation Reset).

    ``status`` is the response's ``status`` field (Accepted, Rejected, ...),
    "CallError" when the charger answered with a CALLERROR (``error_code`` then
    holds its code), or "Timeout" when no answer came in time.
    """

    charger: str
    ts: float
    recv: float
    action: str
    message_id: str
    status: str
    error_code: str = ""
    detail: str = ""
    source: Source = "native"


Event = (
    StatusEvent
    | TransactionEvent
    | MeterReading
    | HeartbeatEvent
    | HeartbeatIntervalEvent
    | MeterIntervalEvent
    | OnlineEvent
    | BootEvent
    | ProblemEvent
    | CommandResult
)


def charger_stamped(ev: Event) -> TypeGuard[StatusEvent | TransactionEvent | MeterReading]:
    """Whether ``ev`` carries a time read off the charger's own clock: a status,
    transaction or meter reading whose ``ts`` is not the decoder's stand-in for
    a missing one (``recv``: a 1.6 StatusNotification may leave it out). Boot
    and heartbeat messages carry no charger time (their answers carry the
    CSMS's), so they say nothing about the charger's clock."""
    return (
        isinstance(ev, StatusEvent | TransactionEvent | MeterReading)
        and ev.ts != ev.recv
        and math.isfinite(ev.ts)
    )
