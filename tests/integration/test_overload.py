"""Overload: input outruns processing; the broker's QoS 1 window is the backpressure.

Messages are acknowledged only after processing, and the collector connects
with MQTT 5 Receive Maximum = 1000, so a compliant broker never has more than
1000 unacknowledged messages out to it. Debian's mosquitto 2.0.11 overshoots
that window after PUBACKs (seen here: inboxes of 26,000), so the collector also
stops reading at ``max_inbox`` and TCP flow control holds the rest at the
broker. Either way the inbox stays bounded however large the burst, the rest
waits in the broker's queue, and nothing is lost once the burst ends.
"""

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

MAX_INBOX = 2000


class SlowStage:
    """Processing that is deliberately slower than the input."""

    def __init__(self, ingest_inbox: object) -> None:
        self.inbox = ingest_inbox
        self.ts: list[float] = []
        self.max_inbox = 0

    def on_batch(self, batch: MeterBatch, events: object, now: float) -> None:
        self.ts.extend(batch.ts.tolist())
        self.max_inbox = max(self.max_inbox, len(self.inbox))  # type: ignore[arg-type]
        time.sleep(0.002 * len(batch) / 100)  # ~50k samples/s at best

    def tick(self, now: float) -> None:
        pass


def test_burst_is_held_by_the_broker_not_in_memory(tmp_path: Path, mosquitto: Mosquitto) -> None:
    cfg = Config(
        data_dir=tmp_path,
        mqtt=MqttConfig(
            port=mosquitto.port, client_id=f"cw-{uuid.uuid4().hex[:6]}", max_inbox=MAX_INBOX
        ),
        http=HttpConfig(listen=""),
        batch_max_messages=500,
    )
    c = Collector(cfg)
    slow = SlowStage(c.ingest.inbox)
    c.pipeline.stages.append(slow)
    c.start()
    pub = mqtt.Client(CallbackAPIVersion.VERSION2)
    pub.max_inflight_messages_set(1000)
    pub.max_queued_messages_set(0)
    pub.connect("127.0.0.1", mosquitto.port)
    pub.loop_start()
    n = 40_000
    t0 = 1_795_000_000.0
    try:
        assert c.ingest.wait_connected(10)
        time.sleep(0.3)
        peak = [0]
        done = threading.Event()

        def watch() -> None:
            while not done.is_set():
                peak[0] = max(peak[0], len(c.ingest.inbox))
                time.sleep(0.005)

        threading.Thread(target=watch, daemon=True).start()
        for i in range(0, n, 10_000):  # paho's message ids wrap at 65,535 outstanding
            infos = [
                pub.publish("ev/OVL-1/1/meter", orjson.dumps({"ts": t0 + k, "power_w": 1.0}), qos=1)
                for k in range(i, i + 10_000)
            ]
            infos[-1].wait_for_publish(60)
        deadline = time.monotonic() + 120
        while len(set(slow.ts)) < n and time.monotonic() < deadline:
            time.sleep(0.1)
        done.set()
        unique = np.unique(np.array(slow.ts)).shape[0]
        assert unique == n, f"{n - unique} messages lost after the burst ({len(slow.ts)} rows)"
        assert peak[0] <= MAX_INBOX, f"inbox grew to {peak[0]}, beyond its bound"
        assert c.ingest.shed == 0
    finally:
        pub.disconnect()
        pub.loop_stop()
        c.stop()
