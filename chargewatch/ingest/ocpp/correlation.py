"""CALLs matched with their answers, by charger, direction and message id.

The per-charger memory is :mod:`.state`; this is what is done with it. An answer
that overtakes its CALL is held until the CALL comes; a CALL that gets no answer
within ``pending_timeout`` is given up. Only two kinds of CALL care about their
answer: a 1.6 StartTransaction (the CSMS's answer brings the transaction id, so
the start :class:`TransactionEvent` is emitted then, or without an id when none
comes) and chargewatch's own commands (their answer is a :class:`CommandResult`).
Answers that set the heartbeat interval (BootNotification, an accepted
ChangeConfiguration/SetVariables of it) also emit it (:mod:`.intervals`), and
answers that set or report the meter-value intervals emit those
(:mod:`.meter_intervals`).
"""

from __future__ import annotations

__all__ = ["Correlator"]

import math
from collections import Counter

from chargewatch.ingest.ocpp import intervals, meter_intervals
from chargewatch.ingest.ocpp.framing import ERROR, RESULT, Frame
from chargewatch.ingest.ocpp.schemas import schemas
from chargewatch.ingest.ocpp.state import ChargerState, Early, Pending, Side, StartInfo
from chargewatch.ingest.ocpp.validation import describe
from chargewatch.model.decoding import DecodeSink
from chargewatch.model.events import CommandResult, TransactionEvent


class Correlator:
    """Bounds and expiry of the pending CALLs and early answers of every charger."""

    __slots__ = ("history", "learned", "max_pending", "pending_timeout", "quirks")

    def __init__(
        self,
        pending_timeout: float,
        max_pending: int,
        history: int,
        quirks: Counter[str],
        learned: Counter[str] | None = None,
    ) -> None:
        self.pending_timeout = pending_timeout
        self.max_pending = max_pending
        self.history = history  # message and transaction ids remembered per charger
        self.quirks = quirks  # the decoder's: an answer may carry one (.intervals)
        self.learned = Counter[str]() if learned is None else learned  # intervals, by kind

    def open(self, f: Frame, key: tuple[Side, str], action: str, *, command: bool) -> Pending:
        """Register a CALL as waiting for its answer."""
        state = f.state
        old = state.pending.pop(key, None)
        if old is not None:  # the id was reused by a new connection: the old CALL is lost
            _give_up(f.charger, old, key[1], f.recv, f.sink)
        pending = Pending(action, f.recv, f.source, command=command)
        state.pending[key] = pending
        state.remember(key, f.digest, self.history)
        while len(state.pending) > self.max_pending:
            # Unanswered CALLs pile up when the bridge forwards one direction
            # only; the oldest is given up as if it had timed out.
            old_key = next(iter(state.pending))
            _give_up(f.charger, state.pending.pop(old_key), old_key[1], f.recv, f.sink)
        return pending

    def meet_early(self, f: Frame, key: tuple[Side, str], pending: Pending) -> None:
        """Resolve a CALL just decoded with its answer if that came first."""
        state = f.state
        early = state.early.pop(key, None)
        if early is None:
            return
        state.pending.pop(key, None)
        state.recent[key].answer = early.digest
        answer = Frame(early.topic, f.version, f.charger, early.frame, early.recv, f.sink, state)
        self.resolve(answer, pending)

    def answer(self, f: Frame, side: Side) -> None:
        """A CALLRESULT/CALLERROR answering a CALL sent by ``side``."""
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
            self._hold(f, key)
            return
        if seen is not None:
            seen.answer = f.digest
        self.resolve(f, pending)

    def _hold(self, f: Frame, key: tuple[Side, str]) -> None:
        # The answer may have overtaken its CALL (different topics): hold it.
        early = f.state.early
        early[key] = Early(f.topic, f.frame, f.recv, f.digest)
        while len(early) > self.max_pending:
            old = early.pop(next(iter(early)))
            f.sink.reject(
                old.topic, "orphan_result", "too many unmatched answers", old.frame, old.recv
            )

    def resolve(self, f: Frame, pending: Pending) -> None:
        """An answer met its CALL."""
        intervals.on_answer(f, pending, self.quirks, self.learned)
        meter_intervals.on_answer(f, pending, self.learned)
        if pending.command:
            _command_result(f, pending)
            return
        start = pending.start
        if start is None:
            return
        frame = f.frame
        if frame[0] == ERROR:
            _emit_start(f, start, pending.recv, "", ("transaction_id_unknown", "call_error"))
            return
        schema = schemas(f.version).response(pending.action)
        errors = schemas(f.version).errors(schema, frame[2]) if schema is not None else []
        if errors:
            f.reject("schema_violation", describe(errors))
            _emit_start(f, start, pending.recv, "", ("transaction_id_unknown",))
            return
        tx_id = str(frame[2]["transactionId"])
        status = frame[2]["idTagInfo"]["status"]
        flags = () if status == "Accepted" else (f"id_tag_{status.lower()}",)
        f.state.learn_transaction(tx_id, start.connector, self.history)
        _emit_start(f, start, pending.recv, tx_id, flags)

    def expire(
        self,
        charger: str,
        state: ChargerState,
        now: float,
        sink: DecodeSink,
        *,
        everything: bool = False,
    ) -> None:
        """Give up CALLs and reject early answers older than ``pending_timeout``
        (``everything``: all of them, the charger's state is about to go)."""
        limit = math.inf if everything else now - self.pending_timeout
        pending = state.pending
        while pending:
            key = next(iter(pending))
            if pending[key].recv >= limit:
                break
            _give_up(charger, pending.pop(key), key[1], now, sink)
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


def _command_result(f: Frame, pending: Pending) -> None:
    frame = f.frame
    if frame[0] == RESULT:
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


def _emit_start(
    f: Frame, start: StartInfo, recv: float, tx_id: str, flags: tuple[str, ...]
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


def _give_up(charger: str, pending: Pending, msg_id: str, now: float, sink: DecodeSink) -> None:
    """A CALL that will get no answer: what it was waiting for is emitted without it."""
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
