"""Each charger's retained online flag, published the moment its socket opens or closes.

``ev/<chargerId>/online`` ``{"online": true|false}`` is what chargewatch's
native decoder reads (ingest/decode_native.py): retained, so a collector that
starts later still learns every charger's state. The flag goes through the
mirror, in order with the frames around it.
"""

from __future__ import annotations

__all__ = ["Liveness", "online_topic"]

from typing import Protocol


class _Sink(Protocol):
    def put(self, topic: str, payload: str | bytes, retain: bool = False) -> None: ...


def online_topic(charger: str) -> str:
    return f"ev/{charger}/online"


class Liveness:
    def __init__(self, sink: _Sink) -> None:
        self.sink = sink

    def online(self, charger: str) -> None:
        self.sink.put(online_topic(charger), '{"online":true}', retain=True)

    def offline(self, charger: str) -> None:
        self.sink.put(online_topic(charger), '{"online":false}', retain=True)
