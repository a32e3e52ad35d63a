"""Invariants over random small configurations (few examples: the area's budget is 30 s)."""

from __future__ import annotations

from itertools import pairwise

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chargewatch.simulator import DEFAULT_START, SimConfig, Simulation
from tests.simulator.helpers import meter_samples

configs = st.builds(
    SimConfig,
    chargers=st.integers(1, 5),
    sites=st.just(1),
    seed=st.integers(0, 2**31),
    start=st.sampled_from([DEFAULT_START, DEFAULT_START + 9.5 * 3600]),
    duration=st.sampled_from([1800.0, 5400.0]),
    interval=st.sampled_from([2.0, 7.5, 30.0]),
    batch=st.integers(1, 9),
    random_faults=st.integers(0, 3),
    arrival_rate=st.just(4.0),
)


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cfg=configs)
def test_invariants(cfg: SimConfig) -> None:
    sim = Simulation(cfg)
    msgs = list(sim.messages())
    assert all(a[0] <= b[0] for a, b in pairwise(msgs))
    assert all(cfg.start <= m[0] < cfg.end for m in msgs)
    wire = meter_samples(msgs)
    single = meter_samples(Simulation(cfg.replace(batch=1)).messages())
    assert wire.keys() == single.keys()
    for key, c in wire.items():
        # a batch completing after the range's end is not sent; the rest is identical
        n = len(c["ts"])
        assert 0 <= len(single[key]["ts"]) - n < cfg.batch
        np.testing.assert_array_equal(c["energy_wh"], single[key]["energy_wh"][:n])
        np.testing.assert_array_equal(c["ts"], single[key]["ts"][:n])
    # Without faults that alter the register or the reported power, and over
    # consecutive samples, the register grows by exactly power × interval.
    touched = {(f.charger, f.connector) for f in sim.truth().faults} | {
        (f.charger, None) for f in sim.truth().faults
    }
    for (charger, connector), c in wire.items():
        if (charger, connector) in touched or (charger, None) in touched:
            continue
        ok = np.isclose(np.diff(c["ts"]), cfg.interval)
        de = np.diff(c["energy_wh"])[ok]
        pw = c["power_w"][1:][ok] * cfg.interval / 3600.0
        assert de == pytest.approx(pw, rel=1e-6, abs=1e-6)
