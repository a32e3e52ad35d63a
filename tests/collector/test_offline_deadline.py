"""ChargerOffline pages at the detector's deadline, not at the rule group's
next evaluation: issue #17 point 4 allows 150 s from the last heartbeat at a
60 s heartbeat (2 x 60 s + 30 s), measured to the alert as replay (and
Alertmanager) shows it. The rule group runs every 10 s on its own grid, so the
phase of the silence against that grid must not matter."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import orjson
import pytest

from chargewatch.collector.replay import replay

T0 = 1_790_000_000.0
HEARTBEAT_S = 60.0
BOUND_S = 2 * HEARTBEAT_S + 30.0


def _capture(phase: float, background: bool) -> Iterator[tuple[float, str, bytes]]:
    """CPA heartbeats every 60 s from ``T0 + phase`` for 10 min, then nothing
    for 10 min; with ``background``, CPB heartbeats every 3 s throughout, so
    replay is in the middle of a chunk when CPA's deadline comes."""
    msgs = [(T0 + phase + k * HEARTBEAT_S, "CPA") for k in range(11)]
    end = T0 + 1200.0
    msgs.append((end, "CPB"))  # the capture's end: liveness is judged up to here
    if background:
        msgs += [(T0 + 0.4 + 3.0 * k, "CPB") for k in range(int(1200 / 3.0))]
    for cp in ("CPA", "CPB"):  # a connector each: heartbeats are charger-wide
        status = {"ts": T0, "status": "Available", "error_code": "NoError"}
        yield T0, f"ev/{cp}/1/status", orjson.dumps(status)
    for t, cp in sorted(msgs):
        yield t, f"ev/{cp}/heartbeat", orjson.dumps({"ts": t})


def _t(s: str) -> float:
    return datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp()


@pytest.mark.parametrize("background", [False, True], ids=["quiet", "busy"])
@pytest.mark.parametrize("phase", [0.0, 1.3, 4.9, 7.7, 9.95])
def test_offline_paged_at_most_150s_after_the_last_heartbeat(
    tmp_path: Path, phase: float, background: bool
) -> None:
    replay(_capture(phase, background), tmp_path)
    rows = [json.loads(x) for x in (tmp_path / "alerts.jsonl").read_text().splitlines()]
    fired = [
        r
        for r in rows
        if r["state"] == "firing"
        and r["alertname"] == "ChargerOffline"
        and r["labels"]["charger"] == "CPA"
    ]
    assert len(fired) == 1  # one alert per charger
    last = T0 + phase + 10 * HEARTBEAT_S
    # The alert's time (activeAt; startsAt, for: 0s) is the deadline itself
    # (rfc3339 keeps milliseconds).
    assert _t(fired[0]["at"]) - last == pytest.approx(BOUND_S, abs=1e-3)
    if background:  # heard every 3 s: never offline
        assert not [r for r in rows if r["labels"].get("charger") == "CPB"]
