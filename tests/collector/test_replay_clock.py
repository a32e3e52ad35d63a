"""Replay advances the detectors' and rules' clock between frames as a live
collector's ticks do: a silence is judged when it becomes true, not when the
next frame of the capture happens to arrive."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from itertools import pairwise
from pathlib import Path

import orjson
import pytest

from chargewatch.collector.replay import replay

T0 = datetime(2026, 11, 24, 3, 0, tzinfo=UTC).timestamp()


def _frame(
    t: float, charger: str, frame: list[object], source: str = "cp"
) -> tuple[float, str, bytes]:
    return (t, f"ocpp/1.6/{charger}/{source}", json.dumps(frame).encode())


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat().replace("+00:00", "Z")


def _boot(charger: str, t: float) -> list[tuple[float, str, bytes]]:
    boot = {"chargePointVendor": "V", "chargePointModel": "M"}
    answer = {"status": "Accepted", "currentTime": _iso(t), "interval": 60}
    status = {"connectorId": 1, "errorCode": "NoError", "status": "Available"}
    return [
        _frame(t, charger, [2, f"{charger}-b", "BootNotification", boot]),
        _frame(t + 0.2, charger, [3, f"{charger}-b", answer], source="csms"),
        _frame(t + 1, charger, [2, f"{charger}-s", "StatusNotification", status]),
    ]


def _heartbeats(charger: str, start: float, end: float) -> list[tuple[float, str, bytes]]:
    out = []
    t, k = start, 0
    while t < end:
        out.append(_frame(t, charger, [2, f"{charger}-h{k}", "Heartbeat", {}]))
        t, k = t + 60.0, k + 1
    return out


def test_offline_is_paged_when_the_silence_becomes_true_not_at_the_next_frame(
    tmp_path: Path,
) -> None:
    # CP1 heartbeats every 60 s (the BootNotification answer's interval) for 10
    # min, then stops; the capture's next frame comes 40 min later, from CP2.
    msgs = _boot("CP1", T0) + _heartbeats("CP1", T0 + 60, T0 + 660)
    last_hb = msgs[-1][0]
    msgs += _boot("CP2", T0 + 3000)
    replay(sorted(msgs), tmp_path / "out")
    alerts = [
        orjson.loads(x) for x in (tmp_path / "out" / "alerts.jsonl").read_bytes().splitlines()
    ]
    firing = [
        a
        for a in alerts
        if a["alertname"] == "ChargerOffline"
        and a["state"] == "firing"
        and a["labels"]["charger"] == "CP1"
    ]
    assert firing, alerts
    at = min(datetime.fromisoformat(a["at"].replace("Z", "+00:00")).timestamp() for a in firing)
    # Silent 2 x 60 s + 30 s, then the next rule evaluation (every 30 s) and
    # the replay's tick step (5 s): not 40 min later.
    assert last_hb + 150 <= at <= last_hb + 150 + 30 + 5, at - last_hb


def test_a_week_long_gap_costs_a_bounded_number_of_ticks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A sparse capture (two excerpts a week apart) is ticked densely at the start of
    the silence and ever more sparsely after: ~1,800 ticks, not 120,000 (at 5 s
    steps such a gap cost 87 s of CPU), and the charger is still paged offline."""
    from chargewatch.collector.pipeline import Pipeline  # noqa: PLC0415

    calls: list[float] = []
    real = Pipeline.tick

    def counting(self: Pipeline, now: float) -> None:
        calls.append(now)
        real(self, now)

    monkeypatch.setattr(Pipeline, "tick", counting)
    week = 7 * 86_400.0
    frames = [*_boot("CP1", T0), *_heartbeats("CP1", T0 + 60, T0 + 300)]
    frames += _boot("CP1", T0 + week)
    replay(frames, tmp_path)
    assert 1_000 < len(calls) < 3_000
    steps = [b - a for a, b in pairwise(calls) if b - a > 0]
    assert min(steps) <= 5.0 + 1e-9 and max(steps) <= week / 240 * 1.01
    alerts = [orjson.loads(x) for x in (tmp_path / "alerts.jsonl").read_bytes().splitlines()]
    assert any(a["alertname"] == "ChargerOffline" and a["state"] == "firing" for a in alerts)
