"""Publishing to a real Mosquitto: every message arrives; the online flags are retained."""

from __future__ import annotations

import threading
import time

import orjson
import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from chargewatch.core.clock import CLOCK_TOPIC
from chargewatch.simulator import SimConfig, Simulation
from chargewatch.simulator.publish import publish
from tests.services import Mosquitto

pytestmark = pytest.mark.integration


def _subscriber(port: int, topic: str, box: list[tuple[str, bytes, bool]]) -> mqtt.Client:
    c = mqtt.Client(CallbackAPIVersion.VERSION2)
    ready = threading.Event()
    c.on_connect = lambda cl, *a: (cl.subscribe(topic, qos=1), ready.set())
    c.on_message = lambda cl, ud, m: box.append((m.topic, m.payload, m.retain))
    c.connect("127.0.0.1", port)
    c.loop_start()
    assert ready.wait(5)
    time.sleep(0.2)
    return c


@pytest.mark.parametrize("per_charger", [True, False])
def test_publish_delivers_everything_and_leaves_retained_offline_flags(
    mosquitto: Mosquitto, per_charger: bool
) -> None:
    cfg = SimConfig(chargers=4, sites=2, seed=per_charger, duration=900, interval=10.0, batch=3)
    sim = Simulation(cfg)
    expected = [(t, p) for _, t, p in sim.messages()]
    got: list[tuple[str, bytes, bool]] = []
    sub = _subscriber(mosquitto.port, "ev/#", got)
    stats = publish(sim, port=mosquitto.port, speed=0, per_charger_clients=per_charger)
    deadline = time.monotonic() + 10
    while (
        sum(not r for *_, r in got) < len(expected) + cfg.chargers and time.monotonic() < deadline
    ):
        time.sleep(0.05)
    sub.loop_stop()
    sub.disconnect()
    assert stats.messages == len(expected)
    assert stats.clients == (cfg.chargers if per_charger else 1)

    # Order holds per client connection, so compare each topic's sequence.
    def per_topic(msgs: list[tuple[str, bytes]]) -> dict[str, list[bytes]]:
        out: dict[str, list[bytes]] = {}
        for t, p in msgs:
            out.setdefault(t, []).append(p)
        return out

    # retained flags from an earlier run arrive first, marked retained: not ours
    received = per_topic([(t, p) for t, p, retained in got if not retained])
    for topic, payloads in per_topic(expected).items():
        tail = received[topic][len(payloads) :]
        assert received[topic][: len(payloads)] == payloads, topic
        assert all(orjson.loads(p) == {"online": False} for p in tail)
    late: list[tuple[str, bytes, bool]] = []
    sub = _subscriber(mosquitto.port, "ev/+/online", late)
    time.sleep(0.3)
    sub.loop_stop()
    sub.disconnect()
    flags = {t: orjson.loads(p)["online"] for t, p, retained in late if retained}
    assert flags == {f"ev/{c.id}/online": False for c in sim.plan.chargers}


def test_publish_paces_by_speed(mosquitto: Mosquitto) -> None:
    cfg = SimConfig(chargers=2, sites=1, seed=3, duration=60, interval=5.0)
    sim = Simulation(cfg)
    stats = publish(sim, port=mosquitto.port, speed=60.0)  # one simulated minute in ~1 s
    assert stats.messages > 20
    assert 0.7 < stats.wall_s < 5.0


def test_publish_ocpp_frames_through_per_charger_clients(mosquitto: Mosquitto) -> None:
    cfg = SimConfig(chargers=2, sites=1, seed=5, duration=300, interval=10.0, protocol="ocpp1.6")
    sim = Simulation(cfg)
    got: list[tuple[str, bytes, bool]] = []
    sub = _subscriber(mosquitto.port, "ocpp/#", got)
    stats = publish(sim, port=mosquitto.port, speed=0, per_charger_clients=True)
    deadline = time.monotonic() + 10
    while len(got) < stats.messages and time.monotonic() < deadline:
        time.sleep(0.05)
    sub.loop_stop()
    sub.disconnect()
    assert stats.clients == 2 and len(got) == stats.messages
    assert {t.split("/")[3] for t, _, _ in got} == {"cp", "csms"}


def test_paced_publishing_announces_its_clock_and_withdraws_it(mosquitto: Mosquitto) -> None:
    cfg = SimConfig(chargers=2, sites=1, seed=4, duration=60, interval=5.0)
    sim = Simulation(cfg)
    first = next(iter(sim.messages()))[0]
    got: list[tuple[str, bytes, bool]] = []
    sub = _subscriber(mosquitto.port, CLOCK_TOPIC, got)
    publish(sim, port=mosquitto.port, speed=30.0)
    time.sleep(0.3)
    sub.loop_stop()
    sub.disconnect()
    fresh = [p for _, p, retained in got if not retained]
    assert len(fresh) == 2 and fresh[1] == b"", fresh  # announced, then withdrawn
    doc = orjson.loads(fresh[0])
    assert doc["t0"] == first and doc["speed"] == 30.0
    # Withdrawn means no retained clock for a collector started afterwards.
    late: list[tuple[str, bytes, bool]] = []
    sub = _subscriber(mosquitto.port, CLOCK_TOPIC, late)
    sub.loop_stop()
    sub.disconnect()
    assert late == []
    # Unpaced publishing has no clock to announce.
    got.clear()
    sub = _subscriber(mosquitto.port, CLOCK_TOPIC, got)
    publish(sim, port=mosquitto.port, speed=0)
    time.sleep(0.3)
    sub.loop_stop()
    sub.disconnect()
    assert got == []
