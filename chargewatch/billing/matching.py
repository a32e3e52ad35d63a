"""Which tariff element prices a piece of a session: restriction matching. Pure."""

from __future__ import annotations

__all__ = ["MatchContext", "both_bounds", "find_component"]

from dataclasses import dataclass
from datetime import datetime, time
from decimal import Decimal

from chargewatch.billing.tariff import (
    Dimension,
    PriceComponent,
    ReservationKind,
    Restrictions,
    Tariff,
)
from chargewatch.sessions.periods import PeriodState


@dataclass(frozen=True, slots=True)
class MatchContext:
    """What restrictions are checked against, at the start of one piece."""

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


def both_bounds(lo: Decimal | None, hi: Decimal | None) -> tuple[Decimal | None, Decimal | None]:
    return (lo if lo is not None else hi, hi if hi is not None else lo)


def _matches(r: Restrictions | None, ctx: MatchContext) -> bool:
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


def find_component(
    tariff: Tariff, dim: Dimension, ctx: MatchContext
) -> tuple[int, PriceComponent] | None:
    """The first element (index) with a ``dim`` component whose restrictions hold."""
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
