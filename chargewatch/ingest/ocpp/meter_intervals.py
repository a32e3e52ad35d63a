"""The meter-value intervals a charger keeps, as the CSMS set them or it reports them.

Two intervals say how often a charger sends meter values (OCPP 1.6 section 9.1,
standard configuration keys; OCPP 2.0.1 part 2, SampledDataCtrlr and
AlignedDataCtrlr):

* ``sampled``: during a transaction, every N seconds from its start: 1.6
  ``MeterValueSampleInterval``, 2.0.1 ``SampledDataCtrlr.TxUpdatedInterval``;
* ``aligned``: clock-aligned values every N seconds counted from midnight, in
  and out of transactions: 1.6 ``ClockAlignedDataInterval``, 2.0.1
  ``AlignedDataCtrlr.Interval``.

0 means "none are sent". Both are learned, as a :class:`MeterIntervalEvent`, from

* a 1.6 ChangeConfiguration once the charger answers ``Accepted``, a 2.0.1
  SetVariables once the variable's setVariableResult is ``Accepted`` (the value
  requested is kept on the pending CALL, as for the heartbeat: :mod:`.intervals`);
* the charger's own report: a 1.6 GetConfiguration.conf ``configurationKey``
  (``[{key, readonly, value}]``), a 2.0.1 GetVariables.conf
  ``getVariableResult`` with ``attributeStatus`` Accepted and ``attributeValue``.
  Those reports also carry HeartbeatInterval, emitted as a
  :class:`HeartbeatIntervalEvent` (origin GetConfiguration / GetVariables).

1.6 keys are CiString50Type, so compared case-insensitively (an ABL eMH1
reports ``HeartBeatInterval``); in 2.0.1 only the Actual attribute counts.
Every value learned is counted in the decoder's ``learned`` by kind. Nothing
here rejects a frame: what does not parse is just not learned.
"""

from __future__ import annotations

__all__ = ["on_answer", "reads", "requested"]

from collections import Counter
from collections.abc import Iterator
from typing import Any, Final, Literal

from chargewatch.ingest.ocpp.framing import RESULT, Frame
from chargewatch.ingest.ocpp.intervals import actual, names, seconds
from chargewatch.ingest.ocpp.state import Pending
from chargewatch.model.events import HeartbeatIntervalEvent, MeterIntervalEvent

Kind = Literal["heartbeat", "sampled", "aligned"]

_KEYS_16: Final[dict[str, Kind]] = {
    "heartbeatinterval": "heartbeat",
    "metervaluesampleinterval": "sampled",
    "clockaligneddatainterval": "aligned",
}
_VARS_201: Final[dict[tuple[str, str], Kind]] = {
    ("OCPPCommCtrlr", "HeartbeatInterval"): "heartbeat",
    ("SampledDataCtrlr", "TxUpdatedInterval"): "sampled",
    ("AlignedDataCtrlr", "Interval"): "aligned",
}
_READS: Final = {("1.6", "GetConfiguration"), ("2.0.1", "GetVariables")}


def _key16(key: Any) -> Kind | None:
    return _KEYS_16.get(key.casefold()) if isinstance(key, str) else None


def _items(answer: Any, field: str) -> Iterator[dict[str, Any]]:
    items = answer.get(field) if isinstance(answer, dict) else None
    for item in items if isinstance(items, list) else ():
        if isinstance(item, dict):
            yield item


def requested(version: str, action: str, payload: dict[str, Any]) -> tuple[tuple[Kind, float], ...]:
    """The meter intervals a central-side CALL asks for: (kind, seconds) each."""
    if version == "1.6" and action == "ChangeConfiguration":
        kind = _key16(payload.get("key"))
        secs = seconds(payload.get("value"), zero=True)
        return ((kind, secs),) if kind not in (None, "heartbeat") and secs is not None else ()
    if version == "2.0.1" and action == "SetVariables":
        out: list[tuple[Kind, float]] = []
        for d in _items(payload, "setVariableData"):
            kind201 = _VARS_201.get(names(d))
            secs = seconds(d.get("attributeValue"), zero=True)
            if kind201 not in (None, "heartbeat") and actual(d) and secs is not None:
                out.append((kind201, secs))
        return tuple(out)
    return ()


def reads(version: str, action: str) -> bool:
    """Whether a central-side CALL asks the charger to report its settings."""
    return (version, action) in _READS


def _accepted(f: Frame, pending: Pending) -> Iterator[tuple[Kind, float]]:
    """The requested intervals the charger's answer accepted."""
    answer = f.frame[2]
    if pending.action == "ChangeConfiguration":
        if answer.get("status") == "Accepted":
            yield from pending.meter_s
        return
    ok = {
        _VARS_201.get(names(r))
        for r in _items(answer, "setVariableResult")
        if actual(r) and r.get("attributeStatus") == "Accepted"
    }
    yield from ((kind, secs) for kind, secs in pending.meter_s if kind in ok)


def _reported(f: Frame, version: str) -> Iterator[tuple[Kind, float]]:
    """The intervals a GetConfiguration/GetVariables answer reports."""
    answer = f.frame[2]
    if version == "1.6":
        for item in _items(answer, "configurationKey"):
            kind = _key16(item.get("key"))
            if kind is not None:
                secs = seconds(item.get("value"), zero=kind != "heartbeat")
                if secs is not None:
                    yield kind, secs
        return
    for r in _items(answer, "getVariableResult"):
        kind = _VARS_201.get(names(r))
        if kind is None or not actual(r) or r.get("attributeStatus") != "Accepted":
            continue
        secs = seconds(r.get("attributeValue"), zero=kind != "heartbeat")
        if secs is not None:
            yield kind, secs


def on_answer(f: Frame, pending: Pending, learned: Counter[str]) -> None:
    """Emit the intervals an answer accepts or reports."""
    if f.frame[0] != RESULT or not isinstance(f.frame[2], dict):
        return
    if pending.reads:
        found = list(_reported(f, f.version))
    elif pending.meter_s:
        found = list(_accepted(f, pending))
    else:
        return
    for kind, secs in found:
        learned[kind] += 1
        if kind == "heartbeat":
            ev: Any = HeartbeatIntervalEvent(
                f.charger, f.recv, f.recv, secs, pending.action, source=pending.source
            )
        else:
            ev = MeterIntervalEvent(
                f.charger, f.recv, f.recv, kind, secs, pending.action, source=pending.source
            )
        f.sink.events.append(ev)
