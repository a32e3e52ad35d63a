"""Very short simulations (the demo's) must plan without errors."""

from __future__ import annotations

import pytest

from chargewatch.simulator import SimConfig, Simulation


@pytest.mark.parametrize("duration", [30.0, 128.0, 270.0, 500.0])
def test_short_runs_plan(duration: float) -> None:
    sim = Simulation(SimConfig(chargers=50, duration=duration, seed=1, gap_rate_per_hour=50.0))
    assert sum(1 for _ in sim.messages()) > 0
