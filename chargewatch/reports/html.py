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
from chargewatch.analytics.session_frame import Level, Window
from chargewatch.analytics.usage import starting_in
from chargewatch.billing.cdr import PricedCdr, build_cdr
from chargewatch.billing.tariff import Tariff
from chargewatch.reports import plots
from chargewatch.reports.dataset_ledger import record_from_dict
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
    notes: Sequence[str] = (),
    clock: str | None = None,
) -> Report:
    """Usage report over ``window``; ``clock`` names local time where a zone name would mislead."""
    zones = zones or {}
    frame = load_frame(ledger, window, site=site)
    level: Level = "site" if site else "fleet"
    started = frame.select(starting_in(frame, window))
    util = utilisation(frame, window, level=level, zones=zones, connectors=connectors)
    util_sites = utilisation(frame, window, level="site", zones=zones, connectors=connectors)
    days = daily(frame, window, level=level, zones=zones)
    dists = distributions(frame, window, level=level)
    history = (
        load_transitions(ledger, until=window.hi, site=site) if has_alert_history(ledger) else None
    )
    rel = reliability(frame, history, window, level="charger")
    cdrs = load_cdrs(ledger, window, site=site)
    rev = revenue(frame, cdrs, window, level="site")
    rev_days = revenue_per_day(frame, cdrs, window, zones=zones)
    peer = peers(frame, window)
    peak = peak_power(frame, window)

    summary: dict[str, Any] = {
        "window": {"from": window.lo, "to": window.hi},
        "sessions": len(started),
        "energy_kwh": float(started.energy_wh.sum()) / 1000.0,
        "chargers": len(set(frame.charger.tolist())),
        "sites": len(set(frame.site.tolist())),
        "connectors": util[0]["connectors"] if util else 0,
        "occupied_share": util[0]["occupied_share"] if util else None,
        "charging_share": util[0]["charging_share"] if util else None,
    }
    page = _Page(title)
    for n in notes:
        page.p(n, "note")
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
    label = site or "fleet"
    if util:
        page.h2("Utilisation by hour of week")
        page.figure("utilisation.png", plots.utilisation_heatmap(util[0], label, clock), "heatmap")
        if len(util_sites) > 1:
            page.table(
                ["site", "connectors", "occupied", "charging", "occupied h", "charging h"],
                [
                    [
                        u["group"],
                        u["connectors"],
                        _pct(u["occupied_share"]),
                        _pct(u["charging_share"]),
                        u["occupied_hours"],
                        u["charging_hours"],
                    ]
                    for u in util_sites
                ],
            )
    if days:
        page.h2("Sessions and energy per day")
        page.figure("daily.png", plots.daily_figure(days[0], label), "daily")
    if dists:
        page.h2("Session durations, energy and blocking idle time")
        page.figure("distributions.png", plots.histograms_figure(dists[0], label), "histograms")
        d = dists[0]
        page.table(
            ["quantity", "n", "mean", "p10", "median", "p90", "max"],
            [
                [q, *[d[q]["summary"][k] for k in ("n", "mean", "p10", "median", "p90", "max")]]
                for q in ("duration_h", "energy_kwh", "blocking_idle_h")
            ],
        )
    page.h2("Reliability")
    page.p(
        f"Failed session: under {rel['min_energy_wh']:g} Wh delivered, or a fault alert on the "
        "charger while plugged in."
    )
    worst_failed = sorted(rel["sessions"], key=lambda r: (-r["failed"], r["group"]))[:10]
    if worst_failed and worst_failed[0]["failed"]:
        page.figure("reliability.png", plots.reliability_figure(rel["sessions"], label), "failures")
        page.table(
            ["charger", "sessions", "failed", "no energy", "failed share"],
            [
                [r["group"], r["sessions"], r["failed"], r["no_energy"], _pct(r["failed_rate"])]
                for r in worst_failed
                if r["failed"]
            ],
        )
    else:
        page.p("No failed sessions.")
    if rel["fault_history"]:
        page.table(
            [
                "charger",
                "site",
                "availability",
                "down h",
                "outages",
                "MTBF h",
                "MTTR h",
                "faults",
                "by kind",
            ],
            [
                [
                    c["charger"],
                    c["site"],
                    _pct(c["availability"]),
                    c["down_hours"],
                    c["outages"],
                    c["mtbf_hours"],
                    c["mttr_hours"],
                    c["faults"],
                    ", ".join(f"{k} {v}" for k, v in c["faults_by_kind"].items()),
                ]
                for c in rel["worst"]
            ],
            left=2,
        )
    else:
        page.p("No alert history in this ledger: availability, MTBF and MTTR are unknown.", "note")
    page.h2("Revenue")
    priced = [g for g in rev if g["status"] == "priced"]
    if not priced:
        page.p("Unpriced: no CDRs stored for these sessions (no tariff applied).", "note")
    else:
        page.figure("revenue.png", plots.revenue_figure(rev, rev_days, label), "revenue")
        page.table(
            [
                "site",
                "tariff",
                "currency",
                "sessions",
                "revenue excl. VAT",
                "incl. VAT",
                "kWh",
                "avg price/kWh excl. VAT",
            ],
            [
                [
                    g["group"],
                    t["tariff_id"],
                    c["currency"],
                    t["sessions"],
                    t["revenue_excl_vat"],
                    t["revenue_incl_vat"],
                    t["energy_kwh"],
                    t["avg_price_per_kwh_excl_vat"],
                ]
                for g in rev
                for c in g["currencies"]
                for t in c["tariffs"]
            ],
            left=3,
        )
        unpriced = sum(g["unpriced_sessions"] for g in rev)
        if unpriced:
            page.p(f"{unpriced} sessions have no CDR (unpriced) and are not in these totals.")
    page.h2("Chargers that deviate from their site's peers")
    page.figure("peers.png", plots.peers_figure(peer, label, "kwh_per_connected_hour"), "peers")
    dev = [r for r in peer if r["deviates"]]
    page.table(
        [
            "charger",
            "site",
            "peers",
            "sessions",
            "kWh per plugged-in h",
            "z",
            "avg charging kW",
            "z",
            "kWh/session",
            "z",
            "deviates in",
        ],
        [
            [
                r["charger"],
                r["site"],
                r["peers"],
                r["sessions"],
                r["figures"]["kwh_per_connected_hour"],
                r["z"]["kwh_per_connected_hour"],
                r["figures"]["avg_charging_kw"],
                r["z"]["avg_charging_kw"],
                r["figures"]["kwh_per_session"],
                r["z"]["kwh_per_session"],
                " ".join(r["deviates"]),
            ]
            for r in dev[:20]
        ],
        left=2,
    )
    page.p(f"{len(dev)} of {len(peer)} chargers deviate (robust z beyond ±3.5).", "note")
    page.h2("Peak concurrent power per site")
    page.table(
        [
            "site",
            "peak (kW, period averages)",
            "at",
            "sum of period maxima (kW)",
            "p99 while charging (kW)",
        ],
        [
            [
                p["site"],
                p["peak_power_w"] / 1000.0,
                _iso(p["at"]),
                p["max_power_sum_w"] / 1000.0,
                p["p99_power_w"] / 1000.0,
            ]
            for p in sorted(peak, key=lambda p: -p["peak_power_w"])
        ],
    )
    return Report(title, page.done(), page.figures, summary)


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
            "SELECT seq, kind, start, end, energy_wh, min_power_w, max_power_w, max_current_a"
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
        ["#", "kind", "start", "end", "minutes", "energy (Wh)", "avg kW", "max kW", "max A"],
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
