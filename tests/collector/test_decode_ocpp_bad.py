"""Bad input: every rejection has a stable reason and says what; nothing escapes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chargewatch.ingest.decode_ocpp import REASONS
from tests.collector.ocpp_feed import T0, Feed, mv16, mv201
from tests.collector.ocpp_harness import FIXTURES, load

OK = {"value": "10", "measurand": "SoC", "unit": "Percent"}  # a good sample next to a bad one

# (name, version, frame or raw bytes, reasons, detail substring of the first rejection)
TABLE: list[tuple[str, str, Any, list[str], str]] = [
    ("not_json", "1.6", b"{[", ["malformed_json"], ""),
    ("empty", "1.6", b"", ["malformed_json"], ""),
    ("nan_literal", "1.6", b'[2,"1","Heartbeat",NaN]', ["malformed_json"], ""),
    ("object", "1.6", {"a": 1}, ["not_a_frame"], "JSON array, got dict"),
    ("short", "1.6", [2, "1"], ["not_a_frame"], "3 to 5 elements"),
    ("type_5", "1.6", [5, "1", {}], ["not_a_frame"], "message type 5"),
    ("type_bool", "1.6", [True, "1", {}], ["not_a_frame"], "message type True"),
    ("numeric_id", "1.6", [2, 7, "Heartbeat", {}], ["not_a_frame"], "message id 7"),
    ("long_id", "1.6", [2, "x" * 37, "Heartbeat", {}], ["not_a_frame"], "1..36"),
    ("call_3", "1.6", [2, "1", "Heartbeat"], ["not_a_frame"], "CALL has 4"),
    ("call_list", "1.6", [2, "1", "Heartbeat", []], ["not_a_frame"], "payload is list"),
    ("result_list", "1.6", [3, "1", []], ["not_a_frame"], "CALLRESULT payload"),
    ("error_short", "1.6", [4, "1", "X", "y"], ["not_a_frame"], "CALLERROR has 5"),
    ("unknown_action", "1.6", [2, "1", "Teleport", {}], ["unknown_action"], "'Teleport'"),
    ("201_action_in_16", "1.6", [2, "1", "TransactionEvent", {}], ["unknown_action"], ""),
    (
        "missing_required",
        "1.6",
        [2, "1", "StatusNotification", {"connectorId": 1, "status": "Available"}],
        ["schema_violation"],
        "$: 'errorCode' is a required property",
    ),
    (
        "bad_enum",
        "1.6",
        [
            2,
            "1",
            "StatusNotification",
            {"connectorId": 1, "errorCode": "Oops", "status": "Available"},
        ],
        ["schema_violation"],
        "$.errorCode: 'Oops' is not one of",
    ),
    (
        "extra_property",
        "1.6",
        [2, "1", "Heartbeat", {"now": 1}],
        ["schema_violation"],
        "Additional properties",
    ),
    (
        "connector_too_big",
        "1.6",
        [2, "1", "MeterValues", {**mv16(OK), "connectorId": 65}],
        ["out_of_range"],
        "connectorId 65 outside 0..64",
    ),
    (
        "connector_negative",
        "1.6",
        [
            2,
            "1",
            "StatusNotification",
            {"connectorId": -1, "errorCode": "NoError", "status": "Available"},
        ],
        ["out_of_range"],
        "connectorId -1",
    ),
    (
        "status_bad_timestamp",
        "1.6",
        [
            2,
            "1",
            "StatusNotification",
            {
                "connectorId": 1,
                "errorCode": "NoError",
                "status": "Available",
                "timestamp": "2026-11-24",
            },
        ],
        ["bad_timestamp"],
        "'2026-11-24' is not an RFC 3339",
    ),
    (
        "not_a_number",
        "1.6",
        [2, "1", "MeterValues", mv16({"value": "12,5"}, OK)],
        ["bad_number"],
        "'12,5'",
    ),
    (
        "nan_string",
        "1.6",
        [2, "1", "MeterValues", mv16({"value": "NaN"}, OK)],
        ["non_finite"],
        "'NaN'",
    ),
    ("inf_string", "1.6", [2, "1", "MeterValues", mv16({"value": "-inf"}, OK)], ["non_finite"], ""),
    (
        # A meter fault, not garbage: kept for the detectors, rejected for billing
        # (tests/collector/test_decode_ocpp_per_value.py).
        "negative_register",
        "1.6",
        [2, "1", "MeterValues", mv16({"value": "-5"}, OK)],
        ["negative_register"],
        "$.meterValue[0].sampledValue[0]: Energy.Active.Import.Register '-5' Wh = -5 Wh",
    ),
    (
        "register_below_any_meter",
        "1.6",
        [2, "1", "MeterValues", mv16({"value": "-2e12"}, OK)],
        ["out_of_range"],
        "Energy.Active.Import.Register '-2e12' Wh = -2e+12 outside",
    ),
    (
        "soc_over_100",
        "1.6",
        [2, "1", "MeterValues", mv16({"value": "101", "measurand": "SoC"}, {"value": "1"})],
        ["out_of_range"],
        "SoC",
    ),
    (
        "unit_mismatch",
        "1.6",
        [2, "1", "MeterValues", mv16({"value": "230", "measurand": "Voltage", "unit": "W"}, OK)],
        ["unknown_unit"],
        "unit 'W' is not a unit of Voltage",
    ),
    (
        "bad_measurand_sample",
        "1.6",
        [2, "1", "MeterValues", mv16({"value": "1", "measurand": "Energy"}, OK)],
        ["schema_violation"],
        "$.meterValue[0].sampledValue[0].measurand: 'Energy' is not one of",
    ),
    (
        "future_timestamp",
        "1.6",
        [2, "1", "MeterValues", mv16(OK, ts="2026-11-26T03:00:00Z")],
        ["future_timestamp"],
        "$.meterValue[0].timestamp: '2026-11-26T03:00:00Z' is 172799 s after receipt",
    ),
    (
        "before_2010",
        "1.6",
        [2, "1", "MeterValues", mv16(OK, ts="2009-12-31T23:59:59Z")],
        ["timestamp_before_2010"],
        "before 2010",
    ),
    (
        "garbage_timestamp",
        "1.6",
        [2, "1", "MeterValues", mv16(OK, ts="yesterday noon")],
        ["bad_timestamp"],
        "'yesterday noon'",
    ),
    (
        "impossible_date",
        "1.6",
        [2, "1", "MeterValues", mv16(OK, ts="2026-02-30T00:00:00Z")],
        ["bad_timestamp"],
        "'2026-02-30T00:00:00Z'",
    ),
    (
        "impossible_offset",
        "1.6",
        [2, "1", "MeterValues", mv16(OK, ts="2026-11-24T03:00:00+25:00")],
        ["bad_timestamp"],
        "+25:00",
    ),
    (
        "underscore_number",
        "1.6",
        [2, "1", "MeterValues", mv16({"value": "1_000"}, OK)],
        ["bad_number"],
        "'1_000'",
    ),
    (
        "start_negative_meter",
        "1.6",
        [
            2,
            "1",
            "StartTransaction",
            {"connectorId": 1, "idTag": "a", "meterStart": -3, "timestamp": "2026-11-24T03:00:00Z"},
        ],
        ["out_of_range"],
        "$.meterStart: -3 Wh",
    ),
    (
        "deeply_nested",
        "1.6",
        b'[2,"1","MeterValues",{"connectorId":1,"meterValue":[{"timestamp":"2026-11-24T03:00:00Z",'
        b'"sampledValue":[{"value":' + b"[" * 1000 + b"]" * 1000 + b"}]}]}]",
        ["schema_violation"],
        "nested too deeply",
    ),
    ("unknown_version", "1.5", [2, "1", "Heartbeat", {}], ["unknown_version"], "'1.5'"),
    (
        "201_value_not_number",
        "2.0.1",
        [2, "1", "MeterValues", mv201({"value": "abc"}, {"value": 5, "measurand": "SoC"})],
        ["schema_violation"],
        "$.meterValue[0].sampledValue[0].value: 'abc' is not of type 'number'",
    ),
    (
        "201_multiplier",
        "2.0.1",
        [
            2,
            "1",
            "MeterValues",
            mv201(
                {"value": 1, "unitOfMeasure": {"unit": "Wh", "multiplier": 20}},
                {"value": 5, "measurand": "SoC"},
            ),
        ],
        ["out_of_range"],
        "multiplier 20",
    ),
    (
        "201_unknown_unit",
        "2.0.1",
        [
            2,
            "1",
            "MeterValues",
            mv201({"value": 1, "unitOfMeasure": {"unit": "BTU"}}, {"value": 5, "measurand": "SoC"}),
        ],
        ["unknown_unit"],
        "'BTU'",
    ),
    (
        "201_bad_event_type",
        "2.0.1",
        [
            2,
            "1",
            "TransactionEvent",
            {
                "eventType": "Paused",
                "timestamp": "2026-11-24T03:00:00Z",
                "triggerReason": "Authorized",
                "seqNo": 0,
                "transactionInfo": {"transactionId": "t"},
            },
        ],
        ["schema_violation"],
        "$.eventType: 'Paused' is not one of",
    ),
    (
        "201_notify_bad_item",
        "2.0.1",
        [
            2,
            "1",
            "NotifyEvent",
            {"generatedAt": "2026-11-24T03:00:00Z", "seqNo": 0, "eventData": [{"eventId": 1}]},
        ],
        ["schema_violation"],
        "$.eventData[0]",
    ),
]


@pytest.mark.parametrize(
    ("version", "frame", "reasons", "detail"),
    [row[1:] for row in TABLE],
    ids=[row[0] for row in TABLE],
)
def test_bad_input_is_rejected_with_reason(
    version: str, frame: Any, reasons: list[str], detail: str
) -> None:
    f = Feed(version)
    raw = frame if isinstance(frame, bytes) else None
    f.send(frame, raw=raw, recv=T0 + 1)
    assert f.reasons() == reasons
    assert detail in f.sink.rejects[0].detail
    if ".sampledValue[" in f.sink.rejects[0].detail:
        # The good sample of the same meterValue is kept: samples are independent.
        assert len(f.rows()) == 1
    if frame == b"":
        assert f.sink.rejects[0].payload == ""


def test_bad_meter_value_rejects_only_itself() -> None:
    payload = {
        "connectorId": 1,
        "meterValue": [
            {"timestamp": "2026-11-24T03:00:00Z", "sampledValue": [{"value": "1"}]},
            {"timestamp": "2026-11-24", "sampledValue": [{"value": "2"}]},
            {"sampledValue": [{"value": "3"}]},
            {"timestamp": "2026-11-24T03:00:02Z", "sampledValue": [{"value": "4"}]},
        ],
    }
    f = Feed().call("MeterValues", payload)
    assert [r["energy_wh"] for r in f.rows()] == [1.0, 4.0]
    assert [(r.reason, r.index) for r in f.sink.rejects] == [
        ("schema_violation", 2),
        ("bad_timestamp", 1),
    ]


def test_rejected_phase_leaves_total_power_unknown() -> None:
    f = Feed().call(
        "MeterValues",
        mv16(
            {"value": "1", "measurand": "Power.Active.Import", "phase": "L1"},
            {"value": "x", "measurand": "Power.Active.Import", "phase": "L2"},
            {"value": "1", "measurand": "Power.Active.Import", "phase": "L3"},
            {"value": "100"},
        ),
    )
    assert f.rows()[0].get("power_w") is None
    assert f.rows()[0]["energy_wh"] == 100.0
    assert f.reasons() == ["bad_number"]


def test_every_sample_bad_leaves_no_row() -> None:
    f = Feed().call("MeterValues", mv16({"value": "x"}, {"value": "1", "measurand": "Nope"}))
    assert f.rows() == []
    assert sorted(f.reasons()) == ["bad_number", "schema_violation"]


def test_bad_stop_meter_keeps_the_stop() -> None:
    f = Feed().call(
        "StopTransaction",
        {"transactionId": 1, "meterStop": -1, "timestamp": "2026-11-24T03:00:00Z"},
    )
    (stop,) = f.events()
    assert stop.meter_wh is None and "meter_rejected" in stop.flags
    assert f.reasons() == ["out_of_range"]


# ------------------------------------------------------------------ properties

# Frames of every fixture: the "real" frames mutations start from.
REAL: list[tuple[str, list[Any]]] = [
    (load(p)["version"], step["frame"])
    for p in sorted(FIXTURES.glob("*.json"))
    for step in load(p)["frames"]
    if "frame" in step
]

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False)
    | st.text(max_size=30)
    | st.sampled_from(["2026-11-24T03:00:00Z", "Wh", "kWh", "L1", "Transaction.Begin", "NaN"]),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4)
    ),
    max_leaves=20,
)
ACTIONS = [
    "MeterValues",
    "StartTransaction",
    "StopTransaction",
    "StatusNotification",
    "BootNotification",
    "TransactionEvent",
    "NotifyEvent",
    "Heartbeat",
]
FEW = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def assert_clean(f: Feed) -> None:
    for r in f.sink.rejects:
        assert r.reason in REASONS and r.reason != "internal_error", (r.reason, r.detail)
        assert r.detail


@FEW
@given(raw=st.binary(max_size=200), source=st.sampled_from(["cp", "csms", "command"]))
def test_arbitrary_bytes_never_raise(raw: bytes, source: str) -> None:
    f = Feed()
    f.send(None, raw=raw, source=source)
    assert_clean(f)


@FEW
@given(
    version=st.sampled_from(["1.6", "2.0.1"]),
    kind=st.sampled_from([2, 3, 4]),
    action=st.sampled_from(ACTIONS),
    body=json_values,
    source=st.sampled_from(["cp", "csms", "command"]),
)
def test_arbitrary_json_frames_never_raise(
    version: str, kind: int, action: str, body: Any, source: str
) -> None:
    frame = {2: [2, "m", action, body], 3: [3, "m", body], 4: [4, "m", "E", "d", body]}[kind]
    f = Feed(version)
    f.send(frame, source=source)
    f.send([2, "m", action, {}], source="cp")
    f.decoder.expire(T0 + 10_000, f.sink)
    assert_clean(f)


def _mutate(node: Any, path: list[int], value: Any, delete: bool) -> Any:
    """Replace (or delete) the element reached by following ``path`` choices."""
    if not path or not isinstance(node, dict | list) or not node:
        return value
    keys = list(node.keys()) if isinstance(node, dict) else list(range(len(node)))
    key = keys[path[0] % len(keys)]
    copy: Any = dict(node) if isinstance(node, dict) else list(node)
    if delete and len(path) == 1:
        del copy[key]
    else:
        copy[key] = _mutate(node[key], path[1:], value, delete)
    return copy


@FEW
@given(
    case=st.sampled_from(REAL),
    path=st.lists(st.integers(min_value=0, max_value=50), min_size=1, max_size=7),
    value=json_values,
    delete=st.booleans(),
)
def test_mutated_real_frames_never_raise(
    case: tuple[str, list[Any]], path: list[int], value: Any, delete: bool
) -> None:
    version, frame = case
    f = Feed(version)
    f.send(_mutate(frame, path, value, delete))
    assert_clean(f)


def test_real_frames_decode_without_rejection() -> None:
    # The base of the mutation test must itself be clean, or mutations prove little.
    assert len(REAL) > 20
    for version, frame in REAL:
        f = Feed(version)
        f.send(frame, source="cp" if frame[0] == 2 else "csms", recv=T0 + 7200)
        assert f.reasons() in ([], ["future_timestamp"]) or f.reasons() == ["orphan_result"]


def test_reason_list_is_documented() -> None:
    text = Path(__file__).parents[2].joinpath("chargewatch/ingest/decode_ocpp.py").read_text()
    for reason in REASONS:
        assert f'"{reason}",  #' in text
    assert orjson.dumps(list(REASONS))
