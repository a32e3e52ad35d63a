"""Wiring of the session engine into the pipeline: batches in, ledger rows out.

The engine is pure (``SessionEngine.update(batch, events, now)``); this stage
writes what it returns to the ledger, hands records to listeners (InfluxDB
``session`` points, the replay's ``sessions.jsonl``), and checkpoints the
engine's open sessions so a restart resumes them.

Wiring (service and replay)::

    ledger = Ledger(path)
    stage = SessionStage(SessionEngine(index), ledger=ledger)
    stage.resume()                      # open sessions from the last checkpoint
    pipeline = Pipeline(index, stages=[..., stage])
    ...
    stage.close(now)                    # final checkpoint
"""

from __future__ import annotations

__all__ = ["SessionStage", "SessionsJsonl", "as_rejections", "merge_states", "split_state"]

import json
import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import orjson
from numpy.typing import NDArray

from chargewatch.collector.coalesce import Pacer
from chargewatch.core.gcpause import gc_paused
from chargewatch.model.batch import MeterBatch
from chargewatch.model.decoding import Rejection
from chargewatch.model.events import (
    Event,
    MeterReading,
    SignedReading,
    StatusEvent,
    TransactionEvent,
)
from chargewatch.sessions.outputs import jsonl_line
from chargewatch.sessions.session_engine import Rejected, SessionEngine, SessionRecord
from chargewatch.storage.ledger import Ledger

log = logging.getLogger(__name__)

RecordListener = Callable[[list[SessionRecord]], None]

_JOURNALED: dict[str, type[TransactionEvent | StatusEvent | MeterReading]] = {
    c.__name__: c for c in (TransactionEvent, StatusEvent, MeterReading)
}


def _journaled(e: Event) -> bool:
    """Events the session engine keeps state from (periodic readings come as samples)."""
    if isinstance(e, MeterReading):
        return e.context in ("Transaction.Begin", "Transaction.End")
    return isinstance(e, TransactionEvent | StatusEvent)


def _encode(e: Event) -> tuple[str, str]:
    # orjson writes the dataclass in C: 1 us an event against 13.5 for
    # json.dumps(asdict(...)), which copies every field first. The decoders
    # hand on finite times and values only, so no NaN is lost to JSON null.
    return type(e).__name__, orjson.dumps(e).decode()


def _decode(kind: str, text: str) -> TransactionEvent | StatusEvent | MeterReading:
    fields = json.loads(text)
    if "flags" in fields:
        fields["flags"] = tuple(fields["flags"])  # JSON has lists; the events hold tuples
    if fields.get("signed") is not None:  # the decoded signed reading, as a dataclass again
        fields["signed"] = SignedReading(**fields["signed"])
    return _JOURNALED[kind](**fields)


class SessionStage:
    """A pipeline :class:`~chargewatch.collector.pipeline.Stage` around the session engine."""

    def __init__(
        self,
        engine: SessionEngine,
        *,
        ledger: Ledger | None = None,
        listeners: Sequence[RecordListener] = (),
        checkpoint_every_s: float = 60.0,
        flush_interval_s: float = 0.0,
    ) -> None:
        self.engine = engine
        self.ledger = ledger
        self.listeners = list(listeners)
        self.checkpoint_every_s = checkpoint_every_s
        # Batches wait up to this long (pipeline clock) and go to the engine
        # together: its cost is largely per open session touched per call
        # (see collector/coalesce.py). Their session events are journaled at
        # once, so waiting changes nothing a crash could lose.
        self.flush_interval_s = flush_interval_s
        self._pacer = Pacer(flush_interval_s, 250_000)
        self._held: list[MeterBatch] = []
        self._held_events: list[Event] = []
        self._held_rows = 0
        self._last_checkpoint: float | None = None
        self.records_written = 0
        self.rejected: list[Rejected] = []  # drained by the caller (rejected.jsonl)

    def resume(self, *, owns: Callable[[str], bool] | None = None, now: float = 0.0) -> bool:
        """Restore open sessions from the ledger's checkpoint and replay the journal
        of session events written since; True if there was any.

        With ``owns`` (a collector that owns part of the fleet, docs/scaling.md),
        the ledger is shared: this collector first claims its id (a second process
        with the same id fails), takes over the sessions of chargers it owns from
        stopped collectors and from the handover table, and after replaying hands
        over the sessions of chargers it no longer owns.
        """
        if self.ledger is None:
            return False
        taken = 0
        if owns is not None:
            self.ledger.claim()
            taken = self.ledger.adopt(owns, lambda st: split_state(st, owns), merge_states)
            if taken:
                log.info("took over session state from %d other collector checkpoints", taken)
        resumed = self._resume()
        if owns is not None:
            kept, given = split_state(self.engine.snapshot(), owns)
            if given is not None:
                kept = kept if kept is not None else dict(_EMPTY_STATE)
                self.ledger.release(kept, given, at=now)
                self.engine.restore(kept)
                log.warning(
                    "handed over the sessions of %d chargers this collector no longer owns",
                    len({s["charger"] for s in given["sessions"]} | set(given["tx_chargers"])),
                )
        return resumed or bool(taken)

    def take_over(self, owns: Callable[[str], bool], now: float) -> int:
        """Mid-run (dynamic partitions): take the sessions of chargers that ``owns``
        now adds, from stopped collectors' checkpoints and journals and from the
        handover table. This collector's own state is checkpointed first, so that
        the merged checkpoint the ledger keeps is what the engine then restores."""
        assert self.ledger is not None
        self.close(now)
        taken = self.ledger.adopt(owns, lambda st: split_state(st, owns), merge_states)
        if taken:
            self._resume()
        return taken

    def give_back(self, owns: Callable[[str], bool], now: float) -> int:
        """Mid-run: hand the sessions of chargers ``owns`` no longer includes over
        (checkpoint and handover in one transaction); how many chargers."""
        assert self.ledger is not None
        self._flush(now)
        kept, given = split_state(self.engine.snapshot(), owns)
        if given is None:
            return 0
        kept = kept if kept is not None else dict(_EMPTY_STATE)
        self.ledger.release(kept, given, at=now)
        self.engine.restore(kept)
        self._last_checkpoint = now
        return len({x["charger"] for x in given["sessions"]} | set(given["tx_chargers"]))

    def _resume(self) -> bool:
        assert self.ledger is not None
        state = self.ledger.load_state()
        if state is not None:
            self.engine.restore(state)
        events: list[Event] = [_decode(kind, text) for kind, text in self.ledger.journal()]
        if events:
            # Records this produces again were written before the crash: the
            # ledger and the CDR issuer are idempotent. The forced checkpoint
            # absorbs the journal.
            self._step(MeterBatch.empty(), events, max(e.recv for e in events), force=True)
            log.info("replayed %d session events from the journal", len(events))
        return state is not None or bool(events)

    def on_batch(self, batch: MeterBatch, events: list[Event], now: float) -> None:
        if self.flush_interval_s > 0:
            self._hold(batch, events, now)
            return
        checkpointed = self._step(batch, events, now)
        # The collector acknowledges the batch to the broker once every stage has
        # run, and the broker then forgets it: an event that opens, closes or
        # anchors a session must be on disk by then, or a crash before the next
        # (periodic) checkpoint loses the session (its stop rejected as
        # stop_without_session). Journaling the events is proportional to them;
        # a full checkpoint per batch costs ~0.1 ms per open session. Meter
        # samples are not journaled: losing those since the checkpoint only
        # leaves a hole in the power track, which is bridged.
        journal = [_encode(e) for e in events if _journaled(e)]
        if journal and not checkpointed and self.ledger is not None:
            self.ledger.journal_append(journal)

    def _hold(self, batch: MeterBatch, events: list[Event], now: float) -> None:
        journal = [_encode(e) for e in events if _journaled(e)]
        if journal and self.ledger is not None:
            self.ledger.journal_append(journal)
        if len(batch):
            self._held.append(batch)
            self._held_rows += len(batch)
        self._held_events.extend(events)
        if self._pacer.due(now, self._held_rows):
            self._flush(now)

    def _flush(self, now: float) -> None:
        """Run the engine on everything held (a checkpoint then covers the journal)."""
        if self._held or self._held_events:
            batch, events = MeterBatch.concat(self._held), self._held_events
            self._held, self._held_events, self._held_rows = [], [], 0
            self._pacer.run(now, lambda: self._step(batch, events, now))
        else:
            self._pacer.last = now

    def signals(self, now: float) -> dict[str, NDArray[Any]]:
        """The session columns of the alert frame (alerting.signals), per connector:
        ``session_active`` (a session is open) and ``session_energy_wh`` (its
        register energy so far; NaN until the register has grown over two
        readings, or when the charger reports no register), ``charging_minutes``
        and ``idle_minutes`` (its power track so far above and at or below the
        charging threshold; 0 for connectors without a session).

        What the engine holds: with ``flush_interval_s`` the batches waiting for
        it are not counted yet, so the energy lags by at most that interval.
        """
        index = self.engine.index
        n = len(index)
        active = np.zeros(n, np.bool_)
        energy = np.full(n, np.nan)
        charging = np.zeros(n)
        idle = np.zeros(n)
        for s in self.engine.open_sessions():
            c = index.get(s["charger_id"], s["connector_id"])
            if c is None or c >= n:
                continue
            active[c] = True
            if s["energy_wh"] is not None:
                energy[c] = s["energy_wh"]
            charging[c] = s["charging_s"] / 60.0
            idle[c] = s["idle_s"] / 60.0
        return {
            "session_active": active,
            "session_energy_wh": energy,
            "charging_minutes": charging,
            "idle_minutes": idle,
        }

    def tick(self, now: float) -> None:
        # Timeouts (Available grace, stale sessions) advance with time alone.
        self._flush(now)
        self._step(MeterBatch.empty(), [], now)

    def close(self, now: float) -> None:
        self._flush(now)
        self._checkpoint(now, force=True)

    def _step(
        self, batch: MeterBatch, events: list[Event], now: float, *, force: bool = False
    ) -> bool:
        """One engine step; True if it wrote a checkpoint."""
        records = self.engine.update(batch, events, now)
        self.rejected += self.engine.drain_rejected()
        if records:
            if self.ledger is not None:
                self.records_written += self.ledger.write(records, written_at=now)
            for listener in self.listeners:
                try:
                    listener(records)
                except Exception:  # a broken listener must not stop billing
                    log.exception("session listener %r failed", listener)
        return self._checkpoint(now, force=force or bool(records))

    def _checkpoint(self, now: float, *, force: bool) -> bool:
        if self.ledger is None:
            return False
        due = (
            self._last_checkpoint is None or now - self._last_checkpoint >= self.checkpoint_every_s
        )
        if force or due:
            # The snapshot is one container per session field (~1M at 100k
            # sessions), alive until encoded: collections in between rescan the
            # whole heap for nothing (3.3 s instead of 0.7 at 100k sessions).
            with gc_paused():
                self.ledger.save_state(self.engine.snapshot(), at=now, clear_journal=True)
            self._last_checkpoint = now
            return True
        return False


_EMPTY_STATE: dict[str, Any] = {
    "version": 1, "sessions": [], "open": [],
    "tx_chargers": [], "status_chargers": [], "status": [],
}  # fmt: skip


def split_state(
    state: dict[str, Any], owns: Callable[[str], bool]
) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """Cut a ``SessionEngine.snapshot()`` by charger: (the owned chargers' part,
    the rest), each None when empty. Every piece of the snapshot names its charger,
    so a part is a valid snapshot of its own."""

    def part(keep: Callable[[str], bool]) -> dict[str, Any] | None:
        sessions = [x for x in state.get("sessions", []) if keep(x["charger"])]
        sids = {x["sid"] for x in sessions}
        out = {
            "version": state.get("version", 1),
            "sessions": sessions,
            "open": [sid for sid in state.get("open", []) if sid in sids],
            "tx_chargers": [c for c in state.get("tx_chargers", []) if keep(c)],
            "status_chargers": [c for c in state.get("status_chargers", []) if keep(c)],
            "status": [x for x in state.get("status", []) if keep(x[0])],
        }
        # Stops waiting for their start move with their charger (written only
        # when there are any, as the engine does).
        waiting = [x for x in state.get("waiting_stops", []) if keep(x["charger"])]
        if waiting:
            out["waiting_stops"] = waiting
        clocks = [x for x in state.get("clock_offsets", []) if keep(x[0])]
        if clocks:
            out["clock_offsets"] = clocks
        held = [x for x in state.get("clock_held", []) if keep(x["charger"])]
        if held:
            out["clock_held"] = held
        # Clocks in doubt and the sessions waiting on them, each [charger, ...].
        doubt = {}
        for key in ("clock_candidates", "clock_doubt"):
            doubt[key] = [x for x in state.get(key, []) if keep(x[0])]
            if doubt[key]:
                out[key] = doubt[key]
        kept = (
            sessions, out["tx_chargers"], out["status_chargers"], out["status"], waiting, clocks,
            held, doubt["clock_candidates"],
        )  # fmt: skip
        return out if any(kept) else None

    return part(owns), part(lambda c: not owns(c))


def merge_states(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    """Join two snapshots of disjoint chargers (see :func:`split_state`)."""
    return {
        "version": a.get("version", 1),
        "sessions": [*a.get("sessions", []), *b.get("sessions", [])],
        "open": sorted({*a.get("open", []), *b.get("open", [])}),
        "tx_chargers": sorted({*a.get("tx_chargers", []), *b.get("tx_chargers", [])}),
        "status_chargers": sorted({*a.get("status_chargers", []), *b.get("status_chargers", [])}),
        "status": [*a.get("status", []), *b.get("status", [])],
    } | _waiting_of(a, b)


def _waiting_of(*states: dict[str, Any]) -> dict[str, Any]:
    # The optional parts, each only when there is something in it.
    out: dict[str, Any] = {}
    for key in ("waiting_stops", "clock_offsets", "clock_held", "clock_candidates", "clock_doubt"):
        got = [x for st in states for x in st.get(key, [])]
        if got:
            out[key] = got
    return out


def as_rejections(rejected: Sequence[Rejected]) -> list[Rejection]:
    """The engine's refusals as dead-letter records (``rejected.jsonl``)."""
    return [
        Rejection(
            f"sessions/{r.charger}/{r.connector}",
            r.reason,
            r.detail,
            {"charger": r.charger, "connector": r.connector, "ts": r.ts},
            r.ts,
        )
        for r in rejected
    ]


class SessionsJsonl:
    """Collects records and writes ``sessions.jsonl``: one line per session, latest revision.

    Lines are ordered by start, then session id, so two replays of one capture
    give byte-identical files.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.latest: dict[str, SessionRecord] = {}

    def __call__(self, records: list[SessionRecord]) -> None:
        for r in records:
            old = self.latest.get(r.session_id)
            if old is None or r.revision >= old.revision:
                self.latest[r.session_id] = r

    def write(self) -> int:
        rows = sorted(self.latest.values(), key=lambda r: (r.start, r.session_id))
        with self.path.open("w", encoding="utf-8") as fh:
            for r in rows:
                fh.write(jsonl_line(r) + "\n")
        return len(rows)
