"""Generation speed of the fleet simulator; prints one JSON object.

    PYTHONPATH=. python bench/bench_simulator.py [--chargers 1000] [--hours 1] [--interval 1]

Measures the columnar path (``meter_batches``: numpy, no JSON), native
batched messages (JSON, ``--batch`` samples each), single-sample messages on a
slice, and capture writing, as samples per second.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time

from chargewatch.simulator import SimConfig, Simulation


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--chargers", type=int, default=1000)
    ap.add_argument("--hours", type=float, default=1.0)
    ap.add_argument("--interval", type=float, default=1.0)
    ap.add_argument("--batch", type=int, default=60)
    args = ap.parse_args()
    cfg = SimConfig(
        chargers=args.chargers,
        sites=max(1, args.chargers // 20),
        seed=1,
        start=1795392000.0 + 8 * 3600,  # a busy part of the day
        duration=args.hours * 3600.0,
        interval=args.interval,
        batch=args.batch,
        random_faults=args.chargers // 50,
    )
    out: dict[str, object] = {"chargers": args.chargers, "hours": args.hours,
                              "interval_s": args.interval}  # fmt: skip
    t = time.perf_counter()
    sim = Simulation(cfg)
    out["plan_s"] = round(time.perf_counter() - t, 3)
    out["connectors"] = len(sim.plan.conns)
    out["sessions"] = len(sim.plan.sessions)

    t = time.perf_counter()
    n = sum(len(b) for b in sim.meter_batches())
    dt = time.perf_counter() - t
    out["samples"] = n
    out["columnar_samples_per_s"] = round(n / dt)
    out["columnar_s"] = round(dt, 2)

    t = time.perf_counter()
    msgs = 0
    size = 0
    for _, _, p in sim.messages():
        msgs += 1
        size += len(p)
    dt = time.perf_counter() - t
    out[f"native_batch{args.batch}_samples_per_s"] = round(n / dt)
    out[f"native_batch{args.batch}_messages"] = msgs
    out[f"native_batch{args.batch}_mb"] = round(size / 1e6, 1)

    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "cap.jsonl")
        t = time.perf_counter()
        sim.write_capture(path)
        dt = time.perf_counter() - t
        out[f"capture_batch{args.batch}_samples_per_s"] = round(n / dt)
        out["capture_mb"] = round(os.path.getsize(path) / 1e6, 1)

    one = Simulation(cfg.replace(batch=1))
    span = min(cfg.duration, 300.0)
    t = time.perf_counter()
    k = sum(1 for _ in one.messages(cfg.start, cfg.start + span))
    dt = time.perf_counter() - t
    out["native_single_messages_per_s"] = round(k / dt)

    oc = Simulation(cfg.replace(protocol="ocpp1.6", batch=10))
    samples = sum(len(b) for b in oc.meter_batches(cfg.start, cfg.start + span))
    t = time.perf_counter()
    k = sum(1 for _ in oc.messages(cfg.start, cfg.start + span))
    dt = time.perf_counter() - t
    out["ocpp_batch10_samples_per_s"] = round(samples / dt)
    out["ocpp_batch10_frames_per_s"] = round(k / dt)

    t = time.perf_counter()
    sim.truth()
    out["truth_s"] = round(time.perf_counter() - t, 2)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
