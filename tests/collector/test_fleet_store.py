"""The fleet state on disk: per-batch journal of changes, snapshots, and restore."""

from __future__ import annotations

from pathlib import Path

import orjson

from chargewatch.model.events import OnlineEvent, StatusEvent
from chargewatch.model.fleet import ConnectorIndex
from chargewatch.state.fleet_state import FleetState
from chargewatch.storage.fleet_store import FleetStateStore
from tests.collector.test_fleetstate import batch

T = 1_795_000_000.0


def status(
    charger: str, connector: int, value: str, ts: float, error: str = "NoError"
) -> StatusEvent:
    return StatusEvent(charger, connector, ts, ts + 0.1, value, error, "", "")


def fleet(n: int = 1000) -> tuple[ConnectorIndex, FleetState]:
    index = ConnectorIndex()
    for k in range(n):
        index.id(f"CP{k:04d}", 1)
    return index, FleetState(index)


def reopened(tmp_path: Path) -> FleetState:
    """A fresh collector's view of the same data directory."""
    _, state = fleet()
    FleetStateStore(tmp_path, state).restore()
    return state


def test_a_change_is_journaled_in_a_line_and_survives_a_crash(tmp_path: Path) -> None:
    index, state = fleet()
    store = FleetStateStore(tmp_path, state)
    store.restore()
    store.save()
    snapshot = store.snapshot_file.read_bytes()
    state.on_batch(batch([], [], [], []), [status("CP0007", 1, "Charging", T)], T)
    state.on_batch(batch([], [], [], []), [OnlineEvent("CP0009", False, T)], T)
    store.journal()
    store.journal()  # nothing new: no line
    # O(changes), not O(fleet): the snapshot is untouched and the journal is one short line.
    assert store.snapshot_file.read_bytes() == snapshot
    lines = store.journal_file.read_bytes().splitlines()
    assert len(lines) == 1 and len(lines[0]) < 200
    back = reopened(tmp_path)  # no save, no stop: as after a crash
    i = index.id("CP0007", 1)
    assert back.status[i] == "Charging" and back.status_since[i] == T
    assert back.online["CP0009"] is False


def test_a_snapshot_empties_the_journal_and_restore_layers_both(tmp_path: Path) -> None:
    index, state = fleet()
    store = FleetStateStore(tmp_path, state)
    state.on_batch(batch([0], [T], [7000.0], [1e5]), [status("CP0001", 1, "Charging", T)], T)
    store.journal()
    store.save()
    assert store.journal_file.read_bytes() == b""
    state.on_batch(
        batch([], [], [], []), [status("CP0001", 1, "Faulted", T + 5, "GroundFailure")], T + 5
    )
    store.journal()
    back = reopened(tmp_path)
    i = index.id("CP0001", 1)
    assert (back.status[i], back.error_code[i], back.status_since[i]) == (
        "Faulted",
        "GroundFailure",
        T + 5,
    )
    assert back.values[index.id("CP0000", 1), 1] == 7000.0  # from the snapshot


def test_lines_already_in_the_snapshot_are_not_replayed(tmp_path: Path) -> None:
    """A crash after writing a snapshot, before emptying the journal."""
    index, state = fleet()
    store = FleetStateStore(tmp_path, state)
    state.on_batch(batch([], [], [], []), [status("CP0002", 1, "Charging", T)], T)
    store.journal()
    old_journal = store.journal_file.read_bytes()
    # Changed again, and this time saved by a snapshot rather than journaled.
    state.on_batch(batch([], [], [], []), [status("CP0002", 1, "Available", T + 60)], T + 60)
    store.save()
    store.journal_file.write_bytes(old_journal)
    back = reopened(tmp_path)
    assert back.status[index.id("CP0002", 1)] == "Available"


def test_a_torn_last_line_ends_the_replay_and_keeps_what_came_before(tmp_path: Path) -> None:
    index, state = fleet()
    store = FleetStateStore(tmp_path, state)
    state.on_batch(batch([], [], [], []), [status("CP0003", 1, "Charging", T)], T)
    store.journal()
    store.close()
    with store.journal_file.open("ab") as f:
        f.write(b'{"seq": 2, "connectors": [["CP0003", 1, "Avail')
    back = reopened(tmp_path)
    assert back.status[index.id("CP0003", 1)] == "Charging"


def test_fleet_state_from_an_older_alert_state_file_is_read(tmp_path: Path) -> None:
    index, state = fleet()
    state.on_batch(batch([], [], [], []), [status("CP0004", 1, "SuspendedEV", T)], T)
    legacy = orjson.loads(orjson.dumps(state.snapshot()))
    _, fresh = fleet()
    FleetStateStore(tmp_path, fresh).restore(legacy)
    assert fresh.status[index.id("CP0004", 1)] == "SuspendedEV"
