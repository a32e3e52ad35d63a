"""MQTT ingest with paho-mqtt (the fastest client measured here: ~50k msg/s).

The network loop runs in paho's thread and does nothing but append
``(topic, payload, recv, mid, qos)`` to a deque; decoding happens in the
pipeline's thread, so a slow batch never blocks the network loop (keepalives
and acks keep flowing). Messages are acknowledged manually, after the pipeline
has processed them: unacknowledged QoS 1 messages stay with the broker, whose
in-flight window is then the backpressure that bounds the inbox.
"""

from __future__ import annotations

__all__ = ["Inbound", "MqttConfig", "MqttIngest", "secure"]

import collections
import logging
import ssl
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from chargewatch.core import metrics
from chargewatch.ingest.partition import Partition
from chargewatch.ingest.topics import NATIVE_SUBSCRIPTIONS, OCPP_SUBSCRIPTIONS

log = logging.getLogger(__name__)


# (topic, payload, receive time, message id, qos). A plain tuple: it is built
# once per message in the network thread, where every microsecond counts.
Inbound = tuple[str, bytes, float, int, int]


@dataclass(frozen=True)
class MqttConfig:
    host: str = "127.0.0.1"
    port: int = 1883
    client_id: str = "chargewatch-collector"
    username: str = ""
    password: str = field(default="", repr=False)
    tls: bool = False
    ca_file: str = ""
    cert_file: str = ""
    key_file: str = ""
    tls_insecure: bool = False
    keepalive_s: int = 30
    qos: int = 1
    clean_session: bool = False  # persistent session: the broker queues while we are away
    # MQTT 5 lets the collector bound what the broker sends it unacknowledged
    # (Receive Maximum): that bound is the backpressure. "3.1.1" is for brokers
    # without MQTT 5 (the embedded amqtt), where only the broker's own
    # in-flight setting limits it.
    protocol: str = "5"
    receive_maximum: int = 1000
    session_expiry_s: int = 7 * 86400  # how long the broker keeps our session while away
    subscriptions: tuple[str, ...] = NATIVE_SUBSCRIPTIONS + OCPP_SUBSCRIPTIONS
    reconnect_min_s: float = 0.5
    reconnect_max_s: float = 30.0
    # Messages received and not yet taken by the pipeline. At this bound QoS 0
    # is shed (counted) and, for QoS 1, the network thread stops reading until
    # the pipeline has taken a fifth of them: TCP flow control then holds the
    # rest at the broker. Receive Maximum should keep us below it anyway, but
    # brokers overshoot it (mosquitto 2.0.11 does after PUBACKs).
    max_inbox: int = 5000
    manual_ack: bool = True
    # The chargers this collector owns when several share the fleet (partition.py).
    partition: Partition = field(default_factory=Partition)

    def topic_filters(self) -> tuple[str, ...]:
        """What to subscribe: the subscriptions, narrowed to the partition's chargers."""
        return self.partition.subscriptions(self.subscriptions)


# Filters per SUBSCRIBE packet: a partition of exact charger ids has several
# filters per charger, and one packet for thousands of them is needlessly large.
_FILTERS_PER_SUBSCRIBE = 200


def secure(client: mqtt.Client, config: MqttConfig) -> None:
    """Give ``client`` the broker credentials and TLS settings of ``config``.

    One place for both of chargewatch's MQTT clients (the collector's ingest
    and the OCPP bridge's mirror), so a TLS option means the same in each.
    """
    if config.username:
        client.username_pw_set(config.username, config.password or None)
    if config.tls:
        ctx = ssl.create_default_context(cafile=config.ca_file or None)
        if config.cert_file:
            ctx.load_cert_chain(config.cert_file, config.key_file or None)
        if config.tls_insecure:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        client.tls_set_context(ctx)


class MqttIngest:
    def __init__(
        self,
        config: MqttConfig,
        *,
        clock: Callable[[], float] = time.time,
        handlers: dict[str, Callable[[bytes], None]] | None = None,
        ready: threading.Condition | None = None,
    ) -> None:
        """``clock`` stamps each message's receive time (the service's clock, which
        is simulated time beside a simulator). ``handlers``: topics subscribed
        besides the data's, each handed to its function in the network thread
        instead of the pipeline (keep them tiny). ``ready``: a condition shared by
        several ingests (one per partition) that a waiting reader is woken by."""
        self.config = config
        self._now = clock
        self.handlers = dict(handlers or {})
        self.inbox: collections.deque[Inbound] = collections.deque()
        # Processed messages waiting for their PUBACK (see ack).
        self._acks: collections.deque[tuple[int, int]] = collections.deque()
        # Notified when the inbox gets a first message; several sessions read by
        # one pipeline (ingest/cluster.py) share one.
        self._ready = ready or threading.Condition()
        self._space = threading.Condition()
        self._reader_waiting = False
        self._closing = False
        self.paused = 0  # times the network thread waited for inbox space
        self.connected = threading.Event()
        self._pending_subacks: set[int] = set()
        self.shed = 0
        self.connects = 0
        self.skipped = 0  # messages for chargers another collector owns
        # topic -> owned; topics repeat endlessly, so the decision is one dict lookup.
        self._owned: dict[str, bool] | None = None if config.partition.whole else {}
        self._skipped_metric = metrics.SKIPPED.labels(reason="not_in_partition")
        if config.protocol not in ("5", "3.1.1"):
            raise ValueError(f"MQTT protocol must be 5 or 3.1.1, got {config.protocol!r}")
        self.v5 = config.protocol == "5"
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=config.client_id,
            # MQTT 5 has no clean_session; clean_start is given at connect.
            clean_session=None if self.v5 else config.clean_session,
            protocol=mqtt.MQTTv5 if self.v5 else mqtt.MQTTv311,
            manual_ack=config.manual_ack,
        )
        secure(client, config)
        client.reconnect_delay_set(
            min_delay=max(1, int(config.reconnect_min_s)), max_delay=int(config.reconnect_max_s)
        )
        # Allow a large window of unacknowledged messages in each direction.
        client.max_inflight_messages_set(1000)
        client.max_queued_messages_set(0)
        client.on_connect = self._on_connect
        client.on_subscribe = self._on_subscribe
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        for topic in self.handlers:
            client.message_callback_add(topic, self._on_handled)
        self.client = client

    def start(self) -> None:
        cfg = self.config
        if self.v5:
            props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
            props.SessionExpiryInterval = 0 if cfg.clean_session else cfg.session_expiry_s
            props.ReceiveMaximum = cfg.receive_maximum
            self.client.connect_async(
                cfg.host,
                cfg.port,
                cfg.keepalive_s,
                clean_start=cfg.clean_session,
                properties=props,
            )
        else:
            self.client.connect_async(cfg.host, cfg.port, cfg.keepalive_s)
        self.client.loop_start()
        thread = self.client._thread  # named for thread dumps
        if thread is not None:
            thread.name = "collector.mqtt_loop"

    def stop(self) -> None:
        self._send_acks()
        self._closing = True
        with self._space:
            self._space.notify_all()
        self.client.disconnect()
        self.client.loop_stop()

    def wait_connected(self, timeout: float) -> bool:
        return self.connected.wait(timeout)

    def is_connected(self) -> bool:
        return self.connected.is_set()

    def depth(self) -> int:
        """Messages received and not yet taken by the pipeline."""
        return len(self.inbox)

    # -- paho callbacks (network thread: keep them tiny) --------------------------

    def _on_connect(
        self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, props: Any
    ) -> None:
        if reason.is_failure:
            log.error("MQTT connect refused: %s", reason)
            return
        self.connects += 1
        if self.connects > 1:
            metrics.MQTT_RECONNECTS.inc()
        # With a persistent session the broker remembers subscriptions, but
        # subscribing again is idempotent and covers a broker that lost its state.
        # Connected means subscribed: until every SUBACK is back, a message published
        # to a new persistent session is not kept for it, so callers waiting on
        # ``connected`` wait for the SUBACKs too. (Callbacks run on this network
        # thread, so no SUBACK is handled before its mid is recorded here.)
        pending = self._pending_subacks
        pending.clear()
        filters = self.config.topic_filters()
        for i in range(0, len(filters), _FILTERS_PER_SUBSCRIBE):
            chunk = filters[i : i + _FILTERS_PER_SUBSCRIBE]
            self._subscribe(client, chunk)
        if self.handlers:
            self._subscribe(client, list(self.handlers))
        metrics.MQTT_CONNECTED.set(1)
        if not pending:
            self.connected.set()
        log.info(
            "MQTT connected to %s:%d (session present: %s)",
            self.config.host,
            self.config.port,
            getattr(flags, "session_present", "?"),
        )

    def _subscribe(self, client: mqtt.Client, topics: Sequence[str]) -> None:
        _, mid = client.subscribe([(t, self.config.qos) for t in topics])
        if mid is not None:  # None: not sent, the connection is gone and comes again
            self._pending_subacks.add(mid)

    def _on_subscribe(
        self, client: mqtt.Client, userdata: Any, mid: int, reasons: Any, props: Any
    ) -> None:
        pending = self._pending_subacks
        if mid in pending:
            pending.discard(mid)
            if not pending:
                self.connected.set()

    def _on_disconnect(
        self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, props: Any
    ) -> None:
        self.connected.clear()
        metrics.MQTT_CONNECTED.set(0)
        if reason.is_failure:
            log.warning("MQTT disconnected: %s; reconnecting with backoff", reason)

    def _on_handled(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        try:
            self.handlers[msg.topic](bytes(msg.payload))
        except Exception:  # a bad control message must not stop the network thread
            log.exception("handling %s failed", msg.topic)
        if msg.qos and self.config.manual_ack:
            client.ack(msg.mid, msg.qos)

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        if self._acks:
            self._send_acks()
        owned = self._owned
        if owned is not None:
            topic = msg.topic
            mine = owned.get(topic)
            if mine is None:
                if len(owned) >= 200_000:  # topic spam must not grow memory without bound
                    owned.clear()
                mine = owned[topic] = self.config.partition.owns_topic(topic)
            if not mine:
                # Another collector's charger (hash partitioning delivers everything;
                # a persistent session may keep a filter from an older partition).
                # Acknowledged at once: nobody here will ever process it.
                self.skipped += 1
                self._skipped_metric.inc()
                if msg.qos and self.config.manual_ack:
                    client.ack(msg.mid, msg.qos)
                return
        if len(self.inbox) >= self.config.max_inbox:
            if msg.qos == 0:
                self.shed += 1  # counted; QoS 1 is never shed (the broker holds it for us)
                return
            self._wait_for_space()
        self.inbox.append((msg.topic, msg.payload, self._now(), msg.mid, msg.qos))  # type: ignore[arg-type]
        if len(self.inbox) == 1:
            with self._ready:
                self._ready.notify()

    def _wait_for_space(self) -> None:
        low = self.config.max_inbox * 4 // 5
        self.paused += 1
        with self._space:
            self._reader_waiting = True
            while len(self.inbox) > low and not self._closing:
                self._space.wait(0.5)
            self._reader_waiting = False

    # -- pipeline side --------------------------------------------------------

    def take(
        self, max_items: int, timeout: float, *, min_items: int = 1, linger_s: float = 0.0
    ) -> list[Inbound]:
        """Up to ``max_items`` queued messages, waiting up to ``timeout`` for the first.

        With ``linger_s``, a batch smaller than ``min_items`` waits that much
        longer to fill: fewer, larger batches, and the network thread runs
        undisturbed (the GIL is free) while it does.
        """
        inbox = self.inbox
        if not inbox:
            with self._ready:
                self._ready.wait(timeout)
        if linger_s and 0 < len(inbox) < min_items:
            time.sleep(linger_s)
        if not inbox and self._acks:
            self._send_acks()  # the network thread may be idle: nothing else sends them
        n = min(len(inbox), max_items)
        popleft = inbox.popleft
        items = [popleft() for _ in range(n)]
        if self._reader_waiting:
            with self._space:
                self._space.notify()
        return items

    def ack(self, items: list[Inbound]) -> None:
        """Acknowledge processed messages (QoS 1: the broker may forget them now).

        A PUBACK queued from this thread wakes paho's network thread through
        its socket pair, once per message: with an idle second core that was
        ~10 us a message, a third of the single-sample path. So acks wait in
        a queue that the network thread empties before each message it
        receives, and this thread empties when the inbox is empty (the network
        thread may be waiting in select, and the broker stops sending once
        Receive Maximum messages are unacknowledged). Whichever thread pops an
        ack sends it, exactly once.
        """
        if not self.config.manual_ack:
            return
        self._acks.extend((it[3], it[4]) for it in items if it[4])
        if not self.inbox:
            self._send_acks()

    def _send_acks(self) -> None:
        popleft, ack = self._acks.popleft, self.client.ack
        while True:
            try:
                mid, qos = popleft()
            except IndexError:
                return
            ack(mid, qos)

    def publish(self, topic: str, payload: bytes, qos: int = 1, retain: bool = False) -> None:
        self.client.publish(topic, payload, qos=qos, retain=retain)
