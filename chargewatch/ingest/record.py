"""``chargewatch record``: write a capture file from a live broker."""

from __future__ import annotations

__all__ = ["record"]

import threading
import time
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from chargewatch.ingest.capture import encode_record
from chargewatch.ingest.mqtt import MqttConfig


def record(
    config: MqttConfig,
    out: Path,
    *,
    duration_s: float | None = None,
    max_messages: int | None = None,
    stop: threading.Event | None = None,
) -> int:
    """Record every message on the telemetry topics until stopped; return the count."""
    stop = stop or threading.Event()
    count = 0
    lock = threading.Lock()
    f = out.open("ab")

    def on_message(client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        nonlocal count
        with lock:
            f.write(encode_record(time.time(), msg.topic, bytes(msg.payload)))
            count += 1
            if max_messages is not None and count >= max_messages:
                stop.set()

    def on_connect(c: mqtt.Client, u: Any, flags: Any, reason: Any, props: Any) -> None:
        if not reason.is_failure:
            c.subscribe([(t, 1) for t in config.subscriptions])

    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"{config.client_id}-record")
    if config.username:
        client.username_pw_set(config.username, config.password or None)
    if config.tls:
        client.tls_set(ca_certs=config.ca_file or None)
    client.on_message = on_message
    client.on_connect = on_connect
    client.connect(config.host, config.port, config.keepalive_s)
    client.loop_start()
    try:
        stop.wait(duration_s)
    finally:
        client.disconnect()
        client.loop_stop()
        with lock:
            f.close()
    return count
