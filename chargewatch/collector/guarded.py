"""A stage whose state other threads read: the pipeline runs it under a lock.

The fleet state is written by the pipeline thread and read by the HTTP thread
(``/api/v1/fleet``) and the demo's table. Reading it while a batch grows its
arrays gave inconsistent lengths (IndexError, HTTP 500) and a reader that grew
the arrays itself could lose the pipeline's writes. One lock per batch, not per
sample, so the pipeline does not notice it.
"""

from __future__ import annotations

__all__ = ["GuardedStage"]

import threading

from chargewatch.collector.pipeline import Stage
from chargewatch.model.batch import MeterBatch
from chargewatch.model.events import Event


class GuardedStage:
    """Runs ``stage`` under ``lock``; readers on other threads take the same lock."""

    def __init__(self, stage: Stage, lock: threading.Lock) -> None:
        self.stage = stage
        self.lock = lock

    def on_batch(self, batch: MeterBatch, events: list[Event], now: float) -> None:
        with self.lock:
            self.stage.on_batch(batch, events, now)

    def tick(self, now: float) -> None:
        with self.lock:
            self.stage.tick(now)
