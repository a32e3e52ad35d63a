"""The benchmark suite: every figure beside the limit it is bounded by, in one run.

    PYTHONPATH=. python -m bench.run [--quick] [--only ingest,detectors,...] [--out report.json]

Sections (each runs its bench module in a fresh process and reads the JSON it
prints; the modules also run on their own):

- ``ingest``    bench_ingest: single-sample messages through the whole service vs
                a bare paho subscriber (>= 0.8x); columnar messages, samples/s
                through the whole service (>= 1 M/s), also over MQTT 3.1.1 and
                through the pipeline alone; the InfluxDB writer vs posting the
                same lines straight to InfluxDB 1.6 (>= 0.8x).
- ``detectors`` bench_detectors: the full set on 10,000 connectors vs the
                per-sample reference (>= 5 M samples/s, >= 50x), and the same at
                1k and 100k connectors.
- ``alerting``  bench_alerting: publish -> Alertmanager latency for 1,000 chargers
                at 1 Hz (p99 <= 1 s); rule evaluation on 10,000 connectors.
- ``replay``    bench_replay: a simulated day of 1,000 chargers at 1 Hz through
                ``chargewatch replay`` (speed-up over real time >= 1).
- ``scale``     bench_scale: CPU per sample, per stage, rule evaluation and heap
                per connector at 1k, 10k and 100k connectors (<= 4 KB per
                connector at 100k; steady-state cost per sample flat, i.e. linear
                growth; the first samples of every session timed apart).
- ``startup``   bench_startup: median wall time of 5 fresh ``chargewatch --help``
                and ``tariff price`` (<= 0.3 s each); ``rules check rules/`` in
                the raw report (it loads the rule engine, numpy included).
- ``bridge``    bench_bridge: 2,000 OCPP 1.6 chargers (MeterValues every 10 s,
                heartbeats) through ``chargewatch bridge`` vs straight to the
                CSMS: added latency per frame (p99 <= 5 ms), memory per
                connection (<= 50 KB), CPU per frame (reported).

Prints a table (measured, limit, ratio to the limit, pass) and then the whole
report as JSON (also written to ``--out``). Needs the Debian services the tests
use (mosquitto, influxd). ``--quick`` runs smaller sizes (an hour of replay,
1k/10k connectors), for checking the suite itself, not for the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

SECTIONS = ("ingest", "detectors", "alerting", "replay", "scale", "startup", "bridge")


@dataclass
class Figure:
    name: str
    measured: float
    limit: float
    unit: str
    higher_is_better: bool = True

    @property
    def ratio(self) -> float:
        """How far past the limit (>= 1 passes): measured/limit, or limit/measured."""
        if self.higher_is_better:
            return self.measured / self.limit
        return self.limit / self.measured if self.measured else float("inf")

    @property
    def passed(self) -> bool:
        return self.ratio >= 1.0


def bench(module: str, *args: str) -> dict[str, Any]:
    """Run ``python -m bench.<module> args`` and return the JSON it printed last."""
    proc = subprocess.run(
        [sys.executable, "-m", f"bench.{module}", *args],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "PYTHONPATH": os.getcwd()},
    )
    if proc.returncode not in (0, 1):  # soak-style benches exit 1 on a failed limit
        raise RuntimeError(f"bench.{module} failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
    out = proc.stdout
    doc: dict[str, Any] = json.loads(out[out.index("{") :])
    return doc


def ingest(quick: bool) -> tuple[dict[str, Any], list[Figure]]:
    args = ["--messages", "50000", "--points", "100000", "--columnar-minutes", "3"] if quick else []
    r = bench("bench_ingest", *args)
    single, col, writer = r["mqtt_ingest"], r["columnar_ingest"], r["influx_writer"]
    return r, [
        Figure("ingest single-sample: service / bare paho", single["ratio"], 0.8, "x"),
        Figure(
            "ingest columnar: samples/s through the service",
            col["collector_samples_per_s"],
            1_000_000,
            "samples/s",
        ),
        # Where the columnar cost sits, against the same limit: over MQTT 3.1.1
        # (no MQTT 5 properties to parse), and the pipeline without any MQTT.
        Figure(
            "ingest columnar over MQTT 3.1.1: samples/s",
            col["collector_samples_per_s_mqtt311"],
            1_000_000,
            "samples/s",
        ),
        Figure(
            "columnar pipeline alone (no MQTT): samples per CPU-s",
            col["pipeline_alone_samples_per_cpu_s"],
            1_000_000,
            "samples/s",
        ),
        Figure("InfluxDB writer (gzip) / raw POST", writer["ratio_gzip_on"], 0.8, "x"),
    ]


def detectors(quick: bool) -> tuple[dict[str, Any], list[Figure]]:
    main = bench("bench_detectors")
    sizes = {}
    for n in (1000,) if quick else (1000, 100_000):
        sizes[str(n)] = bench(
            "bench_detectors", "--connectors", str(n), "--seconds", "60" if n < 100_000 else "20"
        )
    r = {"10000": main, **sizes}
    return r, [
        Figure(
            "detectors, 10k connectors: samples/s",
            main["vectorised_samples_per_s"],
            5_000_000,
            "samples/s",
        ),
        Figure("detectors / per-sample reference", main["ratio"], 50.0, "x"),
    ]


def alerting(quick: bool) -> tuple[dict[str, Any], list[Figure]]:
    r = bench("bench_alerting")
    lat = r["latency"]
    return r, [
        Figure(
            f"alert latency publish -> Alertmanager, p99 ({lat['rule_group_interval']} group)",
            lat["latency_s"]["p99"],
            1.0,
            "s",
            higher_is_better=False,
        ),
        Figure(
            "rule evaluation, 10k connectors, p99",
            r["rule_eval"]["ms_per_evaluation"]["p99"],
            r["rule_eval"]["limit_p99_ms"],
            "ms",
            higher_is_better=False,
        ),
    ]


def replay(quick: bool) -> tuple[dict[str, Any], list[Figure]]:
    args = ["--hours", "1"] if quick else []
    if os.environ.get("CHARGEWATCH_BENCH_CAPTURES"):  # reuse a written capture
        args += ["--keep", os.environ["CHARGEWATCH_BENCH_CAPTURES"]]
    r = bench("bench_replay", *args)
    return r, [
        Figure(
            f"replay {r['hours']:g} h x {r['chargers']} chargers: speed-up over real time",
            r["speedup_over_real_time"],
            1.0,
            "x",
        ),
    ]


def scale(quick: bool) -> tuple[dict[str, Any], list[Figure]]:
    sizes = "1000,10000" if quick else "1000,10000,100000"
    r = bench("bench_scale", "--connectors", sizes)
    g = r["growth"]
    last = r["sizes"][-1]
    return r, [
        Figure(
            f"collector heap per connector at {last['connectors']:,}",
            last["heap_bytes_per_connector"],
            r["memory_limit_bytes_per_connector"],
            "bytes",
            higher_is_better=False,
        ),
        Figure(
            f"CPU per sample, steady state, at {last['connectors']:,} / at"
            f" {r['sizes'][0]['connectors']:,}",
            g["cpu_per_sample_largest_over_smallest"],
            1.5,  # linear cost: per-sample cost flat, within noise
            "x",
            higher_is_better=False,
        ),
    ]


def startup(quick: bool) -> tuple[dict[str, Any], list[Figure]]:
    r = bench("bench_startup")
    # rules check loads the rule engine (numpy): its time is in the raw report only.
    return r, [
        Figure(f"{r[k]['command']}: median wall time", r[k]["median_s"], r["limit_s"], "s",
               higher_is_better=False)
        for k in ("help", "tariff_price")
    ]  # fmt: skip


def bridge(quick: bool) -> tuple[dict[str, Any], list[Figure]]:
    args = ["--chargers", "200", "--seconds", "20", "--warmup", "5"] if quick else []
    r = bench("bench_bridge", *args)
    return r, [
        Figure(
            f"bridge, {r['chargers']:,} chargers: added latency per frame, p99",
            r["added_latency_ms"]["p99"],
            r["added_latency_p99_limit_ms"],
            "ms",
            higher_is_better=False,
        ),
        Figure(
            "bridge: memory per connection",
            r["bridge_bytes_per_connection"],
            r["memory_limit_bytes_per_connection"],
            "bytes",
            higher_is_better=False,
        ),
    ]


RUNNERS: dict[str, Callable[[bool], tuple[dict[str, Any], list[Figure]]]] = {
    "ingest": ingest,
    "detectors": detectors,
    "alerting": alerting,
    "replay": replay,
    "scale": scale,
    "startup": startup,
    "bridge": bridge,
}


def _amount(value: float, unit: str) -> str:
    return f"{value:,.3g} {unit}" if abs(value) < 1000 else f"{value:,.0f} {unit}"


def table(figures: list[Figure]) -> str:
    rows = [("figure", "measured", "limit", "ratio", "pass")]
    rows += [
        (
            f.name,
            _amount(f.measured, f.unit),
            f"{'>=' if f.higher_is_better else '<='} {_amount(f.limit, f.unit)}",
            f"{f.ratio:.2f}",
            "yes" if f.passed else "NO",
        )
        for f in figures
    ]
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--only", default=",".join(SECTIONS), help="comma-separated sections")
    ap.add_argument("--out", help="also write the JSON report here")
    args = ap.parse_args()
    wanted = [s for s in args.only.split(",") if s]
    unknown = set(wanted) - set(SECTIONS)
    if unknown:
        ap.error(f"unknown sections {sorted(unknown)}; choose from {SECTIONS}")
    report: dict[str, Any] = {
        "started": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "quick": args.quick,
        "sections": {},
    }
    figures: list[Figure] = []
    for name in wanted:
        t = time.perf_counter()
        print(f"running {name} ...", file=sys.stderr, flush=True)
        try:
            raw, figs = RUNNERS[name](args.quick)
        except Exception as exc:  # one broken section must not lose the others
            report["sections"][name] = {"error": f"{type(exc).__name__}: {exc}"}
            print(f"  {name} failed: {exc}", file=sys.stderr)
            continue
        report["sections"][name] = {
            "seconds": round(time.perf_counter() - t, 1),
            "figures": [{**asdict(f), "ratio": round(f.ratio, 3), "pass": f.passed} for f in figs],
            "raw": raw,
        }
        figures += figs
    report["all_pass"] = bool(figures) and all(f.passed for f in figures)
    print(table(figures))
    doc = json.dumps(report, indent=2)
    print(doc)
    if args.out:
        with open(args.out, "w", encoding="utf-8") as f:
            f.write(doc + "\n")


if __name__ == "__main__":
    main()
