"""Decode OCPP-J 1.6 and 2.0.1 frames forwarded over MQTT into meter rows and events.

Topic ``ocpp/<version>/<chargerId>/<source>`` (DESIGN.md "OCPP-J frames forwarded
over MQTT"); the router splits it and calls :meth:`OcppDecoder.decode`.

Contract: ``decode`` never raises. Every frame, or part of a frame, that is not
used becomes ``sink.reject(topic, reason, detail, payload, recv, index)`` with one
of the stable reasons in :data:`REASONS`; ``index`` is the meterValue (or
NotifyEvent eventData) position when only part of a frame was rejected.

What is rejected, and how much of the frame goes with it:

* the frame itself (not JSON, not an OCPP-J frame, unknown action, schema
  violation outside the meter values, bad frame-level timestamp): the whole
  frame, nothing emitted;
* a meterValue whose timestamp is bad, future or pre-2010: that meterValue only;
* a sampledValue that violates the schema, has an unknown unit, a value that is
  not a number, not finite or out of range: that sample only. The frame's other
  samples are independent readings of the same instant and are kept. The one
  dependency: a total power summed from per-phase values is left out when any
  phase was rejected (a partial sum would look like phase loss);
* meterStart/meterStop that are impossible: the value only, the transaction
  event is still emitted with ``meter_wh=None`` and the flag ``meter_rejected``.

Valid frames of actions that carry no telemetry (Authorize, DataTransfer, ...)
are not rejected; they are counted in :attr:`OcppDecoder.ignored`.
Accepted deviations from the spec are counted in :attr:`OcppDecoder.quirks`
(see :data:`QUIRKS`); where a sample's value goes is decided in
:mod:`chargewatch.ingest.ocpp.units`.

Correlation (:mod:`chargewatch.ingest.ocpp.state`): a 1.6 StartTransaction
becomes a start :class:`TransactionEvent` when the CSMS's answer (``csms``
topic) brings the transaction id, or after ``pending_timeout`` with
``transaction_id=""`` and the flag ``transaction_id_unknown``. Answers to
chargewatch's own commands (CALLs on the ``command`` topic, or announced with
:meth:`OcppDecoder.note_command`) become :class:`CommandResult` events. Call
:meth:`OcppDecoder.expire` periodically so that silent chargers' pending CALLs
expire too; each charger's own frames expire its state as they arrive.

Mapping choices: a 2.0.1 EVSE is chargewatch's connector (``evseId`` /
``evse.id``; 0 = the station); 2.0.1 Occupied becomes Preparing, Charging,
SuspendedEV/EVSE or Finishing from the EVSE's transaction, and a chargingState
change while Occupied emits a derived StatusEvent; NotifyEvent problems become
:class:`ProblemEvent` with the 1.6 error code they map onto.
"""

from __future__ import annotations

__all__ = ["QUIRKS", "REASONS", "OcppDecoder"]

import math
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Final

import orjson

from chargewatch.ingest.ocpp import units
from chargewatch.ingest.ocpp.schemas import SchemaError, schemas
from chargewatch.ingest.ocpp.schemas import actions as known_actions
from chargewatch.ingest.ocpp.state import ChargerState, Early, Evse, Pending, Side, StartInfo
from chargewatch.ingest.ocpp.units import plan
from chargewatch.model.batch import FIELD_INDEX, N_FIELDS
from chargewatch.model.decoding import DecodeSink
from chargewatch.model.events import (
    BootEvent,
    CommandResult,
    HeartbeatEvent,
    MeterReading,
    ProblemEvent,
    Source,
    StatusEvent,
    TransactionEvent,
)
from chargewatch.model.fleet import ConnectorIndex

#: Every rejection reason this decoder produces.
REASONS: Final = (
    "unknown_version",  # topic version is not 1.6 or 2.0.1
    "unknown_source",  # topic source is not cp, csms or command
    "malformed_json",  # payload is not JSON
    "not_a_frame",  # JSON but not [2,id,action,{}], [3,id,{}] or [4,id,code,desc,{}]
    "unknown_action",  # a CALL naming an action the version does not define
    "schema_violation",  # fails the official JSON schema; detail = JSON path + message
    "bad_timestamp",  # not an RFC 3339 date-time
    "future_timestamp",  # more than ``future_tolerance`` after receipt
    "timestamp_before_2010",  # older than any OCPP charger's clock can honestly be
    "bad_number",  # a 1.6 sampledValue.value that does not parse as a number
    "non_finite",  # NaN or ±Infinity
    "out_of_range",  # outside ocpp_units.FIELD_RANGE, negative register, bad connector id
    "unknown_unit",  # a unit that does not fit the measurand
    "duplicate_call",  # the same CALL again, byte for byte (a retransmission)
    "duplicate_result",  # the same answer again to an already answered CALL
    "orphan_result",  # an answer that matched no CALL within ``pending_timeout``
    "unexpected_frame",  # a CALLRESULT/CALLERROR on the command topic
    "internal_error",  # a bug in this decoder; the frame is dropped, the loop goes on
)

#: Accepted deviations, counted in ``OcppDecoder.quirks`` (name -> what it is).
QUIRKS: Final = {
    "numeric_value": "1.6 sampledValue.value sent as a JSON number instead of a string",
    "string_value": "2.0.1 sampledValue.value sent as a numeric string instead of a number",
    "timestamp_without_offset": "timestamp without Z/offset, read as UTC",
    "unit_defaulted": "non-energy sample without unit: its natural unit assumed, not Wh",
    "power_summed_from_phases": "per-phase Power.Active.Import only: summed (lbbrhzn/ocpp#1709)",
    "signed_value_extra": "more than one SignedData value in a meterValue: the first is kept",
    "unit_case": "2.0.1 unit in unusual case (kwh): matched case-insensitively",
}

_VERSIONS: Final = {"1.6": "ocpp1.6", "2.0.1": "ocpp2.0.1"}
_SOURCES: Final = frozenset({"cp", "csms", "command"})
_CALL, _RESULT, _ERROR = 2, 3, 4
_MAX_ID = 36  # OCPP-J: message id is at most 36 characters
_MAX_RAW = 4096  # raw text kept in a rejection of an unparsable payload
_T2010: Final = 1262304000.0  # 2010-01-01T00:00:00Z
_NAN: Final = math.nan
_TX_CONTEXTS: Final = frozenset({"Transaction.Begin", "Transaction.End"})
_METER_CONTAINER: Final = {
    ("1.6", "MeterValues"): "meterValue",
    ("1.6", "StopTransaction"): "transactionData",
    ("2.0.1", "MeterValues"): "meterValue",
    ("2.0.1", "TransactionEvent"): "meterValue",
}
_CONTAINER_REQUIRED: Final = {("1.6", "MeterValues"), ("2.0.1", "MeterValues")}
_NOTIFY = ("2.0.1", "NotifyEvent")
_TEMPERATURE: Final = FIELD_INDEX["temperature_c"]

# OCPP 2.0.1 ConnectorStatus Occupied -> 1.6 ChargePointStatus from the EVSE's
# transaction chargingState (2.0.1 ConnectorStatus Occupied covers 1.6's
# Preparing, Charging, SuspendedEV(SE) and Finishing).
_OCCUPIED_BY_STATE: Final = {
    "Charging": "Charging",
    "SuspendedEV": "SuspendedEV",
    "SuspendedEVSE": "SuspendedEVSE",
    "EVConnected": "Preparing",
    "Idle": "Preparing",
}

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


class _RejectError(Exception):
    """A rejection found below the frame level; caught where its scope ends."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(reason, detail)
        self.reason = reason
        self.detail = detail


class _Frame:
    """What every handler needs about the frame being decoded."""

    __slots__ = (
        "charger",
        "digest",
        "frame",
        "recv",
        "sink",
        "source",
        "state",
        "topic",
        "version",
    )

    def __init__(
        self,
        topic: str,
        version: str,
        charger: str,
        frame: list[Any],
        recv: float,
        sink: DecodeSink,
        state: ChargerState,
        digest: int = 0,
    ) -> None:
        self.topic = topic
        self.digest = digest
        self.version = version
        self.charger = charger
        self.frame = frame
        self.recv = recv
        self.sink = sink
        self.state = state
        self.source: Source = "ocpp1.6" if version == "1.6" else "ocpp2.0.1"

    def reject(self, reason: str, detail: str, index: int | None = None) -> None:
        self.sink.reject(self.topic, reason, detail, self.frame, self.recv, index)


class OcppDecoder:
    """Decodes OCPP-J frames of many chargers; holds only per-charger correlation state.

    ``pending_timeout`` (s): how long a CALL waits for its answer (and an early
    answer for its CALL) before it expires; a 1.6 StartTransaction whose answer
    never comes is then emitted with an unknown transaction id. ``max_pending``
    bounds both per charger and direction. ``future_tolerance`` (s): how far
    ahead of receipt a charger's timestamp may be before it is rejected.
    ``max_connector``: highest connector/EVSE id accepted (the fleet's limit).
    """

    def __init__(
        self,
        index: ConnectorIndex,
        *,
        pending_timeout: float = 120.0,
        max_pending: int = 64,
        future_tolerance: float = 86_400.0,
        max_connector: int = 64,
    ) -> None:
        if pending_timeout <= 0 or max_pending < 1 or future_tolerance < 0 or max_connector < 1:
            raise ValueError("pending_timeout, max_pending, max_connector must be positive")
        self.index = index
        self.pending_timeout = pending_timeout
        self.max_pending = max_pending
        self.future_tolerance = future_tolerance
        self.max_connector = max_connector
        #: Accepted deviations from the spec, by name (keys of QUIRKS).
        self.quirks: Counter[str] = Counter()
        #: Valid CALLs of actions that carry no telemetry, by action.
        self.ignored: Counter[str] = Counter()
        self._chargers: dict[str, ChargerState] = {}
        #: The OCPP version each charger last spoke (from its topic): remediation
        #: must answer in that dialect on that version's command topic.
        self.versions: dict[str, str] = {}
        self.versions_changed = 0  # bumped on every change, so readers can cache
        self._ts_text = ""
        self._ts_value = 0.0
        self._ts_naive = False
        self._calls: dict[tuple[str, str], Callable[[_Frame, dict[str, Any]], None]] = {
            ("1.6", "BootNotification"): self._boot16,
            ("1.6", "Heartbeat"): self._heartbeat,
            ("1.6", "StatusNotification"): self._status16,
            ("1.6", "MeterValues"): self._meter_values16,
            ("1.6", "StartTransaction"): self._start16,
            ("1.6", "StopTransaction"): self._stop16,
            ("2.0.1", "BootNotification"): self._boot201,
            ("2.0.1", "Heartbeat"): self._heartbeat,
            ("2.0.1", "StatusNotification"): self._status201,
            ("2.0.1", "MeterValues"): self._meter_values201,
            ("2.0.1", "TransactionEvent"): self._transaction201,
            ("2.0.1", "NotifyEvent"): self._notify201,
        }

    # ------------------------------------------------------------------ entry

    def decode(
        self,
        topic: str,
        version: str,
        charger: str,
        source: str,
        payload: bytes,
        recv: float,
        sink: DecodeSink,
    ) -> None:
        """Decode one MQTT message of ``ocpp/<version>/<charger>/<source>``. Never raises."""
        if not isinstance(payload, bytes):  # tolerate bytearray/memoryview/str from callers
            payload = _as_bytes(payload)
        try:
            self._decode(topic, version, charger, source, payload, recv, sink)
        except Exception as exc:  # the ingest loop must survive any bug in here
            detail = f"{type(exc).__name__}: {exc}"
            sink.reject(topic, "internal_error", detail, _text(payload), recv)

    def note_command(
        self, charger: str, version: str, message_id: str, action: str, recv: float
    ) -> None:
        """Register a command chargewatch sent, when its ``command`` topic is not decoded.

        The charger's answer (on ``cp``) then yields a :class:`CommandResult`
        (``Timeout`` when none comes within ``pending_timeout``).
        """
        source: Source = "ocpp1.6" if version == "1.6" else "ocpp2.0.1"
        state = self._state(charger)
        state.pending[("csms", message_id)] = Pending(action, recv, source, command=True)

    def expire(self, now: float, sink: DecodeSink) -> None:
        """Expire pending CALLs and early answers of every charger (call every few s).

        Also done for one charger on each of its frames; this sweep covers
        chargers that went silent.
        """
        for charger, state in self._chargers.items():
            self._expire(charger, state, now, sink)

    # --------------------------------------------------------------- framing

    def _state(self, charger: str) -> ChargerState:
        state = self._chargers.get(charger)
        if state is None:
            state = self._chargers[charger] = ChargerState()
        return state

    def _decode(
        self,
        topic: str,
        version: str,
        charger: str,
        source: str,
        payload: bytes,
        recv: float,
        sink: DecodeSink,
    ) -> None:
        if version not in _VERSIONS:
            sink.reject(topic, "unknown_version", f"version {version!r}", _text(payload), recv)
            return
        if source not in _SOURCES:
            sink.reject(topic, "unknown_source", f"source {source!r}", _text(payload), recv)
            return
        try:
            frame = orjson.loads(payload)
        except orjson.JSONDecodeError as exc:
            sink.reject(topic, "malformed_json", str(exc), _text(payload), recv)
            return
        problem = _frame_problem(frame)
        if problem:
            sink.reject(topic, "not_a_frame", problem, frame, recv)
            return
        if source != "command" and self.versions.get(charger) != version:
            self.versions[charger] = version
            self.versions_changed += 1
        state = self._state(charger)
        self._expire(charger, state, recv, sink)
        f = _Frame(topic, version, charger, frame, recv, sink, state, hash(payload))
        kind: int = frame[0]
        if kind == _CALL:
            self._call(f, source)
        elif source == "command":
            f.reject("unexpected_frame", "only CALLs are published on the command topic")
        else:
            # Answers on csms answer the charger's CALLs, answers on cp the central side's.
            self._answer(f, "cp" if source == "csms" else "csms")

    def _call(self, f: _Frame, source: str) -> None:
        msg_id: str = f.frame[1]
        action: str = f.frame[2]
        side: Side = "cp" if source == "cp" else "csms"
        key = (side, msg_id)
        state = f.state
        seen = state.recent.get(key)
        if seen is not None and seen.call == f.digest:
            f.reject("duplicate_call", f"{action} CALL id {msg_id!r} repeated byte for byte")
            return
        if action not in known_actions(f.version):
            f.reject("unknown_action", f"{action!r} is not an OCPP {f.version} action")
            return
        old = state.pending.pop(key, None)
        if old is not None:  # the id was reused by a new connection: the old CALL is lost
            self._give_up(f.charger, old, msg_id, f.recv, f.sink)
        pending = Pending(action, f.recv, f.source, command=source == "command")
        self._add_pending(f, key, pending)
        if side == "cp":
            handler = self._calls.get((f.version, action))
            if handler is None:
                self.ignored[action] += 1
            else:
                payload = self._validated(f, action, f.frame[3])
                if payload is not None:
                    handler(f, payload)
        early = state.early.pop(key, None)
        if early is not None:  # its answer overtook it
            state.pending.pop(key, None)
            state.recent[key].answer = early.digest
            answer = _Frame(
                early.topic, f.version, f.charger, early.frame, early.recv, f.sink, state
            )
            self._resolve(answer, pending)

    def _add_pending(self, f: _Frame, key: tuple[Side, str], pending: Pending) -> None:
        state = f.state
        state.pending[key] = pending
        state.remember(key, f.digest, 4 * self.max_pending)
        while len(state.pending) > self.max_pending:
            # Unanswered CALLs pile up when the bridge forwards one direction
            # only; the oldest is given up as if it had timed out.
            old_key = next(iter(state.pending))
            self._give_up(f.charger, state.pending.pop(old_key), old_key[1], f.recv, f.sink)

    def _answer(self, f: _Frame, side: Side) -> None:
        msg_id: str = f.frame[1]
        key = (side, msg_id)
        state = f.state
        pending = state.pending.pop(key, None)
        seen = state.recent.get(key)
        if pending is None:
            early = state.early.get(key)
            if (seen is not None and seen.answer == f.digest) or (
                early is not None and early.digest == f.digest
            ):
                f.reject("duplicate_result", f"CALL id {msg_id!r} was already answered")
                return
            if early is not None:
                f.sink.reject(
                    early.topic,
                    "orphan_result",
                    f"answer to CALL id {msg_id!r} replaced by another before its CALL came",
                    early.frame,
                    early.recv,
                )
            # The answer may have overtaken its CALL (different topics): hold it.
            state.early[key] = Early(f.topic, f.frame, f.recv, f.digest)
            while len(state.early) > self.max_pending:
                old = state.early.pop(next(iter(state.early)))
                f.sink.reject(
                    old.topic, "orphan_result", "too many unmatched answers", old.frame, old.recv
                )
            return
        if seen is not None:
            seen.answer = f.digest
        self._resolve(f, pending)

    def _resolve(self, f: _Frame, pending: Pending) -> None:
        """An answer met its CALL."""
        frame = f.frame
        if pending.command:
            if frame[0] == _RESULT:
                status = frame[2].get("status")
                f.sink.events.append(
                    CommandResult(
                        f.charger,
                        f.recv,
                        f.recv,
                        pending.action,
                        frame[1],
                        status if isinstance(status, str) else "",
                        source=f.source,
                    )
                )
            else:
                f.sink.events.append(
                    CommandResult(
                        f.charger,
                        f.recv,
                        f.recv,
                        pending.action,
                        frame[1],
                        "CallError",
                        error_code=frame[2],
                        detail=frame[3],
                        source=f.source,
                    )
                )
            return
        start = pending.start
        if start is None:
            return
        if frame[0] == _ERROR:
            self._emit_start(f, start, pending.recv, "", ("transaction_id_unknown", "call_error"))
            return
        schema = schemas(f.version).response(pending.action)
        errors = schemas(f.version).errors(schema, frame[2]) if schema is not None else []
        if errors:
            f.reject("schema_violation", _describe(errors))
            self._emit_start(f, start, pending.recv, "", ("transaction_id_unknown",))
            return
        tx_id = str(frame[2]["transactionId"])
        status = frame[2]["idTagInfo"]["status"]
        flags = () if status == "Accepted" else (f"id_tag_{status.lower()}",)
        f.state.learn_transaction(tx_id, start.connector, 4 * self.max_pending)
        self._emit_start(f, start, pending.recv, tx_id, flags)

    def _emit_start(
        self, f: _Frame, start: StartInfo, recv: float, tx_id: str, flags: tuple[str, ...]
    ) -> None:
        f.sink.events.append(
            TransactionEvent(
                f.charger,
                start.connector,
                start.ts,
                recv,
                "start",
                tx_id,
                meter_wh=start.meter_wh,
                id_tag=start.id_tag,
                source="ocpp1.6",
                flags=start.flags + flags,
            )
        )

    def _expire(self, charger: str, state: ChargerState, now: float, sink: DecodeSink) -> None:
        limit = now - self.pending_timeout
        pending = state.pending
        while pending:
            key = next(iter(pending))
            if pending[key].recv >= limit:
                break
            self._give_up(charger, pending.pop(key), key[1], now, sink)
        early = state.early
        while early:
            key = next(iter(early))
            old = early[key]
            if old.recv >= limit:
                break
            del early[key]
            sink.reject(
                old.topic,
                "orphan_result",
                f"answer to CALL id {key[1]!r} matched no CALL within {self.pending_timeout:g} s",
                old.frame,
                old.recv,
            )

    def _give_up(
        self, charger: str, pending: Pending, msg_id: str, now: float, sink: DecodeSink
    ) -> None:
        if pending.start is not None:
            start = pending.start
            sink.events.append(
                TransactionEvent(
                    charger,
                    start.connector,
                    start.ts,
                    pending.recv,
                    "start",
                    "",
                    meter_wh=start.meter_wh,
                    id_tag=start.id_tag,
                    source="ocpp1.6",
                    flags=(*start.flags, "transaction_id_unknown"),
                )
            )
        elif pending.command:
            sink.events.append(
                CommandResult(
                    charger, now, now, pending.action, msg_id, "Timeout", source=pending.source
                )
            )

    # ------------------------------------------------------------ validation

    def _validated(self, f: _Frame, action: str, payload: dict[str, Any]) -> dict[str, Any] | None:
        """The payload if it (or what is left after cutting out bad items) is valid."""
        table = schemas(f.version)
        schema = table.request(action)
        if schema is None:  # listed as an action but no schema: nothing to check
            return payload
        errors = table.errors(schema, payload)
        if not errors:
            return payload
        if self._repair(f.version, payload, errors):
            errors = table.errors(schema, payload)
            if not errors:
                return payload
        container = _METER_CONTAINER.get((f.version, action))
        if (f.version, action) == _NOTIFY:
            container = "eventData"
        if container is None:
            f.reject("schema_violation", _describe(errors))
            return None
        # Errors inside one meterValue / sampledValue cut out only that item.
        bad_items: dict[int, list[SchemaError]] = {}
        bad_samples: dict[tuple[int, int], list[SchemaError]] = {}
        frame_errors: list[SchemaError] = []
        for e in errors:
            p = e.path
            if len(p) >= 2 and p[0] == container and isinstance(p[1], int):
                if len(p) >= 4 and p[2] == "sampledValue" and isinstance(p[3], int):
                    bad_samples.setdefault((p[1], p[3]), []).append(e)
                else:
                    bad_items.setdefault(p[1], []).append(e)
            else:
                frame_errors.append(e)
        if frame_errors:
            f.reject("schema_violation", _describe(errors))
            return None
        items: list[Any] = payload[container]
        kept: list[Any] = []
        for i, item in enumerate(items):
            if i in bad_items:
                f.reject("schema_violation", _describe(bad_items[i]), i)
                continue
            drop = [j for (k, j) in bad_samples if k == i]
            if drop:
                for j in drop:
                    f.reject("schema_violation", _describe(bad_samples[(i, j)]), i)
                samples = [s for j, s in enumerate(item["sampledValue"]) if j not in drop]
                if samples:
                    kept.append({**item, "sampledValue": samples})
                continue
            kept.append(item)
        pruned = {**payload, container: kept}
        if not kept:
            if (f.version, action) in _CONTAINER_REQUIRED or (f.version, action) == _NOTIFY:
                return None  # every item was rejected on its own
            del pruned[container]
        errors = table.errors(schema, pruned)
        if errors:
            f.reject("schema_violation", _describe(errors))
            return None
        return pruned

    def _repair(self, version: str, payload: dict[str, Any], errors: list[SchemaError]) -> bool:
        """Normalise the accepted value-type quirks in place; True if anything changed."""
        changed = False
        for e in errors:
            p = e.path
            if len(p) != 5 or p[2] != "sampledValue" or p[4] != "value":
                continue
            try:
                sample = payload[str(p[0])][p[1]]["sampledValue"][p[3]]
            except (KeyError, IndexError, TypeError):
                continue
            if not isinstance(sample, dict):
                continue
            value = sample.get("value")
            if version == "1.6" and isinstance(value, int | float) and not isinstance(value, bool):
                sample["value"] = repr(value)  # 1.6 wants a string; the number is exact
                self.quirks["numeric_value"] += 1
                changed = True
            elif version == "2.0.1" and isinstance(value, str):
                try:
                    number = float(value)
                except ValueError:
                    continue
                sample["value"] = number
                self.quirks["string_value"] += 1
                changed = True
        return changed

    # ------------------------------------------------------------ primitives

    def _ts(self, text: str, recv: float) -> float:
        """Epoch seconds of an RFC 3339 timestamp, checked against ``recv``."""
        if text == self._ts_text:  # one frame's meterValues often share a timestamp
            ts = self._ts_value
            if self._ts_naive:
                self.quirks["timestamp_without_offset"] += 1
        else:
            # fromisoformat also takes dates without a time; RFC 3339 needs both.
            if len(text) < 19 or text[10] not in "Tt ":
                raise _RejectError("bad_timestamp", f"{text!r} is not an RFC 3339 date-time")
            try:
                dt = datetime.fromisoformat(text)
            except ValueError:
                raise _RejectError(
                    "bad_timestamp", f"{text!r} is not an RFC 3339 date-time"
                ) from None
            naive = dt.tzinfo is None
            if naive:
                self.quirks["timestamp_without_offset"] += 1
                dt = dt.replace(tzinfo=UTC)
            ts = dt.timestamp()
            self._ts_text, self._ts_value, self._ts_naive = text, ts, naive
        if ts < _T2010:
            raise _RejectError("timestamp_before_2010", f"{text!r} is before 2010")
        if ts > recv + self.future_tolerance:
            raise _RejectError("future_timestamp", f"{text!r} is {ts - recv:.0f} s after receipt")
        return ts

    def _connector(self, value: int, what: str) -> int:
        if not 0 <= value <= self.max_connector:
            raise _RejectError("out_of_range", f"{what} {value} outside 0..{self.max_connector}")
        return value

    # ------------------------------------------------------------ meter values

    def _meter_values(
        self,
        f: _Frame,
        connector: int | None,
        items: list[dict[str, Any]],
        container: str,
        *,
        transaction_id: str,
        flags: tuple[str, ...] = (),
    ) -> list[MeterReading]:
        """Add one batch row per meterValue; return the billing readings among them.

        ``connector`` None: the row's connector is not known (a 1.6 stop of a
        transaction whose start was not seen), so no batch row, only readings.
        """
        v16 = f.version == "1.6"
        main_meter = connector == 0
        conn_id = self.index.id(f.charger, connector) if connector is not None else -1
        readings: list[MeterReading] = []
        for i, mv in enumerate(items):
            try:
                ts = self._ts(mv["timestamp"], f.recv)
            except _RejectError as bad:
                f.reject(bad.reason, f"$.{container}[{i}].timestamp: {bad.detail}", i)
                continue
            row = [_NAN] * N_FIELDS
            phase_power = [_NAN, _NAN, _NAN]
            phase_power_bad = False
            tx_context = ""
            tx_energy: float | None = None
            signed = ""
            for j, sv in enumerate(mv["sampledValue"]):
                context = sv.get("context", "Sample.Periodic")
                if context in _TX_CONTEXTS and not tx_context:
                    tx_context = context
                if v16:
                    if sv.get("format") == "SignedData":
                        # Signed data (OCMF, ...) is passed through for the CDR,
                        # never read as a number (OCPP 1.6 ValueFormat SignedData).
                        if signed:
                            self.quirks["signed_value_extra"] += 1
                        else:
                            signed = sv["value"]
                        continue
                else:
                    smv = sv.get("signedMeterValue")
                    if smv is not None and not signed:
                        signed = smv["signedMeterData"]
                if v16:
                    unit = sv.get("unit")
                    multiplier = 0
                else:
                    uom = sv.get("unitOfMeasure")
                    unit = uom.get("unit") if uom is not None else None
                    multiplier = uom.get("multiplier", 0) if uom is not None else 0
                measurand = sv.get("measurand", "Energy.Active.Import.Register")
                location = sv.get("location", "Outlet")
                if location == "Inlet" and main_meter:
                    location = "Outlet"  # connector 0's meter is the grid connection's
                pl = plan(measurand, sv.get("phase"), location, unit, v16)
                if pl is None:
                    continue
                raw = sv["value"]
                try:
                    if pl.error:
                        raise _RejectError("unknown_unit", pl.error)
                    value = _number(raw) if v16 else float(raw)
                    if multiplier:
                        if not -9 <= multiplier <= 9:
                            raise _RejectError(
                                "out_of_range",
                                f"unitOfMeasure.multiplier {multiplier} outside -9..9",
                            )
                        value *= 10.0**multiplier
                    value = value * pl.scale + pl.offset
                    if not pl.low <= value <= pl.high:
                        if not math.isfinite(value):
                            raise _RejectError("non_finite", f"value {raw!r} is not finite")
                        raise _RejectError(
                            "out_of_range",
                            f"{measurand} {raw!r} {pl.unit} = {value:g}"
                            f" outside {pl.low:g}..{pl.high:g}",
                        )
                except _RejectError as bad:
                    if pl.field == units.POWER_PHASE:
                        phase_power_bad = True
                    f.reject(bad.reason, f"$.{container}[{i}].sampledValue[{j}]: {bad.detail}", i)
                    continue
                if pl.quirk:
                    self.quirks[pl.quirk] += 1
                field = pl.field
                if field == units.POWER_PHASE:
                    phase_power[pl.line] = value
                elif field == _TEMPERATURE:
                    old = row[field]
                    row[field] = value if math.isnan(old) else max(old, value)
                elif math.isnan(row[field]):
                    row[field] = value
                if field == units.ENERGY and context in _TX_CONTEXTS and tx_energy is None:
                    tx_energy = value
            if math.isnan(row[units.POWER]) and not phase_power_bad:
                seen = [p for p in phase_power if not math.isnan(p)]
                if seen:
                    row[units.POWER] = sum(seen)
                    self.quirks["power_summed_from_phases"] += 1
            if conn_id >= 0 and not all(math.isnan(x) for x in row):
                f.sink.meter.add(conn_id, ts, f.recv, tuple(row))
            if tx_context or transaction_id or signed:
                energy = row[units.ENERGY]
                if tx_energy is not None:
                    energy = tx_energy
                power = row[units.POWER]
                readings.append(
                    MeterReading(
                        f.charger,
                        connector if connector is not None else 0,
                        ts,
                        f.recv,
                        None if math.isnan(energy) else energy,
                        None if math.isnan(power) else power,
                        context=tx_context or "Sample.Periodic",
                        transaction_id=transaction_id,
                        signed_data=signed,
                        source=f.source,
                        flags=flags,
                    )
                )
        return readings

    # ------------------------------------------------------------- OCPP 1.6

    def _heartbeat(self, f: _Frame, payload: dict[str, Any]) -> None:
        f.sink.events.append(HeartbeatEvent(f.charger, f.recv, f.recv, f.source))

    def _boot16(self, f: _Frame, p: dict[str, Any]) -> None:
        extra = {k: p[k] for k in ("iccid", "imsi", "meterType", "meterSerialNumber") if p.get(k)}
        serial = p.get("chargePointSerialNumber") or p.get("chargeBoxSerialNumber") or ""
        f.sink.events.append(
            BootEvent(
                f.charger,
                f.recv,  # BootNotification carries no timestamp
                f.recv,
                vendor=p["chargePointVendor"],
                model=p["chargePointModel"],
                firmware=p.get("firmwareVersion", ""),
                serial=serial,
                extra=extra,
                source=f.source,
            )
        )

    def _status16(self, f: _Frame, p: dict[str, Any]) -> None:
        try:
            connector = self._connector(p["connectorId"], "connectorId")
            ts = self._ts(p["timestamp"], f.recv) if "timestamp" in p else f.recv
        except _RejectError as bad:
            f.reject(bad.reason, bad.detail)
            return
        # An empty vendorErrorCode (Wallbox, lbbrhzn/ocpp PR #1925) is "no code".
        f.sink.events.append(
            StatusEvent(
                f.charger,
                connector,
                ts,
                f.recv,
                p["status"],
                error_code=p["errorCode"],
                info=p.get("info", ""),
                vendor_error_code=p.get("vendorErrorCode", ""),
                source=f.source,
            )
        )

    def _meter_values16(self, f: _Frame, p: dict[str, Any]) -> None:
        try:
            connector = self._connector(p["connectorId"], "connectorId")
        except _RejectError as bad:
            f.reject(bad.reason, bad.detail)
            return
        tx_id = str(p["transactionId"]) if "transactionId" in p else ""
        if tx_id and connector:
            f.state.learn_transaction(tx_id, connector, 4 * self.max_pending)
        f.sink.events.extend(
            self._meter_values(f, connector, p["meterValue"], "meterValue", transaction_id=tx_id)
        )

    def _start16(self, f: _Frame, p: dict[str, Any]) -> None:
        try:
            connector = self._connector(p["connectorId"], "connectorId")
            ts = self._ts(p["timestamp"], f.recv)
        except _RejectError as bad:
            f.reject(bad.reason, bad.detail)
            return
        meter, flags = self._register(f, p["meterStart"], "meterStart")
        key: tuple[Side, str] = ("cp", f.frame[1])
        pending = f.state.pending.get(key)
        if pending is not None:
            pending.start = StartInfo(connector, ts, meter, p["idTag"], flags)

    def _register(self, f: _Frame, value: int, what: str) -> tuple[float | None, tuple[str, ...]]:
        """meterStart/meterStop (integer Wh): an impossible one is rejected on its own."""
        if not 0 <= value <= units.FIELD_RANGE[units.ENERGY][1]:
            f.reject("out_of_range", f"$.{what}: {value} Wh is not a possible register value")
            return None, ("meter_rejected",)
        return float(value), ()

    def _stop16(self, f: _Frame, p: dict[str, Any]) -> None:
        try:
            ts = self._ts(p["timestamp"], f.recv)
        except _RejectError as bad:
            f.reject(bad.reason, f"$.timestamp: {bad.detail}")
            return
        tx_id = str(p["transactionId"])
        connector = f.state.tx_connector.pop(tx_id, None)
        flags: tuple[str, ...] = () if connector is not None else ("connector_unknown",)
        meter, meter_flags = self._register(f, p["meterStop"], "meterStop")
        if "transactionData" in p:
            f.sink.events.extend(
                self._meter_values(
                    f,
                    connector,
                    p["transactionData"],
                    "transactionData",
                    transaction_id=tx_id,
                    flags=flags,
                )
            )
        f.sink.events.append(
            TransactionEvent(
                f.charger,
                connector if connector is not None else 0,
                ts,
                f.recv,
                "stop",
                tx_id,
                meter_wh=meter,
                id_tag=p.get("idTag", ""),
                reason=p.get("reason", "Local"),  # 1.6 StopTransaction.req: absent means Local
                source=f.source,
                flags=flags + meter_flags,
            )
        )

    # ----------------------------------------------------------- OCPP 2.0.1

    def _boot201(self, f: _Frame, p: dict[str, Any]) -> None:
        station = p["chargingStation"]
        modem = station.get("modem", {})
        extra = {k: modem[k] for k in ("iccid", "imsi") if modem.get(k)}
        f.sink.events.append(
            BootEvent(
                f.charger,
                f.recv,
                f.recv,
                vendor=station["vendorName"],
                model=station["model"],
                firmware=station.get("firmwareVersion", ""),
                serial=station.get("serialNumber", ""),
                reason=p["reason"],
                extra=extra,
                source=f.source,
            )
        )

    def _status201(self, f: _Frame, p: dict[str, Any]) -> None:
        try:
            # chargewatch's connector of a 2.0.1 station is the EVSE: the unit
            # that has one transaction and one meter (OCPP 2.0.1 device model).
            evse = self._connector(p["evseId"], "evseId")
            ts = self._ts(p["timestamp"], f.recv)
        except _RejectError as bad:
            f.reject(bad.reason, bad.detail)
            return
        raw = p["connectorStatus"]
        state = f.state.evse_state(evse)
        if raw != "Occupied":
            state.finished = False  # unplugged (or out of order): the next plug-in starts afresh
        state.status = raw
        f.sink.events.append(
            StatusEvent(
                f.charger,
                evse,
                ts,
                f.recv,
                _status_of(state),
                # 2.0.1 says why through NotifyEvent (a ProblemEvent); the status
                # itself only says that something is wrong.
                error_code="OtherError" if raw == "Faulted" else "NoError",
                info=f"connectorId {p['connectorId']}",
                raw_status=raw,
                source=f.source,
            )
        )

    def _meter_values201(self, f: _Frame, p: dict[str, Any]) -> None:
        try:
            evse = self._connector(p["evseId"], "evseId")  # 0 = the station's main meter
        except _RejectError as bad:
            f.reject(bad.reason, bad.detail)
            return
        tx = f.state.evse.get(evse)
        tx_id = tx.transaction_id if tx is not None and tx.active else ""
        readings = self._meter_values(f, evse, p["meterValue"], "meterValue", transaction_id="")
        # A MeterValuesRequest is outside any transaction message; only the
        # Transaction.* contexts make it a billing reading (kept with the EVSE's
        # running transaction id, if one is known).
        f.sink.events.extend(
            r if not tx_id else _with_tx(r, tx_id)
            for r in readings
            if r.context in _TX_CONTEXTS or r.signed_data
        )

    def _transaction201(self, f: _Frame, p: dict[str, Any]) -> None:
        try:
            ts = self._ts(p["timestamp"], f.recv)
            evse_id = self._connector(p["evse"]["id"], "evse.id") if "evse" in p else None
        except _RejectError as bad:
            f.reject(bad.reason, bad.detail)
            return
        info = p["transactionInfo"]
        tx_id: str = info["transactionId"]
        state = f.state
        if evse_id is not None:
            state.learn_transaction(tx_id, evse_id, 4 * self.max_pending)
            connector: int | None = evse_id
        else:  # evse is sent only with the first message of a transaction (2.0.1 use case E01)
            connector = state.tx_connector.get(tx_id)
        flags: tuple[str, ...] = () if connector is not None else ("connector_unknown",)
        kind = {"Started": "start", "Updated": "update", "Ended": "stop"}[p["eventType"]]
        charging_state: str = info.get("chargingState", "")
        readings = (
            self._meter_values(
                f, connector, p["meterValue"], "meterValue", transaction_id=tx_id, flags=flags
            )
            if "meterValue" in p
            else []
        )
        want = "Transaction.Begin" if kind == "start" else "Transaction.End"
        meter = next((r.energy_wh for r in readings if r.context == want), None)
        signed = next((r.signed_data for r in readings if r.signed_data), "")
        reason = info.get("stoppedReason", "") if kind == "stop" else ""
        event = TransactionEvent(
            f.charger,
            connector if connector is not None else 0,
            ts,
            f.recv,
            kind,  # type: ignore[arg-type]  # a value of the literal map above
            tx_id,
            meter_wh=meter if kind != "update" else None,
            id_tag=p.get("idToken", {}).get("idToken", ""),
            reason=reason or p["triggerReason"],
            seq_no=p["seqNo"],
            offline=p.get("offline", False),
            charging_state=charging_state,
            signed_data=signed,
            source=f.source,
            flags=flags,
        )
        # Sessions open before their readings and close after them.
        if kind == "stop":
            f.sink.events.extend(readings)
            f.sink.events.append(event)
        else:
            f.sink.events.append(event)
            f.sink.events.extend(readings)
        if connector is None:
            return
        evse = state.evse_state(connector)
        before = _status_of(evse)
        evse.transaction_id = tx_id
        evse.active = kind != "stop"
        evse.finished = kind == "stop"
        if charging_state:
            evse.charging_state = charging_state
        elif kind == "stop":
            evse.charging_state = ""
        after = _status_of(evse)
        if evse.status == "Occupied" and after != before:
            # 2.0.1 reports charging/suspended/finishing only in TransactionEvent;
            # the status the detectors watch (as in 1.6) is derived here.
            f.sink.events.append(
                StatusEvent(
                    f.charger,
                    connector,
                    ts,
                    f.recv,
                    after,
                    info=f"derived from TransactionEvent {p['triggerReason']}",
                    raw_status="Occupied",
                    source=f.source,
                )
            )

    def _notify201(self, f: _Frame, p: dict[str, Any]) -> None:
        for i, ed in enumerate(p["eventData"]):
            try:
                ts = self._ts(ed["timestamp"], f.recv)
                component = ed["component"]
                evse = component.get("evse")
                connector = self._connector(evse["id"], "evse.id") if evse else 0
            except _RejectError as bad:
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


def _status_of(evse: Evse) -> str:
    if evse.status != "Occupied":
        return evse.status
    if not evse.active:
        # Plugged in with no transaction: before one (Preparing) or after one
        # ended while the cable is still in (Finishing).
        return "Finishing" if evse.finished else "Preparing"
    return _OCCUPIED_BY_STATE.get(evse.charging_state, "Preparing")


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


def _with_tx(r: MeterReading, tx_id: str) -> MeterReading:
    return MeterReading(
        r.charger,
        r.connector,
        r.ts,
        r.recv,
        r.energy_wh,
        r.power_w,
        context=r.context,
        transaction_id=tx_id,
        signed_data=r.signed_data,
        source=r.source,
        flags=r.flags,
    )


def _frame_problem(frame: Any) -> str:
    """Why ``frame`` is not an OCPP-J message (OCPP-J RPC framework), or ""."""
    if not isinstance(frame, list):
        return f"a frame is a JSON array, got {type(frame).__name__}"
    if len(frame) < 3:
        return f"a frame has 3 to 5 elements, got {len(frame)}"
    kind = frame[0]
    if type(kind) is not int or kind not in (_CALL, _RESULT, _ERROR):
        return f"message type {kind!r} is not 2 (CALL), 3 (CALLRESULT) or 4 (CALLERROR)"
    msg_id = frame[1]
    if not isinstance(msg_id, str) or not 0 < len(msg_id) <= _MAX_ID:
        return f"message id {msg_id!r} is not a string of 1..{_MAX_ID} characters"
    if kind == _CALL:
        if len(frame) != 4:
            return f"a CALL has 4 elements, got {len(frame)}"
        if not isinstance(frame[2], str) or not frame[2]:
            return f"CALL action {frame[2]!r} is not a string"
        if not isinstance(frame[3], dict):
            return f"CALL payload is {type(frame[3]).__name__}, not an object"
    elif kind == _RESULT:
        if len(frame) != 3:
            return f"a CALLRESULT has 3 elements, got {len(frame)}"
        if not isinstance(frame[2], dict):
            return f"CALLRESULT payload is {type(frame[2]).__name__}, not an object"
    else:
        if len(frame) != 5:
            return f"a CALLERROR has 5 elements, got {len(frame)}"
        if not isinstance(frame[2], str) or not isinstance(frame[3], str):
            return "CALLERROR errorCode and errorDescription must be strings"
        if not isinstance(frame[4], dict):
            return f"CALLERROR details is {type(frame[4]).__name__}, not an object"
    return ""


def _describe(errors: list[SchemaError]) -> str:
    shown = "; ".join(str(e) for e in errors[:3])
    return shown + (f" (+{len(errors) - 3} more)" if len(errors) > 3 else "")


def _number(raw: str) -> float:
    """A 1.6 sampledValue.value: a decimal string (float() alone also takes "1_000")."""
    try:
        if "_" in raw:
            raise ValueError
        return float(raw)
    except ValueError:
        raise _RejectError("bad_number", f"value {raw!r} is not a number") from None


def _text(payload: bytes) -> str:
    return payload[:_MAX_RAW].decode("utf-8", "replace")


def _as_bytes(payload: object) -> bytes:
    if isinstance(payload, bytearray | memoryview):
        return bytes(payload)
    return str(payload).encode("utf-8", "replace")
