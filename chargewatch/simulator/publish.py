"""Publishing a simulation to an MQTT broker in (accelerated) real time.

Clients: a real charger has its own MQTT connection, whose last will
(``ev/<id>/online`` = ``{"online": false}``, retained) the broker publishes when
the charger drops off. The publisher does the same — one paho client per
charger — for native fleets of up to ``PER_CHARGER_LIMIT`` chargers. Beyond
that, threads and sockets per charger cost more than the broker test is worth,
so one client publishes for all chargers (its own will is
``ev/_simulator/online``). OCPP frames always go through one client: in
production they come from one bridge beside the CSMS, too.

In both modes the offline periods inside the simulation (charger_offline,
reboots) are published as the retained ``{"online": false}`` message the broker
would have sent; at the end (or on Ctrl-C) every charger is marked offline.
"""

from __future__ import annotations

__all__ = ["PER_CHARGER_LIMIT", "PublishStats", "publish"]

import contextlib
import logging
import ssl
import threading
import time
from dataclasses import dataclass
from typing import IO

import orjson
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from chargewatch.core.clock import CLOCK_TOPIC, ScaledClock, announcement
from chargewatch.simulator.simulation import Simulation, tee_capture

log = logging.getLogger("chargewatch.simulator.publish")

PER_CHARGER_LIMIT = 100
_OFFLINE = orjson.dumps({"online": False})


@dataclass(slots=True)
class PublishStats:
    messages: int = 0
    bytes: int = 0
    clients: int = 0
    wall_s: float = 0.0
    max_lag_s: float = 0.0  # how far publishing fell behind the paced schedule


def _client(
    client_id: str,
    *,
    host: str,
    port: int,
    username: str | None,
    password: str | None,
    tls: bool,
    will_topic: str,
) -> mqtt.Client:
    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=True)
    if username:
        c.username_pw_set(username, password)
    if tls:
        c.tls_set(cert_reqs=ssl.CERT_REQUIRED)
    c.will_set(will_topic, _OFFLINE, qos=1, retain=True)
    c.max_queued_messages_set(0)  # unbounded: pacing, not the queue, limits the rate
    connected = threading.Event()

    def on_connect(
        client: mqtt.Client,
        userdata: object,
        flags: mqtt.ConnectFlags,
        reason: ReasonCode,
        props: Properties | None,
    ) -> None:
        if not reason.is_failure:
            connected.set()
        else:
            log.error("%s: broker refused the connection: %s", client_id, reason)

    c.on_connect = on_connect
    c.connect(host, port, keepalive=60)
    c.loop_start()
    if not connected.wait(10.0):
        c.loop_stop()
        raise ConnectionError(f"{client_id}: no CONNACK from {host}:{port} within 10 s")
    return c


def publish(
    sim: Simulation,
    *,
    host: str = "localhost",
    port: int = 1883,
    username: str | None = None,
    password: str | None = None,
    tls: bool = False,
    speed: float = 1.0,
    per_charger_clients: bool | None = None,
    start: float | None = None,
    end: float | None = None,
    qos: int = 0,
    capture: str | None = None,
    clock: ScaledClock | None = None,
) -> PublishStats:
    """Publish ``sim.messages(start, end)``, paced at ``speed`` × real time
    (``speed <= 0``: as fast as possible). Retained: ``ev/<id>/online``.
    ``capture``: also write what is published to this capture file.

    Paced, each message leaves when the simulated clock reaches its time: the
    ``clock`` given (a collector in the same process runs on it too; ``speed``
    is then the clock's), else one that starts at the first message. That
    clock is announced, retained, on ``CLOCK_TOPIC`` for a collector run with
    ``--clock simulator``, and withdrawn at the end."""
    cfg = sim.config
    ids = [c.id for c in sim.plan.chargers]
    if per_charger_clients is None:
        per_charger_clients = cfg.protocol == "native" and len(ids) <= PER_CHARGER_LIMIT
    clients: dict[str, mqtt.Client] = {}
    stats = PublishStats()
    fh: IO[bytes] | None = None
    shared: mqtt.Client | None = None
    announced = False
    try:
        if per_charger_clients:
            for cid in ids:
                clients[cid] = _client(
                    f"chargewatch-sim-{cid}",
                    host=host,
                    port=port,
                    username=username,
                    password=password,
                    tls=tls,
                    will_topic=f"ev/{cid}/online",
                )
        else:
            shared = _client(
                f"chargewatch-sim-{cfg.seed}",
                host=host,
                port=port,
                username=username,
                password=password,
                tls=tls,
                will_topic="ev/_simulator/online",
            )
        stats.clients = len(clients) or 1
        announcer = shared or next(iter(clients.values()))
        wall0 = time.monotonic()
        messages = sim.messages(start, end)
        fh = open(capture, "wb") if capture else None  # noqa: SIM115 - closed in finally
        if fh is not None:
            messages = tee_capture(fh, messages)
        for recv, topic, payload in messages:
            if clock is None and speed > 0:
                clock = ScaledClock(recv, speed, monotonic=time.monotonic)
            if clock is not None and not announced:
                _announce(announcer, announcement(clock, time.time()))
                announced = True
            if clock is not None:
                ahead = clock.seconds_until(recv)
                if ahead > 0.002:
                    time.sleep(ahead)
                else:
                    stats.max_lag_s = max(stats.max_lag_s, -ahead)
            if shared is not None:
                client = shared
            else:  # ev/<charger>/... or ocpp/<version>/<charger>/...
                parts = topic.split("/", 3)
                client = clients[parts[1] if parts[0] == "ev" else parts[2]]
            retain = topic.endswith("/online")
            client.publish(topic, payload, qos=1 if retain else qos, retain=retain)
            stats.messages += 1
            stats.bytes += len(payload)
        stats.wall_s = time.monotonic() - wall0
    finally:
        if fh is not None:
            fh.close()
        # The simulated fleet goes away: mark every charger offline (retained),
        # as the broker would from each charger's will.
        pending: list[mqtt.MQTTMessageInfo] = []
        if announced:  # the empty retained message withdraws the announcement
            pending.append(announcer.publish(CLOCK_TOPIC, b"", qos=1, retain=True))
        if cfg.protocol == "native":
            for cid in ids:
                c = clients.get(cid, shared)
                if c is not None:
                    pending.append(c.publish(f"ev/{cid}/online", _OFFLINE, qos=1, retain=True))
        for info in pending:
            # If the connection is gone, the broker publishes the will instead.
            with contextlib.suppress(RuntimeError, ValueError):
                info.wait_for_publish(5.0)
        for c in [*clients.values(), *([shared] if shared else [])]:
            c.disconnect()
            c.loop_stop()
    return stats


def _announce(client: mqtt.Client, payload: bytes) -> None:
    """Publish the clock and wait for the broker to have it: it must be there
    before the first message it dates."""
    info = client.publish(CLOCK_TOPIC, payload, qos=1, retain=True)
    with contextlib.suppress(RuntimeError, ValueError):
        info.wait_for_publish(5.0)
