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

__all__ = ["SessionStage", "SessionsJsonl", "as_rejections"]

import logging
from collections.abc import Callable, Sequence
from pathlib import Path

from chargewatch.billing.session_outputs import jsonl_line
from chargewatch.billing.sessions import Rejected, SessionEngine, SessionRecord
from chargewatch.collector.batch import MeterBatch
from chargewatch.collector.decoding import Rejection
from chargewatch.collector.events import Event, MeterReading, StatusEvent, TransactionEvent
from chargewatch.collector.ledger import Ledger

log = logging.getLogger(__name__)

RecordListener = Callable[[list[SessionRecord]], None]

# Inputs the session engine keeps state from that a restart cannot re-derive.
_SESSION_EVENTS = (TransactionEvent, StatusEvent, MeterReading)


class SessionStage:
    """A pipeline :class:`~chargewatch.collector.pipeline.Stage` around the session engine."""

    def __init__(
        self,
        engine: SessionEngine,
        *,
        ledger: Ledger | None = None,
        listeners: Sequence[RecordListener] = (),
        checkpoint_every_s: float = 60.0,
    ) -> None:
        self.engine = engine
        self.ledger = ledger
        self.listeners = list(listeners)
        self.checkpoint_every_s = checkpoint_every_s
        self._last_checkpoint: float | None = None
        self.records_written = 0
        self.rejected: list[Rejected] = []  # drained by the caller (rejected.jsonl)

    def resume(self) -> bool:
        """Restore open sessions from the ledger's checkpoint; True if there was one."""
        if self.ledger is None:
            return False
        state = self.ledger.load_state()
        if state is None:
            return False
        self.engine.restore(state)
        return True

    def on_batch(self, batch: MeterBatch, events: list[Event], now: float) -> None:
        # The collector acknowledges a batch to the broker once every stage has
        # run, so an event that opens, closes or anchors a session must be in the
        # checkpoint by then: after a crash the broker does not redeliver it, and
        # a session opened since the last periodic checkpoint would be lost (its
        # stop rejected as stop_without_session). Events are rare next to meter
        # samples, whose loss between checkpoints only thins the power track.
        durable = any(isinstance(e, _SESSION_EVENTS) for e in events)
        self._step(batch, events, now, force=durable)

    def tick(self, now: float) -> None:
        # Timeouts (Available grace, stale sessions) advance with time alone.
        self._step(MeterBatch.empty(), [], now)

    def close(self, now: float) -> None:
        self._checkpoint(now, force=True)

    def _step(
        self, batch: MeterBatch, events: list[Event], now: float, *, force: bool = False
    ) -> None:
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
        self._checkpoint(now, force=force or bool(records))

    def _checkpoint(self, now: float, *, force: bool) -> None:
        if self.ledger is None:
            return
        due = (
            self._last_checkpoint is None or now - self._last_checkpoint >= self.checkpoint_every_s
        )
        if force or due:
            self.ledger.save_state(self.engine.snapshot(), at=now)
            self._last_checkpoint = now


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
