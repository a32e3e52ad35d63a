"""Every worked example of OCPI 2.2.1's tariffs chapter, with the totals it states.

Each row lays the example's session out in periods and checks the totals the
text gives. The spec's prose rounds to 2 or 3 decimals; ours are exact to 4
decimals and are compared at the precision the spec printed (``as_printed``).
Sessions run in Europe/Berlin (the examples are German tariffs); the local
date is chosen for the weekday an example names.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from chargewatch.billing.cdr import PricedCdr, build_cdr
from chargewatch.billing.cdr_reader import periods_from_cdr
from chargewatch.billing.pricing import PeriodState
from chargewatch.billing.tariff import Price, parse_tariff
from tests.billing.helpers import OCPI, C, P, R, Span, as_printed, ocpi_tariff, price

BERLIN = ZoneInfo("Europe/Berlin")
MONDAY = "2024-06-03"
SATURDAY = "2024-06-08"


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=BERLIN)


@dataclass(frozen=True)
class Example:
    name: str
    tariff: str
    start: str
    spans: tuple[Span, ...]
    excl: str
    incl: str | None  # None: the spec says incl. VAT cannot be computed
    parts: dict[str, tuple[str, str | None]] = field(default_factory=dict)


EXAMPLES = [
    Example(
        "0.25/kWh, 20 kWh",
        "tariff_8_simple_025kwh",
        f"{MONDAY}T10:00",
        (Span(C, 120, 20),),
        "5.00",
        "5.50",
        {"total_energy_cost": ("5.00", "5.50")},
    ),
    Example(
        "0.25/kWh + start fee, 20 kWh",
        "tariff_9_025kwh_start",
        f"{MONDAY}T10:00",
        (Span(C, 120, 20),),
        "5.50",
        "6.10",
        {"total_fixed_cost": ("0.50", "0.60"), "total_energy_cost": ("5.00", "5.50")},
    ),
    Example(
        "0.25/kWh + min price, 20 kWh",
        "tariff_12_025kwh_min_price",
        f"{MONDAY}T10:00",
        (Span(C, 120, 20),),
        "5.00",
        "5.50",
    ),
    Example(
        "0.25/kWh + min price, under 2 kWh",
        "tariff_12_025kwh_min_price",
        f"{MONDAY}T10:00",
        (Span(C, 30, "1.5"),),
        "0.50",
        "0.55",
        {"total_energy_cost": ("0.375", "0.4125")},
    ),
    Example(
        "0.25/kWh + parking 40 min + start fee",
        "tariff_10_025kwh_parking_start",
        f"{MONDAY}T10:00",
        (Span(C, 120, 20), Span(P, 40)),
        "7.00",
        "7.90",
        {"total_parking_cost": ("1.50", "1.80")},
    ),
    Example(
        "start fee + max price, 50 kWh",
        "tariff_6_025kwh_start_max_price",
        f"{MONDAY}T10:00",
        (Span(C, 300, 50),),
        "10.00",
        "11.00",
        {"total_energy_cost": ("12.50", "13.75")},
    ),
    Example(
        "start fee + max price, 30 kWh",
        "tariff_6_025kwh_start_max_price",
        f"{MONDAY}T10:00",
        (Span(C, 180, 30),),
        "8.00",
        "8.85",
    ),
    Example(
        "2 euro per hour, 2.5 h",
        "tariff_1_simple_2hour",
        f"{MONDAY}T10:00",
        (Span(C, 150, 11),),
        "5.00",
        "5.50",
    ),
    Example(
        "3/h charging, 5/h parking, 150 + 42 min",
        "tariff_13_simple_3hour_5parking",
        f"{MONDAY}T10:00",
        (Span(C, 150, 30), Span(P, 42)),
        "11.25",
        "12.75",
        {"total_time_cost": ("7.50", "8.25"), "total_parking_cost": ("3.75", "4.50")},
    ),
    Example(
        "ad hoc 1.90/h, 2.5 h",
        "tariff_2_alt_text",
        f"{MONDAY}T10:00",
        (Span(C, 150, 11),),
        "4.75",
        "5.00",
    ),
    Example(
        "alt URL: start fee + energy per 100 Wh, 20.45 kWh",
        "tariff_3_alt_url",
        f"{MONDAY}T10:00",
        (Span(C, 120, "20.45"),),
        "5.63",
        "6.24",
        {"total_fixed_cost": ("0.50", "0.60"), "total_energy_cost": ("5.13", "5.64")},
    ),
    Example(
        "complex, Monday 09:30, 16 A, 165 + 42 min",
        "tariff_4_complex",
        f"{MONDAY}T09:30",
        (Span(C, 165, 10, max_a=16), Span(P, 42)),
        "9.00",
        "10.30",
        {"total_time_cost": ("2.75", "3.30"), "total_parking_cost": ("3.75", "4.125")},
    ),
    Example(
        "first kWh and first hour parking free, 20 kWh + 2:45 h parking",
        "tariff_7_first_hour_kwh_free",
        f"{MONDAY}T10:00",
        # The example counts parking hours from the start of parking, so it
        # assumes no charging time: a zero-length charging period reproduces it.
        (Span(C, 0, 20), Span(P, 165)),
        "7.30",
        None,
        {"total_energy_cost": ("3.80", None), "total_parking_cost": ("3.50", None)},
    ),
    Example(
        "reservation 5/h, 15 min, then 20 kWh",
        "tariff_15_reservation_5_euro_per_hour",
        f"{MONDAY}T10:00",
        (Span(R, 15), Span(C, 120, 20)),
        "6.75",
        "7.60",
        {"total_reservation_cost": ("1.25", "1.50"), "total_fixed_cost": ("0.50", "0.60")},
    ),
    Example(
        "reservation fee + 5/h per 5 min, 13 min, then 20 kWh",
        "tariff_16_reservation_2_euro_fee_5_euro_per_hour",
        f"{MONDAY}T10:00",
        (Span(R, 13), Span(C, 120, 20)),
        "8.75",
        "10.00",
        # The breakdown says 2.00 incl. VAT for the fee, but its total needs 2.40 (20 %).
        {"total_reservation_cost": ("3.25", "3.90")},
    ),
    Example(
        "reservation + expire fee, 22 min, then 20 kWh",
        "tariff_17_reservation_with_expire_fee",
        f"{MONDAY}T10:00",
        (Span(R, 22), Span(C, 120, 20)),
        "6.50",
        "7.30",
    ),
    Example(
        "reservation + expire fee, expired after 1 h",
        "tariff_17_reservation_with_expire_fee",
        f"{MONDAY}T10:00",
        (Span(R, 60),),
        "6.00",
        "7.20",
    ),
    Example(
        "reservation + expire time price, 22 min, then 20 kWh",
        "tariff_18_reservation_with_expire_time",
        f"{MONDAY}T10:00",
        (Span(R, 22), Span(C, 120, 20)),
        "7.00",
        "7.90",
    ),
    Example(
        "reservation + expire time price, expired after 1.5 h",
        "tariff_18_reservation_with_expire_time",
        f"{MONDAY}T10:00",
        (Span(R, 90),),
        "9.00",
        "10.80",
    ),
    Example(
        "step_size switching element #1: 16:55, 10 min + 2 min parking",
        "tariff_14_step_size",
        f"{MONDAY}T16:55",
        (Span(C, 10, 2), Span(P, 2)),
        "0.383",
        None,
        {"total_time_cost": ("0.30", None), "total_parking_cost": ("0.083", None)},
    ),
    Example(
        "step_size switching element #2: 16:35, 35 min",
        "tariff_14_step_size",
        f"{MONDAY}T16:35",
        (Span(C, 35, 6),),
        "1.30",
        None,
    ),
    Example(
        "step_size switching to free parking: 19:40, 12 min + 20 min parking",
        "tariff_14_step_size",
        f"{MONDAY}T19:40",
        (Span(C, 12, 2), Span(P, 20)),
        "0.78",
        None,
        {"total_time_cost": ("0.48", None), "total_parking_cost": ("0.30", None)},
    ),
    Example(
        "max_power: 1 kWh at 6 kW, 40 kWh at 48 kW, 0.5 kWh at 4 kW",
        "tariffrestriction_example_max_power",
        f"{MONDAY}T10:00",
        (Span(C, 10, 1, max_kw=6), Span(C, 50, 40, max_kw=48), Span(C, "7.5", "0.5", max_kw=4)),
        "20.30",
        "24.36",
    ),
    Example(
        "max_duration: 5 kWh in 30 min, then 1.2 kWh in 10 min",
        "tariffrestriction_example_max_duration",
        f"{MONDAY}T10:00",
        (Span(C, 30, 5), Span(C, 10, "1.2")),
        "0.30",
        "0.36",
    ),
]


def _check(ours: dict[str, Decimal | None], excl: str, incl: str | None, what: str) -> None:
    assert ours["excl_vat"] is not None
    assert as_printed(ours["excl_vat"], Decimal(excl)) == Decimal(excl), what
    if incl is None:
        assert ours["incl_vat"] is None, f"{what}: incl. VAT should be unknown"
    else:
        assert ours["incl_vat"] is not None, f"{what}: incl. VAT missing"
        assert as_printed(ours["incl_vat"], Decimal(incl)) == Decimal(incl), what


@pytest.mark.parametrize("ex", EXAMPLES, ids=lambda ex: ex.name)
def test_worked_example(ex: Example) -> None:
    cdr = price(ocpi_tariff(ex.tariff), at(ex.start), *ex.spans)
    totals = cdr.totals()
    _check(totals["total_cost"], ex.excl, ex.incl, "total_cost")
    for name, (excl, incl) in ex.parts.items():
        _check(totals[name], excl, incl, name)


def test_complex_saturday_as_we_price_it() -> None:
    """Saturday 13:30, min 43 A, 114 min charging + 71 min parking.

    The spec states 12.375 / 13.975, rounding the 71 parking minutes alone up to
    75. The same chapter's step_size examples (10 min charging + 2 min parking
    billed as 5 min parking) round charging and parking time *combined*, which is
    what we implement: 114 + 71 = 185 min is already a multiple of 5 minutes, so
    71 parking minutes are billed: 2.50 + 2.375 + 7.10 = 11.975 excl. VAT.
    """
    cdr = price(
        ocpi_tariff("tariff_4_complex"),
        at(f"{SATURDAY}T13:30"),
        Span(C, 114, 40, min_a=43),
        Span(P, 71),
    )
    assert cdr.total_time_cost.excl_vat == Decimal("2.375")
    assert cdr.total_parking_cost.excl_vat == Decimal("7.10")
    assert cdr.total_cost == Price(Decimal("11.975"), Decimal("13.535"))


@pytest.mark.xfail(strict=True, reason="spec rounds parking alone here; see the test above")
def test_complex_saturday_as_the_spec_states() -> None:
    cdr = price(
        ocpi_tariff("tariff_4_complex"),
        at(f"{SATURDAY}T13:30"),
        Span(C, 114, 40, min_a=43),
        Span(P, 71),
    )
    assert cdr.total_cost.excl_vat == Decimal("12.375")


def test_cdr_example_totals_match_its_own_tariff() -> None:
    """mod_cdrs' example CDR: TIME 2.00/h per 5 min, 1.973 h → 2 h billed → 4.00 / 4.40."""
    doc = json.loads((OCPI / "cdr_example.json").read_text(), parse_float=Decimal)
    start, end, periods = periods_from_cdr(doc)
    assert [p.state for p in periods] == [PeriodState.CHARGING]
    cdr = build_cdr(
        parse_tariff(doc["tariffs"][0]),
        start=start,
        end=end,
        timezone=BERLIN,
        periods=periods,
        cdr_volumes=True,
    )
    assert isinstance(cdr, PricedCdr)
    totals = cdr.totals()
    assert totals["total_cost"] == doc["total_cost"]
    assert totals["total_time_cost"] == doc["total_time_cost"]
    # 21:39:09 to 23:37:32 is 1.97306 h; the example prints 3 decimals.
    assert as_printed(totals["total_time"], doc["total_time"]) == doc["total_time"]
