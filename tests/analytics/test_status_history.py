"""The connector status history in the ledger (migration 11): uptime over a past year
after restarts, from statuses alone (no alert transitions), worked out by hand."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest

from chargewatch.analytics.uptime import status_signals
from chargewatch.cli import main
from chargewatch.model.batch import MeterBatch
from chargewatch.model.events import StatusEvent
from chargewatch.model.fleet import ConnectorIndex, Fleet
from chargewatch.state.fleet_state import FleetState
from chargewatch.storage.ledger import Ledger
from chargewatch.storage.uptime_source import load_status_changes, load_uptime_inputs
from tests.analytics.helpers import H, ts

YEAR_START = ts("2024-01-01 00:00")
YEAR_END = ts("2025-01-01 00:00")


def _row(charger: str, connector: int, status: str, code: str, at: float) -> list[Any]:
    # What FleetState.take_changes gives for one connector.
    return [charger, connector, status, code, at]


@pytest.fixture
def ledger_path(ledger_url: str) -> str:
    """Three collector runs on one ledger (SQLite and PostgreSQL), each writing what
    it saw, then closing."""
    path = ledger_url
    runs = [
        # 2023-12-31 22:00: faulted before the year starts, until 2024-01-01 02:00.
        [_row("C1", 1, "Faulted", "GroundFailure", YEAR_START - 2 * H)],
        [
            _row("C1", 1, "Available", "NoError", YEAR_START + 2 * H),
            # 31 January 23:00 to 1 February 01:00: across a month edge.
            _row("C1", 2, "Faulted", "OtherError", ts("2024-01-31 23:00")),
        ],
        [
            _row("C1", 2, "Available", "NoError", ts("2024-02-01 01:00")),
            # Unavailable (not scheduled) for 30 minutes in July.
            _row("C1", 1, "Unavailable", "NoError", ts("2024-07-10 12:00")),
            _row("C1", 1, "Available", "NoError", ts("2024-07-10 12:30")),
        ],
    ]
    for rows in runs:
        with Ledger(path) as ledger:
            assert ledger.write_port_status(rows, now=0.0) == len(rows)
    return path


def test_status_history_survives_restarts_and_is_idempotent(ledger_path: str) -> None:
    with Ledger(ledger_path) as ledger:
        # A replay of the same capture writes the same rows again: nothing added.
        again = [_row("C1", 1, "Available", "NoError", YEAR_START + 2 * H)]
        assert ledger.write_port_status(again, now=0.0) == 0
        changes, codes = load_status_changes(ledger, YEAR_START, YEAR_END)
    # The change before the window (C1/1 Faulted) is kept: it starts an outage.
    assert changes[0] == (YEAR_START - 2 * H, "C1", "1", "Faulted")
    assert codes[(YEAR_START - 2 * H, "C1", "1")] == ("GroundFailure", "")
    assert len(changes) == 6


def test_unknown_change_time_is_when_it_was_seen(ledger_url: str) -> None:
    with Ledger(ledger_url) as ledger:
        ledger.write_port_status([_row("C9", 1, "Faulted", "", math.nan)], now=123.0)
        row = ledger.db.execute("SELECT at, error_code FROM port_status").fetchone()
    assert tuple(row) == (123.0, "NoError")


def test_a_past_year_from_the_status_history(ledger_path: str, capsys: Any) -> None:
    with Ledger(ledger_path, read_only=True) as ledger:
        inputs = load_uptime_inputs(ledger, YEAR_START, YEAR_END)
    assert sorted((s.connector, s.kind, s.mrec) for s in inputs.signals) == [
        ("1", "faulted", "CX002"),
        ("1", "unavailable", ""),
        ("2", "faulted", "unmapped"),
    ]
    argv = ["uptime", "--ledger", str(ledger_path), "--from", "2024-01-01", "--to", "2025-01-01"]
    assert main(argv) == 0
    ports = {p["connector_id"]: p for p in json.loads(capsys.readouterr().out)["ports"]}
    # Port 1: 2 h from the window's start (the fault began before it) + 30 min in July.
    assert ports["1"]["outage_min"] == pytest.approx(150.0)
    assert ports["1"]["failures_by_mrec"] == {"CX002": 1}
    # Port 2: 2 h across the January/February edge.
    assert ports["2"]["outage_min"] == pytest.approx(120.0)
    year_min = 366 * 24 * 60  # 2024 is a leap year
    assert ports["2"]["uptime_pct"] == pytest.approx((year_min - 120) / year_min * 100)


def test_nevi_months_split_the_outage_at_the_month_edge(ledger_path: str, capsys: Any) -> None:
    argv = ["uptime", "--ledger", str(ledger_path), "--from", "2024-01-01", "--to", "2024-03-01"]
    assert main([*argv, "--format", "nevi"]) == 0
    rows = [r.split(",") for r in capsys.readouterr().out.splitlines()]
    head = rows[0]
    month_rows = [dict(zip(head, r, strict=True)) for r in rows[1:] if r[0] == "month"]
    port2 = {r["month"]: r for r in month_rows if r["port_id"].endswith("/2")}
    # One hour on 31 January, one on 1 February.
    assert float(port2["2024-01"]["t_outage_min"]) == pytest.approx(60.0)
    assert float(port2["2024-02"]["t_outage_min"]) == pytest.approx(60.0)


def test_fleet_state_changes_are_what_the_ledger_takes() -> None:
    # The service hands FleetState.take_changes()["connectors"] to write_port_status.
    state = FleetState(ConnectorIndex(Fleet.empty()))
    ev = StatusEvent("C1", 1, 1000.0, 1000.5, "Faulted", "GroundFailure")
    state.on_batch(MeterBatch.empty(), [ev], 1001.0)
    rows = state.take_changes()["connectors"]
    with Ledger(":memory:") as ledger:
        assert ledger.write_port_status(rows, now=1001.0) == 1
        got = ledger.db.execute("SELECT * FROM port_status").fetchall()
    assert [tuple(r) for r in got] == [("C1", "1", 1000.0, "Faulted", "GroundFailure", "")]


def test_a_stated_mrec_reaches_the_status_history_and_its_uptime_signal() -> None:
    # 1.6 Faulted, errorCode OtherError, vendorErrorCode CX005; then a fault the
    # charger states nothing about (its OCPP code's pairing), then a hostile code.
    state = FleetState(ConnectorIndex(Fleet.empty()))
    events = [
        StatusEvent("C1", 1, 1000.0, 1000.5, "Faulted", "OtherError", vendor_error_code="CX005"),
        StatusEvent("C1", 1, 1100.0, 1100.5, "Available", "NoError"),
        StatusEvent("C1", 1, 1200.0, 1200.5, "Faulted", "GroundFailure"),
        StatusEvent("C1", 1, 1300.0, 1300.5, "Faulted", "OtherError", vendor_error_code="=1+CX0"),
    ]
    rows = []
    for ev in events:
        state.on_batch(MeterBatch.empty(), [ev], ev.recv)
        rows += state.take_changes()["connectors"]
    with Ledger(":memory:") as ledger:
        assert ledger.write_port_status(rows, now=2000.0) == 4
        got = ledger.db.execute(
            "SELECT at, error_code, mrec FROM port_status ORDER BY at"
        ).fetchall()
        changes, codes = load_status_changes(ledger, 0.0, 2000.0)
    # The stated code in its own column (migration 12); a hostile one is not stored.
    assert [tuple(r) for r in got] == [
        (1000.0, "OtherError", "CX005"),
        (1100.0, "NoError", ""),
        (1200.0, "GroundFailure", ""),
        (1300.0, "OtherError", ""),
    ]
    signals = status_signals(changes, 2000.0, codes)
    assert [(s.start, s.error_code, s.mrec) for s in signals] == [
        (1000.0, "OtherError", "CX005"),
        (1200.0, "GroundFailure", "CX002"),
        (1300.0, "OtherError", "unmapped"),
    ]


def test_a_restart_keeps_the_stated_mrec() -> None:
    state = FleetState(ConnectorIndex(Fleet.empty()))
    ev = StatusEvent("C1", 1, 1000.0, 1000.5, "Faulted", "OtherError", vendor_error_code="CX014")
    state.on_batch(MeterBatch.empty(), [ev], 1001.0)
    changes = state.take_changes()
    restored = FleetState(ConnectorIndex(Fleet.empty()))
    restored.restore(json.loads(json.dumps(state.snapshot())))
    assert restored.mrec[0] == "CX014"
    # Replaying the change log onto an older snapshot gives it back too.
    older = FleetState(ConnectorIndex(Fleet.empty()))
    older.apply_changes(json.loads(json.dumps(changes)))
    assert older.mrec[0] == "CX014"
    # A snapshot written before the column existed reads as "none stated".
    snap = state.snapshot()
    snap["connectors"] = [row[:8] for row in snap["connectors"]]
    old = FleetState(ConnectorIndex(Fleet.empty()))
    old.restore(snap)
    assert (old.error_code[0], old.mrec[0]) == ("OtherError", "")
