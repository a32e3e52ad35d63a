"""The meter-value intervals a charger is told or reports become MeterIntervalEvents."""

from __future__ import annotations

from typing import Any

import pytest

from tests.collector.ocpp_feed import T0, Feed

SAMPLED = {"component": {"name": "SampledDataCtrlr"}, "variable": {"name": "TxUpdatedInterval"}}
ALIGNED = {"component": {"name": "AlignedDataCtrlr"}, "variable": {"name": "Interval"}}
HEARTBEAT = {"component": {"name": "OCPPCommCtrlr"}, "variable": {"name": "HeartbeatInterval"}}

# GetConfiguration.conf as real chargers answer (shapes and values as logged; other
# keys trimmed): evcc-io/evcc issue #18215 (a 1.6 wallbox, 2025-01-11 trace log:
# value before readonly) and evcc-io/evcc issue #7458 (an ABL eMH, "ABL_10022482",
# 2023-04-15: readonly before value, and the key spelled "HeartBeatInterval").
CONF_EVCC18215 = {
    "configurationKey": [
        {"key": "QrCode", "value": "60723254390941", "readonly": False},
        {"key": "ConnectionTimeout", "value": "60", "readonly": False},
        {"key": "HeartbeatInterval", "value": "60", "readonly": False},
        {"key": "MeterValueSampleInterval", "value": "10", "readonly": False},
        {"key": "NumberOfConnectors", "value": "1", "readonly": True},
    ]
}
CONF_ABL = {
    "configurationKey": [
        {"key": "ConnectionTimeOut", "readonly": False, "value": "0"},
        {"key": "HeartBeatInterval", "readonly": False, "value": "60"},
        {"key": "ClockAlignedDataInterval", "readonly": False, "value": "0"},
        {"key": "MeterValuesAlignedData", "readonly": False, "value": ""},
        {"key": "MeterValueSampleInterval", "readonly": False, "value": "60"},
        {
            "key": "MeterValuesSampledData",
            "readonly": False,
            "value": "Energy.Active.Import.Register",
        },
    ]
}


def _meter(f: Feed) -> list[tuple[str, float, str]]:
    return [(e.kind, e.interval_s, e.origin) for e in f.events("MeterIntervalEvent")]


def _heartbeat(f: Feed) -> list[tuple[float, str]]:
    return [(e.interval_s, e.origin) for e in f.events("HeartbeatIntervalEvent")]


@pytest.mark.parametrize(
    ("key", "kind"),
    [("MeterValueSampleInterval", "sampled"), ("ClockAlignedDataInterval", "aligned")],
)
@pytest.mark.parametrize(("answer", "learned"), [("Accepted", True), ("Rejected", False)])
def test_change_configuration_is_learned_once_accepted(
    key: str, kind: str, answer: str, learned: bool
) -> None:
    f = Feed().call("ChangeConfiguration", {"key": key, "value": "300"}, "c1", source="csms")
    assert _meter(f) == []  # asked, not yet accepted
    f.send([3, "c1", {"status": answer}], source="cp", recv=T0 + 2)
    assert _meter(f) == ([(kind, 300.0, "ChangeConfiguration")] if learned else [])
    assert dict(f.decoder.learned) == ({kind: 1} if learned else {})
    assert f.reasons() == []


def test_zero_is_learned_as_none_sent_and_bad_values_teach_nothing() -> None:
    f = Feed()
    for i, (key, value) in enumerate(
        [
            ("MeterValueSampleInterval", "0"),  # by convention: no sampled data
            ("MeterValueSampleInterval", "ten"),
            ("ClockAlignedDataInterval", "-900"),
            ("MeterValuesSampledData", "Power.Active.Import"),  # not an interval
        ]
    ):
        f.call("ChangeConfiguration", {"key": key, "value": value}, f"c{i}", source="csms")
        f.send([3, f"c{i}", {"status": "Accepted"}], source="cp")
    assert _meter(f) == [("sampled", 0.0, "ChangeConfiguration")]
    assert f.reasons() == []


def test_get_configuration_reports_are_learned_heartbeat_included() -> None:
    f = Feed().call("GetConfiguration", {}, "g1", source="csms")
    f.send([3, "g1", CONF_EVCC18215], source="cp", recv=T0 + 2)
    assert _meter(f) == [("sampled", 10.0, "GetConfiguration")]
    assert _heartbeat(f) == [(60.0, "GetConfiguration")]
    g = Feed().call("GetConfiguration", {"key": ["HeartbeatInterval"]}, "g1", source="csms")
    g.send([3, "g1", CONF_ABL], source="cp", recv=T0 + 2)
    # CiString keys: "HeartBeatInterval" is HeartbeatInterval; a 0 interval is kept.
    assert _heartbeat(g) == [(60.0, "GetConfiguration")]
    assert _meter(g) == [
        ("aligned", 0.0, "GetConfiguration"),
        ("sampled", 60.0, "GetConfiguration"),
    ]
    assert dict(g.decoder.learned) == {"heartbeat": 1, "aligned": 1, "sampled": 1}
    assert f.reasons() == g.reasons() == []
    # The same list answering a CALL the charger sent (nonsense, but a bridge
    # forwards anything): only central-side Get* answers report settings.
    h = Feed().call("DataTransfer", {"vendorId": "x"}, "d1")
    h.result("d1", {"status": "Accepted", **CONF_EVCC18215})
    assert _meter(h) == [] and _heartbeat(h) == []


@pytest.mark.parametrize(("status", "learned"), [("Accepted", True), ("Rejected", False)])
def test_set_variables_per_variable_result(status: str, learned: bool) -> None:
    data = [
        {"attributeValue": "10", **SAMPLED},
        {"attributeValue": "900", **ALIGNED},
        {"attributeValue": "120", "attributeType": "Target", **SAMPLED},  # not the Actual
    ]
    f = Feed("2.0.1").call("SetVariables", {"setVariableData": data}, "s1", source="csms")
    results = [
        {"attributeStatus": status, **SAMPLED},
        {"attributeStatus": "Accepted", **ALIGNED},
    ]
    f.send([3, "s1", {"setVariableResult": results}], source="cp", recv=T0 + 2)
    want = [("sampled", 10.0, "SetVariables")] if learned else []
    assert _meter(f) == [*want, ("aligned", 900.0, "SetVariables")]
    assert f.reasons() == []


def test_get_variables_results_are_learned_when_accepted() -> None:
    ask = [{**SAMPLED}, {**ALIGNED}, {**HEARTBEAT}]
    f = Feed("2.0.1").call("GetVariables", {"getVariableData": ask}, "v1", source="csms")
    results: list[dict[str, Any]] = [
        {"attributeStatus": "Accepted", "attributeValue": "60", **SAMPLED},
        {"attributeStatus": "UnknownVariable", **ALIGNED},
        {"attributeStatus": "Accepted", "attributeValue": "300", **HEARTBEAT},
    ]
    f.send([3, "v1", {"getVariableResult": results}], source="cp", recv=T0 + 2)
    assert _meter(f) == [("sampled", 60.0, "GetVariables")]
    assert _heartbeat(f) == [(300.0, "GetVariables")]
    assert f.reasons() == []
