"""The collector's HTTP endpoints: metrics, health, readiness and the bearer-token API."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import httpx
import orjson
import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from chargewatch.collector.service import Collector
from chargewatch.config.settings import Config, HttpConfig
from chargewatch.ingest.mqtt import MqttConfig
from tests.services import Mosquitto

pytestmark = pytest.mark.integration


def test_endpoints(tmp_path: Path, mosquitto: Mosquitto) -> None:
    cfg = Config(
        data_dir=tmp_path,
        mqtt=MqttConfig(port=mosquitto.port, client_id=f"cw-{uuid.uuid4().hex[:6]}"),
        http=HttpConfig(listen="127.0.0.1:0", token="t0p-secret"),
    )
    c = Collector(cfg)
    c.start()
    assert c.http is not None
    base = f"http://127.0.0.1:{c.http.port}"
    pub = mqtt.Client(CallbackAPIVersion.VERSION2)
    pub.connect("127.0.0.1", mosquitto.port)
    pub.loop_start()
    try:
        assert c.ingest.wait_connected(10)
        time.sleep(0.3)
        pub.publish(
            "ev/HTTP-1/1/meter", orjson.dumps({"ts": time.time(), "power_w": 3.5}), qos=1
        ).wait_for_publish(5)
        pub.publish("ev/HTTP-1/1/meter", b"garbage", qos=1).wait_for_publish(5)
        deadline = time.monotonic() + 10
        while c.pipeline.stats.messages < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.3)

        assert httpx.get(f"{base}/healthz").json()["ok"] is True
        ready = httpx.get(f"{base}/readyz")
        assert ready.status_code == 200 and ready.json()["mqtt_connected"] is True
        metrics = httpx.get(f"{base}/metrics").text
        assert 'chargewatch_rejected_total{reason="malformed_json"}' in metrics
        assert "chargewatch_samples_total" in metrics
        # no charger ids as labels: cardinality stays flat with fleet size
        assert "HTTP-1" not in metrics

        assert httpx.get(f"{base}/api/v1/fleet").status_code == 401
        wrong = httpx.get(f"{base}/api/v1/fleet", headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401
        ok = httpx.get(f"{base}/api/v1/fleet", headers={"Authorization": "Bearer t0p-secret"})
        assert ok.status_code == 200
        rows = ok.json()["connectors"]
        assert rows[0]["charger"] == "HTTP-1" and rows[0]["power_w"] == 3.5
        alerts = httpx.get(
            f"{base}/api/v1/alerts", headers={"Authorization": "Bearer t0p-secret"}
        ).json()
        assert alerts == {"alerts": []}
        assert (
            httpx.get(
                f"{base}/api/v1/nothing", headers={"Authorization": "Bearer t0p-secret"}
            ).status_code
            == 404
        )
    finally:
        pub.disconnect()
        pub.loop_stop()
        c.stop()
