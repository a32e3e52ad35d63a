"""Two collectors split one fleet: one Mosquitto, one shared ledger, one InfluxDB.

What can be shown on one machine of the design in docs/scaling.md: two
``chargewatch run`` processes, each with its own config, HTTP port and data
directory, own disjoint sets of chargers (``mqtt.partition``: a list of exact
charger ids, which the broker filters, or a CRC-32 ``index/count``, which each
collector filters itself), write one SQLite ledger and one InfluxDB database.
Native and OCPP 1.6 chargers each charge twice; one collector is restarted
between the two sessions, while telemetry for its chargers keeps arriving, and
must resume its own open sessions from its own checkpoint and nobody else's.

A second test moves every charger to the other collector mid-session (a
partition change across a stop of both) and checks the sessions continue at
their new owners.

Checked: every charger is processed by exactly one collector (their fleet APIs
and sample counters), every session is in the ledger once with the register's
energy and one CDR, every meter sample is in InfluxDB, messages for the other
collector's chargers are skipped and counted, and either collector's API serves
all sessions.
"""

from __future__ import annotations

import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import orjson
import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from chargewatch.ingest.partition import stable_hash
from tests.integration.test_crash import collector, wait_for
from tests.services import InfluxDB, Mosquitto, free_port

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = 61  # per session: a register reading a minute for an hour
WH_PER_MIN = 120.0  # 7.2 kW


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat().replace("+00:00", "Z")


@dataclass
class Charger:
    """One charger's truth and the MQTT messages it sends (one connector)."""

    id: str
    ocpp: bool
    number: int  # tells OCPP transaction ids apart
    register: float = 100_000.0
    tx: str = ""
    msg_seq: int = 0
    truth: dict[str, float] = field(default_factory=dict)  # transaction id -> Wh
    started_wh: float = 0.0
    messages: int = 0
    samples: int = 0

    def _mid(self) -> str:
        self.msg_seq += 1
        return f"{self.id}-{self.msg_seq}"

    def start(self, ts: float, n: int) -> list[tuple[str, bytes]]:
        self.started_wh = self.register
        if not self.ocpp:
            self.tx = f"T{n}-{self.id}"
            doc = {"ts": ts, "event": "start", "transaction_id": self.tx, "meter_wh": self.register}
            return self._out([(f"ev/{self.id}/1/transaction", doc)])
        # OCPP 1.6: the CSMS assigns the transaction id in its CALLRESULT.
        self.tx = str(1000 * n + self.number)
        mid = self._mid()
        call = [2, mid, "StartTransaction", {"connectorId": 1, "idTag": "TAG1",
                "meterStart": int(self.register), "timestamp": _iso(ts)}]  # fmt: skip
        result = [3, mid, {"transactionId": int(self.tx), "idTagInfo": {"status": "Accepted"}}]
        return self._out([(f"ocpp/1.6/{self.id}/cp", call), (f"ocpp/1.6/{self.id}/csms", result)])

    def meter(self, ts: float, k: int) -> list[tuple[str, bytes]]:
        self.register = self.started_wh + WH_PER_MIN * k
        self.samples += 1
        if not self.ocpp:
            doc = {"ts": ts, "energy_wh": self.register, "power_w": 7200.0}
            return self._out([(f"ev/{self.id}/1/meter", doc)])
        sampled = [
            {"value": f"{self.register:.0f}", "measurand": "Energy.Active.Import.Register"},
            {"value": "7200", "measurand": "Power.Active.Import", "unit": "W"},
        ]
        frame = [2, self._mid(), "MeterValues", {"connectorId": 1, "transactionId": int(self.tx),
                 "meterValue": [{"timestamp": _iso(ts), "sampledValue": sampled}]}]  # fmt: skip
        return self._out([(f"ocpp/1.6/{self.id}/cp", frame)])

    def stop(self, ts: float) -> list[tuple[str, bytes]]:
        self.truth[self.tx] = self.register - self.started_wh
        if not self.ocpp:
            doc = {"ts": ts, "event": "stop", "transaction_id": self.tx, "meter_wh": self.register}
            return self._out([(f"ev/{self.id}/1/transaction", doc)])
        mid = self._mid()
        call = [2, mid, "StopTransaction", {"transactionId": int(self.tx), "reason": "Local",
                "meterStop": int(self.register), "timestamp": _iso(ts)}]  # fmt: skip
        result = [3, mid, {"idTagInfo": {"status": "Accepted"}}]
        return self._out([(f"ocpp/1.6/{self.id}/cp", call), (f"ocpp/1.6/{self.id}/csms", result)])

    def _out(self, msgs: list[tuple[str, Any]]) -> list[tuple[str, bytes]]:
        self.messages += len(msgs)
        return [(t, orjson.dumps(d)) for t, d in msgs]


def _chargers(tag: str, mode: str) -> tuple[list[Charger], list[Charger]]:
    """Three chargers for each collector (two native, one OCPP), and which owns which."""
    want = {"n": 2, "o": 1}
    east: list[Charger] = []
    west: list[Charger] = []
    for n in range(200):
        kind = "o" if n % 2 else "n"
        c = Charger(f"MC{kind}-{tag}-{n:03d}", ocpp=kind == "o", number=n)
        if mode == "hash":
            side = east if stable_hash(c.id) % 2 == 0 else west
        else:
            side = east if len(east) <= len(west) else west
        if sum(x.ocpp == c.ocpp for x in side) < want[kind]:
            side.append(c)
        if len(east) == len(west) == 3:
            return east, west
    raise AssertionError("could not fill both partitions")


def _metric(text: str, name: str, labels: str = "") -> float:
    m = re.search(rf"^{re.escape(name)}{re.escape(labels)} (\S+)$", text, re.M)
    return float(m.group(1)) if m else 0.0


@pytest.mark.parametrize("mode", ["chargers", "hash"])
def test_two_collectors_split_the_fleet_and_share_the_ledger(
    tmp_path: Path, mosquitto: Mosquitto, influxdb: InfluxDB, mode: str
) -> None:
    tag = uuid.uuid4().hex[:4]
    east, west = _chargers(tag, mode)
    everyone = east + west
    db_name = f"multi_{mode}_{tag}"
    (tmp_path / "fleet.yaml").write_text(
        "sites: [{id: depot, timezone: Europe/Amsterdam, tariff: flat-energy}]\n"
        "chargers:\n"
        + "".join(
            f"  - {{id: {c.id}, site: depot, connectors: 1, max_power_w: 22000}}\n"
            for c in everyone
        )
    )
    shared = tmp_path / "shared"
    shared.mkdir()
    ports = {"east": free_port(), "west": free_port()}
    configs: dict[str, Path] = {}
    for k, (name, mine) in enumerate((("east", east), ("west", west))):
        partition = (
            f"{{index: {k}, count: 2}}"
            if mode == "hash"
            else "{chargers: [" + ", ".join(c.id for c in mine) + "]}"
        )
        d = tmp_path / name
        d.mkdir()
        configs[name] = d / "chargewatch.yaml"
        configs[name].write_text(
            f"collector_id: {name}\n"
            "data_dir: data\n"
            f"ledger:\n  path: {shared / 'ledger.sqlite'}\n"
            f"mqtt:\n  host: 127.0.0.1\n  port: 1\n  client_id: multi-{name}-{tag}\n"
            f"  partition: {partition}\n"
            f"http:\n  listen: 127.0.0.1:{ports[name]}\n  token: tok\n"
            f"influx:\n  url: {influxdb.url}\n  database: {db_name}\n  flush_interval_s: 0.5\n"
            f"fleet: {tmp_path / 'fleet.yaml'}\n"
            f"tariffs: {ROOT / 'tariffs'}\n"
            "alerting:\n  log: false\n"
            "pipeline:\n  tick_interval_s: 0.2\n"
        )
    apis = {
        name: httpx.Client(
            base_url=f"http://127.0.0.1:{port}", headers={"Authorization": "Bearer tok"}
        )
        for name, port in ports.items()
    }

    def ready(name: str) -> Callable[[], bool]:
        return lambda: apis[name].get("/readyz", timeout=1).status_code == 200

    def metrics(name: str) -> str:
        return apis[name].get("/metrics", timeout=5).text

    def samples(name: str) -> float:
        return _metric(metrics(name), "chargewatch_samples_total")

    def skipped(name: str) -> float:
        return _metric(
            metrics(name), "chargewatch_messages_skipped_total", '{reason="not_in_partition"}'
        )

    def heard_from(name: str) -> set[str]:
        # The fleet API lists every inventory connector; those with a meter
        # value (last_seen_age_s, energy_wh) are the ones this collector processed.
        rows = apis[name].get("/api/v1/fleet").json()["connectors"]
        return {r["charger"] for r in rows if "last_seen_age_s" in r}

    pub = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"multi-pub-{tag}")
    pub.connect("127.0.0.1", mosquitto.port)
    pub.loop_start()

    def send(msgs: list[tuple[str, bytes]]) -> None:
        infos = [pub.publish(t, p, qos=1) for t, p in msgs]
        for info in infos:
            info.wait_for_publish(10)

    def session(
        cs: list[Charger], n: int, t0: float, ks: range, *, start: bool, stop: bool
    ) -> None:
        for c in cs:
            msgs = c.start(t0, n) if start else []
            for k in ks:
                msgs += c.meter(t0 + 60 * k, k)
            if stop:
                msgs += c.stop(t0 + 60 * (SAMPLES - 1))
            send(msgs)

    def own_samples(cs: list[Charger]) -> int:
        return sum(c.samples for c in cs)

    t0 = datetime.now(UTC).timestamp() - 4 * 3600  # meter clock: the sessions are history
    half = SAMPLES // 2
    try:
        with (
            collector(configs["east"], mosquitto.port) as east_proc,
            collector(configs["west"], mosquitto.port),
        ):
            wait_for(ready("east"), 30, "east to be ready")
            wait_for(ready("west"), 30, "west to be ready")
            # Session 1 of every charger, whole; session 2 begins.
            session(everyone, 1, t0, range(SAMPLES), start=True, stop=True)
            session(everyone, 2, t0 + 3 * 3600, range(half), start=True, stop=False)
            want_east = own_samples(east)
            wait_for(lambda: samples("east") >= want_east, 30, "east to take its samples")
            wait_for(lambda: samples("west") >= own_samples(west), 30, "west to take its samples")
            # Each collector processed its own chargers' samples, and only those.
            assert samples("east") == want_east
            assert samples("west") == own_samples(west)
            skipped_east = skipped("east")
            for name, mine in (("east", east), ("west", west)):
                assert heard_from(name) == {c.id for c in mine}, name

            # East stops (SIGTERM: a planned restart, its final checkpoint written)
            # while its chargers and west's go on charging and then stop.
            east_proc.send_signal(signal.SIGTERM)
            assert east_proc.wait(30) == 0
            session(everyone, 2, t0 + 3 * 3600, range(half, SAMPLES), start=False, stop=True)
            wait_for(lambda: samples("west") >= own_samples(west), 30, "west to go on")
            assert samples("west") == own_samples(west)

            with collector(configs["east"], mosquitto.port):
                wait_for(ready("east"), 30, "east to be ready again")
                # The broker kept east's messages in its persistent session.
                wait_for(
                    lambda: samples("east") >= own_samples(east) - want_east,
                    30,
                    "the restarted east to take what it missed",
                )
                every_tx = {tx for c in everyone for tx in c.truth}

                def all_sessions(name: str) -> Callable[[], list[dict[str, Any]] | None]:
                    def get() -> list[dict[str, Any]] | None:
                        got: list[dict[str, Any]] = (
                            apis[name].get("/api/v1/sessions").json()["sessions"]
                        )
                        return got if {r["transaction_id"] for r in got} >= every_tx else None

                    return get

                rows = wait_for(all_sessions("east"), 30, "every session via east")
                # Any collector's API reads the whole shared ledger.
                assert wait_for(all_sessions("west"), 10, "every session via west") == rows
                history: list[dict[str, Any]] = wait_for(
                    lambda: (
                        (x := apis["west"].get("/api/v1/cdrs", params={"history": "1"}).json())
                        and len(x["cdrs"]) >= len(every_tx)
                        and x["cdrs"]
                    ),
                    30,
                    "a CDR for every session",
                )
                assert samples("east") == own_samples(east) - want_east
                skipped_east += skipped("east")
                skipped_west = skipped("west")
                for name, mine in (("east", east), ("west", west)):
                    assert heard_from(name) == {c.id for c in mine}, name
    finally:
        pub.disconnect()
        pub.loop_stop()

    truth = {tx: wh for c in everyone for tx, wh in c.truth.items()}
    # Every session once, with the register's energy; one CDR each, no credits.
    assert sorted(r["transaction_id"] for r in rows) == sorted(truth)
    for r in rows:
        assert r["energy_wh"] == pytest.approx(truth[r["transaction_id"]], abs=0.01), r
        assert r["energy_source"] in ("register", "transaction_meter"), r
    assert sorted(h["session_id"] for h in history) == sorted(r["session_id"] for r in rows)
    assert not any(h.get("credit") for h in history)

    # Messages of the other collector's chargers: with per-charger subscriptions
    # the broker never sends them; with hash partitions every one arrives and
    # is skipped (acknowledged, counted, not processed).
    if mode == "hash":
        assert skipped_east == sum(c.messages for c in west)
        assert skipped_west == sum(c.messages for c in east)
    else:
        assert skipped_east == skipped_west == 0

    # InfluxDB: every sample of every charger, from whichever collector owns it.
    stored = {
        s["tags"]["charger"]: s["values"][0][1]  # type: ignore[index]
        for s in influxdb.query("SELECT count(energy_wh) FROM meter GROUP BY charger", db_name)
    }
    assert stored == {c.id: c.samples for c in everyone}

    # The ledger: each collector's resume state names its own chargers only,
    # nothing journaled is left over, and every session is stored once.
    db = sqlite3.connect(f"file:{shared / 'ledger.sqlite'}?mode=ro", uri=True)
    states = {
        name: json.loads(state)
        for name, state in db.execute("SELECT name, state FROM engine_state")
    }
    # Sessions, and what the liveness detectors learned (heartbeat and meter
    # intervals, collector/liveness_store.py), each per collector.
    assert set(states) == {"sessions@east", "sessions@west", "liveness@east", "liveness@west"}
    for name, mine in (("east", east), ("west", west)):
        held = {s["charger"] for s in states[f"sessions@{name}"]["sessions"]}
        assert held <= {c.id for c in mine}, (name, held)
        learned = set(states[f"liveness@{name}"]["chargers"])
        assert learned and learned <= {c.id for c in mine}, (name, learned)
    assert db.execute("SELECT COUNT(*), COUNT(DISTINCT session_id) FROM sessions").fetchone() == (
        len(truth),
        len(truth),
    )
    assert db.execute("SELECT COUNT(*) FROM cdr_history").fetchone()[0] == len(truth)
    db.close()
    # Nothing was rejected: each charger's messages arrived whole and in order.
    for name in ("east", "west"):
        rejected = tmp_path / name / "data" / "rejected.jsonl"
        assert not rejected.exists() or rejected.read_text() == "", rejected.read_text()[:2000]


def test_chargers_move_between_collectors_with_their_open_sessions(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    """A partition change while every charger is mid-session: both collectors stop,
    swap their hash partitions (every charger changes owner) and start again, the
    new owner of the old one's chargers first. Telemetry sent meanwhile waits in
    each collector's persistent MQTT session (hash partitions subscribe to every
    charger). Every session is then billed once, whole, by its new owner, and a
    fault reported once before the move is known to the new owner."""
    tag = uuid.uuid4().hex[:4]
    east: list[Charger] = []
    west: list[Charger] = []
    for n in range(100):
        c = Charger(f"MV-{tag}-{n:03d}", ocpp=False, number=n)
        side = east if stable_hash(c.id) % 2 == 0 else west
        if len(side) < 2:
            side.append(c)
        if len(east) == len(west) == 2:
            break
    everyone = east + west
    (tmp_path / "fleet.yaml").write_text(
        "sites: [{id: depot, timezone: Europe/Amsterdam, tariff: flat-energy}]\n"
        "chargers:\n"
        + "".join(
            f"  - {{id: {c.id}, site: depot, connectors: 1, max_power_w: 22000}}\n"
            for c in everyone
        )
    )
    ports = {"east": free_port(), "west": free_port()}

    def configure(name: str, index: int) -> Path:
        d = tmp_path / name
        d.mkdir(exist_ok=True)
        f = d / "chargewatch.yaml"
        f.write_text(
            f"collector_id: {name}\ndata_dir: data\n"
            f"ledger:\n  path: {tmp_path / 'ledger.sqlite'}\n"
            f"mqtt:\n  host: 127.0.0.1\n  port: 1\n  client_id: move-{name}-{tag}\n"
            f"  partition: {{index: {index}, count: 2}}\n"
            f"http:\n  listen: 127.0.0.1:{ports[name]}\n  token: tok\n"
            f"fleet: {tmp_path / 'fleet.yaml'}\ntariffs: {ROOT / 'tariffs'}\n"
            "alerting:\n  log: false\npipeline:\n  tick_interval_s: 0.2\n"
        )
        return f

    apis = {
        name: httpx.Client(
            base_url=f"http://127.0.0.1:{port}", headers={"Authorization": "Bearer tok"}
        )
        for name, port in ports.items()
    }

    def ready(name: str) -> Callable[[], bool]:
        return lambda: apis[name].get("/readyz", timeout=1).status_code == 200

    def samples(name: str) -> float:
        return _metric(apis[name].get("/metrics", timeout=5).text, "chargewatch_samples_total")

    def status(name: str, charger: str) -> tuple[str, str] | str:
        rows = apis[name].get("/api/v1/fleet").json()["connectors"]
        got = [r for r in rows if r["charger"] == charger and r["connector"] == 2]
        if not got or not got[0].get("status"):
            return ""
        return str(got[0]["status"]) if got[0]["error_code"] == "GroundFailure" else "?"

    pub = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"move-pub-{tag}")
    pub.connect("127.0.0.1", mosquitto.port)
    pub.loop_start()

    def send(msgs: list[tuple[str, bytes]]) -> None:
        for info in [pub.publish(t, p, qos=1) for t, p in msgs]:
            info.wait_for_publish(10)

    t0 = datetime.now(UTC).timestamp() - 2 * 3600
    half = SAMPLES // 2
    try:
        with (
            collector(configure("east", 0), mosquitto.port) as east_proc,
            collector(configure("west", 1), mosquitto.port) as west_proc,
        ):
            wait_for(ready("east"), 30, "east to be ready")
            wait_for(ready("west"), 30, "west to be ready")
            for c in everyone:
                msgs = c.start(t0, 1)
                for k in range(half):
                    msgs += c.meter(t0 + 60 * k, k)
                send(msgs)
            for name, mine in (("east", east), ("west", west)):
                want = sum(c.samples for c in mine)
                wait_for(lambda n=name, w=want: samples(n) >= w, 30, f"{name} to take its half")
            # One charger reports a fault, once (as chargers do): its new owner must know.
            faulted = east[0].id
            send([(f"ev/{faulted}/2/status", orjson.dumps(
                {"ts": t0 + 60, "status": "Faulted", "error_code": "GroundFailure"}))])  # fmt: skip
            wait_for(lambda: status("east", faulted) == "Faulted", 30, "east to see the fault")
            for proc in (east_proc, west_proc):
                proc.send_signal(signal.SIGTERM)
            assert east_proc.wait(30) == 0 and west_proc.wait(30) == 0
        # Both down: the second half of every session, and its stop.
        for c in everyone:
            msgs = [m for k in range(half, SAMPLES) for m in c.meter(t0 + 60 * k, k)]
            send(msgs + c.stop(t0 + 60 * (SAMPLES - 1)))
        # Swap the partitions: every charger changes owner.
        with collector(configure("west", 0), mosquitto.port):
            wait_for(ready("west"), 30, "west (now owning east's chargers) to be ready")
            with collector(configure("east", 1), mosquitto.port):
                wait_for(ready("east"), 30, "east (now owning west's chargers) to be ready")
                every_tx = {tx for c in everyone for tx in c.truth}
                rows: list[dict[str, Any]] = wait_for(
                    lambda: (
                        (got := apis["east"].get("/api/v1/sessions").json()["sessions"])
                        and {r["transaction_id"] for r in got} >= every_tx
                        and got
                    ),
                    30,
                    "every session, billed by the new owners",
                )
                history: list[dict[str, Any]] = wait_for(
                    lambda: (
                        (x := apis["west"].get("/api/v1/cdrs", params={"history": "1"}).json())
                        and len(x["cdrs"]) >= len(every_tx)
                        and x["cdrs"]
                    ),
                    30,
                    "a CDR for every session",
                )
                # The fault moved with its charger: the new owner knows it, the old forgot it.
                # (east released it when it started, after west: west takes it on a tick)
                wait_for(lambda: status("west", faulted) == "Faulted", 10, "the fault at west")
                assert status("east", faulted) == ""
                # The new owners processed exactly the second halves of their new chargers.
                assert samples("west") == (SAMPLES - half) * len(east)
                assert samples("east") == (SAMPLES - half) * len(west)
    finally:
        pub.disconnect()
        pub.loop_stop()

    truth = {tx: wh for c in everyone for tx, wh in c.truth.items()}
    assert sorted(r["transaction_id"] for r in rows) == sorted(truth)
    for r in rows:  # the whole session, both halves, with no gap at the handover
        assert r["energy_wh"] == pytest.approx(truth[r["transaction_id"]], abs=0.01), r
        assert r["energy_source"] in ("register", "transaction_meter"), r
        assert r["stop_reason"] == "transaction", r
    assert sorted(h["session_id"] for h in history) == sorted(r["session_id"] for r in rows)
    assert not any(h.get("credit") for h in history)
    db = sqlite3.connect(f"file:{tmp_path / 'ledger.sqlite'}?mode=ro", uri=True)
    assert db.execute("SELECT COUNT(*) FROM handover").fetchone() == (0,)
    states = dict(db.execute("SELECT name, state FROM engine_state").fetchall())
    db.close()
    for name, mine in (("east", west), ("west", east)):  # swapped
        held = {s["charger"] for s in json.loads(states[f"sessions@{name}"])["sessions"]}
        assert held <= {c.id for c in mine}, (name, held)
    for name in ("east", "west"):
        rejected = tmp_path / name / "data" / "rejected.jsonl"
        assert not rejected.exists() or rejected.read_text() == "", rejected.read_text()[:2000]


def test_a_second_process_with_the_same_collector_id_refuses_to_start(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    # It would overwrite the first one's checkpoint and journal in the shared ledger.
    port = free_port()
    config = tmp_path / "chargewatch.yaml"
    config.write_text(
        f"collector_id: twin\ndata_dir: data\nledger:\n  path: {tmp_path / 'ledger.sqlite'}\n"
        f"mqtt:\n  host: 127.0.0.1\n  port: 1\n  client_id: twin-{uuid.uuid4().hex[:4]}\n"
        f"http:\n  listen: 127.0.0.1:{port}\nalerting:\n  log: false\n"
    )
    second = tmp_path / "second.yaml"
    second.write_text(
        config.read_text()
        .replace("data_dir: data", "data_dir: data2")
        .replace(f"listen: 127.0.0.1:{port}", f"listen: 127.0.0.1:{free_port()}")
    )
    with collector(config, mosquitto.port):
        wait_for(
            lambda: httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200,
            30,
            "the first collector to be ready",
        )
        env = dict(os.environ, PYTHONPATH=str(ROOT), CHARGEWATCH__MQTT__PORT=str(mosquitto.port))
        run = subprocess.run(
            [sys.executable, "-m", "chargewatch", "run", "--config", str(second)],
            env=env,
            capture_output=True,
            text=True,
            timeout=90,
            check=False,
        )
    assert run.returncode == 2, run.stderr[-2000:]
    assert "collector_id: collector_id 'twin' is already running on ledger" in run.stderr
