"""SIGKILL the collector mid-stream, restart it, and check that nothing is lost or doubled.

The collector runs as `chargewatch run --config` (the production entry point)
against real Mosquitto and Alertmanager. Telemetry keeps flowing while it is
dead: the broker queues it in the collector's persistent MQTT 5 session, and
the restarted process must pick up where the durable state (ledger, alert
state file) left it. Sessions opened moments before the kill, a fault that
fired moments before the kill and a fault that cleared while the collector was
down are the cases a periodic checkpoint would get wrong.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from chargewatch.storage.ledger import Ledger
from tests.services import Alertmanager, InfluxDB, Mosquitto, free_port

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]

RULES = """
groups:
  - name: crash
    interval: 1s
    rules:
      - alert: CrashGroundFault
        expr: error_code == "GroundFailure"
        for: 1s
        labels: {severity: critical, error_code: GroundFailure}
        annotations: {summary: "ground fault"}
      - alert: CrashHighTemperature
        expr: error_code == "HighTemperature"
        for: 1s
        labels: {severity: critical, error_code: HighTemperature}
        annotations: {summary: "high temperature"}
      - alert: CrashInternalError
        expr: error_code == "InternalError"
        for: 3s
        labels: {severity: warning, error_code: InternalError}
        annotations: {summary: "internal error"}
"""

POWER_W = 11_000.0


def wait_for(pred: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.HTTPError):
            got = pred()
            if got:
                return got
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


class Fleet:
    """The truth: what the chargers did, published over MQTT as it happens."""

    def __init__(self, port: int, tag: str) -> None:
        self.tag = tag
        self.pub = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"fleet-{tag}")
        self.pub.connect("127.0.0.1", port)
        self.pub.loop_start()
        self.register: dict[str, float] = {}  # charger -> register (Wh)
        self.open: dict[str, str] = {}  # charger -> open transaction id
        self.truth: dict[str, float] = {}  # transaction id -> billed energy (register delta)
        self.samples: dict[tuple[str, int], float] = {}  # (charger, ts ms) -> publish time
        self._started_at: dict[str, float] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._meter_loop, daemon=True)

    def charger(self, n: int) -> str:
        return f"CR{n}-{self.tag}"

    def send(self, topic: str, doc: dict[str, Any]) -> None:
        self.pub.publish(topic, orjson.dumps(doc), qos=1).wait_for_publish(5)

    def start_session(self, charger: str, tx: str) -> None:
        with self._lock:
            wh = self.register.setdefault(charger, 50_000.0)
            self.open[charger] = tx
            self._started_at[tx] = wh
            self.send(
                f"ev/{charger}/1/transaction",
                {"ts": time.time(), "event": "start", "transaction_id": tx, "meter_wh": wh},
            )

    def stop_session(self, charger: str) -> None:
        with self._lock:
            tx = self.open.pop(charger)
            wh = self.register[charger]
            self.truth[tx] = wh - self._started_at[tx]
            self.send(
                f"ev/{charger}/1/transaction",
                {"ts": time.time(), "event": "stop", "transaction_id": tx, "meter_wh": wh},
            )

    def status(self, charger: str, status: str, error_code: str = "NoError") -> None:
        self.send(
            f"ev/{charger}/1/status",
            {"ts": time.time(), "status": status, "error_code": error_code},
        )

    def _meter_loop(self) -> None:
        # 5 samples/s per charging connector, the register advancing with the power.
        last = time.time()
        while not self._stop.wait(0.2):
            with self._lock:
                # Read under the lock: a stop and the next start may take the lock
                # first, and a sample stamped before that stop with a register
                # after it would be billed to the stopped session (issue 23).
                now = time.time()
                for charger in self.open:
                    self.register[charger] += POWER_W * (now - last) / 3600.0
                    self.samples[(charger, round(now * 1000))] = time.time()
                    self.send(
                        f"ev/{charger}/1/meter",
                        {"ts": now, "energy_wh": self.register[charger], "power_w": POWER_W},
                    )
            last = now

    def __enter__(self) -> Fleet:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)
        self.pub.disconnect()
        self.pub.loop_stop()


@contextlib.contextmanager
def collector(config: Path, mqtt_port: int) -> Iterator[subprocess.Popen[bytes]]:
    env = dict(os.environ, PYTHONPATH=str(ROOT), CHARGEWATCH__MQTT__PORT=str(mqtt_port))
    log = (config.parent / "collector.log").open("ab")
    proc = subprocess.Popen(
        [sys.executable, "-m", "chargewatch", "run", "--config", str(config)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        log.close()


def am_alert(am: Alertmanager, alertname: str, charger: str) -> dict[str, Any] | None:
    for a in am.alerts():
        labels: dict[str, str] = a["labels"]  # type: ignore[assignment]
        if labels.get("alertname") == alertname and labels.get("charger") == charger:
            return a
    return None


def is_active(a: dict[str, Any] | None) -> bool:
    return a is not None and a["status"]["state"] == "active"


def test_sigkill_mid_stream_loses_nothing(
    tmp_path: Path,
    mosquitto: Mosquitto,
    alertmanager: Alertmanager,
    influxdb: InfluxDB,
    ledger_url: str,
) -> None:
    # The ledger: the default SQLite file in the data directory, or PostgreSQL.
    on_pg = ledger_url.startswith("postgresql://")
    ledger = ledger_url if on_pg else str(tmp_path / "data" / "ledger.sqlite")
    tag = uuid.uuid4().hex[:6]
    db_name = f"crash_{tag}"
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "crash.yaml").write_text(RULES)
    (tmp_path / "fleet.yaml").write_text(
        "sites: [{id: depot, timezone: Europe/Amsterdam, tariff: flat-energy}]\n"
        "chargers:\n"
        + "".join(
            f"  - {{id: CR{n}-{tag}, site: depot, connectors: 1, max_power_w: 22000}}\n"
            for n in range(1, 7)
        )
    )
    http_port = free_port()
    config = tmp_path / "chargewatch.yaml"
    config.write_text(
        "data_dir: data\n"
        f"mqtt:\n  host: 127.0.0.1\n  port: 1\n  client_id: crash-{tag}\n"
        f"http:\n  listen: 127.0.0.1:{http_port}\n  token: tok\n"
        f"influx:\n  url: {influxdb.url}\n  database: {db_name}\n  flush_interval_s: 1.0\n"
        "fleet: fleet.yaml\n"
        f"tariffs: {ROOT / 'tariffs'}\n"
        "rules: rules\n"
        f"alerting:\n  alertmanager: [{alertmanager.url}]\n  resend_delay_s: 1\n  log: false\n"
        "pipeline:\n  tick_interval_s: 0.2\n" + (f"ledger:\n  url: {ledger}\n" if on_pg else "")
    )
    api = httpx.Client(
        base_url=f"http://127.0.0.1:{http_port}", headers={"Authorization": "Bearer tok"}
    )

    def ready() -> bool:
        return api.get("/readyz", timeout=1).status_code == 200

    with Fleet(mosquitto.port, tag) as fleet:
        c = fleet.charger
        with collector(config, mosquitto.port) as first:
            wait_for(ready, 20, "the first collector to be ready")
            fleet.start_session(c(1), f"T1-{tag}")
            fleet.start_session(c(2), f"T2-{tag}")
            fleet.status(c(3), "Faulted", "GroundFailure")
            fleet.status(c(4), "Faulted", "HighTemperature")
            ground = wait_for(
                lambda: is_active(a := am_alert(alertmanager, "CrashGroundFault", c(3))) and a,
                20,
                "the ground fault to fire",
            )
            wait_for(
                lambda: is_active(am_alert(alertmanager, "CrashHighTemperature", c(4))),
                20,
                "the high temperature to fire",
            )
            # A session that is opened and one that is closed moments before the
            # kill: both are newer than any periodic checkpoint.
            fleet.stop_session(c(2))
            time.sleep(1.0)
            fleet.start_session(c(5), f"T5-{tag}")
            time.sleep(1.0)
            # A fault reported once and still pending (`for: 3s`) at the kill: its
            # status message is acknowledged, so only the collector's own state
            # can remember it.
            fleet.status(c(6), "Faulted", "InternalError")
            wait_for(
                lambda: any(
                    a["labels"].get("charger") == c(6)
                    for a in api.get("/api/v1/alerts", params={"state": "pending"}).json()["alerts"]
                ),
                10,
                "the internal error to be pending",
            )
            first.send_signal(signal.SIGKILL)
            killed_at = time.time()
            first.wait(10)
            # While it is down: metering goes on, one session ends, one fault clears.
            fleet.stop_session(c(1))
            fleet.status(c(4), "Available")
            time.sleep(1.0)
        with collector(config, mosquitto.port) as second:
            wait_for(ready, 20, "the restarted collector to be ready")
            time.sleep(1.0)
            fleet.start_session(c(2), f"T2b-{tag}")
            time.sleep(1.0)
            fleet.stop_session(c(5))
            fleet.stop_session(c(2))
            want = set(fleet.truth)

            def sessions() -> list[dict[str, Any]] | None:
                rows: list[dict[str, Any]] = api.get("/api/v1/sessions").json()["sessions"]
                return rows if {r["transaction_id"] for r in rows} >= want else None

            rows = wait_for(sessions, 20, "every session in the API")
            cdrs: list[dict[str, Any]] = wait_for(
                lambda: (x := api.get("/api/v1/cdrs").json()["cdrs"]) and len(x) >= len(want) and x,
                20,
                "a CDR for every session",
            )
            history: list[dict[str, Any]] = api.get("/api/v1/cdrs", params={"history": "1"}).json()[
                "cdrs"
            ]
            wait_for(
                lambda: is_active(am_alert(alertmanager, "CrashInternalError", c(6))),
                20,
                "the fault pending at the kill to fire",
            )
            resolved = wait_for(
                lambda: not is_active(am_alert(alertmanager, "CrashHighTemperature", c(4))),
                20,
                "the cleared fault to resolve",
            )
            assert resolved
            # Past a few resend intervals (1 s) and rule evaluations: a falsely
            # resolved or re-paged alert would show by now.
            time.sleep(3.0)
            ground_after = am_alert(alertmanager, "CrashGroundFault", c(3))
            assert second.poll() is None
        assert second.returncode == 0

    # InfluxDB: a meter sample is lost only if the first collector had acknowledged it
    # and still held it in the writer's in-memory buffer (flush_interval_s) at the
    # kill. Everything published after the kill - queued by the broker while the
    # collector was down, or sent to the new process - arrives.
    stored: set[tuple[str, int]] = set()
    for series in influxdb.query("SELECT energy_wh FROM meter GROUP BY charger", db_name):
        charger = series["tags"]["charger"]  # type: ignore[index]
        stored |= {(charger, int(t)) for t, _ in series["values"]}  # type: ignore[attr-defined]
    missing = sorted(fleet.samples[k] for k in fleet.samples.keys() - stored)
    assert all(at < killed_at for at in missing), "a sample published after the kill was lost"
    window = f"{killed_at - missing[0]:.2f} s" if missing else "none"
    print(f"\nloss window: {len(missing)} of {len(fleet.samples)} meter samples, {window}")

    # Every session once, energy equal to the register delta.
    assert sorted(r["transaction_id"] for r in rows) == sorted(want)
    for r in rows:
        assert r["energy_wh"] == pytest.approx(fleet.truth[r["transaction_id"]], abs=0.01), r
        assert r["energy_source"] in ("register", "transaction_meter"), r
        assert "revised" not in r["quality"], r
    # Exactly one CDR per session, and nothing credited: no revision happened.
    assert sorted(x["session_id"] for x in cdrs) == sorted(r["session_id"] for r in rows)
    for x in cdrs:
        tx = next(r["transaction_id"] for r in rows if r["session_id"] == x["session_id"])
        assert float(x["total_energy"]) == pytest.approx(fleet.truth[tx] / 1000, abs=0.001)
    assert len(history) == len(rows)
    assert not any(x.get("credit") for x in history)

    # The ground fault kept firing across the crash, with its original startsAt.
    # (Alertmanager keeps the earliest startsAt of overlapping alerts, so this
    # alone would miss a re-page; the ledger's transitions below would not.)
    assert is_active(ground_after), ground_after
    assert ground_after is not None and ground_after["startsAt"] == ground["startsAt"]

    # The ledger's alert history: each alert fired once; only the cleared one resolved.
    led = Ledger(ledger, read_only=True)
    db = led.db
    transitions = [
        (name, state, json.loads(labels)["charger"])
        for name, state, labels in db.execute(
            "SELECT alertname, state, labels FROM alert_transitions ORDER BY at"
        )
    ]
    assert sorted(transitions) == sorted(
        [
            ("CrashGroundFault", "firing", c(3)),
            ("CrashHighTemperature", "firing", c(4)),
            ("CrashHighTemperature", "resolved", c(4)),
            ("CrashInternalError", "firing", c(6)),
        ]
    ), transitions
    counts = db.execute("SELECT COUNT(*), COUNT(DISTINCT session_id) FROM sessions").fetchone()
    assert tuple(counts) == (len(want), len(want))
    assert db.execute("SELECT COUNT(*) FROM cdr_history").fetchone()[0] == len(want)
    led.close()
