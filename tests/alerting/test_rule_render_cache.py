"""Rules keep the labels and the value-independent annotations they rendered for
an alert; that must never change what an evaluation produces."""

from __future__ import annotations

from typing import Any

import numpy as np

from chargewatch.alerting import AlertEngine, default_rules_dir
from chargewatch.alerting.signals import FAULTS, LABEL_COLUMNS, empty_frame
from chargewatch.model.fleet import ChargerSpec, ConnectorIndex, Fleet


def frame(n: int, rng: np.random.Generator) -> dict[str, Any]:
    f = empty_frame(n)
    for name in LABEL_COLUMNS:  # the engine adds them from the inventory
        del f[name]
    f["power_w"] = rng.uniform(0, 22_000, n)
    f["temperature_c"] = rng.normal(60, 30, n)
    f["voltage_l1_v"] = rng.normal(230, 30, n)
    f["status"] = np.array(["Available", "Charging", "Faulted"], object)[rng.choice(3, n)]
    codes = np.array(["NoError", "GroundFailure", "InternalError", "HighTemperature"], object)
    f["error_code"] = codes[rng.choice(4, n, p=[0.7, 0.1, 0.1, 0.1])]
    f["status_age_s"] = rng.uniform(0, 7200, n)
    f["online"] = rng.random(n) > 0.2
    f["last_seen_age_s"] = rng.exponential(200.0, n)
    for fault in FAULTS:
        f[fault] = rng.random(n) < 0.2
        f[f"{fault}_score"] = rng.random(n)
    return f


def engine(n: int) -> AlertEngine:
    specs = {f"CP{i:03d}": ChargerSpec(f"CP{i:03d}", site=f"s{i % 3}") for i in range(n)}
    return AlertEngine(default_rules_dir(), ConnectorIndex(Fleet({}, specs)))


def active(e: AlertEngine) -> list[Any]:
    return sorted((sorted(x.labels.items()), sorted(x.annotations.items())) for x in e.active())


def test_cached_rendering_gives_what_rendering_afresh_gives() -> None:
    n = 60
    cached, fresh = engine(n), engine(n)
    rng = np.random.default_rng(11)
    step = max(g.interval_s for g in cached.groups)
    now = 1_800_000_000.0
    prev: dict[str, Any] = {}
    for k in range(40):
        f = frame(n, rng)
        if k % 3:  # standing alerts: the same conditions again, new values
            f |= {fault: prev[fault] for fault in FAULTS}
        prev = f
        for rule in fresh.rules:
            rule._series.clear()
            rule._fixed.clear()
        a, b = cached.evaluate(now, f), fresh.evaluate(now, f)
        assert [(t.state, t.labels, t.annotations) for t in a] == [
            (t.state, t.labels, t.annotations) for t in b
        ]
        assert active(cached) == active(fresh)
        now += step
    assert any(rule._series for rule in cached.rules)  # the cache was in use
