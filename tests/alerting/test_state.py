"""The alert lifecycle, stepped minute by minute as Prometheus's tests do."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from chargewatch.alerting.state import (
    RESOLVED_RETENTION_S,
    Alert,
    AlertSet,
    AlertState,
    Observation,
)

LABELS = {"alertname": "Hot", "charger": "CP1", "connector": "1"}


def run(s: AlertSet, pattern: str, interval: float = 60.0) -> list[tuple[float, str, str]]:
    """Step ``s`` through ``pattern`` (1 = condition true); (time, transition, state) per step."""
    out = []
    for i, ch in enumerate(pattern):
        now = i * interval
        obs = [Observation(dict(LABELS), {}, 1.0, 0)] if ch == "1" else []
        ts = s.update(now, obs)
        a = s.alerts.get(tuple(sorted(LABELS.items())))
        out.append((now, ",".join(t.state for t in ts), a.state.value if a else "-"))
    return out


def test_pending_then_firing_after_for_then_resolved() -> None:
    s = AlertSet(hold_s=120.0)
    assert run(s, "011110") == [
        (0.0, "", "-"),
        (60.0, "", "pending"),
        (120.0, "", "pending"),
        (180.0, "firing", "firing"),
        (240.0, "", "firing"),
        (300.0, "resolved", "resolved"),
    ]


def test_pending_that_clears_is_dropped_without_a_resolution() -> None:
    s = AlertSet(hold_s=180.0)
    assert [r[1:] for r in run(s, "1101111")] == [
        ("", "pending"),
        ("", "pending"),
        ("", "-"),
        ("", "pending"),
        ("", "pending"),
        ("", "pending"),
        ("firing", "firing"),
    ]


def test_for_zero_fires_on_the_first_evaluation() -> None:
    assert run(AlertSet(), "1")[0][1:] == ("firing", "firing")


def test_keep_firing_for_rides_out_short_gaps() -> None:
    s = AlertSet(hold_s=0.0, keep_firing_for_s=120.0)
    assert [r[1] for r in run(s, "1001000")] == ["firing", "", "", "", "", "", "resolved"]


def test_resolved_alert_that_returns_starts_a_new_for() -> None:
    s = AlertSet(hold_s=60.0)
    res = run(s, "11011")
    assert [r[1:] for r in res] == [
        ("", "pending"),
        ("firing", "firing"),
        ("resolved", "resolved"),
        ("", "pending"),
        ("firing", "firing"),
    ]


def test_resolved_alerts_are_kept_and_resent_for_15_minutes() -> None:
    s = AlertSet()
    obs = [Observation(dict(LABELS), {}, 1.0, 0)]
    s.update(0.0, obs)
    sent = s.notifications(0.0, resend_delay_s=60, interval_s=30)
    assert [(n.status, n.starts_at, n.ends_at) for n in sent] == [("firing", 0.0, 240.0)]
    assert s.notifications(30.0, resend_delay_s=60, interval_s=30) == []  # not yet due
    assert len(s.notifications(60.0, resend_delay_s=60, interval_s=30)) == 1  # resend
    s.update(90.0, [])
    [resolved] = s.notifications(90.0, resend_delay_s=60, interval_s=30)  # at once, not after 60s
    assert (resolved.status, resolved.ends_at) == ("resolved", 90.0)
    t = 90.0
    resent = 0
    while t < 90.0 + RESOLVED_RETENTION_S + 120:
        t += 30.0
        s.update(t, [])
        resent += len(s.notifications(t, resend_delay_s=60, interval_s=30))
    assert resent == 15  # every minute for 15 minutes, then forgotten
    assert s.alerts == {}


def test_pending_alerts_are_never_sent() -> None:
    s = AlertSet(hold_s=300.0)
    s.update(0.0, [Observation(dict(LABELS), {}, 1.0, 0)])
    assert s.notifications(0.0, resend_delay_s=60, interval_s=30) == []


def test_snapshot_restore_keeps_the_for_clock() -> None:
    s = AlertSet(hold_s=300.0)
    s.update(0.0, [Observation(dict(LABELS), {}, 1.0, 0)])
    s.update(120.0, [Observation(dict(LABELS), {}, 1.0, 0)])
    restored = AlertSet(hold_s=300.0)
    restored.restore(s.snapshot())
    assert restored.update(240.0, [Observation(dict(LABELS), {}, 1.0, 0)]) == []
    [t] = restored.update(300.0, [Observation(dict(LABELS), {}, 1.0, 0)])
    assert t.state == "firing" and t.at == 300.0
    assert next(iter(restored.alerts.values())).state is AlertState.FIRING


@given(
    st.lists(st.booleans(), max_size=40),
    st.integers(0, 4),
    st.integers(0, 3),
)
def test_transitions_alternate_and_respect_for(pattern: list[bool], hold: int, keep: int) -> None:
    s = AlertSet(hold_s=60.0 * hold, keep_firing_for_s=60.0 * keep)
    text = "".join("1" if b else "0" for b in pattern)
    events = [(t, tr) for t, tr, _ in run(s, text) if tr]
    states = [tr for _, tr in events]
    assert states == ["firing", "resolved"] * (len(states) // 2) + ["firing"] * (len(states) % 2)
    for t, tr in events:
        i = int(t // 60)
        if tr == "firing":  # true for the last `hold` steps and now
            assert all(pattern[i - hold : i + 1]) and i - hold >= 0
        else:  # false now and for the last `keep` steps
            assert not any(pattern[i - keep : i + 1])


def test_the_api_shows_the_connector_of_the_labels_not_the_internal_row() -> None:
    a = Alert({"alertname": "Hot", "charger": "CP1", "connector": "2"}, {}, 1.0,
              AlertState.FIRING, 0.0, connector=21128)  # fmt: skip
    assert a.to_public()["connector"] == 2
    assert a.to_dict()["connector"] == 21128  # persisted state keeps its row
    whole = Alert({"alertname": "Offline", "charger": "CP1"}, {}, 1.0, AlertState.FIRING, 0.0)
    assert whole.to_public()["connector"] is None
