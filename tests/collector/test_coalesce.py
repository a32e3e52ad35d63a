"""Stages run on coalesced batches give the results they give batch by batch."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from chargewatch.collector.coalesce import LOAD_FACTOR, MAX_WAIT_S, Coalesced, Pacer
from chargewatch.collector.pipeline import Pipeline, Stage
from chargewatch.collector.service import _ocpp_decoder
from chargewatch.collector.session_stage import SessionStage
from chargewatch.detectors import DetectorSet
from chargewatch.model.batch import MeterBatch
from chargewatch.model.fleet import ConnectorIndex
from chargewatch.sessions.session_engine import SessionEngine
from chargewatch.simulator import SimConfig, Simulation
from chargewatch.storage.ledger import Ledger, query_sessions

START = 1_795_392_000.0 + 7 * 3600


@pytest.fixture(scope="module")
def sim() -> Simulation:
    return Simulation(
        SimConfig(chargers=12, sites=2, seed=11, start=START, duration=3 * 3600.0,
                  random_faults=10, tx_update_interval=600.0)
    )  # fmt: skip


def _run(sim: Simulation, stage_for: object, chunk_s: float = 1.0) -> ConnectorIndex:
    """Feed the simulation through a pipeline in chunks of chunk_s receive time."""
    index = ConnectorIndex(sim.fleet())
    stages: list[Stage] = stage_for(index)  # type: ignore[operator]
    pipeline = Pipeline(index, ocpp=_ocpp_decoder(index), stages=stages)
    chunk: list[tuple[str, bytes, float]] = []
    last_tick = START
    for recv, topic, payload in sim.messages():
        if chunk and recv - chunk[0][2] >= chunk_s:
            pipeline.process(chunk, chunk[-1][2])
            chunk = []
        chunk.append((topic, payload, recv))
        if recv - last_tick >= 5.0:
            pipeline.tick(recv)
            last_tick = recv
    pipeline.process(chunk, chunk[-1][2])
    pipeline.tick(chunk[-1][2] + 1.0)
    return index


def test_detectors_on_coalesced_batches_find_what_they_find_batch_by_batch(
    sim: Simulation,
) -> None:
    direct = DetectorSet()
    coalesced = DetectorSet()
    wrapper: list[Coalesced] = []

    def plain(index: ConnectorIndex) -> list[Stage]:
        direct.index = index
        return [direct]

    def held(index: ConnectorIndex) -> list[Stage]:
        coalesced.index = index
        wrapper.append(Coalesced(coalesced, interval_s=20.0))
        return [wrapper[0]]

    _run(sim, plain)
    _run(sim, held)
    assert wrapper[0].pending_rows == 0  # the final tick flushed
    want = sorted((f.fault, f.connector, f.start, f.end) for f in direct.findings)
    got = sorted((f.fault, f.connector, f.start, f.end) for f in coalesced.findings)
    assert want, "the simulated faults should produce findings"
    assert got == want
    for name, col in direct.signals.items():
        assert (coalesced.signals[name] == col).all() or name.endswith("_score"), name


def test_coalesced_forwards_at_most_once_per_interval_or_when_rows_pile_up() -> None:
    calls: list[tuple[int, float]] = []

    class Probe:
        def on_batch(self, batch: MeterBatch, events: list[object], now: float) -> None:
            calls.append((len(batch), now))

        def tick(self, now: float) -> None:
            calls.append((-1, now))

    def batch(n: int) -> MeterBatch:
        return MeterBatch(
            np.zeros(n, np.int32), np.arange(n, dtype=float), np.zeros(n), np.zeros((n, 11))
        )

    c = Coalesced(Probe(), interval_s=1.0, max_rows=100)  # type: ignore[arg-type]
    c.on_batch(batch(3), [], 10.0)  # the first batch goes at once
    c.on_batch(batch(4), [], 10.4)
    c.on_batch(batch(5), [], 10.9)
    assert calls == [(3, 10.0)]
    c.on_batch(batch(6), [], 11.0)  # the interval has passed: all three together
    assert calls[-1] == (15, 11.0)
    c.on_batch(batch(150), [], 11.1)  # too many rows waiting: at once
    assert calls[-1] == (150, 11.1)
    c.on_batch(batch(2), [], 11.2)
    c.flush(11.3)  # a reader (the rules) asks for everything so far
    assert calls[-1] == (2, 11.3)
    c.on_batch(batch(1), [], 11.4)
    c.tick(11.5)
    assert calls[-2:] == [(1, 11.5), (-1, 11.5)]


def test_held_session_batches_give_the_same_sessions_and_journal_events_at_once(
    sim: Simulation, tmp_path: Path
) -> None:
    results = {}
    stages: dict[str, SessionStage] = {}
    for name, interval in (("direct", 0.0), ("held", 30.0)):
        ledger = Ledger(tmp_path / f"{name}.sqlite")

        def make(index: ConnectorIndex, ledger: Ledger = ledger, name: str = name,
                 interval: float = interval) -> list[Stage]:  # fmt: skip
            stages[name] = SessionStage(
                SessionEngine(index), ledger=ledger, flush_interval_s=interval
            )
            return [stages[name]]

        _run(sim, make)
        stages[name].close(START + 4 * 3600)
        results[name] = [
            (s["session_id"], s["stop"], s["energy_wh"], tuple(s["quality"]))
            for s in query_sessions(ledger, periods=False)
        ]
        ledger.close()
    assert results["direct"], "the simulation should produce sessions"
    assert results["held"] == results["direct"]


def test_events_held_for_the_engine_are_in_the_journal_before_the_flush(
    sim: Simulation, tmp_path: Path
) -> None:
    ledger = Ledger(tmp_path / "l.sqlite")
    index = ConnectorIndex(sim.fleet())
    stage = SessionStage(SessionEngine(index), ledger=ledger, flush_interval_s=3600.0)
    pipeline = Pipeline(index, stages=[stage])
    msgs = [(t, p, r) for r, t, p in sim.messages(START, START + 1800)]
    pipeline.process(msgs[:1], msgs[0][2])  # the first batch flushes (and checkpoints)
    pipeline.process(msgs[1:], msgs[-1][2])  # held: within the hour
    assert stage._held_rows > 0
    kinds = {k for k, _ in ledger.journal()}
    assert "TransactionEvent" in kinds or "StatusEvent" in kinds
    ledger.close()


def test_pacer_stretches_the_interval_with_the_stage_cost() -> None:
    pacer = Pacer(interval_s=0.01, max_rows=1000)
    assert pacer.due(0.0, 0)

    def busy() -> None:
        t = time.process_time()
        while time.process_time() - t < 0.03:
            pass

    pacer.run(0.0, busy)
    assert LOAD_FACTOR * 0.03 <= pacer.wait_s <= MAX_WAIT_S
    assert not pacer.due(0.05, 10)  # the configured 10 ms alone would have passed
    assert pacer.due(0.05, 1000)  # but rows piling up still go at once
    assert pacer.due(pacer.wait_s, 0)
    pacer.run(1.0, lambda: None)
    assert pacer.wait_s == 0.01  # cheap again: back to the configured interval
