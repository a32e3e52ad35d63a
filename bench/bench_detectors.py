"""Samples per second through the full DetectorSet on 10,000 connectors, against
the per-sample Python reference (bench/reference_detectors.py), in one run.

    PYTHONPATH=. python bench/bench_detectors.py [--connectors 10000] [--seconds 60]
        [--batch-seconds 10] [--reference-samples 50000] [--repeat 5] [--runs 3] [--warmup 2]
        [--numpy-hugepage default|on|off] [--allocator collector|glibc] [--vectorised-only]

Prints JSON: both rates, the ratio, and each target (>= 5 M samples/s on one
core; >= 50x the per-sample version) with pass/fail, plus the fixed cost of one
update carrying a small batch (~50 rows, as in a sparse replay) and the rate at
the batch shape a live collector feeds (``--pipeline-batch-s`` of every
connector's 1 Hz data: the detector stage's coalescing interval), and the main
shape again with each second's connectors in MQTT arrival order
(``arrival_order_samples_per_s``: the sequencer's general path, not the
tick-major one the generated, connector-ordered ticks take).

``memory`` says what the process's memory system was (the figure depends on it,
docs/performance.md "Detectors across machines"): the kernel's transparent
hugepage mode, whether numpy asks for hugepages on its large arrays
(``--numpy-hugepage``), the allocator policy (``--allocator``: the collector's
fixed mmap/trim thresholds, or glibc's defaults), ``GLIBC_TUNABLES``, and the
process's AnonHugePages (after the timed runs, and at its peak in an untimed
pass), and page faults and system CPU per run. ``--warmup`` runs (2) come
first, untimed and reported apart: a cold process's first updates fault its
heap in, at a cost set by the host rather than the detectors.
``--vectorised-only`` times the vectorised set alone (for sweeps of these
settings and of ``--batch-seconds``).

The machine is shared, so each of ``--repeat`` rounds times the vectorised set
``--runs`` times (each run a fresh DetectorSet over the whole data, ~85 ms at
10k connectors) and then the reference, back to back, by CPU time
(``time.process_time``: time the process was not running does not count; one
thread) and by wall time. A disturbance during one short run (the other
vCPU's work, the host's other guests) can cost it a third of its rate, so the
headline ``vectorised_samples_per_s`` is the median of all
``--repeat`` x ``--runs`` runs, and ``targets`` gives it beside their min and
max and the run count; the ratio is the median of the rounds' own ratios
(each round's median vectorised rate over its reference rate: a disturbance
hits both sides of one round alike); ``spread`` gives min and max.
``machine`` states the CPU model, cores, caches, load averages before and
after, and the numpy build, so that figures from two machines can be
compared; ``host_probe_runs`` times, just after each round's vectorised
runs, work that is not chargewatch's (bench/host_probe.py: memory
bandwidth, in-cache numpy, the interpreter), so that a slower figure can be
told apart as a slower host or slower code. Not a test: no timing asserts in CI.
"""

from __future__ import annotations

import os

# One core: no BLAS/OpenMP threads (set before numpy is imported).
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import importlib  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import resource  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402

from bench.host_probe import probe  # noqa: E402
from bench.reference_detectors import ReferenceDetectors  # noqa: E402
from chargewatch.collector.allocator import keep_freed_batch_memory  # noqa: E402
from chargewatch.detectors import DetectorSet  # noqa: E402
from chargewatch.detectors.sequencer import STATUS_CODE, Events, Sequencer  # noqa: E402
from chargewatch.model.batch import FIELD_INDEX, N_FIELDS, MeterBatch  # noqa: E402
from chargewatch.model.events import Event, StatusEvent, TransactionEvent  # noqa: E402
from chargewatch.model.fleet import ChargerSpec, ConnectorIndex, Fleet  # noqa: E402

T0 = 1_800_000_000.0
CHARGING = STATUS_CODE["Charging"]


def fleet(n: int) -> ConnectorIndex:
    kinds = ((22_000.0, 3, 230.0), (11_000.0, 3, 230.0), (7_400.0, 1, 230.0), (150_000.0, 0, 400.0))
    specs = {}
    for i in range(n):
        p, ph, v = kinds[i % 4]
        specs[f"CP{i:05d}"] = ChargerSpec(
            f"CP{i:05d}", site=f"s{i % 50}", max_power_w=p, phases=ph, nominal_voltage_v=v
        )
    return ConnectorIndex(Fleet({}, specs))


def telemetry(index: ConnectorIndex, seconds: int, rng: np.random.Generator) -> MeterBatch:
    """One sample per connector per second, time-major (as a collector receives them)."""
    n = len(index)
    k = np.arange(seconds)
    conn = np.tile(np.arange(n, dtype=np.int32), seconds)
    ts = T0 + np.repeat(k.astype(np.float64), n)
    recv = ts + rng.uniform(0.05, 0.5, ts.shape[0])
    p_nom = np.minimum(index.max_power_w[:n], 11_000.0)
    power = np.repeat(p_nom[None, :], seconds, axis=0) * rng.normal(1.0, 0.01, (seconds, n))
    energy = 1e6 + np.cumsum(power / 3600.0, axis=0)
    v = np.full((seconds, n, N_FIELDS), np.nan)
    v[:, :, FIELD_INDEX["energy_wh"]] = energy
    v[:, :, FIELD_INDEX["power_w"]] = power
    ph = index.phases[:n]
    nominal = index.nominal_voltage_v[:n]
    lines = np.where(ph == 0, 1, ph)
    amps = power / (lines * nominal)
    for j in range(3):
        on = (ph == 3) | (j == 0)
        v[:, :, 2 + j] = np.where(on, amps, np.nan)
        v[:, :, 5 + j] = np.where(on, nominal * rng.normal(1.0, 0.01, (seconds, n)), np.nan)
    v[:, :, FIELD_INDEX["temperature_c"]] = 35.0 + rng.normal(0, 0.3, (seconds, n))
    v[:, :, FIELD_INDEX["offered_a"]] = np.where(ph > 0, 32.0, np.nan)
    v[:, :, FIELD_INDEX["soc_pct"]] = np.where(ph == 0, 50.0, np.nan)
    return MeterBatch(conn, ts, recv, v.reshape(-1, N_FIELDS))


def arrival_order(data: MeterBatch, n: int, rng: np.random.Generator) -> MeterBatch:
    """The same samples as a collector takes them off MQTT: each second's
    connectors in a different order (messages of many chargers interleave by
    network timing), not every tick in connector order as ``telemetry`` gives."""
    ticks = len(data) // n
    perm = np.argsort(rng.random((ticks, n)), axis=1) + (np.arange(ticks) * n)[:, None]
    return data.take(perm.ravel())


def _slice(b: MeterBatch, lo: int, hi: int) -> MeterBatch:
    return MeterBatch(b.conn[lo:hi], b.ts[lo:hi], b.recv[lo:hi], b.values[lo:hi])


#: One timing: (CPU seconds, wall seconds).
Timing = tuple[float, float]


def _timed(run: Callable[[], object]) -> Timing:
    c, w = time.process_time(), time.perf_counter()
    run()
    return time.process_time() - c, time.perf_counter() - w


def _vectorised(
    data: MeterBatch, events: list[Event], index: ConnectorIndex, per: int
) -> tuple[Timing, DetectorSet]:
    """(CPU, wall) seconds for the full DetectorSet (sequencer included) over ``data``."""
    ds = DetectorSet(index=index)
    ds.update(MeterBatch.empty(), events, index, T0)

    def run() -> None:
        for c in range(0, len(data), per):
            b = _slice(data, c, c + per)
            ds.update(b, [], index, float(b.recv.max()))

    return _timed(run), ds


def _peak_hugepages(data: MeterBatch, events: list[Event], index: ConnectorIndex, per: int) -> int:
    """The largest AnonHugePages (kB) seen after any update of one untimed pass
    (reading smaps costs ~1 ms: not inside the timed runs)."""
    ds = DetectorSet(index=index)
    ds.update(MeterBatch.empty(), events, index, T0)
    peak = 0
    for c in range(0, len(data), per):
        b = _slice(data, c, c + per)
        ds.update(b, [], index, float(b.recv.max()))
        peak = max(peak, _anon_hugepages_kb() or 0)
    return peak


def _reference(data: MeterBatch, index: ConnectorIndex, m: int) -> Timing:
    """(CPU, wall) seconds for the per-sample reference over the first ``m`` rows, same order.

    Like the vectorised side, whose DetectorSet takes the sessions' start
    events before its clock starts (and sizes its state for every connector
    then), the reference takes the same events untimed: its per-connector
    state is not built inside the timed loop."""
    ref = ReferenceDetectors()
    for c in range(len(index)):
        ref.transaction_start(c, T0 - 2)
        ref.status(c, T0 - 1, CHARGING)
    rows = data.values[:m].tolist()
    conn, ts, recv = data.conn[:m].tolist(), data.ts[:m].tolist(), data.recv[:m].tolist()
    rated = index.rated_current_a.tolist()
    nominal = index.nominal_voltage_v.tolist()
    phases = index.phases.tolist()

    def run() -> None:
        for i in range(m):
            c = conn[i]
            ref.sample(c, ts[i], recv[i], rows[i], CHARGING, rated[c], nominal[c], phases[c])

    return _timed(run)


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _caches() -> dict[str, str]:
    """Cache sizes of CPU 0 as the kernel reports them (e.g. L2: 2048K)."""
    out: dict[str, str] = {}
    for d in sorted(Path("/sys/devices/system/cpu/cpu0/cache").glob("index*")):
        try:
            kind = (d / "type").read_text().strip()
            name = f"L{(d / 'level').read_text().strip()}" + ("i" if kind == "Instruction" else "")
            out[name] = (d / "size").read_text().strip()
        except OSError:
            continue
    return out


def machine() -> dict[str, Any]:
    """What the figures were measured on (the load is sampled again at the end)."""
    simd: Any = None
    try:
        cfg: Any = np.show_config(mode="dicts")
        simd = cfg.get("SIMD Extensions", {}).get("found")
    except (TypeError, AttributeError):
        pass
    return {
        "cpu_model": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "caches": _caches(),
        "loadavg_start": [round(x, 2) for x in os.getloadavg()],
        "python": platform.python_version(),
        "numpy": np.__version__,
        "numpy_simd": simd,
    }


def _thp_mode() -> str:
    """The kernel's transparent hugepage mode, e.g. "madvise" (read only)."""
    try:
        text = Path("/sys/kernel/mm/transparent_hugepage/enabled").read_text()
    except OSError:
        return "unknown"
    return next((w[1:-1] for w in text.split() if w.startswith("[")), text.strip())


def _anon_hugepages_kb() -> int | None:
    """This process's anonymous memory backed by transparent hugepages, in kB."""
    try:
        for line in Path("/proc/self/smaps_rollup").read_text().splitlines():
            if line.startswith("AnonHugePages:"):
                return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return None


def _set_numpy_hugepage(mode: str) -> bool | None:
    """Apply ``--numpy-hugepage`` (on/off; default: numpy's own choice, on for
    Linux >= 4.6) and return the setting in force (None: not available)."""
    try:
        ma = importlib.import_module("numpy._core.multiarray")  # numpy >= 2
    except ImportError:  # pragma: no cover
        return None
    setter = getattr(ma, "_set_madvise_hugepage", None)
    if setter is None:
        return None
    if mode == "default":
        was = bool(setter(True))
        setter(was)
        return was
    setter(mode == "on")
    return mode == "on"


def _spread(xs: list[float]) -> dict[str, float]:
    return {"median": statistics.median(xs), "min": min(xs), "max": max(xs)}


def _target(xs: list[float], target: float, digits: int = 0) -> dict[str, Any]:
    """A target beside the runs' median (``value``, which decides ``pass``), their
    min and max, and how many runs: ``pass_every_run`` says whether the slowest
    run met it too (one short run under disturbance may not)."""
    med = statistics.median(xs)

    def r(x: float) -> float:
        return round(x, digits) if digits else round(x)

    return {
        "target": r(target),
        "value": r(med),
        "min": r(min(xs)),
        "max": r(max(xs)),
        "runs": len(xs),
        "pass": med >= target,
        "pass_every_run": min(xs) >= target,
    }


def _small_batches(
    data: MeterBatch, events: list[Event], index: ConnectorIndex, rows: int, updates: int
) -> float:
    """Microseconds per update carrying ``rows`` rows, after every connector has
    reported once (the per-call fixed cost that dominates sparse replays)."""
    n = len(index)
    ds = DetectorSet(index=index)
    ds.update(_slice(data, 0, n), events, index, float(data.recv[n - 1]))
    lo = n
    for _ in range(20):  # warm up
        b = _slice(data, lo, lo + rows)
        lo += rows
        ds.update(b, [], index, float(b.recv.max()))
    t = time.process_time()
    for _ in range(updates):
        b = _slice(data, lo, lo + rows)
        lo += rows
        ds.update(b, [], index, float(b.recv.max()))
    return (time.process_time() - t) / updates * 1e6


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--connectors", type=int, default=10_000)
    ap.add_argument("--seconds", type=int, default=60, help="one sample per connector per second")
    ap.add_argument("--batch-seconds", type=int, default=10, help="seconds of data per update")
    ap.add_argument("--reference-samples", type=int, default=50_000)
    ap.add_argument("--small-batch-rows", type=int, default=50)
    ap.add_argument("--repeat", type=int, default=5, help="interleaved rounds (medians reported)")
    ap.add_argument(
        "--runs",
        type=int,
        default=3,
        help="vectorised runs per round: the median of them all is the figure",
    )
    ap.add_argument(
        "--numpy-hugepage",
        choices=("default", "on", "off"),
        default="default",
        help="numpy's madvise(MADV_HUGEPAGE) on its large arrays (per process)",
    )
    ap.add_argument(
        "--allocator",
        choices=("collector", "glibc"),
        default="collector",
        help="collector: the service's fixed mmap/trim thresholds; glibc: its defaults",
    )
    ap.add_argument("--vectorised-only", action="store_true", help="skip the reference")
    ap.add_argument(
        "--warmup",
        type=int,
        default=2,
        help="untimed runs first: the process's heap grows and is faulted in then",
    )
    ap.add_argument(
        "--pipeline-batch-s",
        type=float,
        default=0.5,
        help="the collector's coalescing interval: rows per update = connectors x this",
    )
    args = ap.parse_args()
    if args.allocator == "collector":
        keep_freed_batch_memory()  # the collector's allocator policy (collector/allocator.py)
    memory: dict[str, Any] = {
        "thp_mode": _thp_mode(),
        "numpy_hugepage": _set_numpy_hugepage(args.numpy_hugepage),
        "allocator": args.allocator,
        "glibc_tunables": os.environ.get("GLIBC_TUNABLES", ""),
    }
    host = machine()
    rng = np.random.default_rng(0)
    index = fleet(args.connectors)
    data = telemetry(index, args.seconds, rng)
    n = args.connectors
    events: list[Event] = [
        e
        for i in range(n)
        for e in (
            TransactionEvent(index.keys[i][0], 1, T0 - 2, T0 - 2, "start", f"t{i}"),
            StatusEvent(index.keys[i][0], 1, T0 - 1, T0 - 1, "Charging"),
        )
    ]
    per = n * args.batch_seconds
    m = min(args.reference_samples, len(data))

    # Warm-up, untimed: the first updates of a process grow its heap and fault
    # every page in (with hugepages, 2 MB zeroed per fault). What that costs
    # depends on the host (THP and its defrag mode, memory fragmentation, the
    # hypervisor backing guest memory on first touch), not on the detectors;
    # a collector pays it once at start. Reported apart, left out of the figure.
    warm: list[dict[str, float]] = []
    for _ in range(args.warmup):
        before = resource.getrusage(resource.RUSAGE_SELF)
        t, _ = _vectorised(data, events, index, per)
        after = resource.getrusage(resource.RUSAGE_SELF)
        warm.append(
            {
                "cpu_s": round(t[0], 4),
                "system_cpu_s": round(after.ru_stime - before.ru_stime, 4),
                "page_faults": after.ru_minflt - before.ru_minflt,
            }
        )
        if not args.vectorised_only:
            _reference(data, index, m)
    # Interleaved, so that a disturbance by other processes hits both sides alike.
    vec_runs: list[Timing] = []
    ref_runs: list[Timing] = []
    ds = None
    faults: list[int] = []  # minor page faults and system CPU seconds per vectorised run
    sys_s: list[float] = []
    # The host's speed just after each vectorised run: after, not before, so
    # that the probe's 136 MiB do not leave the timed run's caches cold (in the
    # full bench the reference runs between a probe and the next timed run, as
    # it did before there were probes).
    probes: list[dict[str, float]] = []
    rounds: list[list[float]] = []  # each round's vectorised rates (CPU time)
    for _ in range(max(args.repeat, 1)):
        rounds.append([])
        for _ in range(max(args.runs, 1)):
            ds = None  # the last run's state goes before the next is built (one heap's worth)
            before = resource.getrusage(resource.RUSAGE_SELF)
            t, ds = _vectorised(data, events, index, per)
            after = resource.getrusage(resource.RUSAGE_SELF)
            faults.append(after.ru_minflt - before.ru_minflt)
            sys_s.append(round(after.ru_stime - before.ru_stime, 4))
            vec_runs.append(t)
            rounds[-1].append(len(data) / t[0])
        # Once per round, after its runs: between runs it would leave the next
        # one's caches cold.
        probes.append(probe())
        if not args.vectorised_only:
            ref_runs.append(_reference(data, index, m))
    assert ds is not None
    memory["warmup"] = warm
    memory["page_faults_runs"] = faults
    memory["system_cpu_s_runs"] = sys_s
    memory["anon_hugepages_kb_after"] = _anon_hugepages_kb()
    memory["anon_hugepages_kb_peak"] = _peak_hugepages(data, events, index, per)
    if args.vectorised_only:
        cpu = [r[0] for r in vec_runs]
        print(
            json.dumps(
                {
                    "connectors": n,
                    "samples": len(data),
                    "batch_rows": per,
                    "machine": {**host, "loadavg_end": [round(x, 2) for x in os.getloadavg()]},
                    "memory": memory,
                    "vectorised_samples_per_s": round(len(data) / statistics.median(cpu)),
                    "vectorised_seconds_runs": [round(x, 4) for x in cpu],
                    "vectorised_samples_per_s_runs": [round(len(data) / x) for x in cpu],
                    "runs_per_round": args.runs,
                    "host_probe_runs": probes,
                    "targets": {
                        "vectorised >= 5M samples/s": _target([len(data) / x for x in cpu], 5e6),
                    },
                    "findings_on_healthy_data": len(ds.findings),
                },
                indent=2,
            )
        )
        return
    # Rates per run, by CPU time (k=0) and by wall time (k=1).
    vec_rate = [[len(data) / r[k] for r in vec_runs] for k in (0, 1)]
    ref_rate = [[m / r[k] for r in ref_runs] for k in (0, 1)]
    # Each round's ratio: the median of its vectorised runs over its reference run.
    per_round = max(args.runs, 1)
    round_rate = [
        [
            statistics.median(vec_rate[k][i : i + per_round])
            for i in range(0, len(vec_runs), per_round)
        ]
        for k in (0, 1)
    ]
    ratios = [[v / r for v, r in zip(round_rate[k], ref_rate[k], strict=True)] for k in (0, 1)]
    rate, ratio = statistics.median(vec_rate[0]), statistics.median(ratios[0])
    # As many small updates as the data holds past the first report and the
    # warm-up (at most 2,000): forcing 200 ran past the end of short data.
    n_small = min(2000, (len(data) - n) // max(args.small_batch_rows, 1) - 20)
    if n_small < 1:
        least = 2 + 21 * args.small_batch_rows // n
        raise SystemExit(
            f"--seconds {args.seconds} is too short for {args.small_batch_rows}-row updates "
            f"after every connector reported once: give at least {least}"
        )
    small_us = statistics.median(
        _small_batches(data, events, index, args.small_batch_rows, n_small)
        for _ in range(args.repeat)
    )
    pipe_rows = max(1, round(n * args.pipeline_batch_s))
    pipe_rates = [
        len(data) / _vectorised(data, events, index, pipe_rows)[0][0] for _ in range(args.repeat)
    ]
    pipe_rate = statistics.median(pipe_rates)
    # The main shape again, each tick's connectors in MQTT arrival order.
    shuffled = arrival_order(data, n, np.random.default_rng(1))
    arrival_rate = statistics.median(
        len(data) / _vectorised(shuffled, events, index, per)[0][0] for _ in range(args.repeat)
    )

    # Where the time goes (sequencer vs detectors), for whoever optimises next.
    seq = Sequencer()
    c0 = time.process_time()
    for c in range(0, len(data), per):
        seq.frame(_slice(data, c, c + per), Events.none(), n, {})
    seq_s = time.process_time() - c0

    def r3(xs: list[float]) -> list[float]:
        return [round(x, 3) for x in xs]

    out = {
        "connectors": n,
        "samples": len(data),
        "batch_rows": per,
        "machine": {**host, "loadavg_end": [round(x, 2) for x in os.getloadavg()]},
        "memory": memory,
        "threads": os.environ["OMP_NUM_THREADS"],
        "repeat": args.repeat,
        "timer": "process_time (CPU); wall figures under 'wall'",
        "runs_per_round": per_round,
        "vectorised_samples_per_s": round(rate),
        "vectorised_seconds_runs": r3([r[0] for r in vec_runs]),
        # bench/host_probe.py just after each of those runs: memory bandwidth,
        # in-cache numpy and interpreter speed, none of them chargewatch's code.
        "host_probe_runs": probes,
        "sequencer_share": round(seq_s / statistics.median(r[0] for r in vec_runs), 3),
        "reference_samples_per_s": round(statistics.median(ref_rate[0])),
        "reference_samples": m,
        "reference_seconds_runs": r3([r[0] for r in ref_runs]),
        "ratio": round(ratio, 1),
        "spread": {
            "vectorised_samples_per_s": {k: round(v) for k, v in _spread(vec_rate[0]).items()},
            "reference_samples_per_s": {k: round(v) for k, v in _spread(ref_rate[0]).items()},
            "ratio": {k: round(v, 1) for k, v in _spread(ratios[0]).items()},
            "pipeline_batch_samples_per_s": {k: round(v) for k, v in _spread(pipe_rates).items()},
        },
        "wall": {
            "vectorised_samples_per_s": {k: round(v) for k, v in _spread(vec_rate[1]).items()},
            "reference_samples_per_s": {k: round(v) for k, v in _spread(ref_rate[1]).items()},
            "ratio": {k: round(v, 1) for k, v in _spread(ratios[1]).items()},
            "vectorised_seconds_runs": r3([r[1] for r in vec_runs]),
            "reference_seconds_runs": r3([r[1] for r in ref_runs]),
        },
        "pipeline_batch_rows": pipe_rows,
        "pipeline_batch_samples_per_s": round(pipe_rate),
        # The figure at both shapes: the ratio of the two says how much of a
        # difference between machines is the cache (large batches) rather than
        # the interpreter (small ones).
        "batch_shapes_samples_per_s": {str(per): round(rate), str(pipe_rows): round(pipe_rate)},
        "arrival_order_samples_per_s": round(arrival_rate),
        "small_batch_rows": args.small_batch_rows,
        "small_batch_us_per_update": round(small_us),
        "findings_on_healthy_data": len(ds.findings),
        "targets": {
            "vectorised >= 5M samples/s": _target(vec_rate[0], 5e6),
            "ratio >= 50x": _target(ratios[0], 50.0, digits=1),
        },
    }
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
