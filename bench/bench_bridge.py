"""``chargewatch bridge`` under a fleet's load, side by side with the chargers straight on the CSMS.

    PYTHONPATH=. python -m bench.bench_bridge [--chargers 2000] [--seconds 60]

N chargers (OCPP 1.6 over real WebSockets on loopback) are connected at once,
each sending MeterValues every ``--meter-s`` (10 s) and a Heartbeat every
``--heartbeat-s`` (60 s), first straight to a CSMS, then through the bridge
(a ``chargewatch bridge`` process mirroring every frame to a real Mosquitto).
The chargers and the CSMS share this process and its clock, so each frame's
one-way latency is measured exactly: charger send -> CSMS receive, and CSMS
send -> charger receive. The added latency per frame is the bridged
percentile minus the direct one (p50, p99; limit p99 <= 5 ms). From the
bridge process itself: CPU time per frame passed over the measured window,
and resident memory per connection (RSS with all chargers connected, less
RSS before the first, over N; limit <= 50 KB; a charger is two sockets).
Prints one JSON document.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import psutil
from websockets.asyncio.client import ClientConnection, connect
from websockets.asyncio.server import ServerConnection, serve

from tests.services import Mosquitto, free_port

ADDED_P99_LIMIT_MS = 5.0
MEMORY_LIMIT_BYTES = 50 * 1024
_CONNECT_AT_ONCE = 50  # handshakes in flight while connecting the fleet


@dataclass
class Clock:
    """Send times by message id, and the one-way latencies measured while ``on``."""

    on: bool = False
    sent_cp: dict[str, float] = field(default_factory=dict)
    sent_csms: dict[str, float] = field(default_factory=dict)
    up: list[float] = field(default_factory=list)  # charger -> CSMS
    down: list[float] = field(default_factory=list)  # CSMS -> charger

    def frames(self) -> int:
        return len(self.up) + len(self.down)


def _now_iso() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


async def csms_handler(ws: ServerConnection, clock: Clock) -> None:
    """A minimal CSMS: answers every CALL at once (the ocpp package is too slow for 2,000)."""
    with contextlib.suppress(Exception):
        async for msg in ws:
            t = time.perf_counter()
            doc = orjson.loads(msg)
            sent = clock.sent_cp.pop(doc[1], None)
            if sent is not None and clock.on:
                clock.up.append(t - sent)
            body = {"currentTime": _now_iso()} if doc[2] == "Heartbeat" else {}
            reply = orjson.dumps([3, doc[1], body]).decode()
            clock.sent_csms[doc[1]] = time.perf_counter()
            await ws.send(reply)


async def charger(
    url: str, n: int, clock: Clock, go: asyncio.Event, stop: asyncio.Event, args: argparse.Namespace
) -> ClientConnection:
    ws = await connect(
        f"{url}/BENCH-{n:05d}", subprotocols=["ocpp1.6"], compression=None, proxy=None,  # type: ignore[list-item]
        ping_interval=None, open_timeout=60,
    )  # fmt: skip

    async def reader() -> None:
        with contextlib.suppress(Exception):
            async for msg in ws:
                t = time.perf_counter()
                msg_id = orjson.loads(msg)[1]
                sent = clock.sent_csms.pop(msg_id, None)
                if sent is not None and clock.on:
                    clock.down.append(t - sent)

    async def writer() -> None:
        await go.wait()
        rnd = random.Random(n)
        seq, energy = 0, 0
        next_meter = time.monotonic() + rnd.uniform(0, args.meter_s)
        next_hb = time.monotonic() + rnd.uniform(0, args.heartbeat_s)
        while not stop.is_set():
            wait = min(next_meter, next_hb) - time.monotonic()
            if wait > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), wait)
                continue
            seq += 1
            msg_id = f"{n}-{seq}"
            if next_meter <= next_hb:
                energy += rnd.randint(10, 30)
                sample = [
                    {
                        "value": str(energy),
                        "measurand": "Energy.Active.Import.Register",
                        "unit": "Wh",
                    },
                    {"value": "7200", "measurand": "Power.Active.Import", "unit": "W"},
                ]
                frame = [2, msg_id, "MeterValues", {
                    "connectorId": 1, "transactionId": n,
                    "meterValue": [{"timestamp": _now_iso(), "sampledValue": sample}],
                }]  # fmt: skip
                next_meter += args.meter_s
            else:
                frame = [2, msg_id, "Heartbeat", {}]
                next_hb += args.heartbeat_s
            text = orjson.dumps(frame).decode()
            clock.sent_cp[msg_id] = time.perf_counter()
            try:
                await ws.send(text)
            except Exception:
                return

    ws.tasks = (asyncio.create_task(reader()), asyncio.create_task(writer()))  # type: ignore[attr-defined]
    return ws


async def _bounded(jobs: list[Callable[[], Awaitable[ClientConnection]]]) -> list[ClientConnection]:
    sem = asyncio.Semaphore(_CONNECT_AT_ONCE)

    async def one(job: Callable[[], Awaitable[ClientConnection]]) -> ClientConnection:
        async with sem:
            return await job()

    return list(await asyncio.gather(*(one(j) for j in jobs)))


def _pcts(xs: list[float]) -> dict[str, float]:
    a = np.asarray(xs) * 1000.0
    if not len(a):
        return {"p50": float("nan"), "p99": float("nan"), "max": float("nan"), "n": 0}
    return {
        "p50": round(float(np.percentile(a, 50)), 3),
        "p99": round(float(np.percentile(a, 99)), 3),
        "max": round(float(a.max()), 3),
        "n": len(a),
    }


async def phase(
    url: str, args: argparse.Namespace, clock: Clock, bridge: psutil.Process | None
) -> dict[str, Any]:
    """Connect the fleet to ``url``, run it, measure; the bridge process's CPU and RSS if given."""
    go, stop = asyncio.Event(), asyncio.Event()
    rss0 = bridge.memory_info().rss if bridge else 0
    t0 = time.perf_counter()
    conns = await _bounded([
        (lambda i=i: charger(url, i, clock, go, stop, args)) for i in range(args.chargers)
    ])  # fmt: skip
    connect_s = time.perf_counter() - t0
    await asyncio.sleep(2)  # let the connections settle before reading memory
    rss1 = bridge.memory_info().rss if bridge else 0
    go.set()
    await asyncio.sleep(args.warmup)
    cpu0 = sum(bridge.cpu_times()[:2]) if bridge else 0.0
    clock.on = True
    t1 = time.perf_counter()
    await asyncio.sleep(args.seconds)
    clock.on = False
    window = time.perf_counter() - t1
    cpu1 = sum(bridge.cpu_times()[:2]) if bridge else 0.0
    frames = clock.frames()
    stop.set()
    result: dict[str, Any] = {
        "connect_all_s": round(connect_s, 2),
        "window_s": round(window, 1),
        "frames": frames,
        "frames_per_s": round(frames / window, 1),
        "latency_ms": {"charger_to_csms": _pcts(clock.up), "csms_to_charger": _pcts(clock.down),
                       "all": _pcts(clock.up + clock.down)},
    }  # fmt: skip
    if bridge:
        result["bridge_cpu_s"] = round(cpu1 - cpu0, 3)
        result["bridge_cpu_us_per_frame"] = round((cpu1 - cpu0) / max(frames, 1) * 1e6, 1)
        result["bridge_rss_before_mb"] = round(rss0 / 2**20, 1)
        result["bridge_rss_connected_mb"] = round(rss1 / 2**20, 1)
        result["bridge_bytes_per_connection"] = round((rss1 - rss0) / args.chargers)
    for ws in conns:
        await ws.close()
    for ws in conns:
        for t in ws.tasks:  # type: ignore[attr-defined]
            t.cancel()
    clock.up.clear()
    clock.down.clear()
    clock.sent_cp.clear()
    clock.sent_csms.clear()
    return result


def _start_bridge(port: int, csms_url: str, broker: int, work: Path) -> subprocess.Popen[bytes]:
    cfg = work / "bridge.yaml"
    cfg.write_text(f"bridge:\n  mirror: {{spool_dir: {work / 'spool'}}}\n  http: {{listen: ''}}\n")
    # CHARGEWATCH_BENCH_PROFILE=FILE: the bridge runs under cProfile, stats written there.
    profile = os.environ.get("CHARGEWATCH_BENCH_PROFILE")
    prefix = ["-m", "cProfile", "-o", profile] if profile else []
    proc = subprocess.Popen(
        [sys.executable, *prefix, "-m", "chargewatch", "--log-level", "WARNING", "bridge",
         "--listen", f"127.0.0.1:{port}", "--csms", csms_url, "--broker", f"127.0.0.1:{broker}",
         "--config", str(cfg)],
        env={**os.environ, "PYTHONPATH": os.getcwd()}, stdout=subprocess.DEVNULL,
        stderr=(work / "bridge.log").open("wb"),
    )  # fmt: skip
    return proc


async def _wait_port(port: int, proc: subprocess.Popen[bytes]) -> None:
    for _ in range(300):
        if proc.poll() is not None:
            raise RuntimeError(f"bridge exited with {proc.returncode}")
        try:
            _, w = await asyncio.open_connection("127.0.0.1", port)
            w.close()
            return
        except OSError:
            await asyncio.sleep(0.1)
    raise RuntimeError("bridge did not listen")


async def run(args: argparse.Namespace) -> dict[str, Any]:
    clock = Clock()
    csms = await serve(
        lambda ws: csms_handler(ws, clock), "127.0.0.1", 0, subprotocols=["ocpp1.6"],  # type: ignore[list-item]
        compression=None, ping_interval=None, max_queue=None,
    )  # fmt: skip
    csms_port = next(iter(csms.sockets)).getsockname()[1]
    csms_url = f"ws://127.0.0.1:{csms_port}/ocpp"
    broker = Mosquitto()
    broker.start()
    work = Path(tempfile.mkdtemp(prefix="cw-bench-bridge-"))
    port = free_port()
    proc = _start_bridge(port, csms_url, broker.port, work)
    try:
        await _wait_port(port, proc)
        direct = await phase(csms_url, args, clock, None)
        bridged = await phase(f"ws://127.0.0.1:{port}/ocpp", args, clock, psutil.Process(proc.pid))
    finally:
        proc.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(30)
        if proc.poll() is None:
            proc.kill()
        broker.cleanup()
        csms.close()
    d, b = direct["latency_ms"]["all"], bridged["latency_ms"]["all"]
    added = {"p50": round(b["p50"] - d["p50"], 3), "p99": round(b["p99"] - d["p99"], 3)}
    return {
        "chargers": args.chargers,
        "meter_every_s": args.meter_s,
        "heartbeat_every_s": args.heartbeat_s,
        "seconds": args.seconds,
        "machine": {"cpus": os.cpu_count(), "load_avg_1m_at_end": round(os.getloadavg()[0], 2)},
        "direct": direct,
        "bridged": bridged,
        "added_latency_ms": added,
        "added_latency_p99_limit_ms": ADDED_P99_LIMIT_MS,
        "bridge_cpu_us_per_frame": bridged["bridge_cpu_us_per_frame"],
        "bridge_bytes_per_connection": bridged["bridge_bytes_per_connection"],
        "memory_limit_bytes_per_connection": MEMORY_LIMIT_BYTES,
        "passed": added["p99"] <= ADDED_P99_LIMIT_MS
        and bridged["bridge_bytes_per_connection"] <= MEMORY_LIMIT_BYTES,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--chargers", type=int, default=2000)
    ap.add_argument("--seconds", type=float, default=60.0, help="measured window per phase")
    ap.add_argument("--warmup", type=float, default=10.0, help="seconds of load before measuring")
    ap.add_argument("--meter-s", type=float, default=10.0)
    ap.add_argument("--heartbeat-s", type=float, default=60.0)
    args = ap.parse_args()
    report = asyncio.run(run(args))
    print(json.dumps(report, indent=2))
    sys.exit(0 if report["passed"] else 1)


if __name__ == "__main__":
    main()
