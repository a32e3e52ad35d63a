"""Uptime over a year from the ledger's status history; prints JSON.

``--ports`` ports (chargers of two connectors) each fault ``--faults`` times a
month for a year (Faulted, then Available an hour later: two status rows each).
Measured: writing the history in batches of 100 changes (what the collector does
per batch with status changes), and ``uptime_gauges`` (the collector's gauges:
load a year of history and alerts, 30-day and 12-month μ per site) over it.

``--sessions N``: also N sessions a day per port (Charging for an hour: 40 min
at 11 kW, then 20 min at 0 W, a failure to deliver), and the gauges timed with
the minimum-power check on (fleet default, 100 W) and off (``min_power_w: 0``).

    PYTHONPATH=. python bench/bench_uptime.py [--ports 2000] [--faults 2] [--sessions 0]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from chargewatch.model.delivery import DeliveryPolicy
from chargewatch.model.fleet import Fleet
from chargewatch.reports.dataset_ledger import record_from_dict
from chargewatch.storage.ledger import Ledger
from chargewatch.storage.uptime_source import uptime_gauges

YEAR_START = 1_704_067_200.0  # 2024-01-01 UTC
YEAR_S = 366 * 86_400.0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--ports", type=int, default=2000)
    ap.add_argument("--faults", type=int, default=2, help="per port and month")
    ap.add_argument("--sessions", type=int, default=0, help="per port and day")
    args = ap.parse_args()
    if args.sessions:
        print(json.dumps(_delivery(args.ports, args.sessions), indent=2))
        return
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


def _session(charger: str, connector: int, n: int, at: float) -> dict[str, object]:
    periods = [
        {"kind": "charging", "start": at, "end": at + 2400.0, "energy_wh": 11_000 * 2400 / 3600,
         "max_power_w": 11_000.0},
        {"kind": "idle", "start": at + 2400.0, "end": at + 3600.0, "energy_wh": 0.0,
         "max_power_w": 20.0},
    ]  # fmt: skip
    return {"session_id": f"{charger}-{connector}-{n}", "charger_id": charger,
            "connector_id": connector, "site": "S1", "start": at, "stop": at + 3600.0,
            "energy_wh": periods[0]["energy_wh"], "stop_reason": "transaction",
            "periods": periods}  # fmt: skip


def _delivery(ports: int, per_day: int) -> dict[str, object]:
    sessions, status = [], []
    for p in range(ports):
        charger, connector = f"C{p // 2:05d}", p % 2 + 1
        for day in range(366):
            for k in range(per_day):
                at = YEAR_START + day * 86_400.0 + 8 * 3600.0 + k * 4 * 3600.0
                sessions.append(record_from_dict(_session(charger, connector, len(sessions), at)))
                status.append([charger, connector, "Charging", "NoError", at])
                status.append([charger, connector, "Finishing", "NoError", at + 3600.0])
    status.sort(key=lambda r: r[4])
    off = Fleet({}, {}, uptime=DeliveryPolicy(min_power_w=0.0))
    out: dict[str, object] = {"ports": ports, "sessions": len(sessions)}
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "ledger.sqlite"
        with Ledger(path) as ledger:
            for i in range(0, len(sessions), 1000):
                ledger.write(sessions[i : i + 1000], written_at=0.0)
            for i in range(0, len(status), 1000):
                ledger.write_port_status(status[i : i + 1000], now=0.0)
        with Ledger(path, read_only=True) as ledger:
            for name, fleet in (("check_on", None), ("check_off", off)):
                t0, c0 = time.perf_counter(), time.process_time()
                g = uptime_gauges(ledger, YEAR_START + YEAR_S, fleet)
                out[f"uptime_gauges_s_{name}"] = round(time.perf_counter() - t0, 2)
                # CPU seconds too: on a shared machine the wall clock mostly waits.
                out[f"uptime_gauges_cpu_s_{name}"] = round(time.process_time() - c0, 2)
                out[f"fleet_12m_pct_{name}"] = round(g["12m"][""], 4)
    return out


if __name__ == "__main__":
    main()
