"""The uptime section of ``chargewatch report``: per site μ over the report's window
and NEVI's 12-month figure, the longest outages with their causes, and failures
counted by ChargeX MREC code (docs/analytics.md, Uptime).

Kept apart from reports/html.py, which calls :func:`uptime_section` with its page.
"""

from __future__ import annotations

__all__ = ["uptime_section", "uptime_summary"]

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, Protocol

from chargewatch.analytics.uptime import (
    NEVI_T_MIN,
    Port,
    by_charger,
    month_starts,
    nevi_monthly,
    outages,
    report,
    rollup,
    year_before,
)
from chargewatch.model.fleet import Fleet
from chargewatch.model.mrec import MREC_CODES, UNMAPPED
from chargewatch.storage.exclusions import active_exclusions
from chargewatch.storage.ledger import Ledger
from chargewatch.storage.uptime_source import load_uptime_inputs

#: NEVI's floor: each port's 12-month μ must be above this (23 CFR 680.116(b)).
NEVI_FLOOR_PCT = 97.0
#: Outages listed in the report, longest (not excluded) first.
TOP_OUTAGES = 10


class _Page(Protocol):
    def h2(self, text: str) -> None: ...
    def p(self, text: str, cls: str = "") -> None: ...
    def table(
        self, header: Sequence[str], rows: Sequence[Sequence[Any]], left: int = 1
    ) -> None: ...


def uptime_summary(
    ledger: Ledger, lo: float, hi: float, *, site: str | None = None, fleet: Fleet | None = None
) -> dict[str, Any]:
    """Per site μ over [lo, hi), NEVI's 12-month μ to the last month start in the window
    (else to ``hi``), the top outages and the failures by MREC code.

    ``fleet`` as for ``chargewatch uptime --fleet``: its ports, delivery policy and
    sites' operating hours (closed hours excluded as outside_operating_hours)."""
    nevi_end = _nevi_end(lo, hi)
    start = min(lo, year_before(nevi_end))
    inputs = load_uptime_inputs(ledger, start, hi, fleet=fleet)
    ports = [p for p in inputs.ports if site is None or p.site == site]
    # The operator's stored tags, then the fleet's closed hours (none without it).
    exclusions = active_exclusions(ledger) + inputs.exclusions
    sessions = [s for s in inputs.sessions if lo <= float(s["start"]) < hi]
    failed = [f for f in inputs.failed_starts if lo <= float(f["at"]) < hi]
    window = report(ports, inputs.signals, exclusions, sessions, failed, lo, hi)
    nevi = nevi_monthly(ports, inputs.signals, exclusions, [nevi_end])
    nevi_by_site = {r["site"]: r["uptime_pct"] for r in rollup(nevi, "site")}
    below: dict[str, int] = {}
    for r in nevi:
        below[r["site"]] = below.get(r["site"], 0) + (r["uptime_pct"] <= NEVI_FLOOR_PCT)
    sites = [
        {**s, "nevi_12m_pct": nevi_by_site.get(s["site"]), "ports_at_or_below_97": below[s["site"]]}
        for s in window["sites"]
    ]
    return {
        "window": {"from": lo, "to": hi},
        "nevi_end": nevi_end,
        "sites": sites,
        "top_outages": _top_outages(ports, inputs.signals, exclusions, lo, hi),
        "failures_by_mrec": window["failures_by_mrec"],
    }


def _nevi_end(lo: float, hi: float) -> float:
    """NEVI's figure is per month: the last (UTC) month start in (lo, hi], else ``hi``."""
    inside = [m for m in month_starts(lo, hi) if lo < m <= hi]
    return inside[-1] if inside else hi


def _top_outages(
    ports: Sequence[Port], signals: Sequence[Any], exclusions: Sequence[Any], lo: float, hi: float
) -> list[dict[str, Any]]:
    rows = []
    sig, exc = by_charger(signals), by_charger(exclusions)
    for p in ports:
        for o in outages(p, sig.get(p.charger, []), exc.get(p.charger, []), lo, hi):
            ev = o.evidence()
            rows.append(
                {
                    "port": f"{p.charger}/{p.connector}",
                    "site": p.site,
                    "start": o.start,
                    "end": o.end,
                    "down_min": (o.end - o.start - o.excluded_s) / 60.0,
                    "excluded_min": o.excluded_s / 60.0,
                    "cause": o.cause,
                    "error_codes": ev["error_codes"],
                    "mrec": ev["mrec"],
                }
            )
    rows.sort(key=lambda r: (-r["down_min"], -r["excluded_min"], r["start"], r["port"]))
    return rows[:TOP_OUTAGES]


_SITES = (
    "site", "ports", "uptime % (window)", "outage min", "excluded min",
    "NEVI 12-month uptime %", "ports ≤ 97 %",
)  # fmt: skip
_OUTAGES = (
    "port", "site", "start", "end", "down min", "excluded min", "cause", "error codes", "MREC",
)  # fmt: skip


def uptime_section(
    page: _Page,
    ledger: Ledger,
    lo: float,
    hi: float,
    site: str | None,
    fleet: Fleet | None = None,
) -> None:
    """The section itself; the figures are :func:`uptime_summary`'s."""
    u = uptime_summary(ledger, lo, hi, site=site, fleet=fleet)
    page.h2("Uptime (23 CFR 680.116(b))")
    page.p(
        "μ = (T − (T_outage − T_excluded)) / T × 100 per port. A port is down while its "
        "charger is offline, it is Faulted or Unavailable, or a warning/critical error-code "
        "alert fires on it; overlapping signals count once. Excluded: outage time an operator "
        "tagged with a cause 680.116(b) lists, and a site's closed hours when the fleet file "
        "gives its operating_hours. NEVI's figure: the 12 months to "
        f"{_when(u['nevi_end'])}, T = {NEVI_T_MIN:,.0f} min; every port must be above "
        f"{NEVI_FLOOR_PCT:g} %.",
        "note",
    )
    if not u["sites"]:
        page.p("No ports in this ledger.")
        return
    page.table(
        _SITES,
        [
            [
                s["site"] or "—",
                s["ports"],
                _pct(s["uptime_pct"]),
                s["outage_min"],
                s["excluded_min"],
                _pct(s["nevi_12m_pct"]),
                s["ports_at_or_below_97"],
            ]
            for s in u["sites"]
        ],
    )
    if u["top_outages"]:
        page.table(_OUTAGES, [_outage_row(o) for o in u["top_outages"]], left=2)
    else:
        page.p("No outages in this window.")
    if u["failures_by_mrec"]:
        page.table(
            ("MREC", "name", "outages"),
            [
                [code, MREC_CODES[code].name if code in MREC_CODES else "—", n]
                for code, n in u["failures_by_mrec"].items()
            ],
            left=2,
        )
        if UNMAPPED in u["failures_by_mrec"]:
            page.p(
                "unmapped: an OCPP error code ChargeX pairs with no MREC code "
                "(InternalError, OtherError, …) and no MREC code stated by the charger.",
                "note",
            )


def _outage_row(o: dict[str, Any]) -> list[Any]:
    return [
        o["port"],
        o["site"] or "—",
        _when(o["start"]),
        _when(o["end"]),
        round(o["down_min"], 1),
        round(o["excluded_min"], 1),
        o["cause"],
        ", ".join(o["error_codes"]) or "—",
        ", ".join(o["mrec"]) or "—",
    ]


def _pct(x: float | None) -> str:
    return "—" if x is None else f"{x:.3f} %"


def _when(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%d %H:%M UTC")
