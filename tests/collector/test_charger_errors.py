"""Errors a charger reports for itself, on connector 0 (OCPP 1.6 StatusNotification
connectorId 0; 2.0.1 problems on no EVSE), reach the alert rules: one alert per
charger with connector "0", as ChargerOffline. They were dropped: a ground fault
reported on connector 0 never raised an alert (the Legrand Green'Up of the real
corpus reports its faults there)."""

from __future__ import annotations

from typing import Any

from chargewatch.alerting.engine import AlertEngine, default_rules_dir
from chargewatch.alerting.state import Transition
from chargewatch.collector.alert_stage import AlertStage
from chargewatch.collector.cluster import merge_fleet_states
from chargewatch.model.batch import MeterBatch
from chargewatch.model.events import Event, ProblemEvent, StatusEvent
from chargewatch.model.fleet import ConnectorIndex
from chargewatch.state.fleet_state import FleetState
from chargewatch.storage.handover import split_fleet_state
from tests.collector.ocpp_feed import T0, Feed


def _status(connector: int, status: str, error: str = "NoError", **extra: str) -> dict[str, Any]:
    return {
        "connectorId": connector,
        "status": status,
        "errorCode": error,
        "timestamp": "2026-11-24T03:00:00Z",
        **extra,
    }


def _feed(*frames: dict[str, Any]) -> Feed:
    feed = Feed("1.6")
    # Two ports, both fine, as a charger reports them at boot.
    feed.call("StatusNotification", _status(1, "Available"), msg_id="p1")
    feed.call("StatusNotification", _status(2, "Charging"), msg_id="p2")
    for k, f in enumerate(frames):
        feed.call("StatusNotification", f, msg_id=f"s{k}")
    return feed


def _run(feed: Feed, seconds: int = 300) -> tuple[FleetState, list[Transition]]:
    seen: list[Transition] = []
    state = FleetState(feed.index)
    stage = AlertStage(
        AlertEngine(default_rules_dir(), feed.index), state, on_transitions=seen.extend
    )
    state.on_batch(MeterBatch.empty(), feed.events(), T0 + 1)
    for t in range(0, seconds + 1, 10):
        stage.tick(T0 + 1 + t)
    return state, seen


def _firing(seen: list[Transition]) -> list[tuple[str, str, str]]:
    return [
        (t.alertname, t.labels["connector"], t.labels.get("mrec", ""))
        for t in seen
        if t.state == "firing"
    ]


def test_a_ground_fault_on_connector_0_is_one_alert_for_the_charger() -> None:
    state, seen = _run(_feed(_status(0, "Faulted", "GroundFailure")))
    assert _firing(seen) == [("OcppGroundFailure", "0", "CX002")]
    # Connector 0 is no port: the index and the ports' own codes are as they were.
    assert [k[1] for k in state.index.keys] == [1, 2]
    assert list(state.error_code[:2]) == ["NoError", "NoError"]
    assert state.charger_status["CP1"][:2] == ["Faulted", "GroundFailure"]


def test_a_ports_own_error_keeps_its_own_alert_beside_the_chargers() -> None:
    feed = _feed(_status(0, "Faulted", "HighTemperature"), _status(2, "Faulted", "GroundFailure"))
    _, seen = _run(feed)
    assert sorted(_firing(seen)) == [
        ("OcppGroundFailure", "2", "CX002"),
        ("OcppHighTemperature", "0", "CX003"),
    ]


def test_the_chargers_error_clears_when_connector_0_reports_none() -> None:
    feed = _feed(_status(0, "Faulted", "GroundFailure"), _status(0, "Available"))
    state, seen = _run(feed)
    assert _firing(seen) == [] and state.charger_status == {}
    # Cleared after it fired: the alert resolves.
    index = ConnectorIndex()
    st = FleetState(index)
    got: list[Transition] = []
    stage = AlertStage(AlertEngine(default_rules_dir(), index), st, on_transitions=got.extend)
    bad = [StatusEvent("CP1", n, T0, T0, "Available") for n in (1, 2)]
    bad.append(StatusEvent("CP1", 0, T0, T0, "Faulted", "GroundFailure", source="ocpp1.6"))
    st.on_batch(MeterBatch.empty(), list[Event](bad), T0)
    for t in range(0, 121, 10):
        stage.tick(T0 + t)
    assert _firing(got) == [("OcppGroundFailure", "0", "CX002")]
    ok: list[Event] = [StatusEvent("CP1", 0, T0 + 130, T0 + 130, "Available", source="ocpp1.6")]
    st.on_batch(MeterBatch.empty(), ok, T0 + 130)
    for t in range(130, 400, 10):
        stage.tick(T0 + t)
    assert [t.state for t in got if t.alertname == "OcppGroundFailure"][-1] == "resolved"


def test_a_station_wide_201_problem_is_the_chargers_error() -> None:
    index = ConnectorIndex()
    index.id("CS1", 1)
    st = FleetState(index)
    problem = ProblemEvent("CS1", 0, T0, T0, component="RCD", variable="Tripped",
                           actual_value="true", error_code="GroundFailure")  # fmt: skip
    st.on_batch(MeterBatch.empty(), [problem], T0)
    frame = st.frame(T0 + 1)
    assert (frame["error_code"][0], frame["error_connector"][0]) == ("GroundFailure", "0")


def test_the_chargers_status_survives_a_restart_and_a_handover() -> None:
    state, _ = _run(_feed(_status(0, "Faulted", "GroundFailure", vendorErrorCode="CX021")), 0)
    assert state.charger_status["CP1"][3] == "CX021"
    snap = state.snapshot()
    again = FleetState(ConnectorIndex())
    again.restore(snap)
    assert again.charger_status == state.charger_status
    assert [k[1] for k in again.index.keys] == [1, 2]  # no port 0 from the snapshot
    mine, rest = split_fleet_state(snap, lambda c: c == "CP1")
    assert rest is None and mine is not None
    merged = FleetState(ConnectorIndex())
    merged.restore(merge_fleet_states(mine, {"version": 1, "connectors": []}))
    assert merged.charger_status == state.charger_status
    # The changes journal carries it too, and its clearing.
    st = FleetState(ConnectorIndex())
    st.restore(snap)
    st.on_batch(MeterBatch.empty(), [StatusEvent("CP1", 0, T0, T0, "Available")], T0)
    changes = st.take_changes()
    fresh = FleetState(ConnectorIndex())
    fresh.restore(snap)
    fresh.apply_changes(changes)
    assert fresh.charger_status == {}


def test_no_unlock_for_a_chargers_own_lock_failure() -> None:
    # UnlockConnector needs a port: port 1's lock failure gets it, the one the
    # charger reports for itself goes to on-call with the reason instead.
    feed = _feed(
        _status(0, "Faulted", "ConnectorLockFailure"),
        _status(1, "Faulted", "ConnectorLockFailure"),
    )
    state = FleetState(feed.index)
    engine = AlertEngine(default_rules_dir(), feed.index, allowlist={"*": ["UnlockConnector"]})
    seen: list[Transition] = []
    stage = AlertStage(engine, state, on_transitions=seen.extend)
    state.on_batch(MeterBatch.empty(), feed.events(), T0 + 1)
    sent = []
    for t in range(0, 601, 10):
        stage.tick(T0 + 1 + t)
        sent += engine.commands(T0 + 1 + t)
    assert [(c.action, c.connector, c.payload) for c in sent] == [
        ("UnlockConnector", 1, {"connectorId": 1}),
        ("UnlockConnector", 1, {"connectorId": 1}),
    ]
    notes = [
        t.annotations.get("remediation", "")
        for t in seen
        if t.labels["connector"] == "0" and t.annotations.get("remediation")
    ]
    assert notes and "not sent" in notes[-1] and "connector 0" in notes[-1]
