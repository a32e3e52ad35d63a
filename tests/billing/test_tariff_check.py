"""Tariff validation: every problem, with its element index and field."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from chargewatch.billing.ocpi_json import tariff_to_ocpi
from chargewatch.billing.tariff import parse_tariff
from chargewatch.billing.tariff_files import load_json
from chargewatch.core.errors import ConfigError
from tests.billing.helpers import OCPI, REPO

GOOD: dict[str, Any] = {
    "country_code": "NL",
    "party_id": "CWT",
    "id": "t1",
    "currency": "EUR",
    "elements": [
        {"price_components": [{"type": "FLAT", "price": 1, "vat": 21, "step_size": 1}]},
        {
            "price_components": [{"type": "ENERGY", "price": 0.3, "vat": 21, "step_size": 1}],
            "restrictions": {"start_time": "07:00", "end_time": "23:00"},
        },
        {"price_components": [{"type": "TIME", "price": 2, "step_size": 60}]},
    ],
    "last_updated": "2026-11-01T00:00:00Z",
}


def problems(doc: Any) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_tariff(doc, file="tariff.json")
    return [str(p) for p in info.value.problems]


def with_change(path: list[str | int], value: Any) -> dict[str, Any]:
    doc = copy.deepcopy(GOOD)
    target: Any = doc
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return doc


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        (
            ["elements", 2, "price_components", 0, "step_size"],
            0,
            "elements[2].price_components[0].step_size: expected a positive integer, got 0",
        ),
        (
            ["elements", 1, "price_components", 0, "step_size"],
            "1",
            "elements[1].price_components[0].step_size: expected a positive integer, got '1'",
        ),
        (
            ["elements", 0, "price_components", 0, "step_size"],
            -1,
            "elements[0].price_components[0].step_size: expected an integer >= 0, got -1",
        ),
        (
            ["elements", 1, "price_components", 0, "type"],
            "KWH",
            "elements[1].price_components[0].type: expected one of ENERGY, FLAT, TIME, "
            "PARKING_TIME, got 'KWH'",
        ),
        (
            ["elements", 1, "price_components", 0, "price"],
            -0.1,
            "elements[1].price_components[0].price: expected a number >= 0, got -0.1",
        ),
        (
            ["elements", 1, "price_components", 0, "vat"],
            121,
            "elements[1].price_components[0].vat: expected a percentage from 0 to 100, got 121",
        ),
        (
            ["elements", 1, "price_components", 0, "price"],
            True,
            "elements[1].price_components[0].price: expected a number, got True",
        ),
        (
            ["elements", 1, "restrictions", "start_time"],
            "7:00",
            "elements[1].restrictions.start_time: expected a time of day HH:MM, got '7:00'",
        ),
        (
            ["elements", 1, "restrictions", "end_time"],
            "24:00",
            "elements[1].restrictions.end_time: expected a time of day HH:MM, got '24:00'",
        ),
        (
            ["elements", 1, "restrictions", "start_date"],
            "2026-02-30",
            "elements[1].restrictions.start_date: expected a date YYYY-MM-DD, got '2026-02-30'",
        ),
        (
            ["elements", 1, "restrictions", "day_of_week"],
            ["MONDAY", "MON"],
            "elements[1].restrictions.day_of_week[1]: expected a day such as MONDAY, got 'MON'",
        ),
        (
            ["elements", 1, "restrictions", "max_kwhh"],
            10,
            "elements[1].restrictions.max_kwhh: unknown field",
        ),
        (
            ["elements", 1, "restrictions", "reservation"],
            "RESERVATION",
            "elements[1].price_components[0].type: a reservation element can only have FLAT "
            "and TIME components",
        ),
        (
            ["elements", 1, "restrictions", "min_duration"],
            1.5,
            "elements[1].restrictions.min_duration: expected an integer >= 0, got 1.5",
        ),
        (["elements"], [], "elements: expected at least one entry"),
        (["currency"], "eur", "currency: expected an ISO 4217 code such as EUR, got 'eur'"),
        (["party_id"], "CW", "party_id: expected exactly 3 characters, got 'CW'"),
        (
            ["last_updated"],
            "yesterday",
            "last_updated: expected an RFC 3339 date-time such as 2015-06-29T20:39:09Z, "
            "got 'yesterday'",
        ),
        (
            ["type"],
            "CHEAP",
            "type: expected one of AD_HOC_PAYMENT, PROFILE_CHEAP, PROFILE_FAST, "
            "PROFILE_GREEN, REGULAR, got 'CHEAP'",
        ),
        (["min_price"], {"incl_vat": 1}, "min_price.excl_vat: required field is missing"),
    ],
)
def test_one_problem(path: list[str | int], value: Any, message: str) -> None:
    assert problems(with_change(path, value)) == [f"tariff.json: {message}"]


def test_missing_required_fields() -> None:
    doc = {k: v for k, v in GOOD.items() if k not in ("id", "currency")}
    assert problems(doc) == [
        "tariff.json: id: required field is missing",
        "tariff.json: currency: required field is missing",
    ]


def test_every_problem_is_reported_at_once() -> None:
    doc = copy.deepcopy(GOOD)
    doc["elements"][0]["price_components"][0]["type"] = "FLAT_FEE"
    doc["elements"][1]["restrictions"] = {"min_kwh": 10, "max_kwh": 5, "end_date": "2026-1-1"}
    doc["elements"][2]["price_components"].append({"type": "TIME", "price": 1, "step_size": 1})
    assert problems(doc) == [
        "tariff.json: elements[0].price_components[0].type: expected one of ENERGY, FLAT, "
        "TIME, PARKING_TIME, got 'FLAT_FEE'",
        "tariff.json: elements[1].restrictions.end_date: expected a date YYYY-MM-DD, "
        "got '2026-1-1'",
        "tariff.json: elements[1].restrictions.max_kwh: must be greater than min_kwh (5 <= 10)",
        "tariff.json: elements[2].price_components[1].type: a second TIME component in one element",
    ]


def test_the_good_tariff_parses() -> None:
    t = parse_tariff(GOOD, file="tariff.json")
    assert [len(e.price_components) for e in t.elements] == [1, 1, 1]
    assert t.elements[2].price_components[0].vat is None  # absent VAT stays unknown


def test_json_syntax_error_has_line_and_column(tmp_path: Path) -> None:
    bad = tmp_path / "broken.json"
    bad.write_text('{\n  "id": "x",\n  "currency": EUR\n}\n')
    with pytest.raises(ConfigError) as info:
        load_json(bad)
    problem = info.value.problems[0]
    assert (problem.line, problem.column) == (3, 15)
    assert str(problem).startswith(f"{bad}:3:15: invalid JSON")


def test_spec_put_example_lacks_last_updated() -> None:
    # The spec's own PUT example omits the required last_updated: it changes no
    # price, so the tariff loads with a warning that names it (issue #18).
    doc = load_json(OCPI / "tariff_put_example.json")
    tariff = parse_tariff(doc, file="tariff.json")
    assert [str(w) for w in tariff.warnings] == [
        "tariff.json: last_updated: missing (required by OCPI; priced anyway, it changes no price)"
    ]
    assert tariff.last_updated is None
    assert parse_tariff(doc | {"last_updated": "2019-01-01T00:00:00Z"}).warnings == ()


def test_missing_identity_fields_warn_while_money_fields_stay_required() -> None:
    doc = {k: v for k, v in GOOD.items() if k not in ("country_code", "party_id")}
    tariff = parse_tariff(doc, file="tariff.json")
    assert [w.path for w in tariff.warnings] == ["country_code", "party_id"]
    assert (tariff.country_code, tariff.party_id) == ("", "")
    # A CDR does not invent them either.
    out = tariff_to_ocpi(tariff)
    assert "party_id" not in out and "country_code" not in out
    # Present but malformed is still a problem, and so is anything priced.
    assert problems(GOOD | {"party_id": "CW"}) == [
        "tariff.json: party_id: expected exactly 3 characters, got 'CW'"
    ]
    no_currency = {k: v for k, v in doc.items() if k != "currency"}
    assert problems(no_currency) == ["tariff.json: currency: required field is missing"]


@pytest.mark.parametrize(
    "path",
    sorted(p.name for p in (REPO / "tariffs").glob("*.json")),
)
def test_shipped_tariffs_pass_check(path: str) -> None:
    parse_tariff(load_json(REPO / "tariffs" / path), file=path)


@pytest.mark.parametrize(
    "path",
    sorted(p.name for p in OCPI.glob("tariff*.json") if p.name != "tariff_put_example.json"),
)
def test_spec_tariffs_pass_check(path: str) -> None:
    parse_tariff(load_json(OCPI / path), file=path)
