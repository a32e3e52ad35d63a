"""The session stage fills the frame's session columns, so rules on them fire.

``session_energy_wh`` and ``session_active`` were listed by ``chargewatch rules
signals`` but nothing produced them: a rule on either never fired.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest

from chargewatch.collector.replay import replay
from chargewatch.collector.session_stage import SessionStage
from chargewatch.config.fleet_file import load_fleet
from chargewatch.model.batch import MeterBatch
from chargewatch.model.fleet import ConnectorIndex
from chargewatch.sessions.session_engine import SessionConfig, SessionEngine
from chargewatch.simulator import SimConfig, Simulation
from tests.billing.sessionkit import T0, batch, start, status, stop


def ts(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


RULES = """groups:
  - name: sessions
    interval: 30s
    rules:
      - alert: BigSession
        expr: session_active and session_energy_wh > 5000
        labels: {severity: info}
"""


def test_a_rule_on_the_running_sessions_energy_fires(tmp_path: Path) -> None:
    sim = Simulation(
        SimConfig(chargers=3, duration=6 * 3600, interval=60.0, seed=1, arrival_rate=12.0)
    )
    capture = tmp_path / "capture.jsonl"
    sim.write_capture(str(capture))
    sim.write_fleet(str(tmp_path / "fleet.yaml"))
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "sessions.yaml").write_text(RULES)
    out = tmp_path / "out"
    replay(capture, out, fleet=load_fleet(tmp_path / "fleet.yaml"), rules=rules)

    alerts = [orjson.loads(x) for x in (out / "alerts.jsonl").read_bytes().splitlines()]
    alerts = [a for a in alerts if a["alertname"] == "BigSession"]
    sessions = [orjson.loads(x) for x in (out / "sessions.jsonl").read_bytes().splitlines()]
    big = [s for s in sessions if s["energy_wh"] > 5000]
    assert big, "the simulation must hold finished sessions above the threshold"

    def of(a: dict[str, Any]) -> list[dict[str, Any]]:
        labels = a["labels"]
        return [
            s
            for s in sessions
            if (s["charger_id"], str(s["connector_id"])) == (labels["charger"], labels["connector"])
        ]

    fired = [a for a in alerts if a["state"] == "firing"]
    assert fired
    for a in fired:
        # Inside a finished session of its connector that ended above 5 kWh, or
        # after all of them (a session still running when the capture ends).
        at, mine = ts(a["at"]), of(a)
        inside = [s for s in mine if ts(s["start"]) < at <= ts(s["stop"])]
        assert inside[0]["energy_wh"] > 5000 if inside else all(ts(s["stop"]) < at for s in mine)
    # The alert resolves when its session stops (within a rule evaluation and a chunk).
    resolved = [a for a in alerts if a["state"] == "resolved"]
    assert resolved
    for a in resolved:
        stops = [ts(s["stop"]) for s in of(a)]
        assert any(0 <= ts(a["at"]) - stop <= 60 for stop in stops), a


def test_charging_and_idle_minutes_follow_the_open_sessions_power_track() -> None:
    """20 min at 7.4 kW then 10 min at 0 W, sampled every 60 s: the rule frame
    reads ~20 charging and ~10 idle minutes on that connector, 0 elsewhere, and
    nothing once the session has stopped."""
    index = ConnectorIndex()
    stage = SessionStage(SessionEngine(index, SessionConfig()))
    ts_ = [T0 + 60.0 * k for k in range(31)]
    power = [7_400.0] * 21 + [0.0] * 10
    energy = [5_000.0]
    for k in range(1, 31):
        energy.append(energy[-1] + (power[k - 1] + power[k]) / 2 * 60.0 / 3600.0)
    stage.on_batch(
        MeterBatch.empty(),
        [status("CP", "Preparing", T0 - 5), start("CP", "1", T0, 5_000.0)],
        T0 + 1,
    )
    stage.on_batch(batch(index, "CP", 1, ts_, energy, power), [], ts_[-1] + 1)
    stage.tick(ts_[-1] + 2)
    frame = stage.signals(ts_[-1] + 2)
    c = index.get("CP", 1)
    assert c is not None
    # The last charging interval (7.4 kW -> 0 W) is split at the 50 W crossing.
    assert frame["charging_minutes"][c] == pytest.approx(20.0 + 59.6 / 60.0, abs=0.01)
    assert frame["idle_minutes"][c] == pytest.approx(9.0 + 0.4 / 60.0, abs=0.01)
    assert frame["session_active"][c]
    assert frame["session_energy_wh"][c] == pytest.approx(energy[-1] - 5_000.0)
    others = np.arange(len(frame["charging_minutes"])) != c
    assert not frame["charging_minutes"][others].any()
    end = ts_[-1] + 30
    stage.on_batch(
        MeterBatch.empty(),
        [stop("CP", "1", end, energy[-1]), status("CP", "Available", end)],
        end + 1,
    )
    stage.tick(end + 2)
    after = stage.signals(end + 2)
    assert after["charging_minutes"][c] == 0.0 and not after["session_active"][c]
