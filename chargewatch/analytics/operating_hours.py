"""Hours outside a site's operating hours, as uptime exclusions (pure).

23 CFR 680.116(b)(3), in its definition of T_excluded: "Also excluded are hours
outside of the identified hours of operation of the charging station." The
identified hours are the site's OCPI ``Hours`` (fleet.yaml ``operating_hours``);
each span outside them becomes an :class:`~chargewatch.analytics.uptime.Exclusion`
of cause ``outside_operating_hours`` on every port of the site's chargers, so an
outage (or the part of one) in those hours is excluded and up time stays up.

Regular hours are local wall-clock times turned into instants day by day in the
site's zone: across a DST change a night closed 22:00-06:00 lasts 7 or 9 real
hours. A local time that a spring-forward skips is read with the offset before
the change (Python's ``fold=0``), one an autumn change repeats as its first
occurrence.
"""

from __future__ import annotations

__all__ = ["BY", "closed_spans", "hours_exclusions", "open_spans"]

from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from chargewatch.analytics.uptime import Exclusion
from chargewatch.model.fleet import Fleet
from chargewatch.model.hours import OperatingHours, minutes_of

#: Who "tagged" these exclusions: the configuration, not an operator's hand.
BY = "fleet.yaml operating_hours"

Span = tuple[float, float]


def open_spans(hours: OperatingHours, zone: str, lo: float, hi: float) -> list[Span]:
    """When the site is open within [lo, hi), as sorted disjoint spans."""
    always = hours.twentyfourseven
    spans = [(lo, hi)] if always else list(_regular(hours, ZoneInfo(zone), lo, hi))
    spans += [(e.period_begin, e.period_end) for e in hours.exceptional_openings]
    # Closings overrule both regular hours and exceptional openings (OCPI).
    out = _minus(
        _union(spans), _union((e.period_begin, e.period_end) for e in hours.exceptional_closings)
    )
    return _clip(out, lo, hi)


def closed_spans(hours: OperatingHours, zone: str, lo: float, hi: float) -> list[Span]:
    """[lo, hi) less :func:`open_spans`."""
    return _minus([(lo, hi)], open_spans(hours, zone, lo, hi))


def _regular(hours: OperatingHours, tz: ZoneInfo, lo: float, hi: float) -> Iterable[Span]:
    # One day either side: a local day's hours may begin before lo in UTC terms.
    day = datetime.fromtimestamp(lo, tz).date() - timedelta(days=1)
    last = datetime.fromtimestamp(hi, tz).date() + timedelta(days=1)
    while day <= last:
        midnight = datetime(day.year, day.month, day.day, tzinfo=tz)
        for r in hours.regular_hours:
            if r.weekday == day.isoweekday():
                yield _local(midnight, r.period_begin), _local(midnight, r.period_end)
        day += timedelta(days=1)


def _local(midnight: datetime, hhmm: str) -> float:
    """The instant of a local "HH:MM" (or "24:00", the next midnight) on a day."""
    minutes = minutes_of(hhmm)
    if minutes == 24 * 60:
        nxt = midnight.date() + timedelta(days=1)
        return datetime(nxt.year, nxt.month, nxt.day, tzinfo=midnight.tzinfo).timestamp()
    return midnight.replace(hour=minutes // 60, minute=minutes % 60).timestamp()


def _union(spans: Iterable[Span]) -> list[Span]:
    out: list[Span] = []
    for a, b in sorted(s for s in spans if s[1] > s[0]):
        if out and a <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], b))
        else:
            out.append((a, b))
    return out


def _minus(spans: Sequence[Span], cuts: Sequence[Span]) -> list[Span]:
    """Sorted disjoint ``spans`` less sorted disjoint ``cuts``."""
    out: list[Span] = []
    for a, b in spans:
        at = a  # how far this span is accounted for
        for c, d in cuts:
            if d <= at or c >= b:
                continue
            if c > at:
                out.append((at, c))
            at = max(at, d)
            if at >= b:
                break
        if at < b:
            out.append((at, b))
    return out


def _clip(spans: Sequence[Span], lo: float, hi: float) -> list[Span]:
    return [(max(a, lo), min(b, hi)) for a, b in spans if b > lo and a < hi]


def hours_exclusions(fleet: Fleet | None, lo: float, hi: float) -> list[Exclusion]:
    """Every port of every charger at a site with operating hours: one exclusion per
    closed span in [lo, hi)."""
    if fleet is None:
        return []
    closed: dict[str, list[Span]] = {}
    for site in fleet.sites.values():
        if site.operating_hours is not None:
            closed[site.id] = closed_spans(site.operating_hours, site.timezone, lo, hi)
    return [
        Exclusion(c.id, "", a, b, "outside_operating_hours", BY, f"site {c.site} closed")
        for c in fleet.chargers.values()
        for a, b in closed.get(c.site, ())
    ]
