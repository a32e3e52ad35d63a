"""Revenue and average price per kWh from the stored CDRs (pure).

A session without a CDR is *unpriced*: it is counted as such and never adds a
zero to revenue or drags the average price down (OCPI's "free" is a priced CDR
with total 0, which does count). Amounts are summed per currency; two
currencies are never added together.
"""

from __future__ import annotations

__all__ = ["revenue", "revenue_per_day"]

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from chargewatch.analytics.session_frame import Level, SessionFrame, Window, local_day
from chargewatch.analytics.usage import starting_in


def revenue(
    frame: SessionFrame,
    cdrs: Iterable[Mapping[str, Any]],
    window: Window,
    *,
    level: Level = "site",
) -> list[dict[str, Any]]:
    """Per group: priced and unpriced sessions, and per currency and tariff the totals.

    ``cdrs``: rows with ``session_id``, ``tariff_id``, ``currency``,
    ``total_cost_excl_vat``, ``total_cost_incl_vat`` (None when unknown) and
    ``total_energy_kwh``. Sessions are those starting in ``window``.
    """
    scoped = frame.select(starting_in(frame, window))
    groups = scoped.groups(level)
    by_session = {str(c["session_id"]): c for c in cdrs}
    group_of = dict(zip(scoped.session_id.tolist(), groups.index.tolist(), strict=True))
    acc: list[dict[tuple[str, str], dict[str, Any]]] = [{} for _ in groups.labels]
    priced = np.zeros(len(groups), dtype=np.int64)
    for sid, g in group_of.items():
        c = by_session.get(sid)
        if c is None:
            continue
        priced[g] += 1
        key = (str(c["currency"]), str(c["tariff_id"]))
        a = acc[g].setdefault(
            key, {"sessions": 0, "excl_vat": 0.0, "incl_vat": 0.0, "incl_known": True, "kwh": 0.0}
        )
        a["sessions"] += 1
        a["excl_vat"] += float(c["total_cost_excl_vat"])
        if c.get("total_cost_incl_vat") is None:
            a["incl_known"] = False
        else:
            a["incl_vat"] += float(c["total_cost_incl_vat"])
        a["kwh"] += float(c["total_energy_kwh"])
    total = groups.count()
    out = []
    for g, label in enumerate(groups.labels):
        by_currency: dict[str, dict[str, Any]] = {}
        for (cur, tariff), a in sorted(acc[g].items()):
            cur_d = by_currency.setdefault(
                cur,
                {"excl_vat": 0.0, "incl_vat": 0.0, "incl_known": True, "kwh": 0.0, "tariffs": []},
            )
            cur_d["excl_vat"] += a["excl_vat"]
            cur_d["incl_vat"] += a["incl_vat"]
            cur_d["incl_known"] &= a["incl_known"]
            cur_d["kwh"] += a["kwh"]
            cur_d["tariffs"].append(
                {
                    "tariff_id": tariff,
                    "sessions": a["sessions"],
                    "revenue_excl_vat": a["excl_vat"],
                    "revenue_incl_vat": a["incl_vat"] if a["incl_known"] else None,
                    "energy_kwh": a["kwh"],
                    "avg_price_per_kwh_excl_vat": a["excl_vat"] / a["kwh"]
                    if a["kwh"] > 0
                    else None,
                }
            )
        currencies = [
            {
                "currency": cur,
                "revenue_excl_vat": d["excl_vat"],
                "revenue_incl_vat": d["incl_vat"] if d["incl_known"] else None,
                "energy_kwh": d["kwh"],
                "avg_price_per_kwh_excl_vat": d["excl_vat"] / d["kwh"] if d["kwh"] > 0 else None,
                "tariffs": d["tariffs"],
            }
            for cur, d in by_currency.items()
        ]
        n_priced = int(priced[g])
        out.append(
            {
                "group": label,
                "level": level,
                "status": "unpriced" if n_priced == 0 else "priced",
                "sessions": int(total[g]),
                "priced_sessions": n_priced,
                "unpriced_sessions": int(total[g]) - n_priced,
                "currencies": currencies,
            }
        )
    return out


def revenue_per_day(
    frame: SessionFrame,
    cdrs: Iterable[Mapping[str, Any]],
    window: Window,
    *,
    zones: Mapping[str, str] | None = None,
) -> list[dict[str, Any]]:
    """Revenue and priced energy per local day of the session start, currency and tariff."""
    zones = zones or {}
    scoped = frame.select(starting_in(frame, window))
    day = np.zeros(len(scoped), dtype=np.int64)
    for site in np.unique(scoped.site).tolist():
        m = scoped.site == site
        day[m] = local_day(scoped.start[m], zones.get(site, zones.get("*", "UTC")))
    day_of = dict(zip(scoped.session_id.tolist(), day.tolist(), strict=True))
    acc: dict[tuple[int, str, str], list[float]] = {}
    for c in cdrs:
        d = day_of.get(str(c["session_id"]))
        if d is None:
            continue
        a = acc.setdefault((d, str(c["currency"]), str(c["tariff_id"])), [0.0, 0.0, 0.0])
        a[0] += float(c["total_cost_excl_vat"])
        a[1] += float(c["total_energy_kwh"])
        a[2] += 1
    return [
        {
            "date": str(np.datetime64(d, "D")),
            "currency": cur,
            "tariff_id": tariff,
            "revenue_excl_vat": v[0],
            "energy_kwh": v[1],
            "sessions": int(v[2]),
        }
        for (d, cur, tariff), v in sorted(acc.items())
    ]
