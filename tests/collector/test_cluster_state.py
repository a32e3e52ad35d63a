"""Cutting alert state by charger for dynamic partitions (collector/cluster.py)."""

from __future__ import annotations

from chargewatch.collector.cluster import merge_alert_states, split_alert_state


def alert(charger: str | None, name: str = "X") -> dict[str, object]:
    labels = {"alertname": name} | ({"charger": charger} if charger else {})
    return {"labels": labels, "state": "firing", "active_at": 1.0}


SNAP = {
    "version": 2,
    "groups": {"g": 5.0},
    "rules": {
        "r1": {"alerts": [alert("A"), alert("B"), alert(None)], "history": {"x": 1}},
        "r2": {"alerts": [alert("B", "Y")]},
    },
    "remediation": [],
}


def test_split_by_charger_label() -> None:
    mine, rest = split_alert_state(SNAP, lambda c: c == "A")
    assert mine == {"version": 2, "rules": {"r1": {"alerts": [alert("A")]}}}
    assert rest == {
        "version": 2,
        "rules": {"r1": {"alerts": [alert("B")]}, "r2": {"alerts": [alert("B", "Y")]}},
    }


def test_nothing_owned_is_none() -> None:
    mine, rest = split_alert_state(SNAP, lambda c: False)
    assert mine is None and rest is not None
    # Alerts without a charger label move with neither part.
    assert split_alert_state({"rules": {"r": {"alerts": [alert(None)]}}}, bool) == (None, None)


def test_merge_adds_the_other_chargers_alerts() -> None:
    mine, rest = split_alert_state(SNAP, lambda c: c == "A")
    assert mine is not None and rest is not None
    merged = merge_alert_states(mine, rest)
    assert sorted(len(r["alerts"]) for r in merged["rules"].values()) == [1, 2]
    assert merged["version"] == 2
