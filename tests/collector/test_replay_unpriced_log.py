"""Replay logs an unpriced session once per charger and reason, then a summary;
the counts stay in the result (replay's summary) and the metric.

It used to log one warning per session: thousands of lines per evaluation run.
"""

from __future__ import annotations

import logging
from pathlib import Path

import orjson
import pytest
from prometheus_client import REGISTRY

from chargewatch.collector.replay import replay
from chargewatch.config.fleet_file import load_fleet
from chargewatch.simulator import SimConfig, Simulation


def unpriced_metric() -> float:
    return (
        REGISTRY.get_sample_value("chargewatch_sessions_unpriced_total", {"reason": "no_tariff"})
        or 0.0
    )


def test_unpriced_sessions_are_logged_once_per_charger(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    sim = Simulation(
        SimConfig(chargers=4, duration=24 * 3600, interval=60.0, seed=5, arrival_rate=3.0)
    )
    capture = tmp_path / "capture.jsonl"
    sim.write_capture(str(capture))
    sim.write_fleet(str(tmp_path / "fleet.yaml"))  # no tariffs: every session unpriced
    before = unpriced_metric()
    caplog.set_level(logging.WARNING)
    result = replay(capture, tmp_path / "out", fleet=load_fleet(tmp_path / "fleet.yaml"))

    sessions = [
        orjson.loads(x) for x in (tmp_path / "out/sessions.jsonl").read_bytes().splitlines()
    ]
    billable = [s for s in sessions if "failed_start" not in s["quality"]]
    chargers = {s["charger_id"] for s in billable}
    assert len(billable) > len(chargers)  # some charger repeats: logged once all the same
    assert result.unpriced == len(billable)
    assert result.unpriced_by_reason == {"no_tariff": len(billable)}
    assert unpriced_metric() - before == len(billable)

    warned = [r.getMessage() for r in caplog.records if "unpriced" in r.getMessage()]
    each = [m for m in warned if m.startswith("session ")]
    assert len(each) == len(chargers)
    assert {m.split("(")[1].split(")")[0] for m in each} == chargers
    summary = [m for m in warned if not m.startswith("session ")]
    assert summary == [
        f"{len(billable)} sessions unpriced (no_tariff: {len(billable)}); "
        "the first of each charger and reason is logged above"
    ]
