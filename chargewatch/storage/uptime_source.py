"""Read the ledger into the uptime computation's inputs (chargewatch.analytics.uptime).

Outages come from two records the ledger keeps across restarts:

* the connector status history (``port_status``, ledger migration 11): every
  change of status and error code, written by the collector as it journals the
  fleet state and by a replay; a Faulted or Unavailable port is down until its
  next status. Changes within one batch collapse to the last one (the fleet
  state's change set), so a fault shorter than a batch is not seen there;
* the alert transitions (ChargerOffline, error-code alerts, ChargingInterrupted,
  …), which carry the first and last signal of each outage; since migration 12
  a firing also carries ``evidence_start``, when its fault began (an offline
  charger's last sign of life);
* the sessions' periods with the status history: a port in Charging that
  delivers below the fleet's ``uptime.min_power_w`` (analytics.delivery).

With a fleet, its sites' operating hours become exclusions
(analytics.operating_hours).

Failed starts are the FailedStart alert's firings. A ledger from before
migration 11 has no status history: its outages come from the alerts alone.
"""

from __future__ import annotations

__all__ = [
    "UptimeInputs",
    "exclusions_from_json",
    "load_alert_history",
    "load_periods",
    "load_status_changes",
    "load_uptime_inputs",
    "uptime_gauges",
    "write_uptime_jsonl",
]

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chargewatch.analytics.delivery import delivery_signals
from chargewatch.analytics.operating_hours import hours_exclusions
from chargewatch.analytics.uptime import (
    Exclusion,
    Port,
    Signal,
    alert_signals,
    by_charger,
    nevi_monthly,
    port_uptime,
    rollup,
    status_signals,
    year_before,
)
from chargewatch.model.delivery import DeliveryPolicy
from chargewatch.model.fleet import Fleet
from chargewatch.storage.analytics_source import load_transitions
from chargewatch.storage.exclusions import active_exclusions
from chargewatch.storage.ledger import Ledger
from chargewatch.storage.ledger_copy import columns


@dataclass(frozen=True)
class UptimeInputs:
    ports: list[Port]
    signals: list[Signal]
    sessions: list[dict[str, Any]]
    failed_starts: list[dict[str, Any]]
    #: What the configuration excludes by itself: hours outside the sites'
    #: operating hours. Operators' tags (the API's, --exclusions) come on top.
    exclusions: list[Exclusion] = field(default_factory=list)


def load_uptime_inputs(
    ledger: Ledger, lo: float, hi: float, *, fleet: Fleet | None = None
) -> UptimeInputs:
    """Ports: the fleet's (each charger × its connectors), else those seen in the ledger."""
    transitions = load_alert_history(ledger, until=hi)
    changes, codes = load_status_changes(ledger, lo, hi)
    signals = alert_signals(transitions, until=hi) + status_signals(changes, hi, codes)
    failed = [
        {
            "at": t["at"],
            "charger": str(t["labels"].get("charger", "")),
            "connector": str(t["labels"].get("connector", "")),
        }
        for t in transitions
        if t["state"] == "firing" and t["labels"].get("fault") == "failed_start" and t["at"] >= lo
    ]
    rows = ledger.db.execute(
        "SELECT charger_id, connector_id, site, start, stop, energy_wh,"
        " (SELECT MAX(p.max_power_w) FROM periods p WHERE p.session_id = s.session_id)"
        " FROM sessions s WHERE start >= ? AND start < ? ORDER BY start",
        (lo, hi),
    ).fetchall()
    keys = ("charger", "connector", "site", "start", "stop", "energy_wh", "peak_power_w")
    sessions = [dict(zip(keys, (r[0], str(r[1]), *r[2:]), strict=True)) for r in rows]
    policy = fleet.uptime if fleet is not None else DeliveryPolicy()

    def limits(charger: str) -> tuple[float, float]:
        if fleet is None:
            return policy.min_power_w, policy.grace_s
        return policy.for_port(fleet.site_of(charger), fleet.model_of(charger))

    low = load_periods(ledger, lo, hi, below_w=_highest_minimum(policy))
    signals += delivery_signals(low, changes, hi, limits)
    ports = _ports(fleet, sessions, signals)
    return UptimeInputs(ports, signals, sessions, failed, hours_exclusions(fleet, lo, hi))


def _highest_minimum(policy: DeliveryPolicy) -> float:
    rules = [*policy.sites.values(), *policy.models.values()]
    return max([policy.min_power_w, *(r.min_power_w for r in rules if r.min_power_w is not None)])


def load_periods(
    ledger: Ledger, lo: float, hi: float, *, below_w: float = math.inf
) -> list[dict[str, Any]]:
    """The sessions' periods that overlap [lo, hi), with their port; only those
    averaging below ``below_w`` (a year of a fleet's periods is millions of rows,
    and only the low ones can be failures to deliver)."""
    if below_w <= 0:
        return []
    low = "" if math.isinf(below_w) else ' AND p.energy_wh * 3600 < ? * (p."end" - p.start)'
    args = (lo, hi) if math.isinf(below_w) else (lo, hi, below_w)
    rows = ledger.db.execute(
        'SELECT s.session_id, s.charger_id, s.connector_id, p.start, p."end", p.energy_wh,'
        " p.max_power_w FROM periods p JOIN sessions s ON s.session_id = p.session_id"
        f' WHERE p."end" > ? AND p.start < ?{low} ORDER BY p.start',
        args,
    ).fetchall()
    keys = ("session_id", "charger", "connector", "start", "end", "energy_wh", "max_power_w")
    return [dict(zip(keys, (r[0], r[1], str(r[2]), *r[3:]), strict=True)) for r in rows]


def load_alert_history(ledger: Ledger, *, until: float) -> list[dict[str, Any]]:
    """Alert transitions before ``until`` with their ``evidence_start`` (migration 12;
    None before it or where the alert stage knew none)."""
    if "evidence_start" not in columns(ledger, "alert_transitions"):
        return [{**t, "evidence_start": None} for t in load_transitions(ledger, until=until)]
    rows = ledger.db.execute(
        "SELECT at, state, alertname, labels, evidence_start FROM alert_transitions"
        " WHERE at < ? ORDER BY at",
        (until,),
    ).fetchall()
    return [
        {
            "at": float(r[0]),
            "state": str(r[1]),
            "alertname": str(r[2]),
            "labels": json.loads(r[3]),
            "evidence_start": None if r[4] is None else float(r[4]),
        }
        for r in rows
    ]


def load_status_changes(
    ledger: Ledger, lo: float, hi: float
) -> tuple[list[tuple[float, str, str, str]], dict[tuple[float, str, str], tuple[str, str]]]:
    """Status changes in [lo, hi) and each port's last one before ``lo`` (a port
    Faulted since before the window is down from its start), for ``status_signals``;
    the codes as (OCPP error code, MREC code the charger stated)."""
    if not ledger.has_table("port_status"):
        return [], {}  # a ledger opened read-only before a collector migrated it
    # Before migration 12 the stated MREC rode in error_code after a comma.
    new = "mrec" in columns(ledger, "port_status")
    mrec, p_mrec = ("mrec", "p.mrec") if new else ("''", "''")
    # Each port's last change before the window: a join on its latest time,
    # which both SQLite and PostgreSQL run (no bare columns beside MAX()).
    rows = ledger.db.execute(
        f"SELECT at, charger, connector, status, error_code, {mrec} FROM port_status"
        " WHERE at >= ? AND at < ?"
        " UNION ALL"
        f" SELECT p.at, p.charger, p.connector, p.status, p.error_code, {p_mrec}"
        " FROM port_status p"
        " JOIN (SELECT charger, connector, MAX(at) AS last FROM port_status"
        " WHERE at < ? GROUP BY charger, connector) b"
        " ON p.charger = b.charger AND p.connector = b.connector AND p.at = b.last"
        " ORDER BY 1",
        (lo, hi, lo),
    ).fetchall()
    changes = [(float(r[0]), str(r[1]), str(r[2]), str(r[3])) for r in rows]
    codes = {(float(r[0]), str(r[1]), str(r[2])): _codes(str(r[4]), str(r[5])) for r in rows}
    return changes, codes


def _codes(error_code: str, mrec: str) -> tuple[str, str]:
    if mrec:
        return error_code, mrec
    code, _, stated = error_code.partition(",")  # a row written before migration 12
    return code, stated


def _ports(
    fleet: Fleet | None, sessions: Sequence[dict[str, Any]], signals: Sequence[Signal]
) -> list[Port]:
    if fleet is not None and fleet.chargers:
        return [
            Port(c.id, str(n), c.site, c.model)
            for c in fleet.chargers.values()
            for n in range(1, c.connectors + 1)
        ]
    site: dict[str, str] = {}
    seen: set[tuple[str, str]] = set()
    for s in sessions:
        site.setdefault(s["charger"], s["site"])
        seen.add((s["charger"], s["connector"]))
    chargers = {c for c, _ in seen}
    for g in signals:
        if g.connector not in ("", "0"):
            seen.add((g.charger, g.connector))
        elif g.charger not in chargers:
            # Only charger-wide signals: assume one connector rather than drop it.
            seen.add((g.charger, "1"))
    return [Port(c, n, site.get(c, "")) for c, n in sorted(seen)]


def exclusions_from_json(items: Sequence[dict[str, Any]]) -> list[Exclusion]:
    """Exclusions as JSON objects (``charger``, ``connector``, ``start``, ``end``, ``cause``,
    ``by``, ``reason``); an unlisted cause raises ValueError."""
    return [
        Exclusion(
            str(i["charger"]),
            str(i.get("connector", "")),
            float(i["start"]),
            float(i["end"]),
            str(i["cause"]),
            str(i.get("by", "")),
            str(i.get("reason", "")),
        )
        for i in items
    ]


#: The keys of one uptime.jsonl line (docs/analytics.md, "Uptime").
JSONL_KEYS = (
    "charger_id",
    "connector_id",
    "window_start",
    "window_end",
    "uptime_pct",
    "outage_min",
    "excluded_min",
    "outages",
)


def write_uptime_jsonl(
    ledger: Ledger, path: Path, lo: float | None, hi: float | None, *, fleet: Fleet | None = None
) -> int:
    """One line per port over [lo, hi) (a replay's capture window); no window, no lines."""
    n = 0
    with path.open("w", encoding="utf-8") as out:
        if lo is None or hi is None or not hi > lo:
            return 0
        inputs = load_uptime_inputs(ledger, lo, hi, fleet=fleet)
        sig, exc = by_charger(inputs.signals), by_charger(inputs.exclusions)
        for port in inputs.ports:
            row = port_uptime(port, sig.get(port.charger, []), exc.get(port.charger, []), lo, hi)
            out.write(json.dumps({k: row[k] for k in JSONL_KEYS}) + "\n")
            n += 1
    return n


#: The gauges' short window, and NEVI's floor (23 CFR 680.116(b): above 97 %).
MONTH_S = 30 * 86_400.0
NEVI_FLOOR_PCT = 97.0


def uptime_gauges(ledger: Ledger, now: float, fleet: Fleet | None) -> dict[str, Any]:
    """``{"30d": {site: pct}, "12m": {site: pct}, "below": {site: n}}``; site "" = fleet."""
    inputs = load_uptime_inputs(ledger, year_before(now), now, fleet=fleet)
    exclusions = active_exclusions(ledger) + inputs.exclusions
    sig, exc = by_charger(inputs.signals), by_charger(exclusions)
    recent = [
        port_uptime(p, sig.get(p.charger, []), exc.get(p.charger, []), now - MONTH_S, now)
        for p in inputs.ports
    ]
    year = nevi_monthly(inputs.ports, inputs.signals, exclusions, [now])
    out: dict[str, Any] = {"30d": {}, "12m": {}, "below": {}}
    for key, rows in (("30d", recent), ("12m", year)):
        for r in rollup(rows, "site"):
            out[key][str(r["site"])] = r["uptime_pct"]
        for r in rollup(rows, "fleet"):
            out[key][""] = r["uptime_pct"]
    for r in year:
        site = str(r["site"])
        low = int(r["uptime_pct"] <= NEVI_FLOOR_PCT)
        out["below"][site] = out["below"].get(site, 0) + low
        out["below"][""] = out["below"].get("", 0) + low
    return out
