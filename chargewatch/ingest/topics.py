"""Topic parsing for the native (``ev/...``) and OCPP (``ocpp/...``) telemetry trees.

Topics repeat endlessly (one per connector and kind), so parsed topics of the
high-rate kinds are cached: routing such a message costs one dict lookup.
"""

from __future__ import annotations

__all__ = [
    "NATIVE_SUBSCRIPTIONS",
    "OCPP_SUBSCRIPTIONS",
    "OCPP_VERSIONS",
    "Route",
    "TopicRouter",
    "command_topic",
]

from dataclasses import dataclass, replace
from typing import Literal

from chargewatch.core.errors import DecodeError
from chargewatch.model.ids import is_charger_id
from chargewatch.model.topics import command_topic

NATIVE_SUBSCRIPTIONS = (
    "ev/+/+/meter",
    "ev/+/+/status",
    "ev/+/+/transaction",
    "ev/+/heartbeat",
    "ev/+/online",
)
OCPP_SUBSCRIPTIONS = ("ocpp/+/+/cp", "ocpp/+/+/csms")
OCPP_VERSIONS = ("1.6", "2.0.1")

Kind = Literal["meter", "status", "transaction", "heartbeat", "online", "ocpp"]

_MAX_CONNECTOR = 64
# Status and transaction messages come once per change, not per sample: parsing
# them again costs ~2 us each, while caching them would keep two of every
# connector's three topics (~150 B each: topic, Route, dict slot) for good.
_UNCACHED = frozenset({"status", "transaction"})


@dataclass(frozen=True, slots=True)
class Route:
    kind: Kind
    charger: str
    connector: int = 0  # 0 = the charger as a whole
    version: str = ""  # OCPP version
    source: str = ""  # OCPP: "cp" or "csms"


class TopicRouter:
    """Parses topics into :class:`Route`, caching the high-rate kinds and invalid topics."""

    def __init__(self, max_cache: int = 200_000) -> None:
        self._cache: dict[str, Route | DecodeError] = {}
        self._max_cache = max_cache
        # One string per charger id, shared by the routes of all its topics
        # (a charger has ~6: meter, status, transaction per connector, heartbeat,
        # online), instead of one copy each split off the topic.
        self._chargers: dict[str, str] = {}

    def route(self, topic: str) -> Route:
        hit = self._cache.get(topic)
        if hit is None:
            hit = self._parse(topic)
            if isinstance(hit, Route):
                # Sessions, fleet state and detectors keep the charger id of
                # status and transaction events: the shared string, too.
                hit = self._shared(hit)
                if hit.kind in _UNCACHED:
                    return hit
            if len(self._cache) >= self._max_cache:
                # Unknown-topic spam must not grow memory without bound.
                self._cache.clear()
            self._cache[topic] = hit
        if isinstance(hit, DecodeError):
            raise hit
        return hit

    def _shared(self, r: Route) -> Route:
        if len(self._chargers) >= self._max_cache:
            self._chargers.clear()  # charger-id spam: bounded like the cache
        charger = self._chargers.setdefault(r.charger, r.charger)
        return r if charger is r.charger else replace(r, charger=charger)

    @staticmethod
    def _parse(topic: str) -> Route | DecodeError:
        parts = topic.split("/")
        if parts[0] == "ev":
            if len(parts) == 4 and parts[3] in ("meter", "status", "transaction"):
                charger, conn_s, kind = parts[1], parts[2], parts[3]
                if not is_charger_id(charger):
                    return DecodeError("bad_charger_id", f"charger id {charger!r}", topic=topic)
                conn = _connector(conn_s)
                if conn is None:
                    return DecodeError(
                        "bad_connector_id",
                        f"connector {conn_s!r} is not an integer 0..{_MAX_CONNECTOR}",
                        topic=topic,
                    )
                return Route(kind, charger, conn)  # type: ignore[arg-type]
            if len(parts) == 3 and parts[2] in ("heartbeat", "online"):
                if not is_charger_id(parts[1]):
                    return DecodeError("bad_charger_id", f"charger id {parts[1]!r}", topic=topic)
                return Route(parts[2], parts[1])  # type: ignore[arg-type]
        elif parts[0] == "ocpp" and len(parts) == 4 and parts[3] in ("cp", "csms"):
            version, charger = parts[1], parts[2]
            if version not in OCPP_VERSIONS:
                return DecodeError(
                    "unknown_ocpp_version",
                    f"version {version!r}; expected 1.6 or 2.0.1",
                    topic=topic,
                )
            if not is_charger_id(charger):
                return DecodeError("bad_charger_id", f"charger id {charger!r}", topic=topic)
            return Route("ocpp", charger, 0, version, parts[3])
        return DecodeError("unknown_topic", "not a chargewatch telemetry topic", topic=topic)


def _connector(text: str) -> int | None:
    """The connector id of a topic level, or None unless it is ASCII digits worth 0..64.

    ``str.isdigit`` and ``int`` also take other scripts' digits (``"\u0663"`` is 3)
    and ``isdigit`` takes superscripts ``int`` refuses (``"\u00b2"``); ``int``
    also refuses more than 4300 digits, even zeros: none of these may reach it.
    """
    if not (text.isascii() and text.isdigit()):
        return None
    significant = text.lstrip("0")
    if len(significant) > 2:
        return None
    conn = int(significant or "0")
    return conn if conn <= _MAX_CONNECTOR else None
