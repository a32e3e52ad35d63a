"""Stops waiting for their start survive a checkpoint, a restart and a partition
move (issue 23, docs/scaling.md "What a rebalance guarantees").

A stop can reach the engine before its start: go-e firmware sends
``transactionId: -1`` (matched to the open transaction once it starts), and a
1.6 start whose CSMS answer is late comes after a stop naming the answered id.
Such a stop waits ``late_after_s`` in the engine; it used to be left out of the
checkpoint, so a restart or a handover in that window lost it (the session then
ran into its timeout and was billed without the stop's meter value).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from chargewatch.collector.session_stage import SessionStage, merge_states, split_state
from chargewatch.model.batch import MeterBatch
from chargewatch.model.events import SignedReading
from chargewatch.model.fleet import ConnectorIndex
from chargewatch.sessions.session_engine import SessionEngine
from chargewatch.storage.ledger import Ledger, query_sessions
from tests.billing.sessionkit import T0, batch, charge, start, stop

EMPTY = MeterBatch.empty()
OLD_CHECKPOINT = Path(__file__).parent / "testdata" / "session_checkpoint_v1.json"
TS, E, P = charge(T0, 60, 7.0, 1_000.0)  # an hour at 7 kW, one sample a minute
STOP_AT = TS[-1]


def only(*chargers: str) -> Callable[[str], bool]:
    return lambda c: c in chargers


def _through_json(state: dict[str, Any]) -> dict[str, Any]:
    # What the ledger stores and gives back.
    out: dict[str, Any] = json.loads(json.dumps(state))
    return out


@pytest.mark.parametrize("tx", ["-1", "42"], ids=["goe_minus_1", "answered_id"])
def test_a_waiting_stop_is_checkpointed_and_ends_its_session_after_a_restore(tx: str) -> None:
    index = ConnectorIndex()
    engine = SessionEngine(index)
    assert engine.update(EMPTY, [stop("S", tx, STOP_AT, E[-1])], STOP_AT + 2) == []
    snap = _through_json(engine.snapshot())
    assert [w["transaction_id"] for w in snap["waiting_stops"]] == [tx]
    # A fresh process: new index, new engine, the checkpoint.
    index2 = ConnectorIndex()
    resumed = SessionEngine(index2)
    resumed.restore(snap)
    events = [start("S", "42", TS[0], E[0])]
    records = resumed.update(batch(index2, "S", 1, TS, E, P), events, STOP_AT + 30)
    (r,) = records
    assert r.stop_reason == "transaction"
    assert r.meter_start_wh == E[0] and r.meter_stop_wh == E[-1]
    assert r.energy_wh == pytest.approx(E[-1] - E[0])
    assert resumed.drain_rejected() == []
    assert "waiting_stops" not in resumed.snapshot()


def test_a_waiting_stop_past_late_after_s_after_a_restore_is_rejected_once() -> None:
    index = ConnectorIndex()
    engine = SessionEngine(index)
    engine.update(EMPTY, [stop("S", "-1", STOP_AT, E[-1])], STOP_AT + 2)
    resumed = SessionEngine(ConnectorIndex())
    resumed.restore(_through_json(engine.snapshot()))
    late = resumed.config.late_after_s
    # The broker redelivers the unacknowledged stop: the same stop, received again.
    resumed.update(EMPTY, [stop("S", "-1", STOP_AT, E[-1])], STOP_AT + 5)
    assert resumed.drain_rejected() == []  # still within late_after_s of its receipt
    for now in (STOP_AT + late + 3, STOP_AT + late + 60, STOP_AT + 10 * late):
        resumed.update(EMPTY, [], now)
    (rej,) = resumed.drain_rejected()
    assert (rej.charger, rej.reason, rej.detail) == ("S", "stop_without_session", "-1")
    assert "waiting_stops" not in resumed.snapshot()


def test_an_old_checkpoint_without_waiting_stops_restores_and_stops_still_wait() -> None:
    old = json.loads(OLD_CHECKPOINT.read_text())["checkpoint"]
    assert "waiting_stops" not in old
    engine = SessionEngine(ConnectorIndex())
    engine.restore(old)
    assert engine.snapshot()["open"] == sorted(old["open"])
    engine.update(EMPTY, [stop("Z", "-1", T0 + 9000, 5.0)], T0 + 9001)
    assert len(engine.snapshot()["waiting_stops"]) == 1


def test_a_waiting_stop_keeps_its_signed_reading_and_flags_through_json() -> None:
    signed = SignedReading(raw="OCMF|{}|{}", encoding="OCMF", energy_wh=2000.0)
    ev = stop("S", "-1", STOP_AT, E[-1])
    ev = replace(ev, signed=signed, flags=("connector_unknown",), seq_no=3)
    engine = SessionEngine(ConnectorIndex())
    engine.update(EMPTY, [ev], STOP_AT + 2)
    resumed = SessionEngine(ConnectorIndex())
    resumed.restore(_through_json(engine.snapshot()))
    assert resumed._book.waiting_stops == [ev]


def test_split_state_moves_a_waiting_stop_with_its_charger() -> None:
    engine = SessionEngine(ConnectorIndex())
    engine.update(EMPTY, [stop("S", "-1", STOP_AT, 1.0), stop("R", "-1", STOP_AT, 2.0)], STOP_AT)
    snap = engine.snapshot()
    mine, rest = split_state(snap, only("S"))
    assert mine is not None and rest is not None
    assert [w["charger"] for w in mine["waiting_stops"]] == ["S"]
    assert [w["charger"] for w in rest["waiting_stops"]] == ["R"]
    joined = merge_states(mine, rest)
    assert sorted(w["charger"] for w in joined["waiting_stops"]) == ["R", "S"]
    # A charger whose only state is a waiting stop is still a part of its own.
    empty = SessionEngine(ConnectorIndex()).snapshot()
    only_waiting = empty | {"waiting_stops": mine["waiting_stops"]}
    assert split_state(only_waiting, only("S")) == (only_waiting, None)


def _first_life(db: str) -> None:
    """Collector "a" (all chargers): R charges and stops; S's stop arrives before
    its start. R's closed session forces a checkpoint, which empties the journal:
    from then on only the checkpoint holds S's stop. Then "a" is killed."""
    index = ConnectorIndex()
    with Ledger(db, collector_id="a") as led:
        stage = SessionStage(SessionEngine(index), ledger=led, checkpoint_every_s=7200)
        stage.resume(owns=lambda c: True, now=TS[0])
        stage.close(TS[0])
        r_events = [start("R", "r1", TS[0], E[0])]
        stage.on_batch(batch(index, "R", 1, TS, E, P), r_events, TS[-1])
        stage.on_batch(EMPTY, [stop("S", "s1", STOP_AT, E[-1])], STOP_AT + 1)
        stage.on_batch(EMPTY, [stop("R", "r1", STOP_AT, E[-1])], STOP_AT + 2)
        assert led.journal() == []
        assert stage.rejected == []


def _second_life(db: str, name: str, owns: Callable[[str], bool], *, take: bool) -> None:
    """A collector that owns S: S's start (held by the decoder until the CSMS
    answered) and samples arrive; the waiting stop ends the session."""
    index = ConnectorIndex()
    with Ledger(db, collector_id=name) as led:
        stage = SessionStage(SessionEngine(index), ledger=led)
        if take:  # dynamic partitions: a running collector takes S over
            stage.resume(owns=lambda c: False, now=STOP_AT + 3)
            assert stage.take_over(owns, STOP_AT + 3) == 1
        else:
            stage.resume(owns=owns, now=STOP_AT + 3)
        s_events = [start("S", "s1", TS[0], E[0])]
        stage.on_batch(batch(index, "S", 1, TS, E, P), s_events, STOP_AT + 20)
        assert stage.rejected == []
        stage.close(STOP_AT + 21)


@pytest.mark.parametrize("how", ["restart", "handover", "take_over"])
def test_a_waiting_stop_survives_a_kill_and_a_partition_move(ledger_url: str, how: str) -> None:
    db = ledger_url
    _first_life(db)
    if how == "restart":
        _second_life(db, "a", lambda c: True, take=False)
    elif how == "handover":  # "a" restarts without S; "b" starts owning S
        with Ledger(db, collector_id="a") as led:
            stage = SessionStage(SessionEngine(ConnectorIndex()), ledger=led)
            stage.resume(owns=only("R"), now=STOP_AT + 3)
            stage.close(STOP_AT + 3)
            assert "waiting_stops" not in (led.load_state() or {})
        _second_life(db, "b", only("S"), take=False)
    else:
        _second_life(db, "b", only("S"), take=True)
    with Ledger(db) as led:
        rows = {r["charger_id"]: r for r in query_sessions(led)}
        assert led.db.execute("SELECT COUNT(*) FROM handover").fetchone()[0] == 0
    assert set(rows) == {"R", "S"}
    s = rows["S"]
    assert s["stop_reason"] == "transaction"
    assert s["energy_wh"] == pytest.approx(E[-1] - E[0])


def test_the_journal_alone_restores_a_waiting_stop_after_a_kill(ledger_url: str) -> None:
    """Between checkpoints the stop is in the journal (it is a transaction event,
    journaled before the broker is acknowledged); replaying it after a kill puts
    it back among the waiting stops, with its receive time."""
    db = ledger_url
    index = ConnectorIndex()
    with Ledger(db, collector_id="a") as led:
        stage = SessionStage(SessionEngine(index), ledger=led, checkpoint_every_s=7200)
        stage.resume(now=TS[0])
        stage.close(TS[0])
        stage.on_batch(EMPTY, [stop("S", "s1", STOP_AT, E[-1])], STOP_AT + 1)
        assert [kind for kind, _ in led.journal()] == ["TransactionEvent"]
        assert "waiting_stops" not in (led.load_state() or {})
    # killed: no final checkpoint
    index2 = ConnectorIndex()
    with Ledger(db, collector_id="a") as led:
        stage = SessionStage(SessionEngine(index2), ledger=led)
        assert stage.resume(now=STOP_AT + 3)
        assert [w["transaction_id"] for w in (led.load_state() or {})["waiting_stops"]] == ["s1"]
        s_events = [start("S", "s1", TS[0], E[0])]
        stage.on_batch(batch(index2, "S", 1, TS, E, P), s_events, STOP_AT + 20)
        assert stage.rejected == []
        stage.close(STOP_AT + 21)
        (row,) = query_sessions(led)
    assert row["stop_reason"] == "transaction"
    assert row["energy_wh"] == pytest.approx(E[-1] - E[0])
