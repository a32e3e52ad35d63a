"""A moved charger's status goes with it: FleetStateHandover through a shared ledger."""

from __future__ import annotations

from chargewatch.model.batch import MeterBatch
from chargewatch.model.events import OnlineEvent, StatusEvent
from chargewatch.model.fleet import ConnectorIndex
from chargewatch.state.fleet_state import FleetState
from chargewatch.storage.handover import FleetStateHandover, split_fleet_state
from chargewatch.storage.ledger import Ledger

T = 1_700_000_000.0


def fleet_with(*events: StatusEvent | OnlineEvent) -> FleetState:
    state = FleetState(ConnectorIndex())
    state.on_batch(MeterBatch.empty(), list(events), T)
    return state


def status_of(state: FleetState, charger: str) -> tuple[str, str] | None:
    for row in state.snapshot()["connectors"]:
        if row[0] == charger:
            return str(row[2]), str(row[3])
    return None


def test_a_faulted_charger_keeps_its_fault_at_its_new_owner(ledger_url: str) -> None:
    db = ledger_url
    old = fleet_with(
        StatusEvent("X", 1, T, T + 1, "Faulted", "GroundFailure"),
        StatusEvent("Y", 1, T, T + 1, "Available"),
        OnlineEvent("X", True, T + 1),
    )
    new = FleetState(ConnectorIndex())
    with Ledger(db, collector_id="a") as la, Ledger(db, collector_id="b") as lb:
        # "a" now owns Y only; "b" owns X.
        assert FleetStateHandover(la, old, lambda c: c == "Y").release(T + 10) == 1
        assert status_of(old, "X") == ("", "NoError")  # forgotten: no alert fires for ever
        assert "X" not in old.online and status_of(old, "Y") == ("Available", "NoError")
        b = FleetStateHandover(lb, new, lambda c: c == "X")
        assert b.adopt() == 1
        assert status_of(new, "X") == ("Faulted", "GroundFailure")
        assert new.online == {"X": True}
        assert b.adopt() == 0  # taken once
        assert lb.db.execute("SELECT COUNT(*) FROM handover").fetchone()[0] == 0


def test_state_the_new_owner_heard_itself_wins(ledger_url: str) -> None:
    db = ledger_url
    old = fleet_with(StatusEvent("X", 1, T, T + 1, "Faulted", "GroundFailure"))
    # The new owner started first and has heard X recover since.
    new = fleet_with(StatusEvent("X", 1, T + 50, T + 51, "Available"))
    with Ledger(db, collector_id="a") as la, Ledger(db, collector_id="b") as lb:
        FleetStateHandover(la, old, lambda c: False).release(T + 60)
        assert FleetStateHandover(lb, new, lambda c: True).adopt() == 0
    assert status_of(new, "X") == ("Available", "NoError")


def test_split_fleet_state() -> None:
    snap = fleet_with(
        StatusEvent("X", 1, T, T + 1, "Charging"), StatusEvent("Y", 2, T, T + 1, "Available")
    ).snapshot()
    mine, rest = split_fleet_state(snap, lambda c: c == "X")
    assert mine is not None and rest is not None
    assert [r[0] for r in mine["connectors"]] == ["X"]
    assert [r[0] for r in rest["connectors"]] == ["Y"]
    assert split_fleet_state(snap, lambda c: True)[1] is None
