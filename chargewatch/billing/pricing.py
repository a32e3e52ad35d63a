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
from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, tzinfo
from decimal import ROUND_HALF_EVEN, ROUND_HALF_UP, Context, Decimal, localcontext

from chargewatch.billing.cutting import (
    duration_cuts,
    energy_thresholds,
    local_cuts,
    split_period,
    time_boundaries,
)
from chargewatch.billing.matching import MatchContext, both_bounds, find_component
from chargewatch.billing.tariff import (
    Dimension,
    Price,
    PriceComponent,
    Tariff,
)
from chargewatch.sessions.periods import PeriodState, SessionPeriod, seconds

MONEY_QUANTUM = Decimal("0.0001")
_ZERO = Decimal(0)
_WH_PER_KWH = Decimal(1000)
_S_PER_H = Decimal(3600)


def exact_context() -> AbstractContextManager[Context]:
    """The decimal context billing computes in (34 digits), whatever the caller's is."""
    return localcontext(Context(prec=34, rounding=ROUND_HALF_EVEN))


def round_reported(value: Decimal) -> Decimal:
    """The one rounding step: half-up to 4 decimals, applied to reported figures only."""
    return value.quantize(MONEY_QUANTUM, rounding=ROUND_HALF_UP, context=Context(prec=34))


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
        return seconds(self.end - self.start)


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


# --- the engine -----------------------------------------------------------------


def _check_aware(periods: Sequence[SessionPeriod], start: datetime, end: datetime) -> None:
    if start.tzinfo is None or end.tzinfo is None:
        raise ValueError("session start and end must be timezone-aware")
    for i, p in enumerate(periods):
        if p.start.tzinfo is None or p.end.tzinfo is None:
            raise ValueError(f"periods[{i}]: start and end must be timezone-aware")


def _check_periods(
    periods: Sequence[SessionPeriod], start: datetime, end: datetime, cdr_volumes: bool
) -> None:
    if end < start:
        raise ValueError(f"session ends ({end}) before it starts ({start})")
    if not periods:
        raise ValueError("a session needs at least one period")
    expected = start
    seen_session = False
    for i, p in enumerate(periods):
        if cdr_volumes:
            # Laid out from a CDR's volumes: in start order, otherwise free.
            if i and p.start < periods[i - 1].start:
                raise ValueError(f"periods[{i}] starts before the previous period")
        elif p.start != expected:
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
    if expected != end and not cdr_volumes:
        raise ValueError(f"periods end at {expected.isoformat()}, session at {end.isoformat()}")


def _power_bounds(p: SessionPeriod) -> tuple[Decimal | None, Decimal | None]:
    lo, hi = both_bounds(p.min_power_w, p.max_power_w)
    if lo is None and p.state is PeriodState.CHARGING:
        span_s = seconds(p.end - p.start)
        if span_s > 0:
            lo = hi = p.energy_wh * _S_PER_H / span_s  # average power
    if lo is None and p.state is not PeriodState.CHARGING:
        lo = hi = _ZERO
    return _kw(lo), _kw(hi)


def _kw(watts: Decimal | None) -> Decimal | None:
    return None if watts is None else watts / _WH_PER_KWH


def _current_bounds(p: SessionPeriod) -> tuple[Decimal | None, Decimal | None]:
    lo, hi = both_bounds(p.min_current_a, p.max_current_a)
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
    cdr_volumes: bool = False,
) -> PricingResult:
    """Price one session with one tariff.

    ``start``/``end``: the CDR's start_date_time/end_date_time (a reservation, if
    any, starts the session). ``periods``: contiguous from ``start`` to ``end``,
    reservation periods first. ``timezone``: the site's zone, in which
    restriction times, dates and weekdays are read. Duration restrictions count
    from ``start`` (a piece before it counts as 0 s). Raises ValueError for
    inconsistent periods.

    ``cdr_volumes``: the periods were laid out from another party's CDR, each
    from its own start timestamp for its dimension volumes (``cdr_reader``).
    OCPI bills those volumes; the timestamps only say which element applies.
    So such periods may overlap or leave gaps where a CDR's timestamps and
    volumes disagree, and may start before ``start`` (a CDR cut at the hours
    of a dynamic price). A boundary of the tariff cuts such a period only
    before the next period starts.
    """
    _check_aware(periods, start, end)
    # Aware datetimes sharing a ZoneInfo add and subtract in wall time; UTC does not.
    start, end = start.astimezone(UTC), end.astimezone(UTC)
    periods = [
        replace(p, start=p.start.astimezone(UTC), end=p.end.astimezone(UTC)) for p in periods
    ]
    _check_periods(periods, start, end, cdr_volumes)
    minutes = time_boundaries(tariff)
    thresholds = energy_thresholds(tariff)
    duration_points = duration_cuts(tariff, start)
    expired = all(p.state is PeriodState.RESERVATION for p in periods)

    priced: list[PricedPeriod] = []
    volumes: dict[tuple[int, Dimension], Decimal] = {}
    group_total: dict[str, Decimal] = {}
    group_last: dict[str, tuple[int, Dimension]] = {}
    flat: dict[bool, tuple[int, PriceComponent]] = {}  # keyed by "is reservation"
    cum_wh = _ZERO
    parking_s = _ZERO

    for k, period in enumerate(periods):
        cuts = [
            *local_cuts(period.start, period.end, timezone, minutes),
            *duration_points,
        ]
        if cdr_volumes and k + 1 < len(periods):
            # A CDR's volume laid out past the next period's start (timestamps
            # and volumes disagree, or hours rounded to 4 decimals) stays
            # priced by the element its own start picked: the next period is
            # where the CDR itself says the price may change.
            cuts = [c for c in cuts if c < periods[k + 1].start]
        pieces = split_period(period, cuts, cum_wh, thresholds)
        power, current = _power_bounds(period), _current_bounds(period)
        for x, y, e in pieces:
            ctx = MatchContext(
                local=x.astimezone(timezone).replace(tzinfo=None),
                elapsed_s=max(seconds(x - start), _ZERO),
                cum_kwh=cum_wh / _WH_PER_KWH,
                power_kw=power,
                current_a=current,
                state=period.state,
                expired=expired,
            )
            piece_s = seconds(y - x)
            used: dict[Dimension, int] = {}
            is_res = period.state is PeriodState.RESERVATION
            dims: list[tuple[Dimension, str, Decimal]] = []
            if is_res:
                dims.append((Dimension.TIME, "reservation", piece_s))
            else:
                dims.append((Dimension.ENERGY, "energy", e))
                if period.state is PeriodState.CHARGING:
                    dims.append((Dimension.TIME, "time", piece_s))
                else:
                    dims.append((Dimension.PARKING_TIME, "time", piece_s))
                    parking_s += piece_s
            for dim, group, volume in dims:
                found = find_component(tariff, dim, ctx)
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
                found = find_component(tariff, Dimension.FLAT, ctx)
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
        total_time_h=round_reported(seconds(end - session_start) / _S_PER_H),
        total_parking_time_h=round_reported(parking_s / _S_PER_H),
        min_price_applied=min_applied,
        max_price_applied=max_applied,
    )
