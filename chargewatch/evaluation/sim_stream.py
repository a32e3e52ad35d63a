"""A simulator run decoded once by the collector pipeline, kept as one stream.

Tests that cut the same stream in different places (batch invariance, tick
caching) need the decoded rows and events themselves, not a live pipeline: this
holds them in receive order and cuts them on the receive clock.
"""

from __future__ import annotations

__all__ = ["SimStream", "decode_simulation"]

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from chargewatch.collector.pipeline import Pipeline
from chargewatch.ingest.decode_ocpp import OcppDecoder
from chargewatch.model.batch import MeterBatch
from chargewatch.model.events import Event
from chargewatch.model.fleet import ConnectorIndex
from chargewatch.simulator import Simulation


@dataclass(frozen=True)
class SimStream:
    index: ConnectorIndex
    batch: MeterBatch  # every decoded row, in receive order
    events: list[Event]  # every decoded event, in receive order
    start: float
    end: float
    sample_s: float

    def batches(self, every_s: float) -> list[tuple[float, MeterBatch, list[Event]]]:
        """(now, rows, events) cut on the receive clock every ``every_s`` seconds."""
        edges = np.arange(self.start, self.end + every_s, every_s)
        return self.cut(edges)

    def cut(self, edges: NDArray[np.float64]) -> list[tuple[float, MeterBatch, list[Event]]]:
        """(edge, rows, events) received in (edges[k-1], edges[k]], for each k >= 1."""
        rb = np.searchsorted(self.batch.recv, edges, side="right")
        er = np.searchsorted(np.array([e.recv for e in self.events]), edges, side="right")
        return [
            (
                float(edges[k]),
                self.batch.take(slice(rb[k - 1], rb[k])),
                self.events[er[k - 1] : er[k]],
            )
            for k in range(1, edges.shape[0])
        ]


class _Recorder:
    """A pipeline stage that keeps what the decoders produced."""

    def __init__(self) -> None:
        self.batches: list[MeterBatch] = []
        self.events: list[Event] = []

    def on_batch(self, batch: MeterBatch, events: list[Event], now: float) -> None:
        self.batches.append(batch)
        self.events.extend(events)

    def tick(self, now: float) -> None:
        pass


def decode_simulation(sim: Simulation, chunk_s: float = 30.0) -> SimStream:
    """Decode ``sim``'s MQTT messages as live and replay do (native or OCPP)."""
    index = ConnectorIndex(sim.fleet())
    rec = _Recorder()
    ocpp = OcppDecoder(index) if sim.config.protocol == "ocpp1.6" else None
    pipe = Pipeline(index, stages=[rec], ocpp=ocpp)
    chunk: list[tuple[str, bytes, float]] = []
    edge = sim.config.start + chunk_s
    for recv, topic, payload in sim.messages():
        while recv >= edge:
            pipe.process(chunk, edge)
            chunk, edge = [], edge + chunk_s
        chunk.append((topic, payload, recv))
    pipe.process(chunk, edge)
    whole = MeterBatch.concat(rec.batches)
    # A chunk's rows come out grouped by message kind: sort so cuts are by time.
    rows = whole.take(np.argsort(whole.recv, kind="stable"))
    events = sorted(rec.events, key=lambda e: e.recv)
    return SimStream(index, rows, events, sim.config.start, sim.config.end, sim.config.interval)
