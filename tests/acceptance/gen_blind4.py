"""A fourth blind generator of OCPP fleet captures with ground truth.

Written from the OCPP 1.6J and 2.0.1 specifications and the shapes real
chargers send (tests/fixtures/real_ocpp/), without reading chargewatch's
detector or session code, and aimed at what gen_ocpp.py, gen_field.py and
gen_blind.py do not produce (docs/evaluation.md):

- MeterValues every 30 s and every 300 s; heartbeats every 300 and 900 s;
- a 1.6 and a 2.0.1 fleet in one capture;
- DC chargers at 150 and 350 kW with SoC, Power.Offered and Current.Offered,
  a ramp and a taper above 80 % SoC, registers in kWh (with `unit`) and in
  the spec default (no measurand, no unit: Wh);
- 2.0.1 TransactionEvent Started at plug-in (EVConnected), Updated Authorized,
  chargingState EVConnected -> Charging -> SuspendedEVSE (load management) ->
  Charging -> SuspendedEV -> EVConnected, Ended Idle, with the register per
  phase (L1, L2, L3) beside the total;
- a register that restarts at 0 with every transaction (meterStart 0);
- two connectors of one charger charging at once, one started and stopped by
  the CSMS (RemoteStartTransaction / RemoteStopTransaction);
- a charger offline for 15 min during a session, which queues its MeterValues
  and its StopTransaction (with transactionData) and sends them after it
  reconnects: late but valid (heartbeat 900 s, so no outage by the docs);
- residential overnight stays (site kind residential: connected and idle for
  4 h after charging, which pages nobody) and the same stay on a public site
  (IdleBlocking, info);
- connector 0: the CSMS takes a charger out of service (ChangeAvailability
  Inoperative on connector 0) and back; a station-level fault reported on
  connector 0 (Faulted, OtherError with a vendor error code).

Faults, each on its own charger: over-temperature, ground failure (with a
vendor error code), a vendor fault on connector 0, phase loss, a voltage sag on
one phase, a stuck register while 100 kW flows, a charger offline at a 300 s
heartbeat, charging interrupted, and a register regression in mid-session
(not a per-transaction restart). A meter-borne fault with fewer than 3
periodic samples in its window is marked not detectable (docs/evaluation.md,
"Scoring"), with the count as its reason.

The capture's file shape is gen_ocpp's (its Writer). Deterministic for a
cadence.

Run: python -m tests.acceptance.gen_blind4 OUT_DIR [CADENCE_S]
"""

from __future__ import annotations

import json
import math
import sys
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from tests.acceptance.gen_ocpp import Writer, iso, iso_charger

T0 = datetime(2026, 11, 19, 17, 0, 0, tzinfo=UTC)  # a weekday evening
HOURS = 5.0
END = HOURS * 3600
V_NOM = 230.0

# fault -> (alert, detector minimum s, rule `for` s, meter-borne), from
# docs/alerting.md's "Time to detect" table.
FAULTS: dict[str, tuple[str, float, float, bool]] = {
    "over_temperature": ("OverTemperature", 60, 0, True),
    "GroundFailure": ("OcppGroundFailure", 0, 60, False),
    "vendor_fault_conn0": ("OcppOtherError", 0, 300, False),
    "phase_loss": ("PhaseLoss", 30, 30, True),
    "voltage_sag": ("VoltageOutOfBand", 60, 120, True),
    "meter_stuck": ("MeterStuck", 120, 180, True),
    "charger_offline": ("ChargerOffline", 0, 0, False),
    "charging_interrupted": ("ChargingInterrupted", 60, 0, True),
    "meter_regression": ("MeterRegression", 0, 60, True),
}


def at(s: float) -> datetime:
    return T0 + timedelta(seconds=s)


def m(minutes: float) -> float:
    return minutes * 60.0


@dataclass
class Tx:
    """One charge on a connector, times in s from T0."""

    conn: int
    plug: float
    start: float  # authorised; energy may flow from start + 5 s
    full: float  # the car stops drawing (SuspendedEV)
    stop: float  # the transaction stops
    unplug: float
    kw: float
    remote: bool = False  # RemoteStart / RemoteStop from the CSMS
    evse_pause: tuple[float, float] | None = None  # SuspendedEVSE (load management)
    soc0: float = 18.0  # DC
    cap_kwh: float = 64.0  # DC


@dataclass
class Station:
    cid: str
    behaviour: str
    version: str
    hb_s: int
    sample_s: int
    txs: list[Tx]
    connectors: int = 1
    dc: bool = False
    phases: int = 3  # AC; 0 for DC
    max_kw: float = 22.0
    site: str = "b4-public"
    unit: str = "Wh"  # "Wh", "kWh", or "default" (no measurand, no unit)
    power: bool = True  # Power/Current/Voltage measurands besides the register
    per_tx_restart: bool = False  # register restarts at 0 with every transaction
    per_phase_energy: bool = False
    temperature: bool = False
    fault: str | None = None
    f_from: float = 0.0
    f_to: float = 0.0
    offline: tuple[float, float] | None = None  # silent
    queue: bool = False  # transaction messages queued while offline, sent after
    inoperative: tuple[float, float] | None = None  # ChangeAvailability on connector 0


@dataclass
class ConnState:
    reg: float = 0.0  # the meter's true register, Wh
    base: float = 0.0  # subtracted when the register restarts per transaction
    offset: float = 0.0  # a regression's fall, kept
    stuck_at: float | None = None
    tx: Tx | None = None
    txid: str = ""
    meter_start: int = 0
    next_sample: float = 0.0
    soc: float = 0.0
    temp: float = 30.0
    state: str = "Available"  # 1.6 status (2.0.1 mapped)
    seq: int = 0


def charging_state_201(status16: str) -> str:
    return {
        "Preparing": "EVConnected",
        "Charging": "Charging",
        "SuspendedEV": "SuspendedEV",
        "SuspendedEVSE": "SuspendedEVSE",
        "Finishing": "EVConnected",
    }.get(status16, "Idle")


class Sim:
    def __init__(self, st: Station, w: Writer, tx_base: int) -> None:
        self.st = st
        self.w = w
        self.msg = 0
        self.tx_no = tx_base
        self.conns = {
            c: ConnState(reg=5_000.0 + 1_234_567.0 * c) for c in range(1, st.connectors + 1)
        }
        self.queued: list[tuple[float, str, dict[str, Any], dict[str, Any]]] = []
        self.sessions: list[dict[str, Any]] = []
        self.last_sent = 0.0
        self.samples: list[tuple[int, float]] = []  # (connector, time) of periodic samples
        self.last_sign_before_offline: float | None = None

    # transport ------------------------------------------------------------------
    def topic(self, src: str) -> str:
        return f"ocpp/{self.st.version}/{self.st.cid}/{src}"

    def transit(self) -> float:
        # Deterministic 0.1-0.9 s from the charger's send to the collector.
        self.msg += 1
        return 0.1 + (self.msg * 0.37) % 0.8

    def is_offline(self, s: float) -> bool:
        o = self.st.offline
        return o is not None and o[0] <= s < o[1]

    def call(self, s: float, action: str, body: dict[str, Any], answer: dict[str, Any]) -> None:
        if self.is_offline(s):
            # OCPP 1.6 section 4.7 / 2.0.1 E04: transaction messages are queued
            # and delivered in order once the connection is back; the rest is
            # dropped (a status is re-sent as it is then).
            if self.st.queue and action in ("MeterValues", "StopTransaction", "TransactionEvent"):
                self.queued.append((s, action, body, answer))
            return
        self.emit(s, s + self.transit(), action, body, answer)

    def emit(
        self, s: float, rx_s: float, action: str, body: dict[str, Any], answer: dict[str, Any]
    ) -> None:
        mid = f"{self.st.cid[-4:]}-{self.msg}"
        self.w.put(at(rx_s), self.topic("cp"), [2, mid, action, body])
        self.w.put(at(rx_s + 0.15), self.topic("csms"), [3, mid, answer])
        self.last_sent = max(self.last_sent, s)

    def csms_call(self, s: float, action: str, body: dict[str, Any]) -> None:
        self.msg += 1
        mid = f"csms-{self.st.cid[-4:]}-{self.msg}"
        self.w.put(at(s), self.topic("csms"), [2, mid, action, body])
        self.w.put(at(s + 0.4), self.topic("cp"), [3, mid, {"status": "Accepted"}])

    def flush_queue(self, s: float) -> None:
        for k, (t, action, body, answer) in enumerate(self.queued):
            self.emit(t, s + 0.5 + 0.3 * k, action, body, answer)
        self.queued = []

    # messages ---------------------------------------------------------------------
    def boot(self, s: float) -> None:
        if self.st.version == "1.6":
            body: dict[str, Any] = {
                "chargePointVendor": "Ampero",
                "chargePointModel": "HPC350" if self.st.dc else "Wallbox-AC",
                "chargePointSerialNumber": f"AMP-{self.st.cid[-4:]}",
                "firmwareVersion": "5.2.0",
            }
        else:
            body = {
                "chargingStation": {
                    "model": "HPC350" if self.st.dc else "Wallbox-AC",
                    "vendorName": "Ampero",
                    "firmwareVersion": "5.2.0",
                },
                "reason": "PowerUp",
            }
        ans = {"status": "Accepted", "currentTime": iso_charger(at(s)), "interval": self.st.hb_s}
        self.call(s, "BootNotification", body, ans)
        if self.st.version == "1.6":
            self.status(s + 1, 0, "Available")
        for c in self.conns:
            self.status(s + 1 + c, c, "Available")

    def status(
        self,
        s: float,
        conn: int,
        status: str,
        err: str = "NoError",
        vendor: tuple[str, str] | None = None,
    ) -> None:
        if conn:
            self.conns[conn].state = status
        if self.st.version == "1.6":
            body: dict[str, Any] = {
                "connectorId": conn,
                "errorCode": err,
                "status": status,
                "timestamp": iso_charger(at(s)),
            }
            if vendor:
                body["vendorId"] = "com.ampero"
                body["vendorErrorCode"] = vendor[0]
                body["info"] = vendor[1]
            self.call(s, "StatusNotification", body, {})
            return
        occupied = ("Preparing", "Charging", "SuspendedEV", "SuspendedEVSE", "Finishing")
        body = {
            "timestamp": iso_charger(at(s)),
            "connectorStatus": "Occupied" if status in occupied else status,
            "evseId": conn,
            "connectorId": 1,
        }
        self.call(s, "StatusNotification", body, {})

    def reported(self, c: int) -> float:
        cs = self.conns[c]
        if cs.stuck_at is not None:
            return cs.stuck_at
        return cs.reg - cs.base - cs.offset

    def register_values(self, c: int, ctx: str) -> list[dict[str, Any]]:
        v = self.reported(c)
        st = self.st
        if st.version == "1.6":
            if st.unit == "default":
                return [{"value": f"{v:.0f}", "context": ctx}]
            if st.unit == "kWh":
                return [
                    {
                        "value": f"{v / 1000:.3f}",
                        "context": ctx,
                        "measurand": "Energy.Active.Import.Register",
                        "location": "Outlet",
                        "unit": "kWh",
                    }
                ]
            return [
                {
                    "value": f"{v:.0f}",
                    "context": ctx,
                    "format": "Raw",
                    "measurand": "Energy.Active.Import.Register",
                    "location": "Outlet",
                    "unit": "Wh",
                }
            ]
        out: list[dict[str, Any]] = []

        def one(x: float, phase: str | None) -> dict[str, Any]:
            d: dict[str, Any] = {"context": ctx, "measurand": "Energy.Active.Import.Register"}
            if st.unit == "kWh":
                d["value"] = round(x / 1000, 3)
                d["unitOfMeasure"] = {"unit": "kWh"}
            else:
                d["value"] = round(x)  # 2.0.1 default unit: Wh
            if phase:
                d["phase"] = phase
            return d

        out.append(one(v, None))
        if st.per_phase_energy:
            out += [one(v / 3, ph) for ph in ("L1", "L2", "L3")]
        return out

    def sv(self, value: float, measurand: str, unit: str, ctx: str, **kw: str) -> dict[str, Any]:
        if self.st.version == "1.6":
            d: dict[str, Any] = {
                "value": f"{value:.1f}",
                "context": ctx,
                "measurand": measurand,
                "unit": unit,
            }
        else:
            d = {
                "value": round(value, 1),
                "context": ctx,
                "measurand": measurand,
                "unitOfMeasure": {"unit": unit},
            }
        return d | kw

    def periodic(self, c: int, e: dict[str, Any], ctx: str) -> list[dict[str, Any]]:
        vals = self.register_values(c, ctx)
        if not self.st.power or ctx != "Sample.Periodic":
            return vals
        if self.st.dc:
            vals += [
                self.sv(e["w"], "Power.Active.Import", "W", ctx),
                self.sv(e["offered_w"], "Power.Offered", "W", ctx),
                self.sv(e["amps"][0], "Current.Import", "A", ctx),
                self.sv(e["offered_a"], "Current.Offered", "A", ctx),
                self.sv(e["volts"][0], "Voltage", "V", ctx),
                self.sv(e["soc"], "SoC", "Percent", ctx, location="EV"),
            ]
        else:
            vals.append(self.sv(e["w"], "Power.Active.Import", "W", ctx))
            for i, ph in enumerate(("L1", "L2", "L3")[: self.st.phases]):
                vals.append(self.sv(e["amps"][i], "Current.Import", "A", ctx, phase=ph))
            for i, ph in enumerate(("L1-N", "L2-N", "L3-N")[: self.st.phases]):
                vals.append(self.sv(e["volts"][i], "Voltage", "V", ctx, phase=ph))
            vals.append(self.sv(e["offered_a"], "Current.Offered", "A", ctx))
        if self.st.temperature:
            vals.append(self.sv(e["temp"], "Temperature", "Celsius", ctx, location="Body"))
        return vals

    def tx_event(
        self,
        s: float,
        c: int,
        kind: str,
        trigger: str,
        state: str,
        mv: list[dict[str, Any]] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        cs = self.conns[c]
        info: dict[str, Any] = {"transactionId": cs.txid, "chargingState": state}
        if extra and "stoppedReason" in extra:
            info["stoppedReason"] = extra.pop("stoppedReason")
        body: dict[str, Any] = {
            "eventType": kind,
            "timestamp": iso_charger(at(s)),
            "triggerReason": trigger,
            "seqNo": cs.seq,
            "transactionInfo": info,
        }
        if kind == "Started":
            body["evse"] = {"id": c, "connectorId": 1}
        cs.seq += 1
        if mv:
            body["meterValue"] = [{"timestamp": iso_charger(at(s)), "sampledValue": mv}]
        if extra:
            body |= extra
        ans: dict[str, Any] = {}
        if "idToken" in body:
            ans = {"idTokenInfo": {"status": "Accepted"}}
        self.call(s, "TransactionEvent", body, ans)

    # electrical ----------------------------------------------------------------------
    def elec(self, c: int, s: float) -> dict[str, Any]:
        """What flows at second s on connector c (its transaction is open)."""
        cs = self.conns[c]
        tx = cs.tx
        assert tx is not None
        st = self.st
        faulty = st.fault is not None and st.f_from <= s < st.f_to and c == 1
        wobble = 0.6 * math.sin(s / 97.0 + c)
        volts = [V_NOM + wobble, V_NOM - 0.8 + wobble, V_NOM + 0.5 - wobble][: max(st.phases, 1)]
        flowing = tx.start + 5 <= s < tx.full
        status = "Charging" if flowing else ("SuspendedEV" if s >= tx.full else "Preparing")
        if tx.start <= s < tx.start + 5:
            status = "Charging"
        if flowing and tx.evse_pause and tx.evse_pause[0] <= s < tx.evse_pause[1]:
            flowing = False
            status = "SuspendedEVSE"
        e: dict[str, Any] = {"status": status, "temp": cs.temp}
        if st.dc:
            kw = 0.0
            if flowing and cs.soc < 99.0:
                ramp = min(1.0, (s - tx.start - 5) / 40.0)
                top = tx.kw if cs.soc < 80 else max(0.15 * tx.kw, tx.kw * (1 - (cs.soc - 80) / 22))
                kw = top * ramp
                cs.soc = min(100.0, cs.soc + kw / 3600.0 / tx.cap_kwh * 100.0)
            v = 620.0 + cs.soc * 1.2
            e |= {
                "w": kw * 1000,
                "amps": [kw * 1000 / v],
                "volts": [v],
                "offered_w": tx.kw * 1000 if flowing else 0.0,
                "offered_a": min(500.0, tx.kw * 1000 / v) if flowing else 0.0,
                "soc": cs.soc,
            }
        else:
            a = tx.kw * 1000 / (st.phases * V_NOM) if flowing else 0.0
            amps = [a] * st.phases
            offered = round(tx.kw * 1000 / (st.phases * V_NOM))
            e |= {"amps": amps, "volts": volts, "offered_a": float(offered)}
        if faulty:
            self.apply_fault(e, cs, s)
        elif cs.temp > 32.0:
            cs.temp = max(32.0, cs.temp - 4.0 / 60.0)  # cooling once the fault is gone
            e["temp"] = cs.temp
        if not st.dc:
            e["w"] = sum(i * v for i, v in zip(e["amps"], e["volts"], strict=True))
        return e

    def apply_fault(self, e: dict[str, Any], cs: ConnState, s: float) -> None:
        f = self.st.fault
        if f == "phase_loss":  # L3 fuse: no voltage, no current
            e["volts"][2] = 0.0
            e["amps"][2] = 0.0
        elif f == "voltage_sag":  # L2 at 0.85 p.u. under load
            e["volts"][1] = 0.85 * V_NOM
        elif f == "over_temperature":  # a loose terminal: +7 C/min
            cs.temp = min(98.0, cs.temp + 7.0 / 60.0)
            e["temp"] = cs.temp
        elif f == "charging_interrupted":  # contactor open, still Charging
            e["amps"] = [0.0] * len(e["amps"])
            e["status"] = "Charging"
        elif f == "GroundFailure":  # RCD tripped: nothing flows, Faulted
            e["amps"] = [0.0] * len(e["amps"])
            e["status"] = "Faulted"

    # the run -------------------------------------------------------------------------
    def run(self) -> None:
        st = self.st
        self.boot(20.0)
        next_hb = 20.0 + st.hb_s
        s = 30.0
        while s < END:
            if st.offline and s == st.offline[0]:
                self.last_sign_before_offline = self.last_sent
            if st.offline and s == st.offline[1]:
                # Back: statuses as they are now, then the queue, in order.
                for c, cs in self.conns.items():
                    self.status(s, c, cs.state)
                self.flush_queue(s + 1)
                next_hb = s + st.hb_s
            if s >= next_hb:
                self.call(s, "Heartbeat", {}, {"currentTime": iso_charger(at(s))})
                next_hb = s + st.hb_s
            if st.inoperative and s == st.inoperative[0]:
                self.csms_call(
                    s - 1, "ChangeAvailability", {"connectorId": 0, "type": "Inoperative"}
                )
                self.status(s, 0, "Unavailable")
                for c in self.conns:
                    self.status(s + 1, c, "Unavailable")
            if st.inoperative and s == st.inoperative[1]:
                self.csms_call(s - 1, "ChangeAvailability", {"connectorId": 0, "type": "Operative"})
                self.status(s, 0, "Available")
                for c in self.conns:
                    self.status(s + 1, c, "Available")
            if st.fault == "vendor_fault_conn0":
                if s == st.f_from:
                    self.status(
                        s, 0, "Faulted", "OtherError", ("PM3-OVT", "power module 3 tripped")
                    )
                if s == st.f_to:
                    self.status(s, 0, "Available")
            for c in self.conns:
                self.step(c, s)
            s += 1.0

    def step(self, c: int, s: float) -> None:
        st = self.st
        cs = self.conns[c]
        for tx in st.txs:
            if tx.conn == c and s == tx.plug:
                cs.tx = tx
                self.plug(c, s)
        tx = cs.tx
        if tx is None:
            return
        if s == tx.start:
            self.start(c, s)
        if tx.start <= s < tx.unplug:
            e = self.elec(c, s)
            cs.reg += e["w"] / 3600.0
            if st.fault == "meter_stuck" and c == 1:
                if st.f_from <= s < st.f_to:
                    if cs.stuck_at is None:
                        cs.stuck_at = self.reported(c)
                elif s >= st.f_to:
                    cs.stuck_at = None  # the register catches up
            if st.fault == "meter_regression" and c == 1 and s == st.f_from:
                cs.offset = 4_000.0  # falls 4 kWh mid-session and stays down
            if s < tx.stop:
                if e["status"] != cs.state and s > tx.start + 1:
                    self.state_change(c, s, e)
                if s >= cs.next_sample:
                    self.samples.append((c, s))
                    self.sample(c, s, e)
                    cs.next_sample += st.sample_s
        if s == tx.stop:
            self.stop(c, s)
        if s == tx.unplug:
            self.unplug(c, s)
            cs.tx = None

    def plug(self, c: int, s: float) -> None:
        cs = self.conns[c]
        self.status(s, c, "Preparing")
        if self.st.version == "2.0.1":
            self.tx_no += 1
            cs.txid = f"{self.st.cid.lower()}-{self.tx_no}"
            cs.seq = 0
            if self.st.per_tx_restart:
                cs.base = cs.reg
            cs.meter_start = round(self.reported(c))
            self.tx_event(
                s,
                c,
                "Started",
                "CablePluggedIn",
                "EVConnected",
                self.register_values(c, "Transaction.Begin"),
            )

    def start(self, c: int, s: float) -> None:
        cs = self.conns[c]
        tx = cs.tx
        assert tx is not None
        tag = "APP-7781" if tx.remote else f"04{c:02d}C3D4E5"
        cs.next_sample = s + self.st.sample_s
        cs.soc = tx.soc0
        cs.temp = 32.0
        if self.st.version == "1.6":
            if tx.remote:
                self.csms_call(s - 3, "RemoteStartTransaction", {"connectorId": c, "idTag": tag})
            else:
                self.call(s - 2, "Authorize", {"idTag": tag}, {"idTagInfo": {"status": "Accepted"}})
            self.tx_no += 1
            cs.txid = str(self.tx_no)
            if self.st.per_tx_restart:
                cs.base = cs.reg
            cs.meter_start = round(self.reported(c))
            body = {
                "connectorId": c,
                "idTag": tag,
                "meterStart": cs.meter_start,
                "timestamp": iso_charger(at(s)),
            }
            ans = {"transactionId": self.tx_no, "idTagInfo": {"status": "Accepted"}}
            self.call(s, "StartTransaction", body, ans)
            self.status(s + 1, c, "Charging")
            return
        self.tx_event(
            s,
            c,
            "Updated",
            "Authorized",
            "EVConnected",
            extra={"idToken": {"idToken": tag, "type": "ISO14443"}},
        )
        self.tx_event(s + 1, c, "Updated", "ChargingStateChanged", "Charging")
        self.conns[c].state = "Charging"

    def state_change(self, c: int, s: float, e: dict[str, Any]) -> None:
        status = e["status"]
        if status == "Faulted":
            self.status(s, c, "Faulted", "GroundFailure", ("0x2A", "RCD tripped (30 mA AC)"))
            if self.st.version == "2.0.1":
                self.tx_event(s, c, "Updated", "ChargingStateChanged", "SuspendedEVSE")
            return
        if self.st.version == "1.6":
            self.status(s, c, status)
            return
        self.conns[c].state = status
        trig = "ChargingRateChanged" if "EVSE" in status else "ChargingStateChanged"
        self.tx_event(s, c, "Updated", trig, charging_state_201(status))

    def sample(self, c: int, s: float, e: dict[str, Any]) -> None:
        vals = self.periodic(c, e, "Sample.Periodic")
        cs = self.conns[c]
        if self.st.version == "1.6":
            body = {
                "connectorId": c,
                "transactionId": int(cs.txid),
                "meterValue": [{"timestamp": iso_charger(at(s)), "sampledValue": vals}],
            }
            self.call(s, "MeterValues", body, {})
            return
        self.tx_event(s, c, "Updated", "MeterValuePeriodic", charging_state_201(cs.state), vals)

    def stop(self, c: int, s: float) -> None:
        cs = self.conns[c]
        tx = cs.tx
        assert tx is not None
        meter_stop = round(self.reported(c))
        if self.st.version == "1.6":
            if tx.remote:
                self.csms_call(s - 1, "RemoteStopTransaction", {"transactionId": int(cs.txid)})
            begin = {
                "timestamp": iso_charger(at(tx.start)),
                "sampledValue": self.begin_values(c),
            }
            end = {
                "timestamp": iso_charger(at(s)),
                "sampledValue": self.register_values(c, "Transaction.End"),
            }
            body = {
                "transactionId": int(cs.txid),
                "idTag": "APP-7781" if tx.remote else f"04{c:02d}C3D4E5",
                "meterStop": meter_stop,
                "timestamp": iso_charger(at(s)),
                "reason": "Remote" if tx.remote else "EVDisconnected",
                "transactionData": [begin, end],
            }
            self.call(s, "StopTransaction", body, {"idTagInfo": {"status": "Accepted"}})
            self.status(s + 1, c, "Finishing")
        else:
            self.tx_event(s, c, "Updated", "StopAuthorized", "EVConnected")
            cs.state = "Finishing"
        self.sessions.append(
            {
                "charger": self.st.cid,
                "connector": c,
                "transaction_id": cs.txid,
                "meter_start_wh": cs.meter_start,
                "meter_stop_wh": meter_stop,
                "true_wh": round(cs.reg - cs.base - cs.offset - cs.meter_start, 1)
                if self.st.fault != "meter_regression"
                else None,
                "stop": iso(at(s)),
            }
        )

    def begin_values(self, c: int) -> list[dict[str, Any]]:
        # The Transaction.Begin register the charger kept: meterStart.
        cs = self.conns[c]
        keep = (cs.reg, cs.base, cs.offset, cs.stuck_at)
        cs.reg, cs.base, cs.offset, cs.stuck_at = float(cs.meter_start), 0.0, 0.0, None
        vals = self.register_values(c, "Transaction.Begin")
        cs.reg, cs.base, cs.offset, cs.stuck_at = keep
        return vals

    def unplug(self, c: int, s: float) -> None:
        cs = self.conns[c]
        if self.st.version == "2.0.1":
            self.tx_event(
                s,
                c,
                "Ended",
                "EVCommunicationLost",
                "Idle",
                self.register_values(c, "Transaction.End"),
                {"stoppedReason": "EVDisconnected"},
            )
        self.status(s + 1, c, "Available")
        cs.state = "Available"


# --- the fleet -------------------------------------------------------------------------


def fleet(cadence: int) -> list[Station]:
    """Eight clean chargers and nine with one fault each, 1.6 and 2.0.1 mixed."""
    sm = cadence
    ac = {"phases": 3, "max_kw": 22.0}
    out: list[Station] = [
        Station(
            "B4-DC16",
            "dc_150kw_kwh_register_taper",
            "1.6",
            300,
            sm,
            [
                Tx(1, m(10), m(11), m(34), m(35), m(36), 150.0, soc0=15.0, cap_kwh=64.0),
                Tx(1, m(120), m(121), m(140), m(141), m(142), 150.0, soc0=40.0, cap_kwh=80.0),
            ],
            dc=True,
            phases=0,
            max_kw=150.0,
            unit="kWh",
        ),
        Station(
            "B4-DC201",
            "dc_350kw_201_default_unit",
            "2.0.1",
            900,
            sm,
            [Tx(1, m(30), m(31), m(46), m(48), m(50), 350.0, soc0=10.0, cap_kwh=100.0)],
            dc=True,
            phases=0,
            max_kw=350.0,
            unit="default",
        ),
        Station(
            "B4-AC201",
            "ac_201_per_phase_energy_states_restart",
            "2.0.1",
            300,
            sm,
            [
                Tx(1, m(15), m(16), m(100), m(110), m(112), 11.0, evse_pause=(m(40), m(52))),
                Tx(1, m(150), m(151), m(200), m(205), m(206), 11.0),
            ],
            per_phase_energy=True,
            per_tx_restart=True,
            unit="kWh",
            **ac,  # type: ignore[arg-type]
        ),
        Station(
            "B4-DUO16",
            "two_connectors_at_once_default_register_restart_remote",
            "1.6",
            900,
            sm,
            [
                Tx(1, m(20), m(21), m(95), m(100), m(101), 11.0),
                Tx(2, m(40), m(41), m(120), m(125), m(126), 7.4, remote=True),
                Tx(1, m(160), m(161), m(230), m(235), m(236), 11.0),
            ],
            connectors=2,
            unit="default",
            power=False,
            per_tx_restart=True,
            **ac,  # type: ignore[arg-type]
        ),
        Station(
            "B4-QUEUE16",
            "offline_15min_queued_stop",
            "1.6",
            900,
            sm,
            [Tx(1, m(20), m(21), m(90), m(95), m(96), 11.0)],
            offline=(m(85), m(100)),
            queue=True,
            **ac,  # type: ignore[arg-type]
        ),
        Station(
            "B4-HOME16",
            "residential_overnight",
            "1.6",
            900,
            sm,
            [Tx(1, m(10), m(11), m(65), m(290), m(291), 7.4)],
            phases=1,
            max_kw=7.4,
            site="b4-home",
        ),
        Station(
            "B4-PUBIDLE",
            "public_overnight_same_stay",
            "1.6",
            900,
            sm,
            [Tx(1, m(10), m(11), m(65), m(290), m(291), 7.4)],
            phases=1,
            max_kw=7.4,
        ),
        Station(
            "B4-CONN0",
            "connector0_inoperative_then_operative",
            "1.6",
            300,
            sm,
            [Tx(1, m(120), m(121), m(170), m(172), m(173), 11.0)],
            inoperative=(m(30), m(60)),
            **ac,  # type: ignore[arg-type]
        ),
    ]

    def fault(cid: str, version: str, kind: str, f_from: float, f_len: float, **kw: Any) -> None:
        tx = kw.pop("tx", Tx(1, m(10), m(11), m(160), m(162), m(163), 11.0))
        out.append(
            Station(
                cid,
                kind,
                version,
                kw.pop("hb_s", 300),
                sm,
                [tx] if tx else [],
                fault=kind,
                f_from=f_from,
                f_to=f_from + f_len,
                **({"phases": 3, "max_kw": 22.0} | kw),
            )
        )

    fault("B4-F-TEMP", "1.6", "over_temperature", m(40) + 7, m(25), temperature=True)
    fault("B4-F-GND", "1.6", "GroundFailure", m(50) + 3, m(120))
    fault("B4-F-VEND0", "1.6", "vendor_fault_conn0", m(35), m(20), tx=None)
    fault("B4-F-PHL", "2.0.1", "phase_loss", m(60) + 11, m(8))
    fault("B4-F-SAG", "1.6", "voltage_sag", m(45) + 4, m(20))
    fault(
        "B4-F-STUCK",
        "1.6",
        "meter_stuck",
        m(22) + 9,
        m(20),
        tx=Tx(1, m(10), m(11), m(70), m(72), m(73), 100.0, soc0=5.0, cap_kwh=120.0),
        dc=True,
        phases=0,
        max_kw=150.0,
        unit="kWh",
    )
    fault(
        "B4-F-OFF",
        "1.6",
        "charger_offline",
        m(60) + 13,
        m(30),
        tx=None,
        offline=(m(60) + 13, m(90) + 13),
    )
    fault("B4-F-INT", "2.0.1", "charging_interrupted", m(70) + 6, m(15))
    fault("B4-F-REG", "1.6", "meter_regression", m(80) + 17, m(60))
    return out


def generate(out_dir: Path, cadence: int) -> dict[str, Any]:
    out_dir.mkdir(parents=True, exist_ok=True)
    w = Writer()
    stations = fleet(cadence)
    sims = [Sim(st, w, 1000 * (i + 1)) for i, st in enumerate(stations)]
    sessions: list[dict[str, Any]] = []
    faults: list[dict[str, Any]] = []
    for sim in sims:
        sim.run()
        sessions += sim.sessions
        st = sim.st
        if st.fault is None:
            continue
        alert, min_s, for_s, meter_borne = FAULTS[st.fault]
        onset = st.f_from
        detectable, why = True, ""
        if st.fault == "charger_offline":
            assert sim.last_sign_before_offline is not None
            onset = sim.last_sign_before_offline
            budget = 2 * st.hb_s + 30 + for_s
        elif meter_borne:
            if st.fault == "over_temperature":
                # Onset is the level crossed (75 C from 32 C at 7 C/min): below
                # it, a 7 C/min rise is a warm-up to docs/detectors.md.
                onset += (75.0 - 32.0) / 7.0 * 60.0
            n = sum(1 for c, t in sim.samples if c == 1 and st.f_from <= t < st.f_to)
            budget = min_s + for_s + 2 * st.sample_s
            if n < 3:
                detectable, why = False, f"{n} samples in its {st.f_to - st.f_from:.0f} s window"
        else:
            budget = min_s + for_s
        faults.append(
            {
                "charger": st.cid,
                "connector": "0" if st.fault in ("charger_offline", "vendor_fault_conn0") else "1",
                "fault": st.fault,
                "alert": alert,
                "onset": iso(at(onset)),
                "end": iso(at(st.f_to)),
                "budget_s": budget,
                "detectable": detectable,
                "not_detectable_why": why,
            }
        )
    w.dump(out_dir / "capture.jsonl")
    truth = {
        "t0": iso(T0),
        "end": iso(at(END)),
        "cadence_s": cadence,
        "chargers": [
            {
                "id": st.cid,
                "behaviour": st.behaviour,
                "version": st.version,
                "fault": st.fault,
                "hb_s": st.hb_s,
                "site": st.site,
            }
            for st in stations
        ],
        "faults": faults,
        "sessions": sessions,
    }
    (out_dir / "truth.json").write_text(json.dumps(truth, indent=1))
    lines = [
        "sites:",
        "  - {id: b4-public, timezone: Europe/Amsterdam, tariff: flat-energy, kind: public}",
        "  - {id: b4-home, timezone: Europe/Amsterdam, tariff: flat-energy, kind: residential}",
        "chargers:",
    ]
    for st in stations:
        kind = (
            "phases: 0, nominal_voltage_v: 800"
            if st.dc
            else f"phases: {st.phases}, nominal_voltage_v: 230"
        )
        lines.append(
            f"  - {{id: {st.cid}, site: {st.site}, connectors: {st.connectors},"
            f" max_power_w: {st.max_kw * 1000:.0f}, {kind}}}"
        )
    (out_dir / "fleet.yaml").write_text("\n".join(lines) + "\n")
    return truth


if __name__ == "__main__":
    a = sys.argv[1:]
    t = generate(Path(a[0]), int(a[1]) if len(a) > 1 else 30)
    print(len(t["chargers"]), "chargers,", len(t["sessions"]), "sessions")
