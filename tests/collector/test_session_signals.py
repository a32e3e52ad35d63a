"""The session stage fills the frame's session columns, so rules on them fire.

``session_energy_wh`` and ``session_active`` were listed by ``chargewatch rules
signals`` but nothing produced them: a rule on either never fired.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import orjson

from chargewatch.collector.replay import replay
from chargewatch.config.fleet_file import load_fleet
from chargewatch.simulator import SimConfig, Simulation


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
