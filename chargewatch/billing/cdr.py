"""Build the OCPI 2.2.1 CDR fields of a session, and read a CDR's periods back.

The sessions code calls :func:`build_cdr`; ``chargewatch tariff price`` calls
:func:`periods_from_cdr` then :func:`build_cdr`. Both are pure.

A session without a tariff is *unpriced* (:class:`UnpricedCdr`, no cost fields
at all), never priced as 0: OCPI's way to say "free" is a FLAT 0.00 tariff.
"""

from __future__ import annotations

__all__ = [
    "CdrPeriod",
    "PricedCdr",
    "UnpricedCdr",
    "build_cdr",
    "json_text",
    "periods_from_cdr",
]

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta, tzinfo
from decimal import Decimal
from typing import Any

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
from chargewatch.billing.tariff import Dimension, Price, Tariff, parse_datetime, to_decimal
from chargewatch.errors import ConfigError, ConfigProblem

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
            "start_date_time": _datetime_text(self.start_date_time),
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
            "start_date_time": _datetime_text(self.start_date_time),
            "end_date_time": _datetime_text(self.end_date_time),
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


def _datetime_text(dt: datetime) -> str:
    text = dt.astimezone(UTC).isoformat(timespec="milliseconds")
    return text.replace("+00:00", "Z").replace(".000Z", "Z")


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
      ``min_current_a``/``max_current_a`` (A, summed over phases). Cut periods
      where the power or current changes materially; the engine itself cuts at
      time-of-day, duration and energy boundaries.

    Returns :class:`PricedCdr` (``to_ocpi()`` gives charging_periods with
    start_date_time, dimensions and tariff_id, every total_* field, currency and
    tariffs) or, without a tariff, :class:`UnpricedCdr` (no cost fields; do not
    emit it as a CDR). Raises ValueError if the periods are inconsistent.
    """
    with exact_context():
        return _build_cdr(tariff, start=start, end=end, timezone=timezone, periods=periods)


def _build_cdr(
    tariff: Tariff | None,
    *,
    start: datetime,
    end: datetime,
    timezone: tzinfo,
    periods: Sequence[SessionPeriod],
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
    result = price_session(tariff, periods, start=start, end=end, timezone=timezone)
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


def tariff_to_ocpi(tariff: Tariff) -> dict[str, Any]:
    """The Tariff as OCPI JSON values (for the CDR's ``tariffs`` list)."""
    elements: list[dict[str, Any]] = []
    for el in tariff.elements:
        comps = []
        for pc in el.price_components:
            c: dict[str, Any] = {"type": pc.type.value, "price": pc.price}
            if pc.vat is not None:
                c["vat"] = pc.vat
            c["step_size"] = pc.step_size
            comps.append(c)
        entry: dict[str, Any] = {"price_components": comps}
        r = el.restrictions
        if r is not None:
            rd: dict[str, Any] = {}
            for name in ("start_time", "end_time"):
                t = getattr(r, name)
                if t is not None:
                    rd[name] = t.strftime("%H:%M")
            for name in ("start_date", "end_date"):
                d = getattr(r, name)
                if d is not None:
                    rd[name] = d.isoformat()
            for name in (
                "min_kwh",
                "max_kwh",
                "min_current",
                "max_current",
                "min_power",
                "max_power",
                "min_duration",
                "max_duration",
            ):
                v = getattr(r, name)
                if v is not None:
                    rd[name] = v
            if r.day_of_week:
                rd["day_of_week"] = [d.name for d in sorted(r.day_of_week, key=lambda d: d.value)]
            if r.reservation is not None:
                rd["reservation"] = r.reservation.value
            entry["restrictions"] = rd
        elements.append(entry)
    out: dict[str, Any] = {
        "country_code": tariff.country_code,
        "party_id": tariff.party_id,
        "id": tariff.id,
        "currency": tariff.currency,
    }
    if tariff.type is not None:
        out["type"] = tariff.type
    if tariff.tariff_alt_text:
        out["tariff_alt_text"] = [{"language": la, "text": t} for la, t in tariff.tariff_alt_text]
    if tariff.tariff_alt_url is not None:
        out["tariff_alt_url"] = tariff.tariff_alt_url
    for name in ("min_price", "max_price"):
        p: Price | None = getattr(tariff, name)
        if p is not None:
            out[name] = {"excl_vat": p.excl_vat} | (
                {"incl_vat": p.incl_vat} if p.incl_vat is not None else {}
            )
    out["elements"] = elements
    for name in ("start_date_time", "end_date_time"):
        dt = getattr(tariff, name)
        if dt is not None:
            out[name] = _datetime_text(dt)
    out["last_updated"] = _datetime_text(tariff.last_updated)
    return out


# --- reading a CDR's periods (for the CLI) ----------------------------------------

_TIME_DIMS = ("TIME", "PARKING_TIME", "RESERVATION_TIME")


def periods_from_cdr(
    doc: Any, *, file: str = "<cdr>"
) -> tuple[datetime, datetime, list[SessionPeriod]]:
    """Read ``start_date_time``, ``end_date_time`` and ``charging_periods`` of an OCPI CDR.

    A period ends where the next starts (the last at end_date_time); durations
    come from these timestamps, the TIME/PARKING_TIME volumes only tell which is
    which. A period with both TIME and PARKING_TIME is charging first, then
    parking. When no period has ENERGY, the CDR's total_energy is spread over
    the charging time. ENERGY (kWh), MIN/MAX_POWER (kW; POWER as both when they are
    absent) and MIN/MAX_CURRENT (A; likewise CURRENT) are carried over.
    Raises ConfigError with the key path of every problem.
    """
    problems: list[ConfigProblem] = []

    def bad(path: str, message: str) -> None:
        problems.append(ConfigProblem(file, path, message))

    if not isinstance(doc, Mapping):
        bad("", "expected a JSON object (one OCPI CDR)")
        raise ConfigError(problems)

    def when(value: Any, path: str) -> datetime | None:
        if not isinstance(value, str):
            bad(path, "required RFC 3339 date-time is missing")
            return None
        try:
            return parse_datetime(value)
        except ValueError as exc:
            bad(path, str(exc))
            return None

    start = when(doc.get("start_date_time"), "start_date_time")
    end = when(doc.get("end_date_time"), "end_date_time")
    raw_periods = doc.get("charging_periods")
    if not isinstance(raw_periods, list) or not raw_periods:
        bad("charging_periods", "expected a non-empty list")
        raise ConfigError(problems)
    starts: list[datetime | None] = []
    volumes: list[dict[str, Decimal]] = []
    for i, raw in enumerate(raw_periods):
        path = f"charging_periods[{i}]"
        if not isinstance(raw, Mapping):
            bad(path, "expected an object")
            starts.append(None)
            volumes.append({})
            continue
        starts.append(when(raw.get("start_date_time"), f"{path}.start_date_time"))
        dims: dict[str, Decimal] = {}
        raw_dims = raw.get("dimensions")
        if not isinstance(raw_dims, list):
            bad(f"{path}.dimensions", "expected a list")
            raw_dims = []
        for j, dim in enumerate(raw_dims):
            dpath = f"{path}.dimensions[{j}]"
            if not isinstance(dim, Mapping) or not isinstance(dim.get("type"), str):
                bad(dpath, "expected an object with type and volume")
                continue
            volume = to_decimal(dim.get("volume"))
            if volume is None:
                bad(f"{dpath}.volume", "expected a number")
                continue
            if dim["type"] in ("ENERGY", *_TIME_DIMS) and volume < 0:
                bad(f"{dpath}.volume", "negative volumes are not supported")
                continue
            if dim["type"] in ("ENERGY", *_TIME_DIMS):
                dims[dim["type"]] = dims.get(dim["type"], Decimal(0)) + volume
            else:  # a bound or an average: a repeated one replaces the earlier
                dims[dim["type"]] = volume
        volumes.append(dims)
    if start and starts and starts[0] and starts[0] != start:
        bad("charging_periods[0].start_date_time", "differs from the CDR's start_date_time")
    for i in range(1, len(starts)):
        a, b = starts[i - 1], starts[i]
        if a and b and b < a:
            bad(f"charging_periods[{i}].start_date_time", "is before the previous period's")
    if end and starts[-1] and end < starts[-1]:
        bad("end_date_time", "is before the last charging period's start")
    if problems:
        raise ConfigError(problems)
    assert start and end
    ends = [*starts[1:], end]
    periods: list[SessionPeriod] = []
    for a, b, dims in zip(starts, ends, volumes, strict=True):
        assert a and b
        periods.extend(_periods_of(a, b, dims))
    total_energy = to_decimal(doc.get("total_energy"))
    if total_energy and not any("ENERGY" in dims for dims in volumes):
        periods = _spread_energy(periods, total_energy * _KILO)
    return start, end, periods


def _spread_energy(periods: list[SessionPeriod], wh: Decimal) -> list[SessionPeriod]:
    """Share a CDR's total_energy over its charging time when no period states ENERGY.

    Periods without ENERGY (the spec's own example CDR) would otherwise price as
    0 kWh; constant power over the charging periods is the least-informed guess.
    """
    charging = [i for i, p in enumerate(periods) if p.state is PeriodState.CHARGING]
    total_s = sum((_seconds(periods[i].start, periods[i].end) for i in charging), Decimal(0))
    if not charging or total_s == 0:
        return periods
    out = list(periods)
    left = wh
    for n, i in enumerate(charging):
        p = periods[i]
        share = left if n == len(charging) - 1 else wh * _seconds(p.start, p.end) / total_s
        left -= share
        out[i] = replace(p, energy_wh=share)
    return out


def _periods_of(a: datetime, b: datetime, dims: dict[str, Decimal]) -> list[SessionPeriod]:
    def pick(lo: str, hi: str, avg: str, scale: Decimal) -> tuple[Decimal | None, Decimal | None]:
        low, high = dims.get(lo), dims.get(hi)
        if low is None and high is None and avg in dims:
            low = high = dims[avg]
        return (
            None if low is None else low * scale,
            None if high is None else high * scale,
        )

    min_p, max_p = pick("MIN_POWER", "MAX_POWER", "POWER", _KILO)
    min_c, max_c = pick("MIN_CURRENT", "MAX_CURRENT", "CURRENT", Decimal(1))
    energy = dims.get("ENERGY", Decimal(0)) * _KILO
    charging = dims.get("TIME", Decimal(0))
    parking = dims.get("PARKING_TIME", Decimal(0))

    def make(x: datetime, y: datetime, state: PeriodState, wh: Decimal) -> SessionPeriod:
        return SessionPeriod(x, y, state, wh, min_p, max_p, min_c, max_c)

    if "RESERVATION_TIME" in dims and not charging and not parking and not energy:
        return [make(a, b, PeriodState.RESERVATION, Decimal(0))]
    if charging > 0 and parking > 0:
        # Charging first, for the TIME volume (to the microsecond), then parking.
        a, b = a.astimezone(UTC), b.astimezone(UTC)
        split = min(b, a + timedelta(microseconds=int(charging * _S_PER_H * 1_000_000)))
        return [
            make(a, split, PeriodState.CHARGING, energy),
            make(split, b, PeriodState.PARKING, Decimal(0)),
        ]
    if "PARKING_TIME" in dims and not charging and not energy:
        return [make(a, b, PeriodState.PARKING, Decimal(0))]
    return [make(a, b, PeriodState.CHARGING, energy)]


def json_text(value: Any, *, indent: int | None = 2) -> str:
    """JSON text with Decimals written as numbers, digit for digit (json cannot).

    ``indent=None`` gives one line (for JSON Lines such as cdrs.jsonl).
    """
    return _json(value, indent, 0)


def _json(value: Any, indent: int | None, level: int) -> str:
    if isinstance(value, Mapping | list | tuple):
        pairs = isinstance(value, Mapping)
        items = (
            [f"{_string(str(k))}: {_json(v, indent, level + 1)}" for k, v in value.items()]
            if isinstance(value, Mapping)
            else [_json(v, indent, level + 1) for v in value]
        )
        left, right = ("{", "}") if pairs else ("[", "]")
        if not items:
            return left + right
        if indent is None:
            return left + ", ".join(items) + right
        pad, end_pad = " " * (indent * (level + 1)), " " * (indent * level)
        return f"{left}\n{pad}" + f",\n{pad}".join(items) + f"\n{end_pad}{right}"
    if isinstance(value, Decimal):
        return format(value, "f")
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return _string(value)
    raise TypeError(f"cannot write {type(value).__name__} as JSON")


def _string(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)
