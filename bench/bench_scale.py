"""Cost growth and memory of the collector at 1k, 10k and 100k connectors.

For each fleet size, in a fresh process (so memory is the collector's alone):

* the service as ``chargewatch run`` builds it (every stage, line protocol to a
  file, the ledger), fed in-process with native columnar messages: every
  connector opens a session, then sends 1 Hz samples, 10 to a message, for
  ``--seconds``;
* CPU time per sample through the whole path in steady state, and per stage
  (decode and line protocol, fleet state, rollups, detectors, rules,
  sessions); the first FIRST_CONTACT_S seconds, when every session meets its
  first samples (a one-off per session, paid at startup when all connectors
  start at once, as here), are timed apart and reported per connector;
* memory per connector (target <= 4 KB at 100,000 connectors), in a separate
  ``--traced`` process: the live heap tracemalloc counts (numpy arrays
  included) once the run is over and its inputs are dropped: the collector's
  state, which is the figure (at 100k it takes ~10 minutes). The timing run
  reports beside it the resident memory added, which also holds allocator
  slack left by the transient per-batch arrays, before and after
  ``malloc_trim`` (glibc's mallinfo is no shortcut: Python's small objects
  live in pymalloc arenas it does not count);
* one evaluation of the default rules over the fleet (ms);
* what persisting a batch's status change costs before its ack (a journal
  line, O(changes)) beside the whole-state snapshot written every 10 s.

Linear cost shows as flat per-sample and per-connector figures across sizes.

    PYTHONPATH=. python -m bench.bench_scale [--connectors 1000,10000,100000] [--seconds 60]

Prints one JSON document.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import gc
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from chargewatch.collector.pipeline import Stage
from chargewatch.collector.service import Collector
from chargewatch.config.settings import AlertingConfig, Config, HttpConfig
from chargewatch.model.batch import MeterBatch
from chargewatch.model.events import Event
from chargewatch.model.fleet import ChargerSpec, Fleet

MEMORY_LIMIT_BYTES = 4096
PER_MESSAGE = 10
# The first seconds of samples, when every connector's session meets its first
# samples (spacing unknown, tracks empty: the session engine's general path).
# Timed apart from the steady state that follows: at 1k connectors they are
# ~11 us a sample against ~2 after, so mixing them made the per-sample figure
# depend on how long the run was (3.8 us over 60 s, 2.7 over 1200 s).
FIRST_CONTACT_S = 20
CHUNK_MESSAGES = 5000


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _trimmed_rss() -> int:
    """RSS after asking glibc to return free heap memory (unchanged elsewhere)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    return rss_bytes()


class Timed:
    """A stage wrapper that adds up the CPU time its stage takes."""

    def __init__(self, inner: Stage) -> None:
        self.inner = inner
        self.seconds = 0.0

    def on_batch(self, batch: MeterBatch, events: list[Event], now: float) -> None:
        t = time.process_time()
        self.inner.on_batch(batch, events, now)
        self.seconds += time.process_time() - t

    def tick(self, now: float) -> None:
        t = time.process_time()
        self.inner.tick(now)
        self.seconds += time.process_time() - t


def _fleet(n_chargers: int) -> Fleet:
    kinds = ((22_000.0, 3, 230.0), (11_000.0, 3, 230.0), (7_400.0, 1, 230.0), (150_000.0, 0, 400.0))
    specs = {}
    sites = [f"s{k}" for k in range(200)]  # 200 site names, as a fleet.yaml has
    for i in range(n_chargers):
        p, ph, v = kinds[i % 4]
        cid = f"CP{i:06d}"
        specs[cid] = ChargerSpec(
            cid, site=sites[i % 200], connectors=2, max_power_w=p, phases=ph, nominal_voltage_v=v
        )
    return Fleet({}, specs)


def _opening(n_chargers: int, t0: float) -> list[tuple[str, bytes, float]]:
    out = []
    for i in range(n_chargers):
        for c in (1, 2):
            base = f"ev/CP{i:06d}/{c}"
            out.append((f"{base}/status", orjson.dumps({"ts": t0, "status": "Preparing"}), t0))
            out.append((
                f"{base}/transaction",
                orjson.dumps({"ts": t0 + 1, "event": "start", "transaction_id": f"{i}-{c}",
                              "meter_wh": 1000.0 * i}),
                t0 + 1,
            ))  # fmt: skip
            out.append(
                (f"{base}/status", orjson.dumps({"ts": t0 + 2, "status": "Charging"}), t0 + 2)
            )
    return out


def _meter_messages(
    n_chargers: int, k0: int, rng: np.random.Generator, t0: float
) -> list[tuple[str, bytes, float]]:
    """PER_MESSAGE seconds of samples for every connector, starting at t0 + k0."""
    n = n_chargers * 2
    ts = t0 + k0 + np.arange(PER_MESSAGE, dtype=float)
    power = rng.uniform(6000, 7400, (n, PER_MESSAGE)).round(1)
    energy = (1000.0 * (np.arange(n) // 2))[:, None] + (k0 + np.arange(PER_MESSAGE)) * 2.0
    amps = (power / 690.0).round(2)
    volts = rng.normal(230, 1.5, (n, PER_MESSAGE, 3)).round(1)
    out = []
    ts_list = ts.tolist()
    for j in range(n):
        doc = {
            "ts": ts_list,
            "energy_wh": energy[j].tolist(),
            "power_w": power[j].tolist(),
            "current_a": np.repeat(amps[j][:, None], 3, axis=1).tolist(),
            "voltage_v": volts[j].tolist(),
            "temperature_c": [35.0] * PER_MESSAGE,
        }
        out.append((f"ev/CP{j // 2:06d}/{j % 2 + 1}/meter", orjson.dumps(doc), ts_list[-1] + 0.2))
    return out


def measure(
    connectors: int, seconds: int, *, warm: bool = True, traced: bool = False
) -> dict[str, Any]:
    """One fleet size, in this process. ``traced``: count the live heap with
    tracemalloc (numpy arrays included) instead of timing."""
    if warm:
        # Load every module and cache the whole path uses (numpy, scipy, rules,
        # tariffs), so the memory figure below is the fleet's state alone.
        measure(4, PER_MESSAGE * 2, warm=False)
    n_chargers = connectors // 2
    t0 = time.time() - seconds - 10
    gc.collect()
    if traced:
        tracemalloc.start()
    rss0 = rss_bytes()
    with tempfile.TemporaryDirectory() as tmp:
        cfg = Config(
            data_dir=Path(tmp),
            influx_file=Path(tmp) / "meter.lp",
            http=HttpConfig(listen=""),
            alerting=AlertingConfig(log=False),
        )
        c = Collector(cfg, fleet=_fleet(n_chargers))
        pipe = c.pipeline
        timed = [Timed(s) for s in pipe.stages]
        pipe.stages = list(timed)
        rng = np.random.default_rng(4)
        opening = _opening(n_chargers, t0)
        for i in range(0, len(opening), CHUNK_MESSAGES):
            chunk = opening[i : i + CHUNK_MESSAGES]
            pipe.process(chunk, chunk[-1][2])
        samples0 = pipe.stats.samples
        cpu = first_cpu = 0.0
        first_samples = 0
        last_tick = t0
        for k0 in range(0, seconds, PER_MESSAGE):
            if k0 == FIRST_CONTACT_S:
                # Every session has had its first samples: from here on, steady state.
                first_cpu, cpu = cpu, 0.0
                first_samples = pipe.stats.samples - samples0
                samples0 = pipe.stats.samples
                for s in timed:
                    s.seconds = 0.0
            msgs = _meter_messages(n_chargers, k0, rng, t0)
            t = time.process_time()
            for i in range(0, len(msgs), CHUNK_MESSAGES):
                chunk = msgs[i : i + CHUNK_MESSAGES]
                now = chunk[-1][2]
                pipe.process(chunk, now)
                if now - last_tick >= 1.0:
                    pipe.tick(now)
                    last_tick = now
            cpu += time.process_time() - t
            del msgs, chunk  # transient input: not the collector's state
        samples = pipe.stats.samples - samples0
        stage_s = {type(s.inner).__name__: s.seconds for s in timed}
        stage_total = sum(stage_s.values())
        del opening
        c.sessions.close(last_tick)
        c.detector_stage.flush(last_tick)
        gc.collect()
        rss1 = rss_bytes()
        rss_trimmed = _trimmed_rss()
        # The live heap once the run's inputs are gone: what the collector keeps.
        heap = tracemalloc.get_traced_memory()[0] if traced else 0
        if traced:
            tracemalloc.stop()
        open_sessions = len(c.sessions.engine.open_sessions())
        # One evaluation of the default rules over the whole fleet, as a tick does.
        later = last_tick + 3600.0  # every group due
        c.detector_stage.flush(last_tick)
        frame_t = time.perf_counter()
        frame = c.state.frame(later)
        for provide in c.alerts.providers:
            frame.update(provide(later))
        eval_t = time.perf_counter()
        c.alert_engine.evaluate(later, frame)
        rule_ms = (time.perf_counter() - eval_t) * 1000
        frame_ms = (eval_t - frame_t) * 1000
        # What a batch with a status change costs to persist before its ack
        # (the journal line), and the whole-state snapshot written every 10 s.
        # (The bench feeds the pipeline directly, so what the opening changed is
        # still unsaved: a snapshot first, as the live loop's 10 s save would.)
        c.fleet_store.save()
        flip = [(f"ev/CP{0:06d}/1/status", orjson.dumps({"ts": later, "status": "Faulted"}), later)]
        pipe.process(flip, later)
        persist_t = time.perf_counter()
        c.fleet_store.journal()
        journal_ms = (time.perf_counter() - persist_t) * 1000
        persist_t = time.perf_counter()
        c.fleet_store.save()
        snapshot_ms = (time.perf_counter() - persist_t) * 1000
        if c.linefile is not None:
            c.linefile.stop()
        c.ledger.close()
    per_sample = {
        "decode_and_line_protocol": (cpu - stage_total) / samples * 1e6,
        **{name: s / samples * 1e6 for name, s in stage_s.items()},
    }
    if traced:
        return {
            "connectors": connectors,
            "heap_bytes": heap,
            "heap_bytes_per_connector": round(heap / connectors),
            # (RSS here includes tracemalloc's own records: the untraced run's is the figure.)
            "rss_added_bytes_traced": rss1 - rss0,
        }
    return {
        "connectors": connectors,
        "samples": samples,
        "open_sessions": open_sessions,
        "cpu_us_per_sample": round(cpu / samples * 1e6, 3),
        "samples_per_cpu_s": round(samples / cpu),
        # (None in a run too short to reach the steady state.)
        "first_contact_cpu_us_per_sample": round(first_cpu / first_samples * 1e6, 3)
        if first_samples
        else None,
        "first_contact_cpu_us_per_connector": round(first_cpu / connectors * 1e6, 1)
        if first_samples
        else None,
        "cpu_us_per_sample_by_stage": {k: round(v, 3) for k, v in per_sample.items()},
        "status_change_persist_ms": round(journal_ms, 3),
        "fleet_snapshot_ms": round(snapshot_ms, 1),
        "rule_frame_ms": round(frame_ms, 1),
        "rule_evaluation_ms": round(rule_ms, 1),
        "rss_added_bytes": rss1 - rss0,
        "bytes_per_connector": round((rss1 - rss0) / connectors),
        # After glibc's malloc_trim: the free heap pages handed back. What is left
        # is live data plus fragmentation; the difference is the slack that
        # transient per-batch arrays leave in the allocator.
        "bytes_per_connector_after_malloc_trim": round((rss_trimmed - rss0) / connectors),
        "max_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
    }


def _child(*args: str) -> dict[str, Any]:
    proc = subprocess.run(
        [sys.executable, "-m", "bench.bench_scale", *args],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONPATH": os.getcwd()},
    )
    doc: dict[str, Any] = json.loads(proc.stdout)
    return doc


def run(sizes: list[int], seconds: int, memory_seconds: int) -> dict[str, Any]:
    """Each size in its own processes (timing, then the traced heap); then growth."""
    results = []
    for n in sizes:
        r = _child("--one", str(n), "--seconds", str(seconds))
        mem = _child("--one", str(n), "--seconds", str(memory_seconds), "--traced")
        r["heap_bytes_per_connector"] = mem["heap_bytes_per_connector"]
        results.append(r)
    first, last = results[0], results[-1]
    span = last["connectors"] - first["connectors"]
    out: dict[str, Any] = {
        "seconds_of_data": seconds,
        "sizes": results,
        "growth": {
            "cpu_us_per_sample": [r["cpu_us_per_sample"] for r in results],
            "first_contact_cpu_us_per_connector": [
                r["first_contact_cpu_us_per_connector"] for r in results
            ],
            "cpu_per_sample_largest_over_smallest": round(
                last["cpu_us_per_sample"] / first["cpu_us_per_sample"], 2
            ),
            "rule_evaluation_ms_per_1k_connectors": [
                round(r["rule_evaluation_ms"] / r["connectors"] * 1000, 2) for r in results
            ],
            "heap_bytes_per_connector": [r["heap_bytes_per_connector"] for r in results],
            "status_change_persist_ms": [r["status_change_persist_ms"] for r in results],
            "fleet_snapshot_ms": [r["fleet_snapshot_ms"] for r in results],
            "marginal_rss_bytes_per_connector": round(
                (last["rss_added_bytes"] - first["rss_added_bytes"]) / span
            )
            if span
            else None,
        },
        "memory_limit_bytes_per_connector": MEMORY_LIMIT_BYTES,
    }
    out["memory_pass"] = last["heap_bytes_per_connector"] <= MEMORY_LIMIT_BYTES
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--connectors", default="1000,10000,100000")
    ap.add_argument("--seconds", type=int, default=120)
    ap.add_argument("--memory-seconds", type=int, default=30)
    ap.add_argument("--one", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--traced", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        print(json.dumps(measure(args.one, args.seconds, traced=args.traced)))
        return
    sizes = [int(x) for x in args.connectors.split(",")]
    print(json.dumps(run(sizes, args.seconds, args.memory_seconds), indent=2))


if __name__ == "__main__":
    main()
