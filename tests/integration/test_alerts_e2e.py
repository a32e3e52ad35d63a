"""A fault published over MQTT reaches the real Alertmanager, and resolves there when it clears."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import orjson
import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from chargewatch.collector.service import Collector
from chargewatch.config.settings import AlertingConfig, Config, HttpConfig
from chargewatch.ingest.mqtt import MqttConfig
from tests.services import Alertmanager, Mosquitto

pytestmark = pytest.mark.integration

RULES = """
groups:
  - name: e2e
    interval: 1s
    rules:
      - alert: GroundFault
        expr: error_code == "GroundFailure"
        for: 0s
        labels: {severity: critical, error_code: GroundFailure}
        annotations:
          summary: "{{ $labels.charger }}/{{ $labels.connector }} ground fault"
"""


def wait_for(pred: object, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():  # type: ignore[operator]
            return True
        time.sleep(0.2)
    return False


def test_fault_reaches_alertmanager_and_resolves(
    tmp_path: Path, mosquitto: Mosquitto, alertmanager: Alertmanager
) -> None:
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "e2e.yaml").write_text(RULES)
    charger = f"E2E-{uuid.uuid4().hex[:6]}"
    cfg = Config(
        data_dir=tmp_path / "data",
        mqtt=MqttConfig(port=mosquitto.port, client_id=f"cw-{uuid.uuid4().hex[:8]}"),
        http=HttpConfig(listen=""),
        rules=rules,
        alerting=AlertingConfig(alertmanager=(alertmanager.url,), resend_delay_s=2.0),
        tick_interval_s=0.2,
    )
    collector = Collector(cfg)
    collector.start()
    pub = mqtt.Client(CallbackAPIVersion.VERSION2)
    pub.connect("127.0.0.1", mosquitto.port)
    pub.loop_start()
    try:
        assert collector.ingest.wait_connected(10)
        time.sleep(0.3)
        topic = f"ev/{charger}/2/status"
        pub.publish(
            topic,
            orjson.dumps({"ts": time.time(), "status": "Faulted", "error_code": "GroundFailure"}),
            qos=1,
        )

        def active() -> list[dict[str, object]]:
            return [
                a
                for a in alertmanager.alerts(active="true", silenced="false", inhibited="false")
                if a["labels"].get("charger") == charger
            ]  # type: ignore[attr-defined]

        assert wait_for(lambda: len(active()) == 1, 20), "alert never reached Alertmanager"
        labels = active()[0]["labels"]
        assert labels == {
            "alertname": "GroundFault",
            "charger": charger,
            "connector": "2",
            "site": "unknown",
            "severity": "critical",
            "error_code": "GroundFailure",
        }
        pub.publish(
            topic,
            orjson.dumps({"ts": time.time(), "status": "Available", "error_code": "NoError"}),
            qos=1,
        )
        assert wait_for(lambda: not active(), 20), "alert never resolved in Alertmanager"
    finally:
        pub.disconnect()
        pub.loop_stop()
        collector.stop()
