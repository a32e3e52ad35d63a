"""``/api/v1/fleet``: every connector's latest values, status and liveness.

Built from one consistent moment of the fleet state: the caller holds the lock
the pipeline writes under, and every column and key is cut to the same length.
"""

from __future__ import annotations

__all__ = ["fleet_document"]

from typing import Any

from chargewatch.model.fleet import ConnectorIndex
from chargewatch.state.fleet_state import FleetState


def fleet_document(state: FleetState, index: ConnectorIndex, now: float) -> dict[str, Any]:
    frame = state.frame(now)
    # The decoder adds connectors to the index outside the state's lock: only
    # the connectors the frame was built for are shown.
    n = len(frame["status"])
    keys = index.keys[:n]
    rows = []
    for i, (charger, connector) in enumerate(keys):
        row: dict[str, Any] = {"charger": charger, "connector": connector, "site": index.site_of(i)}
        for key, col in frame.items():
            v = col[i]
            if isinstance(v, float) and v != v:  # noqa: PLR0124 - NaN: unknown, left out
                continue
            row[key] = v.item() if hasattr(v, "item") else v
        rows.append(row)
    return {"connectors": rows, "chargers_online": state.chargers_online(now)}
