"""Which chargers one collector owns, when several share a fleet (docs/scaling.md).

Two ways to cut the fleet, both static (set in the config, changed by restarting):

* ``chargers``: a list of charger ids or glob patterns (``CP-00*``). Exact ids
  become per-charger subscriptions (``ev/<id>/+/meter``, ``ocpp/+/<id>/cp``,
  ...), so the broker sends this collector only its own chargers. MQTT
  wildcards cover whole topic levels (``+``) and cannot express ``CP-00*``, so
  a pattern makes the collector subscribe to everything and filter here.
* ``index``/``count``: charger ``c`` belongs to partition
  ``crc32(c) % count``. CRC-32 is stable across processes and hosts (Python's
  ``hash()`` of a str is salted per process). The broker cannot hash, so each
  collector receives the whole stream and keeps its share: this divides the
  pipeline's work (decode, detectors, sessions, InfluxDB), not the receive
  cost.

A message for a charger this collector does not own is acknowledged and
dropped in the network thread, before it is queued, and counted in
``chargewatch_messages_skipped_total{reason="not_in_partition"}``. It is not a
rejection (``chargewatch_rejected_total``): with hash partitioning most of
what arrives is someone else's, by design.
"""

from __future__ import annotations

__all__ = ["Partition", "charger_of", "stable_hash"]

import fnmatch
import re
import zlib
from dataclasses import dataclass

# The level of the charger id in each telemetry tree (docs/architecture.md):
# ev/<chargerId>/..., ocpp/<version>/<chargerId>/<source>.
_CHARGER_LEVEL = {"ev": 1, "ocpp": 2}
_GLOB = re.compile(r"[*?\[]")


def stable_hash(charger: str) -> int:
    """CRC-32 of the charger id's UTF-8 bytes: the same in every process and release."""
    return zlib.crc32(charger.encode())


def charger_of(topic: str) -> str | None:
    """The charger id in a telemetry topic, or None for a topic without one."""
    parts = topic.split("/", 3)
    level = _CHARGER_LEVEL.get(parts[0])
    if level is None or len(parts) <= level:
        return None
    return parts[level] or None


@dataclass(frozen=True)
class Partition:
    """One collector's share of the fleet; the default owns every charger."""

    chargers: tuple[str, ...] = ()  # ids or glob patterns
    index: int = 0
    count: int = 1

    def __post_init__(self) -> None:
        if self.chargers and self.count != 1:
            raise ValueError("a partition is either a charger list or index/count, not both")
        if not 0 <= self.index < self.count:
            raise ValueError(f"partition index {self.index} is not in 0..{self.count - 1}")

    @property
    def whole(self) -> bool:
        """True when this collector owns every charger (no partitioning)."""
        return not self.chargers and self.count == 1

    @property
    def exact(self) -> bool:
        """True when the broker can do the filtering (a list of plain ids)."""
        return bool(self.chargers) and not any(_GLOB.search(c) for c in self.chargers)

    def owns(self, charger: str) -> bool:
        if self.chargers:
            return any(c == charger or fnmatch.fnmatchcase(charger, c) for c in self.chargers)
        return self.count == 1 or stable_hash(charger) % self.count == self.index

    def owns_topic(self, topic: str) -> bool:
        """Whether to process a message; topics without a charger id are processed
        (the pipeline rejects them with their reason, as without partitioning)."""
        charger = charger_of(topic)
        return charger is None or self.owns(charger)

    def subscriptions(self, base: tuple[str, ...]) -> tuple[str, ...]:
        """The topic filters to subscribe: ``base`` narrowed to each owned charger
        when the broker can do it, else ``base`` itself (filtered here instead)."""
        if not self.exact:
            return base
        out: list[str] = []
        for f in base:
            parts = f.split("/")
            level = _CHARGER_LEVEL.get(parts[0])
            if level is None or len(parts) <= level or parts[level] != "+":
                out.append(f)  # not a per-charger filter: kept, filtered here
                continue
            out.extend(
                "/".join([*parts[:level], charger, *parts[level + 1 :]])
                for charger in self.chargers
            )
        return tuple(dict.fromkeys(out))
