"""The engine on our own cases: time-of-use, midnight, DST, caps with VAT, step_size
across element switches, parking, reservations, no tariff, and the example tariffs."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal, localcontext
from zoneinfo import ZoneInfo

import pytest

from chargewatch.billing.cdr import PricedCdr, UnpricedCdr, build_cdr
from chargewatch.billing.ocpi_json import json_text
from chargewatch.billing.pricing import PeriodState, SessionPeriod, price_session
from chargewatch.billing.tariff import Price, Tariff
from chargewatch.billing.tariff_files import load_tariff
from tests.billing.helpers import REPO, C, P, R, Span, ocpi_tariff, price, session, tariff

AMS = ZoneInfo("Europe/Amsterdam")
D = Decimal


def ams(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=AMS)


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def example(name: str) -> Tariff:
    return load_tariff(REPO / "tariffs" / f"{name}.json")


def period_starts(cdr: PricedCdr) -> list[datetime]:
    return [p.start_date_time for p in cdr.charging_periods]


# --- time of use, midnight, weekdays -------------------------------------------------


def test_time_of_use_boundary_splits_and_prices_each_side() -> None:
    t = example("time_of_use")
    # Wednesday 22:30-23:30 at 10 kW: 5 kWh at the weekday price, 5 kWh at night.
    cdr = price(t, ams("2026-11-18T22:30"), Span(C, 60, 10))
    assert cdr.total_energy_cost == Price(D("3.50"), D("4.235"))
    assert period_starts(cdr) == [utc("2026-11-18T21:30"), utc("2026-11-18T22:00")]


@pytest.mark.parametrize(
    ("start", "expected"),
    [
        # Thursday 22:00 to Friday 08:00 at 1 kW: 1 kWh weekday, 8 night, 1 weekday.
        ("2026-11-19T22:00", "3.08"),
        # Friday 22:00 to Saturday 08:00: the last hour falls on a Saturday.
        ("2026-11-20T22:00", "2.94"),
    ],
)
def test_night_window_wraps_over_midnight_and_weekday_is_the_local_date(
    start: str, expected: str
) -> None:
    cdr = price(example("time_of_use"), ams(start), Span(C, 600, 10))
    assert cdr.total_energy_cost.excl_vat == D(expected)


def test_end_time_midnight_means_end_of_day() -> None:
    t = tariff(
        {
            "elements": [
                {
                    "price_components": [{"type": "TIME", "price": 6, "step_size": 1}],
                    "restrictions": {"start_time": "20:00", "end_time": "00:00"},
                },
                {"price_components": [{"type": "TIME", "price": 1, "step_size": 1}]},
            ]
        }
    )
    cdr = price(t, ams("2026-11-18T23:00"), Span(C, 120, 1))
    assert cdr.total_time_cost.excl_vat == D("7.00")  # 23-24 at 6, 00-01 at 1


# --- DST in Europe/Amsterdam ---------------------------------------------------------

_DST_TARIFF = {
    "elements": [
        {
            "price_components": [{"type": "TIME", "price": 6, "step_size": 1}],
            "restrictions": {"start_time": "02:30", "end_time": "05:00"},
        },
        {"price_components": [{"type": "TIME", "price": 1, "step_size": 1}]},
    ]
}


def test_spring_forward_window_starting_in_the_skipped_hour() -> None:
    """29 March 2026: 02:00 CET jumps to 03:00 CEST; local 02:30 never happens.

    00:00Z-01:00Z is 01:00-02:00 CET (1.00/h); 01:00Z-02:00Z is 03:00-04:00 CEST,
    inside 02:30-05:00 (6.00/h). Cutting at "02:30 CET" (01:30Z) would be wrong.
    """
    cdr = price(tariff(_DST_TARIFF), utc("2026-03-29T00:00").astimezone(AMS), Span(C, 120, 5))
    assert cdr.total_time_cost.excl_vat == D("7.00")
    assert cdr.total_time == D("2.0000")
    assert period_starts(cdr) == [utc("2026-03-29T00:00"), utc("2026-03-29T01:00")]


def test_fall_back_repeated_hour_is_priced_twice() -> None:
    """25 October 2026: 03:00 CEST falls back to 02:00 CET, so 02:00-03:00 happens twice."""
    t = tariff(
        {
            "elements": [
                {
                    "price_components": [{"type": "TIME", "price": 6, "step_size": 1}],
                    "restrictions": {"start_time": "02:00", "end_time": "03:00"},
                },
                {"price_components": [{"type": "TIME", "price": 1, "step_size": 1}]},
            ]
        }
    )
    # 01:00 CEST (23:00Z) to 04:00 CET (03:00Z): four real hours.
    cdr = price(t, utc("2026-10-24T23:00").astimezone(AMS), Span(C, 240, 20))
    assert cdr.total_time == D("4.0000")
    assert cdr.total_time_cost.excl_vat == D("14.00")  # 1 + 6 + 6 + 1


def test_fixed_offset_zone_ignores_dst() -> None:
    # The same session read in the CDR's own "+01:00" offset: no jump, so the
    # window 02:30-05:00 (+01:00) is 01:30Z-02:00Z of this session only.
    start = utc("2026-03-29T00:00").astimezone(timezone(timedelta(hours=1)))
    cdr = price(tariff(_DST_TARIFF), start, Span(C, 120, 5))
    assert cdr.total_time_cost.excl_vat == D("1.50") + D("3.00")


# --- min/max price with VAT ------------------------------------------------------------

_CAPPED = {
    "max_price": {"excl_vat": 10.00, "incl_vat": 11.50},
    "elements": [
        {
            "price_components": [
                {"type": "FLAT", "price": 1.00, "vat": 0, "step_size": 1},
                {"type": "ENERGY", "price": 0.50, "vat": 20, "step_size": 1},
            ]
        }
    ],
}


@pytest.mark.parametrize(
    ("kwh", "total", "energy"),
    [
        (17, ("9.50", "11.20"), ("8.50", "10.20")),  # under both caps
        (18, ("10.00", "11.50"), ("9.00", "10.80")),  # incl. VAT capped, excl. exactly at cap
        (20, ("10.00", "11.50"), ("10.00", "12.00")),  # both capped; parts stay as computed
    ],
)
def test_max_price_caps_excl_and_incl_independently(
    kwh: int, total: tuple[str, str], energy: tuple[str, str]
) -> None:
    cdr = price(tariff(_CAPPED), ams("2026-11-18T10:00"), Span(C, 120, kwh))
    assert cdr.total_cost == Price(D(total[0]), D(total[1]))
    assert cdr.total_energy_cost == Price(D(energy[0]), D(energy[1]))


def test_min_price_with_unknown_vat_keeps_incl_unknown() -> None:
    t = tariff(
        {
            "min_price": {"excl_vat": 2.00, "incl_vat": 2.42},
            "elements": [{"price_components": [{"type": "ENERGY", "price": 0.25, "step_size": 1}]}],
        }
    )
    cdr = price(t, ams("2026-11-18T10:00"), Span(C, 60, 1))
    assert cdr.total_cost == Price(D("2.00"), None)
    assert cdr.result.min_price_applied


def test_bound_without_incl_vat_makes_incl_unknown_when_it_applies() -> None:
    t = tariff(
        {
            "max_price": {"excl_vat": 5.00},
            "elements": [
                {"price_components": [{"type": "ENERGY", "price": 0.5, "vat": 21, "step_size": 1}]}
            ],
        }
    )
    under = price(t, ams("2026-11-18T10:00"), Span(C, 60, 8))
    over = price(t, ams("2026-11-18T10:00"), Span(C, 60, 12))
    assert under.total_cost == Price(D("4.00"), D("4.84"))
    assert over.total_cost == Price(D("5.00"), None)  # VAT of the cap is not known


def test_example_max_price_cap() -> None:
    cdr = price(example("max_price_cap"), ams("2026-11-18T10:00"), Span(C, 240, 40))
    assert cdr.total_energy_cost.excl_vat + cdr.total_time_cost.excl_vat == D("16.80")
    assert cdr.total_cost == Price(D("15.00"), D("18.15"))


# --- step_size across element switches (mod_cdrs examples) --------------------------


def _before_after_17(dim: str, before: float, after: float, step: int) -> dict[str, object]:
    return {
        "elements": [
            {
                "price_components": [{"type": dim, "price": before, "step_size": step}],
                "restrictions": {"end_time": "17:00"},
            },
            {"price_components": [{"type": dim, "price": after, "step_size": step}]},
        ]
    }


def test_energy_step_rounds_the_session_total_billed_at_the_last_element() -> None:
    # 4.3 kWh before 17:00 and 1.1 kWh after, step 500 Wh: 5.4 → 5.5 kWh, so 1.2 after.
    t = tariff(_before_after_17("ENERGY", 0.20, 0.27, 500))
    cdr = price(t, ams("2026-11-18T16:17"), Span(C, 43, "4.3"), Span(C, 11, "1.1"))
    assert cdr.total_energy_cost.excl_vat == D("0.86") + D("0.324")


def test_time_step_rounds_the_session_total_not_the_last_part() -> None:
    # 6 min before 17:00 and 22 after, step 10 min: 28 → 30 min, so 24 min after.
    t = tariff(_before_after_17("TIME", 5, 7, 600))
    cdr = price(t, ams("2026-11-18T16:54"), Span(C, 28, 5))
    assert cdr.total_time_cost.excl_vat == D("0.50") + D("2.80")


def test_time_and_parking_are_rounded_together() -> None:
    """mod_cdrs: 21 min charging at 1.00/h, 16 min parking at 2.00/h, both per 10 min.

    Combined 37 min → 40, so 19 min of parking are billed (the tariffs chapter's
    rule; mod_cdrs' prose rounds the parking alone to 20 min here).
    """
    t = tariff(
        {
            "elements": [
                {
                    "price_components": [
                        {"type": "TIME", "price": 1, "step_size": 600},
                        {"type": "PARKING_TIME", "price": 2, "step_size": 600},
                    ]
                }
            ]
        }
    )
    cdr = price(t, ams("2026-11-18T10:00"), Span(C, 21, 3), Span(P, 16))
    assert cdr.total_time_cost.excl_vat == D("0.35")
    assert cdr.total_parking_cost.excl_vat == D("0.6333")  # 19 min at 2.00/h


# --- parking, power, duration and energy thresholds ------------------------------------


def test_idle_fee_starts_after_the_grace_period() -> None:
    # 2 h charging (20 kWh) then 2 h idle: the idle fee runs from 3 h into the session.
    cdr = price(example("idle_fee"), ams("2026-11-18T10:00"), Span(C, 120, 20), Span(P, 120))
    assert cdr.total_energy_cost == Price(D("7.00"), D("8.47"))
    assert cdr.total_parking_cost == Price(D("6.00"), D("7.26"))
    assert cdr.total_parking_time == D("2.0000")
    assert cdr.total_time == D("4.0000")


def test_dc_fast_session_fee_power_tiers_and_parking_step() -> None:
    cdr = price(
        example("dc_fast"),
        ams("2026-11-18T10:00"),
        Span(C, 20, 30, min_kw=60, max_kw=120),  # >= 50 kW: 0.69
        Span(C, 15, "7.5", min_kw=20, max_kw=40),  # < 50 kW: 0.59
        Span(P, "5.5"),  # billed as 6 min at 0.20/min
    )
    assert cdr.total_fixed_cost == Price(D("1.00"), D("1.21"))
    assert cdr.total_energy_cost.excl_vat == D("20.70") + D("4.425")
    assert cdr.total_parking_cost.excl_vat == D("1.20")
    assert cdr.total_cost == Price(D("27.325"), D("33.0633"))  # 33.06325 rounded half-up


def test_energy_threshold_splits_the_period_where_the_kwh_is_reached() -> None:
    # First kWh free: 2 kWh in an hour at constant power reaches 1 kWh at 10:30.
    cdr = price(
        ocpi_tariff("tariff_7_first_hour_kwh_free"), ams("2026-11-18T10:00"), Span(C, 60, 2)
    )
    assert period_starts(cdr) == [utc("2026-11-18T09:00"), utc("2026-11-18T09:30")]
    assert [p.dimensions[0] for p in cdr.charging_periods] == [
        ("ENERGY", D("1")),
        ("ENERGY", D("1")),
    ]
    assert cdr.total_energy_cost.excl_vat == D("0.20")


def test_duration_restrictions_count_from_the_session_start() -> None:
    # The "first hour of parking free" example with 15 min of charging: parking
    # runs 0:15-3:00 into the session, free until 1:00, then 2.00/h for 2 h.
    cdr = price(
        ocpi_tariff("tariff_7_first_hour_kwh_free"),
        ams("2026-11-18T10:00"),
        Span(C, 15, 20),
        Span(P, 165),
    )
    assert cdr.total_parking_cost.excl_vat == D("4.00")
    assert cdr.total_cost.excl_vat == D("7.80")


def test_duration_threshold_splits_the_period() -> None:
    # One 40 min period of 6.2 kWh: the first 30 min (4.65 kWh) are free.
    cdr = price(
        ocpi_tariff("tariffrestriction_example_max_duration"),
        ams("2026-11-18T10:00"),
        Span(C, 40, "6.2"),
    )
    assert cdr.total_energy_cost.excl_vat == D("0.3875")
    assert len(cdr.charging_periods) == 2


def test_average_power_is_used_when_no_bounds_are_known() -> None:
    t = ocpi_tariff("tariffrestriction_example_max_power")
    slow = price(t, ams("2026-11-18T10:00"), Span(C, 60, 10))  # 10 kW average
    fast = price(t, ams("2026-11-18T10:00"), Span(C, 60, 40))  # 40 kW average
    assert slow.total_energy_cost.excl_vat == D("2.00")
    assert fast.total_energy_cost.excl_vat == D("20.00")


def test_unknown_current_matches_no_current_restriction() -> None:
    # The complex example prices charging time only by current; without it, only
    # the start fee and parking remain (Monday 09:30, 42 min parking from 12:15).
    cdr = price(
        ocpi_tariff("tariff_4_complex"), ams("2024-06-03T09:30"), Span(C, 165, 10), Span(P, 42)
    )
    assert cdr.total_time_cost == Price(D(0), D(0))
    assert cdr.total_cost.excl_vat == D("2.50") + D("3.75")


def test_free_of_charge_has_known_zero_incl_vat() -> None:
    cdr = price(ocpi_tariff("tariff_5_free_of_charge"), ams("2026-11-18T10:00"), Span(C, 60, 7))
    assert cdr.total_cost == Price(D(0), D(0))


# --- reservations ---------------------------------------------------------------------


def test_reservation_costs_are_kept_apart_from_the_session_fee() -> None:
    cdr = price(
        ocpi_tariff("tariff_16_reservation_2_euro_fee_5_euro_per_hour"),
        ams("2026-11-18T10:00"),
        Span(R, 13),
        Span(C, 120, 20),
    )
    assert cdr.total_reservation_cost == Price(D("3.25"), D("3.90"))
    assert cdr.total_fixed_cost == Price(D("0.50"), D("0.60"))
    assert cdr.total_time == D("2.0000")  # the reservation is not session time
    assert cdr.charging_periods[0].dimensions == (("RESERVATION_TIME", D("0.2167")),)


def test_expired_reservation_without_expiry_elements_uses_the_reservation_price() -> None:
    cdr = price(
        ocpi_tariff("tariff_15_reservation_5_euro_per_hour"), ams("2026-11-18T10:00"), Span(R, 30)
    )
    assert cdr.total_cost == Price(D("2.50"), D("3.00"))
    assert cdr.total_fixed_cost == Price(D(0), D(0))


def test_reservation_after_the_session_started_is_rejected() -> None:
    with pytest.raises(ValueError, match="reservation period after"):
        price(
            ocpi_tariff("tariff_15_reservation_5_euro_per_hour"),
            ams("2026-11-18T10:00"),
            Span(C, 10, 1),
            Span(R, 5),
        )


# --- the CDR API --------------------------------------------------------------------


def test_no_tariff_is_unpriced_not_free() -> None:
    start, end, periods = session(ams("2026-11-18T10:00"), Span(C, 60, 11), Span(P, 30))
    cdr = build_cdr(None, start=start, end=end, timezone=AMS, periods=periods)
    assert isinstance(cdr, UnpricedCdr)
    assert not hasattr(cdr, "total_cost")
    assert cdr.total_energy == D("11.0000")
    assert cdr.total_parking_time == D("0.5000")
    assert all(p.tariff_id is None for p in cdr.charging_periods)


def test_cdr_json_fields() -> None:
    cdr = price(
        ocpi_tariff("tariff_14_step_size"), ams("2024-06-03T16:55"), Span(C, 10, 2), Span(P, 2)
    )
    doc = cdr.to_ocpi()
    assert doc["start_date_time"] == "2024-06-03T14:55:00Z"
    assert doc["end_date_time"] == "2024-06-03T15:07:00Z"
    assert doc["currency"] == "EUR"
    assert doc["tariffs"][0]["id"] == "22"
    assert doc["total_cost"] == {"excl_vat": D("0.3833")}  # no VAT given: incl_vat omitted
    assert [p["start_date_time"] for p in doc["charging_periods"]] == [
        "2024-06-03T14:55:00Z",
        "2024-06-03T15:00:00Z",
        "2024-06-03T15:05:00Z",
    ]
    assert {p["tariff_id"] for p in doc["charging_periods"]} == {"22"}
    line = json_text(doc, indent=None)
    assert "\n" not in line
    assert json.loads(line, parse_float=D)["total_cost"] == {"excl_vat": D("0.3833")}
    assert doc["charging_periods"][2]["dimensions"] == [
        {"type": "PARKING_TIME", "volume": D("0.0333")}
    ]


def test_inconsistent_periods_are_rejected() -> None:
    t = ocpi_tariff("tariff_8_simple_025kwh")
    a = ams("2026-11-18T10:00")
    b = ams("2026-11-18T11:00")
    c = ams("2026-11-18T12:00")
    gap = [
        SessionPeriod(a, b, PeriodState.CHARGING),
        SessionPeriod(b.replace(minute=5), c, PeriodState.PARKING),
    ]
    with pytest.raises(ValueError, match="contiguous"):
        price_session(t, gap, start=a, end=c, timezone=AMS)
    negative = [SessionPeriod(a, c, PeriodState.CHARGING, D(-1))]
    with pytest.raises(ValueError, match="negative"):
        price_session(t, negative, start=a, end=c, timezone=AMS)


def test_cdr_periods_are_cut_only_where_the_pricing_element_changes() -> None:
    # Saturday 10:00 to Sunday 10:00: weekend price, night price, weekend price.
    # The engine also cuts at midnight (weekday restrictions); the CDR does not.
    cdr = price(example("time_of_use"), ams("2026-11-21T10:00"), Span(C, 24 * 60, 24))
    assert period_starts(cdr) == [
        utc("2026-11-21T09:00"),
        utc("2026-11-21T22:00"),
        utc("2026-11-22T06:00"),
    ]
    assert [p.dimensions[0] for p in cdr.charging_periods] == [
        ("ENERGY", D("13.0000")),
        ("ENERGY", D("8.0000")),
        ("ENERGY", D("3.0000")),
    ]
    assert len(cdr.result.periods) == 4
    assert cdr.total_energy_cost.excl_vat == D("6.72")


def test_json_text_writes_decimals_digit_for_digit() -> None:
    doc = {"a": [D("0.3833"), D("1E+1"), None, True, 3], "b": {}, "c": 'é"'}
    assert json_text(doc, indent=None) == '{"a": [0.3833, 10, null, true, 3], "b": {}, "c": "é\\""}'
    assert json_text({"x": [D("1.50")]}) == '{\n  "x": [\n    1.50\n  ]\n}'


def test_callers_decimal_context_does_not_change_the_price() -> None:
    t = ocpi_tariff("tariff_13_simple_3hour_5parking")
    expected = price(t, ams("2026-11-18T10:00"), Span(C, 151, 30), Span(P, 41)).total_cost
    with localcontext() as ctx:
        ctx.prec = 3
        assert (
            price(t, ams("2026-11-18T10:00"), Span(C, 151, 30), Span(P, 41)).total_cost == expected
        )


def test_flat_energy_example() -> None:
    cdr = price(example("flat_energy"), ams("2026-11-18T10:00"), Span(C, 120, 20), Span(P, 30))
    assert cdr.total_cost == Price(D("7.00"), D("8.47"))
    assert cdr.total_parking_cost == Price(D(0), D(0))


def test_ad_hoc_example_prices_its_elements_not_its_text() -> None:
    # Its alt text promises 2.00/h incl. VAT; the elements say 0.40 + 1.90/h excl.
    cdr = price(
        ocpi_tariff("tariff_11_not_possible_alt_text"), ams("2026-11-18T10:00"), Span(C, 150, 9)
    )
    assert cdr.total_cost == Price(D("5.15"), D("5.497"))


@pytest.mark.parametrize(
    "name",
    sorted(p.stem for p in (REPO / "tariffs").glob("*.json"))
    + sorted(
        p.stem
        for p in (REPO / "tests" / "billing" / "testdata" / "ocpi").glob("tariff*.json")
        if p.stem != "tariff_put_example"
    ),
)
def test_every_example_tariff_prices_a_long_mixed_session(name: str) -> None:
    # Reservation, 5 h of charging over midnight in three power steps, 14 h idle.
    path = REPO / "tariffs" / f"{name}.json"
    t = load_tariff(path) if path.exists() else ocpi_tariff(name)
    cdr = price(
        t,
        ams("2026-11-20T21:40"),
        Span(R, 20),
        Span(C, 60, 40, min_kw=35, max_kw=45, min_a=55, max_a=65),
        Span(C, 120, 20, min_kw=9, max_kw=11, min_a=14, max_a=16),
        Span(C, 120, 6, min_kw=2, max_kw=4, min_a=3, max_a=6),
        Span(P, 840),
    )
    assert cdr.total_energy == D("66.0000")
    assert cdr.total_time == D("19.0000")
    assert cdr.total_parking_time == D("14.0000")
    parts = [
        cdr.total_fixed_cost,
        cdr.total_energy_cost,
        cdr.total_time_cost,
        cdr.total_parking_cost,
        cdr.total_reservation_cost,
    ]
    assert all(p.excl_vat >= 0 for p in parts)
    if not (cdr.result.min_price_applied or cdr.result.max_price_applied):
        assert abs(cdr.total_cost.excl_vat - sum(p.excl_vat for p in parts)) <= D("0.0003")
    assert cdr.to_ocpi()["charging_periods"][0]["start_date_time"] == "2026-11-20T20:40:00Z"
