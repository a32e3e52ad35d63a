"""The OCPP-J decoder: frames in, through correlation and validation, to the handlers.

The contract (what is rejected, what is emitted) is documented with the
rejection reasons in :mod:`chargewatch.ingest.decode_ocpp`, which re-exports
:class:`OcppDecoder`. This module only routes: topic checks and JSON parsing,
framing (:mod:`.framing`), CALL/answer matching (:mod:`.correlation`), schema
checks (:mod:`.validation`) and the per-version actions (:mod:`.v16`,
:mod:`.v201`).
"""

from __future__ import annotations

__all__ = ["OcppDecoder"]

from collections import Counter
from typing import Final

import orjson

from chargewatch.ingest.ocpp import intervals, meter_intervals, v16, v201
from chargewatch.ingest.ocpp.context import Context, Handler
from chargewatch.ingest.ocpp.correlation import Correlator
from chargewatch.ingest.ocpp.framing import (
    CALL,
    SOURCES,
    VERSIONS,
    Frame,
    as_bytes,
    frame_problem,
    text,
)
from chargewatch.ingest.ocpp.schemas import actions as known_actions
from chargewatch.ingest.ocpp.state import ChargerState, Pending, Side
from chargewatch.ingest.ocpp.validation import validated
from chargewatch.model.decoding import DecodeSink, SinkMark
from chargewatch.model.events import Source
from chargewatch.model.fleet import ConnectorIndex

_HANDLERS: Final[dict[tuple[str, str], Handler]] = {
    **{("1.6", action): h for action, h in v16.HANDLERS.items()},
    **{("2.0.1", action): h for action, h in v201.HANDLERS.items()},
}


class OcppDecoder:
    """Decodes OCPP-J frames of many chargers; holds only per-charger correlation state.

    ``pending_timeout`` (s): how long a CALL waits for its answer (and an early
    answer for its CALL) before it expires; a 1.6 StartTransaction whose answer
    never comes is then emitted with an unknown transaction id. ``max_pending``
    bounds both per charger and direction. ``future_tolerance`` (s): how far
    ahead of receipt a charger's timestamp may be before it is rejected.
    ``max_connector``: highest connector/EVSE id accepted (the fleet's limit).
    ``idle_prune_s`` (s): a charger silent that long (by receive time) is
    forgotten at the next :meth:`expire`, or *parked* with only its open
    transactions when it has some (they outlive any silence: the stop needs
    their connector). ``max_chargers``: at most that many chargers are
    tracked; a new one beyond evicts the one longest silent (counted in
    :attr:`evicted`), so a flood of made-up charger ids costs bounded memory.
    These are read once, at construction.
    """

    def __init__(
        self,
        index: ConnectorIndex,
        *,
        pending_timeout: float = 120.0,
        max_pending: int = 64,
        future_tolerance: float = 86_400.0,
        max_connector: int = 64,
        idle_prune_s: float = 86_400.0,
        max_chargers: int = 200_000,
    ) -> None:
        if pending_timeout <= 0 or max_pending < 1 or future_tolerance < 0 or max_connector < 1:
            raise ValueError("pending_timeout, max_pending, max_connector must be positive")
        if idle_prune_s < pending_timeout or max_chargers < 1:
            raise ValueError("idle_prune_s must be >= pending_timeout, max_chargers positive")
        self.index = index
        self.pending_timeout = pending_timeout
        self.max_pending = max_pending
        self.future_tolerance = future_tolerance
        self.max_connector = max_connector
        self.idle_prune_s = idle_prune_s
        self.max_chargers = max_chargers
        #: Chargers forgotten after ``idle_prune_s`` of silence, parked then
        #: (open transactions kept), and evicted by ``max_chargers``.
        self.pruned = 0
        self.parked = 0
        self.evicted = 0
        #: Accepted deviations from the spec, by name (keys of QUIRKS).
        self.quirks: Counter[str] = Counter()
        #: Valid CALLs of actions that carry no telemetry, by action.
        self.ignored: Counter[str] = Counter()
        #: Intervals learned from the CSMS's settings and the charger's reports, by
        #: kind: heartbeat, sampled, aligned (.intervals, .meter_intervals).
        self.learned: Counter[str] = Counter()
        self._chargers: dict[str, ChargerState] = {}
        #: The OCPP version each charger last spoke (from its topic): remediation
        #: must answer in that dialect on that version's command topic.
        self.versions: dict[str, str] = {}
        self.versions_changed = 0  # bumped on every change, so readers can cache
        self._ctx = Context(
            index,
            self.quirks,
            max_pending=max_pending,
            future_tolerance=future_tolerance,
            max_connector=max_connector,
        )
        self._links = Correlator(
            pending_timeout, max_pending, self._ctx.history, self.quirks, self.learned
        )

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
            payload = as_bytes(payload)
        mark = SinkMark(sink)
        try:
            self._decode(topic, version, charger, source, payload, recv, sink)
        except Exception as exc:  # the ingest loop must survive any bug in here
            mark.rollback(sink)  # the message is rejected whole: none of its rows stay
            detail = f"{type(exc).__name__}: {exc}"
            sink.reject(topic, "internal_error", detail, text(payload), recv)

    def note_command(
        self, charger: str, version: str, message_id: str, action: str, recv: float
    ) -> None:
        """Register a command chargewatch sent, when its ``command`` topic is not decoded.

        The charger's answer (on ``cp``) then yields a :class:`CommandResult`
        (``Timeout`` when none comes within ``pending_timeout``).
        """
        source: Source = "ocpp1.6" if version == "1.6" else "ocpp2.0.1"
        state = self._state(charger, recv, DecodeSink())  # (an eviction's output is lost)
        state.pending[("csms", message_id)] = Pending(action, recv, source, command=True)

    @property
    def tracked(self) -> int:
        """How many chargers' state is held (parked ones included)."""
        return len(self._chargers)

    def expire(self, now: float, sink: DecodeSink) -> None:
        """Expire pending CALLs and early answers of every charger, and prune
        the chargers silent for ``idle_prune_s`` (call every few s).

        Expiry is also done for one charger on each of its frames; this sweep
        covers chargers that went silent.
        """
        for charger, state in self._chargers.items():
            if state.pending or state.early:
                self._links.expire(charger, state, now, sink)
        self._prune(now, sink)

    def _state(self, charger: str, recv: float, sink: DecodeSink) -> ChargerState:
        """The charger's state, moved to the young end (the dict is oldest first)."""
        chargers = self._chargers
        state = chargers.pop(charger, None)
        if state is None:
            state = ChargerState(recv)
            while len(chargers) >= self.max_chargers:
                self._evict(next(iter(chargers)), recv, sink)
        else:
            state.parked = False
            state.last_seen = max(state.last_seen, recv)
        chargers[charger] = state
        return state

    def _prune(self, now: float, sink: DecodeSink) -> None:
        """Forget, or park, the chargers silent since ``now - idle_prune_s``.

        The oldest are at the front, parked ones aside (moved to the back
        without a frame): the walk stops at the first charger heard since.
        """
        limit = now - self.idle_prune_s
        chargers = self._chargers
        kept: list[tuple[str, ChargerState]] = []
        while chargers:
            charger = next(iter(chargers))
            state = chargers[charger]
            if state.last_seen >= limit:
                break
            del chargers[charger]
            self._links.expire(charger, state, now, sink, everything=True)
            if state.open_transactions():
                if not state.parked:
                    state.park()
                    self.parked += 1
                kept.append((charger, state))
            else:
                self._forget(charger)
                self.pruned += 1
        for charger, state in kept:  # to the back: not walked again next sweep
            chargers[charger] = state

    def _evict(self, charger: str, now: float, sink: DecodeSink) -> None:
        """Drop the charger longest silent to make room (``max_chargers``)."""
        state = self._chargers.pop(charger)
        self._links.expire(charger, state, now, sink, everything=True)
        self._forget(charger)
        self.evicted += 1

    def _forget(self, charger: str) -> None:
        if self.versions.pop(charger, None) is not None:
            self.versions_changed += 1

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
        if version not in VERSIONS:
            sink.reject(topic, "unknown_version", f"version {version!r}", text(payload), recv)
            return
        if source not in SOURCES:
            sink.reject(topic, "unknown_source", f"source {source!r}", text(payload), recv)
            return
        try:
            frame = orjson.loads(payload)
        except orjson.JSONDecodeError as exc:
            sink.reject(topic, "malformed_json", str(exc), text(payload), recv)
            return
        problem = frame_problem(frame)
        if problem:
            sink.reject(topic, "not_a_frame", problem, frame, recv)
            return
        if source != "command" and self.versions.get(charger) != version:
            self.versions[charger] = version
            self.versions_changed += 1
        state = self._state(charger, recv, sink)
        self._links.expire(charger, state, recv, sink)
        f = Frame(topic, version, charger, frame, recv, sink, state, hash(payload))
        if frame[0] == CALL:
            self._call(f, source)
        elif source == "command":
            f.reject("unexpected_frame", "only CALLs are published on the command topic")
        else:
            # Answers on csms answer the charger's CALLs, answers on cp the central side's.
            self._links.answer(f, "cp" if source == "csms" else "csms")

    def _call(self, f: Frame, source: str) -> None:
        msg_id: str = f.frame[1]
        action: str = f.frame[2]
        side: Side = "cp" if source == "cp" else "csms"
        key = (side, msg_id)
        seen = f.state.recent.get(key)
        if seen is not None and seen.call == f.digest:
            f.reject("duplicate_call", f"{action} CALL id {msg_id!r} repeated byte for byte")
            return
        if action not in known_actions(f.version):
            f.reject("unknown_action", f"{action!r} is not an OCPP {f.version} action")
            return
        pending = self._links.open(f, key, action, command=source == "command")
        if side == "csms":  # the CSMS or chargewatch: it may set the heartbeat interval
            pending.heartbeat_s = intervals.requested(f.version, action, f.frame[3])
            pending.meter_s = meter_intervals.requested(f.version, action, f.frame[3])
            pending.reads = meter_intervals.reads(f.version, action)
        elif side == "cp":
            handler = _HANDLERS.get((f.version, action))
            if handler is None:
                self.ignored[action] += 1
            else:
                payload = validated(f, action, f.frame[3], self.quirks)
                if payload is not None:
                    handler(self._ctx, f, payload)
        self._links.meet_early(f, key, pending)
