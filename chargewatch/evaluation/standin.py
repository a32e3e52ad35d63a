"""STAND-IN scenario generator for the detector evaluation, used until the fleet
simulator (``chargewatch.simulator``) is on main. Not the simulator.

Seeded; produces meter rows, events and ground truth for a modest fleet with
one injected fault episode per faulty connector, and the hard normal cases on
every connector: SuspendedEV pauses, taper at high SoC, DC curves, single-phase
cars on three-phase chargers, coarse kW/kWh resolution, idle after charging
within the grace, reboots between sessions, short gaps in telemetry.
"""

from __future__ import annotations

__all__ = ["SAMPLE_S", "Scenario", "Truth", "generate"]

from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from chargewatch.detectors.params import FAULTS
from chargewatch.model.batch import FIELD_INDEX, N_FIELDS, MeterBatch
from chargewatch.model.events import (
    BootEvent,
    Event,
    HeartbeatEvent,
    OnlineEvent,
    StatusEvent,
    TransactionEvent,
)
from chargewatch.model.fleet import ChargerSpec, ConnectorIndex, Fleet, SiteSpec

SAMPLE_S = 10.0  # meter sample interval
HEARTBEAT_S = 300.0
LWT_DELAY_S = 45.0  # broker notices a dead client after 1.5 x 30 s keepalive
T0 = 1_800_000_000.0

E, P = FIELD_INDEX["energy_wh"], FIELD_INDEX["power_w"]
I1, V1 = FIELD_INDEX["current_l1_a"], FIELD_INDEX["voltage_l1_v"]
TEMP, SOC, OFF = FIELD_INDEX["temperature_c"], FIELD_INDEX["soc_pct"], FIELD_INDEX["offered_a"]


@dataclass(frozen=True, slots=True)
class Truth:
    fault: str
    connector: int
    start: float
    end: float


@dataclass
class Scenario:
    index: ConnectorIndex
    batch: MeterBatch  # all rows, in receive order
    events: list[Event]
    truth: list[Truth]
    start: float
    end: float
    sample_s: float = SAMPLE_S
    kinds: dict[int, str] = field(default_factory=dict)  # connector -> charger kind

    def batches(self, every_s: float) -> list[tuple[float, MeterBatch, list[Event]]]:
        """(now, rows, events) cut on the receive clock every ``every_s`` seconds."""
        edges = np.arange(self.start, self.end + every_s, every_s)
        rb = np.searchsorted(self.batch.recv, edges, side="right")
        ev = sorted(self.events, key=lambda e: e.recv)
        er = np.searchsorted(np.array([e.recv for e in ev]), edges, side="right")
        out = []
        for k in range(1, edges.shape[0]):
            rows = np.arange(rb[k - 1], rb[k])
            out.append((float(edges[k]), self.batch.take(rows), ev[er[k - 1] : er[k]]))
        return out


_KINDS = (  # name, max power W, phases, nominal V
    ("ac22", 22_000.0, 3, 230.0),
    ("ac11", 11_000.0, 3, 230.0),
    ("ac7", 7_400.0, 1, 230.0),
    ("dc50", 50_000.0, 0, 400.0),
    ("dc150", 150_000.0, 0, 400.0),
)


class _Conn:
    """One connector's stream while it is generated."""

    def __init__(self, cid: int, charger: str, kind: tuple[str, float, int, float]) -> None:
        self.cid, self.charger = cid, charger
        self.name, self.pmax, self.phases, self.vnom = kind
        self.rows: list[NDArray[np.float64]] = []
        self.ts: list[NDArray[np.float64]] = []
        self.events: list[Event] = []
        self.register = float(np.random.default_rng(cid).uniform(1e5, 5e6))
        self.skew_from, self.skew = np.inf, 0.0


def _session(
    rng: np.random.Generator,
    c: _Conn,
    t_plug: float,
    horizon: float,
    fault: str | None,
    truth: list[Truth],
) -> float:
    """Generate one session from plug-in; returns the time the connector is free."""
    ev = c.events
    ch, k = c.charger, 1
    dc = c.phases == 0
    t = t_plug
    ev.append(StatusEvent(ch, k, t, t, "Preparing"))
    t_start = t + rng.uniform(5, 30)
    tx = f"{c.cid}-{int(t)}"
    ev.append(TransactionEvent(ch, k, t_start, t_start, "start", tx, c.register))
    # Car: battery, SoC, phases it can draw on, max power.
    cap = rng.uniform(40, 90) * 1000.0
    soc = rng.uniform(10, 60)
    target = rng.uniform(85, 100)
    if fault is not None:  # long enough for the fault window to sit inside charging
        cap, soc, target = 90_000.0, 5.0, 100.0
    if fault == "idle_blocking":
        target = soc + 15.0
    car_phases = 3 if (c.phases == 3 and rng.random() < 0.7) else 1
    if fault in ("phase_loss", "phase_imbalance") and c.phases == 3:
        car_phases = 3  # the fault is only visible on a three-phase load
    if dc:
        car_p = c.pmax * (rng.uniform(0.6, 1.0) if fault is None else 0.4)
    else:
        rated = c.pmax / (max(c.phases, 1) * c.vnom)
        car_p = min(c.pmax, car_phases * 230.0 * min(rng.choice([16.0, 32.0]), rated))
    offered = min(32.0, round(c.pmax / (max(c.phases, 1) * c.vnom))) if not dc else np.nan
    # "kW units": 0.1 kW power, 10 Wh register steps (decoded to W and Wh correctly).
    coarse = rng.random() < 0.2 and fault != "meter_unit_error"
    plugged_for = rng.uniform(1.0, 4.0) * 3600.0
    if fault == "idle_blocking":
        plugged_for = 4.0 * 3600.0
    idle_after = rng.uniform(0, 1500)  # idle after charging, within the 30 min grace
    t_leave = min(t_start + plugged_for, horizon - 60.0)
    # Fault timing (inside the charging part).
    f_start = t_start + rng.uniform(600, 1200)
    f_len = rng.uniform(900, 1500)
    pause = (
        (t_start + rng.uniform(900, 2400), rng.uniform(300, 900)) if rng.random() < 0.3 else None
    )
    if fault is not None:
        pause = None  # a fault hidden inside a pause has nothing to show
    gap = t_start + rng.uniform(600, 3000) if rng.random() < 0.3 else None
    if fault is not None:
        gap = None  # one thing at a time: lost samples would delay any detector
    ev.append(StatusEvent(ch, k, t_start + 1, t_start + 1, "Charging"))
    if fault == "failed_start":
        t_end = t_start + rng.uniform(900, 1500)
        truth.append(Truth(fault, c.cid, t_start, t_end))
        tt = np.arange(t_start + 2, t_end, SAMPLE_S)
        v = np.full((tt.shape[0], N_FIELDS), np.nan)
        v[:, E] = c.register
        v[:, P] = 0.0
        v[:, I1 : I1 + 3] = 0.0 if not dc else np.nan
        if dc:
            v[:, I1] = 0.0
        v[:, V1 : V1 + 3] = c.vnom if not dc else np.nan
        if dc:
            v[:, V1] = 0.0
        v[:, TEMP] = 25.0
        v[:, OFF] = offered
        c.rows.append(v)
        c.ts.append(np.stack([tt, tt], axis=1))
        ev.append(TransactionEvent(ch, k, t_end, t_end, "stop", tx, c.register, reason="Local"))
        ev.append(StatusEvent(ch, k, t_end + 1, t_end + 1, "Finishing"))
        ev.append(StatusEvent(ch, k, t_end + 20, t_end + 20, "Available"))
        return t_end + 20
    # Charging: per-sample power from the car's curve and SoC.
    tt = np.arange(t_start + 2, t_leave, SAMPLE_S)
    n = tt.shape[0]
    p = np.zeros(n)
    socs = np.zeros(n)
    status = np.zeros(n, np.int8)  # 0 charging, 1 paused (SuspendedEV), 2 full (SuspendedEV)
    s = soc
    for i in range(n):  # generator only: the detectors never loop like this
        if pause and pause[0] <= tt[i] < pause[0] + pause[1]:
            status[i] = 1
        elif s >= target:
            status[i] = 2
        if status[i]:
            p[i] = 0.0
        else:
            # Taper above 80 % SoC (AC cars less so); DC curves fall from 50 %.
            knee = 50.0 if dc else 80.0
            frac = 1.0 if s < knee else max(0.08, 1.0 - (s - knee) / (100.0 - knee) * 0.9)
            p[i] = car_p * frac
            s = min(100.0, s + p[i] * SAMPLE_S / 3600.0 / cap * 100.0)
        socs[i] = s
    full_i = np.flatnonzero(status == 2)
    if full_i.size and fault != "idle_blocking":
        # The driver comes back within the grace: idle after charging is normal.
        t_leave = min(t_leave, float(tt[full_i[0]]) + idle_after)
        n = int(np.searchsorted(tt, t_leave))
        tt, p, socs, status = tt[:n], p[:n], socs[:n], status[:n]
    p *= rng.normal(1.0, 0.005, n)
    p[status > 0] = 0.0
    if dc:
        volt = 350.0 + 0.8 * socs + rng.normal(0, 0.5, n)
        p = np.minimum(p, volt * c.pmax / c.vnom)  # DC chargers are current-limited
    # Interruptions before generating the register (energy stops flowing).
    interrupted_at = None
    if fault == "charging_interrupted":
        interrupted_at = f_start
        cut = tt >= f_start
        p[cut] = 0.0
    if fault == "power_oscillation":
        w = (tt >= f_start) & (tt < f_start + f_len) & (status == 0)
        alt = (np.arange(n) % 2) == 1
        p[w & alt] *= 0.3
    true_p = p.copy()
    energy = c.register + np.cumsum(true_p * SAMPLE_S / 3600.0)
    c.register = float(energy[-1]) if n else c.register
    v = np.full((n, N_FIELDS), np.nan)
    v[:, P] = p
    v[:, E] = energy
    if dc:
        v[:, V1] = volt
        v[:, I1] = p / volt
        v[:, SOC] = socs
        v[:, TEMP] = 25.0 + 30.0 * (p / c.pmax) + rng.normal(0, 0.3, n)
    else:
        volts = c.vnom * rng.normal(1.0, 0.012, (n, 3))
        if c.phases == 1:
            volts[:, 1:] = np.nan
        v[:, V1 : V1 + 3] = volts
        cur = np.zeros((n, 3))
        cur[:, :car_phases] = (p / (car_phases * c.vnom))[:, None] * rng.normal(
            1, 0.01, (n, car_phases)
        )
        if c.phases == 1:
            cur[:, 1:] = np.nan
        v[:, I1 : I1 + 3] = cur
        v[:, OFF] = offered
        v[:, TEMP] = 22.0 + 18.0 * (p / c.pmax) + rng.normal(0, 0.3, n)
    w = (tt >= f_start) & (tt < f_start + f_len)
    f_end = f_start + f_len
    if fault == "meter_stuck":
        loaded = np.flatnonzero(w & (p > 1500))
        if loaded.size:
            i0 = int(loaded[0])
            w &= tt >= tt[i0]
            v[w, E] = v[i0 - 1, E] if i0 else v[i0, E]  # frozen; resumes at the true value
            f_start, f_end = float(tt[i0]), float(tt[np.flatnonzero(w)[-1]])
    elif fault == "meter_regression":
        drop = rng.uniform(2000, 20000)
        v[tt >= f_start, E] -= drop
        c.register -= drop
        f_end = f_start + SAMPLE_S
    elif fault == "meter_mismatch":
        ratio = rng.choice([0.6, 0.7, 1.4, 1.6])
        inc = np.diff(v[:, E], prepend=v[0, E])
        inc[w] *= ratio
        v[:, E] = v[0, E] + np.cumsum(inc)
        c.register = float(v[-1, E])
    elif fault == "meter_unit_error":
        if rng.random() < 0.5:
            v[w, E] /= 1000.0  # a kWh register read as Wh
        else:
            v[w, P] /= 1000.0  # kW read as W
    elif fault == "over_temperature":
        v[w, TEMP] = 82.0 + rng.normal(0, 0.3, int(w.sum()))
    elif fault == "over_current":
        if dc:
            v[w, I1] = c.pmax / c.vnom * 1.35
        else:
            lim = offered if np.isfinite(offered) else 32.0
            v[w, I1 : I1 + car_phases] = lim * 1.35  # every loaded phase: no imbalance
    elif fault == "voltage_out_of_band":
        v[w, V1] = c.vnom * rng.choice([0.82, 1.15])
    elif fault == "phase_loss":
        v[w, V1 + 2] = 0.0
        v[w, I1 + 2] = 0.0
    elif fault == "phase_imbalance":
        v[w, I1 + 2] *= 0.4
    elif fault == "clock_skew":
        f_end = horizon
    if fault in (
        "meter_stuck",
        "meter_regression",
        "meter_mismatch",
        "meter_unit_error",
        "over_temperature",
        "over_current",
        "voltage_out_of_band",
        "phase_loss",
        "phase_imbalance",
        "power_oscillation",
        "clock_skew",
    ):
        truth.append(Truth(fault, c.cid, f_start, min(f_end, t_leave)))
    if fault == "coarse" or coarse:
        v[:, P] = np.round(v[:, P], -2)
        v[:, E] = np.floor(v[:, E] / 10.0) * 10.0
    keep = np.ones(n, np.bool_)
    if gap is not None:
        keep &= ~((tt >= gap) & (tt < gap + 60.0))  # 60 s of samples lost in transit
    if fault == "stale_telemetry":
        keep &= ~w
        truth.append(Truth(fault, c.cid, f_start, f_end))
    ts = tt.copy()
    if fault == "clock_skew":
        c.skew_from, c.skew = f_start, float(rng.choice([900.0, 3600.0]))
    ts[tt >= c.skew_from] += c.skew  # a wrong clock stays wrong for later sessions
    c.rows.append(v[keep])
    c.ts.append(np.stack([ts[keep], tt[keep]], axis=1))
    # Status events along the way.
    if pause and pause[0] + pause[1] < t_leave:
        ev.append(StatusEvent(ch, k, pause[0], pause[0], "SuspendedEV"))
        ev.append(StatusEvent(ch, k, pause[0] + pause[1], pause[0] + pause[1], "Charging"))
    full = np.flatnonzero(status == 2)
    if interrupted_at is not None:
        if rng.random() < 0.5:
            ev.append(
                StatusEvent(ch, k, interrupted_at, interrupted_at, "Faulted", "PowerSwitchFailure")
            )
            ev.append(
                TransactionEvent(
                    ch,
                    k,
                    interrupted_at + 2,
                    interrupted_at + 2,
                    "stop",
                    tx,
                    c.register,
                    reason="EmergencyStop",
                )
            )
        truth.append(Truth("charging_interrupted", c.cid, interrupted_at, t_leave))
    elif full.size:
        t_full = float(tt[full[0]])
        ev.append(StatusEvent(ch, k, t_full, t_full, "SuspendedEV"))
        if fault == "idle_blocking" and t_full + 1800.0 < t_leave:
            truth.append(Truth(fault, c.cid, t_full + 1800.0, t_leave))
    if fault == "status_flapping":
        fl = np.arange(f_start, f_start + 300.0, 20.0)
        for j, tf in enumerate(fl):
            ev.append(StatusEvent(ch, k, tf, tf, "SuspendedEVSE" if j % 2 == 0 else "Charging"))
        truth.append(Truth(fault, c.cid, f_start, f_start + 300.0))
    if interrupted_at is None or all(
        not isinstance(e, TransactionEvent) or e.kind != "stop" or e.transaction_id != tx
        for e in ev
    ):
        ev.append(
            TransactionEvent(
                ch, k, t_leave, t_leave, "stop", tx, c.register, reason="EVDisconnected"
            )
        )
    ev.append(StatusEvent(ch, k, t_leave + 1, t_leave + 1, "Finishing"))
    ev.append(StatusEvent(ch, k, t_leave + 20, t_leave + 20, "Available"))
    return t_leave + 20


def generate(chargers: int = 40, hours: float = 8.0, seed: int = 1) -> Scenario:
    """A fleet of ``chargers`` single-connector chargers over ``hours``."""
    rng = np.random.default_rng(seed)
    start, end = T0, T0 + hours * 3600.0
    specs = {}
    kinds = {}
    for i in range(chargers):
        kind = _KINDS[i % len(_KINDS)]
        cid = f"CP{i:04d}"
        specs[cid] = ChargerSpec(
            cid,
            site=f"site{i % 3}",
            connectors=1,
            max_power_w=kind[1],
            phases=kind[2],
            nominal_voltage_v=kind[3],
            model=kind[0],
        )
    fleet = Fleet({f"site{j}": SiteSpec(f"site{j}") for j in range(3)}, specs)
    index = ConnectorIndex(fleet)
    # Assign faults round-robin to connectors; every third connector stays healthy.
    session_faults = [f for f in FAULTS if f != "charger_offline"]
    truth: list[Truth] = []
    conns = []
    for i, cid in enumerate(specs):
        c = _Conn(index.id(cid, 1), cid, _KINDS[i % len(_KINDS)])
        kinds[c.cid] = c.name
        conns.append(c)
        fault = None if i % 3 == 2 else (FAULTS[(i - i // 3) % len(FAULTS)])
        if c.phases != 3 and fault in ("phase_loss", "phase_imbalance"):
            fault = "meter_stuck"
        if c.phases == 0 and fault == "voltage_out_of_band":
            fault = "over_temperature"
        t = start + rng.uniform(0, 1800)
        first = True
        offline = None
        if fault == "charger_offline":
            o0 = start + rng.uniform(0.3, 0.6) * (end - start)
            offline = (o0, o0 + rng.uniform(1200, 2400))
            truth.append(Truth(fault, c.cid, offline[0], offline[1]))
        while t < end - 2 * 3600:
            f = fault if first and fault in session_faults else None
            if offline and t < offline[1] + 600 and t + 5 * 3600 > offline[0]:
                t = offline[1] + 600  # keep sessions away from the outage: one fault at a time
                continue
            t = _session(rng, c, t, end, f, truth)
            first = False
            # Idle after charging within the grace happens inside _session; now free time,
            # sometimes with a reboot between sessions.
            if rng.random() < 0.3:
                tb = t + rng.uniform(60, 600)
                tb2 = tb + rng.uniform(40, 100)
                if tb2 > tb + LWT_DELAY_S:  # the broker publishes the will only if still gone
                    c.events.append(OnlineEvent(c.charger, False, tb + LWT_DELAY_S))
                c.events.append(OnlineEvent(c.charger, True, tb2))
                c.events.append(BootEvent(c.charger, tb2, tb2 + 0.2, reason="PowerUp"))
                c.events.append(StatusEvent(c.charger, 1, tb2 + 1, tb2 + 1.2, "Available"))
            t += rng.uniform(600, 3600)
        if fault == "idle_blocking" and not any(tr.connector == c.cid for tr in truth):
            pass
        # Heartbeats all along, except while offline.
        hb = np.arange(start + rng.uniform(0, HEARTBEAT_S), end, HEARTBEAT_S)
        for h in hb.tolist():
            if offline and offline[0] <= h < offline[1]:
                continue
            c.events.append(HeartbeatEvent(c.charger, h, h + 0.1))
        if offline:
            c.events = [e for e in c.events if not (offline[0] <= e.recv < offline[1])]
            c.events.append(OnlineEvent(c.charger, False, offline[0] + LWT_DELAY_S))
            c.events.append(OnlineEvent(c.charger, True, offline[1]))
    # Assemble rows (receive time = sample time + small latency).
    conn_l, ts_l, recv_l, val_l = [], [], [], []
    for c in conns:
        for v, tsr in zip(c.rows, c.ts, strict=True):
            ts, tt = tsr[:, 0], tsr[:, 1]
            recv = tt + rng.uniform(0.05, 0.8, tt.shape[0])
            if c.events and any(isinstance(e, OnlineEvent) for e in c.events):
                pass
            conn_l.append(np.full(ts.shape[0], c.cid, np.int32))
            ts_l.append(ts)
            recv_l.append(recv)
            val_l.append(v)
    conn = np.concatenate(conn_l)
    ts = np.concatenate(ts_l)
    recv = np.concatenate(recv_l)
    vals = np.concatenate(val_l)
    # Offline chargers send nothing: drop their rows inside the outage.
    drop = np.zeros(conn.shape[0], np.bool_)
    for tr in truth:
        if tr.fault == "charger_offline":
            drop |= (conn == tr.connector) & (recv >= tr.start) & (recv < tr.end)
    keep = ~drop & (recv < end)
    order = np.argsort(recv[keep], kind="stable")
    batch = MeterBatch(conn[keep][order], ts[keep][order], recv[keep][order], vals[keep][order])
    events: list[Event] = [e for c in conns for e in c.events if e.recv < end]
    events.sort(key=lambda e: e.recv)
    return Scenario(index, batch, events, truth, start, end, SAMPLE_S, kinds)
