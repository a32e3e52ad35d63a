"""``chargewatch run --clock simulator``: the collector runs on a simulator's clock.

``chargewatch simulate --broker ... --speed N`` publishes meter time N times
faster than wall time and announces that clock (retained, core/clock.py). A
collector on the wall clock would see samples from its future: negative
status ages, rollup windows that never close, offline chargers never timing
out. Following the announcement, every stage reads the same simulated time.
"""

from __future__ import annotations

__all__ = ["FollowedClock"]

import logging
import time
from collections.abc import Callable

from chargewatch.core.clock import CLOCK_TOPIC, Clock, WallClock, from_announcement

log = logging.getLogger(__name__)

# A clock announced a little behind the one it replaces (the simulator anchors
# on a whole second, after building its plan) holds at the old reading until
# it catches up, so time never steps back inside a rule's `for:`. A larger
# step back is a new simulation: followed, with a warning.
_HOLD_LIMIT_S = 120.0


class FollowedClock:
    """The wall clock until a simulator announces its clock, then that clock."""

    def __init__(self) -> None:
        self._clock: Clock = WallClock(time.time)
        self._floor = 0.0

    @property
    def speed(self) -> float:
        return self._clock.speed

    def now(self) -> float:
        return max(self._floor, self._clock.now())

    def handlers(self) -> dict[str, Callable[[bytes], None]]:
        """The MQTT topic this clock listens to (for ``MqttIngest(handlers=...)``)."""
        return {CLOCK_TOPIC: self.on_announcement}

    def on_announcement(self, payload: bytes) -> None:
        try:
            clock = from_announcement(payload, wall_now=time.time(), monotonic=time.monotonic)
        except ValueError as exc:
            log.warning("ignoring %s: %s", CLOCK_TOPIC, exc)
            return
        if clock is None:
            # The simulator ended. Back to the wall clock would be a jump back
            # by everything simulated so far: simulated time keeps running.
            log.info("the simulator withdrew its clock; simulated time keeps running")
            return
        before = self.now()
        back = before - clock.now()
        if back > _HOLD_LIMIT_S:
            log.warning(
                "a simulator's clock is %.0f s behind this collector's: time steps back "
                "(restart the collector with an empty data dir for a clean run)",
                back,
            )
            self._floor = 0.0
        else:
            self._floor = before
        # One attribute assignment: readers in other threads see old or new, whole.
        self._clock = clock
        log.info(
            "following the simulator's clock: %.6g x wall time, now %.3f", clock.speed, clock.now()
        )
