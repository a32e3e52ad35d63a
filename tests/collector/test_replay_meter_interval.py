"""`chargewatch replay` on an OCPP capture where the CSMS lengthens the meter-value
interval mid-session: the whole path (decoder, detectors, shipped rules) pages
nobody for the longer gaps that follow."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from chargewatch.cli import main

T0 = datetime(2026, 11, 24, 3, 0, tzinfo=UTC).timestamp()
START = T0 + 120.0
CP = "CP-THROTTLED"


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _capture(path: Path, later_s: int) -> Path:
    """Boot (60 s heartbeats throughout), a session sampled every 10 s for 10
    min, then ChangeConfiguration MeterValueSampleInterval=``later_s``
    (Accepted) and samples every ``later_s`` + 2 s for five intervals."""
    frames: list[tuple[float, str, list[Any]]] = []

    def cp(t: float, frame: list[Any]) -> None:
        frames.append((t, "cp", frame))

    def csms(t: float, frame: list[Any]) -> None:
        frames.append((t, "csms", frame))

    cp(T0, [2, "b", "BootNotification", {"chargePointVendor": "V", "chargePointModel": "M"}])
    csms(T0 + 0.2, [3, "b", {"status": "Accepted", "currentTime": _iso(T0), "interval": 60}])
    cp(T0 + 1, [2, "s0", "StatusNotification",
                {"connectorId": 1, "errorCode": "NoError", "status": "Available"}])  # fmt: skip
    csms(
        T0 + 30,
        [2, "c0", "ChangeConfiguration", {"key": "MeterValueSampleInterval", "value": "10"}],
    )
    cp(T0 + 30.3, [3, "c0", {"status": "Accepted"}])
    start = {"connectorId": 1, "idTag": "TAG1", "meterStart": 1000, "timestamp": _iso(START)}
    cp(START, [2, "st", "StartTransaction", start])
    csms(START + 0.2, [3, "st", {"transactionId": 7, "idTagInfo": {"status": "Accepted"}}])
    cp(START + 0.5, [2, "s1", "StatusNotification",
                     {"connectorId": 1, "errorCode": "NoError", "status": "Charging"}])  # fmt: skip
    change = START + 600
    times = [START + 10.0 * k for k in range(1, 60)]
    times += [change + (later_s + 2.0) * k for k in range(1, 6)]
    csms(change, [2, "c1", "ChangeConfiguration",
                  {"key": "MeterValueSampleInterval", "value": str(later_s)}])  # fmt: skip
    cp(change + 0.4, [3, "c1", {"status": "Accepted"}])
    for k, t in enumerate(times):
        sv = [
            {"value": str(1000 + round(2.0 * (t - START))), "unit": "Wh"},
            {"value": "7200", "measurand": "Power.Active.Import", "unit": "W"},
        ]
        cp(t, [2, f"m{k}", "MeterValues", {"connectorId": 1, "transactionId": 7,
               "meterValue": [{"timestamp": _iso(t), "sampledValue": sv}]}])  # fmt: skip
    end = times[-1] + 5
    stop = {"transactionId": 7, "meterStop": 1000 + round(2.0 * (end - START)),
            "timestamp": _iso(end), "reason": "EVDisconnected"}  # fmt: skip
    cp(end, [2, "sp", "StopTransaction", stop])
    csms(end + 0.2, [3, "sp", {"idTagInfo": {"status": "Accepted"}}])
    cp(end + 1, [2, "s2", "StatusNotification",
                 {"connectorId": 1, "errorCode": "NoError", "status": "Available"}])  # fmt: skip
    t, k = T0 + 60.0, 0
    while t < end + 900:
        cp(t + 0.3, [2, f"h{k}", "Heartbeat", {}])
        t, k = t + 60.0, k + 1
    path.write_bytes(
        b"".join(
            orjson.dumps({"ts": _iso(t), "topic": f"ocpp/1.6/{CP}/{src}", "payload": f}) + b"\n"
            for t, src, f in sorted(frames, key=lambda x: x[0])
        )
    )
    return path


def test_replay_pages_nobody_after_the_csms_lengthens_the_interval(tmp_path: Path) -> None:
    # 10 s -> 900 s: before, the learned 10 s cadence (300 s floor) opened a
    # finding 300 s into each 902 s gap and the shipped rule (`for: 5m`) paged
    # StaleTelemetry. At 300 s the same false finding lasts 2 s, too short for the
    # rule to page: tests/detectors/test_stale_meter_interval.py covers it.
    capture = _capture(tmp_path / "capture.jsonl", 900)
    fleet = tmp_path / "fleet.yaml"
    fleet.write_text(f"sites:\n  - {{id: depot}}\nchargers:\n  - {{id: {CP}, site: depot}}\n")
    out = tmp_path / "out"
    assert main(["replay", str(capture), "--out", str(out), "--fleet", str(fleet)]) == 0
    alerts = [json.loads(x) for x in (out / "alerts.jsonl").read_text().splitlines()]
    assert [a for a in alerts if a["labels"].get("severity") in ("warning", "critical")] == []
    assert [a for a in alerts if a["alertname"] == "StaleTelemetry"] == []
    (session,) = [json.loads(x) for x in (out / "sessions.jsonl").read_text().splitlines()]
    assert session["charger_id"] == CP  # the capture went through whole
