"""Issuing CDRs from sessions: priced, unpriced (never 0), credit and re-issue on revision."""

from __future__ import annotations

import csv
import io
import json
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest

from chargewatch.billing.export import BILLING_COLUMNS
from chargewatch.billing.tariff_files import load_tariff_dir
from chargewatch.cli import main
from chargewatch.collector.cdr_issuer import CdrIssuer
from chargewatch.config.fleet_file import parse_fleet
from chargewatch.core.yamlsrc import load_yaml
from chargewatch.sessions.power_track import Period
from chargewatch.sessions.session_engine import SessionRecord
from chargewatch.storage.ledger import Ledger, query_cdrs, query_unpriced

T0 = 1_795_400_000.0  # a Tuesday
TARIFFS = load_tariff_dir(Path(__file__).resolve().parents[2] / "tariffs")
FLEET = parse_fleet(load_yaml("fleet.yaml", text=(
    "sites: [{id: a, timezone: Europe/Amsterdam, tariff: flat-energy}, {id: b}]\n"
    "chargers: [{id: CA, site: a}, {id: CB, site: b}, {id: CX, site: a, tariff: nope}]\n"
)))  # fmt: skip


def record(charger: str, energy_wh: float, revision: int = 0) -> SessionRecord:
    return SessionRecord(
        session_id=f"s-{charger}", charger_id=charger, connector_id=1,
        site=FLEET.charger(charger).site, transaction_id="T", start=T0, stop=T0 + 5400,
        energy_wh=energy_wh, energy_source="register", quality=(), revision=revision,
        stop_reason="transaction", idle_s=1800.0, charging_s=3600.0,
        meter_start_wh=0.0, meter_stop_wh=energy_wh, register_wh=energy_wh,
        power_integral_wh=energy_wh, mismatch_wh=0.0, mismatch_pct=0.0, id_tag="TAG1",
        periods=(
            Period("charging", T0, T0 + 3600, energy_wh, 7000.0, 7400.0, 32.0),
            Period("idle", T0 + 3600, T0 + 5400, 0.0, 0.0, 0.0, 0.0),
        ),
    )  # fmt: skip


def test_priced_unpriced_and_revised(tmp_path: Path) -> None:
    lines: list[str] = []
    emitted: list[str] = []

    class Sink:
        def write(self, ls: list[str]) -> None:
            lines.extend(ls)

    with Ledger(tmp_path / "l.sqlite") as ledger:
        issuer = CdrIssuer(FLEET, TARIFFS, ledger=ledger, emit=emitted.append, lines=Sink())
        issuer([record("CA", 7000.0), record("CB", 5000.0), record("CX", 1000.0)])
        (cdr,) = query_cdrs(ledger)
        assert cdr["session_id"] == "s-CA" and cdr["tariffs"][0]["id"] == "flat-energy"
        assert float(cdr["total_energy"]) == pytest.approx(7.0)
        assert float(cdr["total_cost"]["excl_vat"]) == pytest.approx(7.0 * 0.35)  # flat 0.35/kWh
        unpriced = {u["session_id"]: u["reason"] for u in query_unpriced(ledger)}
        assert unpriced == {"s-CB": "no tariff assigned", "s-CX": "no tariff 'nope' loaded"}
        assert len(lines) == 1 and "total_cost_excl_vat=" in lines[0]

        # The same record again (a replay): nothing new for billing.
        issuer([record("CA", 7000.0)])
        assert len(query_cdrs(ledger, history=True)) == 1

        # A revision: the issued CDR is credited, a new one issued; never a silent change.
        issuer([record("CA", 7100.0, revision=1)])
        history = query_cdrs(ledger, history=True)
        assert [(h["id"], h.get("credit", False)) for h in history] == [
            (cdr["id"], False),
            (f"{cdr['id']}-C", True),
            (f"{cdr['id']}-r1", False),
        ]
        assert history[1]["credit_reference_id"] == cdr["id"]
        assert history[1]["total_cost"] == cdr["total_cost"]  # a credit repeats the original
        (current,) = query_cdrs(ledger)
        assert current["id"] == f"{cdr['id']}-r1"
        assert float(current["total_energy"]) == pytest.approx(7.1)
        assert float(current["total_cost"]["excl_vat"]) == pytest.approx(7.1 * 0.35)
        # CA issued, CA listed again by the repeat, then the credit and the re-issue;
        # unpriced sessions produce no CDR line.
        assert len(emitted) == 4


def test_tariff_outside_its_validity_is_not_used(tmp_path: Path) -> None:
    expired = {
        k: replace(v, end_date_time=datetime.fromtimestamp(T0 - 1, UTC)) for k, v in TARIFFS.items()
    }
    with Ledger(tmp_path / "l.sqlite") as ledger:
        CdrIssuer(FLEET, expired, ledger=ledger)([record("CA", 7000.0)])
        assert query_cdrs(ledger) == []
        (u,) = query_unpriced(ledger)
        assert "not valid at the session start" in u["reason"]


def test_one_billing_export_and_the_cdr_and_session_csvs_carry_who_and_cost(
    ledger_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Issue #18: billing had to join the CDR CSV (no charger) and sessions CSV (no cost).
    On both ledger engines."""
    db = ledger_url
    reviewed = replace(
        record("CA", 7000.0),
        quality=("needs_review",),
        register_energy_wh=6300.0,
        estimate_energy_wh=7000.0,
        review_reason="register stuck under load",
        id_tag="=HYPERLINK(1)",
    )
    recs = [reviewed, record("CB", 5000.0), record("CX", 1000.0)]
    with Ledger(db) as ledger:
        ledger.write(recs)
        CdrIssuer(FLEET, TARIFFS, ledger=ledger)(recs)

    def export(*args: str) -> str:
        assert main([*args, "--ledger", str(db)]) == 0
        return capsys.readouterr().out

    rows = {r["session_id"]: r for r in json.loads(export("billing", "export", "--format", "json"))}
    assert set(rows) == {"s-CA", "s-CB", "s-CX"}
    ca = rows["s-CA"]
    assert (ca["charger_id"], ca["site"], ca["connector_id"]) == ("CA", "a", 1)
    assert (ca["tariff_id"], ca["currency"], ca["cdr_id"]) == ("flat-energy", "EUR", "s-CA")
    assert ca["energy_wh"] == 7000.0
    assert (ca["register_energy_wh"], ca["estimate_energy_wh"]) == (6300.0, 7000.0)
    assert float(ca["total_cost_excl_vat"]) == pytest.approx(7.0 * 0.35)
    assert float(ca["total_energy_cost_incl_vat"]) > float(ca["total_energy_cost_excl_vat"])
    assert ca["quality"] == ["needs_review"] and ca["unpriced_reason"] is None
    assert rows["s-CX"]["unpriced_reason"] == "no tariff 'nope' loaded"
    assert rows["s-CX"]["total_cost_excl_vat"] is None

    (csv_ca, *_) = csv.DictReader(io.StringIO(export("billing", "export")))
    assert list(csv_ca) == list(BILLING_COLUMNS)
    assert csv_ca["id_tag"] == "'=HYPERLINK(1)"  # spreadsheet-safe
    assert csv_ca["quality"] == "needs_review" and csv_ca["total_cost_incl_vat"] != ""

    (cdr_row,) = csv.DictReader(io.StringIO(export("cdrs", "export", "--format", "csv")))
    assert (cdr_row["charger_id"], cdr_row["site"], cdr_row["connector_id"]) == ("CA", "a", "1")
    assert cdr_row["id_tag"] == "'=HYPERLINK(1)"

    sessions = {
        r["session_id"]: r
        for r in csv.DictReader(io.StringIO(export("sessions", "export", "--format", "csv")))
    }
    assert float(sessions["s-CA"]["total_cost_excl_vat"]) == pytest.approx(7.0 * 0.35)
    assert sessions["s-CA"]["currency"] == "EUR" and sessions["s-CB"]["total_cost_excl_vat"] == ""


def test_a_session_without_time_or_energy_is_recorded_not_billed(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # One MeterValues naming a transaction never seen started, nothing after it:
    # a session of 0 s and 0 Wh. Before, pricing it failed ("a session needs at
    # least one period"), logged an ERROR and counted it unpriced.
    empty = replace(record("CA", 0.0), stop=T0, idle_s=0.0, charging_s=0.0, periods=())
    with Ledger(tmp_path / "l.sqlite") as ledger:
        issuer = CdrIssuer(FLEET, TARIFFS, ledger=ledger)
        issuer([empty])
        assert query_cdrs(ledger) == [] and query_unpriced(ledger) == []
    assert issuer.unpriced == 0 and issuer.issued == 0
    assert not [r for r in caplog.records if r.levelname in ("ERROR", "WARNING")]
