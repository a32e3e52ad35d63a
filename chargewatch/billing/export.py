"""The billing export: one row per session, with what an invoice needs (pure).

Joins a session (the ``sessions.jsonl`` object the ledger keeps) with its
current CDR, or with the reason it has none, so that billing does not have to
join the sessions and CDR exports itself. ``chargewatch billing export`` and
``GET /api/v1/billing`` write these rows as CSV (spreadsheet-safe) or JSON.
"""

from __future__ import annotations

__all__ = ["BILLING_COLUMNS", "billing_csv", "billing_row"]

from collections.abc import Iterable, Mapping
from typing import Any

from chargewatch.core.spreadsheet import csv_text

_COST_TOTALS = ("total_cost", "total_fixed_cost", "total_energy_cost", "total_time_cost",
                "total_parking_cost", "total_reservation_cost")  # fmt: skip

#: Columns, in order. ``register_energy_wh``/``estimate_energy_wh`` are set only
#: where the meter's register and the best estimate differ (docs/sessions.md);
#: an ``incl_vat`` is empty where the tariff gives no VAT; ``unpriced_reason``
#: is set for a session that should have a CDR and has none; ``clock_offset_s``
#: where the charger's clock was off and its times were corrected.
BILLING_COLUMNS: tuple[str, ...] = (
    "session_id",
    "charger_id",
    "site",
    "connector_id",
    "id_tag",
    "start",
    "stop",
    "tariff_id",
    "currency",
    "energy_wh",
    "register_energy_wh",
    "estimate_energy_wh",
    "billed_energy_kwh",
    *(f"{t}_{v}" for t in _COST_TOTALS for v in ("excl_vat", "incl_vat")),
    "cdr_id",
    "unpriced_reason",
    "quality",
    "review_reason",
    "clock_offset_s",
)


def billing_row(
    session: Mapping[str, Any], cdr: Mapping[str, Any] | None, unpriced_reason: str = ""
) -> dict[str, Any]:
    """One session's billing row; ``cdr`` is its current CDR (None: not priced)."""
    cdr = cdr or {}
    tariffs = cdr.get("tariffs") or [{}]
    row: dict[str, Any] = {
        "session_id": session.get("session_id"),
        "charger_id": session.get("charger_id"),
        "site": session.get("site"),
        "connector_id": session.get("connector_id"),
        "id_tag": session.get("id_tag"),
        "start": session.get("start"),
        "stop": session.get("stop"),
        "tariff_id": tariffs[0].get("id"),
        "currency": cdr.get("currency"),
        "energy_wh": session.get("energy_wh"),
        "register_energy_wh": session.get("register_energy_wh"),
        "estimate_energy_wh": session.get("estimate_energy_wh"),
        "billed_energy_kwh": cdr.get("total_energy"),
    }
    for total in _COST_TOTALS:
        price = cdr.get(total) or {}
        # A CDR omits incl_vat where the tariff gives no VAT: the cell stays empty.
        row[f"{total}_excl_vat"] = price.get("excl_vat")
        row[f"{total}_incl_vat"] = price.get("incl_vat")
    row["cdr_id"] = cdr.get("id")
    row["unpriced_reason"] = unpriced_reason or None
    row["quality"] = list(session.get("quality") or ())
    row["review_reason"] = session.get("review_reason")
    # Set where the charger's clock was off: start and stop are on the receive
    # clock, moved by this (docs/sessions.md).
    row["clock_offset_s"] = session.get("clock_offset_s")
    return row


def billing_csv(rows: Iterable[Mapping[str, Any]]) -> str:
    """The rows as spreadsheet-safe CSV; quality flags joined with "|"."""
    return csv_text(BILLING_COLUMNS, ([_cell(c, r.get(c)) for c in BILLING_COLUMNS] for r in rows))


def _cell(column: str, value: Any) -> Any:
    if column == "quality":
        return "|".join(value or ())
    return "" if value is None else value
