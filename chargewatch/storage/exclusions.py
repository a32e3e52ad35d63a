"""Uptime exclusions in the ledger: tag, change, remove, each with who and why.

An exclusion says that a port's (or a charger's) down time in [start, end) had
a cause 23 CFR 680.116(b)(3) lists. The outage itself is computed from the
alerts and never stored, so nothing here can delete one; a removed tag stays
in the table (``removed``) and every action is in ``uptime_exclusion_audit``.
"""

from __future__ import annotations

__all__ = ["active_exclusions", "change_exclusion", "list_exclusions", "tag_exclusion"]

import json
from typing import Any

from chargewatch.analytics.uptime import Exclusion
from chargewatch.storage.ledger import Ledger

_FIELDS = ("id", "charger", "connector", "start", "end", "cause", "tagged_by", "reason", "removed")
# ``end`` is a reserved word on PostgreSQL; quoted, both engines read it.
_COLUMNS = ", ".join(f'"{f}"' for f in _FIELDS)


def _row(ledger: Ledger, ident: int) -> dict[str, Any] | None:
    r = ledger.db.execute(
        f"SELECT {_COLUMNS} FROM uptime_exclusions WHERE id = ?", (ident,)
    ).fetchone()
    return None if r is None else dict(zip(_FIELDS, r, strict=True))


def _check(row: dict[str, Any]) -> None:
    """ValueError unless the row is a valid Exclusion (a listed cause, start < end)."""
    Exclusion(row["charger"], row["connector"], row["start"], row["end"], row["cause"])
    if not row["end"] > row["start"]:
        raise ValueError("end must be after start")
    if not row["charger"]:
        raise ValueError("charger is required")


def _audit(ledger: Ledger, row: dict[str, Any], action: str, at: float, by: str, why: str) -> None:
    ledger.db.execute(
        "INSERT INTO uptime_exclusion_audit (exclusion_id, action, at, by, reason, record)"
        " VALUES (?, ?, ?, ?, ?, ?)",
        (row["id"], action, at, by, why, json.dumps(row, sort_keys=True)),
    )


def tag_exclusion(
    ledger: Ledger,
    *,
    charger: str,
    connector: str,
    start: float,
    end: float,
    cause: str,
    by: str,
    reason: str,
    at: float,
) -> dict[str, Any]:
    row = {"charger": charger, "connector": connector, "start": start, "end": end}
    row |= {"cause": cause, "tagged_by": by, "reason": reason, "removed": 0}
    _check(row)
    with ledger.transaction():
        cur = ledger.db.execute(
            "INSERT INTO uptime_exclusions"
            ' (charger, connector, start, "end", cause, tagged_by, reason)'
            " VALUES (?,?,?,?,?,?,?) RETURNING id",
            (charger, connector, start, end, cause, by, reason),
        )
        row = {"id": int(cur.fetchone()[0]), **row}
        _audit(ledger, row, "tag", at, by, reason)
    return row


def change_exclusion(
    ledger: Ledger, ident: int, changes: dict[str, Any], *, by: str, reason: str, at: float
) -> dict[str, Any] | None:
    """Change fields (connector, start, end, cause) or, ``changes={"removed": 1}``, remove.

    None when there is no such exclusion.
    """
    with ledger.transaction():
        row = _row(ledger, ident)
        if row is None:
            return None
        row |= changes
        _check(row)
        ledger.db.execute(
            'UPDATE uptime_exclusions SET connector=?, start=?, "end"=?, cause=?, removed=?'
            " WHERE id=?",
            (row["connector"], row["start"], row["end"], row["cause"], row["removed"], ident),
        )
        _audit(ledger, row, "remove" if changes.get("removed") else "change", at, by, reason)
    return row


def list_exclusions(ledger: Ledger) -> list[dict[str, Any]]:
    """Every exclusion, removed ones too, each with its audit trail.

    A ledger opened read-only before migration 7 has no table: no exclusions.
    """
    if not ledger.has_table("uptime_exclusions"):
        return []
    rows = [
        dict(zip(_FIELDS, r, strict=True))
        for r in ledger.db.execute(f"SELECT {_COLUMNS} FROM uptime_exclusions ORDER BY id")
    ]
    trail: dict[int, list[dict[str, Any]]] = {}
    for ident, action, at, who, why in ledger.db.execute(
        "SELECT exclusion_id, action, at, by, reason FROM uptime_exclusion_audit ORDER BY seq"
    ):
        trail.setdefault(ident, []).append({"action": action, "at": at, "by": who, "reason": why})
    return [{**r, "audit": trail.get(r["id"], [])} for r in rows]


def active_exclusions(ledger: Ledger) -> list[Exclusion]:
    return [
        Exclusion(
            *(
                r[k]
                for k in ("charger", "connector", "start", "end", "cause", "tagged_by", "reason")
            )
        )
        for r in list_exclusions(ledger)
        if not r["removed"]
    ]
