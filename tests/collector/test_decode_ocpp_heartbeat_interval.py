"""The heartbeat interval a charger is given becomes a HeartbeatIntervalEvent."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.collector.ocpp_feed import T0, Feed

BOOT16 = {"chargePointVendor": "V", "chargePointModel": "M"}
BOOT201 = {"chargingStation": {"vendorName": "V", "model": "M"}, "reason": "PowerUp"}
NAMES = {"component": {"name": "OCPPCommCtrlr"}, "variable": {"name": "HeartbeatInterval"}}


def _intervals(f: Feed) -> list[tuple[float, str, str]]:
    return [(e.interval_s, e.origin, e.status) for e in f.events("HeartbeatIntervalEvent")]


@pytest.mark.parametrize(("version", "boot"), [("1.6", BOOT16), ("2.0.1", BOOT201)])
@pytest.mark.parametrize("status", ["Accepted", "Pending"])
def test_boot_answer_gives_the_interval(version: str, boot: dict[str, Any], status: str) -> None:
    f = Feed(version).call("BootNotification", boot, "b1")
    f.result("b1", {"status": status, "currentTime": "2026-11-24T03:00:00Z", "interval": 300})
    assert _intervals(f) == [(300.0, "BootNotification", status)]
    assert f.reasons() == []


def test_boot_answer_before_its_call_and_interval_zero() -> None:
    f = Feed().result("b1", {"status": "Accepted", "currentTime": "x", "interval": 120})
    f.call("BootNotification", BOOT16, "b1", recv=T0 + 2)
    assert _intervals(f) == [(120.0, "BootNotification", "Accepted")]
    g = Feed().call("BootNotification", BOOT16, "b1")
    g.result("b1", {"status": "Accepted", "currentTime": "x", "interval": 0})  # charger's choice
    assert _intervals(g) == []


@pytest.mark.parametrize(("answer", "learned"), [("Accepted", True), ("Rejected", False)])
def test_change_configuration_counts_once_accepted(answer: str, learned: bool) -> None:
    f = Feed().call(
        "ChangeConfiguration", {"key": "HeartbeatInterval", "value": "900"}, "c1", source="csms"
    )
    assert _intervals(f) == []  # asked, not yet accepted
    f.send([3, "c1", {"status": answer}], source="cp", recv=T0 + 2)
    assert _intervals(f) == ([(900.0, "ChangeConfiguration", "")] if learned else [])


def test_other_keys_and_bad_values_teach_nothing() -> None:
    f = Feed()
    for i, payload in enumerate(
        [
            {"key": "MeterValueSampleInterval", "value": "60"},
            {"key": "HeartbeatInterval", "value": "soon"},
            {"key": "HeartbeatInterval", "value": "-5"},
        ]
    ):
        f.call("ChangeConfiguration", payload, f"c{i}", source="csms")
        f.send([3, f"c{i}", {"status": "Accepted"}], source="cp")
    assert _intervals(f) == []


@pytest.mark.parametrize(("status", "learned"), [("Accepted", True), ("RebootRequired", False)])
def test_set_variables_counts_when_its_result_is_accepted(status: str, learned: bool) -> None:
    other = {"component": {"name": "SampledDataCtrlr"}, "variable": {"name": "TxUpdatedInterval"}}
    data = [{"attributeValue": "60", **other}, {"attributeValue": "240", **NAMES}]
    f = Feed("2.0.1").call("SetVariables", {"setVariableData": data}, "s1", source="csms")
    results = [{"attributeStatus": "Accepted", **other}, {"attributeStatus": status, **NAMES}]
    f.send([3, "s1", {"setVariableResult": results}], source="cp")
    assert _intervals(f) == ([(240.0, "SetVariables", "")] if learned else [])


def _real_alfen_boot() -> list[tuple[str, list[Any]]]:
    """The Alfen Eve's BootNotification and its answer, as captured (PROVENANCE.md)."""
    path = Path(__file__).parents[1] / "fixtures/real_ocpp/alfen_eve_steve1347.jsonl"
    lines = [json.loads(x) for x in path.read_text().splitlines()[:2]]
    return [(x["topic"].rsplit("/", 1)[1], x["payload"]) for x in lines]


def test_boot_answer_with_heartbeat_interval_is_learned_as_a_quirk() -> None:
    # The CSMS answered the real Alfen Eve with `heartbeatInterval` where 1.6's
    # BootNotification.conf requires `interval`. Not chargewatch's frame to refuse,
    # and its meaning is plain: the interval is learned, the deviation counted.
    (cp, boot), (csms, answer) = _real_alfen_boot()
    assert (cp, csms) == ("cp", "csms") and "interval" not in answer[2]
    f = Feed().send(boot, source=cp).send(answer, source=csms, recv=T0 + 2)
    assert _intervals(f) == [(60.0, "BootNotification", "Accepted")]
    assert f.reasons() == []
    assert dict(f.decoder.quirks) == {"boot_heartbeat_interval": 1}


def test_boot_answer_interval_wins_over_heartbeat_interval() -> None:
    f = Feed().call("BootNotification", BOOT16, "b1")
    f.result("b1", {"status": "Accepted", "currentTime": "x", "interval": 300,
                    "heartbeatInterval": 60})  # fmt: skip
    assert _intervals(f) == [(300.0, "BootNotification", "Accepted")]
    assert dict(f.decoder.quirks) == {}
