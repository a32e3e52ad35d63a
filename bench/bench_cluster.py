"""Dynamic partitions on this machine (docs/scaling.md, docs/performance.md):

- ``throughput``: messages per second per collector with 1, 2 and 3 ``chargewatch
  run`` collectors (``cluster.partitions``, PostgreSQL ledger, Mosquitto). Once the
  partitions are shared out, every collector is paused (SIGSTOP, well inside its
  lease), a backlog of single-sample QoS 1 meter messages is published into the
  partitions' persistent sessions (leases of 300 s outlast the pause), the
  collectors are resumed and the time to
  drain it (every sample counted in ``chargewatch_samples_total``) is measured.
- ``takeover``: three collectors; one is SIGKILLed; the time until its partitions
  are claimed by the others (``partition_leases``) and until a message sent to
  each of its chargers right after the kill is processed by a survivor.

All processes share this machine's cores with the broker and PostgreSQL.
Prints one JSON document. Usage: python -m bench.bench_cluster [--messages N]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import uuid
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg

from bench.bench_ingest import make_stream, publish_backlog
from tests.services import Mosquitto, PostgreSQL, free_port

ROOT = Path(__file__).resolve().parents[1]
CHARGERS = 300
PARTITIONS = 12


def _wait(pred: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.HTTPError, psycopg.Error):
            got = pred()
            if got:
                return got
        time.sleep(0.05)
    raise RuntimeError(f"timed out waiting for {what}")


class Cluster:
    """Collectors of one cluster, each a ``chargewatch run`` process."""

    def __init__(self, work: Path, pg_url: str, mqtt_port: int, lease_s: float) -> None:
        self.work, self.pg_url, self.mqtt_port, self.lease_s = work, pg_url, mqtt_port, lease_s
        self.tag = uuid.uuid4().hex[:6]
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.ports: dict[str, int] = {}
        fleet = work / "fleet.yaml"
        if not fleet.exists():
            fleet.write_text(
                "sites: [{id: depot, timezone: Europe/Amsterdam}]\nchargers:\n"
                + "".join(
                    f"  - {{id: CP{c:05d}, site: depot, connectors: 1, max_power_w: 22000}}\n"
                    for c in range(CHARGERS)
                )
            )

    def start(self, name: str) -> None:
        d = self.work / f"{self.tag}-{name}"
        d.mkdir()
        self.ports[name] = port = free_port()
        (d / "c.yaml").write_text(
            f"collector_id: {name}\ndata_dir: data\nledger:\n  url: {self.pg_url}\n"
            f"cluster:\n  partitions: {PARTITIONS}\n  lease_s: {self.lease_s}\n"
            f"  session_prefix: b{self.tag}\n"
            f"mqtt:\n  host: 127.0.0.1\n  port: {self.mqtt_port}\n"
            f"http:\n  listen: 127.0.0.1:{port}\n"
            f"influx:\n  file: lines.lp\nfleet: {self.work / 'fleet.yaml'}\n"
            "alerting:\n  log: false\n"
        )
        log = (d / "collector.log").open("ab")
        self.procs[name] = subprocess.Popen(
            [sys.executable, "-m", "chargewatch", "run", "--config", str(d / "c.yaml")],
            env=dict(os.environ, PYTHONPATH=str(ROOT)),
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=d,
        )

    def owners(self) -> dict[int, str]:
        with psycopg.connect(self.pg_url, autocommit=True) as conn:
            rows = conn.execute(
                "SELECT partition, CASE WHEN expires_at > extract(epoch FROM clock_timestamp())"
                " THEN owner ELSE '' END FROM partition_leases"
            ).fetchall()
        return {int(p): str(o) for p, o in rows}

    def balanced(self) -> dict[int, str] | None:
        live = {n for n, p in self.procs.items() if p.poll() is None}
        share = -(-PARTITIONS // len(live))
        got = self.owners()
        held = list(got.values())
        ok = len(got) == PARTITIONS and set(held) == live
        return got if ok and all(held.count(n) <= share for n in live) else None

    def samples(self, name: str) -> float:
        text = httpx.get(f"http://127.0.0.1:{self.ports[name]}/metrics", timeout=5).text
        m = re.search(r"^chargewatch_samples_total (\S+)$", text, re.M)
        return float(m.group(1)) if m else 0.0

    def ready(self, name: str) -> bool:
        r = httpx.get(f"http://127.0.0.1:{self.ports[name]}/readyz", timeout=2)
        return r.status_code == 200

    def stop(self) -> None:
        for p in self.procs.values():
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in self.procs.values():
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(5)


@contextlib.contextmanager
def services() -> Iterator[tuple[PostgreSQL, Mosquitto]]:
    pg, mq = PostgreSQL(), Mosquitto()
    for s in (pg, mq):
        s.start()
    try:
        yield pg, mq
    finally:
        for s in (pg, mq):
            s.cleanup()


def throughput(work: Path, pg: PostgreSQL, mq: Mosquitto, n: int, messages: int) -> dict[str, Any]:
    db = f"tp{n}_{uuid.uuid4().hex[:6]}"
    # Leases far longer than the pause: a collector stopped past its lease is
    # fenced on resuming (as it must be) and exits.
    cluster = Cluster(work, pg.create_db(db), mq.port, lease_s=300.0)
    try:
        for k in range(n):
            cluster.start(f"c{k}")
        _wait(cluster.balanced, 120, "the partitions to be shared out")
        for name in cluster.procs:
            _wait(lambda nm=name: cluster.ready(nm), 60, f"{name} ready")
        base = sum(cluster.samples(nm) for nm in cluster.procs)
        for p in cluster.procs.values():
            p.send_signal(signal.SIGSTOP)
        stream = make_stream(messages, CHARGERS)
        publish_backlog(mq.port, stream)
        t0 = time.perf_counter()
        for p in cluster.procs.values():
            p.send_signal(signal.SIGCONT)
        _wait(
            lambda: sum(cluster.samples(nm) for nm in cluster.procs) - base >= messages,
            600,
            "the backlog to drain",
        )
        wall = time.perf_counter() - t0
        per = {nm: cluster.samples(nm) for nm in cluster.procs}
    finally:
        cluster.stop()
        pg.drop_db(db)
    return {
        "collectors": n,
        "messages": messages,
        "drain_s": round(wall, 2),
        "fleet_msgs_per_s": round(messages / wall),
        "msgs_per_s_per_collector": round(messages / wall / n),
        "samples_by_collector": {k: int(v) for k, v in per.items()},
    }


def takeover(work: Path, pg: PostgreSQL, mq: Mosquitto, lease_s: float) -> dict[str, Any]:
    db = f"to_{uuid.uuid4().hex[:6]}"
    cluster = Cluster(work, pg.create_db(db), mq.port, lease_s=lease_s)
    try:
        for k in range(3):
            cluster.start(f"c{k}")
        before = _wait(cluster.balanced, 120, "the partitions to be shared out")
        for name in cluster.procs:
            _wait(lambda nm=name: cluster.ready(nm), 60, f"{name} ready")
        victim = "c0"
        lost = {p for p, o in before.items() if o == victim}
        theirs = [
            f"CP{c:05d}"
            for c in range(CHARGERS)
            if zlib.crc32(f"CP{c:05d}".encode()) % PARTITIONS in lost
        ]
        survivors = [n for n in cluster.procs if n != victim]
        base = sum(cluster.samples(n) for n in survivors)
        time.sleep(lease_s / 2)  # mid-lease: the kill lands anywhere in a renewal period
        cluster.procs[victim].send_signal(signal.SIGKILL)
        t0 = time.perf_counter()
        cluster.procs[victim].wait(10)
        now = time.time()
        marks = [
            (
                f"ev/{c}/1/meter",
                json.dumps({"ts": now, "energy_wh": 1000.0, "power_w": 0.0}).encode(),
            )
            for c in theirs
        ]
        publish_backlog(mq.port, marks)
        _wait(
            lambda: all(o and o != victim for o in cluster.owners().values()),
            120,
            "the victim's partitions to be claimed",
        )
        claimed_s = time.perf_counter() - t0
        _wait(
            lambda: sum(cluster.samples(n) for n in survivors) - base >= len(marks),
            120,
            "the victim's chargers to be processed again",
        )
        processed_s = time.perf_counter() - t0
    finally:
        cluster.stop()
        pg.drop_db(db)
    return {
        "lease_s": lease_s,
        "bound_s": round(4 / 3 * lease_s, 1),
        "partitions_taken": len(lost),
        "claimed_after_s": round(claimed_s, 2),
        "processing_again_after_s": round(processed_s, 2),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--messages", type=int, default=30_000)
    ap.add_argument("--lease", type=float, nargs="*", default=[3.0, 15.0])
    args = ap.parse_args()
    out: dict[str, Any] = {"cpus": os.cpu_count(), "chargers": CHARGERS, "partitions": PARTITIONS}
    with services() as (pg, mq), tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        out["throughput"] = [throughput(work, pg, mq, n, args.messages) for n in (1, 2, 3)]
        out["takeover"] = [takeover(work, pg, mq, lease) for lease in args.lease]
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
