"""Reliability: failed sessions, availability, MTBF and MTTR from the fault history (pure).

The fault history is the alert transitions of alerts.jsonl (``at``, ``state``
firing|resolved, ``alertname``, ``labels`` with charger, connector, site,
``fault`` or ``error_code``, ``severity``). An alert instance is identified by
its alertname and labels, as Alertmanager does. A charger is *down* while any
alert with a fault/error_code label and a severity in ``down_severities`` fires
on it (any connector): a warning such as phase imbalance degrades a charger
but does not stop it selling energy. An alert still firing at the window's
end counts as down until the end. Only faults of a severity in
``fault_severities`` (warning, critical) fail a session or count as faults: an
info alert (a residential car left plugged in) is information, never a failure;
they are counted apart (``info_alerts``).

* availability = 1 − down time / window;
* MTTR = down time / outages (an outage is one stretch of overlapping alerts);
* MTBF = up time / outages that began inside the window (None: no failure).
"""

from __future__ import annotations

__all__ = ["fault_intervals", "reliability"]

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from chargewatch.analytics.session_frame import F64, Level, SessionFrame, Window, _epoch
from chargewatch.analytics.usage import starting_in

#: A session that delivered less than this did not charge (the Norwegian data's 10 Wh plug-ins).
MIN_ENERGY_WH = 50.0


def fault_intervals(
    transitions: Iterable[Mapping[str, Any]], window: Window
) -> list[dict[str, Any]]:
    """Pair firing/resolved transitions into intervals, clipped to ``window``.

    Only alerts labelled with ``fault`` or ``error_code`` are faults. Repeated
    firings of an already firing instance keep the first start.
    """
    open_: dict[tuple[str, tuple[tuple[str, str], ...]], tuple[float, Mapping[str, str]]] = {}
    out: list[dict[str, Any]] = []
    for t in sorted(transitions, key=lambda t: _epoch(t["at"])):
        labels: Mapping[str, str] = t.get("labels") or {}
        if "fault" not in labels and "error_code" not in labels:
            continue
        key = (str(t["alertname"]), tuple(sorted((str(k), str(v)) for k, v in labels.items())))
        at = _epoch(t["at"])
        if t["state"] == "firing":
            open_.setdefault(key, (at, labels))
        elif key in open_:
            start, lab = open_.pop(key)
            out.append(_interval(key[0], lab, start, at, window, resolved=True))
    for (name, _), (start, lab) in open_.items():
        out.append(_interval(name, lab, start, window.hi, window, resolved=False))
    return [i for i in out if i["end"] > i["start"]]


def _interval(
    name: str, labels: Mapping[str, str], a: float, b: float, window: Window, *, resolved: bool
) -> dict[str, Any]:
    return {
        "alertname": name,
        "charger": labels.get("charger", ""),
        "connector": labels.get("connector", ""),
        "site": labels.get("site", ""),
        "fault": labels.get("fault") or labels.get("error_code", ""),
        "severity": labels.get("severity", ""),
        "began": a,
        "start": max(a, window.lo),
        "end": min(b, window.hi),
        "resolved": resolved,
    }


def _union(a: F64, b: F64) -> tuple[F64, F64]:
    """Merge overlapping [a, b) intervals (vectorised)."""
    if len(a) == 0:
        return a, b
    o = np.argsort(a)
    a, b = a[o], b[o]
    reach = np.maximum.accumulate(b)
    new = np.concatenate([[True], a[1:] > reach[:-1]])
    idx = np.flatnonzero(new)
    ends = np.concatenate([reach[idx[1:] - 1], [reach[-1]]])
    return a[idx], ends


#: The severities that make a fault: anything else (info, none) is not a failure.
FAULT_SEVERITIES = ("warning", "critical")


def _failed(frame: SessionFrame, intervals: Sequence[Mapping[str, Any]]) -> np.ndarray[Any, Any]:
    """Per session: no energy, or a fault on its charger fired while it was plugged in."""
    failed = frame.energy_wh < MIN_ENERGY_WH
    by_charger: dict[str, list[tuple[float, float, str]]] = {}
    for i in intervals:
        by_charger.setdefault(i["charger"], []).append((i["began"], i["end"], i["connector"]))
    for charger, ivs in by_charger.items():
        m = np.flatnonzero(frame.charger == charger)
        for began, _, conn in ivs:
            hit = (frame.start[m] <= began) & (began <= frame.stop[m])
            if conn not in ("", "0"):
                hit &= frame.connector[m].astype(str) == conn
            failed[m[hit]] = True
    return failed


def reliability(
    frame: SessionFrame,
    transitions: Iterable[Mapping[str, Any]] | None,
    window: Window,
    *,
    level: Level = "charger",
    down_severities: tuple[str, ...] = ("critical",),
    fault_severities: tuple[str, ...] = FAULT_SEVERITIES,
    worst: int = 10,
) -> dict[str, Any]:
    """Failed-session rate per group, and availability/MTBF/MTTR per charger.

    ``transitions`` None means no fault history was recorded: availability is
    then reported as unknown (None), never as 100 %.
    """
    every = fault_intervals(transitions or (), window)
    intervals = [i for i in every if i["severity"] in fault_severities]
    info = Counter(i["charger"] for i in every if i["severity"] not in fault_severities)
    scoped = frame.select(starting_in(frame, window))
    failed = _failed(scoped, intervals)
    groups = scoped.groups(level)
    n = groups.count()
    nf = groups.count(failed)
    n_empty = groups.count(scoped.energy_wh < MIN_ENERGY_WH)
    sessions = [
        {
            "group": g,
            "sessions": int(k),
            "failed": int(f),
            "failed_rate": float(f) / k if k else None,
            "no_energy": int(e),
        }
        for g, k, f, e in zip(groups.labels, n.tolist(), nf.tolist(), n_empty.tolist(), strict=True)
    ]
    chargers: list[dict[str, Any]] = []
    if transitions is not None:
        site_of = dict(zip(scoped.charger.tolist(), scoped.site.tolist(), strict=True))
        by_charger: dict[str, list[dict[str, Any]]] = {}
        for i in intervals:
            by_charger.setdefault(i["charger"], []).append(i)
        known = set(site_of) | set(by_charger) | set(info)
        alert_site = {i["charger"]: i["site"] for i in every if i["site"]}
        for charger in sorted(known):
            mine = by_charger.get(charger, [])
            down = [i for i in mine if i["severity"] in down_severities]
            a, b = _union(
                np.array([i["start"] for i in down], dtype=np.float64),
                np.array([i["end"] for i in down], dtype=np.float64),
            )
            down_s = float((b - a).sum())
            outages = len(a)
            began_inside = sum(1 for x in a.tolist() if x > window.lo)
            up_s = window.seconds - down_s
            kinds = Counter(i["fault"] for i in mine)
            site = site_of.get(charger) or alert_site.get(charger, "")
            chargers.append(
                {
                    "charger": charger,
                    "site": site,
                    "availability": 1.0 - down_s / window.seconds,
                    "down_hours": down_s / 3600.0,
                    "outages": outages,
                    "mtbf_hours": up_s / began_inside / 3600.0 if began_inside else None,
                    "mttr_hours": down_s / outages / 3600.0 if outages else None,
                    "faults": sum(kinds.values()),
                    "faults_by_kind": dict(kinds.most_common()),
                    "info_alerts": info.get(charger, 0),
                }
            )
    worst_list = sorted(chargers, key=lambda c: (c["availability"], -c["faults"]))[:worst]
    return {
        "window": {"from": window.lo, "to": window.hi},
        "fault_history": transitions is not None,
        "min_energy_wh": MIN_ENERGY_WH,
        "sessions": sessions,
        "chargers": chargers,
        "worst": worst_list,
        "fault_intervals": len(intervals),
        "fault_severities": list(fault_severities),
    }
