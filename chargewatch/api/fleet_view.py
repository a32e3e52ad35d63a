"""``/api/v1/fleet`` (every connector's latest values, status and liveness) and
``/api/v1/ocpi/evses`` (each connector as an OCPI 2.2.1 EVSE with its status).

Built from one consistent moment of the fleet state: the caller holds the lock
the pipeline writes under, and every column and key is cut to the same length.
"""

from __future__ import annotations

__all__ = ["fleet_document", "ocpi_evses_document"]

from datetime import UTC, datetime
from typing import Any

import numpy as np
from numpy.typing import NDArray

from chargewatch.analytics.ocpi_status import ocpi_status
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


def ocpi_evses_document(
    state: FleetState, index: ConnectorIndex, now: float, offline: NDArray[Any] | None
) -> dict[str, Any]:
    """``/api/v1/ocpi/evses``: one OCPI 2.2.1 EVSE per connector (docs/analytics.md,
    "OCPI EVSE status"). ``offline``: per connector, the charger is offline (the
    liveness detector's ``charger_offline``); None when not known."""
    frame = state.frame(now)
    n = len(frame["status"])
    since = frame["status_age_s"]
    # A copy: the detectors write their columns from the pipeline thread.
    off_col = None if offline is None else np.array(offline[:n], dtype=np.bool_)
    rows = []
    for i, (charger, connector) in enumerate(index.keys[:n]):
        off = bool(off_col[i]) if off_col is not None and i < len(off_col) else False
        changed = now - float(since[i])
        rows.append(
            {
                "uid": f"{charger}*{connector}",
                "location_id": index.site_of(i),
                "status": ocpi_status(str(frame["status"][i]), offline=off),
                # OCPI: when the EVSE last changed; the status change, else now.
                "last_updated": _rfc3339(changed if changed == changed else now),  # noqa: PLR0124
                "charger": charger,
                "connector": connector,
                "ocpp_status": str(frame["status"][i]),
                "offline": off,
            }
        )
    return {"evses": rows, "generated_at": _rfc3339(now)}


def _rfc3339(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
