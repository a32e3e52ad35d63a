"""One message never costs another's samples (issue 19, items 1 and 2).

Each crafted message from the break-test is sent in a batch of 40 good samples
from another charger: it alone is rejected, with its reason, and every good
sample is stored. A decoder bug of any kind is simulated too.
"""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from chargewatch.collector.pipeline import Pipeline
from chargewatch.ingest import decode_native
from chargewatch.ingest.decode_ocpp import OcppDecoder
from chargewatch.ingest.topics import TopicRouter
from chargewatch.model.batch import MeterBatch
from chargewatch.model.decoding import DecodeSink
from chargewatch.model.fleet import ConnectorIndex
from chargewatch.model.ids import is_charger_id
from chargewatch.storage.deadletter import DeadLetter

NOW = 1_795_487_165.0
BIG = b"1" * 400


def good(n: int = 40) -> list[tuple[str, bytes, float]]:
    """n single-sample and n/2 two-sample columnar messages of charger GOOD."""
    single = [
        ("ev/GOOD/1/meter", orjson.dumps({"ts": NOW - 100 + k, "power_w": float(k)}), NOW)
        for k in range(n)
    ]
    columnar = [
        (
            "ev/GOOD/2/meter",
            orjson.dumps({"ts": [NOW - 100 + 2 * k, NOW - 99 + 2 * k], "power_w": [1.0, 2.0]}),
            NOW,
        )
        for k in range(n // 2)
    ]
    return single + columnar


def stored(batch: MeterBatch, index: ConnectorIndex) -> list[tuple[str, int, float, float]]:
    return sorted(
        (*index.keys[c], t, p)
        for c, t, p in zip(
            batch.conn.tolist(), batch.ts.tolist(), batch.col("power_w").tolist(), strict=True
        )
        if index.keys[c][0] == "GOOD"
    )


def good_alone() -> list[tuple[str, int, float, float]]:
    index = ConnectorIndex()
    return stored(Pipeline(index).process(good(), NOW), index)


CRAFTED = [
    # '²'.isdigit() is true, int('²') raises ValueError
    ("ev/CPX/\u00b2/meter", b'{"ts": %f}' % NOW, "bad_connector_id"),
    ("ev/CPX/\u0663/meter", b'{"ts": %f}' % NOW, "bad_connector_id"),  # Arabic-Indic 3
    # int() refuses more than 4300 digits, even zeros
    ("ev/CPX/" + "0" * 5000 + "99/meter", b'{"ts": %f}' % NOW, "bad_connector_id"),
    ("ev/CPX\n/1/meter", b'{"ts": %f}' % NOW, "bad_charger_id"),
    ("ev/CPX\n/heartbeat", b"{}", "bad_charger_id"),
    ("ocpp/1.6/CPX\n/cp", b'[2,"1","Heartbeat",{}]', "bad_charger_id"),
    # A 400-digit number beside a NaN: the lenient parse made it a Python int.
    ("ev/CPX/1/meter", b'{"ts": %f, "power_w": %s, "soc_pct": NaN}' % (NOW, BIG), "non_finite"),
    ("ev/CPX/1/meter", b'{"ts": [%f], "power_w": [%s], "x": NaN}' % (NOW, BIG), "non_finite"),
    ("ev/CPX/1/meter", b'{"ts": [%f], "power_w": [-%s]}' % (NOW, BIG), "non_finite"),
    ("ev/CPX/1/meter", b'{"ts": %s, "soc_pct": NaN}' % BIG, "bad_timestamp"),
    ("ev/CPX/1/meter", b'{"ts": 1e400}', "bad_timestamp"),
    ("ev/CPX/1/meter", b'{"ts": %f, "energy_wh": 1e400}' % NOW, "non_finite"),
    ("ev/CPX/1/status", b'{"ts": %s, "status": "Available", "x": NaN}' % BIG, "bad_timestamp"),
    ("ev/CPX/heartbeat", b'{"ts": %s, "x": NaN}' % BIG, "bad_timestamp"),
    (
        "ev/CPX/1/transaction",
        b'{"ts": %f, "event": "stop", "transaction_id": "t", "meter_wh": %s, "x": NaN}'
        % (NOW, BIG),
        "out_of_range",
    ),
    ("ev/CPX/1/meter", b'{"ts": 0}', "timestamp_before_2010"),  # as over OCPP
]


@pytest.mark.parametrize(("topic", "payload", "reason"), CRAFTED)
def test_a_crafted_message_is_rejected_alone(
    topic: str, payload: bytes, reason: str, tmp_path: Any
) -> None:
    index = ConnectorIndex()
    dead = DeadLetter(tmp_path / "rejected.jsonl")
    pipeline = Pipeline(index, deadletter=dead)
    msgs = good()
    batch = pipeline.process([*msgs[:20], (topic, payload, NOW), *msgs[20:]], NOW)
    assert stored(batch, index) == good_alone()
    assert [(r.topic, r.reason) for r in pipeline.rejected] == [(topic, reason)]
    dead.close()
    lines = (tmp_path / "rejected.jsonl").read_bytes().splitlines()
    assert [orjson.loads(x)["reason"] for x in lines] == [reason]


def test_routes_take_only_ascii_digits_and_whole_ids() -> None:
    router = TopicRouter()
    assert router.route("ev/A/007/meter").connector == 7
    assert router.route("ev/A/64/meter").connector == 64
    assert router.route("ev/A/" + "0" * 5000 + "1/meter").connector == 1
    for topic in ("ev/A/65/meter", "ev/A/\u00b2/meter", "ev/A/\uff11/meter", "ev/A/-1/meter"):
        with pytest.raises(decode_native.DecodeError):
            router.route(topic)
    assert is_charger_id("CP-1.a:b_c")
    assert not any(map(is_charger_id, ["CP1\n", "\nCP1", "CP\u00e91", "", "x" * 65]))


def _buggy(topic_that_breaks: str) -> Any:
    real = decode_native.NativeDecoder._meter_batch

    def meter_batch(self: Any, batches: Any, conn: int, topic: str, *rest: Any) -> None:
        if topic == topic_that_breaks:
            raise KeyError("a bug")
        real(self, batches, conn, topic, *rest)

    return meter_batch


def test_a_decoder_bug_costs_only_the_message_that_hits_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Any exception, anywhere in the batched decode: the raising message is
    found by bisection and rejected alone as internal_error."""
    bad = "ev/BUG/1/meter"
    monkeypatch.setattr(decode_native.NativeDecoder, "_meter_batch", _buggy(bad))
    index = ConnectorIndex()
    pipeline = Pipeline(index)
    msgs = good()
    # A columnar message that is not plain (a string) goes through _meter_batch.
    payload = orjson.dumps({"ts": [NOW, NOW + 1], "power_w": [1.0, "x"]})
    batch = pipeline.process([*msgs[:7], (bad, payload, NOW), *msgs[7:]], NOW)
    assert stored(batch, index) == good_alone()
    assert [(r.topic, r.reason) for r in pipeline.rejected] == [(bad, "internal_error")]
    assert pipeline.rejected[0].detail == "KeyError: 'a bug'"


def test_event_and_ocpp_decoder_bugs_cost_only_their_message(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def broken(*args: Any) -> None:
        raise ZeroDivisionError("a bug")

    class BrokenOcpp:
        def decode(self, *args: Any) -> None:
            broken()

    monkeypatch.setattr(decode_native.NativeDecoder, "_status", broken)
    monkeypatch.setattr(TopicRouter, "_parse", _raising_parse(TopicRouter._parse))
    index = ConnectorIndex()
    pipeline = Pipeline(index, ocpp=BrokenOcpp())
    msgs = good()
    bad = [
        ("ev/CPX/1/status", b'{"status": "Available"}', NOW),
        ("ocpp/1.6/CPX/cp", b'[2,"1","Heartbeat",{}]', NOW),
        ("ev/ROUTE-BUG/1/meter", b"{}", NOW),
    ]
    batch = pipeline.process([*msgs[:5], *bad, *msgs[5:]], NOW)
    assert stored(batch, index) == good_alone()
    assert sorted((r.topic, r.reason) for r in pipeline.rejected) == sorted(
        (t, "internal_error") for t, _, _ in bad
    )


def _raising_parse(real: Any) -> Any:
    def parse(topic: str) -> Any:
        if "ROUTE-BUG" in topic:
            raise IndexError("a bug")
        return real(topic)

    return staticmethod(parse)


def test_the_sink_is_rolled_back_to_what_good_messages_produced(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A failing batch may already have added blocks and rejections: none is doubled."""
    bad = "ev/BUG/1/meter"
    monkeypatch.setattr(decode_native.NativeDecoder, "_meter_batch", _buggy(bad))
    sink = DecodeSink()
    index = ConnectorIndex()
    router = TopicRouter()
    msgs = [*good(), ("ev/GOOD/3/meter", b'{"ts": "nope"}', NOW)]
    payload = orjson.dumps({"ts": [NOW, NOW + 1], "power_w": [1.0, "x"]})
    msgs.append((bad, payload, NOW))
    decode_native.NativeDecoder(index).decode_meters(
        [(router.route(t), t, p, r) for t, p, r in msgs], sink
    )
    assert stored(sink.meter.build(), index) == good_alone()
    assert sorted(r.reason for r in sink.rejects) == ["bad_timestamp", "internal_error"]


def test_an_ocpp_handler_that_raises_half_way_leaves_none_of_its_rows(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The OCPP message is rejected whole: rows its handler added before raising go too."""
    from chargewatch.ingest.ocpp import decoder as ocpp_decoder  # noqa: PLC0415
    from chargewatch.ingest.ocpp import v16  # noqa: PLC0415

    real = v16.HANDLERS["MeterValues"]

    def half_then_raise(ctx: Any, f: Any, payload: Any) -> None:
        real(ctx, f, payload)  # emits the rows
        if f.charger == "BUG":
            raise ZeroDivisionError("a bug after the rows")

    monkeypatch.setitem(ocpp_decoder._HANDLERS, ("1.6", "MeterValues"), half_then_raise)
    frame = [
        2,
        "m1",
        "MeterValues",
        {
            "connectorId": 1,
            "meterValue": [
                {
                    "timestamp": "2026-11-24T10:00:00Z",
                    "sampledValue": [{"value": "7000", "measurand": "Power.Active.Import"}],
                }
            ],
        },
    ]
    decoder = ocpp_decoder.OcppDecoder(ConnectorIndex())
    sink = DecodeSink()
    for charger in ("OK", "BUG"):
        topic = f"ocpp/1.6/{charger}/cp"
        decoder.decode(topic, "1.6", charger, "cp", orjson.dumps(frame), NOW, sink)
    batch = sink.meter.build()
    assert [decoder.index.keys[c][0] for c in batch.conn.tolist()] == ["OK"]
    assert [(r.topic, r.reason) for r in sink.rejects] == [("ocpp/1.6/BUG/cp", "internal_error")]


class _Recorder:
    def __init__(self, fail: bool) -> None:
        self.fail = fail
        self.seen = 0

    def on_batch(self, batch: MeterBatch, events: list[Any], now: float) -> None:
        self.seen += len(batch)
        if self.fail:
            raise KeyError("a stage bug")

    def tick(self, now: float) -> None:
        pass


def test_a_stage_that_raises_does_not_cost_the_other_stages_the_batch() -> None:
    """The failure still surfaces (the service keeps the batch for inspection)."""
    broken, after = _Recorder(fail=True), _Recorder(fail=False)
    pipeline = Pipeline(ConnectorIndex(), stages=[broken, after])
    with pytest.raises(KeyError, match="a stage bug"):
        pipeline.process(good(), NOW)
    assert broken.seen == after.seen == 80


@pytest.mark.parametrize(
    ("bad", "reason"),
    [("1e9", "out_of_range"), ("NaN", "non_finite"), ("-3730.21", "negative_register")],
)
def test_one_bad_ocpp_value_costs_only_itself(bad: str, reason: str, tmp_path: Any) -> None:
    """Issue 17: the value is rejected alone (counted, dead-lettered with its
    place); the message's other values and the other messages are stored."""
    index = ConnectorIndex()
    dead = DeadLetter(tmp_path / "rejected.jsonl")
    pipeline = Pipeline(index, deadletter=dead, ocpp=OcppDecoder(index))
    register = bad.startswith("-")
    measurand, unit = ("Energy.Active.Import.Register", "Wh") if register else ("Voltage", "V")
    frame = [
        2,
        "m1",
        "MeterValues",
        {
            "connectorId": 1,
            "meterValue": [
                {
                    "timestamp": "2026-11-24T03:00:00Z",
                    "sampledValue": [
                        {"value": "7400", "measurand": "Power.Active.Import", "unit": "W"},
                        {"value": bad, "measurand": measurand, "unit": unit},
                        {"value": "32", "measurand": "Current.Import", "phase": "L1"},
                    ],
                }
            ],
        },
    ]
    topic = "ocpp/1.6/OCPP1/cp"
    msgs = good()
    batch = pipeline.process([*msgs[:20], (topic, orjson.dumps(frame), NOW), *msgs[20:]], NOW)
    assert stored(batch, index) == good_alone()
    (row,) = [i for i, c in enumerate(batch.conn.tolist()) if index.keys[c][0] == "OCPP1"]
    assert batch.col("power_w")[row] == 7400.0 and batch.col("current_l1_a")[row] == 32.0
    assert pipeline.stats.rejected_by_reason == {reason: 1}
    dead.close()
    (line,) = (tmp_path / "rejected.jsonl").read_bytes().splitlines()
    record = orjson.loads(line)
    assert (record["reason"], record["index"], record["value_index"]) == (reason, 0, 1)
