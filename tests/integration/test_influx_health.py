"""InfluxDB 1.6: the retention policies the collector writes to, and /readyz telling the truth.

The README's sample config names `rollup_retention_policy: downsampled`; on a
fresh InfluxDB that policy did not exist, every rollup write failed with HTTP 500
"retention policy not found" and was retried forever while /readyz said ok.
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import httpx
import orjson
import pytest
from prometheus_client import REGISTRY

from chargewatch.collector.service import Collector
from chargewatch.config.settings import Config, HttpConfig
from chargewatch.ingest.mqtt import MqttConfig
from chargewatch.storage.influx import InfluxConfig
from tests.integration.test_ingest import publish
from tests.services import InfluxDB, Mosquitto

pytestmark = pytest.mark.integration

T0 = 1_795_000_000.0


def samples(n: int) -> list[tuple[str, bytes]]:
    return [
        ("ev/RP-1/1/meter", orjson.dumps({"ts": T0 + k, "power_w": 7000.0, "energy_wh": 1e3 + k}))
        for k in range(n)
    ]


def collector(tmp_path: Path, broker: Mosquitto, influx: InfluxConfig) -> Collector:
    cfg = Config(
        data_dir=tmp_path / "data",
        mqtt=MqttConfig(port=broker.port, client_id=f"cw-{uuid.uuid4().hex[:8]}"),
        influx=influx,
        http=HttpConfig(listen="127.0.0.1:0"),
    )
    return Collector(cfg)


def readyz(c: Collector) -> tuple[int, dict[str, object]]:
    assert c.http is not None
    r = httpx.get(f"http://127.0.0.1:{c.http.port}/readyz", timeout=5)
    return r.status_code, r.json()


def wait(pred: object, timeout_s: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if pred():  # type: ignore[operator]
            return True
        time.sleep(0.1)
    return False


def test_the_rollup_policy_is_created_on_a_fresh_influxdb(
    tmp_path: Path, mosquitto: Mosquitto, influxdb: InfluxDB
) -> None:
    db = f"rp_{uuid.uuid4().hex[:8]}"
    c = collector(
        tmp_path,
        mosquitto,
        InfluxConfig(url=influxdb.url, database=db, rollup_retention_policy="downsampled"),
    )
    c.start()
    try:
        assert c.ingest.wait_connected(10)
        time.sleep(0.3)
        status_msg = {"ts": T0, "status": "Charging", "error_code": "NoError"}
        # A status change is written on change, to the rollup policy.
        publish(mosquitto, [*samples(10), ("ev/RP-1/1/status", orjson.dumps(status_msg))])
        assert wait(lambda: c.pipeline.stats.messages >= 11)
        assert c.writer is not None and c.rollup_writer is not None
        c.rollup_writer.flush()
        assert c.writer.drain(20) and c.rollup_writer.drain(20), c.rollup_writer.last_error
        status, body = readyz(c)
        assert status == 200, body
        assert body["influx_rollup_error"] == ""
    finally:
        c.stop()
    policies = influxdb.query(f'SHOW RETENTION POLICIES ON "{db}"', db)
    assert "downsampled" in str(policies)
    stored = influxdb.query('SELECT status FROM "downsampled".status', db)
    assert "Charging" in str(stored), "nothing stored in the created policy"


def test_a_missing_policy_is_a_named_configuration_error_and_recovers(
    tmp_path: Path, mosquitto: Mosquitto, influxdb: InfluxDB
) -> None:
    db = f"rp_{uuid.uuid4().hex[:8]}"
    c = collector(
        tmp_path,
        mosquitto,
        # The raw policy is never created by the collector: its duration is the
        # operator's decision, so a missing one must say how to create it.
        InfluxConfig(url=influxdb.url, database=db, retention_policy="raw", max_backoff_s=0.5),
    )
    c.start()
    try:
        assert c.ingest.wait_connected(10)
        time.sleep(0.3)
        publish(mosquitto, samples(20))
        assert wait(lambda: c.pipeline.stats.messages >= 20)
        assert c.writer is not None
        c.writer.flush()
        status, body = readyz(c)
        assert status == 503
        assert "retention policy 'raw' does not exist" in str(body["influx_error"])
        assert 'create it with: CREATE RETENTION POLICY "raw"' in str(body["influx_error"])
        gauge = REGISTRY.get_sample_value(
            "chargewatch_influx_misconfigured", {"target": f"{db}.raw"}
        )
        assert gauge == 1.0
        influxdb.query(f'CREATE RETENTION POLICY "raw" ON "{db}" DURATION 90d REPLICATION 1', db)
        assert c.writer.drain(20), c.writer.last_error  # the spooled lines arrive
        assert wait(lambda: readyz(c)[0] == 200)
    finally:
        c.stop()
    rows = influxdb.query('SELECT count(power_w) FROM "raw".meter', db)
    assert "20" in str(rows)
