"""A blind generator of hostile and messy captures with ground truth (issue #17).

Written from README ("Telemetry contract", "Bad input", "Captures and replay"),
docs/architecture.md, docs/sessions.md and docs/guarantees.md, without reading
the ingest, detectors or sessions code. A fleet of clean chargers (OCPP 1.6J,
OCPP 2.0.1 and native MQTT meters) charges normally at 10/30/60 s, with:

- messy but valid traffic on every clean charger: sampling jitter of +-30 %,
  frames received out of order (up to two intervals late), CALLs resent with
  the same message id after a lost CALLRESULT (answered again), registers that
  restart at 0 per transaction on every other charger, and on some chargers a
  5-20 min outage mid-session whose queued MeterValues arrive in a burst after
  the reconnect (2.0.1: TransactionEvent `offline: true`);
- stateless garbage on the clean chargers' own topics, none of which carries a
  meaning that could change a session or page (truncated JSON, wrong message
  type ids, unknown actions, NaN/Infinity/1e309/huge ints, a 5 MB frame, a
  frame nested 10,000 deep, a BOM, duplicate keys, CALLRESULTs for unknown ids);
- stateful hostility on two hostile chargers (1.6 and 2.0.1) that also charge
  one clean session each: connectorId 99, a transactionId never started, a
  StopTransaction sent twice, Transaction.End after the stop, a message id
  reused for another action, timestamps from 1970/2100, non-ISO and without a
  zone, empty sampledValue, unknown measurands/units/phases, negative energy.

Each injected frame is listed in the truth with `must_reject` (it is wrong by
the contract, so some rejection must name it) or not (acceptable either way,
but it must not crash the replay or change any session). Every injected frame
has its own (topic, receive second) so rejections can be matched to it.

Run: python -m tests.acceptance.gen_hostile OUT_DIR [SEED]
"""

from __future__ import annotations

import json
import random
import sys
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

T0 = datetime(2026, 10, 5, 6, 0, 0, tzinfo=UTC)
HOURS = 2.0
HEARTBEAT_S = 300
# Two sessions per charger: (start, length) in seconds from T0.
SESSIONS = ((600.0, 2700.0), (4200.0, 2400.0))
CADENCES = (10, 30, 60)
PREFIX = {"1.6": "C16", "2.0.1": "C201", "native": "NAT"}


def at(s: float) -> datetime:
    return T0 + timedelta(seconds=s)


def iso_ms(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%S") + f".{t.microsecond // 1000:03d}Z"


def iso_s(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class Capture:
    lines: list[tuple[float, int, dict[str, Any] | str]] = field(default_factory=list)
    seq: int = 0

    def put(self, recv: float, topic: str, payload: Any) -> None:
        self.seq += 1
        self.lines.append(
            (recv, self.seq, {"ts": iso_ms(at(recv)), "topic": topic, "payload": payload})
        )

    def put_raw(self, recv: float, topic: str, payload_json_text: str) -> None:
        """A line whose payload is written as JSON text verbatim (numbers and
        nesting Python's json module would not write)."""
        self.seq += 1
        head = json.dumps({"ts": iso_ms(at(recv)), "topic": topic})[:-1]
        self.lines.append((recv, self.seq, head + ',"payload":' + payload_json_text + "}"))

    def dump(self, path: Path) -> None:
        self.lines.sort(key=lambda x: (x[0], x[1]))
        with path.open("w", encoding="utf-8") as f:
            for _, _, obj in self.lines:
                text = obj if isinstance(obj, str) else json.dumps(obj, separators=(",", ":"))
                f.write(text + "\n")


@dataclass
class Plan:
    cid: str
    proto: str  # "1.6" | "2.0.1" | "native"
    cadence: int
    restart_at_zero: bool
    gap: tuple[float, float] | None = None  # offline (s from T0): nothing received
    hostile: bool = False


class Charger:
    """One charger's traffic; its CSMS answers as a CSMS would."""

    def __init__(self, plan: Plan, cap: Capture, rng: random.Random, tx_base: int) -> None:
        self.p = plan
        self.cap = cap
        self.rng = rng
        self.msg = 0
        self.tx = tx_base
        self.register = 0.0 if plan.restart_at_zero else 3_456_789.0 + tx_base
        self.truth: list[dict[str, Any]] = []
        self.queue: list[tuple[float, str, Any]] = []  # held while offline
        self.seq201 = 0

    # ------------------------------------------------------------ sending
    def offline(self, t: float) -> bool:
        g = self.p.gap
        return g is not None and g[0] <= t < g[1]

    def transit(self) -> float:
        return self.rng.uniform(0.05, 1.0)

    def topic(self, src: str) -> str:
        if self.p.proto == "native":
            raise AssertionError("native chargers have no OCPP topics")
        return f"ocpp/{self.p.proto}/{self.p.cid}/{src}"

    def send(self, t: float, topic: str, payload: Any, *, late: float = 0.0) -> None:
        if self.offline(t):
            self.queue.append((t, topic, payload))
            return
        self.cap.put(t + self.transit() + late, topic, payload)

    def flush_queue(self, t: float) -> None:
        # Reconnect: the queued frames go out back to back, oldest first.
        for i, (_, topic, payload) in enumerate(self.queue):
            self.cap.put(t + 0.5 + 0.05 * i, topic, payload)
        self.queue.clear()

    def call(
        self,
        t: float,
        action: str,
        body: dict[str, Any],
        answer: dict[str, Any],
        *,
        late: float = 0.0,
    ) -> str:
        self.msg += 1
        mid = f"{self.p.cid}-{self.msg}"
        frame = [2, mid, action, body]
        if self.offline(t):
            self.queue.append((t, self.topic("cp"), frame))
            # The CSMS answers once the frame arrives: after the reconnect.
            self.queue.append((t, self.topic("csms"), [3, mid, answer]))
            return mid
        recv = t + self.transit() + late
        self.cap.put(recv, self.topic("cp"), frame)
        self.cap.put(recv + 0.15, self.topic("csms"), [3, mid, answer])
        # A CALLRESULT lost on its way to the charger: the same frame again.
        if self.rng.random() < 0.05:
            self.cap.put(recv + 3.0, self.topic("cp"), frame)
            self.cap.put(recv + 3.15, self.topic("csms"), [3, mid, answer])
        return mid

    # ------------------------------------------------------------ OCPP pieces
    def boot(self, t: float) -> None:
        if self.p.proto == "1.6":
            body: dict[str, Any] = {"chargePointVendor": "Hostile", "chargePointModel": "H-1"}
        else:
            body = {
                "reason": "PowerUp",
                "chargingStation": {"model": "H-1", "vendorName": "Hostile"},
            }
        self.call(
            t,
            "BootNotification",
            body,
            {"status": "Accepted", "currentTime": iso_s(at(t)), "interval": HEARTBEAT_S},
        )

    def status(self, t: float, state: str) -> None:
        if self.p.proto == "native":
            p = {"ts": t + T0.timestamp(), "status": state, "error_code": "NoError"}
            self.send(t, f"ev/{self.p.cid}/1/status", p)
        elif self.p.proto == "1.6":
            body = {
                "connectorId": 1,
                "errorCode": "NoError",
                "status": state,
                "timestamp": iso_s(at(t)),
            }
            self.call(t, "StatusNotification", body, {})
        else:
            s201 = {"Charging": "Occupied", "Preparing": "Occupied", "Finishing": "Occupied"}.get(
                state, state
            )
            body = {
                "timestamp": iso_s(at(t)),
                "connectorStatus": s201,
                "evseId": 1,
                "connectorId": 1,
            }
            self.call(t, "StatusNotification", body, {})

    def heartbeat(self, t: float) -> None:
        if self.p.proto == "native":
            self.send(t, f"ev/{self.p.cid}/heartbeat", {"ts": t + T0.timestamp()})
        else:
            self.call(t, "Heartbeat", {}, {"currentTime": iso_s(at(t))})

    def sv16(self, reg: float, watts: float, ctx: str = "Sample.Periodic") -> list[dict[str, Any]]:
        return [
            {
                "value": f"{reg:.1f}",
                "context": ctx,
                "measurand": "Energy.Active.Import.Register",
                "unit": "Wh",
            },
            {
                "value": f"{watts:.1f}",
                "context": ctx,
                "measurand": "Power.Active.Import",
                "unit": "W",
            },
            {
                "value": "230.0",
                "context": ctx,
                "measurand": "Voltage",
                "phase": "L1-N",
                "unit": "V",
            },
        ]

    def sv201(self, reg: float, watts: float, ctx: str = "Sample.Periodic") -> list[dict[str, Any]]:
        return [
            {
                "value": round(reg, 1),
                "context": ctx,
                "measurand": "Energy.Active.Import.Register",
                "unitOfMeasure": {"unit": "Wh"},
            },
            {
                "value": round(watts, 1),
                "context": ctx,
                "measurand": "Power.Active.Import",
                "unitOfMeasure": {"unit": "W"},
            },
        ]

    # ------------------------------------------------------------ a session
    def session(self, start: float, length: float, watts: float) -> None:
        self.tx += 1
        tx = self.tx
        if self.p.restart_at_zero:
            self.register = 0.0
        e0 = self.register
        p = self.p
        self.status(start - 30, "Preparing")
        tag = f"TAG{tx}"
        if p.proto == "1.6":
            self.call(
                start,
                "StartTransaction",
                {
                    "connectorId": 1,
                    "idTag": tag,
                    "meterStart": round(e0),
                    "timestamp": iso_s(at(start)),
                },
                {"transactionId": tx, "idTagInfo": {"status": "Accepted"}},
            )
        elif p.proto == "2.0.1":
            self.seq201 = 0
            self.tev(
                start,
                "Started",
                tx,
                "Authorized",
                [
                    {
                        "timestamp": iso_s(at(start)),
                        "sampledValue": self.sv201(e0, 0.0, "Transaction.Begin"),
                    }
                ],
                evse=True,
                tag=tag,
            )
        else:
            self.send(
                start,
                f"ev/{p.cid}/1/transaction",
                {
                    "ts": start + T0.timestamp(),
                    "event": "start",
                    "transaction_id": f"N{tx}",
                    "meter_wh": e0,
                    "id_tag": tag,
                },
            )
        self.status(start + 2, "Charging")
        t = start
        while True:
            step = p.cadence * self.rng.uniform(0.7, 1.3)  # jitter +-30 %
            if t + step >= start + length - 1:
                break
            prev = t
            t += step
            self.register += watts * (t - prev) / 3600.0
            # Out of order: now and then a frame is held up to two intervals.
            late = self.rng.uniform(0, 2 * p.cadence) if self.rng.random() < 0.06 else 0.0
            self.meter(t, watts, late=late, tx=tx)
        end = start + length
        self.register += watts * (end - t) / 3600.0
        e1 = self.register
        if p.proto == "1.6":
            self.call(
                end,
                "StopTransaction",
                {
                    "transactionId": tx,
                    "meterStop": round(e1),
                    "timestamp": iso_s(at(end)),
                    "reason": "EVDisconnected",
                    "transactionData": [
                        {
                            "timestamp": iso_s(at(end)),
                            "sampledValue": self.sv16(e1, 0.0, "Transaction.End")[:1],
                        }
                    ],
                },
                {"idTagInfo": {"status": "Accepted"}},
            )
            true_wh = round(e1) - round(e0)
        elif p.proto == "2.0.1":
            self.tev(
                end,
                "Ended",
                tx,
                "EVDeparted",
                [
                    {
                        "timestamp": iso_s(at(end)),
                        "sampledValue": self.sv201(e1, 0.0, "Transaction.End"),
                    }
                ],
                stopped="EVDisconnected",
            )
            true_wh = round(e1, 1) - round(e0, 1)
        else:
            self.send(
                end,
                f"ev/{p.cid}/1/transaction",
                {
                    "ts": end + T0.timestamp(),
                    "event": "stop",
                    "transaction_id": f"N{tx}",
                    "meter_wh": e1,
                    "reason": "EVDisconnected",
                },
            )
            true_wh = e1 - e0
        self.status(end + 5, "Finishing")
        self.status(end + 60, "Available")
        txid = {"1.6": str(tx), "2.0.1": f"T{tx}"}.get(p.proto, f"N{tx}")
        self.truth.append(
            {
                "charger": p.cid,
                "transaction_id": txid,
                "true_wh": round(true_wh, 3),
                "start": iso_s(at(start)),
                "stop": iso_s(at(end)),
            }
        )

    def tev(
        self,
        t: float,
        kind: str,
        tx: int,
        trigger: str,
        mv: list[dict[str, Any]],
        *,
        evse: bool = False,
        tag: str | None = None,
        stopped: str | None = None,
    ) -> None:
        self.seq201 += 1
        body: dict[str, Any] = {
            "eventType": kind,
            "timestamp": iso_s(at(t)),
            "triggerReason": trigger,
            "seqNo": self.seq201,
            "transactionInfo": {"transactionId": f"T{tx}"},
        }
        if evse:
            body["evse"] = {"id": 1, "connectorId": 1}
        if tag:
            body["idToken"] = {"idToken": tag, "type": "ISO14443"}
        if stopped:
            body["transactionInfo"]["stoppedReason"] = stopped
        if self.offline(t):
            body["offline"] = True
        if mv:
            body["meterValue"] = mv
        self.call(t, "TransactionEvent", body, {})

    def meter(self, t: float, watts: float, *, late: float, tx: int) -> None:
        p = self.p
        if p.proto == "1.6":
            body = {
                "connectorId": 1,
                "transactionId": tx,
                "meterValue": [
                    {"timestamp": iso_s(at(t)), "sampledValue": self.sv16(self.register, watts)}
                ],
            }
            self.call(t, "MeterValues", body, {}, late=late)
        elif p.proto == "2.0.1":
            self.tev(
                t,
                "Updated",
                tx,
                "MeterValuePeriodic",
                [{"timestamp": iso_s(at(t)), "sampledValue": self.sv201(self.register, watts)}],
            )
        else:
            amps = round(watts / 3 / 230.0, 2)  # three phases: 16 A each at 11 kW
            sample = {
                "ts": round(t + T0.timestamp(), 3),
                "energy_wh": round(self.register, 3),
                "power_w": watts,
                "voltage_v": [230.0] * 3,
                "current_a": [amps] * 3,
            }
            self.send(t, f"ev/{p.cid}/1/meter", sample, late=late)

    def run(self) -> None:
        p = self.p
        if p.proto != "native":
            self.boot(1.0)
        self.status(2.0, "Available")
        events: list[tuple[float, str]] = [
            (float(h), "hb") for h in range(HEARTBEAT_S, int(HOURS * 3600), HEARTBEAT_S)
        ]
        if p.proto == "native":
            events = [(float(h), "hb") for h in range(60, int(HOURS * 3600), 60)]
        for t, _ in events:
            if not self.offline(t):
                self.heartbeat(t)
        watts = 7360.0 if p.cadence != 30 else 11040.0
        for start, length in SESSIONS:
            self.session(start, length, watts)
        if p.gap is not None:
            self.flush_queue(p.gap[1])


# ---------------------------------------------------------------- injected frames


@dataclass
class Injected:
    topic: str
    recv: float
    kind: str
    must_reject: bool


class Injector:
    """Puts hostile frames on the capture, each at its own (topic, second)."""

    def __init__(self, cap: Capture) -> None:
        self.cap = cap
        self.used: set[tuple[str, int]] = set()
        self.items: list[Injected] = []

    def _slot(self, topic: str, t: float) -> float:
        s = int(t)
        while (topic, s) in self.used:
            s += 1
        self.used.add((topic, s))
        return s + 0.5

    def put(
        self, topic: str, t: float, kind: str, payload: Any, *, must_reject: bool, raw: bool = False
    ) -> float:
        recv = self._slot(topic, t)
        if raw:
            self.cap.put_raw(recv, topic, payload)
        else:
            self.cap.put(recv, topic, payload)
        self.items.append(Injected(topic, recv, kind, must_reject))
        return recv


def garbage(inj: Injector, cid: str, version: str, t: float, rng: random.Random) -> None:
    """Stateless garbage on a clean OCPP charger's topics: none has a meaning
    that could change a session or page."""
    cp = f"ocpp/{version}/{cid}/cp"
    csms = f"ocpp/{version}/{cid}/csms"
    mv_action = "MeterValues"
    nan_sv = (
        {"value": "NaN", "measurand": "Voltage", "unit": "V"}
        if version == "1.6"
        else {"value": "NaN", "measurand": "Voltage", "unitOfMeasure": {"unit": "V"}}
    )
    mv_body: dict[str, Any] = (
        {"connectorId": 1, "meterValue": [{"timestamp": iso_s(at(t)), "sampledValue": [nan_sv]}]}
        if version == "1.6"
        else {"evseId": 1, "meterValue": [{"timestamp": iso_s(at(t)), "sampledValue": [nan_sv]}]}
    )
    cases: list[tuple[str, Any, bool, bool]] = [
        ("truncated_json", '[2,"g1","Heartbeat",{', True, False),
        ("empty_payload", "", True, False),
        ("type_id_7", [7, "g2", "Heartbeat", {}], True, False),
        ("type_id_string", ["2", "g3", "Heartbeat", {}], True, False),
        ("type_id_float", [2.5, "g4", "Heartbeat", {}], True, False),
        ("unknown_action", [2, "g5", "Teleport", {"to": "Mars"}], True, False),
        (
            "result_unknown_id",
            [3, "no-such-call-" + cid, {"currentTime": iso_s(at(t))}],
            True,
            False,
        ),
        ("nan_string_value", [2, "g6", mv_action, mv_body], True, False),
        ("infinity_literal", '[2,"g7","Heartbeat",{"x":Infinity}]', True, False),
        ("number_1e309", '[2,"g8","Heartbeat",{"x":1e309}]', True, False),
        ("huge_int_5000_digits", '[2,"g9","Heartbeat",{"x":' + "9" * 5000 + "}]", True, False),
        ("bom_prefix", '\ufeff[2,"g10","Heartbeat",{}]', False, False),
        ("duplicate_keys", '[2,"g11","Heartbeat",{"a":1,"a":2}]', False, False),
        ("not_utf8_latin1", '[2,"g12","Heartbeat",{"x":"\u00ff\u00fe"}]', True, False),
        ("object_not_array", {"hello": "world"}, True, False),
        ("deep_nesting_string", "[" * 10_000 + "]" * 10_000, True, False),
    ]
    for kind, payload, must, raw in cases:
        topic = csms if kind == "result_unknown_id" else cp
        inj.put(topic, t + rng.uniform(0, 5), kind, payload, must_reject=must, raw=raw)
        t += rng.uniform(20, 90)


def giants(inj: Injector, cid: str, version: str, t: float) -> None:
    """Frames too big or too deep, written into the capture line as JSON values."""
    cp = f"ocpp/{version}/{cid}/cp"
    inj.put(cp, t, "deep_nesting_value", "[" * 10_000 + "]" * 10_000, must_reject=True, raw=True)
    big = json.dumps([2, "big1", "DataTransfer", {"vendorId": "x", "data": "A" * 5_000_000}])
    inj.put(cp, t + 60, "payload_5mb", big, must_reject=True, raw=True)
    inj.put(
        cp,
        t + 120,
        "huge_int_value",
        '[2,"big2","Heartbeat",{"x":' + "7" * 5000 + "}]",
        must_reject=True,
        raw=True,
    )
    inj.put(
        cp,
        t + 180,
        "number_1e309_value",
        '[2,"big3","Heartbeat",{"x":1e309}]',
        must_reject=True,
        raw=True,
    )


def native_garbage(inj: Injector, cid: str, t: float) -> None:
    top = f"ev/{cid}/1/meter"
    ts = t + T0.timestamp()
    cases: list[tuple[str, Any, bool]] = [
        ("native_truncated", '{"ts": 17', True),
        ("native_energy_string", {"ts": ts, "energy_wh": "lots"}, True),
        ("native_nan_string", {"ts": ts, "power_w": "NaN"}, True),
        ("native_negative_energy", {"ts": ts, "energy_wh": -500.0}, True),
        ("native_huge_int", {"ts": ts, "energy_wh": 10**30}, True),
        ("native_length_mismatch", {"ts": [ts, ts + 1], "energy_wh": [1.0]}, True),
        ("native_ts_1970", {"ts": 1.0, "voltage_v": [230.0]}, True),
        ("native_ts_2100", {"ts": 4_102_444_800.0, "voltage_v": [230.0]}, True),
        ("native_ts_no_zone", {"ts": "2026-10-05T07:00:00", "voltage_v": [230.0]}, False),
        ("native_ts_not_iso", {"ts": "05/10/2026 07:00", "voltage_v": [230.0]}, True),
    ]
    for kind, payload, must in cases:
        inj.put(top, t, kind, payload, must_reject=must)
        t += 45
    inj.put(
        f"ev/{cid}/77x/meter",
        t,
        "native_bad_connector",
        {"ts": ts, "voltage_v": [230.0]},
        must_reject=True,
    )


def hostile16(inj: Injector, ch: Charger) -> None:
    """Stateful hostility on a 1.6 charger whose clean sessions are judged."""
    cid = ch.p.cid
    cp, csms = f"ocpp/1.6/{cid}/cp", f"ocpp/1.6/{cid}/csms"
    tx1 = ch.truth[0]
    stop_t = datetime.fromisoformat(tx1["stop"].replace("Z", "+00:00"))
    s0 = (stop_t - T0).total_seconds()
    reg_end = ch.truth[0]["true_wh"]  # the charger restarts its register at 0

    def mv(t: float, svs: list[dict[str, Any]], conn: Any = 1, tx: Any = None) -> dict[str, Any]:
        b: dict[str, Any] = {
            "connectorId": conn,
            "meterValue": [{"timestamp": iso_s(at(t)), "sampledValue": svs}],
        }
        if tx is not None:
            b["transactionId"] = tx
        return b

    volt = [{"value": "231.0", "measurand": "Voltage", "unit": "V", "phase": "L1-N"}]
    items: list[tuple[str, Any, bool, str]] = [
        # The same StopTransaction again under a new message id, with a larger meterStop.
        (
            "stop_twice",
            [
                2,
                "h16-stop2",
                "StopTransaction",
                {
                    "transactionId": int(tx1["transaction_id"]),
                    "meterStop": int(reg_end) + 5000,
                    "timestamp": iso_s(at(s0 + 30)),
                },
            ],
            False,
            cp,
        ),
        (
            "end_after_stop",
            [
                2,
                "h16-end",
                "MeterValues",
                mv(
                    s0 + 40,
                    [
                        {
                            "value": f"{reg_end + 9000:.1f}",
                            "context": "Transaction.End",
                            "measurand": "Energy.Active.Import.Register",
                            "unit": "Wh",
                        }
                    ],
                    tx=int(tx1["transaction_id"]),
                ),
            ],
            False,
            cp,
        ),
        (
            "connector_99",
            [
                2,
                "h16-c99",
                "StatusNotification",
                {
                    "connectorId": 99,
                    "errorCode": "GroundFailure",
                    "status": "Faulted",
                    "timestamp": iso_s(at(s0 + 50)),
                },
            ],
            True,
            cp,
        ),
        (
            "tx_never_started",
            [2, "h16-ghost", "MeterValues", mv(s0 + 60, volt, tx=987654)],
            False,
            cp,
        ),
        (
            "ts_1970",
            [
                2,
                "h16-1970",
                "MeterValues",
                mv(s0, volt)
                | {"meterValue": [{"timestamp": "1970-01-01T00:00:00Z", "sampledValue": volt}]},
            ],
            True,
            cp,
        ),
        (
            "ts_2100",
            [
                2,
                "h16-2100",
                "MeterValues",
                {
                    "connectorId": 1,
                    "meterValue": [{"timestamp": "2100-01-01T00:00:00Z", "sampledValue": volt}],
                },
            ],
            True,
            cp,
        ),
        (
            "ts_not_iso",
            [
                2,
                "h16-niso",
                "MeterValues",
                {
                    "connectorId": 1,
                    "meterValue": [
                        {"timestamp": "Mon, 05 Oct 2026 07:00:00 GMT", "sampledValue": volt}
                    ],
                },
            ],
            True,
            cp,
        ),
        (
            "ts_no_zone",
            [
                2,
                "h16-nozone",
                "MeterValues",
                {
                    "connectorId": 1,
                    "meterValue": [{"timestamp": iso_s(at(s0 + 90))[:-1], "sampledValue": volt}],
                },
            ],
            False,
            cp,
        ),
        (
            "empty_sampled_value",
            [
                2,
                "h16-empty",
                "MeterValues",
                {
                    "connectorId": 1,
                    "meterValue": [{"timestamp": iso_s(at(s0 + 100)), "sampledValue": []}],
                },
            ],
            False,
            cp,
        ),
        (
            "unknown_measurand",
            [
                2,
                "h16-um",
                "MeterValues",
                mv(s0 + 110, [{"value": "1", "measurand": "Flux.Capacitance", "unit": "Wh"}]),
            ],
            True,
            cp,
        ),
        (
            "unknown_unit",
            [
                2,
                "h16-uu",
                "MeterValues",
                mv(s0 + 120, [{"value": "1", "measurand": "Voltage", "unit": "furlong"}]),
            ],
            True,
            cp,
        ),
        (
            "unknown_phase",
            [
                2,
                "h16-up",
                "MeterValues",
                mv(
                    s0 + 130, [{"value": "230", "measurand": "Voltage", "unit": "V", "phase": "L7"}]
                ),
            ],
            True,
            cp,
        ),
        (
            "negative_energy",
            [
                2,
                "h16-neg",
                "MeterValues",
                mv(
                    s0 + 140,
                    [{"value": "-500", "measurand": "Energy.Active.Import.Register", "unit": "Wh"}],
                    conn=2,
                ),
            ],
            True,
            cp,
        ),
        (
            "huge_int_register",
            [
                2,
                "h16-huge",
                "MeterValues",
                mv(s0 + 150, [{"value": str(10**30), "unit": "Wh"}], conn=2),
            ],
            True,
            cp,
        ),
        (
            "wrong_type_connector",
            [
                2,
                "h16-wt",
                "StatusNotification",
                {"connectorId": "one", "errorCode": "NoError", "status": "Available"},
            ],
            True,
            cp,
        ),
        (
            "minus_zero_power",
            [
                2,
                "h16-m0",
                "MeterValues",
                mv(
                    s0 + 170,
                    [{"value": "-0", "measurand": "Power.Active.Import", "unit": "W"}],
                    conn=2,
                ),
            ],
            False,
            cp,
        ),
        (
            "result_unknown_id_tx",
            [3, "h16-nobody", {"transactionId": 424242, "idTagInfo": {"status": "Accepted"}}],
            True,
            csms,
        ),
    ]
    t = s0 + 30
    for kind, payload, must, topic in items:
        inj.put(topic, t, kind, payload, must_reject=must)
        if payload[0] == 2:
            inj.cap.put(int(t) + 0.65, csms, [3, payload[1], {}])
        t += 10
    # A message id reused for another action (the answer matches the latest CALL).
    t = s0 + 400
    inj.put(cp, t, "id_reused_a", [2, "h16-reuse", "Heartbeat", {}], must_reject=False)
    inj.put(
        cp, t + 1, "id_reused_b", [2, "h16-reuse", "Authorize", {"idTag": "X"}], must_reject=False
    )
    inj.cap.put(t + 2.2, csms, [3, "h16-reuse", {"idTagInfo": {"status": "Invalid"}}])


def hostile201(inj: Injector, ch: Charger) -> None:
    cid = ch.p.cid
    cp = f"ocpp/2.0.1/{cid}/cp"
    tx1 = ch.truth[0]
    s0 = (datetime.fromisoformat(tx1["stop"].replace("Z", "+00:00")) - T0).total_seconds()

    def tev(
        kind: str,
        txid: str,
        seq: int,
        t: float,
        mv: list[dict[str, Any]] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> list[Any]:
        b: dict[str, Any] = {
            "eventType": kind,
            "timestamp": iso_s(at(t)),
            "triggerReason": "MeterValuePeriodic",
            "seqNo": seq,
            "transactionInfo": {"transactionId": txid},
        }
        if mv:
            b["meterValue"] = mv
        return [2, f"h201-{kind}-{seq}-{int(t)}", "TransactionEvent", b | (extra or {})]

    reg_end = tx1["true_wh"]
    items: list[tuple[str, Any, bool]] = [
        (
            "ended_twice",
            tev(
                "Ended",
                tx1["transaction_id"],
                900,
                s0 + 30,
                extra={
                    "transactionInfo": {
                        "transactionId": tx1["transaction_id"],
                        "stoppedReason": "Local",
                    }
                },
            ),
            False,
        ),
        (
            "end_after_stop",
            tev(
                "Updated",
                tx1["transaction_id"],
                901,
                s0 + 40,
                [
                    {
                        "timestamp": iso_s(at(s0 + 40)),
                        "sampledValue": [
                            {
                                "value": reg_end + 9000,
                                "context": "Transaction.End",
                                "measurand": "Energy.Active.Import.Register",
                            }
                        ],
                    }
                ],
            ),
            False,
        ),
        (
            "tx_never_started_update",
            tev(
                "Updated",
                "GHOST-1",
                1,
                s0 + 50,
                [
                    {
                        "timestamp": iso_s(at(s0 + 50)),
                        "sampledValue": [
                            {"value": 231.0, "measurand": "Voltage", "unitOfMeasure": {"unit": "V"}}
                        ],
                    }
                ],
            ),
            False,
        ),
        (
            "evse_99",
            [
                2,
                "h201-e99",
                "StatusNotification",
                {
                    "timestamp": iso_s(at(s0 + 60)),
                    "connectorStatus": "Faulted",
                    "evseId": 99,
                    "connectorId": 1,
                },
            ],
            True,
        ),
        (
            "ts_2100",
            [
                2,
                "h201-2100",
                "MeterValues",
                {
                    "evseId": 1,
                    "meterValue": [
                        {
                            "timestamp": "2100-06-01T00:00:00Z",
                            "sampledValue": [{"value": 230.0, "measurand": "Voltage"}],
                        }
                    ],
                },
            ],
            True,
        ),
        (
            "ts_1970",
            [
                2,
                "h201-1970",
                "MeterValues",
                {
                    "evseId": 1,
                    "meterValue": [
                        {
                            "timestamp": "1970-06-01T00:00:00Z",
                            "sampledValue": [{"value": 230.0, "measurand": "Voltage"}],
                        }
                    ],
                },
            ],
            True,
        ),
        (
            "value_string",
            [
                2,
                "h201-str",
                "MeterValues",
                {
                    "evseId": 1,
                    "meterValue": [
                        {
                            "timestamp": iso_s(at(s0 + 90)),
                            "sampledValue": [{"value": "230", "measurand": "Voltage"}],
                        }
                    ],
                },
            ],
            False,
        ),
        (
            "empty_meter_value",
            [2, "h201-emv", "MeterValues", {"evseId": 1, "meterValue": []}],
            False,
        ),
        (
            "unknown_unit",
            [
                2,
                "h201-uu",
                "MeterValues",
                {
                    "evseId": 1,
                    "meterValue": [
                        {
                            "timestamp": iso_s(at(s0 + 110)),
                            "sampledValue": [
                                {
                                    "value": 1.0,
                                    "measurand": "Voltage",
                                    "unitOfMeasure": {"unit": "parsec"},
                                }
                            ],
                        }
                    ],
                },
            ],
            True,
        ),
    ]
    t = s0 + 30
    for kind, payload, must in items:
        inj.put(cp, t, kind, payload, must_reject=must)
        inj.cap.put(int(t) + 0.65, f"ocpp/2.0.1/{cid}/csms", [3, payload[1], {}])
        t += 10


# ---------------------------------------------------------------- the fleet


def fleet_plans(rng: random.Random) -> list[Plan]:
    plans: list[Plan] = []
    for proto in ("1.6", "2.0.1", "native"):
        for cad in CADENCES:
            for k in range(2):
                cid = f"{PREFIX[proto]}-{cad}-{k}"
                gap = None
                if k == 1:
                    g0 = SESSIONS[0][0] + 900 + rng.uniform(0, 300)
                    gap = (g0, g0 + rng.uniform(300, 1200))
                plans.append(Plan(cid, proto, cad, restart_at_zero=(k == 0), gap=gap))
    plans.append(Plan("HOST-16", "1.6", 30, restart_at_zero=True, hostile=True))
    plans.append(Plan("HOST-201", "2.0.1", 30, restart_at_zero=True, hostile=True))
    return plans


def fleet_yaml(plans: list[Plan]) -> str:
    lines = ["sites:", "  - {id: depot, timezone: UTC, tariff: flat-energy}", "chargers:"]
    for p in plans:
        conns = 2 if p.hostile else 1
        lines.append(
            f"  - {{id: {p.cid}, site: depot, connectors: {conns}, max_power_w: 22000,"
            " phases: 3, nominal_voltage_v: 230}"
        )
    return "\n".join(lines) + "\n"


def generate(out: Path, seed: int = 12, *, inject: bool = True) -> dict[str, Any]:
    """The capture, fleet.yaml and truth.json in ``out``; ``inject=False``:
    the same fleet and traffic without the injected frames (a baseline)."""
    rng = random.Random(seed)
    cap = Capture()
    plans = fleet_plans(rng)
    chargers = [Charger(p, cap, rng, tx_base=100 * (i + 1)) for i, p in enumerate(plans)]
    for ch in chargers:
        ch.run()
    inj = Injector(cap)
    if inject:
        for i, ch in enumerate(chargers):
            p = ch.p
            if p.hostile:
                continue
            # Garbage lands mid-session, where a lost good frame would show.
            t = SESSIONS[0][0] + 120 + 37 * i
            if p.proto == "native":
                native_garbage(inj, p.cid, t)
            else:
                garbage(inj, p.cid, p.proto, t, rng)
        giants(inj, "C16-10-0", "1.6", SESSIONS[1][0] + 300)
        giants(inj, "C201-60-0", "2.0.1", SESSIONS[1][0] + 600)
        by_id = {ch.p.cid: ch for ch in chargers}
        hostile16(inj, by_id["HOST-16"])
        hostile201(inj, by_id["HOST-201"])
    out.mkdir(parents=True, exist_ok=True)
    cap.dump(out / "capture.jsonl")
    (out / "fleet.yaml").write_text(fleet_yaml(plans))
    truth = {
        "chargers": [
            {
                "id": p.cid,
                "proto": p.proto,
                "cadence": p.cadence,
                "hostile": p.hostile,
                "gap": [iso_s(at(p.gap[0])), iso_s(at(p.gap[1]))] if p.gap else None,
            }
            for p in plans
        ],
        "sessions": [s for ch in chargers for s in ch.truth],
        "injected": [
            {
                "topic": x.topic,
                "at": iso_s(at(x.recv)),
                "kind": x.kind,
                "must_reject": x.must_reject,
            }
            for x in inj.items
        ],
    }
    (out / "truth.json").write_text(json.dumps(truth, indent=1))
    return truth


if __name__ == "__main__":
    d = Path(sys.argv[1])
    t = generate(d, int(sys.argv[2]) if len(sys.argv) > 2 else 12)
    print(json.dumps({"sessions": len(t["sessions"]), "injected": len(t["injected"])}))
