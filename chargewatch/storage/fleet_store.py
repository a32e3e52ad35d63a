"""The fleet state on disk: a snapshot now and then, a journal of changes between.

A charger sends its status once, when it changes, so a change must be on disk
before the broker forgets the message. Writing the whole fleet state for that
costs O(fleet) per batch (160 ms and 10 MB at 100,000 connectors); appending
the batch's changes costs O(changes). The snapshot is rewritten every few
seconds and on stop, and the journal lines it holds are then dropped.

Files in the data directory:

* ``fleet_state.json`` — ``{"journal_seq": k, "fleet_state": FleetState.snapshot()}``,
  replaced atomically;
* ``fleet_state.journal`` — JSON Lines ``{"seq", "connectors", "online"}``
  (FleetState.take_changes), appended per batch and emptied after a snapshot.

Restore replays the journal lines with ``seq`` above the snapshot's: a crash
between writing a snapshot and emptying the journal repeats nothing, and a line
torn by a crash mid-append ends the replay.
"""

from __future__ import annotations

__all__ = ["FleetStateStore"]

import logging
from pathlib import Path
from typing import Any, BinaryIO

import orjson

from chargewatch.core.gcpause import gc_paused
from chargewatch.state.fleet_state import FleetState
from chargewatch.storage.health import StorageHealth, append_all, guarded

log = logging.getLogger(__name__)


class FleetStateStore:
    def __init__(
        self, directory: Path, state: FleetState, *, health: StorageHealth | None = None
    ) -> None:
        self.snapshot_file = directory / "fleet_state.json"
        self.journal_file = directory / "fleet_state.journal"
        self.state = state
        self._seq = 0
        self.health = health  # a full disk: journal() and save() wait for space
        self._journal: BinaryIO | None = None

    def restore(self, legacy: dict[str, Any] | None = None) -> None:
        """Load the snapshot and replay the journal. ``legacy``: the fleet state
        an older collector kept inside alert_state.json, read first."""
        if legacy is not None:
            self.state.restore(legacy)
        snapshot_seq = 0
        try:
            doc = orjson.loads(self.snapshot_file.read_bytes())
            self.state.restore(doc["fleet_state"])
            snapshot_seq = int(doc["journal_seq"])
        except FileNotFoundError:
            pass
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            log.error("ignoring unreadable fleet state %s: %s", self.snapshot_file, exc)
        self._seq = snapshot_seq
        replayed = 0
        try:
            with self.journal_file.open("rb") as f:
                for lineno, line in enumerate(f, 1):
                    try:
                        rec = orjson.loads(line)
                        seq = int(rec["seq"])
                        if seq > snapshot_seq:
                            self.state.apply_changes(rec)
                            replayed += 1
                    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
                        # Only the last line can be torn (a crash mid-append).
                        log.warning("fleet state journal %s:%d: %s", self.journal_file, lineno, exc)
                        break
                    self._seq = max(self._seq, seq)
        except FileNotFoundError:
            pass
        if replayed:
            log.info("replayed %d fleet state changes from %s", replayed, self.journal_file)
        self.state.take_changes()  # restored, not new

    def journal(self) -> dict[str, Any]:
        """Append the changes since the last call (nothing when there are none);
        return them (FleetState.take_changes), for the ledger's status history."""
        changes = self.state.take_changes()
        if not changes["connectors"] and not changes["online"]:
            return changes
        self._seq += 1
        line = orjson.dumps({"seq": self._seq, **changes}) + b"\n"
        guarded(self.health, "fleet_state", lambda: self._append(line))
        return changes

    def _append(self, line: bytes) -> None:
        if self._journal is None:
            # Unbuffered, appended whole: a write the full disk refused is
            # truncated away and retried, never left torn before the next line.
            self._journal = self.journal_file.open("ab", buffering=0)
        append_all(self._journal, line)

    def save(self) -> None:
        """Write the whole state atomically, then empty the journal it now holds."""
        self.state.take_changes()  # in the snapshot
        # A list per connector, alive until encoded: see gc_paused (at 100k
        # connectors the snapshot took 514 ms with collections, 164 without).
        with gc_paused():
            doc = {"journal_seq": self._seq, "fleet_state": self.state.snapshot()}
            data = orjson.dumps(doc)
            del doc
        guarded(self.health, "fleet_state", lambda: self._replace(data))
        self.close()
        self.journal_file.write_bytes(b"")

    def _replace(self, data: bytes) -> None:
        tmp = self.snapshot_file.with_suffix(".tmp")
        try:
            tmp.write_bytes(data)
            tmp.replace(self.snapshot_file)
        except OSError:
            tmp.unlink(missing_ok=True)  # frees what the torn copy took
            raise

    def close(self) -> None:
        if self._journal is not None:
            self._journal.close()
            self._journal = None
