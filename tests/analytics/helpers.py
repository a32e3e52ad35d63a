"""Small hand-built sessions for the analytics tests."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from chargewatch.analytics.session_frame import SessionFrame

H = 3600.0


def ts(text: str) -> float:
    """'2024-01-01 00:00' (UTC) → epoch seconds."""
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


def session(
    sid: str,
    start: float,
    stop: float,
    *,
    charger: str = "C1",
    connector: int = 1,
    site: str = "S1",
    charge: tuple[float, float] | None = None,
    energy_wh: float = 10_000.0,
    max_power_w: float | None = None,
) -> dict[str, Any]:
    """A session dict; ``charge`` = (start, end) of its one charging period (idle around it)."""
    periods = []
    if charge is not None:
        a, b = charge
        if a > start:
            periods.append({"kind": "idle", "start": start, "end": a, "energy_wh": 0.0})
        periods.append(
            {
                "kind": "charging",
                "start": a,
                "end": b,
                "energy_wh": energy_wh,
                "max_power_w": max_power_w,
            }
        )
        if stop > b:
            periods.append({"kind": "idle", "start": b, "end": stop, "energy_wh": 0.0})
    else:
        periods.append({"kind": "idle", "start": start, "end": stop, "energy_wh": 0.0})
    return {
        "session_id": sid,
        "charger_id": charger,
        "connector_id": connector,
        "site": site,
        "start": start,
        "stop": stop,
        "energy_wh": energy_wh if charge is not None else 0.0,
        "stop_reason": "transaction",
        "periods": periods,
    }


def frame(*sessions: dict[str, Any]) -> SessionFrame:
    return SessionFrame.from_records(sessions)
