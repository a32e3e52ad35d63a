"""The silence and wait detectors skip ticks before their earliest deadline: the
signals must be exactly those of ticks that always look at every connector."""

from __future__ import annotations

import numpy as np

from chargewatch.detectors import DetectorConfig, DetectorSet
from chargewatch.evaluation.detector_report import simulate
from chargewatch.evaluation.sim_stream import decode_simulation
from chargewatch.model.batch import MeterBatch
from chargewatch.model.events import HeartbeatEvent
from chargewatch.model.fleet import ChargerSpec, ConnectorIndex, Fleet


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


def test_a_chargers_first_message_after_a_tick_gives_it_a_deadline() -> None:
    """A charger of the fleet file (its connectors indexed before any message)
    heard first after the detectors' first tick: its silence is found all the
    same (the tick cache had no deadline for it, and nothing else reset it)."""
    t0 = 1_800_000_000.0
    index = ConnectorIndex(Fleet({}, {"CP1": ChargerSpec("CP1", site="s", connectors=2)}))
    ds = DetectorSet(index=index)
    now = t0
    while now < t0 + 1200:
        evs = [HeartbeatEvent("CP1", t0 + 60, t0 + 60)] if now < t0 + 60 <= now + 30 else []
        now += 30
        ds.update(MeterBatch.empty(), evs, index, now)
    # Native (no interval): silence_s, 600 s, after the heartbeat.
    assert [(f.connector, f.start, f.detected) for f in ds.findings] == [
        (0, t0 + 60, t0 + 660),
        (1, t0 + 60, t0 + 660),
    ]
