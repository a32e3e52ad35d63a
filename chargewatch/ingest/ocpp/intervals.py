"""The heartbeat interval a charger keeps, as the CSMS set it.

Three exchanges set it (OCPP 1.6 4.2/5.3/9.1.10, OCPP 2.0.1 B01/B05 and
OCPPCommCtrlr.HeartbeatInterval):

* the CSMS's answer to BootNotification (1.6 and 2.0.1): ``interval`` in seconds,
  0 meaning "the charger chooses" (nothing learned). An answer with
  ``heartbeatInterval`` instead (schema-invalid, but its meaning is plain; seen
  answering an Alfen Eve) is learned too and counted as the quirk
  ``boot_heartbeat_interval``: the CSMS is not ours to correct;
* a 1.6 ChangeConfiguration of key ``HeartbeatInterval``, once the charger answers
  ``Accepted`` (RebootRequired: the value applies only after a reboot, whose
  BootNotification answer says the interval anyway);
* a 2.0.1 SetVariables of OCPPCommCtrlr.HeartbeatInterval (attribute Actual),
  once the charger's matching setVariableResult is ``Accepted``.

The requested value is kept on the pending CALL (:func:`requested`) and emitted as
a :class:`HeartbeatIntervalEvent` when the answer accepts it (:func:`on_answer`).
Nothing here rejects a frame: a request that does not parse is just not learned.
"""

from __future__ import annotations

__all__ = ["MAX_INTERVAL_S", "actual", "names", "on_answer", "requested", "seconds"]

from collections import Counter
from typing import Any, Final

from chargewatch.ingest.ocpp.framing import RESULT, Frame
from chargewatch.ingest.ocpp.state import Pending
from chargewatch.model.events import HeartbeatIntervalEvent

#: Longer intervals are not believed (1.6 advises a heartbeat at least daily).
MAX_INTERVAL_S: Final = 7 * 86_400.0
_COMPONENT: Final = "OCPPCommCtrlr"
_VARIABLE: Final = "HeartbeatInterval"


def seconds(value: Any, *, zero: bool = False) -> float | None:
    """A positive whole number of seconds from a JSON integer or a decimal string
    (``zero``: 0 too, a meter interval's "none are sent")."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        text = value.strip()
        if not text.isdigit():
            return None
        value = int(text)
    if not isinstance(value, int) or not (0 if zero else 1) <= value <= MAX_INTERVAL_S:
        return None
    return float(value)


def names(d: Any) -> tuple[str, str]:
    """(component name, variable name) of a 2.0.1 Set/GetVariableData/Result."""
    if not isinstance(d, dict):
        return "", ""
    comp, var = d.get("component"), d.get("variable")
    c = comp.get("name", "") if isinstance(comp, dict) else ""
    v = var.get("name", "") if isinstance(var, dict) else ""
    return str(c), str(v)


def actual(d: dict[str, Any]) -> bool:
    # Only the Actual attribute (the default) is the interval in force.
    return bool(d.get("attributeType", "Actual") == "Actual")


def requested(version: str, action: str, payload: dict[str, Any]) -> float | None:
    """The heartbeat interval a central-side CALL asks for, if it asks for one."""
    if version == "1.6" and action == "ChangeConfiguration":
        key = payload.get("key")
        # 1.6 configuration keys are CiString50Type: case-insensitive.
        if isinstance(key, str) and key.casefold() == _VARIABLE.casefold():
            return seconds(payload.get("value"))
        return None
    if version == "2.0.1" and action == "SetVariables":
        data = payload.get("setVariableData")
        for d in data if isinstance(data, list) else ():
            if names(d) == (_COMPONENT, _VARIABLE) and actual(d):
                return seconds(d.get("attributeValue"))
    return None


def _accepted(f: Frame, pending: Pending) -> bool:
    """Whether the charger's answer accepted the heartbeat interval it was asked for."""
    answer = f.frame[2]
    if pending.action == "ChangeConfiguration":
        return bool(answer.get("status") == "Accepted")
    results = answer.get("setVariableResult")
    return any(
        names(r) == (_COMPONENT, _VARIABLE) and actual(r) and r.get("attributeStatus") == "Accepted"
        for r in (results if isinstance(results, list) else ())
    )


def _boot_interval(answer: dict[str, Any], quirks: Counter[str]) -> float | None:
    """A BootNotification answer's interval; from ``heartbeatInterval`` (a quirk)
    only when the required ``interval`` is missing."""
    if "interval" in answer or "heartbeatInterval" not in answer:
        return seconds(answer.get("interval"))
    secs = seconds(answer["heartbeatInterval"])
    if secs is not None:
        quirks["boot_heartbeat_interval"] += 1
    return secs


def on_answer(f: Frame, pending: Pending, quirks: Counter[str], learned: Counter[str]) -> None:
    """Emit the interval an answer sets: a boot answer's, or an accepted request's
    (counted in ``learned["heartbeat"]``)."""
    if f.frame[0] != RESULT:
        return
    if pending.action == "BootNotification":
        answer = f.frame[2]
        secs = _boot_interval(answer, quirks)
        if secs is None:
            return
        status = answer.get("status")
        origin, status_text = "BootNotification", status if isinstance(status, str) else ""
    elif pending.heartbeat_s is not None and _accepted(f, pending):
        secs, origin, status_text = pending.heartbeat_s, pending.action, ""
    else:
        return
    learned["heartbeat"] += 1
    f.sink.events.append(
        HeartbeatIntervalEvent(
            f.charger, f.recv, f.recv, secs, origin, status_text, source=pending.source
        )
    )
