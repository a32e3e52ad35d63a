"""NEVI quarterly data (23 CFR 680.112(a)) as one long table (pure).

680.112(a) asks per port for: the station and port identifiers (1)-(2); each
session's start, end and, for an unsuccessful one, its error codes (3); energy
in kWh (4); peak session power in kW (5); the payment method (6); the port's
uptime, T_outage and T_excluded for each of the previous 3 months (7); and the
duration in minutes of each outage (8). Rows are of three kinds, told apart by
``record``: ``session``, ``month`` and ``outage``. The payment method is not
recorded by chargewatch and is left empty.
"""

from __future__ import annotations

__all__ = ["NEVI_COLUMNS", "nevi_quarterly"]

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from itertools import pairwise
from typing import Any
from zoneinfo import ZoneInfo

from chargewatch.analytics.uptime import (
    NEVI_T_MIN,
    Exclusion,
    Port,
    Signal,
    applies,
    by_charger,
    outages,
    port_uptime,
    year_before,
)

NEVI_COLUMNS = (
    "record",
    "station_id",
    "port_id",
    "session_start",
    "session_end",
    "energy_kwh",
    "peak_power_kw",
    "payment_method",
    "error_codes",
    "month",
    "uptime_pct",
    "t_outage_min",
    "t_excluded_min",
    "uptime_12m_pct",
    "outage_start",
    "outage_end",
    "outage_duration_min",
    "outage_cause",
)
#: Under this a session delivered nothing: it was unsuccessful (reliability.MIN_ENERGY_WH).
FAILED_BELOW_WH = 50.0


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat().replace("+00:00", "Z")


def nevi_quarterly(
    ports: Sequence[Port],
    signals: Sequence[Signal],
    exclusions: Sequence[Exclusion],
    sessions: Sequence[Mapping[str, Any]],
    months: Sequence[float],
    zone: str = "UTC",
) -> list[dict[str, Any]]:
    """Rows for the months [months[i], months[i+1]) (local month starts, as epoch s).

    ``sessions`` carry charger, connector, start, stop, energy_wh, peak_power_w.
    Station id is the site (else the charger); port id is ``charger/connector``.
    """
    lo, hi = months[0], months[-1]
    out: list[dict[str, Any]] = []
    by_sig, by_exc = by_charger(signals), by_charger(exclusions)
    for p in ports:
        ids = {"station_id": p.site or p.charger, "port_id": f"{p.charger}/{p.connector}"}
        # A port looks at its charger's signals and tags only (a fleet's year is many).
        sig, exc = by_sig.get(p.charger, []), by_exc.get(p.charger, [])
        mine = [
            s
            for s in sessions
            if applies(str(s["charger"]), str(s["connector"]), p) and lo <= s["start"] < hi
        ]
        out.extend(
            {"record": "session", **ids, **_session(s, p, sig)}
            for s in sorted(mine, key=lambda s: s["start"])
        )
        for a, b in pairwise(months):
            month = port_uptime(p, sig, exc, a, b)
            year = port_uptime(p, sig, exc, year_before(b, zone), b, t_min=NEVI_T_MIN)
            out.append(
                {
                    "record": "month",
                    **ids,
                    "month": datetime.fromtimestamp(a, ZoneInfo(zone)).strftime("%Y-%m"),
                    "uptime_pct": round(month["uptime_pct"], 4),
                    "t_outage_min": round(month["outage_min"], 2),
                    "t_excluded_min": round(month["excluded_min"], 2),
                    "uptime_12m_pct": round(year["uptime_pct"], 4),
                }
            )
        out.extend(
            {
                "record": "outage",
                **ids,
                "outage_start": _iso(o.start),
                "outage_end": _iso(o.end),
                "outage_duration_min": round((o.end - o.start) / 60.0, 2),
                "outage_cause": o.cause,
            }
            for o in outages(p, sig, exc, lo, hi)
        )
    return out


def _session(s: Mapping[str, Any], p: Port, signals: Sequence[Signal]) -> dict[str, Any]:
    energy = float(s.get("energy_wh") or 0.0)
    codes: set[str] = set()
    if energy < FAILED_BELOW_WH:
        stop = float(s.get("stop") or s["start"])
        codes = {
            g.error_code
            for g in signals
            if g.error_code
            and applies(g.charger, g.connector, p)
            and g.start <= stop
            and g.end >= float(s["start"])
        } or {"NoEnergyDelivered"}
    peak = s.get("peak_power_w")
    return {
        "session_start": _iso(float(s["start"])),
        "session_end": _iso(float(s["stop"])) if s.get("stop") is not None else "",
        "energy_kwh": round(energy / 1000.0, 3),
        "peak_power_kw": "" if peak is None else round(float(peak) / 1000.0, 3),
        "payment_method": "",
        "error_codes": ";".join(sorted(codes)),
    }
