"""The pipeline stage: ledger writes, checkpoints, restart, sessions.jsonl."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from chargewatch.collector.session_stage import SessionsJsonl, SessionStage
from chargewatch.model.batch import MeterBatch
from chargewatch.model.fleet import ConnectorIndex
from chargewatch.sessions.session_engine import SessionEngine
from chargewatch.storage.ledger import Ledger, query_sessions
from tests.billing.sessionkit import T0, batch, charge, start, status, stop


def test_stage_writes_checkpoints_and_resumes(tmp_path: Path) -> None:
    db = tmp_path / "ledger.db"
    ts, e, p = charge(T0, 60, 7.0, 100.0)
    index = ConnectorIndex()
    with Ledger(db) as led:
        stage = SessionStage(SessionEngine(index), ledger=led)
        stage.on_batch(
            batch(index, "S", 1, ts[:30], e[:30], p[:30]), [start("S", "1", T0, e[0])], ts[29]
        )
        stage.close(ts[29])
    # "Restart": a new process, new index, engine restored from the checkpoint.
    index2 = ConnectorIndex()
    out = SessionsJsonl(tmp_path / "sessions.jsonl")
    with Ledger(db) as led:
        stage2 = SessionStage(SessionEngine(index2), ledger=led, listeners=[out])
        assert stage2.resume()
        stage2.on_batch(batch(index2, "S", 1, ts[30:], e[30:], p[30:]), [], ts[-1])
        stage2.on_batch(MeterBatch.empty(), [stop("S", "1", ts[-1], e[-1])], ts[-1] + 1)
        stage2.tick(ts[-1] + 2)
        rows = query_sessions(led)
    assert len(rows) == 1 and rows[0]["energy_wh"] == pytest.approx(7000.0)
    assert out.write() == 1
    line = json.loads((tmp_path / "sessions.jsonl").read_text())
    assert line["session_id"] == rows[0]["session_id"]


def test_tick_fires_available_grace(tmp_path: Path) -> None:
    index = ConnectorIndex()
    ts, e, p = charge(T0, 10, 7.0, 0.0)
    got: list = []
    stage = SessionStage(SessionEngine(index), listeners=[got.extend])
    stage.on_batch(batch(index, "S", 1, ts, e, p), [start("S", "1", T0, 0.0)], ts[-1])
    stage.on_batch(MeterBatch.empty(), [status("S", "Available", ts[-1] + 5)], ts[-1] + 6)
    assert got == []
    stage.tick(ts[-1] + 400)
    assert len(got) == 1 and got[0].stop_reason == "available"


def test_replaying_twice_gives_identical_rows(tmp_path: Path) -> None:
    ts, e, p = charge(T0, 30, 11.0, 0.0)
    dumps = []
    for k in range(2):
        index = ConnectorIndex()
        with Ledger(tmp_path / "same.db") as led:
            stage = SessionStage(SessionEngine(index), ledger=led)
            stage.on_batch(batch(index, "S", 1, ts, e, p), [start("S", "9", T0, 0.0)], ts[-1])
            stage.on_batch(MeterBatch.empty(), [stop("S", "9", ts[-1], e[-1])], ts[-1] + 1)
            written = stage.records_written
            dumps.append(
                [tuple(r) for r in led.db.execute("SELECT * FROM sessions ORDER BY session_id")]
            )
            n_periods = led.db.execute("SELECT COUNT(*) FROM periods").fetchone()[0]
        assert written == (1 if k == 0 else 0)
        assert n_periods == 2  # charging, then idle after the last charging sample
    assert dumps[0] == dumps[1]


def test_a_start_since_the_checkpoint_survives_a_crash(tmp_path: Path) -> None:
    # The collector acknowledges the batch right after the stages ran: a session
    # opened since the last periodic checkpoint must survive a crash (no close()),
    # through the journal written in the start's own batch.
    db = tmp_path / "ledger.db"
    ts, e, p = charge(T0, 120, 7.0, 100.0)
    index = ConnectorIndex()
    with Ledger(db) as led:
        stage = SessionStage(SessionEngine(index), ledger=led, checkpoint_every_s=3600)
        # Another connector's samples: the first (periodic) checkpoint, without S.
        stage.on_batch(batch(index, "X", 1, ts[:10], [0.0] * 10, [0.0] * 10), [], ts[9])
        stage.on_batch(MeterBatch.empty(), [start("S", "1", ts[10], e[10])], ts[10])
        stage.on_batch(batch(index, "S", 1, ts[11:60], e[11:60], p[11:60]), [], ts[59])
        assert [kind for kind, _ in led.journal()] == ["TransactionEvent"]
    index2 = ConnectorIndex()
    with Ledger(db) as led:
        stage2 = SessionStage(SessionEngine(index2), ledger=led)
        assert stage2.resume()
        assert [s["transaction_id"] for s in stage2.engine.open_sessions()] == ["1"]
        assert led.journal() == []  # absorbed by the checkpoint after the replay
        stage2.on_batch(batch(index2, "S", 1, ts[60:], e[60:], p[60:]), [], ts[-1])
        stage2.on_batch(MeterBatch.empty(), [stop("S", "1", ts[-1], e[-1])], ts[-1] + 1)
        rows = query_sessions(led)
    assert stage2.rejected == []
    assert len(rows) == 1 and rows[0]["energy_wh"] == pytest.approx(e[-1] - e[10])
