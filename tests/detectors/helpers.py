"""Synthetic streams for detector unit tests (numpy only, no simulator)."""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import numpy as np

from chargewatch.detectors import DetectorSet, Finding
from chargewatch.model.batch import FIELD_INDEX, N_FIELDS, MeterBatch
from chargewatch.model.events import Event, StatusEvent, TransactionEvent
from chargewatch.model.fleet import ChargerSpec, ConnectorIndex, Fleet

T0 = 1_800_000_000.0
DT = 10.0


def fleet(n: int = 2, *, phases: int = 3, max_power_w: float = 22_000.0) -> ConnectorIndex:
    specs = {
        f"CP{i}": ChargerSpec(
            f"CP{i}",
            site="s",
            max_power_w=max_power_w,
            phases=phases,
            nominal_voltage_v=230.0 if phases else 400.0,
        )
        for i in range(n)
    }
    return ConnectorIndex(Fleet({}, specs))


def charging(n: int, *, power: float = 11_000.0, conn: int = 0, t0: float = T0) -> MeterBatch:
    """A healthy 3-phase AC session, 16 A per phase, sampled every DT seconds."""
    ts = t0 + np.arange(n) * DT
    v = np.full((n, N_FIELDS), np.nan)
    v[:, FIELD_INDEX["power_w"]] = power
    v[:, FIELD_INDEX["energy_wh"]] = 10_000 + np.cumsum(np.full(n, power * DT / 3600))
    v[:, 2:5] = power / (3 * 230.0)
    v[:, 5:8] = 230.0
    v[:, FIELD_INDEX["temperature_c"]] = 35.0
    v[:, FIELD_INDEX["offered_a"]] = 32.0
    return MeterBatch(np.full(n, conn, np.int32), ts, ts + 0.5, v)


def session_start(index: ConnectorIndex, conn: int = 0, t: float = T0 - 5) -> list[Event]:
    ch, k = index.keys[conn]
    return [
        StatusEvent(ch, k, t, t, "Preparing"),
        TransactionEvent(ch, k, t + 1, t + 1, "start", f"tx{conn}"),
        StatusEvent(ch, k, t + 2, t + 2, "Charging"),
    ]


def run(
    batch: MeterBatch,
    events: Sequence[Event],
    index: ConnectorIndex,
    *,
    cuts: int = 1,
    faults: Sequence[str] | None = None,
    now: float | None = None,
) -> DetectorSet:
    """Feed rows and events in ``cuts`` receive-time slices; ``now`` = slice end."""
    ds = DetectorSet(faults=faults) if faults else DetectorSet()
    times = [*batch.recv.tolist(), *(e.recv for e in events)] or [T0]
    lo, hi = min(times), max(times)
    edges = np.linspace(lo - 1, hi + 1e-6, cuts + 1)
    for a, b in itertools.pairwise(edges):
        rows = np.flatnonzero((batch.recv > a) & (batch.recv <= b))
        evs = [e for e in events if a < e.recv <= b]
        ds.update(batch.take(rows), evs, index, float(b))
    if now is not None:
        ds.tick(now)
    return ds


def of(ds: DetectorSet, fault: str) -> list[Finding]:
    return [f for f in ds.findings if f.fault == fault]
