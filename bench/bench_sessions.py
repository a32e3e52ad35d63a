"""Session engine throughput on high-rate native telemetry; prints JSON.

N connectors each send one sample a second (register and power); the pipeline
hands the engine one batch per ``--batch-s`` seconds, all connectors mixed and
shuffled. Every connector charges in one transaction for the whole run.

    PYTHONPATH=. python bench/bench_sessions.py [--connectors 2000] [--seconds 600]
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from chargewatch.model.batch import FIELD_INDEX, N_FIELDS, MeterBatch
from chargewatch.model.events import TransactionEvent
from chargewatch.model.fleet import ConnectorIndex
from chargewatch.sessions.session_engine import SessionEngine


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--connectors", type=int, default=2000)
    ap.add_argument("--seconds", type=int, default=600)
    ap.add_argument("--batch-s", type=float, default=5.0)
    args = ap.parse_args()
    rng = np.random.default_rng(1)
    index = ConnectorIndex()
    n = args.connectors
    ids = np.array([index.id(f"C{k // 2}", k % 2 + 1) for k in range(n)], np.int32)
    t0 = 1_700_000_000.0
    engine = SessionEngine(index)
    starts = [TransactionEvent(*index.keys[int(c)], t0, t0, "start", f"t{c}", 0.0) for c in ids]
    engine.update(MeterBatch.empty(), list(starts), t0)
    power = rng.uniform(3000, 22000, n)
    spent = 0.0
    samples = 0
    per = int(args.batch_s)
    for b in range(int(args.seconds / args.batch_s)):
        ts = t0 + 1 + b * per + np.arange(per, dtype=np.float64)
        conn = np.repeat(ids, per)
        tt = np.tile(ts, n)
        vals = np.full((conn.size, N_FIELDS), np.nan)
        vals[:, FIELD_INDEX["power_w"]] = np.repeat(power, per)
        vals[:, FIELD_INDEX["energy_wh"]] = np.repeat(power, per) * (tt - t0) / 3600.0
        perm = rng.permutation(conn.size)
        batch = MeterBatch(conn[perm], tt[perm], tt[perm] + 0.2, vals[perm])
        c0 = time.perf_counter()
        engine.update(batch, [], float(ts[-1]) + 1)
        spent += time.perf_counter() - c0
        samples += conn.size
    print(
        json.dumps(
            {
                "connectors": n,
                "samples": samples,
                "batch_rows": n * per,
                "engine_seconds": round(spent, 3),
                "samples_per_s": round(samples / spent),
                "ms_per_batch": round(1000 * spent / (args.seconds / args.batch_s), 2),
            }
        )
    )


if __name__ == "__main__":
    main()
