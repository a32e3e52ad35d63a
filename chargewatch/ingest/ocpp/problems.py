"""OCPP 2.0.1 NotifyEvent into :class:`ProblemEvent`, with the 1.6 error code it maps onto.

2.0.1 reports faults as device-model events (a component, a variable, a value)
where 1.6 had a ChargePointErrorCode in StatusNotification; detectors and alert
rules speak the 1.6 codes, so each problem is given the one it means.
"""

from __future__ import annotations

__all__ = ["on_notify_event"]

from typing import Any, Final

from chargewatch.ingest.ocpp.context import Context
from chargewatch.ingest.ocpp.framing import Frame, RejectError
from chargewatch.model.events import ProblemEvent

# OCPP 2.0.1 NotifyEvent component -> 1.6 ChargePointErrorCode (2.0.1
# Appendices, referenced components). Matched on the component first, then on
# the variable; an unmatched problem is OtherError.
_ERROR_BY_COMPONENT: Final = {
    "ConnectorPlugRetentionLock": "ConnectorLockFailure",
    "RCD": "GroundFailure",
    "OverCurrentProtection": "OverCurrentFailure",
    "PowerContactor": "PowerSwitchFailure",
    "TokenReader": "ReaderFailure",
    "FiscalMetering": "PowerMeterFailure",
    "ElectricalMeter": "PowerMeterFailure",
    "PowerMeter": "PowerMeterFailure",
    "TemperatureSensor": "HighTemperature",
    "ISO15118Ctrlr": "EVCommunicationError",
    "ConnectedEV": "EVCommunicationError",
    "LocalAuthListCtrlr": "LocalListConflict",
    "Controller": "InternalError",
}
_ERROR_BY_VARIABLE: Final = {
    "Temperature": "HighTemperature",
    "SignalStrength": "WeakSignal",
    "Tripped": "GroundFailure",
    "OverCurrent": "OverCurrentFailure",
    "OverVoltage": "OverVoltage",
    "UnderVoltage": "UnderVoltage",
}
_PROBLEM_VARIABLES: Final = frozenset({"Problem", "Tripped", "Fault", "Faulted"})


def on_notify_event(ctx: Context, f: Frame, p: dict[str, Any]) -> None:
    """One ProblemEvent per eventData; a bad one is rejected on its own."""
    for i, ed in enumerate(p["eventData"]):
        try:
            ts = ctx.ts(ed["timestamp"], f.recv)
            component = ed["component"]
            evse = component.get("evse")
            connector = ctx.connector(evse["id"], "evse.id") if evse else 0
        except RejectError as bad:
            f.reject(bad.reason, f"$.eventData[{i}]: {bad.detail}", i)
            continue
        variable: str = ed["variable"]["name"]
        cleared: bool = ed.get("cleared", False)
        f.sink.events.append(
            ProblemEvent(
                f.charger,
                connector,
                ts,
                f.recv,
                _error_code(component["name"], variable, ed, cleared),
                component["name"],
                variable,
                actual_value=ed["actualValue"],
                cleared=cleared,
                trigger=ed["trigger"],
                tech_code=ed.get("techCode", ""),
                tech_info=ed.get("techInfo", ""),
                event_id=ed["eventId"],
                transaction_id=ed.get("transactionId", ""),
                source=f.source,
            )
        )


def _error_code(component: str, variable: str, ed: dict[str, Any], cleared: bool) -> str:
    actual = str(ed["actualValue"]).strip().lower()
    problem_var = variable in _PROBLEM_VARIABLES
    if cleared or (problem_var and actual in ("false", "0")):
        return "NoError"
    if not problem_var and ed["trigger"] != "Alerting" and variable not in _ERROR_BY_VARIABLE:
        return ""  # a periodic or delta monitor value, not a problem
    if variable == "SignalStrength" or variable in ("OverVoltage", "UnderVoltage"):
        return _ERROR_BY_VARIABLE[variable]
    code = _ERROR_BY_COMPONENT.get(component) or _ERROR_BY_VARIABLE.get(variable)
    if code is None and variable in ("Voltage", "ACVoltage", "DCVoltage"):
        hint = f"{ed.get('techCode', '')} {ed.get('techInfo', '')}".lower()
        code = "UnderVoltage" if "under" in hint or "low" in hint else "OverVoltage"
    return code or "OtherError"
