"""The silence and wait detectors skip ticks before their earliest deadline: the
signals must be exactly those of ticks that always look at every connector."""

from __future__ import annotations

import numpy as np

from chargewatch.detectors import DetectorConfig, DetectorSet
from chargewatch.evaluation.detector_report import simulate
from chargewatch.evaluation.sim_stream import decode_simulation


def _uncached(ds: DetectorSet) -> None:
    for d in ds.detectors.values():
        if hasattr(d, "_next"):
            d._next = -np.inf  # type: ignore[attr-defined]


def test_cached_ticks_give_the_signals_of_full_ticks() -> None:
    sim, _ = simulate(chargers=24, hours=5, seed=4, per_fault=1)
    sc = decode_simulation(sim)
    # A short idle grace, so that idle_blocking has deadlines to cache too.
    cfg = DetectorConfig(defaults={"idle_blocking": {"grace_s": 900.0}})
    cached, full = DetectorSet(cfg), DetectorSet(cfg)
    steps = 0
    for now, batch, events in sc.batches(60.0):
        for ds in (cached, full):
            if ds is full:
                _uncached(ds)
            ds.update(batch, events, sc.index, now)
        for t in np.arange(now + 15.0, now + 60.0, 15.0):  # ticks between batches
            _uncached(full)
            cached.tick(float(t))
            full.tick(float(t))
            a, b = cached.signals, full.signals
            for name in a:
                np.testing.assert_array_equal(a[name], b[name], err_msg=f"{name} at {t}")
            steps += 1
    assert steps > 500
    kinds = {f.fault for f in cached.findings}
    assert {"charger_offline", "stale_telemetry", "idle_blocking", "failed_start"} <= kinds
    assert sorted(f.as_dict().items().__repr__() for f in cached.findings) == sorted(
        f.as_dict().items().__repr__() for f in full.findings
    )
