"""What one of two collectors costs per fleet message, by partition kind (docs/scaling.md).

The same backlog of single-sample QoS 1 messages (1,000 chargers) is drained
from a real Mosquitto through MqttIngest and the pipeline (decode, batch, line
protocol), as in bench/bench_ingest.py, three ways:

- ``whole``: one collector takes the whole fleet;
- ``hash``: the collector owns half (``{index: 0, count: 2}``): it receives every
  message and skips the other half in the network thread;
- ``exact``: it owns half by a list of charger ids: the broker sends it only
  its own half.

``fleet_speedup`` is how much faster two such collectors drain the fleet's
backlog than one (``whole`` time / the partition's time; each collector runs
on its own core). Prints one JSON document.
Usage: python -m bench.bench_partition [--messages N]
"""

from __future__ import annotations

import argparse
import json
import threading
import time
import uuid
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from bench.bench_ingest import CountingSink, _v5_connect, make_stream, publish_backlog
from chargewatch.collector.pipeline import Pipeline
from chargewatch.config.settings import Config
from chargewatch.ingest.mqtt import MqttConfig, MqttIngest
from chargewatch.ingest.partition import Partition
from chargewatch.model.fleet import ConnectorIndex
from tests.services import Mosquitto

CHARGERS = 1000


def register(port: int, client_id: str, filters: tuple[str, ...]) -> None:
    """Create the persistent session with the collector's subscriptions, so the
    broker queues exactly what this collector would get."""
    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
    acks = threading.Semaphore(0)
    c.on_subscribe = lambda *a: acks.release()
    _v5_connect(c, port)
    c.loop_start()
    chunks = [filters[i : i + 200] for i in range(0, len(filters), 200)]
    for chunk in chunks:
        c.subscribe([(f, 1) for f in chunk])
    for _ in chunks:
        acks.acquire(timeout=10)
    c.disconnect()
    c.loop_stop()


def drain(port: int, client_id: str, config: MqttConfig, n_expected: int) -> dict[str, float]:
    pipeline = Pipeline(ConnectorIndex(), lines=CountingSink())
    ingest = MqttIngest(config)
    cfg = Config()
    t0 = time.perf_counter()
    cpu0 = time.process_time()
    ingest.start()
    processed = 0
    while processed + ingest.skipped < n_expected and time.perf_counter() - t0 < 300:
        items = ingest.take(
            cfg.batch_max_messages,
            0.05,
            min_items=cfg.batch_min_messages,
            linger_s=cfg.batch_linger_s,
        )
        if items:
            pipeline.process([i[:3] for i in items], items[-1][2])
            ingest.ack(items)
            processed += len(items)
    dt = time.perf_counter() - t0
    cpu = time.process_time() - cpu0
    ingest.stop()
    return {"seconds": dt, "cpu_s": cpu, "processed": processed, "skipped": ingest.skipped}


def bench(n: int) -> dict[str, Any]:
    msgs = make_stream(n, CHARGERS)
    half = tuple(f"CP{c:05d}" for c in range(0, CHARGERS, 2))
    kinds = {
        "whole": Partition(),
        "hash": Partition(index=0, count=2),
        "exact": Partition(chargers=half),
    }
    runs: dict[str, list[dict[str, float]]] = {k: [] for k in kinds}
    with Mosquitto(persistence=False) as broker:
        for _ in range(2):  # alternate, twice, so drift affects every kind alike
            for name, partition in kinds.items():
                cid = f"part-{name}-{uuid.uuid4().hex[:6]}"
                config = MqttConfig(
                    port=broker.port,
                    client_id=cid,
                    subscriptions=("ev/+/+/meter",),
                    partition=partition,
                )
                register(broker.port, cid, config.topic_filters())
                publish_backlog(broker.port, msgs)
                owned = sum(partition.owns(t.split("/")[1]) for t, _ in msgs)
                expected = owned if partition.exact else n
                r = drain(broker.port, cid, config, expected)
                assert r["processed"] == owned, (name, r, owned)
                runs[name].append(r)
    best = {k: min(rs, key=lambda r: r["seconds"]) for k, rs in runs.items()}
    whole_s = best["whole"]["seconds"]
    out: dict[str, Any] = {"messages": n, "chargers": CHARGERS}
    for name, r in best.items():
        out[name] = {
            "seconds": round(r["seconds"], 3),
            "processed": int(r["processed"]),
            "skipped": int(r["skipped"]),
            "fleet_msg_per_s_per_collector": round(n / r["seconds"]),
            "cpu_us_per_fleet_msg": round(r["cpu_s"] / n * 1e6, 2),
            "fleet_speedup": round(whole_s / r["seconds"], 2),
        }
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--messages", type=int, default=100_000)
    args = ap.parse_args()
    print(json.dumps(bench(args.messages), indent=2))


if __name__ == "__main__":
    main()
