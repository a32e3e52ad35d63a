"""Per-partition MQTT persistent sessions on a real Mosquitto (ingest/cluster.py):
what arrives while a partition has no owner is kept by the broker and handed to
the next owner once, in order per charger; what a dead owner received and never
acknowledged comes again."""

from __future__ import annotations

import json
import time
import uuid
from collections import defaultdict

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from chargewatch.ingest.cluster import PartitionSessions, partition_config, partition_of
from chargewatch.ingest.mqtt import Inbound, MqttConfig
from tests.services import Mosquitto

pytestmark = pytest.mark.integration

N = 4
FLEET = [f"CP-{i:03d}" for i in range(24)]


def publish(port: int, messages: list[tuple[str, int]]) -> None:
    """QoS 1 meter messages ``(charger, seq)``, each confirmed by the broker."""
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"pub-{uuid.uuid4().hex[:6]}")
    client.connect("127.0.0.1", port)
    client.loop_start()
    try:
        infos = [
            client.publish(f"ev/{c}/1/meter", json.dumps({"seq": s}).encode(), qos=1)
            for c, s in messages
        ]
        for info in infos:
            info.wait_for_publish(10)
    finally:
        client.loop_stop()
        client.disconnect()


def drain(sessions: PartitionSessions, want: int, *, ack: bool = True) -> list[Inbound]:
    got: list[Inbound] = []
    for _ in range(200):
        items = sessions.take(1000, timeout=0.1)
        if not items and len(got) >= want:
            break  # and nothing more came: a surplus would be in ``got`` too
        got += items
        if ack:
            sessions.ack(items)
    return got


def seqs(items: list[Inbound]) -> dict[str, list[int]]:
    out: dict[str, list[int]] = defaultdict(list)
    for topic, payload, *_ in items:
        out[topic.split("/")[1]].append(int(json.loads(payload)["seq"]))
    return out


def sessions_for(port: int, prefix: str) -> PartitionSessions:
    base = MqttConfig(port=port, receive_maximum=100)
    return PartitionSessions(base, N, lambda: FLEET, prefix=prefix)


def test_partition_config_is_a_persistent_exact_session() -> None:
    cfg = partition_config(MqttConfig(clean_session=True, qos=0), 3, ["B", "A"])
    assert cfg.client_id == "chargewatch-p3" and not cfg.clean_session and cfg.qos == 1
    assert cfg.session_expiry_s >= 3600 and cfg.partition.chargers == ("A", "B")
    assert "ev/A/+/meter" in cfg.topic_filters() and "ocpp/+/B/cp" in cfg.topic_filters()
    # A partition without inventory chargers subscribes to nothing, not to everything.
    assert partition_config(MqttConfig(), 0, []).topic_filters() == ()


def test_an_unowned_partitions_messages_wait_for_the_next_owner(mosquitto: Mosquitto) -> None:
    prefix = f"cw{uuid.uuid4().hex[:6]}"
    mine = [c for c in FLEET if partition_of(c, N) == 1]
    first = sessions_for(mosquitto.port, prefix)
    first.open(1)
    assert first.wait_connected(10)
    publish(mosquitto.port, [(c, 0) for c in mine])
    assert len(drain(first, len(mine))) == len(mine)
    first.close_all()  # the owner goes away; nobody holds partition 1
    sent = [(c, s) for s in range(1, 21) for c in FLEET]  # every partition's chargers
    publish(mosquitto.port, sent)
    nxt = sessions_for(mosquitto.port, prefix)
    nxt.open(1)
    got = drain(nxt, 20 * len(mine))
    nxt.close_all()
    # Partition 1's messages only, each once, in the order sent for every charger.
    assert seqs(got) == {c: list(range(1, 21)) for c in mine}


def test_what_a_dead_owner_did_not_acknowledge_comes_again(mosquitto: Mosquitto) -> None:
    prefix = f"cw{uuid.uuid4().hex[:6]}"
    mine = [c for c in FLEET if partition_of(c, N) == 2]
    dead = sessions_for(mosquitto.port, prefix)
    dead.open(2)
    assert dead.wait_connected(10)
    publish(mosquitto.port, [(c, s) for s in range(5) for c in mine])
    got = drain(dead, 5 * len(mine), ack=False)
    assert len(got) == 5 * len(mine)
    # Processed and acknowledged: seq 0 and 1 of each charger; the rest never is.
    dead.ack([it for it in got if json.loads(it[1])["seq"] < 2])
    time.sleep(0.5)  # the PUBACKs reach the broker (a crash may lose some: see the docs)
    # The owner dies without a word: its socket is cut, no DISCONNECT sent.
    for s in dead.sessions.values():
        s.client.loop_stop()
        s.client.socket().close()  # type: ignore[union-attr]
    nxt = sessions_for(mosquitto.port, prefix)
    nxt.open(2)
    again = drain(nxt, 3 * len(mine))
    nxt.close_all()
    assert seqs(again) == {c: [2, 3, 4] for c in mine}


def test_connected_means_every_subscription_is_acknowledged(mosquitto: Mosquitto) -> None:
    """A new persistent session keeps only what arrives after its SUBACK: a message
    published the moment ``wait_connected`` returns must reach the owner, even
    with thousands of filters sent in several SUBSCRIBE packets (the last
    charger's filter is in the last packet)."""
    prefix = f"cw{uuid.uuid4().hex[:6]}"
    fleet = [f"CP-{i:05d}" for i in range(3000)]
    mine = [c for c in fleet if partition_of(c, N) == 3]
    owner = PartitionSessions(
        MqttConfig(port=mosquitto.port, receive_maximum=100), N, lambda: fleet, prefix=prefix
    )
    owner.open(3)
    assert owner.wait_connected(20)
    publish(mosquitto.port, [(mine[-1], 0)])
    got = drain(owner, 1)
    owner.close_all()
    assert seqs(got) == {mine[-1]: [0]}
