"""The cost of keeping the liveness detectors' learned intervals (DetectorSet.snapshot,
collector/liveness_store.py): what the collector's periodic state save adds.

    PYTHONPATH=. python bench/bench_liveness_state.py [--chargers 10000] [--repeat 5]

Every charger (two connectors) speaks OCPP, was told a 60 s heartbeat and a
MeterValueSampleInterval, has five heartbeat gaps and five meter gaps in a
session learned: the largest state a charger has. Prints JSON: the snapshot's
size, and by CPU time (medians over ``--repeat``; min and max in ``spread``)
the snapshot, its encoding, the ledger write (SQLite, a temporary file) and the
restore into a fresh set with a fresh index. Not a test: no timing asserts.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from chargewatch.detectors import DetectorSet
from chargewatch.model.batch import FIELD_INDEX, N_FIELDS, MeterBatch
from chargewatch.model.events import (
    Event,
    HeartbeatEvent,
    HeartbeatIntervalEvent,
    MeterIntervalEvent,
    StatusEvent,
    TransactionEvent,
)
from chargewatch.model.fleet import ChargerSpec, ConnectorIndex, Fleet
from chargewatch.storage.ledger import Ledger

T0 = 1_800_000_000.0


def _fleet(n: int) -> ConnectorIndex:
    specs = {f"CP{i:06d}": ChargerSpec(f"CP{i:06d}", site="s", connectors=2) for i in range(n)}
    return ConnectorIndex(Fleet({}, specs))


def learned(n: int) -> DetectorSet:
    index = _fleet(n)
    ds = DetectorSet(index=index)
    ev: list[Event] = []
    for i in range(n):
        c = f"CP{i:06d}"
        ev += [
            HeartbeatIntervalEvent(c, T0, T0, 60.0, "BootNotification", source="ocpp"),
            MeterIntervalEvent(c, T0, T0, "sampled", 10.0, "GetConfiguration", source="ocpp"),
            StatusEvent(c, 1, T0, T0, "Charging", source="ocpp"),
            TransactionEvent(c, 1, T0, T0, "start", f"tx{i}", source="ocpp"),
        ]
        ev += [HeartbeatEvent(c, T0 + 60.0 * k, T0 + 60.0 * k, source="ocpp") for k in range(7)]
    ds.update(MeterBatch.empty(), ev, index, T0 + 1)
    rows = 7
    conn = np.repeat(np.array([index.id(f"CP{i:06d}", 1) for i in range(n)], np.int32), rows)
    ts = T0 + 10.0 * np.tile(np.arange(rows), n)
    v = np.full((conn.size, N_FIELDS), np.nan)
    v[:, FIELD_INDEX["power_w"]] = 7_000.0
    ds.update(MeterBatch(conn, ts, ts + 0.5, v), [], index, T0 + 420)
    return ds


def _cpu(run: Callable[[], object], repeat: int) -> tuple[float, dict[str, float]]:
    times = []
    for _ in range(repeat):
        t = time.process_time()
        run()
        times.append(time.process_time() - t)
    return statistics.median(times), {"min": min(times), "max": max(times)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--chargers", type=int, default=10_000)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    n, repeat = args.chargers, args.repeat
    ds = learned(n)
    snap = ds.snapshot()
    data = orjson.dumps(snap)
    out: dict[str, Any] = {
        "chargers": n,
        "connectors": 2 * n,
        "snapshot_bytes": len(data),
        "bytes_per_charger": round(len(data) / n, 1),
    }
    spread: dict[str, Any] = {}
    out["snapshot_s"], spread["snapshot_s"] = _cpu(ds.snapshot, repeat)
    out["encode_s"], spread["encode_s"] = _cpu(lambda: orjson.dumps(snap), repeat)
    with tempfile.TemporaryDirectory() as tmp, Ledger(Path(tmp) / "l.sqlite") as led:
        out["ledger_save_s"], spread["ledger_save_s"] = _cpu(
            lambda: led.save_state(snap, name="liveness"), repeat
        )

    def restore() -> None:
        DetectorSet(index=ConnectorIndex()).restore(orjson.loads(data))

    out["restore_s"], spread["restore_s"] = _cpu(restore, repeat)
    out["spread"] = spread
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
