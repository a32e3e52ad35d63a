"""A third, blind generator of OCPP fleet captures with ground truth.

Written from the OCPP 1.6J and 2.0.1 specifications and from field behaviour,
without reading chargewatch's detectors or rules, and aimed at CLEAN traffic
that tests/acceptance/gen_ocpp.py and gen_field.py do not produce and that a
naive monitor would page on:

- smart charging: the CSMS sends SetChargingProfile (TxProfile) cutting the
  limit from 32 A to 6 A and back mid-session (Current.Offered follows, the
  car follows the pilot within a few seconds);
- a load-balanced site: three chargers share 32 A, the CSMS re-divides it as
  cars arrive and leave;
- a car pausing (SuspendedEV, 0 A, register flat) for 15 min and resuming;
- DC charging at 150 kW tapering to 20 kW above 80 % SoC;
- a charger losing power mid-session: silent, BootNotification, then the open
  transaction stopped with reason PowerLoss (1.6 StopTransaction with the last
  meterStop; 2.0.1 TransactionEvent Ended, stoppedReason PowerLoss) and a new
  one started for the car still plugged in;
- MeterValues carrying Inlet and Outlet registers, Energy.Active.Import.Interval
  beside the Register, clock-aligned (Sample.Clock) values every 900 s in a
  transaction, Transaction.Begin / Transaction.End samples;
- a single-phase car on a three-phase charger (L2/L3 at 0 A, voltages present);
- Preparing that times out with no car authorised (no transaction); an RFID
  rejected (Authorize Invalid) before a good one starts the session;
- heartbeats every 60/300/900 s; MeterValues every 10/30/60/300 s with +-1 s
  jitter; a few frames received out of order by 1-2 s.

Faults, each on its own charger with its onset, are ones docs/detectors.md and
docs/alerting.md say are caught: over-temperature (1.6: Temperature measurand;
2.0.1, whose MeasurandEnumType has no Temperature: a TemperatureSensor problem),
GroundFailure, ConnectorLockFailure, InternalError (1.6), EVCommunicationError
(1.6), phase loss, a voltage sag on one phase, a stuck register, a register
regression, a charger going silent, and charging interrupted (Charging at 0 W).

The capture's file shapes are gen_ocpp's (its Writer); the traffic is this
module's own. Deterministic for a seed.

Run: python -m tests.acceptance.gen_blind OUT_DIR [CADENCE_S] [VERSION] [SEED]
"""

from __future__ import annotations

import json
import random
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from tests.acceptance.gen_ocpp import Writer, iso, iso_charger

T0 = datetime(2026, 9, 14, 7, 0, 0, tzinfo=UTC)
HOURS = 2.0
V_NOM = 230.0

# fault -> (alert, detector minimum s, rule `for` s), from docs/alerting.md's
# time-to-detect table; the budget is minimum + for + 2 sample intervals.
FAULTS: dict[str, tuple[str, float, float]] = {
    "over_temperature": ("OverTemperature", 60, 0),
    "HighTemperature": ("OcppHighTemperature", 0, 60),
    "GroundFailure": ("OcppGroundFailure", 0, 60),
    "ConnectorLockFailure": ("OcppConnectorLockFailure", 0, 120),
    "InternalError": ("OcppInternalError", 0, 120),
    "EVCommunicationError": ("OcppEVCommunicationError", 0, 300),
    "phase_loss": ("PhaseLoss", 30, 30),
    "voltage_sag": ("VoltageOutOfBand", 60, 120),
    "meter_stuck": ("MeterStuck", 120, 180),
    "meter_regression": ("MeterRegression", 0, 60),
    "charger_offline": ("ChargerOffline", 0, 0),
    "charging_interrupted": ("ChargingInterrupted", 60, 0),
}
# 2.0.1 has no StatusNotification errorCode; NotifyEvent problems carry these
# (OCPP 2.0.1 part 2, device model: component, variable).
PROBLEM_201: dict[str, tuple[str, str]] = {
    "GroundFailure": ("RCD", "Tripped"),
    "ConnectorLockFailure": ("ConnectorPlugRetentionLock", "Problem"),
    "HighTemperature": ("TemperatureSensor", "Problem"),
}
ONLY_16 = {"InternalError", "EVCommunicationError"}


def charging_state(state: str) -> str:
    # 2.0.1 chargingState has no Faulted: the EVSE is not offering energy.
    return "SuspendedEVSE" if state == "Faulted" else state


def at(s: float) -> datetime:
    return T0 + timedelta(seconds=s)


@dataclass
class Elec:
    """What flows at one second of a session."""

    amps: tuple[float, float, float] = (0.0, 0.0, 0.0)  # AC per phase; DC: [0] only
    volts: tuple[float, float, float] = (V_NOM, V_NOM, V_NOM)
    offered: float = 32.0
    dc_kw: float = 0.0
    soc: float | None = None
    temp_c: float = 31.0
    state: str = "Charging"  # Charging | SuspendedEV | SuspendedEVSE
    error: str = "NoError"

    def watts(self, dc: bool) -> float:
        if dc:
            return self.dc_kw * 1000.0
        return sum(a * v for a, v in zip(self.amps, self.volts, strict=True))


Profile = Callable[[float], Elec]  # seconds since the transaction started -> Elec


@dataclass
class Tx:
    """One transaction: start (s from T0), length, electrical profile, how it ends."""

    start: float
    length: float
    profile: Profile
    stop_reason: str = "EVDisconnected"
    tag: str = "04A1B2C3D4"
    rejected_tag_first: bool = False
    power_loss_at: float | None = None  # s into the transaction: power lost for 90 s
    stuck: tuple[float, float] | None = None  # s into tx: register frozen, then catches up
    regression_at: float | None = None  # s into tx: register falls by 3 kWh and stays down
    fault_status: tuple[float, float, str] | None = None  # (from, to s into tx, errorCode)


@dataclass
class Plan:
    cid: str
    behaviour: str
    hb_s: int
    sample_s: int
    txs: list[Tx] = field(default_factory=list)
    fault: str | None = None
    onset: float | None = None  # s from T0
    dc: bool = False
    phases: int = 3
    inlet: bool = False  # Inlet register beside the Outlet one, Interval energy too
    aligned: bool = False  # Sample.Clock values every 900 s
    temperature: bool = False
    idle_fault: tuple[float, float, str] | None = None  # (from, to s from T0, errorCode)
    silent: tuple[float, float] | None = None  # s from T0


# --- electrical profiles --------------------------------------------------------


def three_phase(a: float, offered: float = 32.0) -> Elec:
    return Elec(amps=(a, a, a), offered=offered)


def steady(a: float) -> Profile:
    return lambda s: three_phase(a)


def smart(cut_from: float, cut_to: float) -> Profile:
    # TxProfile 32 A -> 6 A -> 32 A; the car follows the pilot within 3 s.
    def p(s: float) -> Elec:
        if cut_from <= s < cut_to:
            return three_phase(6.0 if s >= cut_from + 3 else 31.5, 6.0)
        return three_phase(6.0 if cut_to <= s < cut_to + 3 else 31.5, 32.0)

    return p


def paused(p_from: float, p_to: float) -> Profile:
    def p(s: float) -> Elec:
        if p_from <= s < p_to:
            return Elec(amps=(0.0, 0.0, 0.0), offered=16.0, state="SuspendedEV")
        return three_phase(15.8, 16.0)

    return p


def dc_taper(soc0: float, cap_kwh: float) -> Profile:
    # Energy and SoC integrated once per second, so SoC follows the power curve.
    soc = [soc0]
    cache: dict[int, Elec] = {}

    def p(s: float) -> Elec:
        k = int(s)
        if k in cache:
            return cache[k]
        while len(soc) <= k:
            cur = soc[-1]
            kw = 150.0 if cur < 80 else max(20.0, 150.0 - (cur - 80) * (130.0 / 12.0))
            soc.append(min(100.0, cur + kw / 3600.0 / cap_kwh * 100.0))
        cur = soc[k]
        kw = 150.0 if cur < 80 else max(20.0, 150.0 - (cur - 80) * (130.0 / 12.0))
        volts = 360.0 + cur * 0.6
        e = Elec(amps=(kw * 1000 / volts, 0.0, 0.0), volts=(volts, 0, 0), dc_kw=kw, soc=cur)
        e.temp_c = 30.0 + kw / 10.0
        cache[k] = e
        return e

    return p


def one_phase(a: float) -> Profile:
    return lambda s: Elec(amps=(a, 0.0, 0.0), offered=32.0)


def shared(alloc: Callable[[float], float], t0: float) -> Profile:
    # Load-balanced site: this charger's share at the site clock (s from T0).
    def p(s: float) -> Elec:
        now = t0 + s
        lim = alloc(now)
        follow = alloc(now - 3)  # the car follows a lowered pilot within ~3 s
        return three_phase(min(lim, follow) - 0.4, lim)

    return p


def with_fault(base: Profile, kind: str, f_from: float, f_to: float) -> Profile:
    def p(s: float) -> Elec:
        e = base(s)
        if not f_from <= s < f_to:
            return e
        if kind == "phase_loss":  # L3 fuse blown: no voltage, no current
            e.volts = (e.volts[0], e.volts[1], 0.0)
            e.amps = (e.amps[0], e.amps[1], 0.0)
        elif kind == "voltage_sag":  # L1 at 0.85 p.u. under load, others fine
            e.volts = (196.0, e.volts[1], e.volts[2])
        elif kind == "over_temperature":  # loose terminal: +6 C/min from 38 C
            e.temp_c = min(98.0, 38.0 + (s - f_from) * 6.0 / 60.0)
        elif kind == "charging_interrupted":  # contactor open, still "Charging"
            e.amps = (0.0, 0.0, 0.0)
        elif kind in ("GroundFailure", "EVCommunicationError", "HighTemperature"):
            # RCD tripped or the housing sensor over its limit: Faulted; lost
            # ISO 15118 / pilot link: SuspendedEVSE. Energy stops either way.
            e.amps = (0.0, 0.0, 0.0)
            e.offered = 0.0
            e.state = "SuspendedEVSE" if kind == "EVCommunicationError" else "Faulted"
            e.error = kind
        return e

    return p


# --- the charger ------------------------------------------------------------------


class Charger:
    def __init__(self, p: Plan, w: Writer, version: str, rng: random.Random, tx_base: int):
        self.p = p
        self.w = w
        self.v = version
        self.rng = rng
        self.msg = 0
        self.tx_no = tx_base
        self.seq = 0  # 2.0.1 TransactionEvent seqNo
        self.register = 1_250_000.0 + 97_531.0 * (tx_base % 7)
        self.inlet_register = self.register * 1.07 + 5_000.0
        self.sessions: list[dict[str, Any]] = []
        self.sent: list[float] = []  # charger send times (s from T0)
        self.silences: list[tuple[float, float]] = [p.silent] if p.silent else []
        self.profile_id = 0

    # transport ------------------------------------------------------------------
    def topic(self, src: str) -> str:
        return f"ocpp/{self.v}/{self.p.cid}/{src}"

    def silent(self, s: float) -> bool:
        return any(a <= s < b for a, b in self.silences)

    def last_before(self, s: float) -> float:
        return max(x for x in self.sent if x < s)

    def delay(self) -> float:
        # Most frames arrive within half a second; a few are held up 1.5-2.5 s
        # (a congested cellular link), so they arrive after later ones.
        if self.rng.random() < 0.03:
            return self.rng.uniform(1.5, 2.5)
        return self.rng.uniform(0.05, 0.5)

    def call(self, s: float, action: str, body: dict[str, Any], answer: dict[str, Any]) -> None:
        if self.silent(s):
            return
        self.msg += 1
        mid = f"{self.p.cid[-3:]}-{self.msg}"
        rx = at(s + self.delay())
        self.w.put(rx, self.topic("cp"), [2, mid, action, body])
        self.w.put(rx + timedelta(milliseconds=120), self.topic("csms"), [3, mid, answer])
        self.sent.append(s)

    def csms_call(
        self, s: float, action: str, body: dict[str, Any], answer: dict[str, Any]
    ) -> None:
        self.msg += 1
        mid = f"csms-{self.p.cid[-3:]}-{self.msg}"
        self.w.put(at(s), self.topic("csms"), [2, mid, action, body])
        self.w.put(at(s + 0.3), self.topic("cp"), [3, mid, answer])

    # messages -------------------------------------------------------------------
    def boot(self, s: float, reason: str = "PowerUp") -> None:
        if self.v == "1.6":
            body: dict[str, Any] = {
                "chargePointVendor": "Voltaro",
                "chargePointModel": "DC150" if self.p.dc else "AC22-3P",
                "chargePointSerialNumber": f"VT{self.p.cid[-4:]}",
                "firmwareVersion": "3.8.1",
            }
        else:
            body = {
                "reason": reason,
                "chargingStation": {
                    "model": "DC150" if self.p.dc else "AC22-3P",
                    "vendorName": "Voltaro",
                    "firmwareVersion": "3.8.1",
                },
            }
        ans = {"status": "Accepted", "currentTime": iso_charger(at(s)), "interval": self.p.hb_s}
        self.call(s, "BootNotification", body, ans)

    def status(self, s: float, status: str, err: str = "NoError", conn: int = 1) -> None:
        if self.v == "1.6":
            body: dict[str, Any] = {
                "connectorId": conn,
                "errorCode": err,
                "status": status,
                "timestamp": iso_charger(at(s)),
            }
            if err != "NoError":
                body["vendorErrorCode"] = "E" + str(abs(hash(err)) % 900 + 100)
            self.call(s, "StatusNotification", body, {})
            return
        # 2.0.1: Available / Occupied / Reserved / Unavailable / Faulted.
        st = {"Preparing": "Occupied", "Charging": "Occupied", "SuspendedEV": "Occupied"}
        st |= {"SuspendedEVSE": "Occupied", "Finishing": "Occupied"}
        if conn == 0:
            return
        body = {
            "timestamp": iso_charger(at(s)),
            "connectorStatus": st.get(status, status),
            "evseId": conn,
            "connectorId": 1,
        }
        self.call(s, "StatusNotification", body, {})

    def problem(self, s: float, err: str, active: bool) -> None:
        comp, var = PROBLEM_201[err]
        ev = {
            "eventId": self.msg + 1,
            "timestamp": iso_charger(at(s)),
            "trigger": "Delta",
            "actualValue": "true" if active else "false",
            "eventNotificationType": "HardWiredNotification",
            "component": {"name": comp, "evse": {"id": 1, "connectorId": 1}},
            "variable": {"name": var},
        }
        if not active:
            ev["cleared"] = True
        body = {"generatedAt": iso_charger(at(s)), "seqNo": 0, "tbc": False, "eventData": [ev]}
        self.call(s, "NotifyEvent", body, {})

    def heartbeats(self, end: float) -> None:
        s = self.p.hb_s + 3.0
        while s < end:
            self.call(s, "Heartbeat", {}, {"currentTime": iso_charger(at(s))})
            s += self.p.hb_s

    def authorize(self, s: float, tag: str, ok: bool) -> None:
        st = "Accepted" if ok else "Invalid"
        if self.v == "1.6":
            self.call(s, "Authorize", {"idTag": tag}, {"idTagInfo": {"status": st}})
        else:
            body = {"idToken": {"idToken": tag, "type": "ISO14443"}}
            self.call(s, "Authorize", body, {"idTokenInfo": {"status": st}})

    # samples ---------------------------------------------------------------------
    def sv(
        self, value: float, measurand: str, unit: str, ctx: str, phase: str = "", loc: str = ""
    ) -> dict[str, Any]:
        if self.v == "1.6":
            d: dict[str, Any] = {
                "value": f"{value:.1f}" if unit != "Wh" else f"{value:.0f}",
                "context": ctx,
                "format": "Raw",
                "measurand": measurand,
                "unit": unit,
            }
        else:
            d = {
                "value": round(value, 1) if unit != "Wh" else round(value),
                "context": ctx,
                "measurand": measurand,
                "unitOfMeasure": {"unit": unit},
            }
        if phase:
            d["phase"] = phase
        if loc:
            d["location"] = loc
        return d

    def sampled(
        self, e: Elec | None, reg: float, ctx: str, interval_wh: float | None = None
    ) -> list[dict[str, Any]]:
        out = [self.sv(reg, "Energy.Active.Import.Register", "Wh", ctx, loc="Outlet")]
        if self.p.inlet:
            out.append(
                self.sv(
                    self.inlet_register, "Energy.Active.Import.Register", "Wh", ctx, loc="Inlet"
                )
            )
        if interval_wh is not None:
            out.append(
                self.sv(interval_wh, "Energy.Active.Import.Interval", "Wh", ctx, loc="Outlet")
            )
        if e is None or ctx == "Sample.Clock":
            return out
        out.append(self.sv(e.watts(self.p.dc), "Power.Active.Import", "W", ctx, loc="Outlet"))
        if self.p.dc:
            out.append(self.sv(e.amps[0], "Current.Import", "A", ctx, loc="Outlet"))
            out.append(self.sv(e.volts[0], "Voltage", "V", ctx, loc="Outlet"))
            if e.soc is not None:
                out.append(self.sv(e.soc, "SoC", "Percent", ctx, loc="EV"))
        else:
            for i, ph in enumerate(("L1", "L2", "L3")):
                out.append(self.sv(e.amps[i], "Current.Import", "A", ctx, phase=ph, loc="Outlet"))
            for i, ph in enumerate(("L1-N", "L2-N", "L3-N")):
                out.append(self.sv(e.volts[i], "Voltage", "V", ctx, phase=ph, loc="Outlet"))
            out.append(self.sv(e.offered, "Current.Offered", "A", ctx, loc="Outlet"))
        if self.p.temperature and self.v == "1.6":
            # 2.0.1's MeasurandEnumType has no Temperature: the device model
            # (TemperatureSensor) reports heat there.
            out.append(self.sv(e.temp_c, "Temperature", "Celsius", ctx, loc="Body"))
        return out

    def meter_values(
        self, s: float, txid: str, values: list[dict[str, Any]], trigger: str, state: str
    ) -> None:
        mv = [{"timestamp": iso_charger(at(s)), "sampledValue": values}]
        if self.v == "1.6":
            body = {"connectorId": 1, "transactionId": int(txid), "meterValue": mv}
            self.call(s, "MeterValues", body, {})
            return
        self.tx_event(s, "Updated", txid, trigger, state, mv)

    def tx_event(
        self,
        s: float,
        kind: str,
        txid: str,
        trigger: str,
        state: str,
        mv: list[dict[str, Any]] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        info: dict[str, Any] = {"transactionId": txid, "chargingState": state}
        if extra and "stoppedReason" in extra:
            info["stoppedReason"] = extra.pop("stoppedReason")
        body: dict[str, Any] = {
            "eventType": kind,
            "timestamp": iso_charger(at(s)),
            "triggerReason": trigger,
            "seqNo": self.seq,
            "transactionInfo": info,
            "evse": {"id": 1, "connectorId": 1},
        }
        self.seq += 1
        if mv:
            body["meterValue"] = mv
        if extra:
            body |= extra
        ans: dict[str, Any] = {}
        if kind == "Started":
            ans = {"idTokenInfo": {"status": "Accepted"}}
        self.call(s, "TransactionEvent", body, ans)

    # a transaction -----------------------------------------------------------------
    def run_tx(self, tx: Tx, end_of_capture: float) -> None:
        p = self.p
        t = tx.start
        self.status(t - 40, "Preparing")
        if tx.rejected_tag_first:
            self.authorize(t - 30, "DEADBEEF01", ok=False)
        self.authorize(t - 2, tx.tag, ok=True)
        txid, s0 = self.start_tx(t, tx)
        reg0 = self.register
        e0 = tx.profile(0)
        self.status(t + 1, e0.state if e0.watts(p.dc) > 0 else "SuspendedEV")
        if self.v == "1.6":
            begin = self.sampled(e0, self.register, "Transaction.Begin")
            self.meter_values(t + 1, txid, begin, "", "Charging")
        if self.v == "2.0.1":
            self.tx_event(t + 1, "Updated", txid, "ChargingStateChanged", e0.state)
        state = e0.state
        err = "NoError"
        offered = e0.offered
        last_reg = self.register
        stuck_reg: float | None = None
        reported_offset = 0.0
        next_sample = t + p.sample_s + self.rng.uniform(-1, 1)
        next_clock = (int(t // 900) + 1) * 900.0
        last_clock_reg = self.register
        length = min(tx.length, end_of_capture - t - 60)
        k = 0
        while k < length:
            s = t + k
            e = tx.profile(float(k))
            if tx.power_loss_at is not None and k >= tx.power_loss_at:
                # Power lost: nothing flows, nothing is sent for 90 s; then it boots.
                self.reboot_stop(tx, txid, reg0, s)
                rest = Tx(
                    start=s + 150,
                    length=length - k - 150,
                    profile=lambda x, b=tx.profile, o=k + 150: b(x + o),
                    tag=tx.tag,
                )
                self.run_tx_after_reboot(rest, end_of_capture)
                return
            w_now = e.watts(p.dc)
            if e.offered != offered and e.offered > 0 and offered > 0:
                self.set_profile(s - 1, txid, e.offered)
            offered = e.offered
            if e.state != state or e.error != err:
                self.state_change(s, txid, e, err)
                state, err = e.state, e.error
            self.register += w_now / 3600.0
            if p.inlet:
                self.inlet_register += w_now * 1.015 / 3600.0 + 12.0 / 3600.0
            reported = self.register - reported_offset
            if tx.regression_at is not None and k == int(tx.regression_at):
                reported_offset = 3000.0
                reported = self.register - reported_offset
            if tx.stuck is not None and tx.stuck[0] <= k < tx.stuck[1]:
                stuck_reg = reported if stuck_reg is None else stuck_reg
                reported = stuck_reg
            if s >= next_sample:
                interval = reported - last_reg if p.inlet else None
                last_reg = reported
                vals = self.sampled(e, reported, "Sample.Periodic", interval)
                self.meter_values(s, txid, vals, "MeterValuePeriodic", charging_state(state))
                next_sample += p.sample_s + self.rng.uniform(-1, 1)
            if p.aligned and s >= next_clock:
                vals = self.sampled(None, reported, "Sample.Clock", reported - last_clock_reg)
                last_clock_reg = reported
                self.meter_values(next_clock, txid, vals, "MeterValueClock", charging_state(state))
                next_clock += 900.0
            k += 1
        s_end = t + length
        self.stop_tx(s_end, tx, txid, reg0, self.register - reported_offset, tx.stop_reason)
        self.status(s_end + 1, "Finishing")
        self.status(s_end + 45, "Available")
        self.sessions.append(
            {
                "charger": p.cid,
                "transaction_id": txid,
                "start": iso(at(s0)),
                "stop": iso(at(s_end)),
                "true_wh": round(self.register - reg0, 1),
                "check_energy": tx.regression_at is None,
            }
        )

    def state_change(self, s: float, txid: str, e: Elec, prev_err: str) -> None:
        if self.v == "1.6":
            self.status(s, e.state, e.error)
            return
        if e.error in PROBLEM_201 or prev_err in PROBLEM_201:
            on = e.error != "NoError"
            self.problem(s, e.error if on else prev_err, on)
            self.status(s + 0.5, "Faulted" if on else "Charging")
        self.tx_event(s, "Updated", txid, "ChargingStateChanged", charging_state(e.state))

    def set_profile(self, s: float, txid: str, limit: float) -> None:
        # The CSMS's TxProfile for the running transaction (smart charging).
        self.profile_id += 1
        period = [{"startPeriod": 0, "limit": limit, "numberPhases": 3}]
        if self.v == "1.6":
            prof: dict[str, Any] = {
                "chargingProfileId": self.profile_id,
                "transactionId": int(txid),
                "stackLevel": 0,
                "chargingProfilePurpose": "TxProfile",
                "chargingProfileKind": "Relative",
                "chargingSchedule": {"chargingRateUnit": "A", "chargingSchedulePeriod": period},
            }
            body: dict[str, Any] = {"connectorId": 1, "csChargingProfiles": prof}
        else:
            prof = {
                "id": self.profile_id,
                "stackLevel": 0,
                "chargingProfilePurpose": "TxProfile",
                "chargingProfileKind": "Relative",
                "transactionId": txid,
                "chargingSchedule": [
                    {
                        "id": self.profile_id,
                        "chargingRateUnit": "A",
                        "chargingSchedulePeriod": period,
                    }
                ],
            }
            body = {"evseId": 1, "chargingProfile": prof}
        self.csms_call(s, "SetChargingProfile", body, {"status": "Accepted"})

    def start_tx(self, t: float, tx: Tx) -> tuple[str, float]:
        self.tx_no += 1
        if self.v == "1.6":
            txid = str(self.tx_no)
            body = {
                "connectorId": 1,
                "idTag": tx.tag,
                "meterStart": round(self.register),
                "timestamp": iso_charger(at(t)),
            }
            ans = {"transactionId": self.tx_no, "idTagInfo": {"status": "Accepted"}}
            self.call(t, "StartTransaction", body, ans)
            self.register = float(round(self.register))
            return txid, t
        txid = f"{self.p.cid.lower()}-{self.tx_no:05d}"
        mv = [
            {
                "timestamp": iso_charger(at(t)),
                "sampledValue": self.sampled(None, self.register, "Transaction.Begin"),
            }
        ]
        self.register = float(round(self.register))
        extra = {"idToken": {"idToken": tx.tag, "type": "ISO14443"}}
        self.tx_event(t, "Started", txid, "Authorized", "EVConnected", mv, extra)
        return txid, t

    def stop_tx(
        self, s: float, tx: Tx, txid: str, reg0: float, reported: float, reason: str
    ) -> None:
        end_sample = self.sampled(None, reported, "Transaction.End")
        mv = [{"timestamp": iso_charger(at(s)), "sampledValue": end_sample}]
        if self.v == "1.6":
            body = {
                "transactionId": int(txid),
                "meterStop": round(reported),
                "timestamp": iso_charger(at(s)),
                "reason": reason,
                "idTag": tx.tag,
                "transactionData": mv,
            }
            self.call(s, "StopTransaction", body, {"idTagInfo": {"status": "Accepted"}})
            return
        trig = {"EVDisconnected": "EVCommunicationLost", "Local": "StopAuthorized"}
        trig |= {"PowerLoss": "AbnormalCondition", "Other": "AbnormalCondition"}
        reason201 = {"Other": "Other"}.get(reason, reason)
        self.tx_event(
            s,
            "Ended",
            txid,
            trig.get(reason, "AbnormalCondition"),
            "Idle",
            mv,
            {"stoppedReason": reason201},
        )

    def reboot_stop(self, tx: Tx, txid: str, reg0: float, s: float) -> None:
        # Power cut at s: silent 90 s, boot, statuses, the open transaction
        # stopped with the register it last knew (no energy flowed meanwhile).
        self.silences.append((s, s + 90))
        b = s + 90
        self.boot(b, reason="PowerUp")
        if self.v == "1.6":
            self.status(b + 2, "Available", conn=0)
        self.status(b + 3, "Preparing")
        self.stop_tx(b + 5, tx, txid, reg0, self.register, "PowerLoss")
        self.sessions.append(
            {
                "charger": self.p.cid,
                "transaction_id": txid,
                "start": iso(at(tx.start)),
                "stop": iso(at(b + 5)),
                "true_wh": round(self.register - reg0, 1),
                "check_energy": True,
                "power_loss": True,
            }
        )

    def run_tx_after_reboot(self, tx: Tx, end_of_capture: float) -> None:
        # The car is still plugged in: the charger starts a new transaction for
        # the same tag (1.6: authorised locally from its cache).
        self.run_tx(tx, end_of_capture)

    def run(self, end: float) -> None:
        p = self.p
        self.boot(1.0 + self.rng.uniform(0, 20))
        self.status(25, "Available", conn=0)
        self.status(26, "Available")
        if p.idle_fault is not None:
            a, b, err = p.idle_fault
            self.status(a - 40, "Preparing")
            self.authorize(a - 5, "04FACE0001", ok=True)
            if self.v == "1.6":
                self.status(a, "Faulted", err)
                self.status(b, "Available")
            else:
                self.problem(a, err, True)
                self.status(a + 0.5, "Faulted")
                self.problem(b, err, False)
                self.status(b + 0.5, "Available")
        if p.behaviour == "preparing_timeout":
            # Plugged cable, nobody authorises: ConnectionTimeOut returns it.
            for a in (1500.0, 4200.0):
                self.status(a, "Preparing")
                self.status(a + 120, "Available")
        for tx in p.txs:
            self.run_tx(tx, end)
        self.heartbeats(end)  # last: a power cut in a transaction silences them too


# --- the fleet ----------------------------------------------------------------


def fleet(cadence: int, version: str) -> list[Plan]:
    c = cadence
    pre = "B16" if version == "1.6" else "B21"
    plans: list[Plan] = []

    def add(name: str, **kw: Any) -> Plan:
        p = Plan(cid=f"{pre}-{name}", **kw)
        plans.append(p)
        return p

    # clean -------------------------------------------------------------------
    add(
        "SMART",
        behaviour="smart_charging_32_6_32",
        hb_s=300,
        sample_s=c,
        aligned=True,
        txs=[Tx(start=600, length=5400, profile=smart(1500, 2700))],
    )
    add(
        "PAUSE",
        behaviour="suspended_ev_15min",
        hb_s=60,
        sample_s=c,
        txs=[Tx(start=900, length=4800, profile=paused(1800, 2700), stop_reason="Local")],
    )
    add(
        "DC",
        behaviour="dc_taper_150_20",
        hb_s=60,
        sample_s=c,
        dc=True,
        phases=0,
        temperature=True,
        txs=[Tx(start=1200, length=2700, profile=dc_taper(35.0, 77.0), stop_reason="Local")],
    )
    add(
        "REBOOT",
        behaviour="power_loss_mid_session",
        hb_s=300,
        sample_s=c,
        txs=[Tx(start=700, length=5000, profile=steady(15.7), power_loss_at=2100.0)],
    )

    # Load-balanced site: 32 A shared; A from 600 s, B from 1800 s, C from 3000 s,
    # A leaves at 4800 s. The CSMS divides evenly among active chargers.
    spans = {"A": (600.0, 4800.0), "B": (1800.0, 6600.0), "C": (3000.0, 6000.0)}

    def share(name: str) -> Callable[[float], float]:
        def f(now: float) -> float:
            active = [n for n, (a, b) in spans.items() if a <= now < b]
            return 32.0 / len(active) if name in active else 32.0

        return f

    for name, (a, b) in spans.items():
        add(
            f"LB{name}",
            behaviour="load_balanced_site",
            hb_s=900,
            sample_s=c,
            txs=[Tx(start=a, length=b - a, profile=shared(share(name), a))],
        )
    add(
        "INOUT",
        behaviour="inlet_outlet_interval_clock_aligned",
        hb_s=300,
        sample_s=c,
        inlet=True,
        aligned=True,
        txs=[Tx(start=800, length=4500, profile=steady(10.0))],
    )
    add(
        "1PH",
        behaviour="single_phase_car_on_3p",
        hb_s=900,
        sample_s=c,
        txs=[Tx(start=1000, length=4000, profile=one_phase(16.0))],
    )
    add("PREP", behaviour="preparing_timeout", hb_s=60, sample_s=c)
    add(
        "RFID",
        behaviour="rfid_rejected_then_accepted",
        hb_s=300,
        sample_s=c,
        txs=[Tx(start=1300, length=3000, profile=steady(13.0), rejected_tag_first=True)],
    )
    add(
        "MV30",
        behaviour="sampling_30s",
        hb_s=60,
        sample_s=30,
        temperature=True,
        txs=[Tx(start=500, length=3600, profile=steady(16.0))],
    )
    add(
        "MV300",
        behaviour="sampling_300s",
        hb_s=900,
        sample_s=300,
        txs=[Tx(start=700, length=5400, profile=steady(16.0))],
    )

    # faults ---------------------------------------------------------------------
    def fault_tx(name: str, kind: str, f_from: float, f_len: float, **kw: Any) -> None:
        start = 900.0
        base = steady(24.0)
        prof = with_fault(base, kind, f_from, f_from + f_len)
        onset = start + f_from
        tx = Tx(start=start, length=4800, profile=prof, **kw)
        if kind == "over_temperature":
            onset += (75.0 - 38.0) / 6.0 * 60.0  # the level crossed
        add(
            name,
            behaviour="fault",
            hb_s=60,
            sample_s=c,
            fault=kind,
            onset=onset,
            txs=[tx],
            temperature=kind == "over_temperature",
        )

    if version == "1.6":
        fault_tx("OTEMP", "over_temperature", 1200, 900)
    else:
        fault_tx("OTEMP", "HighTemperature", 1500, 600)
    fault_tx("GFAULT", "GroundFailure", 1500, 600)
    fault_tx("PHLOSS", "phase_loss", 1500, 900)
    fault_tx("VSAG", "voltage_sag", 1500, 480)
    fault_tx("STUCK", "meter_stuck", 1500, 0, stuck=(1500.0, 2220.0))
    fault_tx("REGR", "meter_regression", 1500, 0, regression_at=1500.0)
    fault_tx("INTR", "charging_interrupted", 1500, 600)
    add(
        "LOCK",
        behaviour="fault",
        hb_s=300,
        sample_s=c,
        fault="ConnectorLockFailure",
        onset=2400.0,
        idle_fault=(2400.0, 2400.0 + 480.0, "ConnectorLockFailure"),
    )
    add(
        "OFFLINE",
        behaviour="fault",
        hb_s=60,
        sample_s=c,
        fault="charger_offline",
        silent=(3000.0, 3000.0 + 1500.0),
    )
    if version == "1.6":
        fault_tx("EVCOMM", "EVCommunicationError", 1500, 600)
        add(
            "INTERNAL",
            behaviour="fault",
            hb_s=300,
            sample_s=c,
            fault="InternalError",
            onset=3000.0,
            idle_fault=(3000.0, 3000.0 + 480.0, "InternalError"),
        )
    return plans


def generate(
    out_dir: Path, cadence: int = 10, version: str = "1.6", seed: int = 11
) -> dict[str, Any]:
    out_dir.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed * 1000 + cadence)
    w = Writer()
    end = HOURS * 3600.0
    plans = fleet(cadence, version)
    sessions: list[dict[str, Any]] = []
    faults: list[dict[str, Any]] = []
    for i, p in enumerate(plans):
        ch = Charger(p, w, version, rng, tx_base=(i + 1) * 100)
        ch.run(end)
        sessions += ch.sessions
        if p.fault is None:
            continue
        alert, min_s, for_s = FAULTS[p.fault]
        if p.fault == "charger_offline":
            assert p.silent is not None
            # onset = last sign of life before the silence (docs/detectors.md)
            onset = ch.last_before(p.silent[0])
            budget = 2 * p.hb_s + 30.0
        else:
            assert p.onset is not None
            onset = p.onset
            budget = min_s + for_s + 2 * p.sample_s
        faults.append(
            {
                "charger": p.cid,
                "connector": "0" if p.fault == "charger_offline" else "1",
                "fault": p.fault,
                "alert": alert,
                "onset": iso(at(onset)),
                "budget_s": budget,
            }
        )
    w.dump(out_dir / "capture.jsonl")
    truth = {
        "t0": iso(T0),
        "end": iso(at(end)),
        "cadence_s": cadence,
        "version": version,
        "chargers": [
            {
                "id": p.cid,
                "behaviour": p.behaviour,
                "fault": p.fault,
                "hb_s": p.hb_s,
                "sample_s": p.sample_s,
                "dc": p.dc,
            }
            for p in plans
        ],
        "faults": faults,
        "sessions": sessions,
    }
    (out_dir / "truth.json").write_text(json.dumps(truth, indent=1))
    lines = [
        "sites:",
        "  - {id: blind, timezone: Europe/Amsterdam, tariff: flat-energy, kind: public}",
        "chargers:",
    ]
    for p in plans:
        kind = "phases: 0, nominal_voltage_v: 800" if p.dc else "phases: 3, nominal_voltage_v: 230"
        kw = 150000 if p.dc else 22000
        lines.append(f"  - {{id: {p.cid}, site: blind, connectors: 1, max_power_w: {kw}, {kind}}}")
    (out_dir / "fleet.yaml").write_text("\n".join(lines) + "\n")
    return truth


if __name__ == "__main__":
    a = sys.argv[1:]
    t = generate(
        Path(a[0]),
        int(a[1]) if len(a) > 1 else 10,
        a[2] if len(a) > 2 else "1.6",
        int(a[3]) if len(a) > 3 else 11,
    )
    print(len(t["chargers"]), "chargers,", len(t["sessions"]), "sessions")
