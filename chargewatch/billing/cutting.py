"""Where a session's periods are cut: every moment at which the price may change.

Local time-of-day boundaries (in the site's zone, across DST changes), duration
thresholds after the session start, and the moments cumulative energy crosses a
kWh threshold (constant power assumed within a period). Pure.
"""

from __future__ import annotations

__all__ = [
    "duration_cuts",
    "energy_thresholds",
    "local_cuts",
    "offset_changes",
    "split_period",
    "time_boundaries",
]

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, time, timedelta, tzinfo
from decimal import ROUND_HALF_UP, Decimal
from itertools import pairwise

from chargewatch.billing.tariff import Tariff
from chargewatch.sessions.periods import SessionPeriod, seconds

_WH_PER_KWH = Decimal(1000)
_US = timedelta(microseconds=1)


def offset_changes(a: datetime, b: datetime, zone: tzinfo) -> list[datetime]:
    """Instants in (a, b) where the zone's UTC offset changes (DST)."""
    out: list[datetime] = []
    step = timedelta(hours=6)  # far shorter than any gap between two transitions
    t = a
    off = t.astimezone(zone).utcoffset()
    while t < b:
        n = min(t + step, b)
        if n.astimezone(zone).utcoffset() != off:
            # Transitions fall on whole seconds: bisect on epoch seconds.
            lo, hi = int(t.timestamp()), int(n.timestamp()) + 1
            while hi - lo > 1:
                mid = (lo + hi) // 2
                if datetime.fromtimestamp(mid, UTC).astimezone(zone).utcoffset() == off:
                    lo = mid
                else:
                    hi = mid
            n = datetime.fromtimestamp(hi, UTC)
            if a < n < b:
                out.append(n)
            off = n.astimezone(zone).utcoffset()
        t = n
    return out


def local_cuts(a: datetime, b: datetime, zone: tzinfo, minutes: Sequence[int]) -> list[datetime]:
    """Instants in (a, b) where local wall time passes one of ``minutes`` (of the day)."""
    if not minutes:
        return []
    changes = offset_changes(a, b, zone)
    cuts = list(changes)
    edges = [a, *changes, b]
    for x, y in pairwise(edges):
        # Within one offset, wall time is UTC plus a constant: plain arithmetic.
        offset = x.astimezone(zone).utcoffset() or timedelta(0)
        lx = x.astimezone(UTC).replace(tzinfo=None) + offset
        ly = y.astimezone(UTC).replace(tzinfo=None) + offset
        day = lx.date()
        while day <= ly.date():
            midnight = datetime.combine(day, time())
            for m in minutes:
                wall = midnight + timedelta(minutes=m)
                if lx < wall < ly:
                    cuts.append((wall - offset).replace(tzinfo=UTC))
            day += timedelta(days=1)
    return cuts


def time_boundaries(tariff: Tariff) -> list[int]:
    minutes: set[int] = set()
    for el in tariff.elements:
        r = el.restrictions
        if r is None:
            continue
        for t in (r.start_time, r.end_time):
            if t is not None:
                minutes.add(t.hour * 60 + t.minute)
        if r.day_of_week or r.start_date or r.end_date:
            minutes.add(0)
    return sorted(minutes)


def energy_thresholds(tariff: Tariff) -> list[Decimal]:
    out: set[Decimal] = set()
    for el in tariff.elements:
        r = el.restrictions
        if r is not None:
            out.update(k * _WH_PER_KWH for k in (r.min_kwh, r.max_kwh) if k is not None)
    return sorted(out)


def duration_cuts(tariff: Tariff, start: datetime) -> list[datetime]:
    out: set[datetime] = set()
    for el in tariff.elements:
        r = el.restrictions
        if r is not None:
            out.update(start + timedelta(seconds=s) for s in (r.min_duration, r.max_duration) if s)
    return sorted(out)


def split_period(
    period: SessionPeriod,
    cuts: Iterable[datetime],
    cum_wh: Decimal,
    thresholds: Sequence[Decimal],
) -> list[tuple[datetime, datetime, Decimal]]:
    """Cut one period; energy is shared in proportion to time (constant power)."""
    points = sorted({c for c in cuts if period.start < c < period.end})
    edges = [period.start, *points, period.end]
    total_s = seconds(period.end - period.start)
    pieces: list[tuple[datetime, datetime, Decimal]] = []
    left = period.energy_wh
    for i, (x, y) in enumerate(pairwise(edges)):
        last = i == len(edges) - 2
        # The last piece takes the remainder so the parts sum exactly to the whole.
        e = left if last else period.energy_wh * seconds(y - x) / total_s
        left -= e
        pieces.extend(_split_energy(x, y, e, cum_wh, thresholds))
        cum_wh += e
    return pieces


def _split_energy(
    x: datetime, y: datetime, e: Decimal, cum_wh: Decimal, thresholds: Sequence[Decimal]
) -> list[tuple[datetime, datetime, Decimal]]:
    out: list[tuple[datetime, datetime, Decimal]] = []
    for th in thresholds:
        if e > 0 and cum_wh < th < cum_wh + e:
            need = th - cum_wh
            # The piece before the threshold gets exactly the energy up to it.
            us = (y - x) // _US
            t = x + _US * int((Decimal(us) * need / e).to_integral_value(ROUND_HALF_UP))
            out.append((x, t, need))
            x, e, cum_wh = t, e - need, th
    out.append((x, y, e))
    return out
