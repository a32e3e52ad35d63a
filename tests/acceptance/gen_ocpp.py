"""An independent OCPP traffic generator for acceptance tests.

Written from the OCPP 1.6J / 2.0.1 specifications and what real chargers put on
the wire (tests/fixtures/real_ocpp/), not from chargewatch's simulator, so that
the pipeline is judged on traffic it was not tuned on. It writes a capture
(README, "Captures and replay") and the ground truth: every fault with its
onset, each session's energy, the malformed messages.

Run: python -m tests.acceptance.gen_ocpp OUT_DIR
"""

from __future__ import annotations

import json
import math
import sys
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import ROUND_CEILING, ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

T0 = datetime(2026, 3, 2, 8, 0, 0, tzinfo=UTC)
HOURS = 3
TARIFF_EUR_PER_KWH = Decimal("0.35")  # tariffs/flat_energy.json
VAT_PCT = Decimal("21")


def iso(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%S") + f".{t.microsecond // 1000:03d}Z"


def iso_charger(t: datetime) -> str:
    # Chargers usually send whole seconds with a Z.
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class Fault:
    charger: str
    connector: int | None
    kind: str
    start: datetime
    end: datetime
    note: str = ""

    def as_json(self) -> dict[str, Any]:
        return {
            "charger": self.charger,
            "connector": self.connector,
            "kind": self.kind,
            "start": iso(self.start),
            "end": iso(self.end),
            "note": self.note,
        }


@dataclass
class SessionPlan:
    """One charge: plugged at `plug`, energy flows from `start` to `ev_full`
    (then SuspendedEV until `stop`), unplugged a minute after `stop`."""

    connector: int
    plug: datetime
    start: datetime
    ev_full: datetime
    stop: datetime
    amps: float = 16.0
    phases: int = 3
    # (start, end, what) electrical faults during the session
    lost_phase: tuple[datetime, datetime] | None = None
    sag: tuple[datetime, datetime] | None = None
    stuck: tuple[datetime, datetime] | None = None
    hot: tuple[datetime, datetime] | None = None  # housing ramps to 90 °C
    pause: tuple[datetime, datetime] | None = None  # no current, status stays Charging
    stop_reason: str = "EVDisconnected"
    finish: bool = True  # False: the charger is Faulted, no Finishing/Available


@dataclass
class ChargerPlan:
    cid: str
    version: str = "1.6"
    heartbeat_s: int = 60
    sample_s: int = 10
    style: str = "full"  # full | kw | default_unit
    connectors: int = 1
    sessions: list[SessionPlan] = field(default_factory=list)
    silent: tuple[datetime, datetime] | None = None
    reset_per_tx: bool = False  # the register restarts at 0 for each transaction
    faulted: list[tuple[int, datetime, datetime | None, str]] = field(
        default_factory=list
    )  # connector, start, end (None: to the end), errorCode


def m(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


class Writer:
    def __init__(self) -> None:
        self.lines: list[tuple[datetime, int, dict[str, Any]]] = []
        self.seq = 0

    def put(self, t: datetime, topic: str, payload: Any) -> None:
        self.seq += 1
        self.lines.append((t, self.seq, {"ts": iso(t), "topic": topic, "payload": payload}))

    def dump(self, path: Path) -> None:
        self.lines.sort(key=lambda x: (x[0], x[1]))
        with path.open("w") as f:
            for _, _, obj in self.lines:
                f.write(json.dumps(obj, separators=(",", ":")) + "\n")


class Charger:
    """Emits one charger's frames and answers as its CSMS would."""

    def __init__(self, plan: ChargerPlan, w: Writer, tx_base: int) -> None:
        self.p = plan
        self.w = w
        self.msg = 0
        self.tx = tx_base
        self.register = [0.0] + [1_000_000.0 * (i + 1) + 12_345 for i in range(plan.connectors)]
        self.truth_sessions: list[dict[str, Any]] = []

    def silent(self, t: datetime) -> bool:
        s = self.p.silent
        return s is not None and s[0] <= t < s[1]

    def topic(self, src: str) -> str:
        return f"ocpp/{self.p.version}/{self.p.cid}/{src}"

    def call(self, t: datetime, action: str, body: dict[str, Any], answer: dict[str, Any]) -> None:
        if self.silent(t):
            return
        self.msg += 1
        mid = f"{self.msg}"
        self.w.put(t, self.topic("cp"), [2, mid, action, body])
        self.w.put(t + timedelta(milliseconds=180), self.topic("csms"), [3, mid, answer])

    # --- 1.6 -----------------------------------------------------------------
    def status16(self, t: datetime, conn: int, status: str, err: str = "NoError") -> None:
        self.call(
            t,
            "StatusNotification",
            {"connectorId": conn, "errorCode": err, "status": status, "timestamp": iso_charger(t)},
            {},
        )

    def boot(self, t: datetime) -> None:
        if self.p.version == "1.6":
            self.call(
                t,
                "BootNotification",
                {
                    "chargePointVendor": "AcmeEV",
                    "chargePointModel": "Wallbox-X",
                    "firmwareVersion": "1.4.2",
                },
                {
                    "status": "Accepted",
                    "currentTime": iso_charger(t),
                    "interval": self.p.heartbeat_s,
                },
            )
            self.status16(t + timedelta(seconds=1), 0, "Available")
            for c in range(1, self.p.connectors + 1):
                self.status16(t + timedelta(seconds=1 + c), c, "Available")
        else:
            self.call(
                t,
                "BootNotification",
                {
                    "chargingStation": {"model": "DC-Station", "vendorName": "AcmeEV"},
                    "reason": "PowerUp",
                },
                {
                    "status": "Accepted",
                    "currentTime": iso_charger(t),
                    "interval": self.p.heartbeat_s,
                },
            )
            for c in range(1, self.p.connectors + 1):
                self.status201(t + timedelta(seconds=1 + c), c, "Available")

    def status201(self, t: datetime, conn: int, status: str) -> None:
        self.call(
            t,
            "StatusNotification",
            {
                "timestamp": iso_charger(t),
                "connectorStatus": status,
                "evseId": conn,
                "connectorId": 1,
            },
            {},
        )

    def heartbeats(self, until: datetime) -> None:
        t = T0 + timedelta(seconds=self.p.heartbeat_s)
        while t < until:
            self.call(t, "Heartbeat", {}, {"currentTime": iso_charger(t)})
            t += timedelta(seconds=self.p.heartbeat_s)

    def electrical(
        self, s: SessionPlan, t: datetime
    ) -> tuple[list[float], list[float], float, float]:
        """Per-phase currents and voltages, power W, housing temperature."""
        charging = s.start <= t < s.ev_full
        volts = [230.0 + 1.5 * math.sin(t.timestamp() / 97 + k) for k in range(3)]
        amps = [s.amps if charging else 0.0 for _ in range(3)]
        if s.phases == 1:
            amps[1] = amps[2] = 0.0
        if s.lost_phase and s.lost_phase[0] <= t < s.lost_phase[1]:
            amps[2] = 0.0
            volts[2] = 0.0
        if s.sag and s.sag[0] <= t < s.sag[1]:
            volts[0] = 190.0
        if s.pause and s.pause[0] <= t < s.pause[1]:
            amps = [0.0, 0.0, 0.0]
        power = sum(a * v for a, v in zip(amps, volts, strict=True))
        temp = 32.0 + (6.0 if charging else 0.0)
        if s.hot and s.hot[0] <= t:
            frac = min(1.0, (t - s.hot[0]) / (s.hot[1] - s.hot[0]))
            temp = 38.0 + (90.0 - 38.0) * frac
        return amps, volts, power, temp

    def sampled16(self, s: SessionPlan, t: datetime, reg: float, ctx: str) -> list[dict[str, Any]]:
        amps, volts, power, temp = self.electrical(s, t)
        if self.p.style == "default_unit":
            # The spec default: no measurand (= Energy.Active.Import.Register), no unit (= Wh).
            return [{"value": f"{reg:.0f}", "context": ctx}]
        out: list[dict[str, Any]] = []
        if self.p.style == "kw":
            out.append(
                {
                    "value": f"{reg / 1000:.3f}",
                    "context": ctx,
                    "measurand": "Energy.Active.Import.Register",
                    "unit": "kWh",
                }
            )
            out.append(
                {
                    "value": f"{power / 1000:.3f}",
                    "context": ctx,
                    "measurand": "Power.Active.Import",
                    "unit": "kW",
                }
            )
        else:
            out.append(
                {
                    "value": f"{reg:.0f}",
                    "context": ctx,
                    "measurand": "Energy.Active.Import.Register",
                    "unit": "Wh",
                    "location": "Outlet",
                }
            )
            out.append(
                {
                    "value": f"{power:.1f}",
                    "context": ctx,
                    "measurand": "Power.Active.Import",
                    "unit": "W",
                    "location": "Outlet",
                }
            )
        for k, ph in enumerate(("L1", "L2", "L3")):
            out.append(
                {
                    "value": f"{amps[k]:.2f}",
                    "context": ctx,
                    "measurand": "Current.Import",
                    "phase": ph,
                    "unit": "A",
                }
            )
        for k, ph in enumerate(("L1-N", "L2-N", "L3-N")):
            out.append(
                {
                    "value": f"{volts[k]:.1f}",
                    "context": ctx,
                    "measurand": "Voltage",
                    "phase": ph,
                    "unit": "V",
                }
            )
        out.append(
            {
                "value": f"{temp:.1f}",
                "context": ctx,
                "measurand": "Temperature",
                "location": "Body",
                "unit": "Celsius",
            }
        )
        return out

    def sampled201(self, s: SessionPlan, t: datetime, reg: float, ctx: str) -> list[dict[str, Any]]:
        amps, volts, power, temp = self.electrical(s, t)
        out: list[dict[str, Any]] = [
            {
                "value": round(reg, 1),
                "context": ctx,
                "measurand": "Energy.Active.Import.Register",
                "unitOfMeasure": {"unit": "Wh"},
            },
            {
                "value": round(power, 1),
                "context": ctx,
                "measurand": "Power.Active.Import",
                "unitOfMeasure": {"unit": "W"},
            },
        ]
        for k, ph in enumerate(("L1", "L2", "L3")):
            out.append(
                {
                    "value": round(amps[k], 2),
                    "context": ctx,
                    "measurand": "Current.Import",
                    "phase": ph,
                    "unitOfMeasure": {"unit": "A"},
                }
            )
        for k, ph in enumerate(("L1-N", "L2-N", "L3-N")):
            out.append(
                {
                    "value": round(volts[k], 1),
                    "context": ctx,
                    "measurand": "Voltage",
                    "phase": ph,
                    "unitOfMeasure": {"unit": "V"},
                }
            )
        # 2.0.1's MeasurandEnumType has no Temperature (it moved to the device model).
        del temp
        return out

    def session(self, s: SessionPlan, idtag: str) -> None:
        c = s.connector
        v16 = self.p.version == "1.6"
        self.tx += 1
        txid = self.tx if v16 else f"tx-{self.p.cid}-{self.tx}"
        seq = 0

        def tev(t: datetime, etype: str, trigger: str, extra: dict[str, Any]) -> None:
            nonlocal seq
            body: dict[str, Any] = {
                "eventType": etype,
                "timestamp": iso_charger(t),
                "triggerReason": trigger,
                "seqNo": seq,
                "transactionInfo": {"transactionId": txid, **extra.pop("info", {})},
                "evse": {"id": c, "connectorId": 1},
                **extra,
            }
            seq += 1
            self.call(t, "TransactionEvent", body, {})

        if v16:
            self.status16(s.plug, c, "Preparing")
            self.call(
                s.plug + timedelta(seconds=5),
                "Authorize",
                {"idTag": idtag},
                {"idTagInfo": {"status": "Accepted"}},
            )
        else:
            self.status201(s.plug, c, "Occupied")
        if self.p.reset_per_tx:
            self.register[c] = 0.0
        begin_reg = self.register[c]
        true_wh = 0.0
        reported_begin = begin_reg
        if v16:
            self.call(
                s.start,
                "StartTransaction",
                {
                    "connectorId": c,
                    "idTag": idtag,
                    "meterStart": round(begin_reg),
                    "timestamp": iso_charger(s.start),
                },
                {"transactionId": txid, "idTagInfo": {"status": "Accepted"}},
            )
            self.status16(s.start + timedelta(seconds=1), c, "Charging")
        else:
            tev(
                s.start,
                "Started",
                "Authorized",
                {
                    "info": {"chargingState": "Charging"},
                    "idToken": {"idToken": idtag, "type": "ISO14443"},
                    "meterValue": [
                        {
                            "timestamp": iso_charger(s.start),
                            "sampledValue": self.sampled201(
                                s, s.start, begin_reg, "Transaction.Begin"
                            ),
                        }
                    ],
                },
            )
        t = s.start
        dt = timedelta(seconds=self.p.sample_s)
        suspended_sent = False
        true_reg = begin_reg
        while t + dt <= s.stop:
            # energy over [t, t+dt], sub-stepped (power changes only at fault edges)
            for k in range(self.p.sample_s):
                tk = t + timedelta(seconds=k)
                _, _, pw, _ = self.electrical(s, tk)
                e = pw / 3600.0
                true_wh += e
                true_reg += e
                if not (s.stuck and s.stuck[0] <= tk < s.stuck[1]):
                    self.register[c] += e
            t += dt
            if s.ev_full <= t < s.stop and not suspended_sent:
                suspended_sent = True
                if v16:
                    self.status16(t, c, "SuspendedEV")
                else:
                    tev(
                        t,
                        "Updated",
                        "ChargingStateChanged",
                        {"info": {"chargingState": "SuspendedEV"}},
                    )
            if t >= s.stop:
                break
            if v16:
                self.call(
                    t,
                    "MeterValues",
                    {
                        "connectorId": c,
                        "transactionId": txid,
                        "meterValue": [
                            {
                                "timestamp": iso_charger(t),
                                "sampledValue": self.sampled16(
                                    s, t, self.register[c], "Sample.Periodic"
                                ),
                            }
                        ],
                    },
                    {},
                )
            else:
                tev(
                    t,
                    "Updated",
                    "MeterValuePeriodic",
                    {
                        "meterValue": [
                            {
                                "timestamp": iso_charger(t),
                                "sampledValue": self.sampled201(
                                    s, t, self.register[c], "Sample.Periodic"
                                ),
                            }
                        ],
                    },
                )
        end_reg = self.register[c]
        if v16:
            self.call(
                s.stop,
                "StopTransaction",
                {
                    "transactionId": txid,
                    "meterStop": round(end_reg),
                    "timestamp": iso_charger(s.stop),
                    "reason": s.stop_reason,
                    "idTag": idtag,
                },
                {"idTagInfo": {"status": "Accepted"}},
            )
            if s.finish:
                self.status16(s.stop + timedelta(seconds=1), c, "Finishing")
                self.status16(s.stop + timedelta(seconds=60), c, "Available")
            reported: float = round(end_reg) - round(reported_begin)
        else:
            tev(
                s.stop,
                "Ended",
                "EVCommunicationLost",
                {
                    "info": {"chargingState": "Idle", "stoppedReason": "EVDisconnected"},
                    "meterValue": [
                        {
                            "timestamp": iso_charger(s.stop),
                            "sampledValue": self.sampled201(s, s.stop, end_reg, "Transaction.End"),
                        }
                    ],
                },
            )
            self.status201(s.stop + timedelta(seconds=60), c, "Available")
            reported = round(end_reg - reported_begin, 1)
        self.truth_sessions.append(
            {
                "charger": self.p.cid,
                "connector": c,
                "transaction_id": txid,
                "start": iso(s.start),
                "stop": iso(s.stop),
                "true_wh": round(true_wh, 3),
                "reported_register_wh": reported,
            }
        )

    def faults(self) -> None:
        for conn, start, end, err in self.p.faulted:
            self.status16(start, conn, "Faulted", err)
            if end is not None:
                self.status16(end, conn, "Available")


def plans() -> tuple[list[ChargerPlan], list[Fault]]:
    faults: list[Fault] = []

    def two_sessions(conn: int = 1, **kw: Any) -> list[SessionPlan]:
        return [
            SessionPlan(conn, m(10), m(11), m(60), m(65), **kw),
            SessionPlan(conn, m(100), m(101), m(150), m(156)),
        ]

    cps: list[ChargerPlan] = []
    # Clean chargers.
    cps.append(ChargerPlan("ACC-CLEAN1", heartbeat_s=60, sample_s=10, sessions=two_sessions()))
    cps.append(
        ChargerPlan("ACC-KW", heartbeat_s=120, sample_s=30, style="kw", sessions=two_sessions())
    )
    cps.append(
        ChargerPlan(
            "ACC-DEFUNIT",
            heartbeat_s=300,
            sample_s=60,
            style="default_unit",
            sessions=two_sessions(),
        )
    )
    cps.append(
        ChargerPlan(
            "ACC-V201", version="2.0.1", heartbeat_s=120, sample_s=15, sessions=two_sessions()
        )
    )
    # A charger whose register restarts at 0 per transaction (some ABB, Alfen do).
    cps.append(
        ChargerPlan(
            "ACC-RESET", heartbeat_s=300, sample_s=30, reset_per_tx=True, sessions=two_sessions()
        )
    )
    # Current stops for 10 min mid-session while the status stays Charging.
    intr = ChargerPlan("ACC-INTR", heartbeat_s=60, sample_s=10, sessions=two_sessions())
    intr.sessions[0].pause = (m(30), m(40))
    cps.append(intr)
    faults.append(
        Fault("ACC-INTR", 1, "charging_interrupted", m(30), m(40), "0 A, status Charging")
    )
    # A 2.0.1 station, heartbeat 120 s, silent 15 min between sessions.
    cps.append(
        ChargerPlan(
            "ACC-V201-OFF",
            version="2.0.1",
            heartbeat_s=120,
            sample_s=15,
            sessions=two_sessions(),
            silent=(m(70), m(85)),
        )
    )
    faults.append(
        Fault("ACC-V201-OFF", None, "charger_offline", m(70), m(85), "2.0.1; heartbeat 120 s")
    )
    # Goes silent 15 min between sessions.
    cps.append(
        ChargerPlan(
            "ACC-SILENT",
            heartbeat_s=60,
            sample_s=10,
            sessions=two_sessions(),
            silent=(m(75), m(90)),
        )
    )
    faults.append(
        Fault(
            "ACC-SILENT", None, "charger_offline", m(75), m(90), "no frame at all; heartbeat 60 s"
        )
    )
    # GroundFailure: Faulted during a session, which the charger then stops.
    gf = ChargerPlan(
        "ACC-GROUND",
        heartbeat_s=60,
        sample_s=10,
        sessions=[
            SessionPlan(1, m(10), m(11), m(40), m(40), stop_reason="EmergencyStop", finish=False),
            SessionPlan(1, m(100), m(101), m(150), m(156)),
        ],
        faulted=[(1, m(40) - timedelta(seconds=1), m(50), "GroundFailure")],
    )
    cps.append(gf)
    faults.append(
        Fault(
            "ACC-GROUND",
            1,
            "ground_failure",
            m(40),
            m(50),
            "Faulted/GroundFailure; session stopped EmergencyStop",
        )
    )
    # Over-temperature: housing ramps 38 -> 90 °C over 20 min in session 1.
    hot = ChargerPlan(
        "ACC-HOT",
        heartbeat_s=60,
        sample_s=10,
        sessions=[
            SessionPlan(1, m(10), m(11), m(60), m(65), hot=(m(30), m(50))),
            SessionPlan(1, m(100), m(101), m(150), m(156)),
        ],
    )
    cps.append(hot)
    faults.append(
        Fault(
            "ACC-HOT",
            1,
            "over_temperature",
            m(30) + timedelta(minutes=20 * (75 - 38) / 52),
            m(65),
            "Body 38->90 °C over 08:30-08:50; onset = crossing 75 °C; held at 90 °C to 09:05",
        )
    )
    # Phase loss (L3 current and voltage 0) in session 1; L1 sag to 190 V for 6 min in session 2.
    ph = ChargerPlan(
        "ACC-PHASE",
        heartbeat_s=60,
        sample_s=10,
        sessions=[
            SessionPlan(1, m(10), m(11), m(60), m(65), lost_phase=(m(30), m(45))),
            SessionPlan(1, m(100), m(101), m(150), m(156)),
        ],
    )
    ph.sessions[1].sag = (m(120), m(126))
    cps.append(ph)
    faults.append(Fault("ACC-PHASE", 1, "phase_loss", m(30), m(45), "L3 0 A and 0 V"))
    faults.append(
        Fault("ACC-PHASE", 1, "under_voltage", m(120), m(126), "L1-N 190 V, others 230 V")
    )
    # Stuck register on connector 1 (8 min, power flowing); connector 2 stuck Faulted from 10:00.
    st = ChargerPlan(
        "ACC-STUCK",
        heartbeat_s=60,
        sample_s=10,
        connectors=2,
        sessions=[
            SessionPlan(1, m(10), m(11), m(60), m(65), stuck=(m(30), m(38))),
            SessionPlan(1, m(100), m(101), m(150), m(156)),
        ],
        faulted=[(2, m(120), None, "ConnectorLockFailure")],
    )
    cps.append(st)
    faults.append(
        Fault(
            "ACC-STUCK",
            1,
            "meter_stuck",
            m(30),
            m(38),
            "register frozen while ~11 kW flows; never catches up",
        )
    )
    faults.append(
        Fault(
            "ACC-STUCK",
            2,
            "connector_faulted",
            m(120),
            m(180),
            "Faulted/ConnectorLockFailure to the end",
        )
    )
    return cps, faults


def malformed(w: Writer) -> list[dict[str, Any]]:
    """About ten broken messages, each with the reason it should be rejected."""
    out: list[dict[str, Any]] = []
    base = "ocpp/1.6/ACC-CLEAN1/cp"

    def bad(minute: float, topic: str, payload: Any, why: str) -> None:
        t = m(minute)
        w.put(t, topic, payload)
        out.append({"ts": iso(t), "topic": topic, "why": why})

    bad(2.1, base, '[2,"9001","Heartbeat",{', "truncated JSON")
    bad(
        2.2,
        base,
        [
            2,
            "9002",
            "StatusNotification",
            {"connectorId": "one", "errorCode": "NoError", "status": "Available"},
        ],
        "connectorId a string",
    )
    bad(
        2.3,
        base,
        [
            2,
            "9003",
            "StatusNotification",
            {"connectorId": 1, "errorCode": "NoError", "status": "Broken"},
        ],
        "unknown status",
    )
    bad(
        2.4,
        base,
        [
            2,
            "9004",
            "StatusNotification",
            {"connectorId": 1, "errorCode": "Melted", "status": "Faulted"},
        ],
        "unknown errorCode",
    )
    bad(2.5, base, [2, "9005", "FlyToMoon", {}], "unknown action")
    bad(2.6, base, [2, "9006"], "frame too short")
    bad(
        2.7,
        base,
        [
            2,
            "9007",
            "MeterValues",
            {
                "connectorId": 1,
                "meterValue": [
                    {
                        "timestamp": "2026-03-02T08:02:42Z",
                        "sampledValue": [
                            {
                                "value": "abc",
                                "measurand": "Energy.Active.Import.Register",
                                "unit": "Wh",
                            }
                        ],
                    }
                ],
            },
        ],
        "non-numeric value",
    )
    bad(
        2.8,
        base,
        [
            2,
            "9008",
            "MeterValues",
            {
                "connectorId": 1,
                "meterValue": [
                    {
                        "timestamp": "2031-01-01T00:00:00Z",
                        "sampledValue": [
                            {
                                "value": "100",
                                "measurand": "Energy.Active.Import.Register",
                                "unit": "Wh",
                            }
                        ],
                    }
                ],
            },
        ],
        "timestamp five years ahead",
    )
    bad(2.9, "ocpp/1.6/bad id!/cp", [2, "9009", "Heartbeat", {}], "charger id with space and !")
    bad(3.0, "something/else", {"hello": 1}, "unknown topic")
    bad(
        3.1,
        base,
        [3, "no-such-call", {"currentTime": "2026-03-02T08:03:06Z"}],
        "CALLRESULT to nothing (orphan)",
    )
    return out


def generate(out_dir: Path) -> dict[str, Any]:
    out_dir.mkdir(parents=True, exist_ok=True)
    w = Writer()
    cps, faults = plans()
    truth_sessions: list[dict[str, Any]] = []
    end = T0 + timedelta(hours=HOURS)
    for i, p in enumerate(cps):
        ch = Charger(p, w, tx_base=1000 * (i + 1))
        ch.boot(T0 + timedelta(seconds=3 * i))
        ch.heartbeats(end)
        for s in p.sessions:
            ch.session(s, idtag=f"TAG{i:02d}{s.connector}")
        ch.faults()
        truth_sessions += ch.truth_sessions
    bad = malformed(w)
    w.dump(out_dir / "capture.jsonl")
    for ts in truth_sessions:
        # OCPI step_size 1 Wh rounds up; money to 4 places, half up.
        wh = Decimal(str(ts["true_wh"])).to_integral_value(ROUND_CEILING)
        excl = wh / 1000 * TARIFF_EUR_PER_KWH
        q = Decimal("0.0001")
        ts["expected_cost_excl_vat_eur"] = str(excl.quantize(q, ROUND_HALF_UP))
        ts["expected_cost_incl_vat_eur"] = str(
            (excl * (1 + VAT_PCT / 100)).quantize(q, ROUND_HALF_UP)
        )
    truth = {
        "t0": iso(T0),
        "end": iso(end),
        "chargers": [
            {
                "id": p.cid,
                "version": p.version,
                "heartbeat_s": p.heartbeat_s,
                "sample_s": p.sample_s,
                "style": p.style,
                "connectors": p.connectors,
            }
            for p in cps
        ],
        "faults": [f.as_json() for f in faults],
        "sessions": truth_sessions,
        "malformed": bad,
    }
    (out_dir / "truth.json").write_text(json.dumps(truth, indent=1))
    fleet = [
        "sites:",
        "  - {id: acc-site, timezone: UTC, tariff: flat-energy, kind: public}",
        "chargers:",
    ]
    fleet += [
        f"  - {{id: {p.cid}, site: acc-site, connectors: {p.connectors},"
        " max_power_w: 22000, phases: 3, nominal_voltage_v: 230}"
        for p in cps
    ]
    (out_dir / "fleet.yaml").write_text("\n".join(fleet) + "\n")
    return truth


if __name__ == "__main__":
    generate(Path(sys.argv[1]))
