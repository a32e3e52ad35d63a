"""The OCPI 2.2.1 tariff engine: price a session's periods with a Tariff.

Input is the session as contiguous :class:`SessionPeriod` s (charging, parking
or reservation, each with its energy and optional power/current bounds); output
is a :class:`PricingResult`: the periods split at every boundary that can change
the price, with the elements that priced them, and the CDR totals.

How the spec is applied (mod_tariffs.asciidoc, mod_cdrs.asciidoc):

* Splitting. A period is cut at local time-of-day boundaries (every
  ``start_time``/``end_time`` in the tariff, and local midnight when any
  restriction depends on the date or weekday), in the site's time zone with its
  DST changes; at ``min_duration``/``max_duration`` after the session start; and
  where the cumulative energy crosses a ``min_kwh``/``max_kwh``, assuming
  constant power inside a period. Power and current are known per input period
  only, so callers pass periods already cut where the power changed (the
  session builder does this from meter samples).
* Matching. Per dimension, the first element (in tariff order) that has a
  component of that dimension and whose restrictions all hold at the start of
  the piece. No match: that dimension is free for the piece. Elements with a
  ``reservation`` restriction price only reservation periods, and the others
  only the session; for an expired reservation (a session of reservation
  periods only) ``RESERVATION_EXPIRES`` elements are searched before
  ``RESERVATION`` ones, as the note on ReservationRestrictionType asks.
* Power restrictions compare the period's MIN_POWER with ``min_power`` and its
  MAX_POWER with ``max_power`` (the way the spec's examples state them: "uses a
  maximum of 16A"); when only one bound, or only the average, is known it is
  used for both. Unknown current never satisfies a current restriction. Parking
  and reservation periods draw 0 W and 0 A unless told otherwise.
* FLAT is charged once per session: the FLAT component of the first element
  that matches at any piece of the session (and once more for a reservation).
* step_size is applied once per session per group, with the step of the last
  relevant (chronologically last priced) component, and the rounded-up
  remainder is billed at that component's price: ENERGY on the session's total
  priced energy; TIME and PARKING_TIME on their combined priced duration (the
  tariffs chapter's step_size examples: 10 min charging + 2 min parking with a
  15 min parking step bill 5 min parking); reservation TIME on its own.

Rounding policy (one, also in docs/pricing.md): volumes (seconds, Wh) are
summed exactly as Decimal per price component; each component's cost is
``price × volume / unit`` at 34 significant digits (far below a cent); costs are
summed, min/max price applied, and only then every reported figure is rounded
once, half-up, to 4 decimals — OCPI's precision for numbers (types.asciidoc).
Reported category totals are rounded independently, so their sum may differ from
``total_cost`` in the 4th decimal, and min/max price changes ``total_cost`` only.

VAT: a component without ``vat`` has no known VAT (not 0 %). Any non-zero cost
from such a component makes the ``incl_vat`` of the totals it is part of
unknown: ``None`` here, omitted in the CDR, ``null`` on the CLI. Zero costs need
no VAT (the spec's free-of-charge example gives none).

Pure: no I/O, no clock.
"""

from __future__ import annotations

__all__ = [
    "MONEY_QUANTUM",
    "PeriodState",
    "PricedPeriod",
    "PricingResult",
    "SessionCosts",
    "SessionPeriod",
    "exact_context",
    "price_session",
    "round_reported",
]

import operator
from collections.abc import Iterable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, time, timedelta, tzinfo
from decimal import ROUND_HALF_EVEN, ROUND_HALF_UP, Context, Decimal, localcontext
from enum import Enum
from itertools import pairwise

from chargewatch.billing.tariff import (
    Dimension,
    Price,
    PriceComponent,
    ReservationKind,
    Restrictions,
    Tariff,
)

MONEY_QUANTUM = Decimal("0.0001")
_ZERO = Decimal(0)
_WH_PER_KWH = Decimal(1000)
_S_PER_H = Decimal(3600)
_US = timedelta(microseconds=1)


def exact_context() -> AbstractContextManager[Context]:
    """The decimal context billing computes in (34 digits), whatever the caller's is."""
    return localcontext(Context(prec=34, rounding=ROUND_HALF_EVEN))


def round_reported(value: Decimal) -> Decimal:
    """The one rounding step: half-up to 4 decimals, applied to reported figures only."""
    return value.quantize(MONEY_QUANTUM, rounding=ROUND_HALF_UP, context=Context(prec=34))


class PeriodState(Enum):
    """What the connector was doing during a period."""

    CHARGING = "CHARGING"  # energy flowing: TIME and ENERGY apply
    PARKING = "PARKING"  # connected, not charging (idle): PARKING_TIME applies
    RESERVATION = "RESERVATION"  # reserved, not yet in use: reservation TIME applies


@dataclass(frozen=True, slots=True)
class SessionPeriod:
    """One stretch of a session with constant state (input to the engine).

    ``start``/``end`` are timezone-aware. ``energy_wh`` is the energy delivered
    in the period (>= 0). Power bounds are in W and current bounds in A summed
    over phases; ``None`` means unknown.
    """

    start: datetime
    end: datetime
    state: PeriodState
    energy_wh: Decimal = _ZERO
    min_power_w: Decimal | None = None
    max_power_w: Decimal | None = None
    min_current_a: Decimal | None = None
    max_current_a: Decimal | None = None


@dataclass(frozen=True, slots=True)
class PricedPeriod:
    """A piece of a session after splitting, with the elements that priced it.

    ``elements`` maps each priced dimension to the index of its element in
    ``tariff.elements``; a dimension absent from it was free in this piece.
    """

    start: datetime
    end: datetime
    state: PeriodState
    energy_wh: Decimal
    source: SessionPeriod
    elements: dict[Dimension, int] = field(default_factory=dict)

    @property
    def seconds(self) -> Decimal:
        return _seconds(self.end - self.start)


@dataclass(frozen=True, slots=True)
class SessionCosts:
    """The CDR's cost totals, rounded for reporting."""

    total: Price
    fixed: Price  # FLAT of the session (not of a reservation)
    energy: Price
    time: Price  # charging time
    parking: Price
    reservation: Price  # reservation FLAT and TIME


@dataclass(frozen=True, slots=True)
class PricingResult:
    tariff: Tariff
    periods: tuple[PricedPeriod, ...]
    costs: SessionCosts
    total_energy_kwh: Decimal  # rounded for reporting
    total_time_h: Decimal  # session (not reservation) duration, rounded
    total_parking_time_h: Decimal  # rounded
    min_price_applied: bool = False
    max_price_applied: bool = False


# --- splitting ------------------------------------------------------------------


def _seconds(delta: timedelta) -> Decimal:
    # Exact: timedelta holds whole microseconds.
    us = (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds
    return Decimal(us).scaleb(-6)


def _offset_changes(a: datetime, b: datetime, zone: tzinfo) -> list[datetime]:
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


def _local_cuts(a: datetime, b: datetime, zone: tzinfo, minutes: Sequence[int]) -> list[datetime]:
    """Instants in (a, b) where local wall time passes one of ``minutes`` (of the day)."""
    if not minutes:
        return []
    changes = _offset_changes(a, b, zone)
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


def _time_boundaries(tariff: Tariff) -> list[int]:
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


def _energy_thresholds(tariff: Tariff) -> list[Decimal]:
    out: set[Decimal] = set()
    for el in tariff.elements:
        r = el.restrictions
        if r is not None:
            out.update(k * _WH_PER_KWH for k in (r.min_kwh, r.max_kwh) if k is not None)
    return sorted(out)


def _duration_cuts(tariff: Tariff, start: datetime) -> list[datetime]:
    out: set[datetime] = set()
    for el in tariff.elements:
        r = el.restrictions
        if r is not None:
            out.update(start + timedelta(seconds=s) for s in (r.min_duration, r.max_duration) if s)
    return sorted(out)


def _split(
    period: SessionPeriod,
    cuts: Iterable[datetime],
    cum_wh: Decimal,
    thresholds: Sequence[Decimal],
) -> list[tuple[datetime, datetime, Decimal]]:
    """Cut one period; energy is shared in proportion to time (constant power)."""
    points = sorted({c for c in cuts if period.start < c < period.end})
    edges = [period.start, *points, period.end]
    total_s = _seconds(period.end - period.start)
    pieces: list[tuple[datetime, datetime, Decimal]] = []
    left = period.energy_wh
    for i, (x, y) in enumerate(pairwise(edges)):
        last = i == len(edges) - 2
        # The last piece takes the remainder so the parts sum exactly to the whole.
        e = left if last else period.energy_wh * _seconds(y - x) / total_s
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
            us = int((y - x) / _US)
            t = x + _US * int((Decimal(us) * need / e).to_integral_value(ROUND_HALF_UP))
            out.append((x, t, need))
            x, e, cum_wh = t, e - need, th
    out.append((x, y, e))
    return out


# --- matching -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Context:
    local: datetime  # naive wall time in the site's zone at the piece's start
    elapsed_s: Decimal  # since the session's start
    cum_kwh: Decimal  # energy delivered before the piece
    power_kw: tuple[Decimal | None, Decimal | None]  # (low, high)
    current_a: tuple[Decimal | None, Decimal | None]
    state: PeriodState
    expired: bool


def _in_window(t: time, start: time | None, end: time | None) -> bool:
    s = start or time(0)
    if end is None or end == time(0):  # 00:00 as end_time means end of the day
        return t >= s
    if s < end:
        return s <= t < end
    return t >= s or t < end  # end before start wraps over midnight


def _bounds(lo: Decimal | None, hi: Decimal | None) -> tuple[Decimal | None, Decimal | None]:
    return (lo if lo is not None else hi, hi if hi is not None else lo)


def _matches(r: Restrictions | None, ctx: _Context) -> bool:
    if r is None:
        return True
    local = ctx.local
    checks: list[bool] = []
    if r.start_time is not None or r.end_time is not None:
        checks.append(_in_window(local.time(), r.start_time, r.end_time))
    if r.start_date is not None:
        checks.append(local.date() >= r.start_date)
    if r.end_date is not None:
        checks.append(local.date() < r.end_date)
    if r.day_of_week:
        checks.append(any(d.value == local.weekday() for d in r.day_of_week))
    if r.min_kwh is not None:
        checks.append(ctx.cum_kwh >= r.min_kwh)
    if r.max_kwh is not None:
        checks.append(ctx.cum_kwh < r.max_kwh)
    if r.min_duration is not None:
        checks.append(ctx.elapsed_s >= r.min_duration)
    if r.max_duration is not None:
        checks.append(ctx.elapsed_s < r.max_duration)
    p_lo, p_hi = ctx.power_kw
    if r.min_power is not None:
        checks.append(p_lo is not None and p_lo >= r.min_power)
    if r.max_power is not None:
        checks.append(p_hi is not None and p_hi < r.max_power)
    c_lo, c_hi = ctx.current_a
    if r.min_current is not None:
        checks.append(c_lo is not None and c_lo >= r.min_current)
    if r.max_current is not None:
        checks.append(c_hi is not None and c_hi < r.max_current)
    return all(checks)


def _find(tariff: Tariff, dim: Dimension, ctx: _Context) -> tuple[int, PriceComponent] | None:
    kinds: tuple[ReservationKind | None, ...]
    if ctx.state is not PeriodState.RESERVATION:
        kinds = (None,)
    elif ctx.expired:
        kinds = (ReservationKind.RESERVATION_EXPIRES, ReservationKind.RESERVATION)
    else:
        kinds = (ReservationKind.RESERVATION,)
    for kind in kinds:
        for i, el in enumerate(tariff.elements):
            el_kind = el.restrictions.reservation if el.restrictions else None
            if el_kind is not kind:
                continue
            pc = el.component(dim)
            if pc is not None and _matches(el.restrictions, ctx):
                return i, pc
    return None


# --- the engine -----------------------------------------------------------------


def _check_aware(periods: Sequence[SessionPeriod], start: datetime, end: datetime) -> None:
    if start.tzinfo is None or end.tzinfo is None:
        raise ValueError("session start and end must be timezone-aware")
    for i, p in enumerate(periods):
        if p.start.tzinfo is None or p.end.tzinfo is None:
            raise ValueError(f"periods[{i}]: start and end must be timezone-aware")


def _check_periods(periods: Sequence[SessionPeriod], start: datetime, end: datetime) -> None:
    if end < start:
        raise ValueError(f"session ends ({end}) before it starts ({start})")
    if not periods:
        raise ValueError("a session needs at least one period")
    expected = start
    seen_session = False
    for i, p in enumerate(periods):
        if p.start != expected:
            raise ValueError(
                f"periods[{i}] starts at {p.start.isoformat()}, expected {expected.isoformat()}"
                " (periods must be contiguous from the session start)"
            )
        if p.end < p.start:
            raise ValueError(f"periods[{i}] ends before it starts")
        if p.energy_wh < 0:
            raise ValueError(f"periods[{i}].energy_wh is negative ({p.energy_wh})")
        if p.state is PeriodState.RESERVATION and seen_session:
            raise ValueError(f"periods[{i}]: a reservation period after the session started")
        seen_session = seen_session or p.state is not PeriodState.RESERVATION
        expected = p.end
    if expected != end:
        raise ValueError(f"periods end at {expected.isoformat()}, session at {end.isoformat()}")


def _power_bounds(p: SessionPeriod) -> tuple[Decimal | None, Decimal | None]:
    lo, hi = _bounds(p.min_power_w, p.max_power_w)
    if lo is None and p.state is PeriodState.CHARGING:
        seconds = _seconds(p.end - p.start)
        if seconds > 0:
            lo = hi = p.energy_wh * _S_PER_H / seconds  # average power
    if lo is None and p.state is not PeriodState.CHARGING:
        lo = hi = _ZERO
    return _kw(lo), _kw(hi)


def _kw(watts: Decimal | None) -> Decimal | None:
    return None if watts is None else watts / _WH_PER_KWH


def _current_bounds(p: SessionPeriod) -> tuple[Decimal | None, Decimal | None]:
    lo, hi = _bounds(p.min_current_a, p.max_current_a)
    if lo is None and p.state is not PeriodState.CHARGING:
        lo = hi = _ZERO
    return lo, hi


class _Money:
    """An exact amount excl. VAT and incl. VAT (None once any part is unknown)."""

    def __init__(self) -> None:
        self.excl = _ZERO
        self.incl: Decimal | None = _ZERO

    def add(self, cost: Decimal, vat: Decimal | None) -> None:
        self.excl += cost
        if self.incl is None:
            return
        if vat is None:
            self.incl = None if cost != 0 else self.incl
        else:
            self.incl += cost * (100 + vat) / 100

    def absorb(self, other: _Money) -> None:
        self.excl += other.excl
        self.incl = None if self.incl is None or other.incl is None else self.incl + other.incl

    def reported(self) -> Price:
        return Price(
            round_reported(self.excl), None if self.incl is None else round_reported(self.incl)
        )


def _apply_bounds(total: _Money, tariff: Tariff) -> tuple[bool, bool]:
    """Apply min_price then max_price to ``total``; say which of them applied.

    The spec applies each bound to excl. and incl. VAT separately. A bound
    without incl_vat that replaces the excl. total leaves the incl. total unknown.
    """
    applied = [False, False]
    for n, bound, beyond in (
        (0, tariff.min_price, operator.lt),
        (1, tariff.max_price, operator.gt),
    ):
        if bound is None:
            continue
        if beyond(total.excl, bound.excl_vat):
            total.excl, applied[n] = bound.excl_vat, True
            if bound.incl_vat is None:
                total.incl = None
        if (
            bound.incl_vat is not None
            and total.incl is not None
            and beyond(total.incl, bound.incl_vat)
        ):
            total.incl, applied[n] = bound.incl_vat, True
    return applied[0], applied[1]


_UNIT = {Dimension.ENERGY: _WH_PER_KWH, Dimension.TIME: _S_PER_H, Dimension.PARKING_TIME: _S_PER_H}


def price_session(
    tariff: Tariff,
    periods: Sequence[SessionPeriod],
    *,
    start: datetime,
    end: datetime,
    timezone: tzinfo,
) -> PricingResult:
    """Price one session with one tariff.

    ``start``/``end``: the CDR's start_date_time/end_date_time (a reservation, if
    any, starts the session). ``periods``: contiguous from ``start`` to ``end``,
    reservation periods first. ``timezone``: the site's zone, in which
    restriction times, dates and weekdays are read. Duration restrictions count
    from ``start``. Raises ValueError for inconsistent periods.
    """
    _check_aware(periods, start, end)
    # Aware datetimes sharing a ZoneInfo add and subtract in wall time; UTC does not.
    start, end = start.astimezone(UTC), end.astimezone(UTC)
    periods = [
        replace(p, start=p.start.astimezone(UTC), end=p.end.astimezone(UTC)) for p in periods
    ]
    _check_periods(periods, start, end)
    minutes = _time_boundaries(tariff)
    thresholds = _energy_thresholds(tariff)
    duration_cuts = _duration_cuts(tariff, start)
    expired = all(p.state is PeriodState.RESERVATION for p in periods)

    priced: list[PricedPeriod] = []
    volumes: dict[tuple[int, Dimension], Decimal] = {}
    group_total: dict[str, Decimal] = {}
    group_last: dict[str, tuple[int, Dimension]] = {}
    flat: dict[bool, tuple[int, PriceComponent]] = {}  # keyed by "is reservation"
    cum_wh = _ZERO
    parking_s = _ZERO

    for period in periods:
        cuts = [
            *_local_cuts(period.start, period.end, timezone, minutes),
            *duration_cuts,
        ]
        pieces = _split(period, cuts, cum_wh, thresholds)
        power, current = _power_bounds(period), _current_bounds(period)
        for x, y, e in pieces:
            ctx = _Context(
                local=x.astimezone(timezone).replace(tzinfo=None),
                elapsed_s=_seconds(x - start),
                cum_kwh=cum_wh / _WH_PER_KWH,
                power_kw=power,
                current_a=current,
                state=period.state,
                expired=expired,
            )
            seconds = _seconds(y - x)
            used: dict[Dimension, int] = {}
            is_res = period.state is PeriodState.RESERVATION
            dims: list[tuple[Dimension, str, Decimal]] = []
            if is_res:
                dims.append((Dimension.TIME, "reservation", seconds))
            else:
                dims.append((Dimension.ENERGY, "energy", e))
                if period.state is PeriodState.CHARGING:
                    dims.append((Dimension.TIME, "time", seconds))
                else:
                    dims.append((Dimension.PARKING_TIME, "time", seconds))
                    parking_s += seconds
            for dim, group, volume in dims:
                found = _find(tariff, dim, ctx)
                if found is None:
                    continue
                idx, _pc = found
                used[dim] = idx
                if volume > 0:
                    key = (idx, dim)
                    volumes[key] = volumes.get(key, _ZERO) + volume
                    group_total[group] = group_total.get(group, _ZERO) + volume
                    group_last[group] = key
            if is_res not in flat:
                found = _find(tariff, Dimension.FLAT, ctx)
                if found is not None:
                    flat[is_res] = found
                    used[Dimension.FLAT] = found[0]
            priced.append(PricedPeriod(x, y, period.state, e, period, used))
            cum_wh += e

    # step_size: once per group, at the last relevant component, on the group total.
    for group, key in group_last.items():
        idx, dim = key
        pc = tariff.elements[idx].component(dim)
        assert pc is not None
        remainder = group_total[group] % pc.step_size
        if remainder:
            volumes[key] += pc.step_size - remainder

    fixed, energy, time_cost, parking, reservation = (_Money() for _ in range(5))
    for (idx, dim), volume in volumes.items():
        el = tariff.elements[idx]
        pc = el.component(dim)
        assert pc is not None
        cost = pc.price * volume / _UNIT[dim]
        is_res = el.restrictions is not None and el.restrictions.reservation is not None
        if is_res:
            reservation.add(cost, pc.vat)
        elif dim is Dimension.ENERGY:
            energy.add(cost, pc.vat)
        elif dim is Dimension.TIME:
            time_cost.add(cost, pc.vat)
        else:
            parking.add(cost, pc.vat)
    for is_res, (_idx, pc) in flat.items():
        (reservation if is_res else fixed).add(pc.price, pc.vat)

    total = _Money()
    for part in (fixed, energy, time_cost, parking, reservation):
        total.absorb(part)
    min_applied, max_applied = _apply_bounds(total, tariff)

    session_start = next((p.start for p in periods if p.state is not PeriodState.RESERVATION), end)
    return PricingResult(
        tariff=tariff,
        periods=tuple(priced),
        costs=SessionCosts(
            total=total.reported(),
            fixed=fixed.reported(),
            energy=energy.reported(),
            time=time_cost.reported(),
            parking=parking.reported(),
            reservation=reservation.reported(),
        ),
        total_energy_kwh=round_reported(cum_wh / _WH_PER_KWH),
        total_time_h=round_reported(_seconds(end - session_start) / _S_PER_H),
        total_parking_time_h=round_reported(parking_s / _S_PER_H),
        min_price_applied=min_applied,
        max_price_applied=max_applied,
    )
