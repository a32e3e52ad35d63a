"""OCPP 2.0.1 NotifyEvent problems reach the alert rules as the 1.6 error code they
map onto, and the alert carries that code's MREC label (the path end to end)."""

from __future__ import annotations

from typing import Any

from chargewatch.alerting.engine import AlertEngine, default_rules_dir
from chargewatch.alerting.state import Transition
from chargewatch.collector.alert_stage import AlertStage
from chargewatch.model.batch import MeterBatch
from chargewatch.state.fleet_state import FleetState
from tests.collector.ocpp_feed import T0, Feed


def _notify(component: str, variable: str, actual: str, *, cleared: bool = False) -> dict[str, Any]:
    return {
        "generatedAt": "2026-11-24T03:00:00Z",
        "seqNo": 0,
        "eventData": [
            {
                "eventId": 1,
                "timestamp": "2026-11-24T03:00:00Z",
                "trigger": "Alerting",
                "actualValue": actual,
                "eventNotificationType": "HardWiredNotification",
                "component": {"name": component, "evse": {"id": 1}},
                "variable": {"name": variable},
                **({"cleared": True} if cleared else {}),
            }
        ],
    }


def _faulted() -> dict[str, Any]:
    return {
        "timestamp": "2026-11-24T03:00:00Z",
        "connectorStatus": "Faulted",
        "evseId": 1,
        "connectorId": 1,
    }


def _run(feed: Feed) -> tuple[FleetState, list[Transition]]:
    seen: list[Transition] = []
    state = FleetState(feed.index)
    stage = AlertStage(
        AlertEngine(default_rules_dir(), feed.index), state, on_transitions=seen.extend
    )
    state.on_batch(MeterBatch.empty(), feed.events(), T0 + 1)
    for t in range(0, 301, 10):  # the rules' interval, past GroundFailure's `for: 1m`
        stage.tick(T0 + 1 + t)
    return state, seen


def test_a_ground_fault_problem_raises_the_ground_failure_alert_with_its_mrec() -> None:
    # The status says Faulted (OtherError); the NotifyEvent says why: RCD tripped.
    feed = Feed("2.0.1").call("StatusNotification", _faulted())
    feed.call("NotifyEvent", _notify("RCD", "Tripped", "true"), msg_id="2")
    state, seen = _run(feed)
    assert state.error_code[0] == "GroundFailure"
    fired = [t for t in seen if t.state == "firing"]
    assert [(t.alertname, t.labels["mrec"]) for t in fired] == [("OcppGroundFailure", "CX002")]


def test_the_problem_first_then_the_status_keeps_the_problem_code() -> None:
    feed = Feed("2.0.1").call("NotifyEvent", _notify("RCD", "Tripped", "true"))
    feed.call("StatusNotification", _faulted(), msg_id="2")
    state, _ = _run(feed)
    assert state.error_code[0] == "GroundFailure"


def test_a_cleared_problem_on_a_faulted_connector_leaves_other_error() -> None:
    feed = Feed("2.0.1").call("StatusNotification", _faulted())
    feed.call("NotifyEvent", _notify("RCD", "Tripped", "true"), msg_id="2")
    feed.call("NotifyEvent", _notify("RCD", "Tripped", "false", cleared=True), msg_id="3")
    state, _ = _run(feed)
    assert (state.status[0], state.error_code[0]) == ("Faulted", "OtherError")
