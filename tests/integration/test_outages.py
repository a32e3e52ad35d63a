"""Outages of the real services: nothing is lost.

InfluxDB stopped for 60 s in the middle of a run: the writer spools to disk and
drains in order after recovery; every sample is present exactly once.
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import numpy as np
import pytest

from chargewatch.model.batch import MeterBatch
from chargewatch.model.fleet import ConnectorIndex
from chargewatch.storage.influx import InfluxConfig, InfluxWriter
from chargewatch.storage.lineproto import MeterLines
from tests.services import InfluxDB

pytestmark = [pytest.mark.integration, pytest.mark.slow]

T0 = 1_795_000_000.0


def test_influxdb_outage_spools_and_drains_exactly_once(tmp_path: Path) -> None:
    influx = InfluxDB(tmp_path / "influx")
    influx.start()
    try:
        index = ConnectorIndex()
        for c in range(20):
            index.id(f"OUT-{c}", 1)
        lines_of = MeterLines(index)
        db = f"outage_{uuid.uuid4().hex[:6]}"
        writer = InfluxWriter(
            InfluxConfig(
                url=influx.url,
                database=db,
                batch_lines=500,
                flush_interval_s=0.2,
                max_backoff_s=2.0,
            ),
            tmp_path / "spool",
        )
        writer.start()
        total = 0

        def send(step: int) -> None:
            nonlocal total
            n = 400
            v = np.full((n, 11), np.nan)
            v[:, 1] = np.arange(n) + step * n
            b = MeterBatch(
                (np.arange(n) % 20).astype(np.int32),
                T0 + step * 20 + np.arange(n) // 20,
                np.zeros(n),
                v,
            )
            writer.write(lines_of.lines(b))
            total += n

        for step in range(5):
            send(step)
            time.sleep(0.2)
        assert writer.drain(20)
        influx.stop()  # the outage: 60 s, while data keeps coming
        t_end = time.monotonic() + 60
        step = 5
        while time.monotonic() < t_end:
            send(step)
            step += 1
            time.sleep(1.0)
        writer.flush()
        assert writer.spool.bytes > 0, "nothing was spooled during the outage"
        assert writer.last_error
        influx.start()
        assert writer.drain(120), writer.last_error
        writer.stop()
        rows = influx.query("SELECT count(power_w) FROM meter", db)[0]["values"]
        assert rows[0][1] == total  # type: ignore[index]
        # exactly once: no duplicate (series, time) and every value present
        got = influx.query("SELECT power_w FROM meter GROUP BY charger", db)
        values = sorted(v[1] for s in got for v in s["values"])  # type: ignore[union-attr]
        assert values == list(np.arange(total, dtype=float))
    finally:
        influx.cleanup()
