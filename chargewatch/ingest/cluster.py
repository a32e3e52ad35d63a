"""One MQTT persistent session per partition (docs/scaling.md, "dynamic partitions").

With dynamic partitions the broker, not the collectors, keeps what arrives for
a partition while nobody owns it: partition ``k`` has its own MQTT session,
client id ``<prefix>-p<k>`` (``chargewatch-p<k>`` by default), never clean
(``clean_start`` false, a session expiry of hours), subscribed at QoS 1 to
exactly the chargers of that partition. Only the holder of the partition's
lease connects it. When that collector dies, the broker keeps queueing for
the session (and keeps the messages delivered but not acknowledged); the next
owner connects the same client id and gets all of it, the unacknowledged ones
first, as MQTT requires for a resumed session.

The subscriptions are the chargers of the fleet inventory in the partition
(``crc32(id) % N``), one filter per charger and topic tree, as the static
exact-id form subscribes. The broker cannot hash, so a charger missing from
the inventory matches no partition's filters: it is not received until the
fleet file lists it (and a reload re-subscribes). Every charger's messages
come through one session, so their order is the order the broker kept.

:class:`PartitionSessions` reads every open session's inbox for the one
pipeline, and sends each acknowledgement back through the session that
received the message (a packet id means something only on its connection).
"""

from __future__ import annotations

__all__ = ["PartitionSessions", "partition_config", "partition_of"]

import threading
import time
import zlib
from collections.abc import Callable, Iterable
from dataclasses import replace

from chargewatch.ingest.mqtt import Inbound, MqttConfig, MqttIngest
from chargewatch.ingest.partition import Partition, charger_of, stable_hash

#: A partition's session outlives a dead owner by this much at the broker
#: (MQTT 5 Session Expiry Interval): a takeover takes seconds; a whole cluster
#: down for a day still finds its queues.
SESSION_EXPIRY_S = 2 * 86400


def partition_of(charger: str, count: int) -> int:
    """The partition of a charger (``crc32(id) % count``, as storage/leases.py)."""
    return stable_hash(charger) % count


def partition_config(
    base: MqttConfig, k: int, chargers: Iterable[str], *, prefix: str = "chargewatch"
) -> MqttConfig:
    """The MQTT settings of partition ``k``'s session: its own client id, persistent,
    QoS 1, acknowledged after the pipeline, subscribed to exactly ``chargers``.

    A partition without inventory chargers subscribes to nothing: an empty
    charger list would otherwise mean the whole fleet (``Partition()``)."""
    chargers = tuple(sorted(chargers))
    return replace(
        base,
        subscriptions=base.subscriptions if chargers else (),
        client_id=f"{prefix}-p{k}",
        clean_session=False,
        qos=1,
        manual_ack=True,
        session_expiry_s=max(base.session_expiry_s, SESSION_EXPIRY_S),
        partition=Partition(chargers=chargers),
    )


class PartitionSessions:
    """The partition sessions this collector holds, read as one ingest."""

    def __init__(
        self,
        base: MqttConfig,
        count: int,
        inventory: Callable[[], Iterable[str]],
        *,
        prefix: str = "chargewatch",
    ) -> None:
        self.base = base
        self.count = count
        self.inventory = inventory  # the fleet's charger ids, read at each open
        self.prefix = prefix
        self.sessions: dict[int, MqttIngest] = {}
        self._ready = threading.Condition()
        self._next = 0  # the session a batch starts from: none starves the others

    def chargers(self, k: int) -> list[str]:
        return [c for c in self.inventory() if zlib.crc32(c.encode()) % self.count == k]

    def open(self, k: int) -> MqttIngest:
        """Connect partition ``k``'s session (call once its lease is held)."""
        if k in self.sessions:
            return self.sessions[k]
        cfg = partition_config(self.base, k, self.chargers(k), prefix=self.prefix)
        ingest = MqttIngest(cfg, ready=self._ready)
        ingest.start()
        self.sessions[k] = ingest
        return ingest

    def close(self, k: int) -> None:
        """Disconnect partition ``k``'s session. Call between batches, after the
        last ack: what was received and not acknowledged stays with the broker
        for the next owner (it is dropped here, never processed twice)."""
        ingest = self.sessions.pop(k, None)
        if ingest is not None:
            ingest.stop()

    def close_all(self) -> None:
        for k in list(self.sessions):
            self.close(k)

    def wait_connected(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        return all(
            s.wait_connected(max(0.0, deadline - time.monotonic())) for s in self.sessions.values()
        )

    def start(self) -> None:
        """Nothing connects before a lease is held (:meth:`open`)."""

    def stop(self) -> None:
        self.close_all()

    def is_connected(self) -> bool:
        return all(s.connected.is_set() for s in self.sessions.values())

    def depth(self) -> int:
        return sum(len(s.inbox) for s in self.sessions.values())

    def take(
        self, max_items: int, timeout: float, *, min_items: int = 1, linger_s: float = 0.0
    ) -> list[Inbound]:
        """Up to ``max_items`` messages from the open sessions, waiting up to
        ``timeout`` for the first (and ``linger_s`` more for ``min_items``, as
        MqttIngest.take). Each session's messages keep their order."""
        if not self.depth():
            with self._ready:
                self._ready.wait(timeout)
        if linger_s and 0 < self.depth() < min_items:
            time.sleep(linger_s)
        if not self.depth():
            for s in self.sessions.values():
                s.take(0, 0.0)  # an idle session's pending acks leave
            return []
        out: list[Inbound] = []
        sessions = list(self.sessions.values())
        for i in range(len(sessions)):
            s = sessions[(self._next + i) % len(sessions)]
            room = max_items - len(out)
            if room <= 0:
                break
            out.extend(s.take(room, timeout=0.0))
        self._next += 1
        return out

    def ack(self, items: list[Inbound]) -> None:
        """Acknowledge processed messages through the sessions that received them."""
        groups: dict[int, list[Inbound]] = {}
        for it in items:
            charger = charger_of(it[0])
            if charger is not None:
                groups.setdefault(partition_of(charger, self.count), []).append(it)
        for k, group in groups.items():
            session = self.sessions.get(k)
            if session is not None:
                session.ack(group)

    def publish(self, topic: str, payload: bytes, qos: int = 1) -> None:
        """A command to a charger, through the session of its partition (any open one
        for a topic without a charger)."""
        charger = charger_of(topic)
        k = partition_of(charger, self.count) if charger else None
        session = self.sessions.get(k) if k is not None else None
        if session is None and self.sessions:
            session = next(iter(self.sessions.values()))
        if session is not None:
            session.publish(topic, payload, qos=qos)
