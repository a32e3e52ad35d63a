"""Ledger: idempotent writes, revisions, queries, checkpoints; exports and line protocol."""

from __future__ import annotations

import csv
import io
import json
import sqlite3
import threading
from dataclasses import replace
from datetime import UTC
from decimal import Decimal
from itertools import pairwise
from pathlib import Path
from zoneinfo import ZoneInfo

import psycopg
import pytest

from chargewatch.billing.cdr import UnpricedCdr, build_cdr
from chargewatch.cli import main
from chargewatch.model.fleet import ConnectorIndex
from chargewatch.sessions.outputs import (
    influx_lines,
    jsonl_line,
    session_periods,
    to_csv,
    to_json,
)
from chargewatch.sessions.periods import PeriodState
from chargewatch.sessions.session_engine import SessionEngine
from chargewatch.storage.ledger import MIGRATIONS, Ledger, get_session, query_sessions
from tests.billing.sessionkit import T0, batch, charge, run, start, stop


def records(n: int = 3):
    index = ConnectorIndex()
    steps = []
    for k in range(n):
        t0 = T0 + k * 7200
        ts, e, p = charge(t0, 30, 7.0, 1000.0 * k)
        ch = f"CP{k % 2}"
        steps.append((t0 + 1, batch(index, "x", 1, [], [], []), [start(ch, str(k), t0, e[0])]))
        steps.append((ts[-1] + 1, batch(index, ch, 1, ts, e, p), [stop(ch, str(k), ts[-1], e[-1])]))
    _, recs = run(steps, index)
    return recs


def test_schema_version_and_wal(ledger_url: str) -> None:
    with Ledger(ledger_url) as led:
        assert led.version == MIGRATIONS[-1][0]
        if not led.postgres:
            assert led.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    with Ledger(ledger_url) as led:  # reopening applies nothing twice
        assert led.db.execute("SELECT COUNT(*) FROM schema_version").fetchone()[0] == len(
            MIGRATIONS
        )


def test_migration_13_adds_the_lease_tables_to_a_ledger_at_version_11(
    ledger_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Migration 13 (the cluster's lease tables) applies on a ledger at version 11,
    with no 12 in between, and on one whose collectors made the tables already."""
    import chargewatch.storage.ledger as ledger_module  # noqa: PLC0415

    with monkeypatch.context() as m:
        m.setattr(ledger_module, "MIGRATIONS", [x for x in MIGRATIONS if x[0] <= 11])
        with Ledger(ledger_url) as led:
            assert led.version == 11 and not led.has_table("partition_leases")
            # As collectors before migration 13 did, on PostgreSQL:
            led.db.execute("CREATE TABLE partition_leases (partition INTEGER PRIMARY KEY,"
                           " owner TEXT NOT NULL DEFAULT '', token BIGINT NOT NULL DEFAULT 0,"
                           " expires_at REAL NOT NULL DEFAULT 0)")  # fmt: skip
            led.db.execute("INSERT INTO partition_leases VALUES (0, 'a', 7, 0)")
    with Ledger(ledger_url) as led:
        assert led.version == MIGRATIONS[-1][0] >= 13
        assert led.has_table("partition_leases") and led.has_table("cluster_members")
        rows = led.db.execute("SELECT partition, owner, token FROM partition_leases").fetchall()
        assert [tuple(r) for r in rows] == [(0, "a", 7)]  # kept
        led.db.execute("INSERT INTO cluster_members VALUES (?, ?)", ("a", 1.5))


def test_writes_are_idempotent_and_revision_aware(ledger_url: str) -> None:
    recs = records()
    with Ledger(ledger_url) as led:
        assert led.write(recs) == 3
        assert led.write(recs) == 0  # replaying the same capture: nothing changes
        rows = led.db.execute("SELECT COUNT(*) FROM sessions").fetchone()[0]
        periods = led.db.execute("SELECT COUNT(*) FROM periods").fetchone()[0]
        assert rows == 3 and periods == sum(len(r.periods) for r in recs)
        revised = replace(recs[0], energy_wh=1.0, revision=1, quality=("revised",))
        assert led.write([revised]) == 1
        assert led.write([recs[0]]) == 0  # an older revision never rolls back
        got = get_session(led, recs[0].session_id)
        assert got is not None and got["energy_wh"] == 1.0 and got["revision"] == 1
        assert led.db.execute("SELECT COUNT(*) FROM sessions").fetchone()[0] == 3
        mr = led.db.execute(
            "SELECT kind, energy_wh FROM meter_readings WHERE session_id=? ORDER BY kind",
            (recs[1].session_id,),
        ).fetchall()
        assert [x[0] for x in mr] == ["start", "stop"]
        assert [x[1] for x in mr] == pytest.approx([1000.0, 4500.0])


def test_queries_filter_by_time_charger_site(ledger_url: str) -> None:
    recs = records(4)
    with Ledger(ledger_url) as led:
        led.write(recs)
        assert [d["transaction_id"] for d in query_sessions(led)] == ["0", "1", "2", "3"]
        assert len(query_sessions(led, charger="CP1")) == 2
        got = query_sessions(led, start_from=T0 + 7200, start_to=T0 + 3 * 7200)
        assert [d["transaction_id"] for d in got] == ["1", "2"]
        assert query_sessions(led, site="nowhere") == []
        assert len(query_sessions(led, site="unknown", limit=1, offset=1)) == 1
        assert "periods" not in query_sessions(led, periods=False)[0]
        assert get_session(led, "missing") is None
        d = get_session(led, recs[2].session_id)
        assert d == json.loads(jsonl_line(recs[2]))


def test_checkpoint_restart_resumes_open_session(ledger_url: str) -> None:
    index = ConnectorIndex()
    ts, e, p = charge(T0, 30, 7.0, 0.0)
    eng = SessionEngine(index)
    eng.update(batch(index, "CP", 1, ts[:10], e[:10], p[:10]), [start("CP", "1", T0, 0.0)], ts[9])
    with Ledger(ledger_url) as led:
        led.save_state(eng.snapshot(), at=ts[9])
    with Ledger(ledger_url) as led:
        state = led.load_state()
    assert state is not None
    eng2 = SessionEngine(ConnectorIndex())  # a fresh process: fresh dense ids
    eng2.restore(state)
    idx2 = eng2.index
    (r,) = eng2.update(
        batch(idx2, "CP", 1, ts[10:], e[10:], p[10:]), [stop("CP", "1", ts[-1], e[-1])], ts[-1]
    )
    assert r.energy_wh == pytest.approx(3500.0)
    assert r.quality == ()


def test_csv_json_and_line_protocol() -> None:
    recs = records(2)
    rows = [r.to_dict() for r in recs]
    text = to_csv(rows)
    parsed = list(csv.DictReader(io.StringIO(text)))
    assert [x["session_id"] for x in parsed] == [r.session_id for r in recs]
    assert float(parsed[1]["energy_wh"]) == pytest.approx(3500.0)
    assert json.loads(to_json(rows))[0]["periods"][0]["kind"] == "charging"
    r = replace(recs[0], charger_id="CP 1,a=b", site="Site One")
    (line,) = influx_lines([r])
    assert line.startswith("session,charger=CP\\ 1\\,a\\=b,connector=1,site=Site\\ One ")
    assert 'energy_source="transaction_meter"' in line and ",revision=0i," in line
    assert line.endswith(f" {round(r.start * 1e3)}")
    line_d = json.loads(jsonl_line(recs[0]))
    assert {
        "session_id",
        "charger_id",
        "connector_id",
        "transaction_id",
        "start",
        "stop",
        "energy_wh",
        "energy_source",
        "quality",
    } <= set(line_d)
    assert line_d["start"].endswith("Z")


def test_cli_export(ledger_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = ledger_url  # a file, or a PostgreSQL URL: --ledger takes either
    with Ledger(db) as led:
        led.write(records(3))
    out = tmp_path / "s.csv"
    assert (
        main(["sessions", "export", "--ledger", str(db), "--format", "csv", "--out", str(out)]) == 0
    )
    assert len(out.read_text().splitlines()) == 4
    frm = "2023-11-14T23:00:00Z"  # T0 is 2023-11-14T22:13:20Z: leaves out the first session
    assert main(["sessions", "export", "--ledger", str(db), "--format", "json", "--from", frm]) == 0
    data = json.loads(capsys.readouterr().out)
    assert [d["transaction_id"] for d in data] == ["1", "2"]
    assert main(["sessions", "export", "--ledger", str(tmp_path / "none.db")]) == 2


def test_session_periods_feed_the_tariff_engine() -> None:
    index = ConnectorIndex()
    ts, e, p = charge(T0, 60, 7.0, 0.0, idle_after=30)
    steps = [
        (T0 + 1, batch(index, "x", 1, [], [], []), [start("P", "1", T0, 0.0)]),
        (ts[-1] + 1, batch(index, "P", 1, ts, e, p), [stop("P", "1", ts[-1], e[-1])]),
    ]
    _, (r,) = run(steps, index)
    periods = session_periods(r)
    assert [x.state for x in periods] == [PeriodState.CHARGING, PeriodState.PARKING]
    assert periods[0].start.timestamp() == r.start and periods[-1].end.timestamp() == r.stop
    assert all(a.end == b.start for a, b in pairwise(periods))
    assert sum(x.energy_wh for x in periods) == pytest.approx(Decimal("7000"), abs=Decimal("0.01"))
    cdr = build_cdr(
        None, start=periods[0].start, end=periods[-1].end, timezone=ZoneInfo("UTC"), periods=periods
    )
    assert isinstance(cdr, UnpricedCdr)
    assert cdr.total_energy == pytest.approx(Decimal("7.000"), abs=Decimal("0.001"))
    assert periods[0].start.tzinfo is UTC


def test_read_only_reader_from_another_thread(ledger_url: str) -> None:
    db = ledger_url
    recs = records(2)
    with Ledger(db) as writer:
        writer.write(recs)
        reader = Ledger(db, read_only=True)
        got: list = []
        th = threading.Thread(target=lambda: got.append(query_sessions(reader)))
        th.start()
        th.join()
        assert [d["session_id"] for d in got[0]] == [r.session_id for r in recs]
        with pytest.raises((sqlite3.OperationalError, psycopg.errors.ReadOnlySqlTransaction)):
            reader.db.execute("DELETE FROM sessions")
        reader.close()
