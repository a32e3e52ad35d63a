"""What the detectors learned, kept across restarts and moved with its chargers.

The liveness detectors learn each charger's heartbeat interval and each
connector's meter intervals: told by the CSMS (BootNotification answer,
ChangeConfiguration/SetVariables, GetConfiguration/GetVariables reports) or
observed (the median of the last gaps). A charger is told once, at its boot or
when an operator changes it; forgotten at a restart, every OCPP charger would
be judged by ``assumed_interval_s`` (900 s) again until it reboots or its
cadence is seen anew: an outage found after 1,830 s instead of 150 s at a 60 s
heartbeat, and a false ChargerOffline page at the first gap of a charger told
to heartbeat hourly.

:meth:`DetectorSet.snapshot <chargewatch.detectors.DetectorSet.snapshot>`
gives that state per charger id; it is kept in the ledger's ``engine_state``
row ``liveness`` (``liveness@<collector_id>``), written every
``SAVE_INTERVAL_S`` with the periodic state save and on stop, and read at
start. As with the fleet state
(storage/handover.py), the chargers this collector does not own are handed over
through the ``handover`` table (kind ``liveness``) and taken by their owner at
its start and then on every tick; with dynamic partitions
(collector/cluster.py) the state moves with its partition, and is taken from a
dead collector's row.
"""

from __future__ import annotations

__all__ = [
    "KIND",
    "SAVE_INTERVAL_S",
    "LivenessStore",
    "connector_states",
    "merge_liveness",
    "split_liveness",
]

import logging
import math
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from chargewatch.detectors import DetectorSet
from chargewatch.detectors.detector_set import SNAPSHOT_VERSION
from chargewatch.state.fleet_state import FleetState
from chargewatch.storage.ledger import Ledger

log = logging.getLogger(__name__)

KIND = "liveness"  # the engine_state row and the handover kind
# How often, in wall seconds, the row is rewritten whole. Not every state save
# (10 s): the snapshot costs ~20 ms per 1,000 chargers of the pipeline thread
# (bench/bench_liveness_state.py), and what changes in a minute is rarely
# more than a heartbeat gap; a crash loses at most this much learning.
SAVE_INTERVAL_S = 60.0


def split_liveness(
    snap: dict[str, Any], owns: Callable[[str], bool]
) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """Cut a ``DetectorSet.snapshot()`` by charger: (owned part, the rest), None when empty."""

    def part(keep: Callable[[str], bool]) -> dict[str, Any] | None:
        chargers = {c: e for c, e in snap.get("chargers", {}).items() if keep(c)}
        return {"version": snap.get("version"), "chargers": chargers} if chargers else None

    return part(owns), part(lambda c: not owns(c))


def merge_liveness(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    """``a`` with ``b``'s chargers; where both name one, ``b``'s: the ledger merges
    the parts it takes into the taker's own row, and a taken part is of the
    charger's last owner, which the taker's row can only be older than."""
    return {
        "version": a.get("version", b.get("version")),
        "chargers": {**a.get("chargers", {}), **b.get("chargers", {})},
    }


def connector_states(
    state: FleetState, open_sessions: Iterable[Mapping[str, Any]], owns: Callable[[str], bool]
) -> dict[tuple[str, int], tuple[str, bool]]:
    """Per (charger, connector) of ``owns``'s chargers: the status the fleet state
    holds ("" unknown) and whether a session is open on it, for
    ``DetectorSet.resume``: what a collector that starts, or takes chargers
    over, knows of their sessions before their next status message."""
    out: dict[tuple[str, int], tuple[str, bool]] = {}
    keys = state.index.keys
    for i in range(min(len(keys), state.status.shape[0])):
        charger, connector = keys[i]
        status = state.status[i]
        if status and owns(charger):
            out[(charger, connector)] = (str(status), False)
    for s in open_sessions:
        charger, connector = str(s["charger_id"]), int(s["connector_id"])
        if owns(charger):
            out[(charger, connector)] = (out.get((charger, connector), ("", False))[0], True)
    return out


class LivenessStore:
    """The detectors' learned state in the ledger, for the chargers ``owns`` says
    are this collector's. ``flush``: hands the detectors what a coalescing stage
    still holds, before a snapshot (a boot answer just before a stop counts)."""

    def __init__(
        self,
        ledger: Ledger,
        detectors: DetectorSet,
        owns: Callable[[str], bool],
        *,
        flush: Callable[[], None] | None = None,
    ) -> None:
        self.ledger = ledger
        self.detectors = detectors
        self.owns = owns
        self.flush = flush
        self._saved_at = -math.inf  # time.monotonic() of the last save
        self._saved_outages = -1  # DetectorSet.outage_changes at the last save

    def start(self, now: float) -> int:
        """Restore this collector's row (its chargers), hand the rest over, and take
        what was handed over for its chargers; how many chargers were restored."""
        saved = self.ledger.load_state(KIND)
        mine, rest = split_liveness(saved, self.owns) if saved else (None, None)
        if rest is not None:
            self.ledger.handover_put(KIND, rest, at=now)
        restored = self._restore([mine] if mine is not None else [])
        restored += self.adopt()
        if rest is not None or restored:
            self.save(now)  # the row no longer names the chargers handed over
        return restored

    def adopt(self) -> int:
        """Take handed-over parts of chargers this collector owns; how many chargers."""
        parts = self.ledger.handover_take(KIND, lambda s: split_liveness(s, self.owns))
        return self._restore(parts)

    def restore(self, part: dict[str, Any]) -> int:
        """Apply a part taken over (collector/cluster.py); how many chargers."""
        return self._restore([part])

    def _restore(self, parts: Iterable[dict[str, Any]]) -> int:
        n = 0
        for part in parts:
            try:
                self.detectors.restore(part)
            except (KeyError, TypeError, ValueError, AttributeError, IndexError) as exc:
                # Unreadable: the intervals are learned again, as before they were kept.
                log.error("ignoring unreadable liveness state: %s", exc)
                continue
            n += len(part.get("chargers", {}))
        return n

    def _snapshot(self) -> dict[str, Any]:
        if self.flush is not None:
            self.flush()
        return self.detectors.snapshot()

    def save_due(self, now: float) -> None:
        """:meth:`save`, when ``SAVE_INTERVAL_S`` has passed since the last, or a
        charger went offline or came back since: an outage must outlive a
        crash as its alert does (written at the transition), or the restarted
        collector would resolve the alert and page it again."""
        changed = self.detectors.outage_changes != self._saved_outages
        if changed or time.monotonic() - self._saved_at >= SAVE_INTERVAL_S:
            self.save(now)

    def save(self, now: float) -> None:
        """This collector's row: the owned chargers' part (a charger handed over
        must not stay in it: its new owner would find it held by a running
        collector)."""
        mine, _ = split_liveness(self._snapshot(), self.owns)
        empty = {"version": SNAPSHOT_VERSION, "chargers": {}}
        self.ledger.save_state(mine or empty, name=KIND, at=now)
        self._saved_at = time.monotonic()
        self._saved_outages = self.detectors.outage_changes

    def hand_over(self, leaving: Callable[[str], bool], now: float) -> int:
        """Leave the state of the ``leaving`` chargers for their next owner, and
        stop watching them here; how many chargers' state was left.

        Their times are forgotten (``DetectorSet.forget``): kept, the last
        message heard here would start a silence that lasts as long as another
        collector hears them, a ChargerOffline page here for a charger that was
        never silent, and again when their partition comes back."""
        part, _ = split_liveness(self._snapshot(), leaving)
        if part is not None:
            self.ledger.handover_put(KIND, part, at=now)
        self.detectors.forget(leaving, now)
        return 0 if part is None else len(part["chargers"])
