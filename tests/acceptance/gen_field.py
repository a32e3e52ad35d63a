"""Field-shaped OCPP fleet captures with ground truth, for a blind test of the
whole path (`chargewatch replay`: decode -> detectors -> rules -> alerts,
sessions, CDRs).

Written from the OCPP 1.6J and 2.0.1 specifications and from how chargers in
the field behave, independently of chargewatch's simulator and of
tests/acceptance/gen_ocpp.py, and aimed at what those do not produce:

- captures that start mid-life (no BootNotification; a transaction already
  running at the first frame, its MeterValues carrying the transactionId);
- heartbeats every 60, 300, 900 and 3600 s, with and without the CSMS's
  BootNotification answer in the capture; chargers that skip heartbeats while
  they send other messages (1.6 section 4.6 allows it);
- MeterValues every 10, 30, 60 and 300 s with +-1 s jitter, and clock-aligned
  idle register values (Sample.Clock, every 900 s on the quarter hour);
- 2.0.1 TransactionEvent fleets (Started/Updated/Ended, seqNo, evse and
  connector ids, triggerReasons) and 2.0.1 MeterValues with phases "L1-N";
- a CALL retransmitted with its unique id after a lost answer (before and
  after the capture point), messages received out of order by 1-2 s;
- two-connector chargers (one charging, one idle), DC chargers with SoC,
  registers in kWh, a charger whose clock is an hour ahead (local time sent
  with a Z) and otherwise healthy.

Faults are the ones docs/detectors.md says are caught; each fault charger has
exactly one, every other charger is clean. Deterministic for a seed.

Run: python -m tests.acceptance.gen_field OUT_DIR [CADENCE_S] [VERSION] [SEED]
"""

from __future__ import annotations

import json
import random
import sys
import zlib
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from tests.acceptance.gen_ocpp import Writer, iso, iso_charger

T0 = datetime(2026, 5, 11, 6, 0, 0, tzinfo=UTC)
HOURS = 3
NOMINAL_V = 230.0

# Per fault: the alert that must fire, the detector's minimum duration and the
# rule's `for` (rules/faults.yaml), for the budget min + for + 2 intervals.
FAULTS: dict[str, tuple[str, float, float]] = {
    "phase_loss": ("PhaseLoss", 30, 30),
    "voltage_sag": ("VoltageOutOfBand", 60, 120),
    "over_temperature": ("OverTemperature", 60, 0),
    "meter_stuck": ("MeterStuck", 120, 180),
    "charging_interrupted": ("ChargingInterrupted", 60, 0),
    "meter_regression": ("MeterRegression", 0, 60),
    "over_current": ("OverCurrent", 10, 60),
    "charger_offline": ("ChargerOffline", 0, 0),
}


# The capture file's line format and timestamps are gen_ocpp's (capture writing
# is not what this generator models differently; the traffic is).
iso_cp = iso_charger


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


@dataclass
class Session:
    connector: int
    start: float  # minutes from T0 (plug-in + authorisation)
    full: float  # energy stops flowing (SuspendedEV)
    stop: float
    kw: float = 11.0
    fault: str | None = None
    fault_at: float = 0.0  # minutes from T0
    fault_len: float = 0.0
    midlife: bool = False  # running before the capture began


@dataclass
class Plan:
    cid: str
    version: str = "1.6"
    hb_s: int = 60
    boot: str = "answered"  # answered | unanswered | none (booted before the capture)
    skip_hb_busy: bool = False
    sample_s: int = 10
    connectors: int = 1
    dc: bool = False
    kwh: bool = False
    clock_offset_s: float = 0.0
    reorder: bool = False
    retransmit: str | None = None  # "start_lost_answer" | "meter_dup_answer"
    aligned_idle: bool = False
    sessions: list[Session] = field(default_factory=list)
    offline: tuple[float, float] | None = None  # minutes: silent from .. to
    fault: str | None = None


class Capture(Writer):
    """gen_ocpp's capture writer, with this capture's random source."""

    def __init__(self, seed: int) -> None:
        super().__init__()
        self.rng = random.Random(seed)


class Charger:
    """One charger's traffic as the bridge sees it, with its CSMS's answers."""

    def __init__(self, p: Plan, cap: Capture, tx_base: int) -> None:
        self.p = p
        self.cap = cap
        self.rng = random.Random(zlib.crc32(p.cid.encode()) ^ cap.rng.randrange(1 << 30))
        self.msg = 0
        self.tx = tx_base
        self.reg = [0.0] + [2_000_000.0 + 137_000.0 * c + tx_base for c in range(1, 3)]
        self.soc = 22.0
        self.last_sent = T0 - timedelta(days=1)
        self.sent_at: list[datetime] = []
        self.sessions: list[dict[str, Any]] = []
        self.reg_hist: dict[int, list[tuple[datetime, float]]] = {}

    # --- wire ----------------------------------------------------------------
    def silent(self, t: datetime) -> bool:
        o = self.p.offline
        return o is not None and at(o[0]) <= t < at(o[1])

    def topic(self, src: str) -> str:
        return f"ocpp/{self.p.version}/{self.p.cid}/{src}"

    def stamp(self, t: datetime) -> str:
        return iso_cp(t + timedelta(seconds=self.p.clock_offset_s))

    def call(
        self,
        t: datetime,
        action: str,
        body: dict[str, Any],
        answer: dict[str, Any] | None,
        *,
        lose_answer: bool = False,
        duplicate: bool = False,
    ) -> None:
        if self.silent(t) or t < T0:
            return
        self.msg += 1
        mid = f"{self.p.cid[-3:]}-{self.msg}"
        recv = t + timedelta(milliseconds=self.rng.randint(40, 300))
        if self.p.reorder:
            recv += timedelta(seconds=self.rng.uniform(0, 2))
        self.cap.put(recv, self.topic("cp"), [2, mid, action, body])
        self.last_sent = t
        self.sent_at.append(t)
        if answer is None:
            return
        if lose_answer:
            # The answer never reaches the bridge; the charger times out and
            # sends the same CALL again with the same unique id (OCPP-J 4.1.1).
            again = recv + timedelta(seconds=30)
            self.cap.put(again, self.topic("cp"), [2, mid, action, body])
            self.cap.put(again + timedelta(milliseconds=120), self.topic("csms"), [3, mid, answer])
            return
        self.cap.put(recv + timedelta(milliseconds=120), self.topic("csms"), [3, mid, answer])
        if duplicate:
            # The answer was lost after the bridge: the CALL comes again, the
            # CSMS answers again.
            again = recv + timedelta(seconds=30)
            self.cap.put(again, self.topic("cp"), [2, mid, action, body])
            self.cap.put(again + timedelta(milliseconds=110), self.topic("csms"), [3, mid, answer])

    def boot(self) -> None:
        if self.p.boot == "none":
            return
        t = T0 + timedelta(seconds=2)
        answer = {"status": "Accepted", "currentTime": iso_cp(t), "interval": self.p.hb_s}
        if self.p.version == "1.6":
            body: dict[str, Any] = {
                "chargePointVendor": "Northwind",
                "chargePointModel": "DC50" if self.p.dc else "AC22-T",
                "firmwareVersion": "3.1.7",
            }
        else:
            body = {
                "reason": "PowerUp",
                "chargingStation": {"model": "NW-AC22", "vendorName": "Northwind"},
            }
        # "unanswered": the BootNotification is in the capture, its answer is not.
        self.call(t, "BootNotification", body, None if self.p.boot == "unanswered" else answer)
        for c in range(0 if self.p.version == "1.6" else 1, self.p.connectors + 1):
            self.status(t + timedelta(seconds=1 + c), c, "Available")

    def status(self, t: datetime, conn: int, status: str) -> None:
        if self.p.version == "1.6":
            body = {
                "connectorId": conn,
                "errorCode": "NoError",
                "status": status,
                "timestamp": self.stamp(t),
            }
        else:
            s201 = {"Preparing": "Occupied", "Charging": "Occupied", "SuspendedEV": "Occupied"}
            s201 |= {"Finishing": "Occupied"}
            body = {
                "timestamp": self.stamp(t),
                "connectorStatus": s201.get(status, status),
                "evseId": conn,
                "connectorId": 1,
            }
        self.call(t, "StatusNotification", body, {})

    def heartbeats(self, end: datetime) -> None:
        """Every hb_s; a skipping charger leaves one out when it sent anything
        else within the interval (the CSMS counts every message as alive)."""
        t = T0 + timedelta(seconds=self.rng.uniform(5, min(self.p.hb_s, 600)))
        sent = sorted(self.sent_at)
        while t < end:
            busy = any(t - timedelta(seconds=self.p.hb_s) < s <= t for s in sent[-4000:])
            if not (self.p.skip_hb_busy and busy):
                self.call(t, "Heartbeat", {}, {"currentTime": iso_cp(t)})
            t += timedelta(seconds=self.p.hb_s)

    # --- electrical model ----------------------------------------------------
    def reading(self, s: Session, t: datetime) -> dict[str, Any]:
        """What the meter says at t: per-phase V and A, W, °C, SoC."""
        mins = (t - T0).total_seconds() / 60
        flowing = s.start + 0.5 <= mins < s.full
        f = s.fault if s.fault and s.fault_at <= mins < s.fault_at + s.fault_len else None
        wobble = [
            0.8 * (zlib.crc32(f"{self.p.cid}{int(mins * 6)}{k}".encode()) % 100 / 100 - 0.5)
            for k in range(3)
        ]
        volts = [NOMINAL_V + 2.0 + w for w in wobble]
        per_phase = s.kw * 1000 / 3 / NOMINAL_V if flowing else 0.0
        amps = [per_phase * (1 + 0.01 * k) for k in range(3)]
        offered = 16.0 if s.kw <= 11.5 else 32.0
        if f == "phase_loss":
            volts[2], amps[2] = 0.0, 0.0
        elif f == "voltage_sag":
            volts[0] = 190.0
        elif f == "charging_interrupted":
            amps = [0.0, 0.0, 0.0]
        elif f == "over_current":
            amps = [offered * 1.5] * 3
        power = sum(v * a for v, a in zip(volts, amps, strict=True))
        temp = 31.0 + (7.0 if flowing else 0.0)
        if s.fault == "over_temperature" and mins >= s.fault_at:
            # a loose terminal: +14 °C/min from 38 °C to 95 °C, held for the fault
            temp = min(95.0, 38.0 + 14.0 * (mins - s.fault_at))
            if mins >= s.fault_at + s.fault_len:
                temp = 38.0
        if self.p.dc:
            dc_v = 360.0 + 1.2 * self.soc
            power = (s.kw * 1000 if flowing else 0.0) * (1.0 if self.soc < 80 else 0.5)
            return {
                "power": power,
                "dc_v": dc_v,
                "dc_a": power / dc_v,
                "temp": temp,
                "soc": self.soc,
            }
        return {"power": power, "volts": volts, "amps": amps, "temp": temp, "offered": offered}

    def sampled(self, r: dict[str, Any], reg: float, ctx: str) -> list[dict[str, Any]]:
        v16 = self.p.version == "1.6"

        def sv(
            value: float, measurand: str, unit: str, phase: str | None = None, **kw: Any
        ) -> dict[str, Any]:
            d: dict[str, Any] = {"measurand": measurand, "context": ctx}
            if v16:
                d |= {"value": f"{value:.3f}" if unit == "kWh" else f"{value:.1f}", "unit": unit}
                d |= {"format": "Raw"} | kw
            else:
                d |= {"value": round(value, 3), "unitOfMeasure": {"unit": unit}} | kw
            if phase:
                d["phase"] = phase
            return d

        out = [
            sv(
                reg / 1000 if self.p.kwh else reg,
                "Energy.Active.Import.Register",
                "kWh" if self.p.kwh else "Wh",
                location="Outlet",
            ),
        ]
        if ctx == "Sample.Clock":
            return out
        out.append(sv(r["power"], "Power.Active.Import", "W"))
        if self.p.dc:
            out += [
                sv(r["dc_a"], "Current.Import", "A"),
                sv(r["dc_v"], "Voltage", "V"),
                sv(r["soc"], "SoC", "Percent", location="EV"),
            ]
        else:
            for k in range(3):
                out.append(sv(r["amps"][k], "Current.Import", "A", f"L{k + 1}"))
            for k in range(3):
                out.append(sv(r["volts"][k], "Voltage", "V", f"L{k + 1}-N"))
            out.append(sv(r["offered"], "Current.Offered", "A"))
        if v16:  # 2.0.1 has no Temperature measurand (its device model reports it)
            out.append(sv(r["temp"], "Temperature", "Celsius", location="Body"))
        return out

    # --- sessions ------------------------------------------------------------
    def session(self, s: Session, tag: str) -> None:
        self.tx += 1
        tx = self.tx
        c = s.connector
        v16 = self.p.version == "1.6"
        begin = at(s.start)
        reg = self.reg[c]
        seq = 0

        def tev(
            t: datetime,
            etype: str,
            trigger: str,
            info: dict[str, Any],
            extra: dict[str, Any],
            **kw: bool,
        ) -> None:
            nonlocal seq
            body = {
                "eventType": etype,
                "timestamp": self.stamp(t),
                "triggerReason": trigger,
                "seqNo": seq,
                "transactionInfo": {"transactionId": f"{self.p.cid}-{tx}"} | info,
                "evse": {"id": c, "connectorId": 1},
            } | extra
            seq += 1
            answer = {} if etype != "Started" else {"idTokenInfo": {"status": "Accepted"}}
            self.call(t, "TransactionEvent", body, answer, **kw)

        if not s.midlife:
            self.status(begin - timedelta(seconds=40), c, "Preparing")
            r = self.reading(s, begin)
            if v16:
                self.call(
                    begin,
                    "StartTransaction",
                    {
                        "connectorId": c,
                        "idTag": tag,
                        "meterStart": int(reg),
                        "timestamp": self.stamp(begin),
                    },
                    {"idTagInfo": {"status": "Accepted"}, "transactionId": tx},
                    lose_answer=self.p.retransmit == "start_lost_answer",
                )
            else:
                # TxStartPoint EVConnected: the transaction starts at plug-in,
                # its register in a Transaction.Begin value.
                plugged = begin - timedelta(seconds=40)
                r0 = self.reading(s, plugged)
                mv0 = [
                    {
                        "timestamp": self.stamp(plugged),
                        "sampledValue": self.sampled(r0, reg, "Transaction.Begin"),
                    }
                ]
                tev(
                    plugged,
                    "Started",
                    "CablePluggedIn",
                    {"chargingState": "EVConnected"},
                    {"meterValue": mv0},
                    lose_answer=self.p.retransmit == "start_lost_answer",
                )
                tev(
                    begin,
                    "Updated",
                    "Authorized",
                    {"chargingState": "EVConnected"},
                    {"idToken": {"idToken": tag, "type": "ISO14443"}},
                )
            self.status(begin + timedelta(seconds=1), c, "Charging")
            if not v16:
                tev(
                    begin + timedelta(seconds=1),
                    "Updated",
                    "ChargingStateChanged",
                    {"chargingState": "Charging"},
                    {},
                )
        t = max(begin, T0) + timedelta(seconds=self.p.sample_s)
        last = max(begin, T0)
        suspended = False
        dup_done = False
        end = at(s.stop)
        first_reg = None
        delivered = 0.0  # what flowed, whatever the register says
        while t < end:
            mins = (t - T0).total_seconds() / 60
            # The meter integrates what flows between samples (5 s steps,
            # midpoint), not the power at the sample times.
            span = (t - last).total_seconds()
            steps = max(1, round(span / 5))
            for k in range(steps):
                mid = last + timedelta(seconds=span * (k + 0.5) / steps)
                p_w = self.reading(s, mid)["power"]
                wh = p_w * span / steps / 3600
                delivered += wh
                m_mid = (mid - T0).total_seconds() / 60
                if not (
                    s.fault == "meter_stuck" and s.fault_at <= m_mid < s.fault_at + s.fault_len
                ):
                    reg += wh
                if self.p.dc:
                    self.soc = min(100.0, self.soc + wh / 600)  # a 60 kWh battery
            r = self.reading(s, t)
            if s.fault == "meter_regression" and last < at(s.fault_at) <= t:
                reg -= 7_500.0  # the meter restarted 7.5 kWh lower, and stays so
            last = t
            if mins >= s.full and not suspended:
                suspended = True
                self.status(t, c, "SuspendedEV")
                if not v16:
                    tev(t, "Updated", "ChargingStateChanged", {"chargingState": "SuspendedEV"}, {})
            if not self.silent(t):
                if first_reg is None:
                    first_reg = reg
                mv = [
                    {
                        "timestamp": self.stamp(t),
                        "sampledValue": self.sampled(r, reg, "Sample.Periodic"),
                    }
                ]
                dup = (
                    self.p.retransmit == "meter_dup_answer" and not dup_done and mins > s.start + 30
                )
                dup_done = dup_done or dup
                if v16:
                    body = {"connectorId": c, "transactionId": tx, "meterValue": mv}
                    if self.p.retransmit == "start_lost_answer" and t < begin + timedelta(
                        seconds=31
                    ):
                        del body["transactionId"]  # not known until the retransmit's answer
                    self.call(t, "MeterValues", body, {}, duplicate=dup)
                else:
                    state = {"chargingState": "SuspendedEV" if suspended else "Charging"}
                    tev(
                        t, "Updated", "MeterValuePeriodic", state, {"meterValue": mv}, duplicate=dup
                    )
            jitter = self.rng.uniform(-1.0, 1.0) if self.p.sample_s >= 10 else 0.0
            t += timedelta(seconds=self.p.sample_s + jitter)
        stop_wh = int(reg)
        reason = "EVDisconnected"
        if v16:
            self.call(
                end,
                "StopTransaction",
                {
                    "transactionId": tx,
                    "meterStop": stop_wh,
                    "timestamp": self.stamp(end),
                    "reason": reason,
                },
                {"idTagInfo": {"status": "Accepted"}},
            )
        else:
            r = self.reading(s, end)
            tev(
                end,
                "Ended",
                "EVDeparted",
                {"stoppedReason": reason, "chargingState": "Idle"},
                {
                    "meterValue": [
                        {
                            "timestamp": self.stamp(end),
                            "sampledValue": self.sampled(r, reg, "Transaction.End"),
                        }
                    ]
                },
            )
        self.status(end + timedelta(milliseconds=500), c, "Finishing")
        self.status(end + timedelta(seconds=45), c, "Available")
        self.reg[c] = float(stop_wh)
        self.reg_hist.setdefault(c, []).append((end, float(stop_wh)))
        true_start = begin if v16 else begin - timedelta(seconds=40)
        if s.midlife:
            true_start = None
        self.sessions.append(
            {
                "charger": self.p.cid,
                "connector": c,
                "transaction_id": str(tx) if v16 else f"{self.p.cid}-{tx}",
                "start": iso(true_start) if true_start else None,
                "stop": iso(end),
                "true_wh": delivered if not s.midlife else None,
                "observed_wh": stop_wh - (first_reg or stop_wh),
                "midlife": s.midlife,
                "regression": s.fault == "meter_regression",
            }
        )

    def aligned(self, end: datetime) -> None:
        """Sample.Clock register values on the quarter hour on idle connectors."""
        if not self.p.aligned_idle:
            return
        t = T0 + timedelta(minutes=15)
        while t < end:
            for c in range(1, self.p.connectors + 1):
                mins = (t - T0).total_seconds() / 60
                if any(
                    s.connector == c and s.start - 1 <= mins <= s.stop + 1 for s in self.p.sessions
                ):
                    continue
                mv = [
                    {
                        "timestamp": self.stamp(t),
                        "sampledValue": self.sampled({}, self.reg_at(c, t), "Sample.Clock"),
                    }
                ]
                if self.p.version == "1.6":
                    self.call(t, "MeterValues", {"connectorId": c, "meterValue": mv}, {})
                else:
                    self.call(t, "MeterValues", {"evseId": c, "meterValue": mv}, {})
            t += timedelta(minutes=15)

    def reg_at(self, c: int, t: datetime) -> float:
        """An idle register stands where the last session before t left it."""
        value = self.initial[c]
        for stop, reg in self.reg_hist.get(c, []):
            if stop <= t:
                value = reg
        return value

    def run(self, end: datetime) -> None:
        self.initial = list(self.reg)
        self.boot()
        for i, s in enumerate(self.p.sessions):
            self.session(s, f"04A2{i:02d}{self.tx:06X}")
        self.aligned(end)
        self.heartbeats(end)


def fleet(cadence: int, version: str) -> list[Plan]:
    """The chargers of one capture: one per fault, plus clean field quirks."""
    v = "6" if version == "1.6" else "2"
    pre = f"F{v}-{cadence}"
    hbs = [60, 300, 900, 3600]
    plans: list[Plan] = []
    for i, fault in enumerate(FAULTS):
        if fault == "over_temperature" and version != "1.6":
            continue  # 2.0.1 MeterValues carry no Temperature measurand
        p = Plan(
            f"{pre}-{fault.replace('_', '')[:10].upper()}",
            version=version,
            sample_s=cadence,
            fault=fault,
        )
        p.hb_s = hbs[i % 3]  # offline at 60 / 300 / 900 s with the answer in the capture
        p.reorder = i % 2 == 1
        p.kwh = i % 4 == 2
        if fault == "charger_offline":
            p.sessions = [Session(1, 20, 80, 100)]
            p.hb_s = {10: 60, 30: 300, 60: 900, 300: 300}[cadence]
            p.offline = (110.0, 110.0 + (2 * p.hb_s + 30) / 60 + 10)
        else:
            # faults long enough to be seen at this cadence: 6 min, 8 min, 10 min
            length = {"voltage_sag": 6, "meter_stuck": 8, "charging_interrupted": 10}.get(fault, 6)
            if fault == "over_temperature":
                length = 10
            # at 300 s a 6 min fault is one or two samples: make it 4 samples long
            length = max(length, 4 * cadence / 60)
            p.sessions = [Session(1, 20, 100, 104, fault=fault, fault_at=50, fault_len=length)]
        plans.append(p)
    clean = [
        # mid-life: booted before the capture, a transaction running at the first frame
        Plan(
            f"{pre}-MIDLIFE",
            boot="none",
            hb_s=300,
            sessions=[Session(1, -30, 60, 64, midlife=True)],
        ),
        Plan(
            f"{pre}-HB900NA",
            boot="unanswered",
            hb_s=900,
            aligned_idle=True,
            sessions=[Session(1, 40, 100, 110)],
        ),
        Plan(
            f"{pre}-HB3600",
            boot="answered",
            hb_s=3600,
            aligned_idle=True,
            sessions=[Session(1, 40, 100, 110)],
        ),
        Plan(
            f"{pre}-HB300NA",
            boot="unanswered",
            hb_s=300,
            skip_hb_busy=True,
            sessions=[Session(1, 30, 90, 95)],
        ),
        Plan(f"{pre}-SKIPHB", hb_s=60, skip_hb_busy=True, sessions=[Session(1, 25, 120, 130)]),
        Plan(
            f"{pre}-TWOCON",
            hb_s=300,
            connectors=2,
            aligned_idle=True,
            reorder=True,
            sessions=[Session(2, 30, 140, 150, kw=22.0)],
        ),
        Plan(f"{pre}-DC", hb_s=60, dc=True, sessions=[Session(1, 30, 85, 88, kw=50.0)]),
        Plan(
            f"{pre}-KWH",
            hb_s=60,
            kwh=True,
            retransmit="meter_dup_answer",
            sessions=[Session(1, 20, 70, 80)],
        ),
        Plan(f"{pre}-CLOCK", hb_s=60, clock_offset_s=3600.0, sessions=[Session(1, 30, 100, 110)]),
        # CEST sent as UTC: two hours ahead
        Plan(f"{pre}-CLOCK2H", hb_s=60, clock_offset_s=7200.0, sessions=[Session(1, 35, 90, 100)]),
        Plan(
            f"{pre}-RETX",
            hb_s=60,
            retransmit="start_lost_answer",
            sessions=[Session(1, 35, 95, 100)],
        ),
    ]
    for p in clean:
        p.version = version
        p.sample_s = cadence
    return plans + clean


def malformed(version: str) -> list[tuple[str, Any, str]]:
    """(source, payload, why): frames a reviewer expects rejected, with a reason."""
    ts = "2026-05-11T07:00:00Z"
    comma = {"timestamp": ts, "sampledValue": [{"value": "12,5"}]}  # a decimal comma
    where = {"connectorId": 1} if version == "1.6" else {"evseId": 1}
    status = {"connectorId": 1, "errorCode": "NoError", "status": "Sleeping", "timestamp": ts}
    return [
        ("cp", "{not json", "malformed"),
        ("cp", [2, "x1", "MeterValues", where | {"meterValue": [comma]}], "bad value"),
        ("cp", [2, "x2", "StatusNotification", status], "unknown status"),
        ("cp", [2, "x3", "FirmwareExploded", {}], "unknown action"),
        ("csms", [3, "never-asked", {"currentTime": ts}], "orphan result"),
    ]


def generate(
    out_dir: Path, cadence: int = 10, version: str = "1.6", seed: int = 17
) -> dict[str, Any]:
    out_dir.mkdir(parents=True, exist_ok=True)
    cap = Capture(seed)
    end = T0 + timedelta(hours=HOURS)
    plans = fleet(cadence, version)
    sessions: list[dict[str, Any]] = []
    for i, p in enumerate(plans):
        ch = Charger(p, cap, tx_base=100 * (i + 1))
        ch.run(end)
        sessions += ch.sessions
    bad = []
    bad_cid = next(p.cid for p in plans if p.cid.endswith("-KWH"))
    for k, (src, payload, why) in enumerate(malformed(version)):
        t = at(45 + 7 * k) + timedelta(seconds=0.5)
        topic = f"ocpp/{version}/{bad_cid}/{src}"
        cap.put(t, topic, payload)
        bad.append({"ts": iso(t), "why": why})
    cap.dump(out_dir / "capture.jsonl")
    faults = []
    for p in plans:
        if p.fault is None:
            continue
        alert, min_s, for_s = FAULTS[p.fault]
        if p.fault == "charger_offline":
            assert p.offline
            onset = at(p.offline[0])
            budget = 2 * p.hb_s + 30
        else:
            s = p.sessions[0]
            onset = at(s.fault_at)
            if p.fault == "over_temperature":
                onset += timedelta(minutes=(75 - 38) / 14)  # the level crossed
            budget = min_s + for_s + 2 * cadence
        faults.append(
            {
                "charger": p.cid,
                "connector": "0" if p.fault == "charger_offline" else "1",
                "fault": p.fault,
                "alert": alert,
                "onset": iso(onset),
                "budget_s": budget,
            }
        )
    truth = {
        "t0": iso(T0),
        "end": iso(end),
        "cadence_s": cadence,
        "version": version,
        "chargers": [
            {"id": p.cid, "fault": p.fault, "hb_s": p.hb_s, "boot": p.boot, "dc": p.dc}
            for p in plans
        ],
        "faults": faults,
        "sessions": sessions,
        "malformed": bad,
    }
    (out_dir / "truth.json").write_text(json.dumps(truth, indent=1))
    lines = [
        "sites:",
        "  - {id: field, timezone: UTC, tariff: flat-energy, kind: public}",
        "chargers:",
    ]
    for p in plans:
        kind = "phases: 0, nominal_voltage_v: 400" if p.dc else "phases: 3, nominal_voltage_v: 230"
        kw = 50000 if p.dc else 22000
        lines.append(
            f"  - {{id: {p.cid}, site: field, connectors: {p.connectors},"
            f" max_power_w: {kw}, {kind}}}"
        )
    (out_dir / "fleet.yaml").write_text("\n".join(lines) + "\n")
    return truth


if __name__ == "__main__":
    a = sys.argv[1:]
    generate(
        Path(a[0]),
        int(a[1]) if len(a) > 1 else 10,
        a[2] if len(a) > 2 else "1.6",
        int(a[3]) if len(a) > 3 else 17,
    )


PAGE = ("warning", "critical")


def _t(s: str) -> datetime:
    return datetime.fromisoformat(s.replace("Z", "+00:00"))


def _jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip()]


def score(truth: dict[str, Any], out: Path) -> dict[str, Any]:
    """The replay's outputs against the truth: per fault its first matching
    alert and time to detect, the pages on clean chargers (and the pages on
    fault chargers that are not their fault), sessions and rejections."""
    alerts = [a for a in _jsonl(out / "alerts.jsonl") if a["state"] == "firing"]
    fault_of = {c["id"]: c["fault"] for c in truth["chargers"]}
    expected = {(f["charger"], f["alert"]) for f in truth["faults"]}
    res: dict[str, Any] = {"faults": [], "false_pages": [], "alerts": alerts}
    for f in truth["faults"]:
        onset = _t(f["onset"])
        hits = sorted(
            _t(a["at"])
            for a in alerts
            if a["alertname"] == f["alert"]
            and a["labels"].get("charger") == f["charger"]
            and a["labels"].get("connector") == f["connector"]
            and a["labels"].get("fault") == f["fault"].replace("voltage_sag", "voltage_out_of_band")
            and _t(a["at"]) >= onset - timedelta(minutes=5)
        )
        ttd = (hits[0] - onset).total_seconds() if hits else None
        res["faults"].append(
            f | {"ttd_s": ttd, "in_budget": ttd is not None and ttd <= f["budget_s"]}
        )
    for a in alerts:
        cid = a["labels"].get("charger")
        if a["labels"].get("severity") not in PAGE or cid not in fault_of:
            continue
        if (cid, a["alertname"]) not in expected:
            res["false_pages"].append(
                {
                    "charger": cid,
                    "alert": a["alertname"],
                    "at": a["at"],
                    "clean": fault_of[cid] is None,
                }
            )
    sessions = _jsonl(out / "sessions.jsonl")
    res["sessions"] = sessions
    res["cdrs"] = _jsonl(out / "cdrs.jsonl")
    seen: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for s in sessions:
        seen.setdefault((s["charger_id"], str(s["transaction_id"])), []).append(s)
    res["session_errors"] = []
    for ts in truth["sessions"]:
        got = seen.pop((ts["charger"], ts["transaction_id"]), [])
        if len(got) != 1:
            res["session_errors"].append({"truth": ts, "got": len(got)})
            continue
        want = ts["true_wh"] if ts["true_wh"] is not None else ts["observed_wh"]
        if not ts["regression"] and abs(got[0]["energy_wh"] - want) > max(0.01 * want, 20):
            res["session_errors"].append({"truth": ts, "energy_wh": got[0]["energy_wh"]})
    res["session_errors"] += [{"phantom": v} for v in seen.values()]
    rejected = _jsonl(out / "rejected.jsonl")
    bad_at = {_t(b["ts"]) for b in truth["malformed"]}
    res["rejected_good"] = [r for r in rejected if _t(r["at"]) not in bad_at]
    res["malformed_kept"] = sorted(bad_at - {_t(r["at"]) for r in rejected})
    return res
