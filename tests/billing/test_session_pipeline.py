"""End to end: OCPP 1.6 frames, Pipeline (OCPP decoder), SessionStage, ledger, sessions.jsonl."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from chargewatch.collector.pipeline import Pipeline
from chargewatch.collector.session_stage import SessionsJsonl, SessionStage
from chargewatch.core.resources import shared_data_dir
from chargewatch.ingest.decode_ocpp import OcppDecoder
from chargewatch.model.fleet import ConnectorIndex
from chargewatch.sessions.session_engine import SessionEngine
from chargewatch.simulator.dataset_plans import acn_plans, ocpp16_capture, with_faults
from chargewatch.storage.ledger import Ledger, query_sessions

ACN = shared_data_dir() / "acn-jpl-sessions-2021.json"


@pytest.mark.skipif(
    not ACN.exists(),
    reason="shared datasets not present (a failure under CI=true: tests/conftest.py)",
)
def test_capture_through_pipeline_twice_is_idempotent(tmp_path: Path) -> None:
    plans = with_faults(acn_plans(ACN)[:25], 0.5, seed=2)
    frames = ocpp16_capture(plans, 60.0)
    db = tmp_path / "ledger.db"
    outputs = []
    for run in range(2):
        index = ConnectorIndex()
        jsonl = SessionsJsonl(tmp_path / f"sessions{run}.jsonl")
        with Ledger(db) as led:
            stage = SessionStage(SessionEngine(index), ledger=led, listeners=[jsonl])
            pipe = Pipeline(index, ocpp=OcppDecoder(index), stages=[stage])
            chunk: list[tuple[str, bytes, float]] = []
            for recv, topic, payload in frames:
                if chunk and recv - chunk[0][2] >= 300.0:
                    pipe.process(chunk, chunk[-1][2])
                    pipe.tick(chunk[-1][2])
                    chunk = []
                chunk.append((topic, payload, recv))
            pipe.process(chunk, chunk[-1][2])
            pipe.tick(chunk[-1][2] + 86400.0)  # let the Available grace run out
            stage.close(chunk[-1][2] + 86400.0)
            rows = query_sessions(led)
            if run == 1:
                assert stage.records_written == 0  # second replay: nothing new
        assert jsonl.write() == len(plans)
        outputs.append((tmp_path / f"sessions{run}.jsonl").read_text())
        assert len(rows) == len(plans)
    assert outputs[0] == outputs[1]
    truth = {p.transaction_id: p.energy_wh for p in plans}
    for line in outputs[0].splitlines():
        d = json.loads(line)
        assert d["energy_wh"] == pytest.approx(truth[d["transaction_id"]], rel=0.01)
