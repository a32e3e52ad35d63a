"""OCPP 2.0.1 NotifyEvent problems reach the alert rules as the 1.6 error code they
map onto, and the alert carries that code's MREC label (the path end to end)."""

from __future__ import annotations

from typing import Any

import pytest

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


# -- an MREC the charger states itself wins over the rule's static mapping ----------


def _status16(error_code: str, **extra: str) -> dict[str, Any]:
    return {
        "connectorId": 1,
        "status": "Faulted",
        "errorCode": error_code,
        "timestamp": "2026-11-24T03:00:00Z",
        **extra,
    }


def _fired(seen: list[Transition]) -> list[tuple[str, str]]:
    return [(t.alertname, t.labels["mrec"]) for t in seen if t.state == "firing"]


def test_a_16_vendor_error_code_becomes_the_alerts_mrec() -> None:
    # EVerest's convention: errorCode OtherError, vendorId ChargeX, the MREC as the code.
    payload = _status16("OtherError", vendorId="https://chargex.inl.gov", vendorErrorCode="CX005")
    state, seen = _run(Feed("1.6").call("StatusNotification", payload))
    assert state.mrec[0] == "CX005"
    assert _fired(seen) == [("OcppOtherError", "CX005")]  # not the fallback "unmapped"


def test_a_201_tech_code_becomes_the_alerts_mrec() -> None:
    notify = _notify("RCD", "Tripped", "true")
    notify["eventData"][0]["techCode"] = "CX002"
    feed = Feed("2.0.1").call("StatusNotification", _faulted())
    feed.call("NotifyEvent", notify, msg_id="2")
    state, seen = _run(feed)
    assert (state.error_code[0], state.mrec[0]) == ("GroundFailure", "CX002")
    assert _fired(seen) == [("OcppGroundFailure", "CX002")]


def test_a_201_tech_code_stating_another_mrec_wins_and_a_faulted_status_keeps_it() -> None:
    # The problem maps onto GroundFailure (CX002 by the table); the charger says CX021.
    notify = _notify("RCD", "Tripped", "true")
    notify["eventData"][0]["techCode"] = "MREC21CapacitanceFault"
    feed = Feed("2.0.1").call("NotifyEvent", notify)
    feed.call("StatusNotification", _faulted(), msg_id="2")
    _, seen = _run(feed)
    assert _fired(seen) == [("OcppGroundFailure", "CX021")]


def test_without_a_vendor_code_the_rules_mapping_stands() -> None:
    _, seen = _run(Feed("1.6").call("StatusNotification", _status16("OverVoltage")))
    assert _fired(seen) == [("OcppOverVoltage", "CX005")]
    _, seen = _run(Feed("1.6").call("StatusNotification", _status16("OtherError")))
    assert _fired(seen) == [("OcppOtherError", "unmapped")]
    # A vendor code that states no MREC (ABB's hex codes) leaves the mapping too.
    payload = _status16("GroundFailure", vendorErrorCode="0x0201")
    _, seen = _run(Feed("1.6").call("StatusNotification", payload))
    assert _fired(seen) == [("OcppGroundFailure", "CX002")]


@pytest.mark.parametrize(
    "hostile",
    [
        "X" * 50,
        '=HYPERLINK("http://x")',
        "CX005\u00e9",
        "ＣＸ００５",  # full-width digits: not the ASCII code
        "CX0050",
        "CX027",
        "{{ $labels.charger }}",
    ],
)
def test_a_hostile_vendor_code_never_becomes_the_label(hostile: str) -> None:
    payload = _status16("OtherError", vendorErrorCode=hostile, info=hostile[:50])
    state, seen = _run(Feed("1.6").call("StatusNotification", payload))
    assert state.mrec[0] == ""
    assert _fired(seen) == [("OcppOtherError", "unmapped")]


def test_a_status_after_the_error_clears_the_stated_mrec() -> None:
    feed = Feed("1.6").call("StatusNotification", _status16("OtherError", vendorErrorCode="CX008"))
    ok = {"connectorId": 1, "status": "Available", "errorCode": "NoError"}
    feed.call("StatusNotification", {**ok, "vendorErrorCode": "CX008"}, msg_id="2")
    state, _ = _run(feed)
    assert (state.status[0], state.error_code[0], state.mrec[0]) == ("Available", "NoError", "")


def _tx_event(kind: str, state: str, seq: int) -> dict[str, Any]:
    return {
        "eventType": kind,
        "timestamp": "2026-11-24T03:00:00Z",
        "triggerReason": "Authorized" if kind == "Started" else "ChargingStateChanged",
        "seqNo": seq,
        "transactionInfo": {"transactionId": "tx-1", "chargingState": state},
        "evse": {"id": 1, "connectorId": 1},
    }


def test_a_ground_fault_in_a_transaction_keeps_its_code_through_the_charging_state() -> None:
    # An RCD trips mid-session: the station sends the problem, the transaction's
    # new chargingState and the Faulted status (tests/acceptance/gen_blind.py's
    # order). The status derived from the chargingState is no connector status:
    # it cleared GroundFailure, and the Faulted status after it paged only
    # OcppOtherError (for 5m) instead of OcppGroundFailure (for 1m).
    occupied = _faulted() | {"connectorStatus": "Occupied"}
    feed = Feed("2.0.1").call("StatusNotification", occupied)
    feed.call("TransactionEvent", _tx_event("Started", "Charging", 0), msg_id="2")
    feed.call("NotifyEvent", _notify("RCD", "Tripped", "true"), msg_id="3")
    feed.call("TransactionEvent", _tx_event("Updated", "SuspendedEVSE", 1), msg_id="4")
    feed.call("StatusNotification", _faulted(), msg_id="5")
    state, seen = _run(feed)
    assert (state.status[0], state.error_code[0]) == ("Faulted", "GroundFailure")
    assert [t.alertname for t in seen if t.state == "firing"] == ["OcppGroundFailure"]
