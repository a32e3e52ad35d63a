"""Small builders for billing tests: load tariffs, lay out a session minute by minute."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

from chargewatch.billing.cdr import PricedCdr, build_cdr
from chargewatch.billing.pricing import PeriodState, SessionPeriod
from chargewatch.billing.tariff import Tariff, parse_tariff
from chargewatch.billing.tariff_files import load_tariff

TESTDATA = Path(__file__).parent / "testdata"
OCPI = TESTDATA / "ocpi"
REPO = Path(__file__).parents[2]

C, P, R = PeriodState.CHARGING, PeriodState.PARKING, PeriodState.RESERVATION


def ocpi_tariff(name: str) -> Tariff:
    return load_tariff(OCPI / f"{name}.json")


def tariff(doc: dict[str, Any]) -> Tariff:
    """A tariff from a dict holding only elements (and optional extra fields)."""
    base: dict[str, Any] = {
        "country_code": "NL",
        "party_id": "CWT",
        "id": "T1",
        "currency": "EUR",
        "last_updated": "2025-01-01T00:00:00Z",
    }
    return parse_tariff(base | doc, file="test")


@dataclass(frozen=True)
class Span:
    """One period: state, length in minutes, energy in kWh, optional bounds (kW, A)."""

    state: PeriodState
    minutes: Decimal | int | str
    kwh: Decimal | int | str = 0
    min_kw: Decimal | int | None = None
    max_kw: Decimal | int | None = None
    min_a: Decimal | int | None = None
    max_a: Decimal | int | None = None


def _d(x: Decimal | int | str | None, scale: int = 1) -> Decimal | None:
    return None if x is None else Decimal(x) * scale


def session(start: datetime, *spans: Span) -> tuple[datetime, datetime, list[SessionPeriod]]:
    periods: list[SessionPeriod] = []
    zone = start.tzinfo
    # Step in UTC: adding to a ZoneInfo datetime would step wall time across DST.
    start = start.astimezone(UTC)
    t = start
    for s in spans:
        end = t + timedelta(microseconds=int(Decimal(s.minutes) * 60_000_000))
        energy = _d(s.kwh, 1000)
        assert energy is not None
        periods.append(
            SessionPeriod(
                t.astimezone(zone),
                end.astimezone(zone),
                s.state,
                energy,
                _d(s.min_kw, 1000),
                _d(s.max_kw, 1000),
                _d(s.min_a),
                _d(s.max_a),
            )
        )
        t = end
    return start.astimezone(zone), t.astimezone(zone), periods


def price(t: Tariff, start: datetime, *spans: Span) -> PricedCdr:
    """Price spans laid out from ``start``; restrictions are read in start's zone."""
    assert start.tzinfo is not None
    s, e, periods = session(start, *spans)
    cdr = build_cdr(t, start=s, end=e, timezone=start.tzinfo, periods=periods)
    assert isinstance(cdr, PricedCdr)
    return cdr


def as_printed(ours: Decimal, printed: Decimal) -> Decimal:
    """Our 4-decimal figure rounded the way the spec's prose printed its figure."""
    return ours.quantize(printed, rounding=ROUND_HALF_UP)
