"""Remediation rate limits: token buckets per charger, per site and fleet-wide, and pause.

Time is handed in (the evaluation clock), so every test steps it by hand.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from chargewatch.alerting import AlertEngine
from chargewatch.alerting.remediation import (
    BucketSpec,
    RateLimiter,
    RateLimits,
    TokenBucket,
)
from chargewatch.alerting.testing import make_frame

RULES = """\
groups:
  - name: fix
    interval: 1m
    rules:
      - alert: OcppInternalError
        expr: error_code == "InternalError"
        labels: {severity: warning, error_code: InternalError}
        actions:
          - command: Reset
            delay: 1m
            max_attempts: 3
            cooldown: 2m
"""


def _engine(tmp_path: Path, limits: RateLimits | None = None) -> AlertEngine:
    (tmp_path / "fix.yaml").write_text(RULES)
    return AlertEngine(tmp_path, allowlist={"*": ["Reset"]}, remediation_limits=limits)


def _frame(faulted: list[tuple[str, str]]) -> Any:
    """One connector per (charger, site), each reporting InternalError."""
    f = make_frame(
        [(c, 1) for c, _ in faulted],
        site=[s for _, s in faulted],
        error_code="InternalError",
    )
    f["ocpp_version"][:] = "1.6"
    return f


def test_token_bucket_refills_continuously_up_to_burst() -> None:
    b = TokenBucket(BucketSpec(per_minute=2.0, burst=3), tokens=3.0, updated=0.0)
    for _ in range(3):
        assert b.level(0.0) >= 1
        b.take(0.0)
    assert b.level(0.0) == pytest.approx(0.0)
    assert b.level(15.0) == pytest.approx(0.5)  # 2/min = one token per 30 s
    assert b.level(30.0) == pytest.approx(1.0)
    assert b.level(3600.0) == 3.0  # never above burst
    with pytest.raises(ValueError, match="per_minute > 0"):
        BucketSpec(0, 1)


def test_limiter_takes_from_all_three_buckets_or_none() -> None:
    lim = RateLimiter(RateLimits(BucketSpec(1, 1), BucketSpec(60, 2), BucketSpec(60, 10)))
    assert lim.admit(0.0, "A", "s1") is None
    assert lim.admit(0.0, "A", "s1") == "charger_rate"  # A's bucket is empty
    assert lim.admit(0.0, "B", "s1") is None
    assert lim.admit(0.0, "C", "s1") == "site_rate"  # two commands at s1 already
    # C was refused by the site: its own bucket was not charged
    assert lim.admit(1.0, "C", "s2") is None
    assert lim.admit(60.0, "A", "s1") is None  # one token a minute again
    assert lim.describe("site_rate") == "site rate limit reached (60/min, burst 2)"


def test_full_buckets_are_forgotten() -> None:
    lim = RateLimiter(RateLimits(BucketSpec(1, 1), BucketSpec(1, 5), BucketSpec(1, 5)))
    for i in range(50):
        assert lim.admit(i * 300.0, f"C{i}", "s") is None
    # every earlier charger's bucket refilled and was dropped
    assert len([k for k in lim.buckets if k[0] == "charger"]) == 1


def test_site_storm_is_limited_and_the_rest_escalate_at_once(tmp_path: Path) -> None:
    """Twelve chargers of one site fault together (a site-wide problem): the default
    site bucket lets five resets through; the other seven alerts page a human."""
    engine = _engine(tmp_path)
    faulted = [(f"CP{i:02d}", "depot") for i in range(12)]
    ts = engine.evaluate(0.0, _frame(faulted))
    assert len(ts) == 12 and {t.state for t in ts} == {"firing"}
    ts = engine.evaluate(60.0, _frame(faulted))
    sent = engine.commands()
    suppressed = engine.suppressed()
    assert len(sent) == 5
    assert len(suppressed) == 7 and {s.reason for s in suppressed} == {"site_rate"}
    escalated = [t for t in ts if t.state == "firing"]
    assert len(escalated) == 7
    assert all(t.labels["severity"] == "critical" and t.labels["escalated"] == "true"
               for t in escalated)  # fmt: skip
    note = escalated[0].annotations["remediation"]
    assert note.startswith("Reset not sent: site rate limit reached (2/min, burst 5)")
    assert sorted(t.labels["charger"] for t in escalated) == sorted(s.charger for s in suppressed)
    # Nothing is retried behind the operator's back: escalated alerts are done with.
    engine.evaluate(120.0, _frame(faulted))
    assert engine.suppressed() == []


def test_a_charger_is_not_reset_in_a_loop(tmp_path: Path) -> None:
    """A fault that comes straight back after each reset: the rule would allow three
    attempts two minutes apart, the charger bucket (1 per 5 min, burst 2) only two."""
    engine = _engine(tmp_path)
    f = _frame([("CP1", "depot")])
    notes = []
    for minute in range(8):
        engine.evaluate(minute * 60.0, f)
        notes += engine.suppressed()
    assert [(c.at, c.attempt) for c in engine.commands()] == [(60.0, 1), (180.0, 2)]
    assert [(s.at, s.reason) for s in notes] == [(300.0, "charger_rate")]
    active = engine.active()
    assert [a.labels.get("escalated") for a in active] == ["true"]


def test_fleet_bucket(tmp_path: Path) -> None:
    limits = RateLimits(fleet=BucketSpec(per_minute=1, burst=3))
    engine = _engine(tmp_path, limits)
    faulted = [(f"CP{i}", f"site{i}") for i in range(5)]  # five sites: only the fleet limits
    engine.evaluate(0.0, _frame(faulted))
    engine.evaluate(60.0, _frame(faulted))
    assert len(engine.commands()) == 3
    assert [s.reason for s in engine.suppressed()] == ["fleet_rate"] * 2


def test_pause_suppresses_and_survives_a_restart(tmp_path: Path) -> None:
    engine = _engine(tmp_path)
    engine.planner.paused = True
    f = _frame([("CP1", "depot")])
    engine.evaluate(0.0, f)
    ts = engine.evaluate(60.0, f)
    assert engine.commands() == []
    [s] = engine.suppressed()
    assert (s.reason, s.detail) == ("paused", "remediation is paused")
    note = ts[-1].annotations["remediation"]
    assert note == "Reset not sent: remediation is paused; paging on-call"
    saved = json.loads(json.dumps(engine.snapshot()))
    again = _engine(tmp_path)
    again.restore(saved)
    assert again.planner.paused is True


def test_bucket_levels_survive_a_restart(tmp_path: Path) -> None:
    limits = RateLimits(charger=BucketSpec(per_minute=1 / 60, burst=1))
    engine = _engine(tmp_path, limits)
    f = _frame([("CP1", "depot")])
    engine.evaluate(0.0, f)
    engine.evaluate(60.0, f)
    assert len(engine.commands()) == 1
    saved = json.loads(json.dumps(engine.snapshot()))
    # A fresh fault on the same charger after a restart: the bucket is still empty.
    other = _engine(tmp_path, limits)
    other.restore({**saved, "rules": {}, "remediation": []})
    other.evaluate(600.0, f)
    other.evaluate(660.0, f)
    assert other.commands() == []
    assert [s.reason for s in other.suppressed()] == ["charger_rate"]
