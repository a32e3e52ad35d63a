"""/api/v1/fleet reads one consistent moment while the pipeline adds connectors."""

from __future__ import annotations

import threading

from chargewatch.api.fleet_view import fleet_document
from chargewatch.collector.guarded import GuardedStage
from chargewatch.model.fleet import ConnectorIndex
from chargewatch.state.fleet_state import FleetState
from tests.collector.test_fleetstate import batch


def test_reads_during_growth_are_consistent_and_never_fail() -> None:
    index = ConnectorIndex()
    state = FleetState(index)
    lock = threading.Lock()
    stage = GuardedStage(state, lock)
    stop = threading.Event()
    added = 0

    def pipeline() -> None:
        # As the decoder does: new connectors enter the index outside the lock,
        # then their batch goes through the stage.
        nonlocal added
        while not stop.is_set() and added < 20_000:
            ids = [index.id(f"CP{added + k:05d}", 1) for k in range(50)]
            added += 50
            stage.on_batch(batch(ids, [1e9] * 50, [7e3] * 50, [1e3] * 50), [], 1e9 + 1)

    writer = threading.Thread(target=pipeline)
    writer.start()
    failures: list[BaseException] = []
    sizes = []
    try:
        for _ in range(300):
            try:
                with lock:
                    doc = fleet_document(state, index, 1e9 + 2)
            except Exception as exc:  # the bug: IndexError from mismatched lengths
                failures.append(exc)
                break
            rows = doc["connectors"]
            sizes.append(len(rows))
            assert all(r["charger"] == f"CP{i:05d}" for i, r in enumerate(rows))
            # a connector whose first batch is still on its way has no value yet
            assert all(r.get("power_w", 7e3) == 7e3 for r in rows)
    finally:
        stop.set()
        writer.join()
    assert failures == []
    assert sizes == sorted(sizes) and sizes[-1] > 0  # it grew while being read
