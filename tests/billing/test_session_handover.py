"""Moving chargers between collectors that share a ledger (docs/scaling.md, handover).

Two collectors are two SessionStages with their own ledger connections and
collector ids on one file. A charger with an open session moves from "a" to
"b" by a partition change and restarts; whichever starts first, the session
continues at its new owner and is billed once with the whole energy.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from chargewatch.collector.session_stage import SessionStage, merge_states, split_state
from chargewatch.model.batch import MeterBatch
from chargewatch.model.fleet import ConnectorIndex
from chargewatch.sessions.session_engine import SessionEngine
from chargewatch.storage.ledger import (
    CollectorBusyError,
    Ledger,
    OwnershipConflictError,
    query_sessions,
)
from tests.billing.sessionkit import T0, batch, charge, start, stop

TS, E, P = charge(T0, 120, 7.0, 100.0)  # two hours at 7 kW, one sample a minute


def everything(charger: str) -> bool:
    return True


def only(*chargers: str) -> Callable[[str], bool]:
    return lambda c: c in chargers


def first_life(db: str, *, clean_stop: bool) -> None:
    """Collector "a" owns S and R and charges both for an hour."""
    index = ConnectorIndex()
    with Ledger(db, collector_id="a") as led:
        stage = SessionStage(SessionEngine(index), ledger=led, checkpoint_every_s=3600)
        stage.resume(owns=everything, now=TS[0])
        events = [start("S", "s1", TS[0], E[0]), start("R", "r1", TS[0], E[0])]
        stage.on_batch(batch(index, "S", 1, TS[:60], E[:60], P[:60]), events, TS[59])
        stage.on_batch(batch(index, "R", 1, TS[:60], E[:60], P[:60]), [], TS[59])
        if clean_stop:
            stage.close(TS[59])  # SIGTERM: final checkpoint; else a crash, the journal holds it


def second_life(db: str, name: str, owns: Callable[[str], bool], chargers: list[str]) -> Ledger:
    """A collector after the partition change: resumes, charges its chargers to the end."""
    index = ConnectorIndex()
    led = Ledger(db, collector_id=name)
    stage = SessionStage(SessionEngine(index), ledger=led)
    stage.resume(owns=owns, now=TS[60])
    for ch in chargers:
        stage.on_batch(batch(index, ch, 1, TS[60:], E[60:], P[60:]), [], TS[-1])
        tx = {"S": "s1", "R": "r1"}[ch]
        stage.on_batch(MeterBatch.empty(), [stop(ch, tx, TS[-1], E[-1])], TS[-1] + 1)
    assert stage.rejected == []
    stage.close(TS[-1] + 2)
    return led


@pytest.mark.parametrize("clean_stop", [True, False], ids=["sigterm", "crash"])
@pytest.mark.parametrize("order", ["old_owner_first", "new_owner_first"])
def test_a_charging_charger_moves_to_another_collector(
    ledger_url: str, order: str, clean_stop: bool
) -> None:
    db = ledger_url
    first_life(db, clean_stop=clean_stop)
    # The partition changes: S moves to "b", R stays with "a".
    runs = [("a", only("R"), ["R"]), ("b", only("S"), ["S"])]
    if order == "new_owner_first":
        runs.reverse()
    for name, owns, chargers in runs:
        second_life(db, name, owns, chargers).close()
    with Ledger(db) as led:
        rows = {r["charger_id"]: r for r in query_sessions(led)}
        assert led.db.execute("SELECT COUNT(*) FROM handover").fetchone()[0] == 0
        assert led.db.execute("SELECT COUNT(*) FROM session_journal").fetchone()[0] == 0
    assert set(rows) == {"S", "R"}
    for r in rows.values():  # each billed once, for the whole two hours
        assert r["energy_wh"] == pytest.approx(E[-1] - E[0])
        assert r["stop_reason"] == "transaction"
    with Ledger(db, collector_id="a") as a, Ledger(db, collector_id="b") as b:
        held_a = {s["charger"] for s in (a.load_state() or {}).get("sessions", [])}
        held_b = {s["charger"] for s in (b.load_state() or {}).get("sessions", [])}
    assert held_a <= {"R"} and held_b <= {"S"}


def test_a_running_collector_holding_my_chargers_is_a_conflict(ledger_url: str) -> None:
    db = ledger_url
    first_life(db, clean_stop=True)
    with Ledger(db, collector_id="a") as running:
        running.claim()  # "a" is up, still on its old partition (it holds S)
        index = ConnectorIndex()
        with Ledger(db, collector_id="b") as led:
            stage = SessionStage(SessionEngine(index), ledger=led)
            with pytest.raises(OwnershipConflictError, match=r"running collector 'a'.*\(S\)"):
                stage.resume(owns=only("S"), now=TS[60])
        # Nothing moved: "a" still holds both.
        state = running.load_state() or {}
        assert {s["charger"] for s in state["sessions"]} == {"S", "R"}


def test_one_collector_id_runs_once(ledger_url: str) -> None:
    db = ledger_url
    with Ledger(db, collector_id="a") as first, Ledger(db, collector_id="a") as second:
        first.claim()
        with pytest.raises(CollectorBusyError, match="'a' is already running"):
            second.claim(timeout_s=0.2)
    with Ledger(db, collector_id="a") as again:
        again.claim(timeout_s=0.2)  # released when the first closed


def test_split_and_merge_are_inverse() -> None:
    index = ConnectorIndex()
    engine = SessionEngine(index)
    stage = SessionStage(engine)
    events = [start("S", "s1", TS[0], E[0]), start("R", "r1", TS[0], E[0])]
    stage.on_batch(batch(index, "S", 1, TS[:30], E[:30], P[:30]), events, TS[29])
    snap = engine.snapshot()
    mine, rest = split_state(snap, only("S"))
    assert mine is not None and rest is not None
    assert {s["charger"] for s in mine["sessions"]} == {"S"}
    assert {s["charger"] for s in rest["sessions"]} == {"R"}
    joined = merge_states(mine, rest)
    assert sorted(s["sid"] for s in joined["sessions"]) == sorted(
        s["sid"] for s in snap["sessions"]
    )
    assert joined["open"] == sorted(snap["open"])
    assert split_state(snap, only("X")) == (None, snap | {"open": snap["open"]})


def test_a_running_collector_takes_a_session_that_is_only_in_the_journal(
    ledger_url: str,
) -> None:
    """Dynamic partitions (SessionStage.take_over): a crashed collector's charger whose
    session started after that collector's last checkpoint is only in its journal.
    The taker replays those rows at once; before, it moved them to its own journal
    without replaying them, its next checkpoint deleted them, and the session was
    never billed (issue 23)."""
    db = ledger_url
    index = ConnectorIndex()
    with Ledger(db, collector_id="a") as led:
        stage = SessionStage(SessionEngine(index), ledger=led, checkpoint_every_s=3600)
        stage.resume(owns=everything, now=TS[0])
        stage.close(TS[0])  # a checkpoint without S
        stage.on_batch(
            batch(index, "S", 1, TS[:60], E[:60], P[:60]), [start("S", "s1", TS[0], E[0])], TS[59]
        )
        assert [kind for kind, _ in led.journal()] == ["TransactionEvent"]
    # "a" crashed (its ledger lock is free); "b", running, takes S's partition over.
    index_b = ConnectorIndex()
    with Ledger(db, collector_id="b") as led:
        stage = SessionStage(SessionEngine(index_b), ledger=led)
        stage.resume(owns=lambda c: False, now=TS[60])
        assert stage.take_over(only("S"), TS[60]) == 1
        assert [s["charger_id"] for s in stage.engine.open_sessions()] == ["S"]
        stage.on_batch(batch(index_b, "S", 1, TS[60:], E[60:], P[60:]), [], TS[-1])
        stage.on_batch(MeterBatch.empty(), [stop("S", "s1", TS[-1], E[-1])], TS[-1] + 1)
        assert stage.rejected == []
        stage.close(TS[-1] + 2)
        assert led.journal() == []
        rows = query_sessions(led)
    assert [r["charger_id"] for r in rows] == ["S"]
    assert rows[0]["energy_wh"] == pytest.approx(E[-1] - E[0])


def test_journal_rows_of_a_dead_collector_reach_every_taker(ledger_url: str) -> None:
    """A dead collector's chargers go to two takers, one after the other. The first
    empties its (session-less) checkpoint and deletes that row; the second must
    still find the journal rows of its own chargers (issue 23: they were orphaned,
    and the session of R was never billed)."""
    db = ledger_url
    index = ConnectorIndex()
    with Ledger(db, collector_id="dead") as led:
        stage = SessionStage(SessionEngine(index), ledger=led, checkpoint_every_s=3600)
        stage.resume(owns=everything, now=TS[0])
        stage.close(TS[0])  # a checkpoint without S or R
        events = [start("S", "s1", TS[0], E[0]), start("R", "r1", TS[0], E[0])]
        stage.on_batch(MeterBatch.empty(), events, TS[1])
    rows = {}
    for name, charger, tx in (("a", "S", "s1"), ("b", "R", "r1")):
        idx = ConnectorIndex()
        with Ledger(db, collector_id=name) as led:
            stage = SessionStage(SessionEngine(idx), ledger=led)
            stage.resume(owns=lambda c: False, now=TS[60])
            assert stage.take_over(only(charger), TS[60]) == 1
            stage.on_batch(batch(idx, charger, 1, TS, E, P), [], TS[-1])
            stage.on_batch(MeterBatch.empty(), [stop(charger, tx, TS[-1], E[-1])], TS[-1] + 1)
            assert stage.rejected == []
            stage.close(TS[-1] + 2)
            rows |= {r["charger_id"]: r for r in query_sessions(led)}
    assert sorted(rows) == ["R", "S"]
    assert all(r["energy_wh"] == pytest.approx(E[-1] - E[0]) for r in rows.values())
