"""The service's clock: wall, scaled (simulated time), and following a simulator's."""

from __future__ import annotations

import json

import pytest

from chargewatch.collector import sim_clock
from chargewatch.collector.sim_clock import FollowedClock
from chargewatch.core.clock import ScaledClock, WallClock, announcement, from_announcement


class FakeTime:
    """Wall and monotonic time that move only when told."""

    def __init__(self, wall: float = 1_800_000_000.0, mono: float = 5_000.0) -> None:
        self.wall, self.mono = wall, mono

    def advance(self, s: float) -> None:
        self.wall += s
        self.mono += s

    def time(self) -> float:
        return self.wall

    def monotonic(self) -> float:
        return self.mono

    def scaled(self, t0: float, speed: float) -> ScaledClock:
        return ScaledClock(t0, speed, monotonic=self.monotonic)

    def parse(self, payload: bytes) -> ScaledClock | None:
        return from_announcement(payload, wall_now=self.wall, monotonic=self.monotonic)


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> FakeTime:
    """Also the time the collector's FollowedClock reads."""
    t = FakeTime()
    monkeypatch.setattr(sim_clock.time, "time", t.time)
    monkeypatch.setattr(sim_clock.time, "monotonic", t.monotonic)
    return t


def test_scaled_clock_runs_speed_times_faster_from_its_anchor(fake: FakeTime) -> None:
    c = fake.scaled(1_000.0, 60.0)
    assert c.now() == 1_000.0
    fake.advance(2.0)
    assert c.now() == 1_120.0
    assert c.seconds_until(1_180.0) == pytest.approx(1.0)
    assert WallClock(fake.time).now() == fake.wall
    with pytest.raises(ValueError, match="speed > 0"):
        fake.scaled(0.0, 0.0)


def test_an_announced_clock_reads_the_same_in_another_process(fake: FakeTime) -> None:
    c = fake.scaled(1_000.0, 10.0)
    fake.advance(3.0)
    payload = announcement(c, fake.wall)
    assert json.loads(payload) == {"t0": 1_000.0, "speed": 10.0, "wall0": fake.wall - 3.0}
    # The other process has its own monotonic origin; only wall time is shared.
    fake.mono += 12_345.0
    other = fake.parse(payload)
    assert other is not None and other.now() == pytest.approx(1_030.0)
    fake.advance(1.0)
    assert other.now() == pytest.approx(1_040.0)


def test_announcement_payloads(fake: FakeTime) -> None:
    assert fake.parse(b"") is None  # withdrawn
    for bad in (b"{", b"{}", b'{"t0": 1, "speed": "x", "wall0": 2}', b"[1]"):
        with pytest.raises(ValueError, match="not a clock announcement"):
            fake.parse(bad)
    with pytest.raises(ValueError, match="speed > 0"):
        fake.parse(b'{"t0": 1, "speed": 0, "wall0": 2}')


def test_followed_clock_is_the_wall_until_a_simulator_announces(fake: FakeTime) -> None:
    c = FollowedClock()
    assert c.speed == 1.0 and c.now() == fake.wall
    c.on_announcement(b"not json")  # ignored, logged
    assert c.speed == 1.0
    # Announced 2 s behind (the simulator anchors on a whole second): holds, never back.
    before = c.now()
    sim = fake.scaled(fake.wall - 2.0, 10.0)
    c.on_announcement(announcement(sim, fake.wall))
    assert c.speed == 10.0 and c.now() == before
    fake.advance(1.0)
    assert c.now() == pytest.approx(before + 8.0)
    # Withdrawn at the simulator's end: simulated time keeps running.
    c.on_announcement(b"")
    fake.advance(1.0)
    assert c.speed == 10.0 and c.now() == pytest.approx(before + 18.0)


def test_followed_clock_follows_a_new_simulation_far_behind(fake: FakeTime) -> None:
    c = FollowedClock()
    c.on_announcement(announcement(fake.scaled(fake.wall, 10.0), fake.wall))
    fake.advance(100.0)  # 1,000 simulated seconds ahead of the wall now
    c.on_announcement(announcement(fake.scaled(fake.wall, 5.0), fake.wall))
    assert c.speed == 5.0 and c.now() == pytest.approx(fake.wall)
