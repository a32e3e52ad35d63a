"""Sessions as columns: the one input shape every analytics function takes (pure).

A :class:`SessionFrame` holds one row per session and one row per charging or
idle period, as numpy arrays, so grouping and time arithmetic are vectorised.
Loaders (ledger SQL, datasets) live elsewhere; this module does no I/O.

Times are epoch seconds (UTC). Local time is only used where a person reads
a calendar: hour of week and day, in the *site's* zone.
"""

from __future__ import annotations

__all__ = [
    "GROUP_LEVELS",
    "PERIOD_COLUMNS",
    "SESSION_COLUMNS",
    "Groups",
    "SessionFrame",
    "Window",
    "coverage_integral",
    "hour_of_week",
    "local_day",
    "utc_offsets",
]

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any, Literal
from zoneinfo import ZoneInfo

import numpy as np
from numpy.typing import NDArray

F64 = NDArray[np.float64]
I64 = NDArray[np.int64]
Level = Literal["fleet", "site", "charger", "connector"]
GROUP_LEVELS: tuple[Level, ...] = ("fleet", "site", "charger", "connector")


@dataclass(frozen=True, slots=True)
class Window:
    """The half-open analysis period [lo, hi) in epoch seconds."""

    lo: float
    hi: float

    def __post_init__(self) -> None:
        if not self.hi > self.lo:
            raise ValueError(f"empty window: from {self.lo} is not before to {self.hi}")

    @property
    def seconds(self) -> float:
        return self.hi - self.lo


@dataclass(frozen=True, slots=True)
class SessionFrame:
    """Sessions (``s_*`` arrays, one per session) and their periods (``p_*``)."""

    session_id: NDArray[np.str_]
    charger: NDArray[np.str_]
    connector: I64
    site: NDArray[np.str_]
    start: F64
    stop: F64
    energy_wh: F64
    stop_reason: NDArray[np.str_]
    p_session: I64  # index into the session arrays
    p_charging: NDArray[np.bool_]  # True: charging, False: idle
    p_start: F64
    p_end: F64
    p_energy_wh: F64
    p_max_power_w: F64  # NaN when unknown

    def __len__(self) -> int:
        return len(self.start)

    @staticmethod
    def from_records(records: Iterable[Mapping[str, Any]]) -> SessionFrame:
        """Build from ``sessions.jsonl``-shaped dicts with epoch-second ``start``/``stop``.

        Period dicts may carry RFC 3339 strings or epoch seconds (both appear:
        the JSONL has strings, the ledger's period table numbers).
        """
        cols: dict[str, list[Any]] = {k: [] for k in SESSION_COLUMNS}
        pcols: dict[str, list[Any]] = {k: [] for k in PERIOD_COLUMNS}
        for i, r in enumerate(records):
            cols["session_id"].append(str(r["session_id"]))
            cols["charger"].append(str(r["charger_id"]))
            cols["connector"].append(int(r.get("connector_id", 1)))
            cols["site"].append(str(r.get("site") or ""))
            cols["start"].append(_epoch(r["start"]))
            cols["stop"].append(_epoch(r["stop"]))
            cols["energy_wh"].append(float(r.get("energy_wh") or 0.0))
            cols["stop_reason"].append(str(r.get("stop_reason") or ""))
            for p in r.get("periods") or ():
                pcols["p_session"].append(i)
                pcols["p_charging"].append(p["kind"] == "charging")
                pcols["p_start"].append(_epoch(p["start"]))
                pcols["p_end"].append(_epoch(p["end"]))
                pcols["p_energy_wh"].append(float(p.get("energy_wh") or 0.0))
                mp = p.get("max_power_w")
                pcols["p_max_power_w"].append(np.nan if mp is None else float(mp))
        return SessionFrame.from_columns(cols, pcols)

    @staticmethod
    def from_columns(s: Mapping[str, Any], p: Mapping[str, Any]) -> SessionFrame:
        return SessionFrame(
            session_id=np.asarray(s["session_id"], dtype=np.str_),
            charger=np.asarray(s["charger"], dtype=np.str_),
            connector=np.asarray(s["connector"], dtype=np.int64),
            site=np.asarray(s["site"], dtype=np.str_),
            start=np.asarray(s["start"], dtype=np.float64),
            stop=np.asarray(s["stop"], dtype=np.float64),
            energy_wh=np.asarray(s["energy_wh"], dtype=np.float64),
            stop_reason=np.asarray(s["stop_reason"], dtype=np.str_),
            p_session=np.asarray(p["p_session"], dtype=np.int64),
            p_charging=np.asarray(p["p_charging"], dtype=np.bool_),
            p_start=np.asarray(p["p_start"], dtype=np.float64),
            p_end=np.asarray(p["p_end"], dtype=np.float64),
            p_energy_wh=np.asarray(p["p_energy_wh"], dtype=np.float64),
            p_max_power_w=np.asarray(p["p_max_power_w"], dtype=np.float64),
        )

    def select(self, mask: NDArray[np.bool_]) -> SessionFrame:
        """The sessions where ``mask`` holds, with their periods re-indexed."""
        keep = np.flatnonzero(mask)
        new_index = np.full(len(self), -1, dtype=np.int64)
        new_index[keep] = np.arange(len(keep))
        pm = mask[self.p_session] if len(self.p_session) else np.zeros(0, dtype=np.bool_)
        return SessionFrame(
            session_id=self.session_id[keep],
            charger=self.charger[keep],
            connector=self.connector[keep],
            site=self.site[keep],
            start=self.start[keep],
            stop=self.stop[keep],
            energy_wh=self.energy_wh[keep],
            stop_reason=self.stop_reason[keep],
            p_session=new_index[self.p_session[pm]],
            p_charging=self.p_charging[pm],
            p_start=self.p_start[pm],
            p_end=self.p_end[pm],
            p_energy_wh=self.p_energy_wh[pm],
            p_max_power_w=self.p_max_power_w[pm],
        )

    def scoped(
        self, window: Window | None = None, *, site: str | None = None, charger: str | None = None
    ) -> SessionFrame:
        """Sessions that overlap ``window`` (all if None), at ``site``, on ``charger``."""
        mask = np.ones(len(self), dtype=np.bool_)
        if window is not None:
            mask &= (self.start < window.hi) & (self.stop > window.lo)
        if site:
            mask &= self.site == site
        if charger:
            mask &= self.charger == charger
        return self.select(mask)

    def span(self) -> Window | None:
        """[first start, last stop], the default analysis window; None without sessions."""
        if len(self) == 0:
            return None
        lo, hi = float(self.start.min()), float(self.stop.max())
        return Window(lo, hi if hi > lo else lo + 1.0)

    def charging_s(self) -> F64:
        """Charging seconds per session (sum of its charging periods)."""
        d = np.where(self.p_charging, self.p_end - self.p_start, 0.0)
        return np.bincount(self.p_session, weights=d, minlength=len(self)).astype(np.float64)

    def last_charging_end(self) -> F64:
        """End of each session's last charging period; NaN if it never charged."""
        out = np.full(len(self), -np.inf)
        ch = self.p_charging
        np.maximum.at(out, self.p_session[ch], self.p_end[ch])
        out[np.isinf(out)] = np.nan
        return out

    def groups(self, level: Level) -> Groups:
        if level == "fleet":
            keys = np.full(len(self), "fleet")
        elif level == "site":
            keys = self.site
        elif level == "charger":
            keys = self.charger
        else:
            keys = np.char.add(np.char.add(self.charger, "/"), self.connector.astype(np.str_))
        labels, inverse = np.unique(keys, return_inverse=True)
        return Groups(level, [str(x) for x in labels], inverse.astype(np.int64).ravel())


@dataclass(frozen=True, slots=True)
class Groups:
    """Group labels and, per session, the index of its group."""

    level: Level
    labels: list[str]
    index: I64

    def __len__(self) -> int:
        return len(self.labels)

    def sum(self, values: F64) -> F64:
        return np.bincount(self.index, weights=values, minlength=len(self)).astype(np.float64)

    def count(self, mask: NDArray[np.bool_] | None = None) -> I64:
        w = None if mask is None else mask.astype(np.float64)
        return np.bincount(self.index, weights=w, minlength=len(self)).astype(np.int64)

    def members(self) -> list[I64]:
        """Session indices of each group (one sort, then slices: O(n log n), not O(groups·n))."""
        order = np.argsort(self.index, kind="stable")
        bounds = np.searchsorted(self.index[order], np.arange(len(self) + 1))
        return [order[bounds[g] : bounds[g + 1]] for g in range(len(self))]

    def first(self) -> I64:
        """Index of the first session of each group."""
        out = np.zeros(len(self), dtype=np.int64)
        out[self.index[::-1]] = np.arange(len(self.index))[::-1]
        return out


SESSION_COLUMNS = (
    "session_id",
    "charger",
    "connector",
    "site",
    "start",
    "stop",
    "energy_wh",
    "stop_reason",
)
PERIOD_COLUMNS = (
    "p_session",
    "p_charging",
    "p_start",
    "p_end",
    "p_energy_wh",
    "p_max_power_w",
)


def _epoch(v: Any) -> float:
    if isinstance(v, str):
        return datetime.fromisoformat(v.replace("Z", "+00:00")).timestamp()
    return float(v)


@lru_cache(maxsize=64)
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name or "UTC")


def utc_offsets(ts: F64, zone: str) -> F64:
    """UTC offset (s) of ``zone`` at each instant.

    Looked up once per distinct UTC hour, not per element: zone transitions
    fall on whole UTC hours in every zone still in use, and a fleet's
    sessions share few hours, so this stays fast for millions of rows.
    """
    if len(ts) == 0:
        return np.zeros(0)
    tz = _zone(zone)
    hours = np.floor(ts / 3600.0)
    uniq, inv = np.unique(hours, return_inverse=True)
    offs = np.array([_offset_s(h * 3600.0, tz) for h in uniq])
    return np.asarray(offs[inv.ravel()], dtype=np.float64)


def _offset_s(t: float, tz: ZoneInfo) -> float:
    off = datetime.fromtimestamp(t, UTC).astimezone(tz).utcoffset()
    return 0.0 if off is None else off.total_seconds()


# 1970-01-01 was a Thursday: Monday = 0 makes that day 3.
_EPOCH_WEEKDAY = 3


def hour_of_week(ts: F64, zone: str) -> I64:
    """Local hour of week, 0 = Monday 00:00–01:00 ... 167 = Sunday 23:00–24:00."""
    local = ts + utc_offsets(ts, zone)
    days = np.floor(local / 86400.0)
    weekday = (days + _EPOCH_WEEKDAY) % 7
    hour = np.floor((local - days * 86400.0) / 3600.0)
    return (weekday * 24 + hour).astype(np.int64)


def local_day(ts: F64, zone: str) -> I64:
    """Local calendar day as days since 1970-01-01 (``np.datetime64(d, 'D')`` prints it)."""
    return np.floor((ts + utc_offsets(ts, zone)) / 86400.0).astype(np.int64)


def coverage_integral(starts: F64, ends: F64, at: F64, weights: F64 | None = None) -> F64:
    """∫ from -inf to ``at`` of Σ weight·[start <= t < end] dt, for each ``at``.

    The sum of intervals is a step function; its integral is piecewise linear
    with kinks at the interval ends, so evaluating it at the kinks and
    interpolating is exact. Differences between consecutive ``at`` values give
    covered seconds (or, with weights in W, joules) per bin, in O(n log n).
    """
    if len(starts) == 0:
        return np.zeros(len(at))
    w = np.ones(len(starts)) if weights is None else weights
    t = np.concatenate([starts, ends])
    d = np.concatenate([w, -w])
    order = np.argsort(t, kind="stable")
    t, d = t[order], d[order]
    level = np.cumsum(d)
    area = np.concatenate([[0.0], np.cumsum(level[:-1] * np.diff(t))])
    return np.asarray(np.interp(at, t, area), dtype=np.float64)
