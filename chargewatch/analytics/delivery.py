"""Ports that say Charging but deliver (almost) nothing: "failing to deliver" (pure).

23 CFR 680.116(b)(1) counts a port *up* only when it "successfully dispenses
electricity" at the minimum power level. A port is down, kind
``not_delivering``, while both hold for longer than its grace:

* its status is ``Charging`` or ``SuspendedEVSE`` (the station holds the energy
  back). ``SuspendedEV`` is not a failure of the station: the vehicle declines
  the power, and the rule's own T_excluded list names failures "due to the
  fault of the vehicle" as outside the operator's control;
* a charging period of one of its sessions averages less than the minimum
  power (energy / duration; the session engine splits periods where the power
  crosses its 50 W threshold, so an idle stretch is a period of its own).

The grace decides *whether* it is a failure (ramp-up after plug-in, a short
pause); once it is, the outage runs from when the power dropped, like an
offline outage from the last sign of life. Evidence: the session id and the
period's average and peak power.
"""

from __future__ import annotations

__all__ = ["DELIVERY_STATUSES", "delivery_signals"]

from bisect import bisect_right
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from chargewatch.analytics.uptime import Signal

#: Statuses in which the station should be delivering.
DELIVERY_STATUSES = frozenset({"Charging", "SuspendedEVSE"})

Span = tuple[float, float]
Key = tuple[str, str]


def delivery_signals(
    periods: Iterable[Mapping[str, Any]],
    changes: Iterable[tuple[float, str, str, str]],
    until: float,
    policy: Callable[[str], tuple[float, float]],
) -> list[Signal]:
    """``periods``: dicts with ``session_id, charger, connector, start, end, energy_wh,
    max_power_w``; ``changes``: status changes ``(at, charger, connector, status)``;
    ``policy(charger)``: its (min_power_w, grace_s)."""
    in_charge = _status_spans(changes, until)
    low: dict[Key, list[tuple[float, float, Mapping[str, Any]]]] = {}
    for p in periods:
        key = (str(p["charger"]), str(p["connector"]))
        a, b = float(p["start"]), float(p["end"])
        if b <= a or key not in in_charge:
            continue
        if _average_w(p) < policy(key[0])[0]:
            low.setdefault(key, []).append((a, b, p))
    out: list[Signal] = []
    for key, pieces in low.items():
        grace = policy(key[0])[1]
        for a, b, ps in _runs(_intersect(sorted(pieces, key=lambda x: x[0]), in_charge[key])):
            if b - a > grace:
                out.append(_signal(key, a, b, ps, policy(key[0])[0]))
    return out


def _average_w(p: Mapping[str, Any]) -> float:
    return float(p["energy_wh"] or 0.0) * 3600.0 / (float(p["end"]) - float(p["start"]))


def _status_spans(
    changes: Iterable[tuple[float, str, str, str]], until: float
) -> dict[Key, list[Span]]:
    """Per port, when its status was one of DELIVERY_STATUSES (sorted, disjoint)."""
    since: dict[Key, float] = {}
    out: dict[Key, list[Span]] = {}
    for at, charger, connector, status in sorted(changes):
        key = (charger, connector)
        if key in since and status not in DELIVERY_STATUSES:
            out.setdefault(key, []).append((since.pop(key), at))
        elif key not in since and status in DELIVERY_STATUSES:
            since[key] = at
    for key, at in since.items():
        out.setdefault(key, []).append((at, until))
    return out


def _intersect(
    pieces: Sequence[tuple[float, float, Mapping[str, Any]]], spans: Sequence[Span]
) -> list[tuple[float, float, Mapping[str, Any]]]:
    """Each piece cut to the (sorted, disjoint) spans; a bisection finds the first
    span a piece can meet: a year of a port's sessions is thousands of each."""
    ends = [d for _, d in spans]
    out = []
    for a, b, p in pieces:
        i = bisect_right(ends, a)
        while i < len(spans) and spans[i][0] < b:
            lo, hi = max(a, spans[i][0]), min(b, spans[i][1])
            if hi > lo:
                out.append((lo, hi, p))
            i += 1
    return sorted(out, key=lambda x: x[0])


def _runs(
    pieces: Sequence[tuple[float, float, Mapping[str, Any]]],
) -> list[tuple[float, float, list[Mapping[str, Any]]]]:
    """Touching pieces joined: consecutive low periods are one stretch of no delivery."""
    out: list[tuple[float, float, list[Mapping[str, Any]]]] = []
    for a, b, p in pieces:
        if out and a <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], b), [*out[-1][2], p])
        else:
            out.append((a, b, [p]))
    return out


def _signal(
    key: Key, a: float, b: float, periods: Sequence[Mapping[str, Any]], min_w: float
) -> Signal:
    first = periods[0]
    peaks = [float(p["max_power_w"]) for p in periods if p.get("max_power_w") is not None]
    note = (
        f"in Charging {b - a:.0f} s below {min_w:.0f} W: "
        + ", ".join(f"{_average_w(p):.0f} W average" for p in periods)
        + (f", peak {max(peaks):.0f} W" if peaks else "")
    )
    return Signal(
        key[0],
        key[1],
        a,
        b,
        "not_delivering",
        "delivery",
        session_id=str(first["session_id"]),
        note=note,
    )
