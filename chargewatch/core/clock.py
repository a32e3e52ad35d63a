"""The clock the live service runs on: the wall clock, or simulated time.

Pure code is handed ``now``; the edges and the wiring that hand it over read
it from one ``Clock``, so meter time, rules' ``for``, timeouts, rollups and
status ages agree. By default that is the wall clock. Beside a simulator
publishing at ``--speed N`` it is a ``ScaledClock``: simulated time that runs
N times faster than wall time from an anchor both sides share. (Replay has no
clock object: the capture's receive times are its clock.)

Like all of ``core`` this module never reads the time itself: whoever builds
a clock hands it the time source (``time.time``, ``time.monotonic``).
"""

from __future__ import annotations

__all__ = [
    "CLOCK_TOPIC",
    "Clock",
    "ScaledClock",
    "TimeSource",
    "WallClock",
    "announcement",
    "from_announcement",
]

import json
from collections.abc import Callable
from typing import Protocol

TimeSource = Callable[[], float]


class Clock(Protocol):
    """Epoch seconds now, and how many of them pass per wall second."""

    @property
    def speed(self) -> float: ...

    def now(self) -> float: ...


class WallClock:
    """The wall clock: ``source`` is ``time.time``."""

    speed = 1.0

    def __init__(self, source: TimeSource) -> None:
        self._source = source

    def now(self) -> float:
        return self._source()


class ScaledClock:
    """``t0 + speed × (monotonic() − m0)``: at monotonic time ``m0`` it reads ``t0``.

    Monotonic, not wall, time drives it (``monotonic`` is ``time.monotonic``),
    so an NTP step on the host does not move simulated time. ``m0`` defaults
    to the monotonic time now.
    """

    def __init__(
        self, t0: float, speed: float, *, monotonic: TimeSource, m0: float | None = None
    ) -> None:
        if speed <= 0:
            raise ValueError(f"a scaled clock needs a speed > 0, got {speed:g}")
        self.t0 = t0
        self.speed = speed
        self._monotonic = monotonic
        self.m0 = monotonic() if m0 is None else m0

    def now(self) -> float:
        return self.t0 + self.speed * (self._monotonic() - self.m0)

    def seconds_until(self, t: float) -> float:
        """Wall seconds until this clock reads ``t`` (negative: already past)."""
        return (t - self.now()) / self.speed


# A simulator publishing at a speed announces its clock here (retained), and a
# collector run with ``--clock simulator`` follows it. Outside ``ev/`` and
# ``ocpp/``: no charger topic, never dead-lettered by a collector that ignores it.
CLOCK_TOPIC = "chargewatch/simulator/clock"


def announcement(clock: ScaledClock, wall_now: float) -> bytes:
    """The retained payload that lets another process run on ``clock``.

    Processes share wall time, not monotonic time: the anchor travels as the
    wall time (``wall_now`` is ``time.time()``) at which the clock read ``t0``.
    """
    wall0 = wall_now - (clock.now() - clock.t0) / clock.speed
    return json.dumps({"t0": clock.t0, "speed": clock.speed, "wall0": wall0}).encode()


def from_announcement(
    payload: bytes, *, wall_now: float, monotonic: TimeSource
) -> ScaledClock | None:
    """The announced clock; None for the empty payload that withdraws it.

    ``wall_now`` is ``time.time()``, ``monotonic`` is ``time.monotonic``.
    Raises ValueError for a payload that is not an announcement.
    """
    if not payload:
        return None
    try:
        doc = json.loads(payload)
        t0, speed, wall0 = (float(doc[k]) for k in ("t0", "speed", "wall0"))
    except (ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"not a clock announcement: {payload[:200]!r} ({exc})") from None
    return ScaledClock(t0, speed, monotonic=monotonic, m0=monotonic() - (wall_now - wall0))
