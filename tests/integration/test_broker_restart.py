"""Mosquitto restarted mid-stream (QoS 1): nothing is lost, the collector reconnects."""

from __future__ import annotations

import threading
import time
import uuid
from pathlib import Path

import numpy as np
import orjson
import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from chargewatch.collector.service import Collector
from chargewatch.config.settings import Config, HttpConfig
from chargewatch.ingest.mqtt import MqttConfig
from chargewatch.model.batch import MeterBatch
from tests.services import Mosquitto

pytestmark = [pytest.mark.integration, pytest.mark.slow]


class Recorder:
    def __init__(self) -> None:
        self.ts: list[float] = []

    def on_batch(self, batch: MeterBatch, events: object, now: float) -> None:
        self.ts.extend(batch.ts.tolist())

    def tick(self, now: float) -> None:
        pass


def test_broker_restart_loses_no_qos1_message(tmp_path: Path) -> None:
    broker = Mosquitto(tmp_path / "broker")
    broker.start()
    cfg = Config(
        data_dir=tmp_path / "data",
        mqtt=MqttConfig(
            port=broker.port,
            client_id=f"cw-{uuid.uuid4().hex[:6]}",
            reconnect_min_s=0.5,
            reconnect_max_s=2.0,
        ),
        http=HttpConfig(listen=""),
    )
    collector = Collector(cfg)
    rec = Recorder()
    collector.pipeline.stages.append(rec)
    collector.start()
    # A persistent-session publisher: its unacknowledged QoS 1 messages are
    # resent after it reconnects, as a real charger's client would.
    pub = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="pub-restart", clean_session=False)
    pub.reconnect_delay_set(1, 2)
    pub.max_queued_messages_set(0)
    pub.connect("127.0.0.1", broker.port)
    pub.loop_start()
    n = 3000
    t0 = 1_795_000_000.0
    try:
        assert collector.ingest.wait_connected(10)
        time.sleep(0.3)
        restarted = threading.Event()

        def restart_midway() -> None:
            time.sleep(2.0)
            broker.restart()
            restarted.set()

        threading.Thread(target=restart_midway).start()
        for k in range(n):  # ~5 s at 600 msg/s
            pub.publish(
                "ev/RST-1/1/meter", orjson.dumps({"ts": t0 + k, "power_w": float(k)}), qos=1
            )
            time.sleep(1 / 600)
        assert restarted.wait(30)
        deadline = time.monotonic() + 60
        while len(set(rec.ts)) < n and time.monotonic() < deadline:
            time.sleep(0.2)
        got = np.unique(np.array(rec.ts))
        missing = n - got.shape[0]
        assert missing == 0, f"{missing} of {n} QoS 1 messages lost across the broker restart"
        assert collector.ingest.connects >= 2, "the collector did not reconnect by itself"
    finally:
        pub.disconnect()
        pub.loop_stop()
        collector.stop()
        broker.cleanup()
