"""A simulated day of 1,000 chargers at 1 Hz through ``chargewatch replay``.

The simulator writes the capture (native columnar messages of 60 samples,
with every status, transaction, heartbeat and online message a real fleet
sends) and the fleet inventory; then ``chargewatch replay`` runs the whole
pipeline over it in its own process: decode, fleet state, detectors, the
default rules, sessions priced with the shipped tariffs into the ledger, and
line protocol for every sample (written to /dev/null: formatted, not stored).

Reports the replay's wall time, its speed-up over the capture's span of real
time (limit: >= 1, or a collector on one core could not keep up with this
fleet live), samples per second and the child's peak RSS. Each simulated
charger has one or two connectors, each sampled at 1 Hz, so a day holds
somewhat more than 1,000 x 86,400 samples; the count is reported.

    PYTHONPATH=. python -m bench.bench_replay [--chargers 1000] [--hours 24] [--keep DIR]

The capture of a full day is ~9 GB: it goes to a temporary directory on the
same disk unless --keep names one (and is reused from there when present).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from chargewatch.cli.demo import fleet_yaml, with_shipped_tariffs
from chargewatch.core.resources import default_dir
from chargewatch.simulator import SimConfig, Simulation

SPEEDUP_LIMIT = 1.0


def bench_replay(chargers: int, hours: float, workdir: Path) -> dict[str, Any]:
    capture = workdir / f"capture-{chargers}x{hours:g}h.jsonl"
    fleet = workdir / f"fleet-{chargers}.yaml"
    cfg = SimConfig(
        chargers=chargers,
        sites=max(1, chargers // 20),
        seed=1,
        start=1_795_392_000.0,  # a midnight, so the day is a whole day
        duration=hours * 3600.0,
        interval=1.0,
        batch=60,
        random_faults=chargers // 50,
    )
    sim = Simulation(cfg)
    out: dict[str, Any] = {"chargers": chargers, "hours": hours}
    out["connectors"] = len(sim.plan.conns)
    if not capture.exists():
        t = time.perf_counter()
        sim.write_capture(capture)
        out["capture_write_s"] = round(time.perf_counter() - t, 1)
    # The demo's inventory: every site with one of the shipped tariffs, so
    # every session is priced into a CDR as in production.
    fleet.write_text(fleet_yaml(with_shipped_tariffs(sim.fleet())))
    out["capture_gb"] = round(capture.stat().st_size / 1e9, 2)
    result_dir = workdir / "replay-out"
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    proc = subprocess.run(
        [
            sys.executable, "-m", "chargewatch", "replay", str(capture),
            "--out", str(result_dir), "--fleet", str(fleet),
            "--tariffs", str(default_dir("tariffs")), "--lines", os.devnull,
        ],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    wall = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    summary = json.loads(proc.stdout)
    samples = summary["samples"]
    speedup = summary["capture_seconds"] / wall
    sessions = sum(1 for _ in (result_dir / "sessions.jsonl").open())
    cdrs = sum(1 for _ in (result_dir / "cdrs.jsonl").open())
    alerts = sum(1 for _ in (result_dir / "alerts.jsonl").open())
    out.update(
        {
            "messages": summary["messages"],
            "samples": samples,
            "rejected": summary["rejected"],
            "sessions": sessions,
            "cdrs": cdrs,
            "alert_transitions": alerts,
            "capture_span_s": summary["capture_seconds"],
            "replay_wall_s": round(wall, 1),
            "replay_cpu_s": round(
                (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime), 1
            ),
            "samples_per_s": round(samples / wall),
            "speedup_over_real_time": round(speedup, 1),
            "peak_rss_mb": round(after.ru_maxrss / 1024),
            "limit_speedup": SPEEDUP_LIMIT,
            "pass": speedup >= SPEEDUP_LIMIT,
        }
    )
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--chargers", type=int, default=1000)
    ap.add_argument("--hours", type=float, default=24.0)
    ap.add_argument("--keep", type=Path, help="keep (and reuse) the capture in this directory")
    args = ap.parse_args()
    if args.keep:
        args.keep.mkdir(parents=True, exist_ok=True)
        report = bench_replay(args.chargers, args.hours, args.keep)
    else:
        with tempfile.TemporaryDirectory(dir=os.environ.get("TMPDIR", "/var/tmp")) as tmp:
            report = bench_replay(args.chargers, args.hours, Path(tmp))
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
