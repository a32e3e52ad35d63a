"""Analytics results as flat rows, for CSV and for the report's tables (pure)."""

from __future__ import annotations

__all__ = ["WEEKDAYS", "rows"]

from collections.abc import Callable
from typing import Any

WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


def _utilisation(doc: Any) -> list[dict[str, Any]]:
    return [
        {
            "group": g["group"],
            "level": g["level"],
            "weekday": WEEKDAYS[h // 24],
            "hour": h % 24,
            "occupied_share": g["hour_of_week"]["occupied_share"][h],
            "charging_share": g["hour_of_week"]["charging_share"][h],
            "connectors": g["connectors"],
        }
        for g in doc
        for h in range(168)
    ]


def _daily(doc: Any) -> list[dict[str, Any]]:
    return [{"group": g["group"], "level": g["level"], **d} for g in doc for d in g["days"]]


def _distributions(doc: Any) -> list[dict[str, Any]]:
    return [
        {"group": g["group"], "quantity": q, **b}
        for g in doc
        for q in ("duration_h", "energy_kwh", "blocking_idle_h")
        for b in g[q]["histogram"]
    ]


def _reliability(doc: Any) -> list[dict[str, Any]]:
    chargers = {c["charger"]: c for c in doc["chargers"]}
    out = []
    for s in doc["sessions"]:
        c = chargers.get(s["group"], {})
        out.append(
            {
                **s,
                "availability": c.get("availability"),
                "down_hours": c.get("down_hours"),
                "outages": c.get("outages"),
                "mtbf_hours": c.get("mtbf_hours"),
                "mttr_hours": c.get("mttr_hours"),
                "faults": c.get("faults"),
            }
        )
    return out


def _revenue(doc: Any) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for g in doc:
        base = {
            "group": g["group"],
            "status": g["status"],
            "sessions": g["sessions"],
            "unpriced_sessions": g["unpriced_sessions"],
        }
        if not g["currencies"]:
            out.append(base)
        out.extend(
            {
                **base,
                "currency": c["currency"],
                "tariff_id": t["tariff_id"],
                "priced_sessions": t["sessions"],
                "revenue_excl_vat": t["revenue_excl_vat"],
                "revenue_incl_vat": t["revenue_incl_vat"],
                "energy_kwh": t["energy_kwh"],
                "avg_price_per_kwh_excl_vat": t["avg_price_per_kwh_excl_vat"],
            }
            for c in g["currencies"]
            for t in c["tariffs"]
        )
    return out


def _peers(doc: Any) -> list[dict[str, Any]]:
    return [
        {
            "charger": r["charger"],
            "site": r["site"],
            "peers": r["peers"],
            "sessions": r["sessions"],
            **r["figures"],
            **{f"z_{k}": v for k, v in r["z"].items()},
            "deviates": " ".join(r["deviates"]),
        }
        for r in doc
    ]


def _peak(doc: Any) -> list[dict[str, Any]]:
    return [dict(r) for r in doc]


_ROWS: dict[str, Callable[[Any], list[dict[str, Any]]]] = {
    "utilisation": _utilisation,
    "daily": _daily,
    "distributions": _distributions,
    "reliability": _reliability,
    "revenue": _revenue,
    "peers": _peers,
    "peak_power": _peak,
}


def rows(name: str, doc: Any) -> list[dict[str, Any]]:
    """The result of analytics ``name`` as flat rows (one CSV line each)."""
    return _ROWS[name](doc)
