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
"""

from __future__ import annotations

__all__ = ["Coalesced"]

from chargewatch.collector.batch import MeterBatch
from chargewatch.collector.events import Event
from chargewatch.collector.pipeline import Stage


class Coalesced:
    """A :class:`Stage` that forwards to ``inner`` at most once per ``interval_s``
    of the pipeline's clock, or as soon as ``max_rows`` samples are waiting."""

    def __init__(self, inner: Stage, interval_s: float, max_rows: int = 250_000) -> None:
        self.inner = inner
        self.interval_s = interval_s
        self.max_rows = max_rows
        self._batches: list[MeterBatch] = []
        self._events: list[Event] = []
        self._rows = 0
        self._last: float | None = None
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
        if self._last is None or self._rows >= self.max_rows or now - self._last >= self.interval_s:
            self.flush(now)

    def flush(self, now: float | None = None) -> None:
        """Hand everything waiting to the inner stage (at ``now``, default the last clock)."""
        at = self._now if now is None else max(now, self._now)
        self._last = at
        if not self._batches and not self._events:
            return
        batch = MeterBatch.concat(self._batches)
        events = self._events
        self._batches, self._events, self._rows = [], [], 0
        self.inner.on_batch(batch, events, at)

    def tick(self, now: float) -> None:
        self.flush(now)
        self.inner.tick(now)
