"""Messages held while their charger's clock offset is in doubt
(sessions/clock_hold.py): a charger two hours ahead loses nothing to
``future_timestamp`` before its offset is confirmed; a lone wrong timestamp is
still rejected as before; holding is bounded and survives checkpoints,
crashes and handover."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import pytest

from chargewatch.collector.session_stage import SessionStage, merge_states, split_state
from chargewatch.model.batch import MeterBatch
from chargewatch.model.events import Event, StatusEvent
from chargewatch.model.fleet import ConnectorIndex
from chargewatch.sessions.clock_hold import ClockHold
from chargewatch.sessions.clock_offsets import ClockOffsets
from chargewatch.sessions.session_engine import Rejected, SessionConfig, SessionEngine
from chargewatch.storage.ledger import Ledger, query_sessions
from tests.billing.sessionkit import T0, final
from tests.billing.test_session_clock import LATENCY, Item, _batch, _one, _replay, _session

AHEAD = 7_200.0  # local summer time sent as UTC: beyond future_tolerance_s (1 h)


def _start_alone(charger: str) -> list[Item]:
    """A 2.0.1-like charge whose first message is its transaction start, alone:
    nothing has confirmed the clock's offset when it arrives."""
    items = _one(charger, AHEAD, start_min=10, stop_min=70)[2:]  # no statuses before
    t, ev, _, ch = items[0]
    return [(t, ev, None, ch), *items[1:]]


def test_a_first_message_two_hours_ahead_is_held_until_its_offset_is_confirmed() -> None:
    # Before: the start was future_timestamp, and the charge was an inferred
    # session of its samples that its stop could not name.
    index = ConnectorIndex()
    eng, recs = _replay(index, _start_alone("AHEAD"))
    got = _session(recs, "AHEAD")
    assert eng.drain_rejected() == []
    assert got.transaction_id == "tx1" and "inferred_start" not in got.quality
    assert got.start == pytest.approx(T0 + 600.0, abs=1.0)
    assert got.stop == pytest.approx(T0 + 70 * 60.0, abs=1.0)
    assert got.energy_wh == pytest.approx(11_000.0 * 59 / 60, abs=0.01)
    assert got.clock_offset_s == pytest.approx(AHEAD - LATENCY)
    assert len(eng._book.held) == 0


def test_a_first_meter_sample_two_hours_ahead_is_held_too() -> None:
    # A charger that sends only samples: its session starts at its first one.
    index = ConnectorIndex()
    items: list[Item] = [
        (T0 + m * 60.0, [], (T0 + m * 60.0 + AHEAD, T0 + m * 60.0 + LATENCY, 1_000.0 * m), "PWR")
        for m in range(10, 41)
    ]
    eng, recs = _replay(index, items)
    got = _session(recs, "PWR")
    assert eng.drain_rejected() == []
    assert got.start == pytest.approx(T0 + 600.0, abs=1.0)
    assert got.energy_wh == pytest.approx(30_000.0)


def _status(charger: str, ts: float, recv: float) -> list[Event]:
    return [StatusEvent(charger, 1, ts, recv, "Available")]


def test_a_lone_wrong_timestamp_of_a_right_clock_is_rejected_as_before() -> None:
    # A firmware glitch two hours ahead, then right timestamps again: the
    # candidate is dropped and the held status rejected with what it had.
    eng = SessionEngine(ConnectorIndex())
    eng.update(MeterBatch.empty(), _status("GLITCH", T0 + AHEAD, T0), T0 + 1)
    assert eng.drain_rejected() == [] and len(eng._book.held) == 1
    eng.update(MeterBatch.empty(), _status("GLITCH", T0 + 60, T0 + 60.2), T0 + 61)
    assert eng.drain_rejected() == [
        Rejected("GLITCH", 1, T0 + AHEAD, "future_timestamp", "StatusEvent")
    ]
    assert len(eng._book.held) == 0


def test_a_held_message_is_rejected_once_it_waited_clock_hold_s() -> None:
    config = SessionConfig(clock_hold_s=3_600.0)
    eng = SessionEngine(ConnectorIndex(), config)
    eng.update(MeterBatch.empty(), _status("SILENT", T0 + AHEAD, T0), T0 + 1)
    eng.update(MeterBatch.empty(), [], T0 + 3_600.0)
    assert eng.drain_rejected() == [] and len(eng._book.held) == 1
    eng.update(MeterBatch.empty(), [], T0 + 3_601.0)
    assert [r.reason for r in eng.drain_rejected()] == ["future_timestamp"]
    assert len(eng._book.held) == 0
    eng.update(MeterBatch.empty(), [], T0 + 7_200.0)
    assert eng.drain_rejected() == []  # once


class _Doubting(ClockOffsets):
    """A clock that never makes up its mind: every message of X stays in doubt."""

    def pending(self) -> dict[str, float]:
        return {"X": AHEAD}


def test_holding_is_bounded_per_charger() -> None:
    index = ConnectorIndex()
    clock = _Doubting(index, min_offset_s=300.0, agree_s=60.0, confirm_n=3, confirm_span_s=600.0)
    hold = ClockHold(index, clock, future_tolerance_s=3_600.0, hold_s=86_400.0, max_held=2)
    rejected: list[Rejected] = []
    for k in range(5):
        t = T0 + 60.0 * k
        events = _status("X", t + AHEAD, t)
        b = _batch([(index.id("X", 1), t + AHEAD + 1, t + 1, 1.0)])
        left, rest, out = hold.step(events, b, t + 2)
        assert left == [] and len(rest) == 0
        rejected += out
    assert len(hold) == 2
    # The oldest went first, each with its own time.
    assert [(r.detail, r.ts - AHEAD - T0) for r in rejected] == [
        ("StatusEvent", 0.0), ("meter sample", 1.0), ("StatusEvent", 60.0), ("meter sample", 61.0),
        ("StatusEvent", 120.0), ("meter sample", 121.0), ("StatusEvent", 180.0),
        ("meter sample", 181.0),
    ]  # fmt: skip


def _json(state: dict[str, object]) -> dict[str, object]:
    return json.loads(json.dumps(state))  # as the ledger keeps it


def test_a_held_message_survives_a_checkpoint_and_moves_with_its_charger() -> None:
    index = ConnectorIndex()
    items = _start_alone("AHEAD")
    eng = SessionEngine(index)
    t, ev, _, _ = items[0]
    eng.update(MeterBatch.empty(), ev, t + 1.0)
    state = eng.snapshot()
    assert [x["charger"] for x in state["clock_held"]] == ["AHEAD"]
    mine, rest = split_state(_json(state), lambda c: c == "AHEAD")
    assert rest is None and mine is not None
    assert merge_states(mine, {})["clock_held"] == _json(state)["clock_held"]
    again = SessionEngine(ConnectorIndex())
    again.restore(merge_states(mine, {}))
    assert len(again._book.held) == 1
    # The next message confirms the offset the restored one waits for.
    _, recs = _replay(again.index, items[1:], engine=again)
    got = _session(recs, "AHEAD")
    assert again.drain_rejected() == []
    assert got.transaction_id == "tx1" and got.start == pytest.approx(T0 + 600.0, abs=1.0)
    assert "clock_held" not in again.snapshot()


@pytest.mark.parametrize("kept_in", ["checkpoint", "journal"])
def test_a_held_message_is_neither_lost_nor_doubled_by_a_crash(
    tmp_path: Path, kept_in: str
) -> None:
    # The collector acknowledges a batch once the stages ran: a held start is in
    # the checkpoint (written in its step) or in the journal (written after it).
    db = tmp_path / "ledger.db"
    items = _start_alone("AHEAD")
    t, ev, _, _ = items[0]
    index = ConnectorIndex()
    with Ledger(db) as led:
        every = 0.0 if kept_in == "checkpoint" else 3_600.0
        stage = SessionStage(SessionEngine(index), ledger=led, checkpoint_every_s=every)
        if kept_in == "journal":  # the periodic checkpoint came before it
            stage.on_batch(MeterBatch.empty(), [], t - 10.0)
        stage.on_batch(MeterBatch.empty(), ev, t + 1.0)
        assert len(stage.engine._book.held) == 1
        journaled = [kind for kind, _ in led.journal()]
        assert journaled == ([] if kept_in == "checkpoint" else ["TransactionEvent"])
    # Crash (no close); a new process resumes.
    index2 = ConnectorIndex()
    with Ledger(db) as led:
        stage2 = SessionStage(SessionEngine(index2), ledger=led)
        assert stage2.resume(now=t + 30.0)
        assert len(stage2.engine._book.held) == 1
        for t_k, ev_k, s_k, ch in items[1:]:
            rows = [(index2.id(ch, 1), *s_k)] if s_k is not None else []
            stage2.on_batch(_batch(rows), ev_k, t_k + 1.0)
        stage2.tick(T0 + 3 * 86_400.0)
        got = query_sessions(led)
    assert stage2.rejected == []
    assert [r["transaction_id"] for r in got] == ["tx1"]
    start = datetime.fromisoformat(got[0]["start"].replace("Z", "+00:00")).timestamp()
    assert start == pytest.approx(T0 + 600.0, abs=1.0)


def test_nothing_is_held_for_right_clocks() -> None:
    index = ConnectorIndex()
    eng, recs = _replay(index, _one("RIGHT", 0.0, start_min=5, stop_min=65))
    assert len(final(recs)) == 1 and len(eng._book.held) == 0
    assert "clock_held" not in eng.snapshot()


def test_config_refuses_no_room_to_hold() -> None:
    with pytest.raises(ValueError, match="clock_hold_max"):
        SessionConfig(clock_hold_max=0)


def test_a_replay_that_ends_gives_up_what_is_held() -> None:
    # No later frame can confirm the offset: rejected as clock_hold_s would.
    eng = SessionEngine(ConnectorIndex())
    eng.update(MeterBatch.empty(), _status("LAST", T0 + AHEAD, T0), T0 + 1)
    eng.give_up_held()
    assert eng.drain_rejected() == [
        Rejected("LAST", 1, T0 + AHEAD, "future_timestamp", "StatusEvent")
    ]
    assert len(eng._book.held) == 0
