"""Property tests of the native decoder: no input makes it raise; every rejection has a reason;
good samples beside bad ones are kept."""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from chargewatch.collector.pipeline import Pipeline
from chargewatch.core.errors import DecodeError
from chargewatch.ingest.decode_native import LIMITS, NativeDecoder
from chargewatch.ingest.decode_ocpp import OcppDecoder
from chargewatch.ingest.topics import TopicRouter
from chargewatch.model.decoding import DecodeSink
from chargewatch.model.fleet import ConnectorIndex
from chargewatch.model.ids import is_charger_id

NOW = 1_795_487_165.0
TOPICS = ["ev/A/1/meter", "ev/A/1/status", "ev/A/1/transaction", "ev/A/heartbeat", "ev/A/online"]

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=6)
    ),
    max_leaves=20,
)
keys = st.sampled_from(
    [
        "ts",
        "energy_wh",
        "power_w",
        "current_a",
        "voltage_v",
        "temperature_c",
        "soc_pct",
        "offered_a",
        "status",
        "error_code",
        "event",
        "transaction_id",
        "meter_wh",
        "online",
    ]
)
meterish = st.dictionaries(keys, json_values, max_size=8)


def run(topic: str, payload: bytes) -> DecodeSink:
    sink = DecodeSink()
    NativeDecoder(ConnectorIndex()).decode(TopicRouter().route(topic), topic, payload, NOW, sink)
    return sink


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(TOPICS), st.binary(max_size=200))
def test_arbitrary_bytes_never_raise(topic: str, payload: bytes) -> None:
    sink = run(topic, payload)
    assert all(r.reason and r.detail is not None for r in sink.rejects)


@settings(max_examples=400, deadline=None)
@given(st.sampled_from(TOPICS), meterish)
def test_arbitrary_objects_are_used_or_rejected_with_reason(
    topic: str, doc: dict[str, object]
) -> None:
    sink = run(topic, json.dumps(doc).encode())  # stdlib: also writes ints beyond 64 bits
    produced = len(sink.meter) + len(sink.events)
    assert produced + len(sink.rejects) >= 1
    assert all(r.reason for r in sink.rejects)
    b = sink.meter.build()
    # whatever was accepted is finite where present and within the documented limits
    for i, (lo, hi) in enumerate(LIMITS.values()):
        col = b.values[:, i]
        assert all(math.isnan(v) or lo <= v <= hi for v in col.tolist())


good_value = st.floats(min_value=0, max_value=1e6, allow_nan=False)
bad_value = st.one_of(st.text(max_size=3), st.just(-1e12), st.booleans(), st.just([1, 2, 3, 4]))


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.booleans(), good_value, bad_value), min_size=1, max_size=40))
def test_bad_samples_never_cost_good_ones(rows: list[tuple[bool, float, object]]) -> None:
    ts = [NOW - 1000 + k for k in range(len(rows))]
    power = [v if ok else bad for ok, v, bad in rows]
    sink = run("ev/A/1/meter", orjson.dumps({"ts": ts, "power_w": power}))
    b = sink.meter.build()
    want = [(t, v) for t, (ok, v, _) in zip(ts, rows, strict=True) if ok]
    assert list(zip(b.ts.tolist(), b.col("power_w").tolist(), strict=True)) == want
    assert sorted(r.index for r in sink.rejects) == [  # type: ignore[type-var]
        k for k, (ok, _, _) in enumerate(rows) if not ok
    ]


# -- hostile topics and numbers (issue 19: what the strategies above never made) --

# Characters str.isdigit() or int() take beyond ASCII: superscripts, other
# scripts' digits, fullwidth digits; control characters; other non-ASCII.
unicode_digits = st.characters(categories=["Nd", "No"]).filter(lambda c: not c.isascii())
control = st.characters(categories=["Cc", "Cf", "Zl", "Zp"])
non_ascii = st.characters(min_codepoint=0x80)
id_char = st.sampled_from("AZaz09._:-")
weird_char = st.one_of(unicode_digits, control, non_ascii, st.sampled_from("/+#\n\r\t \x00"))
charger_ids = st.one_of(
    st.text(id_char, min_size=1, max_size=8),
    st.text(st.one_of(id_char, weird_char), min_size=0, max_size=8),
    st.text(id_char, min_size=1, max_size=8).map(lambda s: s + "\n"),
    st.text(id_char, min_size=65, max_size=70),
).filter(lambda s: s != "GOOD")
connector_ids = st.one_of(
    st.integers(0, 99).map(str),
    st.text(st.one_of(st.sampled_from("0123456789"), unicode_digits), min_size=1, max_size=4),
    st.text(weird_char, max_size=3),
    st.integers(4290, 4310).map(lambda n: "0" * n + "1"),
    st.just("-1"),
)
kinds = st.sampled_from(["meter", "status", "transaction"])
topics = st.one_of(
    st.builds(lambda c, n, k: f"ev/{c}/{n}/{k}", charger_ids, connector_ids, kinds),
    st.builds(lambda c, k: f"ev/{c}/{k}", charger_ids, st.sampled_from(["heartbeat", "online"])),
    st.builds(
        lambda v, c, s: f"ocpp/{v}/{c}/{s}",
        st.sampled_from(["1.6", "2.0.1", "9"]),
        charger_ids,
        st.sampled_from(["cp", "csms"]),
    ),
    st.text(max_size=30),
)

# Number literals as JSON text, including what only the lenient parse reads.
big_digits = st.integers(19, 420).map(lambda n: "9" * n)
LITERALS = [
    "NaN", "Infinity", "-Infinity", "-0", "-0.0", "1e400", "-1e400", "1e-400", "1E308",
    "18446744073709551616", "-9223372036854775809", "001", "1.", ".5", "+1",
]  # fmt: skip
numbers = st.one_of(
    st.integers().map(str),
    st.floats(allow_nan=False, allow_infinity=False).map(repr),
    big_digits,
    big_digits.map(lambda s: "-" + s),
    st.sampled_from(LITERALS),
    st.floats(NOW - 1e6, NOW).map(repr),
)


def _json_array(items: list[str]) -> str:
    return "[" + ",".join(items) + "]"


@st.composite
def hostile_payloads(draw: st.DrawFn) -> bytes:
    """A meter-shaped object (single or columnar) whose numbers are hostile literals."""
    fields = draw(st.lists(keys, max_size=5, unique=True))
    if draw(st.booleans()):
        n = draw(st.integers(1, 4))
        cols = {k: _json_array(draw(st.lists(numbers, min_size=n, max_size=n))) for k in fields}
    else:
        cols = {k: draw(numbers) for k in fields}
    body = ",".join(f'"{k}":{v}' for k, v in cols.items())
    return ("{" + body + "}").encode()


@settings(max_examples=500, deadline=None)
@given(topics)
def test_any_topic_routes_or_raises_decode_error(topic: str) -> None:
    try:
        r = TopicRouter().route(topic)
    except DecodeError as exc:
        assert exc.reason
        return
    assert r.charger.isascii() and is_charger_id(r.charger)
    assert 0 <= r.connector <= 64


def _good_messages(rows: list[tuple[int, bool, float]]) -> list[tuple[str, bytes, float]]:
    """Charger GOOD's messages: single samples and columnar batches, all valid."""
    out = []
    for k, (conn, columnar, power) in enumerate(rows):
        ts = NOW - 1000 + k * 2
        if columnar:
            doc: dict[str, object] = {"ts": [ts, ts + 1], "power_w": [power, -power]}
        else:
            doc = {"ts": ts, "power_w": power, "current_a": [power / 1e3]}
        out.append((f"ev/GOOD/{conn}/meter", orjson.dumps(doc), NOW))
    return out


def _good_lines(msgs: list[tuple[str, bytes, float]]) -> tuple[list[str], list[Any]]:
    """GOOD's line protocol and MeterBatch rows after one Pipeline.process."""
    lines: list[str] = []
    index = ConnectorIndex()

    class Sink:
        def write(self, batch: list[str]) -> None:
            lines.extend(batch)

    pipeline = Pipeline(index, lines=Sink(), ocpp=OcppDecoder(index))
    b = pipeline.process(msgs, NOW)
    rows = sorted(
        (index.keys[c], t, tuple(np.nan_to_num(v, nan=-1e300).tolist()))
        for c, t, v in zip(b.conn.tolist(), b.ts.tolist(), b.values, strict=True)
        if index.keys[c][0] == "GOOD"
    )
    assert all(r.topic.split("/")[1:2] != ["GOOD"] for r in pipeline.rejected)
    return sorted(x for x in lines if ",charger=GOOD," in x), rows


good_rows = st.lists(
    st.tuples(st.integers(1, 3), st.booleans(), st.floats(0, 1e5, allow_nan=False)),
    min_size=1,
    max_size=12,
)


@settings(max_examples=300, deadline=None)
@given(good_rows, topics, st.one_of(hostile_payloads(), st.binary(max_size=64)), st.data())
def test_one_bad_message_never_changes_the_good_samples(
    rows: list[tuple[int, bool, float]], topic: str, payload: bytes, data: st.DataObject
) -> None:
    """Good messages plus one arbitrary message: GOOD's stored samples (line
    protocol and MeterBatch rows) are exactly those of the good messages alone."""
    good = _good_messages(rows)
    at = data.draw(st.integers(0, len(good)))
    alone = _good_lines(good)
    assert len(alone[1]) == sum(2 if columnar else 1 for _, columnar, _ in rows)
    assert _good_lines([*good[:at], (topic, payload, NOW), *good[at:]]) == alone


@settings(max_examples=300, deadline=None)
@given(good_rows, st.sampled_from(["ev/BAD/1/meter", "ev/BAD/2/meter"]), hostile_payloads())
def test_hostile_numbers_never_change_the_good_samples(
    rows: list[tuple[int, bool, float]], topic: str, payload: bytes
) -> None:
    """The same, with the bad message on a valid meter topic (so its numbers are read)."""
    good = _good_messages(rows)
    assert _good_lines([*good, (topic, payload, NOW)]) == _good_lines(good)
    sink = run(topic, payload)
    assert all(r.reason != "internal_error" for r in sink.rejects), sink.rejects
