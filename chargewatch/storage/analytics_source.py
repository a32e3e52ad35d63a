"""Read the ledger into the analytics package's inputs (the I/O half of analytics).

Columns are read straight from the ``sessions`` and ``periods`` tables (not
from the JSON records), so a year of a large fleet loads as arrays quickly.
"""

from __future__ import annotations

__all__ = ["has_alert_history", "load_cdr", "load_cdrs", "load_frame", "load_transitions"]

import json
from typing import Any

from chargewatch.analytics.session_frame import SESSION_COLUMNS, SessionFrame, Window
from chargewatch.storage.ledger import Ledger
from chargewatch.storage.sql_where import Where, session_where

#: The ``sessions`` column behind each SessionFrame column named differently.
_LEDGER_COLUMN = {"charger": "charger_id", "connector": "connector_id"}
_SESSION_SELECT = ", ".join(_LEDGER_COLUMN.get(c, c) for c in SESSION_COLUMNS)


def _scope(window: Window | None, site: str | None, charger: str | None, table: str = "") -> Where:
    where = Where(table)
    if window is not None:
        # Overlap, not start: utilisation needs sessions that began before the window.
        where.compare("start", "<", window.hi).compare("stop", ">", window.lo)
    return where.compare("site", "=", site or None).compare("charger_id", "=", charger or None)


def load_frame(
    ledger: Ledger,
    window: Window | None = None,
    *,
    site: str | None = None,
    charger: str | None = None,
) -> SessionFrame:
    """Sessions overlapping ``window`` (all if None) with their periods."""
    where = _scope(window, site, charger)
    rows = ledger.db.execute(
        f"SELECT {_SESSION_SELECT} FROM sessions{where.sql} ORDER BY start, session_id",
        where.args,
    ).fetchall()
    s: dict[str, list[Any]] = {k: [r[i] for r in rows] for i, k in enumerate(SESSION_COLUMNS)}
    index = {sid: i for i, sid in enumerate(s["session_id"])}
    pwhere = _scope(window, site, charger, table="s")
    prow = ledger.db.execute(
        "SELECT p.session_id, p.kind, p.start, p.end, p.energy_wh, p.max_power_w"
        f" FROM periods p JOIN sessions s USING (session_id){pwhere.sql}"
        " ORDER BY p.session_id, p.seq",
        pwhere.args,
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
    where = session_where(
        start_from=None if window is None else window.lo,
        start_to=None if window is None else window.hi,
        charger=charger or None,
        site=site or None,
    )
    sql = (
        "SELECT session_id, tariff_id, currency, total_cost_excl_vat, total_cost_incl_vat,"
        f" total_energy_kwh FROM cdrs{where.sql}"
    )
    return [dict(r) for r in ledger.db.execute(sql, where.args)]


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
    where = (
        Where()
        .compare("at", "<", until)
        .compare("site", "=", site or None)
        .compare("charger", "=", charger or None)
    )
    sql = f"SELECT at, state, alertname, labels FROM alert_transitions{where.sql} ORDER BY at"
    return [
        {"at": r[0], "state": r[1], "alertname": r[2], "labels": json.loads(r[3])}
        for r in ledger.db.execute(sql, where.args)
    ]
