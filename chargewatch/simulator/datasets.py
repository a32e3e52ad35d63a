"""Real session datasets turned into charger telemetry with ground truth.

Each recorded session (ACN-Data JPL, the Norwegian residential set) becomes a
*plan*: plug-in and unplug times, a charge curve (ramp, flat, linear taper)
that delivers exactly the recorded energy and ends at ``doneChargingTime``
where the dataset gives it, and a lifetime register per charger. A plan
renders to the engine's inputs (events and meter rows, as the OCPP decoder
produces them) or to an OCPP 1.6 capture (JSON Lines of forwarded frames).

Faults can be injected per session: register resets, missing registers,
offline periods delivered late, a missing StopTransaction, a register in
kWh labelled Wh. The truth is unaffected by faults.
"""

from __future__ import annotations

__all__ = [
    "FAULTS",
    "Plan",
    "Stream",
    "acn_plans",
    "norway_plans",
    "ocpp16_capture",
    "render",
]

import json
import random
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from chargewatch.collector.batch import FIELD_INDEX, N_FIELDS, MeterBatch
from chargewatch.collector.events import Event, Source, StatusEvent, TransactionEvent
from chargewatch.fleet import ConnectorIndex

FAULTS: tuple[str, ...] = (
    "register_reset",  # the charger reboots mid-session; its register restarts at 0
    "no_register",  # no register at all: meterStart = meterStop = 0, power only
    "register_dropout",  # the register is missing from half the periodic samples
    "late_offline",  # offline for a while; the queued samples arrive 15 min after newer ones
    "missing_stop",  # StopTransaction never arrives (Available does)
    "kwh_as_wh",  # every register value in kWh, labelled Wh
)


@dataclass(frozen=True, slots=True)
class Plan:
    charger: str
    connector: int
    transaction_id: str
    plug: float  # epoch s: plug-in = transaction start
    unplug: float  # transaction stop
    charge_start: float
    charge_end: float
    energy_wh: float  # truth
    power_w: float  # flat power of the curve
    ramp_s: float
    taper_s: float
    meter_base_wh: float  # register at plug-in
    faults: tuple[str, ...] = ()

    def power(self, t: NDArray[np.float64]) -> NDArray[np.float64]:
        a, b = self.charge_start, self.charge_end
        up = np.clip((t - a) / self.ramp_s, 0.0, 1.0) if self.ramp_s > 0 else (t >= a) * 1.0
        down = np.clip((b - t) / self.taper_s, 0.0, 1.0) if self.taper_s > 0 else (t <= b) * 1.0
        return self.power_w * np.minimum(up, down) * ((t >= a) & (t <= b))

    def energy(self, t: NDArray[np.float64]) -> NDArray[np.float64]:
        """Exact integral of :meth:`power` from plug-in to ``t`` (Wh)."""
        a, b, r, d, p = self.charge_start, self.charge_end, self.ramp_s, self.taper_s, self.power_w
        x = np.clip(t, a, b) - a
        dur = b - a
        ramp = np.where(x < r, 0.5 * x * x / r if r > 0 else 0.0, 0.5 * r + (x - r))
        y = np.clip(x - (dur - d), 0.0, d)  # time into the taper
        taper_loss = 0.5 * y * y / d if d > 0 else 0.0
        return p * (ramp - taper_loss) / 3600.0

    def idle_s(self, threshold_w: float) -> float:
        """Truth: time connected with power at or below ``threshold_w``."""
        frac = min(threshold_w / self.power_w, 1.0) if self.power_w > 0 else 1.0
        charging = (self.charge_end - self.charge_start) - frac * (self.ramp_s + self.taper_s)
        return (self.unplug - self.plug) - max(charging, 0.0)


def _plan(
    charger: str,
    tx: str,
    *,
    plug: float,
    unplug: float,
    done: float | None,
    energy_wh: float,
    base: float,
    nominal_w: float,
) -> Plan:
    start = min(plug + 30.0, plug + (unplug - plug) / 4)
    if done is not None and start < done <= unplug:
        end = done
    else:
        end = min(unplug, start + energy_wh / nominal_w * 3600.0 + 600.0)
    dur = max(end - start, 1.0)
    ramp = min(60.0, dur / 4)
    taper = min(900.0, dur / 3)
    eff = dur - 0.5 * ramp - 0.5 * taper
    power = energy_wh * 3600.0 / eff if energy_wh > 0 else 0.0
    return Plan(
        charger, 1, tx, plug, unplug, start, start + dur, energy_wh, power, ramp, taper, base
    )


def acn_plans(path: str | Path) -> list[Plan]:
    rows = json.loads(Path(path).read_text())
    rows.sort(key=lambda r: parsedate_to_datetime(r["connectionTime"]).timestamp())
    plans: list[Plan] = []
    registers: dict[str, float] = {}
    for i, r in enumerate(rows):
        plug = parsedate_to_datetime(r["connectionTime"]).timestamp()
        unplug = parsedate_to_datetime(r["disconnectTime"]).timestamp()
        done = (
            parsedate_to_datetime(r["doneChargingTime"]).timestamp()
            if r.get("doneChargingTime")
            else None
        )
        wh = round(float(r["kWhDelivered"]) * 1000.0)
        ch = "JPL-" + r["stationID"]
        base = registers.get(ch, 1_000_000.0 + 1000.0 * (i % 97))
        plans.append(
            _plan(
                ch,
                str(i + 1),
                plug=plug,
                unplug=unplug,
                done=done,
                energy_wh=wh,
                base=base,
                nominal_w=6600.0,
            )
        )
        registers[ch] = base + wh
    return _no_overlap(plans)


def norway_plans(path: str | Path) -> list[Plan]:
    plans: list[Plan] = []
    registers: dict[str, float] = {}
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    for line in lines[1:]:
        f = line.split(";")
        if len(f) < 11 or "NA" in (f[5], f[9], f[10]):
            continue
        plug = _no_time(f[5])
        # Duration_hours is finer than the minute-resolution plug-out time (micro-sessions).
        unplug = plug + round(float(f[10].replace(",", ".")) * 3600.0)
        wh = round(float(f[9].replace(",", ".")) * 1000.0)
        if unplug <= plug:
            continue
        ch = "NO-" + f[2]  # one charge point per user (User_ID), as in the study
        base = registers.get(ch, 500_000.0)
        plans.append(
            _plan(
                ch,
                "no" + f[0],
                plug=plug,
                unplug=unplug,
                done=None,
                energy_wh=wh,
                base=base,
                nominal_w=3600.0,
            )
        )
        registers[ch] = base + wh
    plans.sort(key=lambda p: p.plug)
    return _no_overlap(plans)


def _no_time(s: str) -> float:
    return datetime.strptime(s, "%d.%m.%Y %H:%M").replace(tzinfo=UTC).timestamp()


def _no_overlap(plans: list[Plan]) -> list[Plan]:
    """Move a session that overlaps another on its charger to the next free connector.

    The datasets hold a few overlapping sessions per station (shared spaces,
    data errors); a real charger would have had them on different connectors.
    """
    free: dict[str, list[float]] = {}
    out = []
    for p in sorted(plans, key=lambda p: p.plug):
        ends = free.setdefault(p.charger, [])
        for k, end in enumerate(ends):
            if p.plug >= end + 60.0:
                ends[k] = p.unplug
                out.append(replace(p, connector=k + 1))
                break
        else:
            ends.append(p.unplug)
            out.append(replace(p, connector=len(ends)))
    return out


def with_faults(plans: list[Plan], rate: float, seed: int) -> list[Plan]:
    """Give a deterministic share ``rate`` of the plans one fault each (round robin)."""
    rng = random.Random(seed)
    out = []
    k = 0
    for p in plans:
        if rng.random() < rate and p.charge_end - p.charge_start > 600:
            out.append(replace(p, faults=(FAULTS[k % len(FAULTS)],)))
            k += 1
        else:
            out.append(p)
    return out


@dataclass(slots=True)
class Stream:
    """Engine inputs in receive order: meter rows (columnar) and events."""

    conn: NDArray[np.int32]
    ts: NDArray[np.float64]
    recv: NDArray[np.float64]
    values: NDArray[np.float64]
    events: list[Event] = field(default_factory=list)

    def steps(self, step_s: float) -> Iterable[tuple[float, MeterBatch, list[Event]]]:
        """Batches of ``step_s`` of receive time, each with ``now`` = the window's end."""
        order = np.argsort(self.recv, kind="stable")
        conn, ts, recv, values = (
            self.conn[order],
            self.ts[order],
            self.recv[order],
            self.values[order],
        )
        events = sorted(self.events, key=lambda e: e.recv)
        ev_recv = np.array([e.recv for e in events])
        lo = min(recv.min() if recv.size else np.inf, ev_recv.min() if ev_recv.size else np.inf)
        hi = max(recv.max() if recv.size else -np.inf, ev_recv.max() if ev_recv.size else -np.inf)
        win = np.floor((recv - lo) / step_s).astype(np.int64)
        ewin = np.floor((ev_recv - lo) / step_s).astype(np.int64)
        keys = np.union1d(win, ewin)
        for k in keys.tolist():
            a, b = np.searchsorted(win, [k, k + 1])
            ea, eb = np.searchsorted(ewin, [k, k + 1])
            now = lo + (k + 1) * step_s
            yield (
                now,
                MeterBatch(conn[a:b], ts[a:b], recv[a:b], values[a:b]),
                events[int(ea) : int(eb)],
            )
        # Let every timeout and grace period run out.
        yield hi + 30 * 86400.0, MeterBatch.empty(), []


def _sample_times(p: Plan, interval_s: float) -> NDArray[np.float64]:
    first = np.ceil(p.plug / interval_s) * interval_s
    t = np.arange(first, p.unplug, interval_s)
    # Chargers also sample on state changes; the last one at unplug.
    return np.unique(np.concatenate(([p.plug], t, [p.unplug])))


def render(plans: list[Plan], index: ConnectorIndex, interval_s: float = 60.0) -> Stream:
    """Events and meter rows for the plans (what the OCPP 1.6 decoder produces)."""
    conns, tss, recvs, vals = [], [], [], []
    events: list[Event] = []
    for p in plans:
        ch, cn, tx = p.charger, p.connector, p.transaction_id
        t = _sample_times(p, interval_s)
        e = p.meter_base_wh + p.energy(t)
        pw = p.power(t)
        recv = t + 0.5
        stop_wh: float = p.meter_base_wh + p.energy_wh
        start_wh: float = p.meter_base_wh
        fault = p.faults[0] if p.faults else ""
        if fault == "register_reset":
            k = int(np.searchsorted(t, 0.5 * (p.charge_start + p.charge_end)))
            e = e.copy()
            e[k:] = e[k:] - e[k - 1]  # reboot right after sample k-1: restarts from 0
            stop_wh = float(e[-1])
        elif fault == "no_register":
            e = np.full_like(e, np.nan)
            start_wh = stop_wh = 0.0
        elif fault == "register_dropout":
            e = e.copy()
            e[1:-1:2] = np.nan
        elif fault == "late_offline":
            a = 0.3 * p.charge_start + 0.7 * p.charge_end
            b = min(a + 1800.0, p.unplug - 1)
            off = (t > a - 1800.0) & (t < b)
            recv = np.where(off, b + 900.0, recv)
        elif fault == "kwh_as_wh":
            e = np.round(e) / 1000.0
            start_wh, stop_wh = start_wh / 1000.0, stop_wh / 1000.0
        row = np.full((t.size, N_FIELDS), np.nan)
        row[:, FIELD_INDEX["energy_wh"]] = np.round(e, 1) if fault != "kwh_as_wh" else e
        row[:, FIELD_INDEX["power_w"]] = np.round(pw, 1)
        cid = index.id(ch, cn)
        conns.append(np.full(t.size, cid, np.int32))
        tss.append(t)
        recvs.append(recv)
        vals.append(row)
        src: Source = "ocpp1.6"
        events.append(StatusEvent(ch, cn, p.plug, p.plug + 0.2, "Preparing", source=src))
        events.append(
            TransactionEvent(
                ch, cn, p.plug, p.plug + 0.5, "start", tx, meter_wh=start_wh, source=src
            )
        )
        events.append(
            StatusEvent(ch, cn, p.charge_start, p.charge_start + 0.2, "Charging", source=src)
        )
        events.append(
            StatusEvent(ch, cn, p.charge_end, p.charge_end + 0.2, "SuspendedEV", source=src)
        )
        if fault != "missing_stop":
            events.append(
                TransactionEvent(
                    ch,
                    cn,
                    p.unplug,
                    p.unplug + 0.5,
                    "stop",
                    tx,
                    meter_wh=stop_wh,
                    reason="EVDisconnected",
                    source=src,
                )
            )
        events.append(StatusEvent(ch, cn, p.unplug, p.unplug + 0.7, "Available", source=src))
    cat = np.concatenate
    return Stream(
        cat(conns) if conns else np.empty(0, np.int32),
        cat(tss) if tss else np.empty(0),
        cat(recvs) if recvs else np.empty(0),
        cat(vals) if vals else np.empty((0, N_FIELDS)),
        events,
    )


def ocpp16_capture(plans: list[Plan], interval_s: float = 60.0) -> list[dict[str, Any]]:
    """The plans as an OCPP 1.6 capture: one forwarded frame a line, in receive order.

    For the OCPP decoder: StatusNotification, StartTransaction (+ the CSMS
    CALLRESULT assigning transactionId), MeterValues, StopTransaction.
    Faults are not rendered here (the accuracy bench injects them on events).
    """
    lines: list[tuple[float, int, dict[str, Any]]] = []
    n = 0

    def iso(ts: float) -> str:
        return (
            datetime.fromtimestamp(ts, UTC)
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z")
        )

    def put(recv: float, charger: str, source: str, frame: list[Any]) -> None:
        nonlocal n
        n += 1
        topic = f"ocpp/1.6/{charger}/{source}"
        lines.append((recv, n, {"ts": iso(recv), "topic": topic, "payload": frame}))

    for p in plans:
        ch, cn = p.charger, p.connector
        mid = f"{ch}-{p.transaction_id}"

        def status(ts: float, st: str, mid: str = mid, ch: str = ch, cn: int = cn) -> None:
            put(
                ts + 0.2,
                ch,
                "cp",
                [
                    2,
                    f"{mid}-s{ts:.0f}",
                    "StatusNotification",
                    {"connectorId": cn, "errorCode": "NoError", "status": st, "timestamp": iso(ts)},
                ],
            )

        status(p.plug, "Preparing")
        put(
            p.plug + 0.5,
            ch,
            "cp",
            [
                2,
                f"{mid}-start",
                "StartTransaction",
                {
                    "connectorId": cn,
                    "idTag": "TAG",
                    "meterStart": int(p.meter_base_wh),
                    "timestamp": iso(p.plug),
                },
            ],
        )
        put(
            p.plug + 0.6,
            ch,
            "csms",
            [
                3,
                f"{mid}-start",
                {
                    "transactionId": int(p.transaction_id) if p.transaction_id.isdigit() else n,
                    "idTagInfo": {"status": "Accepted"},
                },
            ],
        )
        status(p.charge_start, "Charging")
        t = _sample_times(p, interval_s)
        e = p.meter_base_wh + p.energy(t)
        pw = p.power(t)
        tx = int(p.transaction_id) if p.transaction_id.isdigit() else 0
        for k in range(t.size):
            put(
                float(t[k]) + 0.5,
                ch,
                "cp",
                [
                    2,
                    f"{mid}-m{k}",
                    "MeterValues",
                    {
                        "connectorId": cn,
                        "transactionId": tx,
                        "meterValue": [
                            {
                                "timestamp": iso(float(t[k])),
                                "sampledValue": [
                                    {
                                        "value": f"{e[k]:.1f}",
                                        "context": "Sample.Periodic",
                                        "measurand": "Energy.Active.Import.Register",
                                        "unit": "Wh",
                                    },
                                    {
                                        "value": f"{pw[k]:.1f}",
                                        "context": "Sample.Periodic",
                                        "measurand": "Power.Active.Import",
                                        "unit": "W",
                                    },
                                ],
                            }
                        ],
                    },
                ],
            )
        status(p.charge_end, "SuspendedEV")
        put(
            p.unplug + 0.5,
            ch,
            "cp",
            [
                2,
                f"{mid}-stop",
                "StopTransaction",
                {
                    "transactionId": tx,
                    "meterStop": int(p.meter_base_wh + p.energy_wh),
                    "timestamp": iso(p.unplug),
                    "reason": "EVDisconnected",
                },
            ],
        )
        status(p.unplug, "Available")
    lines.sort(key=lambda x: (x[0], x[1]))
    return [x[2] for x in lines]
