"""The clock the live service runs on: the wall clock, or simulated time.

Pure code is handed ``now``; the edges and the wiring that hand it over read
it from one ``Clock``, so meter time, rules' ``for``, timeouts, rollups and
status ages agree. By default that is the wall clock. Beside a simulator
publishing at ``--speed N`` it is a ``ScaledClock``: simulated time that runs
N times faster than wall time from an anchor both sides share. (Replay has no
clock object: the capture's receive times are its clock.)

Only edges and wiring import this module: it reads ``time``.
"""

from __future__ import annotations

__all__ = [
    "CLOCK_TOPIC",
    "Clock",
    "ScaledClock",
    "WallClock",
    "announcement",
    "from_announcement",
    "scaled_from_wall",
]

import json
import time
from typing import Protocol


class Clock(Protocol):
    """Epoch seconds now, and how many of them pass per wall second."""

    @property
    def speed(self) -> float: ...

    def now(self) -> float: ...


class WallClock:
    speed = 1.0

    def now(self) -> float:
        return time.time()


class ScaledClock:
    """``t0 + speed × (monotonic − m0)``: at monotonic time ``m0`` it reads ``t0``.

    Monotonic, not wall, time drives it, so an NTP step on the host does not
    move simulated time.
    """

    def __init__(self, t0: float, speed: float, m0: float | None = None) -> None:
        if speed <= 0:
            raise ValueError(f"a scaled clock needs a speed > 0, got {speed:g}")
        self.t0 = t0
        self.speed = speed
        self.m0 = time.monotonic() if m0 is None else m0

    def now(self) -> float:
        return self.t0 + self.speed * (time.monotonic() - self.m0)

    def wall_anchor(self) -> float:
        """The wall time (epoch s) at which this clock read ``t0``: for another process."""
        return time.time() - (time.monotonic() - self.m0)

    def seconds_until(self, t: float) -> float:
        """Wall seconds until this clock reads ``t`` (negative: already past)."""
        return (t - self.now()) / self.speed


def scaled_from_wall(t0: float, speed: float, wall0: float) -> ScaledClock:
    """The clock that read ``t0`` at wall time ``wall0`` (as another process announced it)."""
    return ScaledClock(t0, speed, m0=time.monotonic() - (time.time() - wall0))


# A simulator publishing at a speed announces its clock here (retained), and a
# collector run with ``--clock simulator`` follows it. Outside ``ev/`` and
# ``ocpp/``: no charger topic, never dead-lettered by a collector that ignores it.
CLOCK_TOPIC = "chargewatch/simulator/clock"


def announcement(clock: ScaledClock) -> bytes:
    """The retained payload that lets another process run on ``clock``."""
    doc = {"t0": clock.t0, "speed": clock.speed, "wall0": clock.wall_anchor()}
    return json.dumps(doc).encode()


def from_announcement(payload: bytes) -> ScaledClock | None:
    """The announced clock; None for the empty payload that withdraws it.

    Raises ValueError for a payload that is not an announcement.
    """
    if not payload:
        return None
    try:
        doc = json.loads(payload)
        t0, speed, wall0 = (float(doc[k]) for k in ("t0", "speed", "wall0"))
    except (ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"not a clock announcement: {payload[:200]!r} ({exc})") from None
    return scaled_from_wall(t0, speed, wall0)
