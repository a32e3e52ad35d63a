"""Analytics run time on a large synthetic fleet; prints JSON.

Sessions are random (plug-in times over a year, 1–12 h plugged in, charging
the first part) on ``--chargers`` chargers at ``--sites`` sites in three time
zones; every analytics function runs at charger level over the whole year.

    PYTHONPATH=. python bench/bench_analytics.py [--sessions 500000] [--chargers 2000]
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from chargewatch.analytics import (
    daily,
    distributions,
    peak_power,
    peers,
    reliability,
    revenue,
    utilisation,
)
from chargewatch.analytics.session_frame import SessionFrame, Window


def synthetic(n: int, chargers: int, sites: int, seed: int = 1) -> SessionFrame:
    rng = np.random.default_rng(seed)
    year = 365 * 86400.0
    lo = 1_704_067_200.0  # 2024-01-01 UTC
    start = lo + rng.uniform(0, year, n)
    dur = rng.uniform(1, 12, n) * 3600.0
    charge = dur * rng.uniform(0.2, 1.0, n)
    energy = charge / 3600.0 * rng.uniform(3000, 11000, n)
    charger = rng.integers(0, chargers, n)
    site = charger % sites
    idx = np.arange(n)
    return SessionFrame.from_columns(
        {
            "session_id": idx.astype(str),
            "charger": np.char.add("C", charger.astype(str)),
            "connector": np.ones(n, dtype=np.int64),
            "site": np.char.add("S", site.astype(str)),
            "start": start,
            "stop": start + dur,
            "energy_wh": energy,
            "stop_reason": np.full(n, "transaction"),
        },
        {
            "p_session": np.concatenate([idx, idx]),
            "p_charging": np.concatenate([np.ones(n, bool), np.zeros(n, bool)]),
            "p_start": np.concatenate([start, start + charge]),
            "p_end": np.concatenate([start + charge, start + dur]),
            "p_energy_wh": np.concatenate([energy, np.zeros(n)]),
            "p_max_power_w": np.full(2 * n, np.nan),
        },
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sessions", type=int, default=500_000)
    ap.add_argument("--chargers", type=int, default=2000)
    ap.add_argument("--sites", type=int, default=100)
    a = ap.parse_args()
    f = synthetic(a.sessions, a.chargers, a.sites)
    w = Window(1_704_067_200.0, 1_704_067_200.0 + 366 * 86400.0)
    zones = {
        f"S{i}": z for i, z in enumerate(["Europe/Oslo", "America/Los_Angeles", "UTC"] * a.sites)
    }
    times = {}
    for name, fn in {
        "utilisation": lambda: utilisation(f, w, level="charger", zones=zones),
        "daily": lambda: daily(f, w, level="charger", zones=zones),
        "distributions": lambda: distributions(f, w, level="charger"),
        "reliability": lambda: reliability(f, [], w, level="charger"),
        "revenue": lambda: revenue(f, [], w, level="charger"),
        "peers": lambda: peers(f, w),
        "peak_power": lambda: peak_power(f, w),
    }.items():
        t = time.perf_counter()
        fn()
        times[name] = round(time.perf_counter() - t, 3)
    print(json.dumps({"sessions": a.sessions, "chargers": a.chargers, "seconds": times}))


if __name__ == "__main__":
    main()
