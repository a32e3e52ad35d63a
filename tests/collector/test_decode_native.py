from __future__ import annotations

import math

import numpy as np
import orjson
import pytest

from chargewatch.core.errors import DecodeError
from chargewatch.ingest.decode_native import NativeDecoder
from chargewatch.ingest.topics import TopicRouter
from chargewatch.model.batch import FIELD_INDEX
from chargewatch.model.decoding import DecodeSink
from chargewatch.model.events import (
    HeartbeatEvent,
    OnlineEvent,
    StatusEvent,
    TransactionEvent,
)
from chargewatch.model.fleet import ConnectorIndex

NOW = 1_795_487_165.0


def decode(topic: str, payload: bytes | object) -> tuple[DecodeSink, ConnectorIndex]:
    index = ConnectorIndex()
    sink = DecodeSink()
    raw = payload if isinstance(payload, bytes) else orjson.dumps(payload)
    NativeDecoder(index).decode(TopicRouter().route(topic), topic, raw, NOW, sink)
    return sink, index


def test_single_sample_all_fields() -> None:
    sink, index = decode(
        "ev/CP-1/2/meter",
        {
            "ts": NOW - 1.25,
            "energy_wh": 1234.5,
            "power_w": 7100,
            "current_a": [10.2, 10.1, 10.3],
            "voltage_v": [231.0, 229.5, 230.2],
            "temperature_c": 31.5,
            "soc_pct": 54,
            "offered_a": 16,
        },
    )
    assert not sink.rejects
    b = sink.meter.build()
    assert len(b) == 1
    assert index.keys[int(b.conn[0])] == ("CP-1", 2)
    assert b.ts[0] == NOW - 1.25
    assert b.recv[0] == NOW
    assert b.col("energy_wh")[0] == 1234.5
    assert b.col("power_w")[0] == 7100.0
    assert b.col("current_l3_a")[0] == 10.3
    assert b.col("voltage_l2_v")[0] == 229.5
    assert b.col("soc_pct")[0] == 54.0
    assert b.col("offered_a")[0] == 16.0


def test_absent_fields_are_nan_and_single_phase_current() -> None:
    sink, _ = decode("ev/A/1/meter", {"ts": "2026-11-24T02:56:41.5+01:00", "current_a": [31.9]})
    b = sink.meter.build()
    assert b.ts[0] == pytest.approx(1795485401.5)
    assert b.col("current_l1_a")[0] == 31.9
    assert math.isnan(b.col("current_l2_a")[0])
    assert math.isnan(b.col("energy_wh")[0])


def test_columnar_batch_keeps_good_samples_and_rejects_bad_ones() -> None:
    payload = (
        b'{"ts": [%f, %f, %f, %f, "nope"],'
        b' "energy_wh": [1, 2, -5, 4, 5],'
        b' "power_w": [10, NaN, 30, null, 50],'
        b' "current_a": [[1,2,3], [1,2,3], [1,2,3], 7, [1, "x"]]}'
    ) % (NOW, NOW + 1, NOW + 2, NOW + 3)
    sink, _ = decode("ev/A/1/meter", payload)
    b = sink.meter.build()
    assert b.ts.tolist() == [NOW, NOW + 3]
    assert b.col("energy_wh").tolist() == [1.0, 4.0]
    assert math.isnan(b.col("power_w")[1])  # null = not reported, not rejected
    assert b.col("current_l1_a")[1] == 7.0
    reasons = {(r.index, r.reason) for r in sink.rejects}
    assert reasons == {(1, "non_finite"), (2, "out_of_range"), (4, "bad_timestamp")}
    # The dead-letter record carries the offending sample, not the whole batch.
    rej = next(r for r in sink.rejects if r.index == 2)
    assert rej.payload["energy_wh"] == -5


@pytest.mark.parametrize(
    ("topic", "payload", "reason"),
    [
        ("ev/A/1/meter", b"{not json", "malformed_json"),
        ("ev/A/1/meter", b"", "malformed_json"),
        ("ev/A/1/meter", [1, 2], "wrong_type"),
        ("ev/A/1/meter", {"energy_wh": 5}, "missing_field"),
        ("ev/A/1/meter", {"ts": "2026-11-24T02:56:41"}, "bad_timestamp"),
        ("ev/A/1/meter", {"ts": NOW * 1000}, "bad_timestamp"),
        ("ev/A/1/meter", {"ts": 1000.0}, "timestamp_before_2010"),  # as over OCPP
        ("ev/A/1/meter", {"ts": NOW + 3 * 86400}, "future_timestamp"),
        ("ev/A/1/meter", {"ts": NOW, "power_w": "7kW"}, "wrong_type"),
        ("ev/A/1/meter", {"ts": NOW, "power_w": True}, "wrong_type"),
        ("ev/A/1/meter", b'{"ts": %f, "power_w": Infinity}' % NOW, "non_finite"),
        ("ev/A/1/meter", {"ts": NOW, "voltage_v": [230, 230, 230, 230]}, "wrong_type"),
        ("ev/A/1/meter", {"ts": NOW, "temperature_c": 900}, "out_of_range"),
        ("ev/A/1/meter", {"ts": NOW, "energy_wh": -1}, "out_of_range"),
        ("ev/A/1/meter", {"ts": [NOW, NOW], "power_w": [1]}, "length_mismatch"),
        ("ev/A/1/meter", {"ts": []}, "empty_batch"),
        ("ev/A/1/meter", {"ts": [NOW] * 10_001}, "oversized"),
        ("ev/A/0/meter", {"ts": NOW}, "bad_connector_id"),
        ("ev/A/1/status", {"ts": NOW, "status": "Sleeping"}, "unknown_status"),
        (
            "ev/A/1/status",
            {"ts": NOW, "status": "Faulted", "error_code": "Oops"},
            "unknown_error_code",
        ),
        ("ev/A/1/transaction", {"ts": NOW, "event": "begin", "transaction_id": "t"}, "wrong_value"),
        ("ev/A/1/transaction", {"ts": NOW, "event": "start"}, "missing_field"),
        (
            "ev/A/1/transaction",
            {"ts": NOW, "event": "stop", "transaction_id": "t", "meter_wh": "12"},
            "wrong_type",
        ),
        ("ev/A/online", b'"maybe"', "wrong_value"),
        ("ev/A/heartbeat", b"[]", "wrong_type"),
    ],
)
def test_bad_input_is_rejected_with_reason(topic: str, payload: object, reason: str) -> None:
    sink, _ = decode(topic, payload)
    assert len(sink.meter) == 0
    assert not sink.events
    assert [r.reason for r in sink.rejects] == [reason]
    assert sink.rejects[0].detail or reason == "empty_batch"


@pytest.mark.parametrize(
    ("topic", "reason"),
    [
        ("ev/A/1/weather", "unknown_topic"),
        ("foo/bar", "unknown_topic"),
        ("ev/A B/1/meter", "bad_charger_id"),
        ("ev/A/x/meter", "bad_connector_id"),
        ("ev/A/99/meter", "bad_connector_id"),
        ("ocpp/1.5/A/cp", "unknown_ocpp_version"),
    ],
)
def test_topic_errors(topic: str, reason: str) -> None:
    with pytest.raises(DecodeError) as info:
        TopicRouter().route(topic)
    assert info.value.reason == reason
    # cached errors raise again
    router = TopicRouter()
    for _ in range(2):
        with pytest.raises(DecodeError):
            router.route(topic)


def test_events() -> None:
    sink, _ = decode(
        "ev/A/2/status",
        {"ts": NOW, "status": "Faulted", "error_code": "GroundFailure", "info": "RCD tripped"},
    )
    assert sink.events == [StatusEvent("A", 2, NOW, NOW, "Faulted", "GroundFailure", "RCD tripped")]
    sink, _ = decode(
        "ev/A/1/transaction", {"ts": NOW, "event": "start", "transaction_id": 42, "meter_wh": 1000}
    )
    ev = sink.events[0]
    assert isinstance(ev, TransactionEvent)
    assert (ev.kind, ev.transaction_id, ev.meter_wh) == ("start", "42", 1000.0)
    sink, _ = decode("ev/A/heartbeat", {"ts": NOW - 5})
    assert sink.events == [HeartbeatEvent("A", NOW - 5, NOW)]
    for payload, online in ((b'{"online": false}', False), (b"true", True), (b"1", True)):
        sink, _ = decode("ev/A/online", payload)
        assert sink.events == [OnlineEvent("A", online, NOW)]


def test_batch_and_singles_agree() -> None:
    rng = np.random.default_rng(1)
    n = 50
    ts = NOW - 100 + np.arange(n, dtype=float)
    power = rng.uniform(0, 11000, n).round(1)
    energy = np.cumsum(power / 3600).round(3)
    batch_sink, _ = decode(
        "ev/A/1/meter", {"ts": ts.tolist(), "power_w": power.tolist(), "energy_wh": energy.tolist()}
    )
    index = ConnectorIndex()
    single = DecodeSink()
    dec = NativeDecoder(index)
    for k in range(n):
        payload = orjson.dumps(
            {"ts": ts[k], "power_w": power[k], "energy_wh": energy[k]},
            option=orjson.OPT_SERIALIZE_NUMPY,
        )
        dec.decode(TopicRouter().route("ev/A/1/meter"), "ev/A/1/meter", payload, NOW, single)
    a, b = batch_sink.meter.build(), single.meter.build()
    np.testing.assert_array_equal(a.ts, b.ts)
    np.testing.assert_array_equal(a.values, b.values)
    assert FIELD_INDEX["power_w"] == 1


def test_many_columnar_messages_decode_as_one_block_and_keep_their_identity() -> None:
    """decode_meters concatenates every batch message's columns; a rejection
    must still name its own message and sample, and the others lose nothing."""
    index = ConnectorIndex()
    dec = NativeDecoder(index)
    router = TopicRouter()
    msgs = [
        # three-phase lists, all keys
        ("ev/A/1/meter", {"ts": [NOW, NOW + 1], "energy_wh": [1.0, 2.0],
                          "current_a": [[1, 2, 3], [4, 5, 6]], "voltage_v": [[230] * 3] * 2}),
        # one-phase lists, no energy, a null current and a bad power
        ("ev/B/2/meter", {"ts": [NOW, NOW + 1, NOW + 2], "power_w": [5.0, "x", 7.0],
                          "current_a": [[9.5], None, [8]]}),
        # scalar currents (phase 1)
        ("ev/C/1/meter", {"ts": [NOW + 5], "current_a": [12.5], "soc_pct": [40]}),
    ]  # fmt: skip
    sink = DecodeSink()
    dec.decode_meters(
        [(router.route(t), t, orjson.dumps(p), NOW + 10) for t, p in msgs],
        sink,
    )
    assert [(r.topic, r.index, r.reason) for r in sink.rejects] == [
        ("ev/B/2/meter", 1, "wrong_type")
    ]
    assert sink.rejects[0].payload["power_w"] == "x"
    b = sink.meter.build()
    rows = {
        (index.keys[c], t): v
        for c, t, v in zip(b.conn.tolist(), b.ts.tolist(), b.values.tolist(), strict=True)
    }
    assert len(rows) == 5
    a1 = rows[(("A", 1), NOW + 1)]
    assert a1[FIELD_INDEX["energy_wh"]] == 2.0
    assert a1[FIELD_INDEX["current_l1_a"] : FIELD_INDEX["current_l3_a"] + 1] == [4, 5, 6]
    b0 = rows[(("B", 2), NOW)]
    assert b0[FIELD_INDEX["current_l1_a"]] == 9.5
    assert math.isnan(b0[FIELD_INDEX["current_l2_a"]]) and math.isnan(b0[FIELD_INDEX["energy_wh"]])
    b2 = rows[(("B", 2), NOW + 2)]
    assert b2[FIELD_INDEX["current_l1_a"]] == 8.0 and b2[FIELD_INDEX["power_w"]] == 7.0
    c = rows[(("C", 1), NOW + 5)]
    assert c[FIELD_INDEX["current_l1_a"]] == 12.5 and c[FIELD_INDEX["soc_pct"]] == 40.0
