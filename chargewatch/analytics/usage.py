"""How chargers are used: utilisation by hour of week, daily sessions and energy,
duration/energy/idle distributions, peak concurrent power (pure).

Counting rules, used everywhere in this package:

* session counts, energy and distributions take the sessions that *start* in
  the window (a session belongs to the day, and the period, it started in);
* utilisation and peak power take the *time* inside the window, so a session
  crossing midnight or the window edge contributes only its part inside.

Utilisation is connector time: occupied share = plugged-in connector-seconds /
(connectors × window seconds); charging share counts only the charging
periods. Connectors come from the inventory when given (``connectors``: per
charger), else from the distinct connectors seen in the sessions — a charger
that never had a session in the window is then invisible, so pass the
inventory for fleet-wide figures: with ``charger_sites`` (charger → site) its
chargers without a session count too, idle, at their site.
"""

from __future__ import annotations

__all__ = [
    "DURATION_BINS_H",
    "ENERGY_BINS_KWH",
    "IDLE_BINS_H",
    "daily",
    "distributions",
    "peak_power",
    "starting_in",
    "utilisation",
]

from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np
from numpy.typing import NDArray

from chargewatch.analytics.session_frame import (
    F64,
    I64,
    Groups,
    Level,
    SessionFrame,
    Window,
    coverage_integral,
    hour_of_week,
    local_day,
    utc_offsets,
)

#: Histogram edges; the last bin is open-ended (the Norwegian data holds 200+ h sessions).
DURATION_BINS_H: tuple[float, ...] = (0, 0.25, 0.5, 1, 2, 3, 4, 6, 8, 10, 12, 16, 24, 48, np.inf)
ENERGY_BINS_KWH: tuple[float, ...] = (0, 0.1, 1, 2, 5, 10, 15, 20, 30, 40, 60, 80, np.inf)
IDLE_BINS_H: tuple[float, ...] = (0, 0.25, 0.5, 1, 2, 4, 6, 8, 12, 24, np.inf)


def starting_in(frame: SessionFrame, window: Window) -> NDArray[np.bool_]:
    return (frame.start >= window.lo) & (frame.start < window.hi)


def _zone(site: str, zones: Mapping[str, str]) -> str:
    return zones.get(site, zones.get("*", "UTC"))


def _capacity(frame: SessionFrame, connectors: Mapping[str, int] | None) -> dict[str, int]:
    """Connectors per charger: inventory first, else distinct connectors seen."""
    seen: dict[str, set[int]] = {}
    for c, k in zip(frame.charger.tolist(), frame.connector.tolist(), strict=True):
        seen.setdefault(c, set()).add(k)
    return {c: (connectors or {}).get(c, len(ks)) for c, ks in seen.items()}


def _how_bins(window: Window, zone: str) -> tuple[F64, NDArray[np.int64]]:
    """Edges of the local clock hours covering ``window`` (clipped) and each bin's hour of week."""
    return _how_bins_cached(window.lo, window.hi, zone)


@lru_cache(maxsize=32)
def _how_bins_cached(lo: float, hi: float, zone: str) -> tuple[F64, NDArray[np.int64]]:
    # Cached: every group of a report shares the window and, mostly, the zone;
    # a year is 8,760 bins whose zone offsets need a Python call per distinct hour.
    # Whole UTC hours are local hour edges, except in half/quarter-hour zones:
    # shift by the remainder.
    shift = float(utc_offsets(np.array([lo]), zone)[0]) % 3600.0
    first = np.floor((lo - shift) / 3600.0) * 3600.0 + shift
    edges = np.arange(first, hi + 3600.0, 3600.0)
    edges = edges[: np.searchsorted(edges, hi, side="left") + 1]
    labels = hour_of_week(edges[:-1] + 1800.0, zone)
    edges = np.clip(edges, lo, hi)
    edges.flags.writeable = False
    labels.flags.writeable = False
    return edges, labels


def _how_share(starts: F64, ends: F64, window: Window, zone: str) -> tuple[F64, F64]:
    """(covered seconds, available seconds per connector) per hour of week."""
    edges, labels = _how_bins(window, zone)
    a, b = np.clip(starts, window.lo, window.hi), np.clip(ends, window.lo, window.hi)
    b = np.maximum(a, b)  # a stop before its start (clock trouble) covers nothing, not less
    covered = np.diff(coverage_integral(a, b, edges))
    return (
        np.bincount(labels, weights=covered, minlength=168).astype(np.float64),
        np.bincount(labels, weights=np.diff(edges), minlength=168).astype(np.float64),
    )


def _idle_chargers(
    frame: SessionFrame, connectors: Mapping[str, int] | None, charger_sites: Mapping[str, str]
) -> dict[str, dict[str, int]]:
    """Inventory chargers without a session in ``frame``: site → charger → connectors."""
    seen = set(frame.charger.tolist())
    out: dict[str, dict[str, int]] = {}
    for charger, site in charger_sites.items():
        if charger not in seen:
            out.setdefault(site, {})[charger] = (connectors or {}).get(charger, 1)
    return out


def utilisation(
    frame: SessionFrame,
    window: Window,
    *,
    level: Level = "site",
    zones: Mapping[str, str] | None = None,
    connectors: Mapping[str, int] | None = None,
    charger_sites: Mapping[str, str] | None = None,
) -> list[dict[str, Any]]:
    """Occupied and charging share per group, overall and by local hour of week.

    ``zones``: site → IANA zone (``"*"``: default for sites not listed; else UTC).
    ``charger_sites``: the inventory's chargers and their sites; at fleet and site
    level those without a session add their connectors (a site without any
    session gets its group). A share is None for an hour of week the window
    does not contain.
    """
    frame = frame.scoped(window)
    idle = _idle_chargers(frame, connectors, charger_sites or {}) if level in _POOLED else {}
    groups = frame.groups(level)
    # Charging periods grouped the same way as their sessions.
    ch = np.flatnonzero(frame.p_charging)
    p_groups = Groups(level, groups.labels, groups.index[frame.p_session[ch]])
    labels = list(groups.labels)
    members = groups.members()
    p_members = [ch[m] for m in p_groups.members()]
    # Groups that exist only in the inventory: no session in the window.
    extra = (["fleet"] if idle else []) if level == "fleet" else sorted(idle)
    for label in extra:
        if label not in labels:
            labels.append(label)
            members.append(np.zeros(0, dtype=np.int64))
            p_members.append(np.zeros(0, dtype=np.int64))
    use = _Use(frame, window, level, zones or {}, _capacity(frame, connectors), idle)
    return [use.group(*g) for g in zip(labels, members, p_members, strict=True)]


#: Levels whose groups hold whole chargers, so the inventory's idle chargers join them.
_POOLED = ("fleet", "site")


@dataclass(frozen=True, slots=True)
class _Use:
    """What every group of one utilisation call shares."""

    frame: SessionFrame
    window: Window
    level: Level
    zones: Mapping[str, str]
    cap: dict[str, int]  # connectors per charger with a session
    idle: dict[str, dict[str, int]]  # site → charger → connectors, no session

    def group(self, label: str, rows: I64, prow: I64) -> dict[str, Any]:
        frame, level = self.frame, self.level
        occ, chg, avail = np.zeros(168), np.zeros(168), np.zeros(168)
        n_conn = 0
        chargers = set(frame.charger[rows].tolist())
        site_names = set(frame.site[rows].tolist())
        if level == "fleet":
            site_names |= set(self.idle)
        elif level == "site" and label in self.idle:
            site_names.add(label)
        for site in sorted(site_names):
            m = rows[frame.site[rows] == site]
            zone = _zone(site, self.zones)
            idle_here = self.idle.get(site, {}) if level in _POOLED else {}
            chargers |= set(idle_here)
            n = (
                1
                if level == "connector"
                else sum(self.cap[c] for c in np.unique(frame.charger[m]).tolist())
                + sum(idle_here.values())
            )
            o, per_conn = _how_share(frame.start[m], frame.stop[m], self.window, zone)
            pm = prow[frame.site[frame.p_session[prow]] == site]
            c, _ = _how_share(frame.p_start[pm], frame.p_end[pm], self.window, zone)
            occ += o
            chg += c
            avail += per_conn * n
            n_conn += n
        return self._doc(label, sorted(site_names), len(chargers), n_conn, occ, chg, avail)

    def _doc(
        self,
        label: str,
        sites: list[str],
        chargers: int,
        n_conn: int,
        occ: F64,
        chg: F64,
        avail: F64,
    ) -> dict[str, Any]:
        total = float(avail.sum())
        with np.errstate(invalid="ignore", divide="ignore"):
            occ_h = np.where(avail > 0, occ / avail, np.nan)
            chg_h = np.where(avail > 0, chg / avail, np.nan)
        return {
            "group": label,
            "level": self.level,
            "sites": sites,
            "timezones": sorted({_zone(s, self.zones) for s in sites}),
            "chargers": chargers,
            "connectors": n_conn,
            "occupied_hours": float(occ.sum()) / 3600.0,
            "charging_hours": float(chg.sum()) / 3600.0,
            "available_hours": total / 3600.0,
            "occupied_share": float(occ.sum()) / total if total > 0 else None,
            "charging_share": float(chg.sum()) / total if total > 0 else None,
            "hour_of_week": {
                "occupied_share": _nan_to_none(occ_h),
                "charging_share": _nan_to_none(chg_h),
            },
        }


def _nan_to_none(a: F64) -> list[float | None]:
    return [None if np.isnan(x) else float(x) for x in a.tolist()]


def daily(
    frame: SessionFrame,
    window: Window,
    *,
    level: Level = "site",
    zones: Mapping[str, str] | None = None,
) -> list[dict[str, Any]]:
    """Sessions started and their energy per local day, every day of the window (zeros kept)."""
    zones = zones or {}
    frame = frame.select(starting_in(frame, window))
    groups = frame.groups(level)
    day = np.zeros(len(frame), dtype=np.int64)
    for site in np.unique(frame.site).tolist():
        m = frame.site == site
        day[m] = local_day(frame.start[m], _zone(site, zones))
    out = []
    for label, m in zip(groups.labels, groups.members(), strict=True):
        # A group may span sites in several zones (the fleet): its days run from
        # the earliest local date of the window's start to the latest of its end,
        # each session counted on its own site's local date.
        group_zones = sorted({_zone(s, zones) for s in np.unique(frame.site[m]).tolist()})
        d0 = min(int(local_day(np.array([window.lo]), z)[0]) for z in group_zones)
        d1 = max(int(local_day(np.array([window.hi - 1e-3]), z)[0]) for z in group_zones)
        k = day[m] - d0
        n = d1 - d0 + 1
        sessions = np.bincount(k, minlength=n)
        energy = np.bincount(k, weights=frame.energy_wh[m], minlength=n) / 1000.0
        dates = np.arange(d0, d1 + 1).astype("datetime64[D]").astype(str)
        out.append(
            {
                "group": label,
                "level": level,
                "timezones": group_zones,
                "days": [
                    {"date": str(dt), "sessions": int(s), "energy_kwh": float(e)}
                    for dt, s, e in zip(
                        dates.tolist(), sessions.tolist(), energy.tolist(), strict=True
                    )
                ],
            }
        )
    return out


def _hist(values: F64, edges: tuple[float, ...]) -> list[dict[str, Any]]:
    counts, _ = np.histogram(values, bins=np.asarray(edges, dtype=np.float64))
    return [
        {"lo": lo, "hi": None if np.isinf(hi) else hi, "count": int(c)}
        for lo, hi, c in zip(edges[:-1], edges[1:], counts.tolist(), strict=True)
    ]


def _summary(values: F64) -> dict[str, float | int | None]:
    if len(values) == 0:
        return {"n": 0, "mean": None, "p10": None, "median": None, "p90": None, "max": None}
    q = np.percentile(values, [10, 50, 90])
    return {
        "n": len(values),
        "mean": float(values.mean()),
        "p10": float(q[0]),
        "median": float(q[1]),
        "p90": float(q[2]),
        "max": float(values.max()),
    }


def distributions(
    frame: SessionFrame, window: Window, *, level: Level = "site"
) -> list[dict[str, Any]]:
    """Duration (h), energy (kWh) and blocking idle time (h) per group: summaries and histograms.

    Blocking idle is the time still plugged in after the *last* charging
    period: the car is full but holds the connector. Sessions that never
    charged have no blocking time (they are failed sessions, counted apart).
    """
    frame = frame.select(starting_in(frame, window))
    groups = frame.groups(level)
    duration_h = (frame.stop - frame.start) / 3600.0
    energy_kwh = frame.energy_wh / 1000.0
    blocking_h = (frame.stop - frame.last_charging_end()) / 3600.0
    out = []
    for label, m in zip(groups.labels, groups.members(), strict=True):
        idle = blocking_h[m]
        idle = idle[~np.isnan(idle)]
        out.append(
            {
                "group": label,
                "level": level,
                "duration_h": {
                    "summary": _summary(duration_h[m]),
                    "histogram": _hist(duration_h[m], DURATION_BINS_H),
                },
                "energy_kwh": {
                    "summary": _summary(energy_kwh[m]),
                    "histogram": _hist(energy_kwh[m], ENERGY_BINS_KWH),
                },
                "blocking_idle_h": {
                    "summary": _summary(idle),
                    "histogram": _hist(idle, IDLE_BINS_H),
                    "total_h": float(idle.sum()),
                },
            }
        )
    return out


def peak_power(frame: SessionFrame, window: Window) -> list[dict[str, Any]]:
    """Highest total power drawn at once per site, from the charging periods.

    Each period contributes its *average* power (energy / duration): the
    sessions engine cuts periods where power changes materially, so this is
    the period-resolution load curve, not the instantaneous peak (``max_power_sum_w``
    — concurrent per-period maxima — bounds that from above). ``p99_power_w``:
    the load is at or below it for 99 % of the time anything charges.
    """
    frame = frame.scoped(window)
    out = []
    for site in np.unique(frame.site).tolist():
        pm = (frame.site[frame.p_session] == site) & frame.p_charging
        a = np.clip(frame.p_start[pm], window.lo, window.hi)
        b = np.clip(frame.p_end[pm], window.lo, window.hi)
        dur = frame.p_end[pm] - frame.p_start[pm]
        keep = b > a
        with np.errstate(invalid="ignore", divide="ignore"):
            avg = np.where(dur > 0, frame.p_energy_wh[pm] * 3600.0 / dur, 0.0)
        mx = np.where(np.isnan(frame.p_max_power_w[pm]), avg, frame.p_max_power_w[pm])
        peak, at = _sweep_max(a[keep], b[keep], avg[keep])
        peak_mx, _ = _sweep_max(a[keep], b[keep], mx[keep])
        p99 = _time_quantile(a[keep], b[keep], avg[keep], 0.99)
        out.append(
            {
                "site": site,
                "peak_power_w": peak,
                "at": at,
                "max_power_sum_w": peak_mx,
                # A peak far above p99 is a spike of minutes (or a data error), not a load level.
                "p99_power_w": p99,
                "charging_periods": int(keep.sum()),
            }
        )
    return out


def _sweep_max(a: F64, b: F64, w: F64) -> tuple[float, float | None]:
    """Maximum of Σ w·[a <= t < b] and the first instant it is reached."""
    t, level = _load_steps(a, b, w)
    if len(t) == 0:
        return 0.0, None
    i = int(np.argmax(level))
    return float(level[i]), float(t[i])


def _load_steps(a: F64, b: F64, w: F64) -> tuple[F64, F64]:
    """The step function Σ w·[a <= t < b]: event times and the level after each."""
    t = np.concatenate([a, b])
    d = np.concatenate([w, -w])
    # At equal times ends (negative) sort first: back-to-back periods are not concurrent.
    order = np.lexsort((d, t))
    return t[order], np.cumsum(d[order])


def _time_quantile(a: F64, b: F64, w: F64, q: float) -> float:
    """The level the load stays at or below for share ``q`` of the time it is above zero."""
    t, level = _load_steps(a, b, w)
    if len(t) < 2:
        return 0.0
    dt = np.diff(t)
    lv = level[:-1]
    on = lv > 1e-9
    if not on.any():
        return 0.0
    order = np.argsort(lv[on])
    cum = np.cumsum(dt[on][order])
    k = int(np.searchsorted(cum, q * cum[-1]))
    return float(lv[on][order][min(k, len(cum) - 1)])
