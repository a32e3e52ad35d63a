"""Results must not depend on how the stream is cut into batches."""

from __future__ import annotations

import numpy as np
import pytest

from chargewatch.detectors import DetectorSet
from chargewatch.evaluation.detector_report import fleet_config, run_simulation, simulate
from chargewatch.evaluation.sim_stream import SimStream, decode_simulation


def _replay(sc: SimStream, cuts: np.ndarray) -> DetectorSet:
    ds = DetectorSet()
    for now, batch, events in sc.cut(cuts):
        ds.update(batch, events, sc.index, now)
    ds.tick(sc.end + 3600)
    return ds


def _key(ds: DetectorSet) -> list[tuple[object, ...]]:
    return sorted(
        # Evidence sums may differ in the last bits with the summation order.
        (
            f.fault,
            f.connector,
            f.start,
            f.detected,
            f.end,
            tuple((k, float(f"{v:.9g}")) for k, v in sorted(f.evidence.items())),
        )
        for f in ds.findings
    )


@pytest.fixture(scope="module")
def scenario() -> SimStream:
    # Every telemetry fault once, plus the simulator's hard normal cases, decoded
    # once by the collector pipeline and then re-cut here.
    sim, _ = simulate(chargers=30, hours=5, seed=7, per_fault=1)
    return decode_simulation(sim)


def test_same_stream_different_cuts_same_findings(scenario: SimStream) -> None:
    sc = scenario
    rng = np.random.default_rng(3)
    regular = np.arange(sc.start - 1, sc.end + 61, 60.0)
    coarse = np.arange(sc.start - 1, sc.end + 1801, 1800.0)
    random = np.sort(
        np.concatenate([[sc.start - 1, sc.end + 1], rng.uniform(sc.start, sc.end, 500)])
    )
    base = _replay(sc, regular)
    assert len(base.findings) > 10  # the scenario exercises the detectors
    for cuts in (coarse, random):
        other = _replay(sc, cuts)
        assert _key(other) == _key(base)
        for name, arr in base.signals.items():
            if arr.dtype == np.bool_:
                np.testing.assert_array_equal(other.signals[name], arr, err_msg=name)
            else:  # window sums differ in the last bits with the summation order
                np.testing.assert_allclose(
                    other.signals[name], arr, rtol=1e-9, atol=1e-9, err_msg=name
                )


def test_one_batch_equals_many(scenario: SimStream) -> None:
    sc = scenario
    whole = _replay(sc, np.array([sc.start - 1, sc.end + 1]))
    many = _replay(sc, np.arange(sc.start - 1, sc.end + 11, 10.0))
    assert _key(whole) == _key(many)


def test_simulator_stream_cut_differently_gives_the_same_findings() -> None:
    # The real path: simulator messages through the collector pipeline, chunked
    # every 10 s or every 10 min of receive time.
    sim, _ = simulate(chargers=20, hours=5, seed=3, per_fault=1)
    cfg = fleet_config(sim.fleet())
    fine = run_simulation(sim, cfg, batch_s=10.0)
    coarse = run_simulation(sim, cfg, batch_s=600.0)
    assert len(fine.findings) >= 10
    assert _key(coarse) == _key(fine)
