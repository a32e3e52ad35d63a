"""What a decoder produces from one message: meter rows, events and rejections.

Decoders (native, OCPP) write into a :class:`DecodeSink` instead of returning
objects per message: appending to lists is the cheapest thing a hot loop can
do, and the sink is drained once per batch by the pipeline.
"""

from __future__ import annotations

__all__ = ["DecodeSink", "Rejection", "SinkMark"]

from dataclasses import dataclass, field
from typing import Any

from chargewatch.model.batch import BatchBuilder
from chargewatch.model.events import Event


@dataclass(frozen=True, slots=True)
class Rejection:
    """A message, or one sample of it, that was not used; kept for inspection.

    ``reason`` is a stable snake_case code (metric label); ``detail`` says what
    exactly was wrong; ``index`` is the sample's position in a columnar batch
    message, or the item's in a message of independent items (an OCPP
    meterValue), None when the whole message was rejected; ``value_index`` is the
    position of the one value rejected inside that item (an OCPP sampledValue),
    None when the item went whole: a per-value rejection loses nothing else.
    """

    topic: str
    reason: str
    detail: str
    payload: Any  # the decoded JSON value when it parsed, else the raw text
    recv: float
    index: int | None = None
    value_index: int | None = None


@dataclass(slots=True)
class DecodeSink:
    meter: BatchBuilder = field(default_factory=BatchBuilder)
    events: list[Event] = field(default_factory=list)
    rejects: list[Rejection] = field(default_factory=list)

    def reject(
        self,
        topic: str,
        reason: str,
        detail: str,
        payload: Any,
        recv: float,
        index: int | None = None,
        value_index: int | None = None,
    ) -> None:
        self.rejects.append(Rejection(topic, reason, detail, payload, recv, index, value_index))


class SinkMark:
    """How much a sink held; rolling back drops whatever a failed decode added.

    A decoder that raises half-way through a message must not leave that
    message's first rows behind: the message is rejected whole, so its output
    goes too.
    """

    __slots__ = ("blocks", "events", "rejects", "rows")

    def __init__(self, sink: DecodeSink) -> None:
        self.rows = len(sink.meter.conn)
        self.blocks = len(sink.meter.blocks)
        self.events = len(sink.events)
        self.rejects = len(sink.rejects)

    def rollback(self, sink: DecodeSink) -> None:
        meter = sink.meter
        for column in (meter.conn, meter.ts, meter.recv, meter.rows):
            del column[self.rows :]
        del meter.blocks[self.blocks :]
        del sink.events[self.events :]
        del sink.rejects[self.rejects :]
