"""Cutting alert state by charger for dynamic partitions (collector/cluster.py)."""

from __future__ import annotations

from chargewatch.collector.cluster import merge_alert_states, merge_fleet_states, split_alert_state


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


def fleet_row(charger: str, status: str, error: str, seen: float | None) -> list[object]:
    # [charger, connector, status, error code, since, last seen, value ts, values, mrec]
    return [charger, 1, status, error, seen, seen, None, [], ""]


def fleet(rows: list[list[object]], seen: dict[str, float]) -> dict[str, object]:
    return {"version": 1, "connectors": rows, "online": dict.fromkeys(seen, True),
            "charger_seen": seen}  # fmt: skip


def test_fleet_merge_keeps_the_row_heard_last_whatever_the_order() -> None:
    """A collector that never heard a charger hands an empty row for it over; in
    ledger order it may come after the real one and must not erase a fault."""
    real = fleet([fleet_row("A", "Faulted", "GroundFailure", 10.0)], {"A": 10.0})
    empty = fleet([fleet_row("A", "", "NoError", None), fleet_row("B", "", "NoError", None)], {})
    for merged in (merge_fleet_states(real, empty), merge_fleet_states(empty, real)):
        rows = {r[0]: r for r in merged["connectors"]}
        assert rows["A"][3] == "GroundFailure" and rows["B"][3] == "NoError"
        assert merged["charger_seen"] == {"A": 10.0} and merged["online"] == {"A": True}
    newer = fleet([fleet_row("A", "Available", "NoError", 20.0)], {"A": 20.0})
    for merged in (merge_fleet_states(real, newer), merge_fleet_states(newer, real)):
        assert [r[3] for r in merged["connectors"]] == ["NoError"]
        assert merged["charger_seen"] == {"A": 20.0}
