"""``chargewatch tariff check`` and ``chargewatch tariff price`` end to end."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from chargewatch.billing.tariff_files import load_tariff_dir
from chargewatch.cli import main
from chargewatch.core.errors import ConfigError
from tests.billing.helpers import OCPI, REPO

TOTAL_KEYS = [
    "total_cost",
    "total_fixed_cost",
    "total_energy_cost",
    "total_time_cost",
    "total_parking_cost",
    "total_reservation_cost",
    "total_energy",
    "total_time",
    "total_parking_time",
]


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    rc = main(list(argv))
    out, err = capsys.readouterr()
    return rc, out, err


def write(path: Path, doc: Any) -> str:
    path.write_text(json.dumps(doc))
    return str(path)


def test_price_the_spec_cdr_example(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cdr = json.loads((OCPI / "cdr_example.json").read_text())
    tariff = write(tmp_path / "tariff.json", cdr["tariffs"][0])
    rc, out, _ = run(
        capsys, "tariff", "price", "--tariff", tariff, "--cdr", str(OCPI / "cdr_example.json")
    )
    assert rc == 0
    totals = json.loads(out, parse_float=Decimal)
    assert list(totals) == TOTAL_KEYS
    assert totals["total_cost"] == {"excl_vat": Decimal("4.0000"), "incl_vat": Decimal("4.4000")}
    assert totals["total_fixed_cost"] == {"excl_vat": Decimal(0), "incl_vat": Decimal(0)}
    assert totals["total_time"] == Decimal("1.9731")


def _tou_cdr() -> dict[str, Any]:
    # 20:30Z-21:30Z with 10 kWh; in Amsterdam (CET, +01:00) that is 21:30-22:30.
    return {
        "start_date_time": "2026-11-18T20:30:00Z",
        "end_date_time": "2026-11-18T21:30:00Z",
        "charging_periods": [
            {
                "start_date_time": "2026-11-18T20:30:00Z",
                "dimensions": [{"type": "ENERGY", "volume": 10}, {"type": "TIME", "volume": 1}],
            }
        ],
    }


def test_timezone_option_moves_the_time_of_use_window(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    tariff = str(REPO / "tariffs" / "time_of_use.json")
    cdr = write(tmp_path / "cdr.json", _tou_cdr())
    # Read in UTC (the timestamps' offset), 20:30-21:30 is all weekday price.
    rc, out, _ = run(capsys, "tariff", "price", "--tariff", tariff, "--cdr", cdr)
    assert rc == 0
    assert json.loads(out, parse_float=Decimal)["total_cost"]["excl_vat"] == Decimal("4.2")
    rc, out, _ = run(
        capsys, "tariff", "price", "--tariff", tariff, "--cdr", cdr, "--timezone", "Asia/Tokyo"
    )
    # In Tokyo (+09:00) the session is Thursday 05:30-06:30: night price until 07:00.
    assert json.loads(out, parse_float=Decimal)["total_cost"]["excl_vat"] == Decimal("2.8")


def test_charging_then_parking_in_one_period_and_unknown_vat_is_null(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cdr = write(
        tmp_path / "cdr.json",
        {
            "start_date_time": "2024-06-03T14:55:00Z",
            "end_date_time": "2024-06-03T15:07:00Z",
            "charging_periods": [
                {
                    "start_date_time": "2024-06-03T14:55:00Z",
                    "dimensions": [
                        {"type": "ENERGY", "volume": 2},
                        {"type": "TIME", "volume": 0.16666666},
                        {"type": "PARKING_TIME", "volume": 0.03333333},
                    ],
                }
            ],
        },
    )
    tariff = str(OCPI / "tariff_14_step_size.json")
    rc, out, _ = run(
        capsys, "tariff", "price", "--tariff", tariff, "--cdr", cdr, "--timezone", "Europe/Berlin"
    )
    assert rc == 0
    totals = json.loads(out, parse_float=Decimal)
    assert totals["total_cost"] == {"excl_vat": Decimal("0.3833"), "incl_vat": None}
    assert totals["total_parking_time"] == Decimal("0.0333")


def test_price_reports_bad_cdr(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    doc = _tou_cdr()
    doc["charging_periods"][0]["dimensions"][0]["volume"] = "ten"
    cdr = write(tmp_path / "cdr.json", doc)
    tariff = str(REPO / "tariffs" / "time_of_use.json")
    rc, _, err = run(capsys, "tariff", "price", "--tariff", tariff, "--cdr", cdr)
    assert rc != 0
    assert f"{cdr}: charging_periods[0].dimensions[0].volume: expected a number" in err


def test_price_rejects_unknown_timezone(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cdr = write(tmp_path / "cdr.json", _tou_cdr())
    tariff = str(REPO / "tariffs" / "time_of_use.json")
    rc, _, err = run(
        capsys, "tariff", "price", "--tariff", tariff, "--cdr", cdr, "--timezone", "Mars/Base"
    )
    assert rc != 0
    assert "unknown time zone 'Mars/Base'" in err


def test_check_ok(capsys: pytest.CaptureFixture[str]) -> None:
    files = sorted(str(p) for p in (REPO / "tariffs").glob("*.json"))
    assert len(files) >= 5
    rc, out, err = run(capsys, "tariff", "check", *files)
    assert (rc, err) == (0, "")
    assert out.count(": ok") == len(files)


def test_check_reports_every_problem_and_fails(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    doc = json.loads((REPO / "tariffs" / "dc_fast.json").read_text())
    doc["elements"][2]["price_components"][0]["step_size"] = 0
    doc["elements"][1]["restrictions"]["min_power"] = "fast"
    bad = write(tmp_path / "tariff.json", doc)
    good = str(REPO / "tariffs" / "flat_energy.json")
    rc, out, err = run(capsys, "tariff", "check", bad, good)
    assert rc == 1
    assert err.splitlines() == [
        f"{bad}: elements[1].restrictions.min_power: expected a number, got 'fast'",
        f"{bad}: elements[2].price_components[0].step_size: expected a positive integer, got 0",
    ]
    assert f"{good}: ok" in out


def test_load_tariff_dir_by_id_and_duplicates(tmp_path: Path) -> None:
    tariffs = load_tariff_dir(REPO / "tariffs")
    assert {"flat-energy", "time-of-use", "idle-fee", "dc-fast", "max-price-cap"} <= set(tariffs)
    for name in ("a.json", "b.json"):
        (tmp_path / name).write_text((REPO / "tariffs" / "flat_energy.json").read_text())
    with pytest.raises(ConfigError) as info:
        load_tariff_dir(tmp_path)
    assert [str(p) for p in info.value.problems] == [
        f"{tmp_path / 'b.json'}: id: tariff 'flat-energy' is also in {tmp_path / 'a.json'}"
    ]


def test_total_energy_is_spread_when_periods_have_no_energy(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # The spec's example CDR has only TIME in its period, and total_energy 15.342.
    tariff = str(OCPI / "tariff_8_simple_025kwh.json")
    rc, out, _ = run(
        capsys, "tariff", "price", "--tariff", tariff, "--cdr", str(OCPI / "cdr_example.json")
    )
    assert rc == 0
    totals = json.loads(out, parse_float=Decimal)
    assert totals["total_energy"] == Decimal("15.3420")
    assert totals["total_energy_cost"]["excl_vat"] == Decimal("3.8355")
