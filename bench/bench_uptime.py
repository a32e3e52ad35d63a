"""Uptime over a year from the ledger's status history; prints JSON.

``--ports`` ports (chargers of two connectors) each fault ``--faults`` times a
month for a year (Faulted, then Available an hour later: two status rows each).
Measured: writing the history in batches of 100 changes (what the collector does
per batch with status changes), and ``uptime_gauges`` (the collector's gauges:
load a year of history and alerts, 30-day and 12-month μ per site) over it.

    PYTHONPATH=. python bench/bench_uptime.py [--ports 2000] [--faults 2]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from chargewatch.storage.ledger import Ledger
from chargewatch.storage.uptime_source import uptime_gauges

YEAR_START = 1_704_067_200.0  # 2024-01-01 UTC
YEAR_S = 366 * 86_400.0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--ports", type=int, default=2000)
    ap.add_argument("--faults", type=int, default=2, help="per port and month")
    args = ap.parse_args()
    rng = np.random.default_rng(1)
    rows = []
    for p in range(args.ports):
        charger, connector = f"C{p // 2:05d}", p % 2 + 1
        for at in np.sort(rng.uniform(YEAR_START, YEAR_START + YEAR_S, args.faults * 12)):
            rows.append([charger, connector, "Faulted", "GroundFailure", float(at)])
            rows.append([charger, connector, "Available", "NoError", float(at) + 3600.0])
    rows.sort(key=lambda r: r[4])
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "ledger.sqlite"
        with Ledger(path) as ledger:
            t0 = time.perf_counter()
            for i in range(0, len(rows), 100):
                ledger.write_port_status(rows[i : i + 100], now=0.0)
            write_s = time.perf_counter() - t0
        size = path.stat().st_size
        with Ledger(path, read_only=True) as ledger:
            t0 = time.perf_counter()
            g = uptime_gauges(ledger, YEAR_START + YEAR_S, None)
            gauges_s = time.perf_counter() - t0
    print(
        json.dumps(
            {
                "ports": args.ports,
                "status_rows": len(rows),
                "write_rows_per_s": round(len(rows) / write_s),
                "write_ms_per_100_changes": round(write_s / (len(rows) / 100) * 1000, 3),
                "ledger_bytes_per_row": round(size / len(rows), 1),
                "uptime_gauges_s": round(gauges_s, 2),
                "fleet_12m_pct": round(g["12m"][""], 4),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
