"""`chargewatch run --config FILE` as a process: env overrides, ingest, clean SIGTERM."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import orjson
import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from tests.services import InfluxDB, Mosquitto, free_port

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


def test_run_service_process(tmp_path: Path, mosquitto: Mosquitto, influxdb: InfluxDB) -> None:
    db = f"run_{uuid.uuid4().hex[:6]}"
    http_port = free_port()
    (tmp_path / "token").write_text("api-token\n")
    config = tmp_path / "chargewatch.yaml"
    config.write_text(
        f"data_dir: data\n"
        f"mqtt:\n  host: 127.0.0.1\n  port: 1\n  client_id: run-{db}\n"
        f"influx:\n  url: {influxdb.url}\n  database: {db}\n  flush_interval_s: 0.2\n"
        f"http:\n  listen: 127.0.0.1:{http_port}\n  token_file: token\n"
    )
    env = dict(os.environ, CHARGEWATCH__MQTT__PORT=str(mosquitto.port), PYTHONPATH=str(ROOT))
    proc = subprocess.Popen(
        [sys.executable, "-m", "chargewatch", "run", "--config", str(config)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        base = f"http://127.0.0.1:{http_port}"
        deadline = time.monotonic() + 20
        ready = False
        while time.monotonic() < deadline and not ready:
            with contextlib.suppress(httpx.HTTPError):
                ready = httpx.get(f"{base}/readyz", timeout=1).status_code == 200
            time.sleep(0.2)
        assert ready, "collector never became ready"
        pub = mqtt.Client(CallbackAPIVersion.VERSION2)
        pub.connect("127.0.0.1", mosquitto.port)
        pub.loop_start()
        now = time.time()
        for k in range(10):
            pub.publish(
                "ev/RUN-1/1/meter", orjson.dumps({"ts": now + k, "energy_wh": 1.0 + k}), qos=1
            ).wait_for_publish(5)
        pub.disconnect()
        pub.loop_stop()
        deadline = time.monotonic() + 20
        count = 0
        while time.monotonic() < deadline and count < 10:
            series = influxdb.query("SELECT count(energy_wh) FROM meter", db)
            count = int(series[0]["values"][0][1]) if series else 0  # type: ignore[index]
            time.sleep(0.3)
        assert count == 10
    finally:
        proc.send_signal(signal.SIGTERM)
        out = proc.communicate(timeout=30)[0].decode()
    assert proc.returncode == 0, out
    assert "api-token" not in out  # secrets never reach the log
