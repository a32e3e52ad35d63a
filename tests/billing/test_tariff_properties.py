"""Properties of the engine over generated sessions and tariffs (hypothesis)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chargewatch.billing.cdr import PricedCdr
from chargewatch.billing.tariff import Tariff
from tests.billing.helpers import C, P, Span, price, tariff

AMS = ZoneInfo("Europe/Amsterdam")
# A Monday; sessions start anywhere in the following five weeks (two DST changes
# would need other dates, so spring 2026's is included: 29 March).
EPOCH = datetime(2026, 3, 2, tzinfo=UTC)

MIXED = tariff(
    {
        "elements": [
            {"price_components": [{"type": "FLAT", "price": 0.5, "vat": 21, "step_size": 1}]},
            {
                "price_components": [{"type": "ENERGY", "price": 0.5, "vat": 21, "step_size": 1}],
                "restrictions": {"min_kwh": 20},
            },
            {
                "price_components": [{"type": "ENERGY", "price": 0.2, "vat": 21, "step_size": 100}],
                "restrictions": {"start_time": "22:30", "end_time": "06:15"},
            },
            {
                "price_components": [
                    {"type": "ENERGY", "price": 0.4, "vat": 21, "step_size": 1},
                    {"type": "TIME", "price": 1.5, "vat": 9, "step_size": 300},
                ],
                "restrictions": {"day_of_week": ["MONDAY", "TUESDAY", "WEDNESDAY", "THURSDAY"]},
            },
            {
                "price_components": [
                    {"type": "ENERGY", "price": 0.3, "vat": 21, "step_size": 1},
                    {"type": "TIME", "price": 1.0, "vat": 9, "step_size": 60},
                ]
            },
            {
                "price_components": [
                    {"type": "PARKING_TIME", "price": 6, "vat": 21, "step_size": 900}
                ],
                "restrictions": {"min_duration": 7200},
            },
        ]
    }
)


def _start(minute: int) -> datetime:
    return (EPOCH + timedelta(minutes=minute)).astimezone(AMS)


def _totals(cdr: PricedCdr) -> dict[str, Any]:
    return cdr.totals()


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    minute=st.integers(0, 5 * 7 * 24 * 60),
    charging=st.integers(2, 900),
    wh_per_minute=st.integers(0, 1000),
    parking=st.integers(0, 400),
    data=st.data(),
)
def test_splitting_a_period_never_changes_the_price(
    minute: int, charging: int, wh_per_minute: int, parking: int, data: st.DataObject
) -> None:
    """Cutting a charging period in two at the same power changes no total.

    Energy is whole Wh per whole minute, so both parts carry exactly the energy a
    constant power would give them.
    """
    cut = data.draw(st.integers(1, charging - 1))

    def kwh(minutes: int) -> Decimal:
        return Decimal(wh_per_minute * minutes) / 1000

    whole = price(MIXED, _start(minute), Span(C, charging, kwh(charging)), Span(P, parking))
    parts = price(
        MIXED,
        _start(minute),
        Span(C, cut, kwh(cut)),
        Span(C, charging - cut, kwh(charging - cut)),
        Span(P, parking),
    )
    assert _totals(parts) == _totals(whole)


def _price_component(kind: str) -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries(
        {
            "type": st.just(kind),
            "price": st.decimals(0, 10, places=2),
            "step_size": st.sampled_from([1, 60, 100, 300, 900]),
        },
        optional={"vat": st.sampled_from([0, 9, 21])},
    )


_RESTRICTIONS = st.fixed_dictionaries(
    {},
    optional={
        "start_time": st.sampled_from(["00:00", "07:00", "17:30", "22:00"]),
        "end_time": st.sampled_from(["00:00", "06:00", "17:00", "23:00"]),
        "min_kwh": st.sampled_from([1, 5]),
        "max_kwh": st.sampled_from([10, 30]),
        "max_duration": st.sampled_from([1800, 7200]),
        "min_power": st.sampled_from([3, 11]),
        "day_of_week": st.sampled_from([["SATURDAY", "SUNDAY"], ["MONDAY"]]),
    },
)

_ELEMENT = st.fixed_dictionaries(
    {
        "price_components": st.lists(
            st.sampled_from(["FLAT", "ENERGY", "TIME", "PARKING_TIME"]),
            min_size=1,
            max_size=4,
            unique=True,
        ).flatmap(lambda kinds: st.tuples(*(_price_component(k) for k in kinds)).map(list))
    },
    optional={"restrictions": _RESTRICTIONS},
)


@st.composite
def _tariffs(draw: st.DrawFn) -> Tariff:
    doc: dict[str, Any] = {"elements": draw(st.lists(_ELEMENT, min_size=1, max_size=4))}
    if draw(st.booleans()):
        doc["max_price"] = {"excl_vat": draw(st.decimals(1, 30, places=2))}
    if draw(st.booleans()):
        doc["min_price"] = {"excl_vat": draw(st.decimals(0, 5, places=2))}
    if "max_price" in doc and "min_price" in doc:
        doc["max_price"]["excl_vat"] += doc["min_price"]["excl_vat"]
    for bound in ("min_price", "max_price"):
        if bound in doc and draw(st.booleans()):
            doc[bound]["incl_vat"] = doc[bound]["excl_vat"] * Decimal("1.21")
    return tariff(doc)


@settings(max_examples=150, deadline=None)
@given(
    t=_tariffs(),
    minute=st.integers(0, 5 * 7 * 24 * 60),
    spans=st.lists(
        st.tuples(st.sampled_from(["C", "P"]), st.integers(0, 300), st.integers(0, 30_000)),
        min_size=1,
        max_size=4,
    ),
)
def test_totals_are_non_negative_and_within_min_and_max(
    t: Tariff, minute: int, spans: list[tuple[str, int, int]]
) -> None:
    layout = [
        Span(C, m, Decimal(wh) / 1000) if kind == "C" else Span(P, m) for kind, m, wh in spans
    ]
    cdr = price(t, _start(minute), *layout)
    for name, value in cdr.totals().items():
        if isinstance(value, dict):
            assert value["excl_vat"] >= 0, name
            assert value["incl_vat"] is None or value["incl_vat"] >= value["excl_vat"], name
        else:
            assert value >= 0, name
    incl = cdr.total_cost.incl_vat
    if t.max_price is not None:
        assert cdr.total_cost.excl_vat <= t.max_price.excl_vat
        if t.max_price.incl_vat is not None and incl is not None:
            assert incl <= t.max_price.incl_vat
    if t.min_price is not None:
        assert cdr.total_cost.excl_vat >= t.min_price.excl_vat
        if t.min_price.incl_vat is not None and incl is not None:
            assert incl >= t.min_price.incl_vat
    parts = sum(
        (
            p.excl_vat
            for p in (
                cdr.total_fixed_cost,
                cdr.total_energy_cost,
                cdr.total_time_cost,
                cdr.total_parking_cost,
                cdr.total_reservation_cost,
            )
        ),
        Decimal(0),
    )
    if not (cdr.result.min_price_applied or cdr.result.max_price_applied):
        # Parts are rounded one by one; the total once.
        assert abs(cdr.total_cost.excl_vat - parts) <= Decimal("0.0003")
