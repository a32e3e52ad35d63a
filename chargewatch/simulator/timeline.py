"""Discrete messages of a simulation: status, transactions, boot, online flag.

Built once from the plan (a few per session), then fault effects are laid over
them: error codes and flapping add statuses, an offline charger goes quiet and
queues its transaction messages, a skewed clock moves ``ts``. Heartbeats are
regular, so the simulation generates them per chunk instead.
"""

from __future__ import annotations

__all__ = ["Ev", "build_events", "down_intervals"]

import bisect
import math
from dataclasses import dataclass

import numpy as np

from chargewatch.simulator.fault_models import ERROR_CODE_FAULTS
from chargewatch.simulator.plan import Plan, Session

_VENDOR_CODES = {
    "GroundFailure": "RCD-TRIP",
    "OverCurrentFailure": "OC-01",
    "HighTemperature": "OT-85C",
    "PowerMeterFailure": "MTR-COM",
    "EVCommunicationError": "CP-STATE-E",
}


@dataclass(slots=True)
class Ev:
    t: float  # true time the charger raised it
    recv: float  # when the broker has it
    ts: float  # the charger's clock
    kind: str  # status | tx_start | tx_update | tx_stop | online | boot
    charger: int
    connector: int  # 0: the charger as a whole
    row: int = -1  # connector row, -1 for charger-wide
    status: str = ""
    error_code: str = "NoError"
    info: str = ""
    vendor_error: str = ""
    session: Session | None = None
    online: bool = True
    meter_wh: float = math.nan  # the reported register at ``t``, filled by the engine pass
    seq: int = 0


def down_intervals(plan: Plan) -> list[tuple[int, float, float]]:
    """(charger index, start, end) while a charger sends nothing (offline, rebooting)."""
    idx = {c.id: i for i, c in enumerate(plan.chargers)}
    out = [(idx[f.charger], f.start, f.end) for f in plan.faults if f.name == "charger_offline"]
    out += [(idx[e.charger], e.start, e.end) for e in plan.normals if e.name == "reboot"]
    return out


def build_events(plan: Plan, latency: np.ndarray) -> list[Ev]:
    cfg = plan.config
    cidx = {c.id: i for i, c in enumerate(plan.chargers)}
    rows_of: dict[int, list[int]] = {}
    for c in plan.conns:
        rows_of.setdefault(c.charger_idx, []).append(c.idx)
    evs: list[Ev] = []

    def add(t: float, kind: str, ci: int, row: int = -1, **kw: object) -> Ev:
        conn = plan.conns[row].connector if row >= 0 else 0
        e = Ev(t, t + float(latency[ci]), t, kind, ci, conn, row, **kw)  # type: ignore[arg-type]
        evs.append(e)
        return e

    # The status timeline each connector would report without faults.
    base: dict[int, list[tuple[float, str]]] = {
        c.idx: [(-math.inf, "Available")] for c in plan.conns
    }
    for s in plan.sessions:
        base[s.conn.idx].extend(s.statuses)
    for v in base.values():
        v.sort(key=lambda x: x[0])
    times = {r: [t for t, _ in v] for r, v in base.items()}

    def status_at(row: int, t: float) -> str:
        i = bisect.bisect_right(times[row], t) - 1
        return base[row][max(i, 0)][1]

    for ci in range(len(plan.chargers)):
        add(cfg.start, "online", ci, online=True)
        add(cfg.start + 0.5, "boot", ci)
        for row in rows_of[ci]:
            add(cfg.start + 1.0, "status", ci, row, status=status_at(row, cfg.start + 1.0))
    for s in plan.sessions:
        ci = s.conn.charger_idx
        for t, st in s.statuses:
            add(t, "status", ci, s.conn.idx, status=st)
        add(s.start, "tx_start", ci, s.conn.idx, session=s)
        if cfg.tx_update_interval > 0:
            t = s.start + cfg.tx_update_interval
            while t < s.stop:
                add(t, "tx_update", ci, s.conn.idx, session=s)
                t += cfg.tx_update_interval
        add(s.stop, "tx_stop", ci, s.conn.idx, session=s)
    for ne in plan.normals:
        ci = cidx[ne.charger]
        if ne.name == "boot_faulted_blip":
            for row in rows_of[ci]:
                add(ne.start, "status", ci, row, status="Faulted")  # errorCode NoError
                add(ne.end, "status", ci, row, status=status_at(row, ne.end))
        if ne.name != "reboot":
            continue
        add(ne.start, "online", ci, online=False)
        add(ne.end, "online", ci, online=True)
        add(ne.end + 0.5, "boot", ci)
        for row in rows_of[ci]:
            add(ne.end + 1.0, "status", ci, row, status=status_at(row, ne.end))

    for f in plan.faults:
        ci = cidx[f.charger]
        if f.name in ERROR_CODE_FAULTS:
            row = f.conns[0]
            evs = [
                e
                for e in evs
                if not (e.row == row and e.kind == "status" and f.start < e.t <= f.end)
            ]
            add(
                f.start,
                "status",
                ci,
                row,
                status="Faulted",
                error_code=f.name,
                info=f"{f.name} detected",
                vendor_error=_VENDOR_CODES.get(f.name, "E-" + f.name[:6].upper()),
            )
            add(f.end, "status", ci, row, status=status_at(row, f.end))
        elif f.name == "status_flapping":
            row = f.conns[0]
            period = f.params.get("period_s", 10.0)
            t = f.start
            j = 0
            while t < f.end:
                true = status_at(row, t)
                spurious = "SuspendedEVSE" if true in ("Charging", "SuspendedEV") else "Unavailable"
                add(t, "status", ci, row, status=spurious if j % 2 == 0 else true)
                t += period
                j += 1
            add(f.end, "status", ci, row, status=status_at(row, f.end))

    for f in plan.faults:
        ci = cidx[f.charger]
        if f.name == "charger_offline":
            kept: list[Ev] = []
            for e in evs:
                if e.charger == ci and f.start <= e.t < f.end:
                    if e.kind in ("tx_start", "tx_update", "tx_stop"):
                        # queued by the charger, delivered after reconnecting
                        e.recv = f.end + 1.0 + (e.t - f.start) / (f.end - f.start)
                        kept.append(e)
                    continue
                kept.append(e)
            evs = kept
            add(f.start, "online", ci, online=False)
            add(f.end, "online", ci, online=True)
            for row in rows_of[ci]:
                add(f.end + 0.5, "status", ci, row, status=status_at(row, f.end))
        elif f.name == "clock_skew":
            for e in evs:
                if e.charger == ci and f.start < e.t <= f.end:
                    e.ts = e.t + f.params.get("offset_s", 900.0)
    evs.sort(key=lambda e: (e.recv, e.t))
    for i, e in enumerate(evs):
        e.seq = i
    return evs
