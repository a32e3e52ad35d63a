"""The collector's self-monitoring against a real Prometheus.

A private Prometheus scrapes a live `chargewatch run` (metrics behind a bearer
token) with the scrape job of deploy/prometheus/prometheus.yml and evaluates
the self-alert rules of deploy/prometheus/rules/ with every duration (``for``,
range windows, the prediction horizon) divided by 60 and every threshold kept.
Every PromQL query of the collector-health dashboard must return data; then
InfluxDB is stopped while data keeps coming, and the write-error, spool and
rejection alerts must fire, then the broker's and the collector's own.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import random
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import paho.mqtt.client as mqtt
import pytest
import yaml
from paho.mqtt.enums import CallbackAPIVersion

from tests.services import InfluxDB, Mosquitto, Prometheus, free_port

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "dashboards" / "collector-health.json"
DEPLOY = ROOT / "deploy" / "prometheus"
TOKEN = "prom-scrape-token"
CHARGERS = 12
# Grafana's values for the dashboard's variables: "All" collectors, and a rate
# window of four 1 s scrapes and then some.
VARIABLES = {"$instance": ".*", "$__rate_interval": "10s"}
# The one panel query that has data only while a self-alert fires: checked then.
NEEDS_FIRING = 'sum by (alertname) (ALERTS{alertstate="firing", alertname=~"Chargewatch.*"})'
# Self-alerts this test cannot make fire in a modest time, and why.
NOT_FIRED = {
    "ChargewatchIngestLagging": "needs the pipeline 30 s behind the broker (threshold kept)",
    "ChargewatchSpoolFilling": "needs a spool heading for 80 % of 1 GiB (threshold kept)",
    "ChargewatchStorageDegraded": "needs a full disk (tests/integration/test_disk_full.py)",
}


def dashboard_queries() -> list[tuple[str, str]]:
    doc = json.loads(DASHBOARD.read_text())
    out: list[tuple[str, str]] = []

    def walk(panels: list[dict[str, Any]]) -> None:
        for p in panels:
            walk(p.get("panels", []))
            out.extend((p["title"], t["expr"]) for t in p.get("targets", []) if t.get("expr"))

    walk(doc["panels"])
    return out


def scaled_rules(text: str) -> str:
    """The deploy self-alert rules with minutes as seconds (for, windows, horizon)."""
    text = re.sub(r"(for: )(\d+)m\b", r"\g<1>\2s", text)
    text = re.sub(r"\[(\d+)m\]", r"[\1s]", text)
    return text.replace("], 3600)", "], 60)")


def prometheus_config(collector_port: int, token_file: Path) -> str:
    """deploy/prometheus/prometheus.yml for this test: its scrape jobs, 1 s intervals,
    the test's targets, a bearer token for /metrics, no Alertmanager."""
    deployed = yaml.safe_load((DEPLOY / "prometheus.yml").read_text())
    deployed["global"] = {"scrape_interval": "1s", "evaluation_interval": "1s"}
    deployed["rule_files"] = ["{rules_dir}/*.yml"]
    deployed.pop("alerting", None)
    jobs = {j["job_name"]: j for j in deployed["scrape_configs"]}
    collector = jobs["chargewatch"]
    collector["static_configs"][0]["targets"] = [f"127.0.0.1:{collector_port}"]
    collector["authorization"] = {"type": "Bearer", "credentials_file": str(token_file)}
    jobs["prometheus"]["static_configs"][0]["targets"] = ["127.0.0.1:{port}"]
    return yaml.safe_dump(deployed)


class Feed:
    """Publishes meter batches (random values: the spool cannot compress them
    away) and, when asked, messages the collector rejects."""

    def __init__(self, port: int) -> None:
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2)
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        self.garbage_per_round = 1
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.energy = [1000.0] * CHARGERS

    def _run(self) -> None:
        rnd = random.Random(7)
        while not self.stop.is_set():
            now = time.time()
            for c in range(CHARGERS):
                ts = [now - 1 + k / 100 for k in range(100)]
                power = [rnd.uniform(6000, 7400) for _ in ts]
                energy = [self.energy[c] + k * 2.0 for k in range(100)]
                self.energy[c] = energy[-1] + 2.0
                body = {"ts": ts, "energy_wh": energy, "power_w": power}
                body["temperature_c"] = [rnd.uniform(20, 40) for _ in ts]
                self.client.publish(f"ev/PM-{c}/1/meter", orjson.dumps(body), qos=0)
            for _ in range(self.garbage_per_round):
                self.client.publish("ev/PM-0/1/meter", b"{not json", qos=0)
            self.stop.wait(0.5)

    def __enter__(self) -> Feed:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(10)
        with contextlib.suppress(Exception):
            self.client.disconnect()
        self.client.loop_stop()


def _wait(check: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.HTTPError):
            if check():
                return True
        time.sleep(0.5)
    return False


@pytest.fixture
def services(prometheus_binary: None) -> Iterator[tuple[InfluxDB, Mosquitto]]:
    # Private instances: this test stops both.
    influx, broker = InfluxDB(), Mosquitto(persistence=False)
    influx.start()
    broker.start()
    try:
        yield influx, broker
    finally:
        influx.cleanup()
        broker.cleanup()


@pytest.fixture
def collector(
    tmp_path: Path, services: tuple[InfluxDB, Mosquitto]
) -> Iterator[tuple[int, subprocess.Popen[bytes]]]:
    influx, broker = services
    port = free_port()
    (tmp_path / "token").write_text(TOKEN + "\n")
    (tmp_path / "rules").mkdir()
    # A rule that fires on every connector: notifications reach the receivers.
    (tmp_path / "rules" / "r.yaml").write_text(
        "groups:\n- name: t\n  interval: 1s\n  rules:\n  - alert: Seen\n"
        "    expr: 'power_w > 0'\n    labels: {severity: info}\n"
    )
    (tmp_path / "chargewatch.yaml").write_text(
        f"data_dir: data\nrules: rules\n"
        f"mqtt: {{host: 127.0.0.1, port: {broker.port}, client_id: selfmon-{port}}}\n"
        f"influx: {{url: '{influx.url}', database: selfmon, flush_interval_s: 0.2,\n"
        f"         timeout_s: 2}}\n"
        f"http:\n  listen: 127.0.0.1:{port}\n  metrics_auth: true\n"
        f"  tokens: [{{scope: read, token_file: token}}]\n"
        # A webhook on a closed port: the failed-notification series has data
        # too, and resent every second (the default 60 s is this test's whole
        # length), ChargewatchNotificationsFailing fires.
        f"alerting: {{log: true, webhook: 'http://127.0.0.1:{free_port()}/hook',\n"
        "           resend_delay_s: 1}\n"
    )
    log = (tmp_path / "collector.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "chargewatch", "run", "--config", "chargewatch.yaml"],
        cwd=tmp_path,
        env=dict(os.environ, PYTHONPATH=str(ROOT)),
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        assert _wait(
            lambda: httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200, 30
        ), (tmp_path / "collector.log").read_text()[-3000:]
        yield port, proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            proc.wait(30)
        log.close()


def _has_data(prom: Prometheus, expr: str) -> bool:
    return bool(prom.query(expr))


class Fired:
    """Every self-alert seen firing so far. The writer's retry backoff (up to 30 s,
    not scaled) lets a scaled rate window empty between two attempts, so an alert
    may fire and resolve again before another one fires."""

    def __init__(self, prom: Prometheus) -> None:
        self.prom = prom
        self.names: set[str] = set()
        self.panel_had_data = False  # the dashboard's ALERTS query, while one fired

    def poll(self) -> set[str]:
        now = {
            str(a["labels"]["alertname"])  # type: ignore[index]
            for a in self.prom.alerts()
            if a["state"] == "firing"
        }
        if now and not self.panel_had_data:
            self.panel_had_data = bool(self.prom.query(NEEDS_FIRING))
        self.names |= now
        return self.names


def test_dashboard_queries_and_self_alerts_on_a_real_prometheus(
    tmp_path: Path,
    services: tuple[InfluxDB, Mosquitto],
    collector: tuple[int, subprocess.Popen[bytes]],
) -> None:
    influx, broker = services
    port, proc = collector
    token_file = tmp_path / "scrape-token"
    token_file.write_text(TOKEN)
    rules = {p.name: scaled_rules(p.read_text()) for p in sorted(DEPLOY.glob("rules/*.yml"))}
    prom = Prometheus(config=prometheus_config(port, token_file), rules=rules)
    prom.start()
    try:
        with Feed(broker.port) as feed:
            # 1. Healthy: every dashboard query returns a series.
            queries = [(t, _fill(q)) for t, q in dashboard_queries() if q != NEEDS_FIRING]
            assert len(queries) + 1 == 26
            assert _wait(lambda: all(_has_data(prom, q) for _, q in queries), 60), [
                (t, q) for t, q in queries if not prom.query(q)
            ]
            assert httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).status_code == 401
            up = prom.query('up{job="chargewatch"}')
            assert up[0]["value"][1] == "1", up  # type: ignore[index]  # the token is accepted
            batch_p95 = prom.query(
                queries[[t for t, _ in queries].index("Batch processing time")][1]
            )
            assert math.isfinite(float(batch_p95[0]["value"][1]))  # type: ignore[index]

            # 2. A broken rule file (reloaded within 5 s, the previous rules kept);
            # InfluxDB gone while data keeps coming, and more of it rejected.
            (tmp_path / "rules" / "r.yaml").write_text("groups:\n- name: t\n  rules: 7\n")
            influx.stop()
            feed.garbage_per_round = 200
            want = {"ChargewatchInfluxWriteErrors", "ChargewatchSpoolGrowing",
                    "ChargewatchRejectedRate", "ChargewatchConfigReloadFailed"}  # fmt: skip
            fired = Fired(prom)
            assert _wait(lambda: want <= fired.poll(), 90), (
                fired.names,
                prom.query("chargewatch_influx_spool_bytes"),
                prom.query("rate(chargewatch_rejected_total[10s])"),
            )
            assert fired.panel_had_data
        # 3. The broker, then the collector itself.
        broker.stop()
        assert _wait(lambda: "ChargewatchMqttDisconnected" in fired.poll(), 60), fired.names
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
        assert _wait(lambda: "ChargewatchCollectorDown" in fired.poll(), 60), fired.names
        names = {r["alert"] for g in yaml.safe_load(rules[next(iter(rules))])["groups"]
                 for r in g["rules"]}  # fmt: skip
        assert names - fired.names == set(NOT_FIRED), names - fired.names
    finally:
        prom.cleanup()


def _fill(expr: str) -> str:
    for name, value in VARIABLES.items():
        expr = expr.replace(name, value)
    return expr
