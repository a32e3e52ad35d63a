"""Chargers that deviate from their site's peers of the same kind (pure).

Per site and kind (AC with AC, DC with DC: a 150 kW DC charger delivers more
per plugged-in hour than any 11 kW AC charger by design, not by fault), each
charger gets a few per-session figures; each figure is compared with the
other chargers of its peer group by the robust z-score of Iglewicz and
Hoaglin, z = 0.6745·(x − median) / MAD. Median and MAD ignore the one bad
charger that a mean and standard deviation would chase; |z| > 3.5 is their
suggested outlier cut. A peer group needs at least ``min_peers`` chargers with
sessions; a MAD of 0 (all peers equal) falls back to the mean absolute
deviation ×1.2533, the same scale for normal data.

The kind comes from the inventory (``dc``: charger → DC) when it lists the
charger; otherwise a charger that ever charged faster than AC can
(:data:`AC_MAX_W`, 3 × 32 A at 250 V) is DC, and the others are AC.
"""

from __future__ import annotations

__all__ = ["METRICS", "peers", "robust_z"]

from collections.abc import Mapping
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


#: Above this a charging period's power is DC: three-phase AC tops out at 32 A a phase.
AC_MAX_W = 3 * 32 * 250.0


def charger_kinds(
    frame: SessionFrame, chargers: list[str], dc: Mapping[str, bool] | None = None
) -> list[str]:
    """ "AC" or "DC" for each of ``chargers``: the inventory's word, else their top power."""
    top: dict[str, float] = {}
    if len(frame.p_session):
        for c, w in zip(
            frame.charger[frame.p_session].tolist(), frame.p_max_power_w.tolist(), strict=True
        ):
            if w == w:  # noqa: PLR0124 - NaN: unknown
                top[c] = max(top.get(c, 0.0), w)
    dc = dc or {}
    return [
        ("DC" if dc[c] else "AC") if c in dc else ("DC" if top.get(c, 0.0) > AC_MAX_W else "AC")
        for c in chargers
    ]


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
    dc: Mapping[str, bool] | None = None,
) -> list[dict[str, Any]]:
    """Per charger with at least ``min_sessions`` sessions: figures, z-scores against
    the chargers of its site and kind, deviations. ``dc``: the inventory's DC chargers."""
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
    kind_of = np.array(charger_kinds(f, groups.labels, dc), dtype=np.str_)
    eligible = n >= min_sessions
    out: list[dict[str, Any]] = []
    for site, kind in sorted(set(zip(site_of.tolist(), kind_of.tolist(), strict=True))):
        m = (site_of == site) & (kind_of == kind) & eligible
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
                    "kind": kind,
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
