"""Chargers that deviate from their site's peers (pure).

Per site, each charger gets a few per-session figures; each figure is compared
with the other chargers of the site by the robust z-score of Iglewicz and
Hoaglin, z = 0.6745·(x − median) / MAD. Median and MAD ignore the one bad
charger that a mean and standard deviation would chase; |z| > 3.5 is their
suggested outlier cut. A site needs at least ``min_peers`` chargers with
sessions; a MAD of 0 (all peers equal) falls back to the mean absolute
deviation ×1.2533, the same scale for normal data.
"""

from __future__ import annotations

__all__ = ["METRICS", "peers", "robust_z"]

from typing import Any

import numpy as np

from chargewatch.analytics.reliability import MIN_ENERGY_WH
from chargewatch.analytics.session_frame import F64, SessionFrame, Window
from chargewatch.analytics.usage import starting_in

#: figure → what it says (units).
METRICS: dict[str, str] = {
    "kwh_per_connected_hour": "energy delivered per hour plugged in (kWh/h = average kW)",
    "avg_charging_kw": "energy per hour of charging periods (kW)",
    "kwh_per_session": "mean energy per session (kWh)",
    "failed_share": "share of sessions below the no-energy threshold",
}


def robust_z(x: F64) -> F64:
    """Median/MAD z-scores; NaN in, NaN out; all-equal values score 0."""
    ok = ~np.isnan(x)
    z = np.full(len(x), np.nan)
    if ok.sum() == 0:
        return z
    v = x[ok]
    med = float(np.median(v))
    mad = float(np.median(np.abs(v - med)))
    if mad > 0:
        z[ok] = 0.6745 * (v - med) / mad
        return z
    mean_ad = float(np.mean(np.abs(v - med)))
    z[ok] = (v - med) / (1.2533 * mean_ad) if mean_ad > 0 else 0.0
    return z


def peers(
    frame: SessionFrame,
    window: Window,
    *,
    threshold: float = 3.5,
    min_peers: int = 4,
    min_sessions: int = 5,
) -> list[dict[str, Any]]:
    """Per charger with at least ``min_sessions`` sessions: figures, z-scores, deviations."""
    f = frame.select(starting_in(frame, window))
    groups = f.groups("charger")
    n = groups.count().astype(np.float64)
    energy = groups.sum(f.energy_wh) / 1000.0
    connected_h = groups.sum(f.stop - f.start) / 3600.0
    charging_h = groups.sum(f.charging_s()) / 3600.0
    failed = groups.count(f.energy_wh < MIN_ENERGY_WH).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        figures = {
            "kwh_per_connected_hour": np.where(connected_h > 0, energy / connected_h, np.nan),
            "avg_charging_kw": np.where(charging_h > 0, energy / charging_h, np.nan),
            "kwh_per_session": np.where(n > 0, energy / n, np.nan),
            "failed_share": np.where(n > 0, failed / n, np.nan),
        }
    site_of = f.site[groups.first()] if len(f) else np.zeros(0, dtype=np.str_)
    eligible = n >= min_sessions
    out: list[dict[str, Any]] = []
    for site in sorted(set(site_of.tolist())):
        m = (site_of == site) & eligible
        rows = np.flatnonzero(m)
        zs = {
            k: robust_z(v[rows]) if len(rows) >= min_peers else np.full(len(rows), np.nan)
            for k, v in figures.items()
        }
        for j, g in enumerate(rows.tolist()):
            z = {k: None if np.isnan(v[j]) else float(v[j]) for k, v in zs.items()}
            out.append(
                {
                    "charger": groups.labels[g],
                    "site": site,
                    "peers": len(rows),
                    "sessions": int(n[g]),
                    "figures": {
                        k: None if np.isnan(v[g]) else float(v[g]) for k, v in figures.items()
                    },
                    "z": z,
                    "deviates": sorted(
                        k for k, v in z.items() if v is not None and abs(v) > threshold
                    ),
                }
            )
    out.sort(key=lambda r: -max((abs(v) for v in r["z"].values() if v is not None), default=0.0))
    return out
