"""Receipts and monthly statements read from the ledger (docs/receipts.md).

The session (with its signed readings) and its current CDR come from the
ledger; where it was from the fleet inventory; the documents are built by
:mod:`chargewatch.billing.receipt` and :mod:`chargewatch.billing.statement`.
"""

from __future__ import annotations

__all__ = ["load_receipt", "load_statement", "place_of"]

import json
from collections.abc import Mapping
from typing import Any

from chargewatch.billing.receipt import Place, build_receipt
from chargewatch.billing.safe_bundle import safe_bundle_xml
from chargewatch.billing.statement import build_statement, month_bounds
from chargewatch.model.fleet import Fleet
from chargewatch.storage.ledger import Ledger, get_session


def place_of(fleet: Fleet | None, session: Mapping[str, Any]) -> Place:
    """The session's site as the inventory knows it (its id alone when not listed)."""
    site_id = str(session.get("site") or "")
    if fleet is not None:
        charger = fleet.chargers.get(str(session.get("charger_id", "")))
        site = fleet.sites.get(site_id) or (fleet.sites.get(charger.site) if charger else None)
        if site is not None:
            return Place(site.id, site.name, site.address, site.timezone)
    return Place(site_id=site_id)


def load_receipt(
    ledger: Ledger, session_id: str, fleet: Fleet | None, operator: Mapping[str, str]
) -> tuple[dict[str, Any], str] | None:
    """The receipt document and the verification bundle XML; None: no such session."""
    session = get_session(ledger, session_id)
    if session is None:
        return None
    cdr = ledger.issued_cdr(session_id)
    doc = build_receipt(session, cdr, place_of(fleet, session), operator)
    return doc, safe_bundle_xml(session)


def load_statement(
    ledger: Ledger, id_tag: str, month: str, fleet: Fleet | None, operator: Mapping[str, str]
) -> dict[str, Any]:
    """The statement of ``id_tag`` for ``YYYY-MM``; ValueError on a malformed month."""
    lo, hi = month_bounds(month)
    with ledger.lock:
        rows = ledger.db.execute(
            "SELECT s.record, c.cdr FROM sessions s LEFT JOIN cdrs c USING (session_id)"
            " WHERE s.id_tag=? AND s.start>=? AND s.start<? ORDER BY s.start, s.session_id",
            (id_tag, lo, hi),
        ).fetchall()
    pairs = [(json.loads(r[0]), None if r[1] is None else json.loads(r[1])) for r in rows]
    for session, _ in pairs:
        session.setdefault("signature_status", "unsigned")
    return build_statement(id_tag, month, pairs, lambda s: place_of(fleet, s), operator)
