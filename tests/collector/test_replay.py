"""`chargewatch replay` over a simulated capture: alerts, rejections, capture time as the clock."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import orjson

from chargewatch.cli import main
from chargewatch.simulator import FaultSpec, SimConfig, Simulation


def test_replay_writes_alerts_and_rejections(tmp_path: Path) -> None:
    sim = Simulation(
        SimConfig(
            chargers=6,
            duration=3 * 3600,
            interval=10.0,
            protocol="ocpp1.6",
            seed=3,
            faults=(FaultSpec("GroundFailure", "CP0002", 1, start=1800, duration=1200),),
        )
    )
    capture = tmp_path / "capture.jsonl"
    sim.write_capture(str(capture))
    sim.write_fleet(str(tmp_path / "fleet.yaml"))
    # Bad lines interleaved in the capture: each must be rejected with a reason.
    lines = capture.read_bytes().splitlines()
    at = orjson.loads(lines[100])["ts"]
    bad = [
        {"ts": at, "topic": "ocpp/1.6/CP0001/cp", "payload": "[2, broken"},
        {"ts": at, "topic": "ev/CP0001/1/meter", "payload": {"ts": 1.0, "power_w": 5}},
        {"ts": at, "topic": "ocpp/1.6/CP0001/cp", "payload": [2, "x1", "MeterValues", {}]},
    ]
    lines[101:101] = [orjson.dumps(b) for b in bad]
    capture.write_bytes(b"\n".join(lines) + b"\n")
    out = tmp_path / "out"
    assert (
        main(["replay", str(capture), "--out", str(out), "--fleet", str(tmp_path / "fleet.yaml")])
        == 0
    )

    rejected = [orjson.loads(x) for x in (out / "rejected.jsonl").read_bytes().splitlines()]
    assert sorted(r["reason"] for r in rejected) == [
        "bad_timestamp",
        "malformed_json",
        "schema_violation",
    ]
    alerts = [orjson.loads(x) for x in (out / "alerts.jsonl").read_bytes().splitlines()]
    ground = [a for a in alerts if a["alertname"] == "OcppGroundFailure"]
    assert [a["state"] for a in ground] == ["firing", "resolved"]
    assert ground[0]["labels"]["charger"] == "CP0002"
    # Capture time is the clock: the alert fires after the fault starts (plus the
    # rule's `for:`) and resolves after it ends, in capture time.
    start = sim.config.start
    fired = ground[0]["at"]
    resolved = ground[1]["at"]
    t_fire = datetime.fromisoformat(fired).timestamp() - start
    t_res = datetime.fromisoformat(resolved).timestamp() - start
    assert 1800 < t_fire < 1800 + 300
    assert 3000 <= t_res < 3000 + 300
