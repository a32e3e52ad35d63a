"""Port uptime as 23 CFR 680.116(b) counts it, with the evidence behind each outage (pure).

A *port* is a charger's connector. It is **down** while a down signal applies
to it: a charger-wide one (connector "" or "0": offline, a charger fault) or
one on that connector (Faulted, an error code, charging interrupted, failing to
deliver: analytics.delivery). Signals
that overlap form one outage, so a charger that is offline while a connector
is also faulted is counted once. Down time an operator tagged with one of the
causes 680.116(b)(3) lists for T_excluded (``EXCLUDED_CAUSES``) is **excluded**; the rest is up.

    μ = ((T − (T_outage − T_excluded)) / T) × 100

over any window (T its minutes), and NEVI's form: for each month, the previous
12 months with T = 525,600 minutes. Times are epoch seconds handed in.
"""

from __future__ import annotations

__all__ = [
    "EXCLUDED_CAUSES",
    "NEVI_T_MIN",
    "PORT_COLUMNS",
    "Exclusion",
    "Outage",
    "Port",
    "Signal",
    "alert_signals",
    "applies",
    "by_charger",
    "driver_uptime",
    "month_starts",
    "nevi_monthly",
    "outages",
    "port_table",
    "port_uptime",
    "report",
    "rollup",
    "status_signals",
    "timeline",
    "year_before",
]

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from itertools import pairwise
from typing import Any
from zoneinfo import ZoneInfo

from chargewatch.model.mrec import mrec_of, mrec_of_vendor_code

#: 23 CFR 680.116(b)(3), the term T_excluded: outage minutes "caused by the following
#: reasons outside the charging station operator's control, provided that [it] can
#: demonstrate that the charging port would otherwise be operational", listed in one
#: sentence (no sub-paragraphs), plus the hours outside the station's identified
#: hours of operation. The names are ours, one per reason, in the rule's order.
EXCLUDED_CAUSES: tuple[str, ...] = (
    "utility_interruption",  # electric utility service interruptions
    "vehicle_fault",  # failure to charge or meet the 680.106(d) power level due to the vehicle
    "scheduled_maintenance",  # scheduled maintenance
    "vandalism",  # vandalism
    "natural_disaster",  # natural disasters
    "outside_operating_hours",  # hours outside the identified hours of operation
)
#: 680.116(b)(3): T, the minutes of a (365-day) year.
NEVI_T_MIN = 525_600.0
#: Alerts (``fault`` label) during which a port does not sell energy.
DOWN_FAULTS = frozenset(
    {"charger_offline", "charging_interrupted", "over_temperature", "over_current"}
)
#: Error-code alerts at these severities stop a port; ``info`` ones (e.g. the vehicle's
#: EVCommunicationError) do not.
DOWN_SEVERITIES = frozenset({"warning", "critical"})
#: OCPP statuses that mean a port cannot be used.
DOWN_STATUSES = frozenset({"Faulted", "Unavailable"})


@dataclass(frozen=True, slots=True)
class Port:
    charger: str
    connector: str
    site: str = ""
    model: str = ""


@dataclass(frozen=True, slots=True)
class Signal:
    """Evidence that a port (or, connector "" / "0", a whole charger) was down."""

    charger: str
    connector: str
    start: float
    end: float
    kind: str  # offline | faulted | error_code | interrupted | unavailable | not_delivering | …
    source: str  # the alert name, or "status"
    error_code: str = ""
    mrec: str = ""
    session_id: str = ""  # a port failing to deliver: the session it failed
    note: str = ""  # what the evidence showed, e.g. the power readings


@dataclass(frozen=True, slots=True)
class Exclusion:
    """An operator's tag: down time of a port (connector "": every port) in [start, end)."""

    charger: str
    connector: str
    start: float
    end: float
    cause: str
    by: str = ""
    reason: str = ""

    def __post_init__(self) -> None:
        if self.cause not in EXCLUDED_CAUSES:
            raise ValueError(f"{self.cause!r} is not a cause 23 CFR 680.116(b)(3) lists")


@dataclass(slots=True)
class Outage:
    start: float
    end: float
    signals: list[Signal] = field(default_factory=list)
    excluded_s: float = 0.0
    exclusions: list[Exclusion] = field(default_factory=list)

    @property
    def cause(self) -> str:
        """The tagged cause when the whole outage is excluded, else the first signal's kind."""
        if self.exclusions and self.excluded_s >= self.end - self.start:
            return self.exclusions[0].cause
        return self.signals[0].kind if self.signals else "down"

    def evidence(self) -> dict[str, Any]:
        return {
            "first_signal": min(s.start for s in self.signals),
            "last_signal": max(s.end for s in self.signals),
            "alerts": sorted({s.source for s in self.signals}),
            "error_codes": sorted({s.error_code for s in self.signals if s.error_code}),
            "mrec": sorted({s.mrec for s in self.signals if s.mrec}),
            "sessions": sorted({s.session_id for s in self.signals if s.session_id}),
            "notes": [s.note for s in self.signals if s.note],
            "excluded_min": self.excluded_s / 60.0,
            "exclusions": [
                {"cause": e.cause, "by": e.by, "reason": e.reason, "start": e.start, "end": e.end}
                for e in self.exclusions
            ],
        }

    def to_json(self) -> dict[str, Any]:
        return {
            "start": self.start,
            "end": self.end,
            "cause": self.cause,
            "evidence": self.evidence(),
        }


def applies(charger: str, connector: str, port: Port) -> bool:
    """Whether a signal or tag on (charger, connector) concerns ``port``; "" / "0" is every port."""
    return charger == port.charger and connector in ("", "0", port.connector)


def by_charger(items: Iterable[Any]) -> dict[str, list[Any]]:
    """Signals or exclusions (anything with ``.charger``) grouped by charger: a port
    looks only at its charger's, instead of a fleet's year of them."""
    out: dict[str, list[Any]] = {}
    for x in items:
        out.setdefault(x.charger, []).append(x)
    return out


def alert_signals(transitions: Iterable[Mapping[str, Any]], until: float) -> list[Signal]:
    """Down signals from alert transitions (``at``, ``state``, ``alertname``, ``labels``,
    optionally ``evidence_start``).

    An instance is its alertname and labels, as Alertmanager identifies it; one
    still firing at ``until`` runs to ``until``. An offline outage starts at the
    firing's ``evidence_start`` (the charger's last sign of life; the alert fires
    only a heartbeat timeout later), else at the firing, and ends at the
    resolution's ``evidence_start`` (its return; the alert resolves only
    ``keep_firing_for`` later), else at the resolution. An error-code alert's
    outage ends at its resolution's ``evidence_start`` too: the status change
    that cleared it.
    """
    open_: dict[tuple[str, tuple[tuple[str, str], ...]], tuple[float, Mapping[str, Any]]] = {}
    out: list[Signal] = []
    for t in sorted(transitions, key=lambda t: float(t["at"])):
        labels: Mapping[str, Any] = t.get("labels") or {}
        kind = _down_kind(labels)
        if kind is None:
            continue
        key = (str(t["alertname"]), tuple(sorted((str(k), str(v)) for k, v in labels.items())))
        if t["state"] == "firing":
            open_.setdefault(key, (_first_evidence(t, kind), labels))
        elif key in open_:
            start, lab = open_.pop(key)
            out.append(_signal(key[0], lab, kind, start, _last_evidence(t, kind)))
    for (name, _), (start, lab) in open_.items():
        out.append(_signal(name, lab, _down_kind(lab) or "down", start, until))
    return [s for s in out if s.end > s.start]


def _first_evidence(t: Mapping[str, Any], kind: str) -> float:
    """When a firing's outage began: for an offline charger its last sign of life.
    Other alerts keep their firing time: their rules' ``for:`` debounces a condition
    under which the port may still have delivered."""
    at = float(t["at"])
    began = t.get("evidence_start")
    if kind != "offline" or began is None:
        return at
    return min(at, float(began))


def _last_evidence(t: Mapping[str, Any], kind: str) -> float:
    """When a resolution's outage ended (the resolution's ``evidence_start``):
    for an offline charger its return, before the rule's ``keep_firing_for``;
    for an error-code alert the status change that cleared the error, before
    the evaluation that noticed it."""
    at = float(t["at"])
    back = t.get("evidence_start")
    if kind not in ("offline", "error_code") or back is None:
        return at
    return min(at, float(back))


def _down_kind(labels: Mapping[str, Any]) -> str | None:
    fault = str(labels.get("fault", ""))
    if fault in DOWN_FAULTS:
        return {"charger_offline": "offline", "charging_interrupted": "interrupted"}.get(
            fault, fault
        )
    if labels.get("error_code") and str(labels.get("severity", "")) in DOWN_SEVERITIES:
        return "error_code"
    return None


def _signal(name: str, labels: Mapping[str, Any], kind: str, a: float, b: float) -> Signal:
    return Signal(
        charger=str(labels.get("charger", "")),
        connector=str(labels.get("connector", "")),
        start=a,
        end=b,
        kind=kind,
        source=name,
        error_code=str(labels.get("error_code", "")),
        # Alerts recorded before rules carried the label: the code says which.
        mrec=str(
            labels.get("mrec")
            or (mrec_of(code) if (code := str(labels.get("error_code", ""))) else "")
        ),
    )


def status_signals(
    changes: Iterable[tuple[float, str, str, str]],
    until: float,
    error_codes: Mapping[Any, str | tuple[str, str]] | None = None,
) -> list[Signal]:
    """Down signals from status changes ``(at, charger, connector, status)``.

    A Faulted or Unavailable port stays down until its next status.
    ``error_codes`` maps (at, charger, connector) to the code reported with it, or
    to (code, MREC code the charger stated) as the ledger's port_status keeps them.
    """
    current: dict[tuple[str, str], tuple[float, str, str | tuple[str, str]]] = {}
    out: list[Signal] = []
    codes = error_codes or {}
    for at, charger, connector, status in sorted(changes):
        key = (charger, connector)
        if key in current:
            start, was, code = current.pop(key)
            out.append(_status_signal(charger, connector, start, at, was, code))
        if status in DOWN_STATUSES:
            current[key] = (at, status, codes.get((at, charger, connector), ""))
    for (charger, connector), (start, was, code) in current.items():
        out.append(_status_signal(charger, connector, start, until, was, code))
    return [s for s in out if s.end > s.start]


def _status_signal(
    charger: str, connector: str, a: float, b: float, was: str, code: str | tuple[str, str]
) -> Signal:
    """A Faulted/Unavailable span; its MREC: the one the charger stated, else the
    ChargeX pairing of the OCPP 1.6 code (or a CX0nn sent as the code itself)."""
    first, stated = code if isinstance(code, tuple) else (code, "")
    error = "" if first in ("", "NoError") else first
    mrec = mrec_of_vendor_code(stated) or (
        (mrec_of_vendor_code(error) or mrec_of(error)) if error else ""
    )
    return Signal(charger, connector, a, b, was.lower(), "status", error, mrec)


def outages(
    port: Port, signals: Iterable[Signal], exclusions: Iterable[Exclusion], lo: float, hi: float
) -> list[Outage]:
    """The port's merged outages clipped to [lo, hi), each with its excluded seconds."""
    mine = sorted(
        (
            s
            for s in signals
            if applies(s.charger, s.connector, port) and s.end > lo and s.start < hi
        ),
        key=lambda s: s.start,
    )
    merged: list[Outage] = []
    for s in mine:
        a, b = max(s.start, lo), min(s.end, hi)
        if merged and a <= merged[-1].end:
            merged[-1].end = max(merged[-1].end, b)
            merged[-1].signals.append(s)
        else:
            merged.append(Outage(a, b, [s]))
    tags = sorted(
        (e for e in exclusions if applies(e.charger, e.connector, port)), key=lambda e: e.start
    )
    for o in merged:
        hits = [e for e in tags if e.end > o.start and e.start < o.end]
        o.exclusions = hits
        o.excluded_s = _covered(o.start, o.end, [(e.start, e.end) for e in hits])
    return merged


def _covered(a: float, b: float, spans: Sequence[tuple[float, float]]) -> float:
    """Seconds of [a, b) inside the union of ``spans`` (sorted by start)."""
    total, reach = 0.0, a
    for s0, e0 in spans:
        s, e = max(s0, reach), min(e0, b)
        if e > s:
            total += e - s
            reach = e
    return total


def port_uptime(
    port: Port,
    signals: Sequence[Signal],
    exclusions: Sequence[Exclusion],
    lo: float,
    hi: float,
    *,
    t_min: float | None = None,
) -> dict[str, Any]:
    """μ for one port over [lo, hi); ``t_min`` overrides T (NEVI's 525,600)."""
    found = outages(port, signals, exclusions, lo, hi)
    outage_min = sum(o.end - o.start for o in found) / 60.0
    excluded_min = sum(o.excluded_s for o in found) / 60.0
    t = (hi - lo) / 60.0 if t_min is None else t_min
    return {
        "charger_id": port.charger,
        "connector_id": port.connector,
        "site": port.site,
        "model": port.model,
        "window_start": lo,
        "window_end": hi,
        "t_min": t,
        "uptime_pct": (t - (outage_min - excluded_min)) / t * 100.0,
        "outage_min": outage_min,
        "excluded_min": excluded_min,
        "failures_by_mrec": dict(
            Counter(m for o in found for m in {s.mrec for s in o.signals if s.mrec})
        ),
        "outages": [o.to_json() for o in found],
    }


def timeline(
    port: Port, signals: Sequence[Signal], exclusions: Sequence[Exclusion], lo: float, hi: float
) -> list[tuple[float, float, str]]:
    """[lo, hi) as consecutive (start, end, up|down|excluded) segments."""
    cuts = {lo, hi}
    found = outages(port, signals, exclusions, lo, hi)
    for o in found:
        cuts |= {o.start, o.end} | {
            min(max(t, o.start), o.end) for e in o.exclusions for t in (e.start, e.end)
        }
    points = sorted(cuts)
    out: list[tuple[float, float, str]] = []
    for a, b in pairwise(points):
        mid = (a + b) / 2.0
        state = "up"
        for o in found:
            if o.start <= mid < o.end:
                excluded = any(e.start <= mid < e.end for e in o.exclusions)
                state = "excluded" if excluded else "down"
        if out and out[-1][2] == state:
            out[-1] = (out[-1][0], b, state)
        else:
            out.append((a, b, state))
    return out


def month_starts(lo: float, hi: float, zone: str = "UTC") -> list[float]:
    """Epoch seconds of each local month start in [lo, hi], and the one before ``lo``."""
    tz = ZoneInfo(zone)
    d = datetime.fromtimestamp(lo, tz).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    out = []
    while d.timestamp() <= hi:
        out.append(d.timestamp())
        d = d.replace(year=d.year + d.month // 12, month=d.month % 12 + 1)
    return out


def year_before(end: float, zone: str = "UTC") -> float:
    """The same local time a calendar year before ``end`` (NEVI's "previous twelve months")."""
    d = datetime.fromtimestamp(end, ZoneInfo(zone))
    if (d.month, d.day) == (2, 29):
        d = d.replace(day=28)  # the year before has no 29 February
    return d.replace(year=d.year - 1).timestamp()


def nevi_monthly(
    ports: Sequence[Port],
    signals: Sequence[Signal],
    exclusions: Sequence[Exclusion],
    month_ends: Sequence[float],
    zone: str = "UTC",
) -> list[dict[str, Any]]:
    """Per port and month end: μ over the previous 12 (local) months, T = 525,600 min."""
    out = []
    sig, exc = by_charger(signals), by_charger(exclusions)
    for end in month_ends:
        start = year_before(end, zone)
        for p in ports:
            mine, tags = sig.get(p.charger, []), exc.get(p.charger, [])
            row = port_uptime(p, mine, tags, start, end, t_min=NEVI_T_MIN)
            row.pop("outages")
            out.append(row)
    return out


def rollup(rows: Sequence[Mapping[str, Any]], by: str) -> list[dict[str, Any]]:
    """Ports' μ combined per ``site`` | ``model`` | ``fleet``: Σ(T − down) / ΣT."""
    groups: dict[str, list[Mapping[str, Any]]] = {}
    for r in rows:
        groups.setdefault("fleet" if by == "fleet" else str(r.get(by, "")), []).append(r)
    out = []
    for g, rs in sorted(groups.items()):
        t = sum(float(r["t_min"]) for r in rs)
        down = sum(float(r["outage_min"]) - float(r["excluded_min"]) for r in rs)
        out.append(
            {
                by: g,
                "ports": len(rs),
                "uptime_pct": (t - down) / t * 100.0 if t else None,
                "outage_min": sum(float(r["outage_min"]) for r in rs),
                "excluded_min": sum(float(r["excluded_min"]) for r in rs),
            }
        )
    return out


def driver_uptime(
    sessions: Iterable[Mapping[str, Any]],
    failed_starts: Iterable[Mapping[str, Any]],
    *,
    min_energy_wh: float = 50.0,
) -> dict[str, Any]:
    """What drivers saw: attempts = sessions + failed starts; a success delivered
    at least ``min_energy_wh``."""
    n = delivered = 0
    for s in sessions:
        n += 1
        delivered += float(s.get("energy_wh") or 0.0) >= min_energy_wh
    failed = sum(1 for _ in failed_starts)
    attempts = n + failed
    return {
        "attempts": attempts,
        "sessions": n,
        "failed_starts": failed,
        "no_energy": n - delivered,
        "success_pct": delivered / attempts * 100.0 if attempts else None,
    }


def report(
    ports: Sequence[Port],
    signals: Sequence[Signal],
    exclusions: Sequence[Exclusion],
    sessions: Sequence[Mapping[str, Any]],
    failed_starts: Sequence[Mapping[str, Any]],
    lo: float,
    hi: float,
) -> dict[str, Any]:
    """Per port μ over [lo, hi) with its outages and what drivers saw; rollups; MREC counts.

    ``sessions`` and ``failed_starts`` carry ``charger`` and ``connector``.
    """
    rows = []
    mrec: Counter[str] = Counter()
    sig, exc = by_charger(signals), by_charger(exclusions)
    ses, fs = _dicts_by_charger(sessions), _dicts_by_charger(failed_starts)
    for p in ports:
        row = port_uptime(p, sig.get(p.charger, []), exc.get(p.charger, []), lo, hi)
        mine = [s for s in ses.get(p.charger, []) if applies(p.charger, str(s["connector"]), p)]
        tried = [f for f in fs.get(p.charger, []) if applies(p.charger, str(f["connector"]), p)]
        row["driver"] = driver_uptime(mine, tried)
        mrec.update(row["failures_by_mrec"])
        rows.append(row)
    return {
        "window": {"from": lo, "to": hi},
        "ports": rows,
        "sites": rollup(rows, "site"),
        "models": rollup(rows, "model"),
        "fleet": rollup(rows, "fleet"),
        "failures_by_mrec": dict(mrec.most_common()),
    }


def _dicts_by_charger(items: Iterable[Mapping[str, Any]]) -> dict[str, list[Mapping[str, Any]]]:
    out: dict[str, list[Mapping[str, Any]]] = {}
    for x in items:
        out.setdefault(str(x["charger"]), []).append(x)
    return out


#: The columns of :func:`port_table`.
PORT_COLUMNS = (
    "charger_id",
    "connector_id",
    "site",
    "model",
    "window_start",
    "window_end",
    "uptime_pct",
    "outage_min",
    "excluded_min",
    "outages",
    "driver_success_pct",
    "failed_starts",
    "no_energy_sessions",
    "failures_by_mrec",
)


def port_table(result: Mapping[str, Any]) -> tuple[tuple[str, ...], list[tuple[Any, ...]]]:
    """A :func:`report` as one row per port (CSV)."""
    rows = [
        (
            r["charger_id"],
            r["connector_id"],
            r["site"],
            r["model"],
            r["window_start"],
            r["window_end"],
            round(r["uptime_pct"], 4),
            round(r["outage_min"], 2),
            round(r["excluded_min"], 2),
            len(r["outages"]),
            "" if r["driver"]["success_pct"] is None else round(r["driver"]["success_pct"], 2),
            r["driver"]["failed_starts"],
            r["driver"]["no_energy"],
            ";".join(f"{k}={v}" for k, v in sorted(r["failures_by_mrec"].items())),
        )
        for r in result["ports"]
    ]
    return PORT_COLUMNS, rows
