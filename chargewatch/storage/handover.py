"""The fleet state of chargers that moved to another collector (docs/scaling.md).

The alert rules read each connector's last status, error code and online
flag from :class:`~chargewatch.state.fleet_state.FleetState`, which a collector keeps
in its own data directory (collector/fleet_store.py). A charger sends its
status once, on change, so
when a partition change moves a charger, that state must move with it: the old
owner would otherwise keep the charger's faults firing for ever (no more
input), and the new owner would never learn of a fault that is still there.

At start a collector hands the rows of chargers it no longer owns over
through the ledger's ``handover`` table (kind ``fleet_state``) and forgets
them; it takes over rows of chargers it owns at start and then every few
seconds (the old owner may start later). A row never overwrites fresher
state the new owner has heard itself.

Sessions move the same way, in :mod:`chargewatch.collector.session_stage`.
"""

from __future__ import annotations

__all__ = ["FleetStateHandover", "split_fleet_state"]

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from chargewatch.state.fleet_state import FleetState
from chargewatch.storage.ledger import Ledger

KIND = "fleet_state"


def split_fleet_state(
    snap: dict[str, Any], owns: Callable[[str], bool]
) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """Cut a ``FleetState.snapshot()`` by charger: (owned part, the rest), None when empty."""

    def part(keep: Callable[[str], bool]) -> dict[str, Any] | None:
        rows = [r for r in snap.get("connectors", []) if keep(str(r[0]))]
        online = {c: v for c, v in snap.get("online", {}).items() if keep(c)}
        seen = {c: v for c, v in snap.get("charger_seen", {}).items() if keep(c)}
        if not (rows or online or seen):
            return None
        return {"version": snap.get("version", 1), "connectors": rows, "online": online,
                "charger_seen": seen}  # fmt: skip

    return part(owns), part(lambda c: not owns(c))


class FleetStateHandover:
    def __init__(self, ledger: Ledger, state: FleetState, owns: Callable[[str], bool]) -> None:
        self.ledger = ledger
        self.state = state
        self.owns = owns

    def release(self, now: float) -> int:
        """Hand over and forget the chargers this collector does not own; how many."""
        _, rest = split_fleet_state(self.state.snapshot(), self.owns)
        if rest is None:
            return 0
        self.ledger.handover_put(KIND, rest, at=now)
        gone = {str(r[0]) for r in rest["connectors"]} | set(rest["online"])
        gone |= set(rest["charger_seen"])
        st = self.state
        for i, (charger, _connector) in enumerate(st.index.keys):
            if charger in gone:
                st.status[i], st.error_code[i], st.mrec[i] = "", "NoError", ""
                st.status_since[i] = st.last_seen[i] = st.value_ts[i] = np.nan
                st.values[i] = np.nan
        for c in gone:
            st.online.pop(c, None)
            st.charger_seen.pop(c, None)
            st.charger_status.pop(c, None)
        st.changes += 1
        return len(gone)

    def adopt(self) -> int:
        """Take over handed-over rows of chargers this collector owns; how many rows."""
        parts = self.ledger.handover_take(KIND, lambda s: split_fleet_state(s, self.owns))
        if not parts:
            return 0
        st = self.state
        ours = st.snapshot()
        last_seen = {(str(r[0]), int(r[1])): r[5] for r in ours["connectors"]}
        applied = 0
        for part in parts:
            fresher = [
                row
                for row in part["connectors"]
                if _newer(row[5], last_seen.get((str(row[0]), int(row[1]))))
            ]
            seen = {
                c: v for c, v in part["charger_seen"].items() if _newer(v, st.charger_seen.get(c))
            }
            online = {c: v for c, v in part["online"].items() if c in seen or c not in st.online}
            st.restore(
                {"version": 1, "connectors": fresher, "online": online, "charger_seen": seen}
            )
            applied += len(fresher)
        st.changes += 1
        return applied


def _newer(theirs: float | None, ours: float | None) -> bool:
    """Whether a handed-over time beats ours (None and NaN: never heard)."""
    if ours is None or math.isnan(ours):
        return True
    return theirs is not None and not math.isnan(theirs) and theirs > ours
