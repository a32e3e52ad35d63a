"""Build the OCPI 2.2.1 CDR fields of a session (pure).

The sessions code and ``chargewatch tariff price`` call :func:`build_cdr`.
A session without a tariff is *unpriced* (:class:`UnpricedCdr`, no cost fields
at all), never priced as 0: OCPI's way to say "free" is a FLAT 0.00 tariff.
"""

from __future__ import annotations

__all__ = ["CdrPeriod", "PricedCdr", "UnpricedCdr", "build_cdr"]

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, tzinfo
from decimal import Decimal
from typing import Any

from chargewatch.billing.ocpi_json import datetime_text, tariff_to_ocpi
from chargewatch.billing.pricing import (
    PeriodState,
    PricedPeriod,
    PricingResult,
    SessionCosts,
    SessionPeriod,
    exact_context,
    price_session,
    round_reported,
)
from chargewatch.billing.tariff import Dimension, Price, Tariff

_KILO = Decimal(1000)
_S_PER_H = Decimal(3600)


@dataclass(frozen=True, slots=True)
class CdrPeriod:
    """OCPI ChargingPeriod: ``dimensions`` is ((CdrDimensionType, volume), ...)."""

    start_date_time: datetime
    dimensions: tuple[tuple[str, Decimal], ...]
    tariff_id: str | None

    def to_ocpi(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "start_date_time": datetime_text(self.start_date_time),
            "dimensions": [{"type": t, "volume": v} for t, v in self.dimensions],
        }
        if self.tariff_id is not None:
            out["tariff_id"] = self.tariff_id
        return out


@dataclass(frozen=True, slots=True)
class UnpricedCdr:
    """A session with no tariff: periods and volumes, and no costs."""

    start_date_time: datetime
    end_date_time: datetime
    charging_periods: tuple[CdrPeriod, ...]
    total_energy: Decimal  # kWh
    total_time: Decimal  # h
    total_parking_time: Decimal  # h
    reason: str = "no_tariff"


@dataclass(frozen=True, slots=True)
class PricedCdr:
    """The tariff-dependent fields of an OCPI 2.2.1 CDR (figures rounded to 4 decimals)."""

    start_date_time: datetime
    end_date_time: datetime
    currency: str
    tariff: Tariff
    charging_periods: tuple[CdrPeriod, ...]
    total_cost: Price
    total_fixed_cost: Price
    total_energy_cost: Price
    total_time_cost: Price
    total_parking_cost: Price
    total_reservation_cost: Price
    total_energy: Decimal  # kWh
    total_time: Decimal  # h
    total_parking_time: Decimal  # h
    result: PricingResult  # the engine's detail (which element priced what)

    @property
    def tariff_id(self) -> str:
        return self.tariff.id

    def totals(self) -> dict[str, Any]:
        """The totals as ``chargewatch tariff price`` prints them (unknown incl_vat: None)."""
        out: dict[str, Any] = {}
        for name in (
            "total_cost",
            "total_fixed_cost",
            "total_energy_cost",
            "total_time_cost",
            "total_parking_cost",
            "total_reservation_cost",
        ):
            price: Price = getattr(self, name)
            out[name] = {"excl_vat": price.excl_vat, "incl_vat": price.incl_vat}
        out["total_energy"] = self.total_energy
        out["total_time"] = self.total_time
        out["total_parking_time"] = self.total_parking_time
        return out

    def to_ocpi(self) -> dict[str, Any]:
        """The CDR fields this module owns, as OCPI JSON values (Decimal numbers).

        The caller adds id, party, token, location, auth_method and last_updated.
        ``tariffs`` holds the tariff as priced; an unknown incl_vat is omitted.
        """
        out: dict[str, Any] = {
            "start_date_time": datetime_text(self.start_date_time),
            "end_date_time": datetime_text(self.end_date_time),
            "currency": self.currency,
            "tariffs": [tariff_to_ocpi(self.tariff)],
            "charging_periods": [p.to_ocpi() for p in self.charging_periods],
        }
        for name, value in self.totals().items():
            if isinstance(value, dict):
                out[name] = {k: v for k, v in value.items() if v is not None}
            else:
                out[name] = value
        return out


def _dimensions(
    state: PeriodState, seconds: Decimal, energy_wh: Decimal, source: SessionPeriod
) -> tuple[tuple[str, Decimal], ...]:
    hours = round_reported(seconds / _S_PER_H)
    dims: list[tuple[str, Decimal]] = []
    if state is PeriodState.RESERVATION:
        dims.append(("RESERVATION_TIME", hours))
    elif state is PeriodState.PARKING:
        dims.append(("PARKING_TIME", hours))
    else:
        dims.append(("ENERGY", round_reported(energy_wh / _KILO)))
        dims.append(("TIME", hours))
        for name, value, scale in (
            ("MIN_POWER", source.min_power_w, _KILO),
            ("MAX_POWER", source.max_power_w, _KILO),
            ("MIN_CURRENT", source.min_current_a, Decimal(1)),
            ("MAX_CURRENT", source.max_current_a, Decimal(1)),
        ):
            if value is not None:
                dims.append((name, round_reported(value / scale)))
    return tuple(dims)


def _seconds(a: datetime, b: datetime) -> Decimal:
    d = b.astimezone(UTC) - a.astimezone(UTC)  # same-zone subtraction would use wall time
    return Decimal((d.days * 86_400 + d.seconds) * 1_000_000 + d.microseconds).scaleb(-6)


def _merged(pieces: Sequence[PricedPeriod]) -> list[PricedPeriod]:
    """Join neighbouring pieces of one input period that the same elements priced.

    The engine also cuts where nothing changed for this tariff (a DST change, a
    boundary of a dimension the period does not use); the CDR needs a period
    only where the price may change (mod_cdrs, ChargingPeriod).
    """
    out: list[PricedPeriod] = []
    for p in pieces:
        prev = out[-1] if out else None
        if (
            prev is not None
            and prev.source is p.source
            and _priced_by(prev) == _priced_by(p)
            and prev.end == p.start
        ):
            out[-1] = replace(prev, end=p.end, energy_wh=prev.energy_wh + p.energy_wh)
        else:
            out.append(p)
    return out


def _priced_by(p: PricedPeriod) -> dict[Dimension, int]:
    # FLAT is charged once, so where it was found is no reason for a new period.
    return {d: i for d, i in p.elements.items() if d is not Dimension.FLAT}


def build_cdr(
    tariff: Tariff | None,
    *,
    start: datetime,
    end: datetime,
    timezone: tzinfo,
    periods: Sequence[SessionPeriod],
    cdr_volumes: bool = False,
) -> PricedCdr | UnpricedCdr:
    """Price a session and return its OCPI 2.2.1 CDR fields.

    Arguments (all keyword-only except ``tariff``):

    - ``tariff``: the parsed Tariff valid at the session start (for a charger:
      its own tariff, else its site's default), or ``None`` when there is none.
    - ``start``/``end``: timezone-aware session start and end (the CDR's
      start_date_time/end_date_time; a reservation, if any, starts the session).
    - ``timezone``: the site's zone (``zoneinfo.ZoneInfo(site.timezone)``);
      restriction times, dates and weekdays are local to it.
    - ``periods``: contiguous :class:`SessionPeriod` s from ``start`` to
      ``end``: state CHARGING (energy flowing), PARKING (connected, idle) or
      RESERVATION (before the session, only first), each with ``energy_wh`` and
      optional ``min_power_w``/``max_power_w`` (W) and
      ``min_current_a``/``max_current_a`` (A, the largest phase). Cut periods
      where the power or current changes materially; the engine itself cuts at
      time-of-day, duration and energy boundaries.
    - ``cdr_volumes``: the periods come from another party's CDR
      (``periods_from_cdr``): see :func:`~chargewatch.billing.pricing.price_session`.

    Returns :class:`PricedCdr` (``to_ocpi()`` gives charging_periods with
    start_date_time, dimensions and tariff_id, every total_* field, currency and
    tariffs) or, without a tariff, :class:`UnpricedCdr` (no cost fields; do not
    emit it as a CDR). Raises ValueError if the periods are inconsistent.

    Example (the wiring for sessions)::

        from zoneinfo import ZoneInfo
        from chargewatch.billing.cdr import PricedCdr, build_cdr
        from chargewatch.billing.tariff_files import load_tariff_dir
        from chargewatch.billing.ocpi_json import json_text
        from chargewatch.billing.pricing import PeriodState, SessionPeriod

        tariffs = load_tariff_dir("tariffs")             # {tariff id: Tariff}
        site = fleet.site(fleet.charger(charger_id).site)
        cdr = build_cdr(
            tariffs.get(fleet.tariff_for(charger_id)),   # None: unpriced
            start=t0, end=t2, timezone=ZoneInfo(site.timezone),
            periods=[
                SessionPeriod(t0, t1, PeriodState.CHARGING, Decimal("7400"),
                              min_power_w=Decimal("7000"), max_power_w=Decimal("7400"),
                              max_current_a=Decimal("32")),
                SessionPeriod(t1, t2, PeriodState.PARKING),
            ],
        )
        if isinstance(cdr, PricedCdr):
            line = json_text(cdr.to_ocpi() | {"id": ..., "last_updated": ...}, indent=None)
    """
    with exact_context():
        return _build_cdr(
            tariff,
            start=start,
            end=end,
            timezone=timezone,
            periods=periods,
            cdr_volumes=cdr_volumes,
        )


def _build_cdr(
    tariff: Tariff | None,
    *,
    start: datetime,
    end: datetime,
    timezone: tzinfo,
    periods: Sequence[SessionPeriod],
    cdr_volumes: bool,
) -> PricedCdr | UnpricedCdr:
    if tariff is None:
        cdr_periods = tuple(
            CdrPeriod(p.start, _dimensions(p.state, _seconds(p.start, p.end), p.energy_wh, p), None)
            for p in periods
        )
        session_start = next(
            (p.start for p in periods if p.state is not PeriodState.RESERVATION), end
        )
        parking = sum(
            (_seconds(p.start, p.end) for p in periods if p.state is PeriodState.PARKING),
            Decimal(0),
        )
        return UnpricedCdr(
            start_date_time=start,
            end_date_time=end,
            charging_periods=cdr_periods,
            total_energy=round_reported(sum((p.energy_wh for p in periods), Decimal(0)) / _KILO),
            total_time=round_reported(_seconds(session_start, end) / _S_PER_H),
            total_parking_time=round_reported(parking / _S_PER_H),
        )
    result = price_session(
        tariff, periods, start=start, end=end, timezone=timezone, cdr_volumes=cdr_volumes
    )
    costs: SessionCosts = result.costs
    return PricedCdr(
        start_date_time=start,
        end_date_time=end,
        currency=tariff.currency,
        tariff=tariff,
        charging_periods=tuple(
            CdrPeriod(p.start, _dimensions(p.state, p.seconds, p.energy_wh, p.source), tariff.id)
            for p in _merged(result.periods)
        ),
        total_cost=costs.total,
        total_fixed_cost=costs.fixed,
        total_energy_cost=costs.energy,
        total_time_cost=costs.time,
        total_parking_cost=costs.parking,
        total_reservation_cost=costs.reservation,
        total_energy=result.total_energy_kwh,
        total_time=result.total_time_h,
        total_parking_time=result.total_parking_time_h,
        result=result,
    )
