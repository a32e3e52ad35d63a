"""Numbers in a tariff are bounded at load (issue 19): a price of 1e308 or of
5,001 digits is refused by ``tariff check`` with its file and key path, and a
tariff at the bounds still prices a long, heavy session."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, date, datetime, time
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from chargewatch.billing.cdr import PricedCdr, build_cdr
from chargewatch.billing.ocpi_json import json_text, tariff_to_ocpi
from chargewatch.billing.tariff import (
    MAX_DECIMALS,
    MAX_NUMBER,
    RESTRICTION_FIELDS,
    DayOfWeek,
    ReservationKind,
    Restrictions,
    parse_tariff,
)
from chargewatch.billing.tariff_files import load_json
from chargewatch.cli import main
from chargewatch.core.errors import ConfigError
from tests.billing.helpers import C, P, Span, session, tariff

PRICE = ["elements", 0, "price_components", 0, "price"]


def _doc_text(price: str, step: str = "1") -> str:
    # Written by hand: json.dumps cannot write a 5,001-digit number or 1e308 as such.
    return (
        '{"country_code": "NL", "party_id": "CWT", "id": "t1", "currency": "EUR",'
        ' "elements": [{"price_components": [{"type": "ENERGY", "price": '
        f'{price}, "step_size": {step}'
        '}]}], "last_updated": "2026-11-01T00:00:00Z"}'
    )


def _check(tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str) -> tuple[int, str]:
    path = tmp_path / "tariff.json"
    path.write_text(text)
    rc = main(["tariff", "check", str(path)])
    err = capsys.readouterr().err
    return rc, err


@pytest.mark.parametrize(
    ("price", "expected"),
    [
        ("1e308", "expected at most 1,000,000,000 in size, got 1E+308"),
        ("1" * 5001, "expected at most 1,000,000,000 in size, got 11111111111111111111..."),
        ("1." + "1" * 5001, "expected at most 15 decimals, got 5001"),
        ("1e99999999999999999999", "expected at most 1,000,000,000 in size, got a huge number"),
        ("-1e308", "expected at most 1,000,000,000 in size"),
    ],
)
def test_tariff_check_refuses_huge_prices_with_file_and_key_path(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], price: str, expected: str
) -> None:
    rc, err = _check(tmp_path, capsys, _doc_text(price))
    assert rc == 1
    assert err.startswith(f"{tmp_path / 'tariff.json'}: elements[0].price_components[0].price: ")
    assert expected in err
    assert "Traceback" not in err
    assert len(err) < 300  # the number is not echoed in full


@pytest.mark.parametrize("step", ["1" * 5001, "10000000000", "1e308"])
def test_tariff_check_refuses_huge_step_sizes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], step: str
) -> None:
    rc, err = _check(tmp_path, capsys, _doc_text("0.25", step))
    assert rc == 1
    assert "elements[0].price_components[0].step_size: expected at most 1,000,000,000" in err


def test_every_number_is_bounded_not_only_prices() -> None:
    base = {
        "country_code": "NL",
        "party_id": "CWT",
        "id": "t1",
        "currency": "EUR",
        "last_updated": "2026-11-01T00:00:00Z",
        "min_price": {"excl_vat": Decimal("1e12")},
        "elements": [
            {
                "price_components": [{"type": "TIME", "price": 1, "step_size": 1}],
                "restrictions": {"max_kwh": Decimal("1e400"), "max_duration": 10**5000},
            }
        ],
    }
    with pytest.raises(ConfigError) as info:
        parse_tariff(base, file="t.json")
    paths = [p.path for p in info.value.problems]
    assert paths == [
        "min_price.excl_vat",
        "elements[0].restrictions.max_kwh",
        "elements[0].restrictions.max_duration",
    ]


def test_long_integers_in_json_stay_exact_and_reach_the_bounds(tmp_path: Path) -> None:
    path = tmp_path / "t.json"
    path.write_text('{"a": ' + "9" * 5001 + ', "b": 12}')
    doc = load_json(path)
    assert doc["b"] == 12 and isinstance(doc["b"], int)
    assert doc["a"] == Decimal("9" * 5001)


def test_a_tariff_at_the_bounds_prices_a_long_heavy_session() -> None:
    # Every price and step at its bound, a month-long session of 100 MWh: the
    # 34-digit context still holds every figure (no decimal.InvalidOperation).
    t = tariff(
        {
            "elements": [
                {
                    "price_components": [
                        {"type": t, "price": MAX_NUMBER, "vat": 100, "step_size": MAX_NUMBER}
                        for t in ("FLAT", "ENERGY", "TIME", "PARKING_TIME")
                    ]
                }
            ],
            "max_price": {"excl_vat": MAX_NUMBER, "incl_vat": MAX_NUMBER},
        }
    )
    start = datetime(2026, 1, 1, tzinfo=UTC)
    s, e, periods = session(start, Span(C, 30 * 24 * 60, 100_000), Span(P, 24 * 60))
    cdr = build_cdr(t, start=s, end=e, timezone=UTC, periods=periods)
    assert isinstance(cdr, PricedCdr)
    assert cdr.total_cost.excl_vat == MAX_NUMBER


def test_smallest_decimals_within_the_bound_load() -> None:
    tiny = Decimal(1).scaleb(-MAX_DECIMALS)
    t = tariff(
        {"elements": [{"price_components": [{"type": "ENERGY", "price": tiny, "step_size": 1}]}]}
    )
    assert t.elements[0].price_components[0].price == tiny


def test_restriction_fields_have_one_home_and_round_trip() -> None:
    # The writer reads the same field list the parser accepts: every field set
    # comes back out, in the spec's order.
    r = Restrictions(
        start_time=time(7),
        end_time=time(23, 30),
        start_date=date(2026, 1, 1),
        end_date=date(2027, 1, 1),
        min_kwh=Decimal("0.5"),
        max_kwh=Decimal(50),
        min_current=Decimal(6),
        max_current=Decimal(32),
        min_power=Decimal("3.7"),
        max_power=Decimal(22),
        min_duration=60,
        max_duration=7200,
        day_of_week=frozenset({DayOfWeek.SUNDAY, DayOfWeek.MONDAY}),
        reservation=ReservationKind.RESERVATION,
    )
    doc: dict[str, Any] = {
        "elements": [
            {
                "price_components": [{"type": "TIME", "price": 2, "step_size": 60}],
                "restrictions": {},
            }
        ]
    }
    t = tariff(doc)
    t = replace(t, elements=(replace(t.elements[0], restrictions=r),))
    out = tariff_to_ocpi(t)
    written = out["elements"][0]["restrictions"]
    assert tuple(written) == RESTRICTION_FIELDS
    assert written["day_of_week"] == ["MONDAY", "SUNDAY"]
    again = parse_tariff(json.loads(json_text(out), parse_float=Decimal), file="again")
    assert again.elements[0].restrictions == r


def test_a_tariff_nested_too_deep_fails_at_load_with_its_position(tmp_path: Path) -> None:
    # Issue #17: 100,000 levels escaped the loader as a RecursionError and
    # `chargewatch replay --tariffs` ended with a traceback.
    from chargewatch.billing.tariff_files import load_json  # noqa: PLC0415
    from chargewatch.core.errors import ConfigError  # noqa: PLC0415

    path = tmp_path / "deep.json"
    path.write_text('{"id": "x",\n "elements": ' + "[" * 100_000 + "]" * 100_000 + "}")
    with pytest.raises(ConfigError, match=r"deep\.json:2:\d+: .*nested deeper than"):
        load_json(path)
