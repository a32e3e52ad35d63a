"""The report's figures, as PNG bytes (matplotlib, Agg, no pyplot global state).

Each function takes the analytics results (JSON-ready dicts) and returns one
PNG. Figures use matplotlib's object API so that concurrent reports never
share a current figure.
"""

from __future__ import annotations

__all__ = [
    "daily_figure",
    "day_axis",
    "histograms_figure",
    "peers_figure",
    "reliability_figure",
    "revenue_figure",
    "session_figure",
    "utilisation_heatmap",
]

import io
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

# Figure() without pyplot renders through Agg on savefig: no display, no global state.
import matplotlib.dates as mdates
import numpy as np
from matplotlib.figure import Figure

from chargewatch.analytics.tables import WEEKDAYS

_DPI = 110


def _png(fig: Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=_DPI, bbox_inches="tight")
    return buf.getvalue()


def utilisation_heatmap(group: dict[str, Any], title: str, clock: str | None = None) -> bytes:
    """Occupied and charging share by local weekday × hour, one shared colour scale (%)."""
    occ = np.array([np.nan if v is None else v for v in group["hour_of_week"]["occupied_share"]])
    chg = np.array([np.nan if v is None else v for v in group["hour_of_week"]["charging_share"]])
    occ, chg = occ.reshape(7, 24) * 100.0, chg.reshape(7, 24) * 100.0
    top = float(np.nanmax(occ)) if np.isfinite(occ).any() else 1.0
    fig = Figure(figsize=(11, 5.2), layout="constrained")
    axes = fig.subplots(1, 2, sharey=True)
    im = None
    for ax, data, name in zip(axes, (occ, chg), ("occupied (plugged in)", "charging"), strict=True):
        im = ax.imshow(data, aspect="auto", cmap="viridis", vmin=0.0, vmax=max(top, 1e-9))
        ax.set_title(name)
        ax.set_xticks(range(0, 24, 3), [f"{h:02d}" for h in range(0, 24, 3)])
        ax.set_yticks(range(7), WEEKDAYS)
        ax.set_xlabel(f"local hour of day ({clock or ', '.join(group['timezones'])})")
    assert im is not None
    cb = fig.colorbar(im, ax=list(axes), shrink=0.9)
    cb.set_label("share of connector time (%)")
    fig.suptitle(
        f"{title}: utilisation by hour of week — {group['connectors']} connectors, "
        f"occupied {_pct(group['occupied_share'])}, charging {_pct(group['charging_share'])}"
    )
    return _png(fig)


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{x * 100:.1f} %"


def daily_figure(group: dict[str, Any], title: str) -> bytes:
    """Sessions per day (bars) and energy per day (bars), stacked panels on one date axis."""
    days = group["days"]
    x = np.array([np.datetime64(d["date"]) for d in days]).astype("datetime64[D]").astype(object)
    sessions = np.array([d["sessions"] for d in days])
    energy = np.array([d["energy_kwh"] for d in days])
    fig = Figure(figsize=(11, 5.5), layout="constrained")
    ax1, ax2 = fig.subplots(2, 1, sharex=True)
    ax1.bar(x, sessions, width=1.0, color="#3b75af", linewidth=0)
    ax1.set_ylabel("sessions started")
    ax1.set_title(f"{title}: sessions and energy per local day")
    ax2.bar(x, energy, width=1.0, color="#e08b2c", linewidth=0)
    ax2.set_ylabel("energy (kWh)")
    if len(days) > 14:
        # A 7-day mean shows the trend through the weekday/weekend pattern.
        k = np.ones(7) / 7.0
        ax2.plot(
            x[3:-3], np.convolve(energy, k, mode="valid"), color="black", lw=1.2, label="7-day mean"
        )
        ax1.plot(
            x[3:-3],
            np.convolve(sessions, k, mode="valid"),
            color="black",
            lw=1.2,
            label="7-day mean",
        )
        ax1.legend(loc="upper right")
        ax2.legend(loc="upper right")
    day_axis(ax2, len(days))
    for ax in (ax1, ax2):
        ax.grid(axis="y", alpha=0.3)
    return _png(fig)


def day_axis(ax: Any, n_days: int) -> None:
    """Date labels a reader can put on a bar: every day ("Mon 07 Dec") up to a
    month, Mondays up to half a year (days as minor ticks), else months."""
    minor: Any = None
    if n_days <= 31:
        major: Any = mdates.DayLocator()  # type: ignore[no-untyped-call]
        fmt = "%a %d %b"
    elif n_days <= 183:
        major = mdates.WeekdayLocator(byweekday=mdates.MO)  # type: ignore[no-untyped-call]
        fmt, minor = "%a %d %b", mdates.DayLocator()  # type: ignore[no-untyped-call]
    else:
        major = mdates.MonthLocator()  # type: ignore[no-untyped-call]
        fmt = "%b %Y"
        minor = mdates.WeekdayLocator(byweekday=mdates.MO)  # type: ignore[no-untyped-call]
    ax.xaxis.set_major_locator(major)
    ax.xaxis.set_major_formatter(mdates.DateFormatter(fmt))  # type: ignore[no-untyped-call]
    if minor is not None:
        ax.xaxis.set_minor_locator(minor)
    ax.tick_params(axis="x", which="major", labelrotation=90, labelsize=8)


def _bin_label(b: dict[str, Any]) -> str:
    lo, hi = b["lo"], b["hi"]
    return f"≥{lo:g}" if hi is None else f"{lo:g}–{hi:g}"


def histograms_figure(group: dict[str, Any], title: str) -> bytes:
    """Session duration, energy and blocking idle histograms (uneven bins shown as categories)."""
    fig = Figure(figsize=(13, 4.2), layout="constrained")
    axes = fig.subplots(1, 3)
    panels = (
        ("duration_h", "plugged-in duration (h)", "#3b75af"),
        ("energy_kwh", "energy delivered (kWh)", "#e08b2c"),
        ("blocking_idle_h", "idle after charging (h)", "#8c564b"),
    )
    for ax, (key, label, colour) in zip(axes, panels, strict=True):
        hist = group[key]["histogram"]
        s = group[key]["summary"]
        ax.bar(range(len(hist)), [b["count"] for b in hist], color=colour)
        ax.set_xticks(range(len(hist)), [_bin_label(b) for b in hist], rotation=60, fontsize=8)
        ax.set_xlabel(label)
        ax.set_ylabel("sessions")
        if s["median"] is not None:
            ax.set_title(f"median {s['median']:.2f}, p90 {s['p90']:.2f}", fontsize=10)
        ax.grid(axis="y", alpha=0.3)
    fig.suptitle(f"{title}: distributions over {group['duration_h']['summary']['n']} sessions")
    return _png(fig)


def reliability_figure(rows: Sequence[dict[str, Any]], title: str) -> bytes:
    """Failed-session share of the chargers with the most failures (horizontal bars)."""
    worst = sorted(rows, key=lambda r: (-(r["failed_rate"] or 0.0), -r["sessions"]))[:15]
    fig = Figure(figsize=(9, 0.35 * max(len(worst), 3) + 1.5), layout="constrained")
    ax = fig.subplots()
    names = [r["group"] for r in worst][::-1]
    vals = [(r["failed_rate"] or 0.0) * 100.0 for r in worst][::-1]
    ax.barh(names, vals, color="#c44e52")
    for y, r in enumerate(worst[::-1]):
        ax.text(vals[y], y, f"  {r['failed']}/{r['sessions']}", va="center", fontsize=8)
    ax.set_xlabel("failed sessions (%) — no energy, or a fault while plugged in")
    ax.set_title(f"{title}: chargers with the highest failed-session share")
    ax.set_xlim(0, max([*vals, 1.0]) * 1.25)
    ax.grid(axis="x", alpha=0.3)
    return _png(fig)


def revenue_figure(
    doc: Sequence[dict[str, Any]], per_day: Sequence[dict[str, Any]], title: str
) -> bytes | None:
    """Weekly revenue excl. VAT stacked by tariff (one panel per currency), with each
    tariff's total and average price per kWh in the legend; None when nothing was priced."""
    totals: dict[tuple[str, str], list[float]] = {}
    for g in doc:
        for c in g["currencies"]:
            for t in c["tariffs"]:
                a = totals.setdefault((c["currency"], t["tariff_id"]), [0.0, 0.0])
                a[0] += t["revenue_excl_vat"]
                a[1] += t["energy_kwh"]
    if not totals or not per_day:
        return None
    currencies = sorted({k[0] for k in totals})
    fig = Figure(figsize=(11, 3.6 * len(currencies)), layout="constrained")
    axes = fig.subplots(len(currencies), 1, squeeze=False)[:, 0]
    days = np.array([np.datetime64(r["date"], "D") for r in per_day])
    # Weeks start on Monday: 1970-01-01 was a Thursday, so shift by 3 days.
    week = ((days.astype(np.int64) + 3) // 7) * 7 - 3
    weeks = np.unique(week)
    for ax, cur in zip(axes, currencies, strict=True):
        bottom = np.zeros(len(weeks))
        for cur2, tariff in sorted(k for k in totals if k[0] == cur):
            m = np.array([r["currency"] == cur2 and r["tariff_id"] == tariff for r in per_day])
            vals = np.zeros(len(weeks))
            np.add.at(
                vals,
                np.searchsorted(weeks, week[m]),
                np.array([r["revenue_excl_vat"] for r in per_day])[m],
            )
            rev, kwh = totals[(cur2, tariff)]
            avg = f"{rev / kwh:.3f} {cur}/kWh" if kwh > 0 else "no energy"
            x = weeks.astype("datetime64[D]").astype(object)
            ax.bar(
                x,
                vals,
                bottom=bottom,
                width=6.0,
                align="edge",
                label=f"{tariff}: {rev:,.2f} {cur}, avg {avg}",
            )
            bottom += vals
        ax.set_ylabel(f"revenue per week ({cur}, excl. VAT)")
        ax.legend(loc="upper left", fontsize=9)
        ax.grid(axis="y", alpha=0.3)
        loc = mdates.AutoDateLocator()  # type: ignore[no-untyped-call]
        ax.xaxis.set_major_locator(loc)
        ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(loc))  # type: ignore[no-untyped-call]
    axes[0].set_title(f"{title}: revenue by tariff (weeks from Monday, by session start)")
    return _png(fig)


_METRIC_LABELS = {
    "kwh_per_connected_hour": "kWh per plugged-in hour (average kW)",
    "avg_charging_kw": "average charging power (kW)",
    "kwh_per_session": "energy per session (kWh)",
    "failed_share": "failed-session share",
}


def peers_figure(doc: Sequence[dict[str, Any]], title: str, metric: str) -> bytes | None:
    """Each charger's figure against its site's median; deviating chargers in red."""
    pts = [r for r in doc if r["figures"].get(metric) is not None]
    if not pts:
        return None
    sites = sorted({r["site"] for r in pts})
    fig = Figure(figsize=(max(6.0, 0.5 * len(sites) + 3), 4.5), layout="constrained")
    ax = fig.subplots()
    for i, site in enumerate(sites):
        rs = [r for r in pts if r["site"] == site]
        v = np.array([r["figures"][metric] for r in rs])
        bad = np.array([metric in r["deviates"] for r in rs])
        jitter = np.linspace(-0.15, 0.15, len(rs)) if len(rs) > 1 else np.zeros(1)
        ax.scatter(i + jitter[~bad], v[~bad], s=18, color="#3b75af")
        ax.scatter(i + jitter[bad], v[bad], s=30, color="#c44e52", marker="D")
        ax.hlines(np.median(v), i - 0.3, i + 0.3, color="black", lw=1)
    ax.set_xticks(range(len(sites)), sites, rotation=60, fontsize=8)
    ax.set_ylabel(_METRIC_LABELS.get(metric, metric))
    ax.set_xlabel("site (each dot: one charger with enough sessions)")
    ax.set_title(f"{title}: chargers vs their site (red: |robust z| > 3.5, line: site median)")
    ax.grid(axis="y", alpha=0.3)
    return _png(fig)


def _dt(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


def session_figure(
    session: dict[str, Any],
    periods: Sequence[dict[str, Any]],
    price_cuts: Sequence[float] = (),
) -> bytes:
    """Average power per period (kW) with idle periods shaded, the delivered energy, and
    red dashed lines where the CDR starts a new charging period (a price may change there)."""
    fig = Figure(figsize=(11, 5), layout="constrained")
    ax1, ax2 = fig.subplots(2, 1, sharex=True, height_ratios=[2, 1])
    for t in price_cuts:
        for ax in (ax1, ax2):
            ax.axvline(_dt(t), color="#c44e52", lw=1, ls="--")
    e = 0.0
    for p in periods:
        a, b = _dt(p["start"]), _dt(p["end"])
        dur = p["end"] - p["start"]
        avg = p["energy_wh"] * 3600.0 / dur if dur > 0 else 0.0
        if p["kind"] == "charging":
            ax1.fill_between([a, b], 0, [avg / 1000.0] * 2, step="pre", color="#3b75af", alpha=0.7)
            if p.get("max_power_w") is not None:
                ax1.hlines(p["max_power_w"] / 1000.0, a, b, color="#1f3f66", lw=1, linestyles=":")
        else:
            ax1.axvspan(a, b, color="#bbbbbb", alpha=0.4)
            ax2.axvspan(a, b, color="#bbbbbb", alpha=0.4)
        ax2.plot([a, b], [e / 1000.0, (e + p["energy_wh"]) / 1000.0], color="#e08b2c", lw=2)
        e += p["energy_wh"]
    ax1.set_ylabel("power (kW)\nbars: period average\ndotted: period max")
    ax1.set_title(
        f"session {session['session_id']} on {session['charger_id']}/{session['connector_id']}"
        " — grey: idle (parking), red: CDR period starts"
    )
    ax2.set_ylabel("energy delivered (kWh)")
    ax2.set_xlabel("time (UTC)")
    loc = mdates.AutoDateLocator()  # type: ignore[no-untyped-call]  # untyped in matplotlib 3.x
    ax2.xaxis.set_major_locator(loc)
    ax2.xaxis.set_major_formatter(mdates.ConciseDateFormatter(loc))  # type: ignore[no-untyped-call]
    for ax in (ax1, ax2):
        ax.grid(alpha=0.3)
    return _png(fig)
