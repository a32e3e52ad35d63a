"""Every frame to MQTT with QoS 1, in order, never slowing the charger ↔ CSMS path.

The event loop only appends ``(topic, payload, retain)`` to a bounded deque
(:meth:`Mirror.put`: no I/O, and no wake-up, the mirror thread looks every
10 ms). That thread hands the messages to paho, keeping at most
``inflight_max`` unacknowledged (paho re-sends those after a reconnect);
paho's own thread writes the socket with the GIL released, so the proxy's
loop never waits on the broker's socket. (Measured: with paho on the
proxy's loop instead, its socket writes delayed the frames behind them.)
While the broker is away, or the window is full, the thread writes batches
to an on-disk spool (storage/spool.py) instead, and once anything is spooled
every newer message goes there too until the spool has drained: the order on
the broker is the order on the wire. What cannot be kept is counted
(``chargewatch_bridge_mirror_lost_total``): a full queue (the disk is slower
than the chargers), a full spool (oldest chunk dropped) and messages still
unacknowledged when the bridge stops.
"""

from __future__ import annotations

__all__ = ["Message", "Mirror"]

import collections
import logging
import threading
from collections.abc import Callable
from typing import Any

import orjson
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from chargewatch.bridge import metrics
from chargewatch.bridge.settings import MirrorConfig
from chargewatch.ingest.mqtt import MqttConfig, secure
from chargewatch.storage.spool import Spool

log = logging.getLogger(__name__)

#: (topic, payload as on the wire, retain)
Message = tuple[str, str | bytes, bool]
COMMAND_FILTER = "ocpp/+/+/command"
_BATCH = 500  # messages per spool chunk / per hand-over to paho
_LINGER_S = 0.01  # how long a mirrored frame may wait for the thread to look


def _encode(batch: list[Message]) -> bytes:
    rows = [(t, p if isinstance(p, str) else p.decode("utf-8", "replace"), r) for t, p, r in batch]
    return orjson.dumps(rows)


def _decode(body: bytes) -> list[Message]:
    return [(str(t), str(p), bool(r)) for t, p, r in orjson.loads(body)]


class Mirror:
    def __init__(
        self,
        mqtt_cfg: MqttConfig,
        cfg: MirrorConfig,
        *,
        on_command: Callable[[str, bytes], None] | None = None,
    ) -> None:
        self.cfg = cfg
        self.mqtt_cfg = mqtt_cfg
        self.on_command = on_command
        self.queue: collections.deque[Message] = collections.deque()
        self.spool = Spool(cfg.spool_dir, max_bytes=cfg.spool_max_bytes)
        self._spool_dropped = self.spool.dropped_chunks
        self._cond = threading.Condition()
        self._waiting = False
        self._stopping = False
        self.unacked = 0
        self._resending = False
        self.connected = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bridge.mirror", daemon=True)
        self.client = self._client()
        metrics.MIRROR_QUEUE.set_function(lambda: len(self.queue))
        metrics.MIRROR_SPOOL_BYTES.set_function(lambda: self.spool.bytes)

    def _client(self) -> mqtt.Client:
        cfg = self.mqtt_cfg
        v5 = cfg.protocol == "5"
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=cfg.client_id,
            # A clean session: commands published while the bridge was away are
            # stale by the time it returns (the collector records a Timeout).
            # Our own unacknowledged publishes are re-sent by paho regardless.
            clean_session=None if v5 else True,
            protocol=mqtt.MQTTv5 if v5 else mqtt.MQTTv311,
        )
        secure(client, cfg)
        client.reconnect_delay_set(min_delay=1, max_delay=max(1, int(cfg.reconnect_max_s)))
        client.max_inflight_messages_set(self.cfg.inflight_max)
        client.max_queued_messages_set(0)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        client.on_message = self._on_message
        return client

    # -- lifecycle ---------------------------------------------------------------

    def start(self) -> None:
        cfg = self.mqtt_cfg
        if cfg.protocol == "5":
            props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
            props.SessionExpiryInterval = 0
            self.client.connect_async(
                cfg.host, cfg.port, cfg.keepalive_s, clean_start=True, properties=props
            )
        else:
            self.client.connect_async(cfg.host, cfg.port, cfg.keepalive_s)
        self.client.loop_start()
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Publish (or spool) what is queued, wait up to ``timeout`` for acks, disconnect."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        self._thread.join(timeout + 5)
        with self._cond:
            if self.connected.is_set():
                self._cond.wait_for(lambda: self.unacked <= 0, timeout)
            if self.unacked > 0:
                metrics.MIRROR_LOST.labels(reason="shutdown").inc(self.unacked)
                log.error("mirror: %d frames unacknowledged at shutdown", self.unacked)
        self.client.disconnect()
        self.client.loop_stop()

    # -- the event loop's side -----------------------------------------------------

    def put(self, topic: str, payload: str | bytes, retain: bool = False) -> None:
        """Queue one message (never blocks, never does I/O)."""
        if len(self.queue) >= self.cfg.queue_max:
            metrics.MIRROR_LOST.labels(reason="queue_full").inc()
            return
        self.queue.append((topic, payload, retain))
        # The thread looks every _LINGER_S by itself: waking it per frame would
        # cost a thread switch (and a GIL hand-over) per frame on the proxy path.
        if self._waiting and len(self.queue) >= _BATCH:
            with self._cond:
                self._cond.notify()

    # -- the mirror thread -------------------------------------------------------------

    def _take(self) -> list[Message]:
        q = self.queue
        if not q:
            with self._cond:
                # Set before looking again: put() reads it after appending.
                self._waiting = True
                if len(q) < _BATCH and not self._stopping:
                    self._cond.wait(_LINGER_S)
                self._waiting = False
        return [q.popleft() for _ in range(min(len(q), _BATCH))]

    def _run(self) -> None:
        while True:
            stopping = self._stopping
            batch = self._take()
            if batch:
                if len(self.spool) or not self._can_publish():
                    self.spool.put(_encode(batch))
                    self._count_spool_drops()
                else:
                    self._publish(batch)
            self._drain_spool()
            if stopping and not self.queue:
                return

    def _can_publish(self) -> bool:
        if not self.connected.is_set():
            return False
        if self._resending:
            # paho re-sends the previous connection's unacknowledged messages
            # right after on_connect returns: anything newer waits for their
            # acks, or it could overtake them.
            if self.unacked > 0:
                return False
            self._resending = False
        return self.unacked < self.cfg.inflight_max

    def _drain_spool(self) -> None:
        while len(self.spool) and self._can_publish():
            got = self.spool.peek()
            if got is None:
                return
            seq, body = got
            try:
                batch = _decode(body)
            except (orjson.JSONDecodeError, ValueError, TypeError):
                log.error("mirror: unreadable spool chunk %d dropped", seq)
                metrics.MIRROR_LOST.labels(reason="spool_full").inc()
                batch = []
            self._publish(batch)
            self.spool.pop(seq)

    def _count_spool_drops(self) -> None:
        dropped = self.spool.dropped_chunks - self._spool_dropped
        if dropped:
            self._spool_dropped += dropped
            metrics.MIRROR_LOST.labels(reason="spool_full").inc(dropped)

    def _publish(self, batch: list[Message]) -> None:
        publish = self.client.publish
        with self._cond:
            self.unacked += len(batch)
        for topic, payload, retain in batch:
            # Disconnected meanwhile: paho keeps QoS 1 messages and sends them
            # on reconnect (bounded by one window plus one batch).
            publish(topic, payload, qos=1, retain=retain)

    # -- paho callbacks (its network thread) --------------------------------------

    def _on_connect(
        self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, props: Any
    ) -> None:
        if reason.is_failure:
            log.error("mirror: broker refused the connection: %s", reason)
            return
        if self.on_command is not None:
            client.subscribe(COMMAND_FILTER, qos=1)
        with self._cond:
            self._resending = self.unacked > 0
        self.connected.set()
        metrics.BROKER_CONNECTED.set(1)
        log.info("mirror: connected to %s:%d", self.mqtt_cfg.host, self.mqtt_cfg.port)
        with self._cond:
            self._cond.notify_all()

    def _on_disconnect(
        self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, props: Any
    ) -> None:
        self.connected.clear()
        metrics.BROKER_CONNECTED.set(0)
        if reason.is_failure:
            log.warning("mirror: broker connection lost (%s); spooling until it returns", reason)

    def _on_publish(
        self, client: mqtt.Client, userdata: Any, mid: int, reason: Any, props: Any
    ) -> None:
        metrics.MIRROR_PUBLISHED.inc()
        with self._cond:
            self.unacked -= 1
            # Wake the thread when the window has room again (it may be spooling).
            if self.unacked <= 0 or self.unacked == self.cfg.inflight_max // 2:
                self._cond.notify_all()

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        if self.on_command is not None:
            self.on_command(msg.topic, bytes(msg.payload))
