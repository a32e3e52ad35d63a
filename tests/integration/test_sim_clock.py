"""`chargewatch simulate --speed 10` against a collector on the simulator's clock.

On the wall clock such a collector saw samples from its future: negative status
ages, rollup minutes that closed before their samples came (0 power beside
21.7 kW raw), and chargers that never went offline. Following the clock the
simulator announces (``run --clock simulator``), every stage reads one time.
"""

from __future__ import annotations

import re
import threading
import time
import uuid
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path

import httpx
import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from chargewatch.cli.demo_story import short_sessions
from chargewatch.collector.service import Collector
from chargewatch.collector.sim_clock import FollowedClock
from chargewatch.config.settings import Config, HttpConfig
from chargewatch.ingest.mqtt import MqttConfig
from chargewatch.simulator import FaultSpec, SimConfig, Simulation
from chargewatch.simulator.publish import publish
from tests.services import Mosquitto

pytestmark = pytest.mark.integration

SPEED = 10.0


def _lines(path: Path, measurement: str) -> list[tuple[dict[str, str], dict[str, str], int]]:
    """(tags, fields, ms) of every line of ``measurement`` (numeric fields only)."""
    out = []
    for line in path.read_text().splitlines():
        if line.startswith(measurement + ","):
            head, fields, ts = re.split(r"(?<!\\) ", line)  # an escaped space is in a tag
            tags = re.split(r"(?<!\\),", head)[1:]
            pairs = (
                dict(x.split("=", 1) for x in tags),
                dict(f.split("=", 1) for f in fields.split(",")),
            )
            out.append((*pairs, int(ts)))
    return out


def _clear_retained(port: int, topics: list[str]) -> None:
    """The broker is shared by the session's tests: leave no offline flags behind."""
    client = mqtt.Client(CallbackAPIVersion.VERSION2)
    client.connect("127.0.0.1", port)
    client.loop_start()
    for topic in topics:
        client.publish(topic, b"", qos=1, retain=True).wait_for_publish(5)
    client.disconnect()
    client.loop_stop()


def test_simulate_at_speed_10_with_the_collector_on_its_clock(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    # A fixed start: which connectors are free for top-ups depends on the hour
    # (at 20:00 UTC the only idle one was on the charger that goes offline).
    start = datetime(2026, 12, 7, 12, tzinfo=UTC).timestamp()
    sim = Simulation(
        SimConfig(
            chargers=6,
            sites=1,
            seed=2,
            start=start,
            duration=420.0,  # 42 s of wall time
            interval=5.0,
            arrival_rate=4.0,
            faults=(FaultSpec("charger_offline", "2", start=60.0, duration=330.0),),
        )
    )
    # Cars charging while it runs, so rollups have power to agree on.
    assert len(short_sessions(sim, n=3, first=20.0, every=20.0)) >= 1
    offline = sim.plan.chargers[2].id
    cfg = Config(
        data_dir=tmp_path / "data",
        mqtt=MqttConfig(port=mosquitto.port, client_id=f"cw-{uuid.uuid4().hex[:6]}"),
        influx_file=tmp_path / "meter.lp",
        http=HttpConfig(listen="127.0.0.1:0"),
    )
    clock = FollowedClock()
    c = Collector(cfg, fleet=sim.fleet(), clock=clock)
    c.start()
    assert c.http is not None
    ages: list[float] = []
    try:
        assert c.ingest.wait_connected(10)
        pub = threading.Thread(
            target=publish,
            args=(sim,),
            kwargs={"host": "127.0.0.1", "port": mosquitto.port, "speed": SPEED, "qos": 1},
        )
        pub.start()
        with httpx.Client(base_url=f"http://127.0.0.1:{c.http.port}/api/v1") as api:
            while pub.is_alive():
                for row in api.get("/fleet").json()["connectors"]:
                    ages += [row[k] for k in ("status_age_s", "last_seen_age_s") if k in row]
                time.sleep(0.5)
        pub.join()
        time.sleep(1.0)  # the last messages through the pipeline
    finally:
        c.stop()
        _clear_retained(mosquitto.port, [f"ev/{ch.id}/online" for ch in sim.plan.chargers])

    assert clock.speed == SPEED
    assert ages, "the fleet API showed no connector"
    assert min(ages) >= 0.0, min(ages)

    fired = [t for t in c.recent_transitions if t.state == "firing"]
    assert any(
        t.alertname == "ChargerOffline" and t.labels.get("charger") == offline for t in fired
    ), [(t.alertname, t.labels.get("charger")) for t in fired]

    # Every rollup minute is the mean of the raw samples in it, and the minutes
    # that closed hold every sample (none dropped as late).
    raw: dict[tuple[str, str, int], list[float]] = defaultdict(list)
    for tags, fields, ms in _lines(tmp_path / "meter.lp", "meter"):
        if "power_w" in fields:
            key = (tags["charger"], tags["connector"], ms // 60_000 * 60_000)
            raw[key].append(float(fields["power_w"]))
    rollups = _lines(tmp_path / "meter.lp", "meter_1m")
    assert rollups, "no rollup minute was written"
    charging = 0
    for tags, fields, ms in rollups:
        samples = raw[(tags["charger"], tags["connector"], ms)]
        assert int(fields["samples"].rstrip("i")) == len(samples), (tags, ms)
        assert float(fields["power_w_mean"]) == pytest.approx(sum(samples) / len(samples))
        charging += float(fields["power_w_mean"]) > 1000.0
    assert charging, "no rollup minute shows charging power"
    # Closed minutes miss none (the last ones are still within their grace).
    assert c.downsampler is not None and c.downsampler.closed_until is not None
    closed = {k for k in raw if k[2] // 1000 < c.downsampler.closed_until}
    assert closed and closed <= {(t["charger"], t["connector"], ms) for t, _, ms in rollups}
    assert c.downsampler.late == 0
