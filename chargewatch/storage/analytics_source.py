"""Read the ledger into the analytics package's inputs (the I/O half of analytics).

Columns are read straight from the ``sessions`` and ``periods`` tables (not
from the JSON records), so a year of a large fleet loads as arrays quickly.
"""

from __future__ import annotations

__all__ = ["has_alert_history", "load_cdr", "load_cdrs", "load_frame", "load_transitions"]

import json
from typing import Any

from chargewatch.analytics.session_frame import SessionFrame, Window
from chargewatch.storage.ledger import Ledger


def _where(
    window: Window | None, site: str | None, charger: str | None, prefix: str = ""
) -> tuple[str, list[Any]]:
    where: list[str] = []
    args: list[Any] = []
    if window is not None:
        # Overlap, not start: utilisation needs sessions that began before the window.
        where.append(f"{prefix}start < ? AND {prefix}stop > ?")
        args += [window.hi, window.lo]
    if site:
        where.append(f"{prefix}site = ?")
        args.append(site)
    if charger:
        where.append(f"{prefix}charger_id = ?")
        args.append(charger)
    return (" WHERE " + " AND ".join(where)) if where else "", args


def load_frame(
    ledger: Ledger,
    window: Window | None = None,
    *,
    site: str | None = None,
    charger: str | None = None,
) -> SessionFrame:
    """Sessions overlapping ``window`` (all if None) with their periods."""
    where, args = _where(window, site, charger)
    rows = ledger.db.execute(
        "SELECT session_id, charger_id, connector_id, site, start, stop, energy_wh, stop_reason"
        f" FROM sessions{where} ORDER BY start, session_id",
        args,
    ).fetchall()
    s: dict[str, list[Any]] = {
        k: [r[i] for r in rows]
        for i, k in enumerate(
            (
                "session_id",
                "charger",
                "connector",
                "site",
                "start",
                "stop",
                "energy_wh",
                "stop_reason",
            )
        )
    }
    index = {sid: i for i, sid in enumerate(s["session_id"])}
    pwhere, pargs = _where(window, site, charger, prefix="s.")
    prow = ledger.db.execute(
        "SELECT p.session_id, p.kind, p.start, p.end, p.energy_wh, p.max_power_w"
        f" FROM periods p JOIN sessions s USING (session_id){pwhere} ORDER BY p.session_id, p.seq",
        pargs,
    ).fetchall()
    p: dict[str, list[Any]] = {
        "p_session": [index[r[0]] for r in prow],
        "p_charging": [r[1] == "charging" for r in prow],
        "p_start": [r[2] for r in prow],
        "p_end": [r[3] for r in prow],
        "p_energy_wh": [r[4] for r in prow],
        "p_max_power_w": [float("nan") if r[5] is None else r[5] for r in prow],
    }
    return SessionFrame.from_columns(s, p)


def load_cdrs(
    ledger: Ledger,
    window: Window | None = None,
    *,
    site: str | None = None,
    charger: str | None = None,
) -> list[dict[str, Any]]:
    where: list[str] = []
    args: list[Any] = []
    if window is not None:
        where.append("start >= ? AND start < ?")
        args += [window.lo, window.hi]
    if site:
        where.append("site = ?")
        args.append(site)
    if charger:
        where.append("charger_id = ?")
        args.append(charger)
    sql = (
        "SELECT session_id, tariff_id, currency, total_cost_excl_vat, total_cost_incl_vat,"
        " total_energy_kwh FROM cdrs"
    )
    if where:
        sql += " WHERE " + " AND ".join(where)
    return [dict(r) for r in ledger.db.execute(sql, args)]


def load_cdr(ledger: Ledger, session_id: str) -> dict[str, Any] | None:
    row = ledger.db.execute("SELECT cdr FROM cdrs WHERE session_id=?", (session_id,)).fetchone()
    return None if row is None else dict(json.loads(row[0]))


def has_alert_history(ledger: Ledger) -> bool:
    """Whether alerts were ever recorded: an empty history then means "no faults"."""
    return ledger.db.execute("SELECT 1 FROM alert_transitions LIMIT 1").fetchone() is not None


def load_transitions(
    ledger: Ledger,
    *,
    until: float | None = None,
    site: str | None = None,
    charger: str | None = None,
) -> list[dict[str, Any]]:
    """Transitions before ``until``, also before the window: an alert may have fired earlier."""
    where: list[str] = []
    args: list[Any] = []
    if until is not None:
        where.append("at < ?")
        args.append(until)
    if site:
        where.append("site = ?")
        args.append(site)
    if charger:
        where.append("charger = ?")
        args.append(charger)
    sql = "SELECT at, state, alertname, labels FROM alert_transitions"
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += " ORDER BY at"
    return [
        {"at": r[0], "state": r[1], "alertname": r[2], "labels": json.loads(r[3])}
        for r in ledger.db.execute(sql, args)
    ]
