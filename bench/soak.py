"""Soak: the collector at twice nominal load for a long run; memory, loss, errors, lag.

    PYTHONPATH=. python -m bench.soak [--minutes 30] [--chargers 1000] [--rate-hz 2]
        [--store victoria-metrics|influxdb] [--sample-s 10]

Runs ``chargewatch run`` as its own process (so its RSS is the collector's
alone) with the shipped rules and a generated fleet, against a private
Mosquitto and a private VictoriaMetrics (``/api/v2/write``) or InfluxDB 1.x
(``/write``) started as tests/services.py starts them. A publisher process
sends single-sample native meter messages at QoS 1: ``--chargers`` ×
``--rate-hz`` messages a second, by default 1,000 × 2 = 2,000 msg/s, twice
the benchmark fleet's nominal 1,000 chargers at 1 Hz.

Every ``--sample-s`` (10 s) it records the collector's RSS (psutil); every 2 s
it scrapes /metrics (messages, rejections, InfluxDB write errors, lag, queue
depth, spool). After the run the publisher stops, the collector drains, and
one JSON document is printed with pass/fail against these limits:

- ``rss_slope_mb_per_h`` ≤ 1.0: Theil–Sen slope of RSS over the second half
  (the first half is warm-up: detector windows, rollup windows, rule history
  and the allocator's pools fill). A leak of one byte per message is 7.2 MB/h
  at 2,000 msg/s, so 1 MB/h means nothing is retained per message; were it
  real, it would be 24 MB a day, well inside a monthly restart. Short runs
  cannot resolve it: the 95 % interval is printed beside the slope, and
  ``rss_slope_resolved`` is true only when its upper end is within the limit.
- ``lost`` = 0: messages published (acknowledged by the broker) minus
  messages the collector processed; and ``samples_in_store`` (counted by the
  store: ``count(energy_wh)``) equal to the samples the collector accepted.
- no growth of ``chargewatch_rejected_total`` or
  ``chargewatch_influx_write_errors_total`` (the input is valid, the store up).
- ``lag_p99_s`` ≤ 1.0: p99 of ``chargewatch_ingest_lag_seconds`` samples.

Not run in CI: it takes ``--minutes``. Exit status 0 when every limit passes.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import multiprocessing as mp
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from multiprocessing.sharedctypes import Synchronized
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import orjson
import paho.mqtt.client as mqtt
import psutil
from paho.mqtt.enums import CallbackAPIVersion
from prometheus_client.parser import text_string_to_metric_families
from scipy.stats import theilslopes

from tests.services import InfluxDB, Mosquitto, Service, VictoriaMetrics, free_port

ROOT = Path(__file__).resolve().parents[1]
RSS_SLOPE_LIMIT_MB_H = 1.0
LAG_P99_LIMIT_S = 1.0
METRICS_EVERY_S = 2.0


# ----------------------------------------------------------------- publisher


def publish(
    port: int,
    chargers: int,
    rate_hz: float,
    stop: Any,
    sent: Synchronized,  # type: ignore[type-arg]
    acked: Synchronized,  # type: ignore[type-arg]
) -> None:
    """Each charger's meter at ``rate_hz``, paced in 10 ms slices; QoS 1, counts broker acks."""
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"soak-pub-{uuid.uuid4().hex[:6]}")
    client.max_inflight_messages_set(1000)
    client.max_queued_messages_set(0)

    def on_publish(*_: Any) -> None:
        with acked.get_lock():
            acked.value += 1

    client.on_publish = on_publish
    client.connect("127.0.0.1", port)
    client.loop_start()
    ids = [f"SOAK-{i:05d}" for i in range(chargers)]
    energy = np.full(chargers, 1e6)
    rng = np.random.default_rng(7)
    slices_per_s = 100
    per_slice = chargers * rate_hz / slices_per_s
    start = time.monotonic()
    k, owed, cursor = 0, 0.0, 0
    while not stop.is_set():
        due = start + k / slices_per_s
        delay = due - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        owed += per_slice
        n = int(owed)
        owed -= n
        now = time.time()
        for _ in range(n):
            i = cursor % chargers
            cursor += 1
            power = 7000.0 + float(rng.normal(0, 50))
            energy[i] += power / rate_hz / 3600.0  # consistent with the power: no mismatch
            doc = {
                "ts": now,
                "energy_wh": round(float(energy[i]), 3),
                "power_w": round(power, 1),
                "current_a": [10.1, 10.0, 10.2],
                "voltage_v": [230.0, 231.0, 229.0],
                "temperature_c": 35.0,
            }
            client.publish(f"ev/{ids[i]}/1/meter", orjson.dumps(doc), qos=1)
            with sent.get_lock():
                sent.value += 1
        k += 1
    # Wait for the broker to acknowledge everything in flight.
    deadline = time.monotonic() + 30
    while acked.value < sent.value and time.monotonic() < deadline:
        time.sleep(0.05)
    client.disconnect()
    client.loop_stop()


# ----------------------------------------------------------------- sampling


def scrape(base: str) -> dict[str, float]:
    """The soak's counters and gauges from /metrics (labelled series summed)."""
    text = httpx.get(f"{base}/metrics", timeout=5).text
    want = {
        "chargewatch_messages_total": "messages",
        "chargewatch_samples_total": "samples",
        "chargewatch_rejected_total": "rejected",
        "chargewatch_influx_write_errors_total": "write_errors",
        "chargewatch_influx_lines_written_total": "lines_written",
        "chargewatch_ingest_lag_seconds": "lag_s",
        "chargewatch_queue_depth": "queue_depth",
        "chargewatch_influx_spool_bytes": "spool_bytes",
        "chargewatch_remediation_suppressed_total": "remediation_suppressed",
        "chargewatch_alerts": "alerts",
    }
    out = dict.fromkeys(want.values(), 0.0)
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            key = want.get(s.name)
            if key is not None:
                out[key] += float(s.value)
    return out


class Sampler:
    def __init__(self, pid: int, base: str, rss_every_s: float) -> None:
        self.proc = psutil.Process(pid)
        self.base = base
        self.rss_every = rss_every_s
        self.t0 = time.monotonic()
        self.rss: list[tuple[float, float]] = []  # (s since start, MB)
        self.metrics: list[tuple[float, dict[str, float]]] = []
        self.scrape_errors = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name="soak.sampler", daemon=True)

    def _run(self) -> None:
        next_rss = 0.0
        while not self.stop.is_set():
            t = time.monotonic() - self.t0
            if t >= next_rss:
                self.rss.append((t, self.proc.memory_info().rss / 2**20))
                next_rss += self.rss_every
            try:
                self.metrics.append((t, scrape(self.base)))
            except httpx.HTTPError:
                self.scrape_errors += 1
            self.stop.wait(METRICS_EVERY_S)


class _VictoriaMetrics(VictoriaMetrics):
    """Queries see samples at once (default: not those of the last 30 s)."""

    def command(self) -> list[str]:
        return [*super().command(), "-search.latencyOffset=0s"]


def stored_samples(store: Service) -> int | None:
    """Meter samples (energy_wh points) in the store, counted by the store itself."""
    try:
        if isinstance(store, VictoriaMetrics):
            store.flush()
            r = httpx.get(
                f"{store.url}/api/v1/query",
                params={"query": "sum(count_over_time(meter_energy_wh[1d]))"},
                timeout=60,
            )
            result = r.json()["data"]["result"]
            return int(float(result[0]["value"][1])) if result else 0
        assert isinstance(store, InfluxDB)
        series = store.query("SELECT count(energy_wh) FROM meter", "soak")
        return int(series[0]["values"][0][1]) if series else 0  # type: ignore[index]
    except (httpx.HTTPError, KeyError, IndexError, ValueError, RuntimeError):
        return None


# ----------------------------------------------------------------- run


def write_config(d: Path, mqtt_port: int, store: Service, http_port: int, chargers: int) -> Path:
    sites = 10
    fleet = d / "fleet.yaml"
    lines = ["sites:"]
    lines += [f"  - {{id: site-{s}, timezone: Europe/Amsterdam}}" for s in range(sites)]
    lines.append("chargers:")
    lines += [
        f"  - {{id: SOAK-{i:05d}, site: site-{i % sites}, connectors: 1, max_power_w: 11000}}"
        for i in range(chargers)
    ]
    fleet.write_text("\n".join(lines) + "\n")
    if isinstance(store, VictoriaMetrics):
        influx = f"influx:\n  url: {store.url}\n  api: v2\n  org: soak\n  bucket: soak\n"
    else:
        assert isinstance(store, InfluxDB)
        influx = f"influx:\n  url: {store.url}\n  database: soak\n"
    cfg = d / "chargewatch.yaml"
    cfg.write_text(
        f"data_dir: {d / 'data'}\nfleet: {fleet}\n"
        f"mqtt:\n  host: 127.0.0.1\n  port: {mqtt_port}\n  client_id: soak-{uuid.uuid4().hex[:6]}\n"
        f"{influx}"
        f"http:\n  listen: 127.0.0.1:{http_port}\n"
    )
    return cfg


def soak(
    minutes: float, chargers: int, rate_hz: float, store_name: str, sample_s: float
) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix="cw-soak-"))
    broker = Mosquitto(work / "mosquitto")
    store: Service = (
        _VictoriaMetrics(work / "store")
        if store_name == "victoria-metrics"
        else InfluxDB(work / "store")
    )
    broker.start()
    store.start()
    http_port = free_port()
    cfg = write_config(work, broker.port, store, http_port, chargers)
    log = (work / "collector.log").open("wb")
    collector = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "chargewatch",
            "--log-level",
            "WARNING",
            "run",
            "--config",
            str(cfg),
        ],
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{http_port}"
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                    break
            if collector.poll() is not None:
                raise RuntimeError(f"collector exited; see {work / 'collector.log'}")
            time.sleep(0.2)
        else:
            raise RuntimeError("collector never became ready")
        before = scrape(base)
        sampler = Sampler(collector.pid, base, sample_s)
        sampler.thread.start()
        stop = mp.Event()
        sent = mp.Value("q", 0)
        acked = mp.Value("q", 0)
        pub = mp.Process(
            target=publish, args=(broker.port, chargers, rate_hz, stop, sent, acked), daemon=True
        )
        t_start = time.monotonic()
        pub.start()
        time.sleep(minutes * 60)
        stop.set()
        pub.join(60)
        published_s = time.monotonic() - t_start
        # Drain: everything the broker acknowledged must come through.
        deadline = time.monotonic() + 120
        processed = 0.0
        while time.monotonic() < deadline:
            processed = scrape(base)["messages"] - before["messages"]
            if processed >= acked.value:
                break
            time.sleep(0.5)
        drain_s = time.monotonic() - (t_start + published_s)
        sampler.stop.set()
        sampler.thread.join(10)
        time.sleep(3)  # the writer's last flush interval
        after = scrape(base)
        stored = stored_samples(store)
    finally:
        collector.send_signal(signal.SIGTERM)
        try:
            collector.wait(60)
        except subprocess.TimeoutExpired:
            collector.kill()
        log.close()
        store.cleanup()
        broker.cleanup()
        shutil.rmtree(work / "data", ignore_errors=True)  # the log stays, for reading

    rss = np.array(sampler.rss)
    half = rss[rss[:, 0] >= rss[-1, 0] / 2] if len(rss) else rss
    slope = lo = hi = float("nan")
    if len(half) >= 3:
        res = theilslopes(half[:, 1], half[:, 0] / 3600.0, alpha=0.95)
        slope, lo, hi = float(res[0]), float(res[2]), float(res[3])
    lags = [m["lag_s"] for _, m in sampler.metrics]
    queue = [m["queue_depth"] for _, m in sampler.metrics]
    lost = int(acked.value - processed)
    growth = {k: after[k] - before[k] for k in ("rejected", "write_errors")}
    lag_p99 = float(np.percentile(lags, 99)) if lags else float("nan")
    checks = {
        f"rss_slope <= {RSS_SLOPE_LIMIT_MB_H} MB/h": bool(slope <= RSS_SLOPE_LIMIT_MB_H),
        "no loss": lost == 0,
        "every sample in the store": stored == after["samples"] - before["samples"],
        "no rejection growth": growth["rejected"] == 0,
        "no write error growth": growth["write_errors"] == 0,
        f"lag p99 <= {LAG_P99_LIMIT_S} s": bool(lag_p99 <= LAG_P99_LIMIT_S),
    }
    return {
        "minutes": minutes,
        "chargers": chargers,
        "rate_hz": rate_hz,
        "target_msg_per_s": chargers * rate_hz,
        "store": store_name,
        "published": int(sent.value),
        "acked_by_broker": int(acked.value),
        "achieved_msg_per_s": round(acked.value / published_s, 1),
        "processed": int(processed),
        "lost": lost,
        "drain_s": round(drain_s, 1),
        "samples_accepted": int(after["samples"] - before["samples"]),
        "samples_in_store": stored,
        "lines_written": int(after["lines_written"] - before["lines_written"]),
        "rss_mb": {
            "start": round(float(rss[0, 1]), 1),
            "end": round(float(rss[-1, 1]), 1),
            "peak": round(float(rss[:, 1].max()), 1),
            "samples": len(rss),
        },
        "rss_slope_mb_per_h": round(slope, 2),
        "rss_slope_95ci_mb_per_h": [round(lo, 2), round(hi, 2)],
        "rss_slope_resolved": bool(hi <= RSS_SLOPE_LIMIT_MB_H),  # else: run longer
        "rss_slope_window_s": [round(float(half[0, 0]), 1), round(float(half[-1, 0]), 1)],
        "error_growth": growth,
        "lag_s": {
            "p50": round(float(np.percentile(lags, 50)), 3) if lags else None,
            "p99": round(lag_p99, 3),
            "max": round(max(lags), 3) if lags else None,
        },
        "queue_depth_max": max(queue) if queue else None,
        "spool_bytes_end": after["spool_bytes"],
        "alerts_end": after["alerts"],
        "scrape_errors": sampler.scrape_errors,
        "limits": checks,
        "pass": all(checks.values()),
        "collector_log": str(work / "collector.log"),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--minutes", type=float, default=30.0)
    ap.add_argument("--chargers", type=int, default=1000)
    ap.add_argument("--rate-hz", type=float, default=2.0, help="messages per charger per second")
    ap.add_argument("--store", choices=["victoria-metrics", "influxdb"], default="victoria-metrics")
    ap.add_argument("--sample-s", type=float, default=10.0, help="RSS sampling interval")
    args = ap.parse_args()
    result = soak(args.minutes, args.chargers, args.rate_hz, args.store, args.sample_s)
    print(json.dumps(result, indent=2))
    return 0 if result["pass"] else 1


if __name__ == "__main__":
    sys.exit(main())
