"""MQTT (real Mosquitto) → collector → InfluxDB 1.6 (/write) and VictoriaMetrics (/api/v2/write).

Publish N samples, interleaved with bad payloads; find exactly N samples, with
the right values and timestamps, in each store, and every bad one rejected with
its reason.
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from pathlib import Path

import orjson
import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from chargewatch.collector.service import Collector
from chargewatch.config.settings import Config, HttpConfig
from chargewatch.ingest.mqtt import MqttConfig
from chargewatch.storage.influx import InfluxConfig
from tests.services import InfluxDB, Mosquitto, VictoriaMetrics

pytestmark = pytest.mark.integration

T0 = 1_795_000_000.0


def stream() -> tuple[
    list[tuple[str, bytes]], dict[tuple[str, int, int], dict[str, float]], dict[str, int]
]:
    """Messages to publish, the samples that must be stored, and the expected rejections."""
    msgs: list[tuple[str, bytes]] = []
    truth: dict[tuple[str, int, int], dict[str, float]] = {}
    bad: dict[str, int] = {}
    for k in range(400):
        charger, conn = f"IT-{k % 8}", 1 + k % 2
        ts = T0 + k * 0.5
        sample = {
            "ts": ts,
            "energy_wh": 1000.0 + k,
            "power_w": 7000.0 + k % 13,
            "current_a": [10.5, 10.25, 10.125],
            "temperature_c": 30.0 + (k % 5) / 4,
        }
        msgs.append((f"ev/{charger}/{conn}/meter", orjson.dumps(sample)))
        truth[(charger, conn, round(ts * 1000))] = sample | {"current_l1_a": 10.5}
        if k % 25 == 0:  # interleave bad input
            msgs.append((f"ev/{charger}/{conn}/meter", b'{"ts": oops}'))
            bad["malformed_json"] = bad.get("malformed_json", 0) + 1
            msgs.append((f"ev/{charger}/{conn}/meter", orjson.dumps({"ts": ts, "soc_pct": 400})))
            bad["out_of_range"] = bad.get("out_of_range", 0) + 1
            # Matches the subscription ocpp/+/+/cp, but no such OCPP version.
            msgs.append((f"ocpp/9.9/{charger}/cp", b'[2, "1", "Heartbeat", {}]'))
            bad["unknown_ocpp_version"] = bad.get("unknown_ocpp_version", 0) + 1
            # Crafted to cost other chargers' samples (issue 19): a connector id
            # str.isdigit() takes and int() refuses; 400 digits beside a NaN
            # (a Python int numpy cannot convert); a 1970 meter clock.
            msgs.append(("ev/CPX/\u00b2/meter", orjson.dumps({"ts": ts})))
            bad["bad_connector_id"] = bad.get("bad_connector_id", 0) + 1
            big = b'{"ts": %r, "power_w": %s, "soc_pct": NaN}' % (ts, b"9" * 400)
            msgs.append(("ev/CPX/1/meter", big))
            bad["non_finite"] = bad.get("non_finite", 0) + 1
            msgs.append(("ev/CPX/1/meter", orjson.dumps({"ts": 1.0})))
            bad["timestamp_before_2010"] = bad.get("timestamp_before_2010", 0) + 1
    # Columnar batches with one bad sample each: the good ones must all be kept.
    for j in range(10):
        charger = f"IT-B{j}"
        ts = [T0 + 1000 + j * 100 + i for i in range(20)]
        power = [5000.0 + i for i in range(20)]
        power[7] = "x"  # type: ignore[call-overload]
        msgs.append((f"ev/{charger}/1/meter", orjson.dumps({"ts": ts, "power_w": power})))
        bad["wrong_type"] = bad.get("wrong_type", 0) + 1
        for i in range(20):
            if i != 7:
                truth[(charger, 1, round(ts[i] * 1000))] = {"power_w": 5000.0 + i}
    return msgs, truth, bad


def publish(broker: Mosquitto, msgs: list[tuple[str, bytes]]) -> None:
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"pub-{uuid.uuid4().hex[:8]}")
    client.connect("127.0.0.1", broker.port)
    client.loop_start()
    infos = [client.publish(t, p, qos=1) for t, p in msgs]
    for info in infos:
        info.wait_for_publish(10)
    client.disconnect()
    client.loop_stop()


def run_collector(
    tmp_path: Path,
    broker: Mosquitto,
    influx: InfluxConfig,
    msgs: list[tuple[str, bytes]],
    expected_messages: int,
) -> Collector:
    cfg = Config(
        data_dir=tmp_path / "data",
        mqtt=MqttConfig(port=broker.port, client_id=f"cw-{uuid.uuid4().hex[:8]}"),
        influx=influx,
        http=HttpConfig(listen=""),
    )
    collector = Collector(cfg)
    collector.start()
    try:
        assert collector.ingest.wait_connected(10), "collector did not connect to mosquitto"
        time.sleep(0.3)  # let the subscription settle before publishing
        publish(broker, msgs)
        deadline = time.monotonic() + 30
        while collector.pipeline.stats.messages < expected_messages and time.monotonic() < deadline:
            time.sleep(0.05)
        assert collector.pipeline.stats.messages == expected_messages
        assert collector.writer is not None
        assert collector.writer.drain(30), collector.writer.last_error
    finally:
        collector.stop()
    return collector


def check_rejections(collector: Collector, tmp_path: Path, bad: dict[str, int]) -> None:
    assert collector.deadletter.counts == bad
    lines = (tmp_path / "data" / "rejected.jsonl").read_bytes().splitlines()
    records = [orjson.loads(line) for line in lines]
    assert sum(bad.values()) == len(records)
    assert all(r["reason"] and r["detail"] and r["topic"] for r in records)


def test_influxdb_v1_write_and_read_back(
    tmp_path: Path, mosquitto: Mosquitto, influxdb: InfluxDB
) -> None:
    msgs, truth, bad = stream()
    db = f"it_{uuid.uuid4().hex[:8]}"
    collector = run_collector(
        tmp_path,
        mosquitto,
        InfluxConfig(url=influxdb.url, database=db, batch_lines=100),
        msgs,
        len(msgs),
    )
    check_rejections(collector, tmp_path, bad)
    series = influxdb.query(
        "SELECT energy_wh, power_w, current_l1_a, temperature_c FROM meter GROUP BY charger, "
        "connector",
        db,
    )
    found: dict[tuple[str, int, int], dict[str, float]] = {}
    for s in series:
        tags = s["tags"]
        assert isinstance(tags, dict)
        cols = s["columns"]
        assert isinstance(cols, list)
        for row in s["values"]:  # type: ignore[attr-defined]
            rec = dict(zip(cols, row, strict=True))
            key = (tags["charger"], int(tags["connector"]), int(rec.pop("time")))
            assert key not in found, f"duplicate point {key}"
            found[key] = {k: v for k, v in rec.items() if v is not None}
    assert len(found) == len(truth)
    for key, sample in truth.items():
        got = found[key]
        for field in ("energy_wh", "power_w", "current_l1_a", "temperature_c"):
            if field in sample:
                assert got[field] == sample[field], (key, field)
            else:
                assert field not in got


def test_victoriametrics_v2_write_and_export(
    tmp_path: Path, mosquitto: Mosquitto, victoriametrics: VictoriaMetrics
) -> None:
    msgs, truth, bad = stream()
    collector = run_collector(
        tmp_path,
        mosquitto,
        InfluxConfig(url=victoriametrics.url, api="v2", bucket="cw", org="noc", batch_lines=250),
        msgs,
        len(msgs),
    )
    check_rejections(collector, tmp_path, bad)
    rows = victoriametrics.export('{__name__="meter_power_w"}')
    found: dict[tuple[str, int, int], float] = {}
    for row in rows:
        metric = row["metric"]
        assert isinstance(metric, dict)
        for v, t in zip(row["values"], row["timestamps"], strict=True):  # type: ignore[call-overload]
            key = (metric["charger"], int(metric["connector"]), int(t))
            assert key not in found
            found[key] = v
    assert found == {k: s["power_w"] for k, s in truth.items()}


def test_pipeline_cpus_hold_every_collector_thread_and_are_given_back_on_stop(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    before = os.sched_getaffinity(0)
    cpu = max(before)
    threads_before = set(threading.enumerate())
    cfg = Config(
        data_dir=tmp_path / "data",
        mqtt=MqttConfig(port=mosquitto.port, client_id=f"cw-{uuid.uuid4().hex[:8]}"),
        influx_file=tmp_path / "meter.lp",
        http=HttpConfig(listen="127.0.0.1:0"),
        cpus=(cpu,),
    )
    collector = Collector(cfg)
    collector.start()
    try:
        assert collector.ingest.wait_connected(10), "collector did not connect to mosquitto"
        started = [t for t in threading.enumerate() if t not in threads_before]
        names = {t.name for t in started}
        assert {"collector.pipeline", "collector.mqtt_loop", "collector.notify"} <= names
        for t in started:
            assert t.native_id is not None
            assert os.sched_getaffinity(t.native_id) == {cpu}, t.name
        time.sleep(0.3)
        msgs = [
            (f"ev/CP{i}/1/meter", orjson.dumps({"ts": T0 + i, "power_w": 1.0})) for i in range(50)
        ]
        publish(mosquitto, msgs)
        deadline = time.monotonic() + 10
        while collector.pipeline.stats.messages < len(msgs) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert collector.pipeline.stats.samples == len(msgs)
    finally:
        collector.stop()
    assert os.sched_getaffinity(0) == before
