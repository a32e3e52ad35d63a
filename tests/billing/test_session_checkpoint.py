"""Checkpoints written by earlier versions of the engine still restore.

``testdata/session_checkpoint_v1.json`` was written by the engine before its
per-session state became compact arrays (commit 7f1a7cf): the snapshot in the
middle of :func:`scenario` and the records that engine emitted after restoring
it. Regenerate only deliberately (``python -m tests.billing.test_session_checkpoint``
with that engine on the path): the point is that old files keep working.

One deliberate edit since: issue #18 made a period's min/max power those of
its own samples (a threshold crossing is a boundary, not a sample), so two
figures of ``records_before`` (B's charging min and idle max power, 50 W, the
threshold) were set to what the engine now emits, 11,000 W and 0 W; nothing
else changed. The checkpoint and ``records_after`` are as written: a restored
old checkpoint keeps its pieces' stored statistics (docs/sessions.md).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from chargewatch.model.batch import MeterBatch
from chargewatch.model.events import Event
from chargewatch.model.fleet import ConnectorIndex
from chargewatch.sessions.session_engine import SessionEngine, SessionRecord
from chargewatch.storage.ledger import Ledger
from tests.billing.sessionkit import T0, batch, charge, start, status, stop

FIXTURE = Path(__file__).parent / "testdata" / "session_checkpoint_v1.json"
EMPTY = MeterBatch.empty()
Step = tuple[float, MeterBatch, list[Event]]


def scenario(index: ConnectorIndex) -> tuple[list[Step], list[Step]]:
    """Steps before the checkpoint and after it: open sessions with a register
    reset, a gap, a refinable (soft) interval, idle and charging pieces; a
    status-inferred session closed and a new one open; a power-inferred one."""
    # A: transaction; 30 min at 7 kW, a 40 min hole, a reboot (register from ~0).
    ts1, e1, p1 = charge(T0, 30, 7.0, 10_000.0)
    ts2, e2, p2 = charge(T0 + 4200, 20, 7.0, 50.0, idle_after=10)
    # A 5-minute silence inside the second run: bridged, but refinable.
    keep = [k for k, t in enumerate(ts2) if not T0 + 4500 < t < T0 + 4800]
    ts2, e2, p2 = [ts2[k] for k in keep], [e2[k] for k in keep], [p2[k] for k in keep]
    # B: statuses only.
    tb, eb, pb = charge(T0, 15, 11.0, 3_000.0, idle_after=5)
    tb2, eb2, pb2 = charge(T0 + 3600, 20, 11.0, eb[-1] + 10.0)
    # C: neither transactions nor statuses (power-inferred).
    tc, _ec, pc = charge(T0 + 4800, 25, 3.7, 0.0)
    before: list[Step] = [
        (T0 + 2, EMPTY, [status("A", "Preparing", T0), start("A", "a1", T0 + 1, 10_000.0)]),
        (T0 + 3, EMPTY, [status("A", "Charging", T0 + 2), status("B", "Preparing", T0)]),
        (tb[-1] + 35, batch(index, "B", 1, tb, eb, pb), [status("B", "Available", tb[-1] + 30)]),
        (ts1[-1] + 5, batch(index, "A", 1, ts1, e1, p1), []),
        (T0 + 3601, EMPTY, [status("B", "Preparing", T0 + 3600)]),
        (tb2[-1] + 5, batch(index, "B", 1, tb2, eb2, pb2), []),
        (ts2[-1] + 5, batch(index, "A", 1, ts2, e2, p2), []),
        (tc[-1] + 5, batch(index, "C", 1, tc, None, pc), []),
    ]
    # After: A's stop, then late samples into its hole and its soft interval (a
    # revision); B freed; C times out.
    end = ts2[-1] + 120
    late_t = [T0 + 2400.0, T0 + 3000.0, T0 + 4560.0, T0 + 4680.0]
    late_e = [e1[-1] + 1.0, e1[-1] + 2.0, e2[4] + 700.0, e2[4] + 900.0]
    late_p = [6900.0, 6950.0, 7000.0, 7000.0]
    after: list[Step] = [
        (end + 5, EMPTY, [stop("A", "a1", end, e2[-1]), status("A", "Available", end + 1)]),
        (
            end + 600,
            batch(index, "A", 1, late_t, late_e, late_p, recv=[end + 590] * 4),
            [],
        ),
        (end + 700, EMPTY, [status("B", "Available", end + 650)]),
        (tc[-1] + 4000, EMPTY, []),
    ]
    return before, after


def _run(engine: SessionEngine, steps: list[Step]) -> list[SessionRecord]:
    out: list[SessionRecord] = []
    for now, b, ev in steps:
        out += engine.update(b, ev, now)
    return out


def _lines(records: list[SessionRecord]) -> list[dict[str, Any]]:
    lines = [json.loads(json.dumps(r.to_dict())) for r in records]
    for line in lines:  # issue 21 added these keys to every line; the fixture predates them
        got = (line.pop("signature_status"), line.pop("signature_reason"), line.pop("key_pinned"))
        assert got == ("unsigned", "no signed meter reading", False)
    return lines


def _as_written(records: list[SessionRecord]) -> list[dict[str, Any]]:
    """The records' lines as the fixture's engine wrote them: charger_stop_reason
    came after it (each transaction stop's reason, EVDisconnected here)."""
    lines = _lines(records)
    told = [d.pop("charger_stop_reason", "") for d in lines]
    assert told == ["EVDisconnected" if d["stop_reason"] == "transaction" else "" for d in lines]
    return lines


def test_a_version_1_checkpoint_restores_and_continues_as_it_would_have() -> None:
    doc = json.loads(FIXTURE.read_text())
    index = ConnectorIndex()
    _before, after = scenario(index)
    engine = SessionEngine(index)
    engine.restore(doc["checkpoint"])
    # Written back in the same format (what an older collector would read) ...
    assert json.loads(json.dumps(engine.snapshot())) == doc["checkpoint"]
    # ... and the sessions go on exactly as they did in the engine that wrote it.
    assert _as_written(_run(engine, after)) == doc["records_after"]


def test_the_scenario_gives_the_same_records_with_and_without_the_checkpoint() -> None:
    index = ConnectorIndex()
    before, after = scenario(index)
    straight = SessionEngine(index)
    first = _run(straight, before)
    ref = _run(straight, after)
    resumed = SessionEngine(index)
    assert _run(resumed, before) == first
    again = SessionEngine(index)
    again.restore(json.loads(json.dumps(resumed.snapshot())))
    assert _run(again, after) == ref
    doc = json.loads(FIXTURE.read_text())
    assert _lines(first) == doc["records_before"]
    # The checkpoint holds what the scenario is for.
    sessions = doc["checkpoint"]["sessions"]
    assert any(len(s["segs"]) > 1 and s["bridges"] for s in sessions)
    assert any(s["track"]["gaps"] for s in sessions)
    assert any(s["track"]["soft"] for s in sessions)
    assert any(s["start_source"] == "power" for s in sessions)
    assert len(doc["checkpoint"]["open"]) == 3


def test_a_checkpoint_kept_in_the_ledger_resumes_the_sessions_exactly(ledger_url: str) -> None:
    """The ledger writes checkpoints with orjson (NaN as null); the unknown
    currents in the scenario's tracks come back as NaN, and the sessions go on
    as they did in the engine that wrote the fixture."""
    doc = json.loads(FIXTURE.read_text())
    assert "NaN" in FIXTURE.read_text()  # the fixture has unknown currents to carry
    index = ConnectorIndex()
    _before, after = scenario(index)
    engine = SessionEngine(index)
    engine.restore(doc["checkpoint"])
    with Ledger(ledger_url) as led:
        led.save_state(engine.snapshot(), at=T0)
        stored = led.load_state()
    assert stored is not None
    resumed = SessionEngine(index)
    resumed.restore(stored)
    assert json.loads(json.dumps(resumed.snapshot())) == doc["checkpoint"]
    assert _as_written(_run(resumed, after)) == doc["records_after"]


def test_a_checkpoint_row_an_older_collector_wrote_with_nan_tokens_still_loads(
    ledger_url: str,
) -> None:
    doc = json.loads(FIXTURE.read_text())
    with Ledger(ledger_url) as led:
        led.save_state({}, at=T0)  # the row, under this collector's name
        led.db.execute("UPDATE engine_state SET state=?", (json.dumps(doc["checkpoint"]),))
        stored = led.load_state()
    assert stored is not None
    index = ConnectorIndex()
    scenario(index)  # the connectors in the order the fixture's engine met them
    engine = SessionEngine(index)
    engine.restore(stored)
    assert json.loads(json.dumps(engine.snapshot())) == doc["checkpoint"]


def _generate() -> None:
    index = ConnectorIndex()
    before, after = scenario(index)
    engine = SessionEngine(index)
    records_before = _run(engine, before)
    checkpoint = json.loads(json.dumps(engine.snapshot()))
    restored = SessionEngine(index)
    restored.restore(json.loads(json.dumps(checkpoint)))
    doc = {
        "checkpoint": checkpoint,
        "records_before": _lines(records_before),
        "records_after": _lines(_run(restored, after)),
    }
    FIXTURE.write_text(json.dumps(doc, indent=1) + "\n")
    print(f"wrote {FIXTURE}: {len(checkpoint['sessions'])} sessions")


if __name__ == "__main__":
    np.seterr(all="ignore")
    _generate()
