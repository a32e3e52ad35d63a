"""Read a CDR's periods back into engine input (for ``chargewatch tariff price``). Pure."""

from __future__ import annotations

__all__ = ["periods_from_cdr"]

from collections.abc import Mapping
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from chargewatch.billing.pricing import PeriodState, SessionPeriod
from chargewatch.billing.tariff import parse_datetime, to_decimal
from chargewatch.core.errors import ConfigError, ConfigProblem

_KILO = Decimal(1000)
_S_PER_H = Decimal(3600)
_TIME_DIMS = ("TIME", "PARKING_TIME", "RESERVATION_TIME")


def periods_from_cdr(
    doc: Any, *, file: str = "<cdr>"
) -> tuple[datetime, datetime, list[SessionPeriod]]:
    """Read ``start_date_time``, ``end_date_time`` and ``charging_periods`` of an OCPI CDR.

    OCPI bills a period's dimension volumes; its timestamp says when it
    started, i.e. which tariff element applies. So each period is laid out
    from its own start_date_time for its volumes: TIME hours of charging, then
    PARKING_TIME hours of parking (RESERVATION_TIME likewise). Where a CDR's
    timestamps and volumes disagree, the volumes are priced (such periods may
    overlap or leave gaps; price with ``cdr_volumes=True``). A period without
    any time volume lasts until the next one starts (the last until
    end_date_time), charging if it has ENERGY. The first period may start before
    the CDR's start_date_time (CDRs cut at the hours of a dynamic price do).
    When no period has ENERGY, the CDR's total_energy is spread over the
    charging time. ENERGY (kWh), MIN/MAX_POWER (kW; POWER as both when they are
    absent) and MIN/MAX_CURRENT (A per phase; likewise CURRENT) are carried over.
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

    a = a.astimezone(UTC)
    reserved = dims.get("RESERVATION_TIME", Decimal(0))
    if "RESERVATION_TIME" in dims and not charging and not parking and not energy:
        return [make(a, a + _hours(reserved), PeriodState.RESERVATION, Decimal(0))]
    if "TIME" not in dims and "PARKING_TIME" not in dims:
        # No time volume to bill: the timestamps are all there is.
        return [make(a, b.astimezone(UTC), PeriodState.CHARGING, energy)]
    out: list[SessionPeriod] = []
    split = a + _hours(charging)
    if "TIME" in dims or energy:  # energy is delivered while charging
        out.append(make(a, split, PeriodState.CHARGING, energy))
    if "PARKING_TIME" in dims:
        out.append(make(split, split + _hours(parking), PeriodState.PARKING, Decimal(0)))
    return out


def _hours(volume: Decimal) -> timedelta:
    """A time volume in hours as a timedelta, to the microsecond."""
    return timedelta(microseconds=int(volume * _S_PER_H * 1_000_000))


def _seconds(a: datetime, b: datetime) -> Decimal:
    d = b.astimezone(UTC) - a.astimezone(UTC)
    return Decimal((d.days * 86_400 + d.seconds) * 1_000_000 + d.microseconds).scaleb(-6)
