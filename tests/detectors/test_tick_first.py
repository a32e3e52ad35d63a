"""A quiet start: the clock advances before any telemetry arrives."""

from __future__ import annotations

from chargewatch.detectors import DetectorSet
from chargewatch.model.batch import MeterBatch
from chargewatch.model.fleet import ConnectorIndex


def test_tick_before_any_update_and_with_unseen_connectors() -> None:
    index = ConnectorIndex()
    ds = DetectorSet(index=index)
    ds.tick(1_795_000_000.0)
    index.id("A", 1)  # known from an event only
    ds.tick(1_795_000_001.0)
    ds.on_batch(MeterBatch.empty(), [], 1_795_000_002.0)
    assert not ds.open_findings()
