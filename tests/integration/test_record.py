"""`chargewatch record` from a real Mosquitto writes a capture that replays to the same samples."""

from __future__ import annotations

import threading
import time
import uuid
from pathlib import Path

import orjson
import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from chargewatch.collector.replay import replay
from chargewatch.ingest.capture import read_capture
from chargewatch.ingest.mqtt import MqttConfig
from chargewatch.ingest.record import record
from tests.services import Mosquitto

pytestmark = pytest.mark.integration


def test_record_then_replay(tmp_path: Path, mosquitto: Mosquitto) -> None:
    capture = tmp_path / "capture.jsonl"
    stop = threading.Event()
    cfg = MqttConfig(port=mosquitto.port, client_id=f"rec-{uuid.uuid4().hex[:6]}")
    n_msgs = 60
    result: list[int] = []
    t = threading.Thread(
        target=lambda: result.append(
            record(cfg, capture, max_messages=n_msgs, stop=stop, duration_s=30)
        )
    )
    t.start()
    time.sleep(0.5)
    pub = mqtt.Client(CallbackAPIVersion.VERSION2)
    pub.connect("127.0.0.1", mosquitto.port)
    pub.loop_start()
    now = time.time()
    for k in range(n_msgs - 1):
        pub.publish(
            "ev/REC-1/1/meter", orjson.dumps({"ts": now + k, "power_w": 100.0 + k}), qos=1
        ).wait_for_publish(5)
    pub.publish("ev/REC-1/1/meter", b"not json at all", qos=1).wait_for_publish(5)
    t.join(30)
    pub.disconnect()
    pub.loop_stop()
    assert result == [n_msgs]
    recs = list(read_capture(capture))
    assert len(recs) == n_msgs
    assert recs[-1][2] == b"not json at all"  # kept as text, rejected again on replay
    res = replay(capture, tmp_path / "out")
    assert res.stats.samples == n_msgs - 1
    assert res.stats.rejected_by_reason == {"malformed_json": 1}
