"""Running a stage on accumulated batches instead of on every batch.

The collector takes whatever the broker has delivered (often a few hundred
single-sample messages), and a stage's cost has a part per call and per
connector touched, not only per sample: at 1,000 chargers and 1,000-message
batches every call touches every connector once. Handing such a stage the
batches of the last fraction of a second at once, concatenated, costs the same
per sample as one large batch. The stages wrapped here give the same result
however the stream is cut (their tests check it), so only *when* they see the
data changes, by at most ``interval_s``; anything that reads their results at
a given moment (the rules reading detector signals) calls :meth:`flush` first.

The interval also stretches with the stage's own cost: after a flush that took
d seconds of CPU the next waits at least ``LOAD_FACTOR`` x d (up to
``MAX_WAIT_S``), so a stage whose cost is per connector (the session engine at
100,000 connectors) takes a bounded share of the pipeline thread and answers
a little later, instead of falling behind the input.
"""

from __future__ import annotations

__all__ = ["LOAD_FACTOR", "MAX_WAIT_S", "Coalesced", "Pacer"]

import time
from collections.abc import Callable

from chargewatch.collector.pipeline import Stage
from chargewatch.model.batch import MeterBatch
from chargewatch.model.events import Event

LOAD_FACTOR = 5.0  # a paced stage uses at most ~1/5 of the thread
MAX_WAIT_S = 10.0


class Pacer:
    """When a coalesced stage is due: every ``interval_s`` of the pipeline clock,
    stretched to ``LOAD_FACTOR`` times its last run's CPU time, at most
    ``MAX_WAIT_S``; or at once when ``max_rows`` are waiting."""

    def __init__(self, interval_s: float, max_rows: int) -> None:
        self.interval_s = interval_s
        self.max_rows = max_rows
        self.last: float | None = None
        self.wait_s = interval_s

    def due(self, now: float, rows: int) -> bool:
        return self.last is None or rows >= self.max_rows or now - self.last >= self.wait_s

    def run(self, now: float, step: Callable[[], object]) -> None:
        """Run ``step()`` and note its cost."""
        self.last = now
        t = time.process_time()
        step()
        cost = time.process_time() - t
        self.wait_s = max(self.interval_s, min(MAX_WAIT_S, LOAD_FACTOR * cost))


class Coalesced:
    """A :class:`Stage` that forwards to ``inner`` at most once per ``interval_s``
    of the pipeline's clock, or as soon as ``max_rows`` samples are waiting."""

    def __init__(self, inner: Stage, interval_s: float, max_rows: int = 250_000) -> None:
        self.inner = inner
        self.pacer = Pacer(interval_s, max_rows)
        self._batches: list[MeterBatch] = []
        self._events: list[Event] = []
        self._rows = 0
        self._now = 0.0

    @property
    def pending_rows(self) -> int:
        return self._rows

    def on_batch(self, batch: MeterBatch, events: list[Event], now: float) -> None:
        if len(batch):
            self._batches.append(batch)
            self._rows += len(batch)
        self._events.extend(events)
        self._now = now
        if self.pacer.due(now, self._rows):
            self.flush(now)

    def flush(self, now: float | None = None) -> None:
        """Hand everything waiting to the inner stage (at ``now``, default the last clock)."""
        at = self._now if now is None else max(now, self._now)
        if not self._batches and not self._events:
            self.pacer.last = at
            return
        batch = MeterBatch.concat(self._batches)
        events = self._events
        self._batches, self._events, self._rows = [], [], 0
        self.pacer.run(at, lambda: self.inner.on_batch(batch, events, at))

    def tick(self, now: float) -> None:
        self.flush(now)
        self.inner.tick(now)
