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
    "with_faults",
]

import itertools
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

from chargewatch.model.batch import FIELD_INDEX, N_FIELDS, MeterBatch
from chargewatch.model.events import Event, Source, StatusEvent, TransactionEvent
from chargewatch.model.fleet import ConnectorIndex

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
                f[0],
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


@dataclass(frozen=True, slots=True)
class _Series:
    """One session's samples and transaction meter values, faults applied."""

    t: NDArray[np.float64]
    e: NDArray[np.float64]  # NaN: register not reported
    pw: NDArray[np.float64]
    recv: NDArray[np.float64]
    start_wh: float
    stop_wh: float
    fault: str


def _series(p: Plan, interval_s: float) -> _Series:
    t = _sample_times(p, interval_s)
    e = np.round(p.meter_base_wh + p.energy(t), 1)
    pw = np.round(p.power(t), 1)
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
        start_wh = stop_wh = 0.0  # "identical start/stop values" (steve#1264)
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
    return _Series(t, e, pw, recv, start_wh, stop_wh, fault)


def render(plans: list[Plan], index: ConnectorIndex, interval_s: float = 60.0) -> Stream:
    """Events and meter rows for the plans (what the OCPP 1.6 decoder produces)."""
    conns, tss, recvs, vals = [], [], [], []
    events: list[Event] = []
    src: Source = "ocpp1.6"
    for p in plans:
        ch, cn, tx = p.charger, p.connector, p.transaction_id
        sr = _series(p, interval_s)
        row = np.full((sr.t.size, N_FIELDS), np.nan)
        row[:, FIELD_INDEX["energy_wh"]] = sr.e
        row[:, FIELD_INDEX["power_w"]] = sr.pw
        conns.append(np.full(sr.t.size, index.id(ch, cn), np.int32))
        tss.append(sr.t)
        recvs.append(sr.recv)
        vals.append(row)
        events += [
            StatusEvent(ch, cn, p.plug, p.plug + 0.2, "Preparing", source=src),
            TransactionEvent(
                ch, cn, p.plug, p.plug + 0.5, "start", tx, meter_wh=sr.start_wh, source=src
            ),
            StatusEvent(ch, cn, p.charge_start, p.charge_start + 0.2, "Charging", source=src),
            StatusEvent(ch, cn, p.charge_end, p.charge_end + 0.2, "SuspendedEV", source=src),
            StatusEvent(ch, cn, p.unplug, p.unplug + 0.7, "Available", source=src),
        ]
        if sr.fault != "missing_stop":
            events.append(
                TransactionEvent(
                    ch,
                    cn,
                    p.unplug,
                    p.unplug + 0.5,
                    "stop",
                    tx,
                    meter_wh=sr.stop_wh,
                    reason="EVDisconnected",
                    source=src,
                )
            )
    cat = np.concatenate
    return Stream(
        cat(conns) if conns else np.empty(0, np.int32),
        cat(tss) if tss else np.empty(0),
        cat(recvs) if recvs else np.empty(0),
        cat(vals) if vals else np.empty((0, N_FIELDS)),
        events,
    )


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _num(x: float) -> str:
    return f"{x:.3f}".rstrip("0").rstrip(".")


def ocpp16_capture(plans: list[Plan], interval_s: float = 60.0) -> list[tuple[float, str, bytes]]:
    """The plans as OCPP 1.6-J frames forwarded over MQTT: (recv, topic, payload), recv order.

    StatusNotification, StartTransaction with the CSMS CALLRESULT that assigns
    the transactionId (the plan's, numeric), MeterValues (register and power,
    strings, as the spec wants), StopTransaction; faults as in :func:`render`
    (a missing register is left out of the frame, kWh values go out labelled Wh).
    """
    out: list[tuple[float, int, str, bytes]] = []
    seq = itertools.count()

    def put(recv: float, charger: str, source: str, frame: list[Any]) -> None:
        topic = f"ocpp/1.6/{charger}/{source}"
        out.append((recv, next(seq), topic, json.dumps(frame).encode()))

    for p in plans:
        ch, cn, tx = p.charger, p.connector, int(p.transaction_id)
        sr = _series(p, interval_s)
        mid = f"{tx}"

        def status(ts: float, st: str, ch: str = ch, cn: int = cn, mid: str = mid) -> None:
            body = {"connectorId": cn, "errorCode": "NoError", "status": st, "timestamp": _iso(ts)}
            put(ts + 0.2, ch, "cp", [2, f"s{mid}-{st}", "StatusNotification", body])

        status(p.plug, "Preparing")
        start = {
            "connectorId": cn,
            "idTag": "TAG",
            "meterStart": int(sr.start_wh),  # an integer in 1.6; a kWh register loses decimals
            "timestamp": _iso(p.plug),
        }
        put(p.plug + 0.5, ch, "cp", [2, f"b{mid}", "StartTransaction", start])
        answer = {"transactionId": tx, "idTagInfo": {"status": "Accepted"}}
        put(p.plug + 0.6, ch, "csms", [3, f"b{mid}", answer])
        status(p.charge_start, "Charging")
        for k in range(sr.t.size):
            sv = []
            if np.isfinite(sr.e[k]):
                sv.append(
                    {
                        "value": _num(float(sr.e[k])),
                        "context": "Sample.Periodic",
                        "measurand": "Energy.Active.Import.Register",
                        "unit": "Wh",
                    }
                )
            sv.append(
                {
                    "value": _num(float(sr.pw[k])),
                    "context": "Sample.Periodic",
                    "measurand": "Power.Active.Import",
                    "unit": "W",
                }
            )
            body = {
                "connectorId": cn,
                "transactionId": tx,
                "meterValue": [{"timestamp": _iso(float(sr.t[k])), "sampledValue": sv}],
            }
            put(float(sr.recv[k]), ch, "cp", [2, f"m{mid}-{k}", "MeterValues", body])
        status(p.charge_end, "SuspendedEV")
        if sr.fault != "missing_stop":
            body = {
                "transactionId": tx,
                "meterStop": int(sr.stop_wh),
                "timestamp": _iso(p.unplug),
                "reason": "EVDisconnected",
            }
            put(p.unplug + 0.5, ch, "cp", [2, f"e{mid}", "StopTransaction", body])
        status(p.unplug, "Available")
    out.sort(key=lambda x: (x[0], x[1]))
    return [(r, t, b) for r, _, t, b in out]
