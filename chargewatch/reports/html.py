"""Build the self-contained HTML reports (figures embedded as data URIs).

``fleet_report`` reads the ledger once, runs the analytics and draws the
figures; ``session_report`` shows one session for a billing dispute. Both
return the HTML text and the PNGs by file name, so the command can write the
figures beside the page.
"""

from __future__ import annotations

__all__ = ["Report", "fleet_report", "session_report"]

import base64
import html
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from chargewatch.analytics import (
    daily,
    distributions,
    peak_power,
    peers,
    reliability,
    revenue,
    utilisation,
)
from chargewatch.analytics.revenue import revenue_per_day
from chargewatch.analytics.session_frame import Level, SessionFrame, Window
from chargewatch.analytics.usage import starting_in
from chargewatch.billing.cdr import PricedCdr, build_cdr
from chargewatch.billing.tariff import Tariff
from chargewatch.model.fleet import Fleet
from chargewatch.reports import plots
from chargewatch.reports.dataset_ledger import record_from_dict
from chargewatch.reports.uptime_section import uptime_section
from chargewatch.sessions.outputs import session_periods
from chargewatch.storage.analytics_source import (
    has_alert_history,
    load_cdr,
    load_cdrs,
    load_frame,
    load_transitions,
)
from chargewatch.storage.ledger import Ledger, get_session

_CSS = """
body{font-family:system-ui,sans-serif;max-width:1200px;margin:2em auto;color:#222}
table{border-collapse:collapse;margin:0.5em 0 1.5em}
td,th{border:1px solid #ccc;padding:3px 8px;text-align:right;font-size:0.9em}
th{background:#f0f0f0} td.l,th.l{text-align:left}
img{max-width:100%;display:block;margin:0.5em 0 1.5em}
.note{color:#555;font-size:0.9em}
"""


@dataclass
class Report:
    title: str
    html: str = ""
    figures: dict[str, bytes] = field(default_factory=dict)
    summary: dict[str, Any] = field(default_factory=dict)


class _Page:
    def __init__(self, title: str) -> None:
        self.parts: list[str] = [
            f"<!doctype html><html><head><meta charset='utf-8'><title>{_e(title)}</title>"
            f"<style>{_CSS}</style></head><body><h1>{_e(title)}</h1>"
        ]
        self.figures: dict[str, bytes] = {}

    def h2(self, text: str) -> None:
        self.parts.append(f"<h2>{_e(text)}</h2>")

    def p(self, text: str, cls: str = "") -> None:
        self.parts.append(f"<p class='{cls}'>{_e(text)}</p>")

    def figure(self, name: str, png: bytes | None, alt: str) -> None:
        if png is None:
            return
        self.figures[name] = png
        data = base64.b64encode(png).decode()
        self.parts.append(f"<img src='data:image/png;base64,{data}' alt='{_e(alt)}'>")

    def table(self, header: Sequence[str], rows: Sequence[Sequence[Any]], left: int = 1) -> None:
        h = "".join(
            f"<th class='{'l' if i < left else ''}'>{_e(c)}</th>" for i, c in enumerate(header)
        )
        body = "".join(
            "<tr>"
            + "".join(
                f"<td class='{'l' if i < left else ''}'>{_e(_fmt(v))}</td>" for i, v in enumerate(r)
            )
            + "</tr>"
            for r in rows
        )
        self.parts.append(f"<table><tr>{h}</tr>{body}</table>")

    def done(self) -> str:
        return "".join(self.parts) + "</body></html>"


def _e(x: Any) -> str:
    return html.escape(str(x), quote=True)


def _fmt(v: Any) -> str:
    if v is None:
        return "—"
    if isinstance(v, float):
        return f"{v:,.3f}" if abs(v) < 10 else f"{v:,.1f}"
    return str(v)


def _iso(ts: float | None) -> str:
    if ts is None:
        return "—"
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M UTC")


def _pct(x: float | None) -> str:
    return "—" if x is None else f"{x * 100:.2f} %"


def fleet_report(
    ledger: Ledger,
    window: Window,
    *,
    title: str,
    site: str | None = None,
    zones: Mapping[str, str] | None = None,
    connectors: Mapping[str, int] | None = None,
    fleet: Fleet | None = None,
    notes: Sequence[str] = (),
    clock: str | None = None,
) -> Report:
    """Usage report over ``window``; ``clock`` names local time where a zone name would mislead.

    ``fleet``, the inventory, sets the chargers and connectors counted (those
    without a session too) and which chargers are DC; ``connectors`` alone only
    the connector counts of chargers with sessions.
    """
    inv = _Inventory.of(fleet, connectors, site)
    a = _analyse(ledger, window, site, zones or {}, inv)
    summary = _summary(a, window)
    page = _Page(title)
    for n in notes:
        page.p(n, "note")
    _overview(page, window, summary)
    label = site or "fleet"
    _usage_sections(page, a, label, clock)
    _reliability_section(page, a.rel, label)
    uptime_section(page, ledger, window.lo, window.hi, site, fleet)
    _revenue_section(page, a.rev, a.rev_days, label)
    _peers_section(page, a.peer, label)
    _peak_section(page, a.peak)
    return Report(title, page.done(), page.figures, summary)


Doc = dict[str, Any]  # one group's figures, as the analytics functions return them


@dataclass
class _Analyses:
    """What the fleet report shows, computed once from the ledger."""

    frame: SessionFrame
    started: SessionFrame
    util: list[Doc]
    util_sites: list[Doc]
    days: list[Doc]
    dists: list[Doc]
    rel: Doc
    rev: list[Doc]
    rev_days: list[Doc]
    peer: list[Doc]
    peak: list[Doc]


@dataclass(frozen=True)
class _Inventory:
    """What the report takes from the fleet file (or the dataset's plug counts)."""

    connectors: Mapping[str, int] | None = None
    charger_sites: Mapping[str, str] | None = None
    dc: Mapping[str, bool] | None = None

    @staticmethod
    def of(
        fleet: Fleet | None, connectors: Mapping[str, int] | None, site: str | None
    ) -> _Inventory:
        if fleet is None:
            return _Inventory(connectors)
        # With --site only that site's chargers are the inventory.
        specs = [c for c in fleet.chargers.values() if not site or c.site == site]
        return _Inventory(
            {**(connectors or {}), **{c.id: c.connectors for c in specs}},
            {c.id: c.site for c in specs},
            {c.id: c.is_dc for c in fleet.chargers.values()},
        )


def _analyse(
    ledger: Ledger,
    window: Window,
    site: str | None,
    zones: Mapping[str, str],
    inv: _Inventory,
) -> _Analyses:
    frame = load_frame(ledger, window, site=site)
    level: Level = "site" if site else "fleet"
    started = frame.select(starting_in(frame, window))
    util, util_sites = (
        utilisation(
            frame,
            window,
            level=lv,
            zones=zones,
            connectors=inv.connectors,
            charger_sites=inv.charger_sites,
        )
        for lv in (level, "site")
    )
    days = daily(frame, window, level=level, zones=zones)
    dists = distributions(frame, window, level=level)
    history = (
        load_transitions(ledger, until=window.hi, site=site) if has_alert_history(ledger) else None
    )
    rel = reliability(frame, history, window, level="charger")
    cdrs = load_cdrs(ledger, window, site=site)
    rev = revenue(frame, cdrs, window, level="site")
    rev_days = revenue_per_day(frame, cdrs, window, zones=zones)
    peer = peers(frame, window, dc=inv.dc)
    peak = peak_power(frame, window)
    return _Analyses(frame, started, util, util_sites, days, dists, rel, rev, rev_days, peer, peak)


def _summary(a: _Analyses, window: Window) -> Doc:
    util = a.util
    return {
        "window": {"from": window.lo, "to": window.hi},
        "sessions": len(a.started),
        "energy_kwh": float(a.started.energy_wh.sum()) / 1000.0,
        # The inventory's counts when given (util counts its idle chargers too).
        "chargers": util[0]["chargers"] if util else len(set(a.frame.charger.tolist())),
        "sites": len(util[0]["sites"]) if util else len(set(a.frame.site.tolist())),
        "connectors": util[0]["connectors"] if util else 0,
        "occupied_share": util[0]["occupied_share"] if util else None,
        "charging_share": util[0]["charging_share"] if util else None,
    }


def _overview(page: _Page, window: Window, summary: Doc) -> None:
    page.table(
        ["figure", "value"],
        [
            ["period", f"{_iso(window.lo)} — {_iso(window.hi)}"],
            ["sessions started", summary["sessions"]],
            ["energy delivered (kWh)", round(summary["energy_kwh"], 3)],
            [
                "sites / chargers / connectors",
                f"{summary['sites']} / {summary['chargers']} / {summary['connectors']}",
            ],
            ["occupied share of connector time", _pct(summary["occupied_share"])],
            ["charging share of connector time", _pct(summary["charging_share"])],
        ],
    )


_SITE_UTIL = ("site", "connectors", "occupied", "charging", "occupied h", "charging h")
_QUANTILES = ("n", "mean", "p10", "median", "p90", "max")


def _usage_sections(page: _Page, a: _Analyses, label: str, clock: str | None) -> None:
    """Utilisation by hour of week (and per site), sessions per day, distributions."""
    if a.util:
        page.h2("Utilisation by hour of week")
        heatmap = plots.utilisation_heatmap(a.util[0], label, clock)
        page.figure("utilisation.png", heatmap, "heatmap")
        if len(a.util_sites) > 1:
            page.table(_SITE_UTIL, [_site_util_row(u) for u in a.util_sites])
    if a.days:
        page.h2("Sessions and energy per day")
        page.figure("daily.png", plots.daily_figure(a.days[0], label), "daily")
    if a.dists:
        page.h2("Session durations, energy and blocking idle time")
        page.figure("distributions.png", plots.histograms_figure(a.dists[0], label), "histograms")
        d = a.dists[0]
        page.table(
            ["quantity", *_QUANTILES],
            [
                [q, *[d[q]["summary"][k] for k in _QUANTILES]]
                for q in ("duration_h", "energy_kwh", "blocking_idle_h")
            ],
        )


def _site_util_row(u: Doc) -> list[Any]:
    return [
        u["group"],
        u["connectors"],
        _pct(u["occupied_share"]),
        _pct(u["charging_share"]),
        u["occupied_hours"],
        u["charging_hours"],
    ]


_FAILED = ("charger", "sessions", "failed", "no energy", "failed share")
_FAULTS = (
    "charger", "site", "availability", "down h", "outages", "MTBF h", "MTTR h", "faults",
    "by kind", "info alerts",
)  # fmt: skip


def _reliability_section(page: _Page, rel: Doc, label: str) -> None:
    """Failed sessions by charger, then availability, MTBF and MTTR from the alert history."""
    page.h2("Reliability")
    page.p(
        f"Failed session: under {rel['min_energy_wh']:g} Wh delivered, or a fault alert of "
        f"severity {' or '.join(rel['fault_severities'])} on the charger while plugged in "
        "(info alerts are counted apart, never as failures)."
    )
    worst_failed = sorted(rel["sessions"], key=lambda r: (-r["failed"], r["group"]))[:10]
    if worst_failed and worst_failed[0]["failed"]:
        page.figure("reliability.png", plots.reliability_figure(rel["sessions"], label), "failures")
        page.table(
            _FAILED,
            [
                [r["group"], r["sessions"], r["failed"], r["no_energy"], _pct(r["failed_rate"])]
                for r in worst_failed
                if r["failed"]
            ],
        )
    else:
        page.p("No failed sessions.")
    if rel["fault_history"]:
        page.table(_FAULTS, [_fault_row(c) for c in rel["worst"]], left=2)
    else:
        page.p("No alert history in this ledger: availability, MTBF and MTTR are unknown.", "note")


def _fault_row(c: Doc) -> list[Any]:
    return [
        c["charger"],
        c["site"],
        _pct(c["availability"]),
        c["down_hours"],
        c["outages"],
        c["mtbf_hours"],
        c["mttr_hours"],
        c["faults"],
        ", ".join(f"{k} {v}" for k, v in c["faults_by_kind"].items()),
        c["info_alerts"],
    ]


_REVENUE = (
    "site", "tariff", "currency", "sessions", "revenue excl. VAT", "incl. VAT", "kWh",
    "avg price/kWh excl. VAT",
)  # fmt: skip


def _revenue_section(page: _Page, rev: list[Doc], rev_days: list[Doc], label: str) -> None:
    """Revenue per site, tariff and currency from the stored CDRs."""
    page.h2("Revenue")
    if not any(g["status"] == "priced" for g in rev):
        page.p("Unpriced: no CDRs stored for these sessions (no tariff applied).", "note")
        return
    page.figure("revenue.png", plots.revenue_figure(rev, rev_days, label), "revenue")
    rows = [
        [g["group"], t["tariff_id"], c["currency"], t["sessions"], t["revenue_excl_vat"],
         t["revenue_incl_vat"], t["energy_kwh"], t["avg_price_per_kwh_excl_vat"]]
        for g in rev
        for c in g["currencies"]
        for t in c["tariffs"]
    ]  # fmt: skip
    page.table(_REVENUE, rows, left=3)
    unpriced = sum(g["unpriced_sessions"] for g in rev)
    if unpriced:
        page.p(f"{unpriced} sessions have no CDR (unpriced) and are not in these totals.")


_PEERS = (
    "charger", "site", "kind", "peers", "sessions", "kWh per plugged-in h", "z",
    "avg charging kW", "z", "kWh/session", "z", "deviates in",
)  # fmt: skip
# Each shown with its robust z-score, in this order.
_PEER_FIGURES = ("kwh_per_connected_hour", "avg_charging_kw", "kwh_per_session")


def _peers_section(page: _Page, peer: list[Doc], label: str) -> None:
    """The chargers whose figures deviate from their peers: same site, same kind (AC/DC)."""
    page.h2("Chargers that deviate from their site's peers of the same kind (AC, DC)")
    page.figure("peers.png", plots.peers_figure(peer, label, "kwh_per_connected_hour"), "peers")
    dev = [r for r in peer if r["deviates"]]
    rows = [
        [r["charger"], r["site"], r["kind"], r["peers"], r["sessions"],
         *[v for f in _PEER_FIGURES for v in (r["figures"][f], r["z"][f])],
         " ".join(r["deviates"])]
        for r in dev[:20]
    ]  # fmt: skip
    page.table(_PEERS, rows, left=3)
    page.p(f"{len(dev)} of {len(peer)} chargers deviate (robust z beyond ±3.5).", "note")


_PEAK = (
    "site", "peak (kW, period averages)", "at", "sum of period maxima (kW)",
    "p99 while charging (kW)",
)  # fmt: skip


def _peak_section(page: _Page, peak: list[Doc]) -> None:
    page.h2("Peak concurrent power per site")
    rows = [
        [p["site"], p["peak_power_w"] / 1000.0, _iso(p["at"]),
         p["max_power_sum_w"] / 1000.0, p["p99_power_w"] / 1000.0]
        for p in sorted(peak, key=lambda p: -p["peak_power_w"])
    ]  # fmt: skip
    page.table(_PEAK, rows)


def session_report(
    ledger: Ledger,
    session_id: str,
    *,
    tariff: Tariff | None = None,
    zones: Mapping[str, str] | None = None,
) -> Report | None:
    """One session: power curve, register, periods and how each period was priced."""
    s = get_session(ledger, session_id)
    if s is None:
        return None
    db = ledger.db
    periods = [
        dict(r)
        for r in db.execute(
            'SELECT seq, kind, start, "end", energy_wh, min_power_w, max_power_w, max_current_a'
            " FROM periods WHERE session_id=? ORDER BY seq",
            (session_id,),
        )
    ]
    readings = [
        dict(r)
        for r in db.execute(
            "SELECT kind, ts, energy_wh, signed_data FROM meter_readings WHERE session_id=?"
            " ORDER BY ts",
            (session_id,),
        )
    ]
    page = _Page(f"Session {session_id}")
    page.table(
        ["field", "value"],
        [
            [k, json.dumps(s[k]) if isinstance(s[k], list) else s[k]]
            for k in (
                "charger_id",
                "connector_id",
                "site",
                "transaction_id",
                "start",
                "stop",
                "energy_wh",
                "energy_source",
                "quality",
                "stop_reason",
                "duration_s",
                "charging_s",
                "idle_s",
                "revision",
                "mismatch_wh",
                "id_tag",
            )
            if k in s
        ],
    )
    stored = load_cdr(ledger, session_id)
    cuts = [
        datetime.fromisoformat(p["start_date_time"].replace("Z", "+00:00")).timestamp()
        for p in (stored or {}).get("charging_periods", [])
    ]
    page.h2("Power and energy")
    page.figure("session.png", plots.session_figure(s, periods, cuts), "power curve")
    page.h2("Register")
    page.table(
        ["reading", "time", "register (Wh)", "signed"],
        [
            [r["kind"], _iso(r["ts"]), r["energy_wh"], "yes" if r["signed_data"] else "no"]
            for r in readings
        ],
    )
    page.h2("Charging and idle periods")
    page.table(
        ["#", "kind", "start", "end", "minutes", "energy (Wh)", "avg kW", "max kW", "max A/phase"],
        [
            [
                p["seq"],
                p["kind"],
                _iso(p["start"]),
                _iso(p["end"]),
                (p["end"] - p["start"]) / 60.0,
                p["energy_wh"],
                p["energy_wh"] * 3.6 / (p["end"] - p["start"]) if p["end"] > p["start"] else None,
                None if p["max_power_w"] is None else p["max_power_w"] / 1000.0,
                p["max_current_a"],
            ]
            for p in periods
        ],
        left=2,
    )
    page.h2("Pricing")
    if stored is not None:
        page.p(
            f"Stored CDR, tariff {stored['tariffs'][0]['id'] if stored.get('tariffs') else '?'}"
            f", currency {stored.get('currency')}."
        )
        _cdr_tables(page, stored)
    elif tariff is not None:
        zones = zones or {}
        _price_now(page, s, tariff, zones.get(s.get("site", ""), zones.get("*", "UTC")))
    else:
        page.p("Unpriced: no CDR stored for this session and no tariff given (--tariff).", "note")
    return Report(f"Session {session_id}", page.done(), page.figures, {"session": s})


def _cdr_tables(page: _Page, cdr: Mapping[str, Any]) -> None:
    page.table(
        ["period start", "dimensions", "tariff"],
        [
            [
                p["start_date_time"],
                ", ".join(f"{d['type']} {d['volume']}" for d in p["dimensions"]),
                p.get("tariff_id", ""),
            ]
            for p in cdr.get("charging_periods", [])
        ],
    )
    page.table(
        ["total", "excl. VAT", "incl. VAT"],
        [
            [k, v.get("excl_vat"), v.get("incl_vat")]
            for k, v in cdr.items()
            if k.startswith("total_") and isinstance(v, dict)
        ]
        + [
            [k, cdr[k], ""]
            for k in ("total_energy", "total_time", "total_parking_time")
            if k in cdr
        ],
    )


def _price_now(page: _Page, s: Mapping[str, Any], tariff: Tariff, zone: str) -> None:
    rec = record_from_dict(s)
    cdr = build_cdr(
        tariff,
        start=datetime.fromtimestamp(rec.start, UTC),
        end=datetime.fromtimestamp(rec.stop, UTC),
        timezone=ZoneInfo(zone),
        periods=session_periods(rec),
    )
    assert isinstance(cdr, PricedCdr)
    page.p(f"Priced now with tariff {tariff.id} ({tariff.currency}), zone {zone}.")
    rows = []
    for p in cdr.result.periods:
        parts = []
        for dim, idx in p.elements.items():
            pc = tariff.elements[idx].component(dim)
            if pc is not None:
                parts.append(
                    f"{dim.value}: element {idx}, {pc.price} {tariff.currency} step {pc.step_size}"
                )
        rows.append(
            [
                p.start.isoformat(),
                p.end.isoformat(),
                p.state.value,
                str(p.energy_wh.quantize(Decimal("0.001"))),
                "; ".join(parts) or "free",
            ]
        )
    page.table(["start", "end", "state", "energy (Wh)", "priced by"], rows, left=5)
    _cdr_tables(page, json.loads(json.dumps(cdr.to_ocpi(), default=str)))
