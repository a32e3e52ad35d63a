"""A driver's monthly statement: every session of one id_tag in one month.

Pure: handed the sessions (each with its current CDR, or None) that may fall in
the month; a session belongs to the month its start falls in at its own site's
time zone (a midnight session in Berlin is January's there, not December's in
UTC). Totals are per currency, Decimal.
"""

from __future__ import annotations

__all__ = ["build_statement", "month_bounds"]

from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from chargewatch.billing.receipt import Place, local_time, money

_SLACK_S = 15 * 3600  # the widest offset from UTC of any time zone, and then some


def month_bounds(month: str) -> tuple[float, float]:
    """``YYYY-MM`` -> epoch seconds [lo, hi) wide enough for any time zone; ValueError."""
    start = datetime.strptime(month, "%Y-%m").replace(tzinfo=UTC)
    end = start.replace(year=start.year + 1, month=1) if start.month == 12 else (
        start.replace(month=start.month + 1)
    )  # fmt: skip
    return start.timestamp() - _SLACK_S, end.timestamp() + _SLACK_S


def build_statement(
    id_tag: str,
    month: str,
    sessions: Iterable[tuple[Mapping[str, Any], Mapping[str, Any] | None]],
    place_of: Callable[[Mapping[str, Any]], Place],
    operator: Mapping[str, str],
) -> dict[str, Any]:
    """The statement document (JSON-ready; amounts as Decimal)."""
    rows = []
    totals: dict[str, dict[str, Decimal]] = {}
    for session, cdr in sessions:
        place = place_of(session)
        start = local_time(session.get("start"), place.timezone)
        if start is None or start["iso"][:7] != month:
            continue
        cost = (cdr or {}).get("total_cost") or {}
        currency = str((cdr or {}).get("currency", ""))
        energy = money(session.get("energy_wh")) / 1000
        excl = money(cost.get("excl_vat"))
        incl = money(cost.get("incl_vat", cost.get("excl_vat")))
        row: dict[str, Any] = {
            "session_id": str(session.get("session_id", "")),
            "start": start,
            "site": place.site_name or place.site_id,
            "charger": str(session.get("charger_id", "")),
            "connector": session.get("connector_id"),
            "energy_kwh": energy,
            "currency": currency,
            "excl_vat": excl if cdr else None,
            "incl_vat": incl if cdr else None,
            "signature_status": str(session.get("signature_status") or "unsigned"),
        }
        rows.append(row)
        if cdr:
            t = totals.setdefault(
                currency, {"sessions": Decimal(0), "energy_kwh": Decimal(0),
                           "excl_vat": Decimal(0), "incl_vat": Decimal(0)}
            )  # fmt: skip
            t["sessions"] += 1
            t["energy_kwh"] += energy
            t["excl_vat"] += excl
            t["incl_vat"] += incl
    rows.sort(key=lambda r: (r["start"]["iso"], r["session_id"]))
    return {
        "id_tag": id_tag,
        "month": month,
        "operator": {k: operator.get(k, "") for k in ("name", "address", "vat_id", "logo")},
        "sessions": rows,
        "unpriced": sum(1 for r in rows if r["incl_vat"] is None),
        "totals": [_total(c, t) for c, t in sorted(totals.items())],
    }


def _total(currency: str, t: dict[str, Decimal]) -> dict[str, Any]:
    return {
        "currency": currency,
        "sessions": int(t["sessions"]),
        "energy_kwh": t["energy_kwh"],
        "excl_vat": t["excl_vat"],
        "vat": t["incl_vat"] - t["excl_vat"],
        "incl_vat": t["incl_vat"],
    }
