"""The simdjson path for plain columnar messages gives exactly what the general
decoder gives: the same samples and the same rejections, whatever the message."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from chargewatch.ingest.decode_native import NativeDecoder
from chargewatch.ingest.topics import TopicRouter
from chargewatch.model.decoding import DecodeSink
from chargewatch.model.fleet import ConnectorIndex

NOW = 1_795_487_165.0
ROUTER = TopicRouter()


def decode(messages: list[tuple[str, bytes]], fast: bool) -> tuple[Any, list[Any]]:
    dec = NativeDecoder(ConnectorIndex(), max_samples_per_message=50, fast_columns=fast)
    sink = DecodeSink()
    dec.decode_meters([(ROUTER.route(t), t, p, NOW) for t, p in messages], sink)
    return sink.meter.build(), sink.rejects


def rows(batch: Any) -> list[tuple[Any, ...]]:
    """Rows as comparable tuples, NaN made equal to itself, in a fixed order."""
    values = np.where(np.isnan(batch.values), -1e300, batch.values)
    out = [
        (int(c), float(t), float(r), *map(float, v))
        for c, t, r, v in zip(batch.conn, batch.ts, batch.recv, values, strict=True)
    ]
    return sorted(out)


def same(messages: list[tuple[str, bytes]]) -> None:
    fast_batch, fast_rej = decode(messages, True)
    slow_batch, slow_rej = decode(messages, False)
    assert rows(fast_batch) == rows(slow_batch)
    key = lambda r: (r.topic, r.reason, r.detail, r.index, orjson.dumps(r.payload))  # noqa: E731
    assert sorted(map(key, fast_rej)) == sorted(map(key, slow_rej))


numbers = st.one_of(
    st.floats(min_value=-1e4, max_value=1e6, allow_nan=False),
    st.integers(min_value=-10, max_value=10**6),
    st.sampled_from([0, -0.0, 1e-320, 1e11, 2**53 + 1, 18446744073709551615, 1e308]),
)
timestamps = st.one_of(
    st.floats(min_value=NOW - 5000, max_value=NOW + 100),
    st.sampled_from([NOW, int(NOW), NOW * 1000, 1e9, NOW + 10**6, "2026-11-24T08:00:00Z"]),
)
odd = st.sampled_from([None, True, "7", [], {}, float("nan")])


@st.composite
def messages(draw: Any) -> tuple[str, bytes]:
    n = draw(st.integers(min_value=0, max_value=6))
    doc: dict[str, Any] = {"ts": draw(st.lists(timestamps, min_size=n, max_size=n))}
    for key in ("energy_wh", "power_w", "temperature_c", "soc_pct", "offered_a"):
        if draw(st.booleans()):
            size = n if draw(st.integers(0, 9)) else draw(st.integers(0, 7))
            doc[key] = draw(st.lists(numbers | (odd if draw(st.booleans()) else numbers),
                                     min_size=size, max_size=size))  # fmt: skip
    for key in ("current_a", "voltage_v"):
        shape = draw(st.sampled_from(["flat", "w1", "w2", "w3", "ragged", "null", "absent"]))
        if shape == "absent":
            continue
        if shape == "null":
            doc[key] = None
        elif shape == "flat":
            doc[key] = draw(st.lists(numbers, min_size=n, max_size=n))
        elif shape == "ragged":
            doc[key] = draw(
                st.lists(st.lists(numbers, min_size=0, max_size=4), min_size=n, max_size=n)
            )
        else:
            w = int(shape[1])
            doc[key] = draw(
                st.lists(st.lists(numbers, min_size=w, max_size=w), min_size=n, max_size=n)
            )
    if draw(st.integers(0, 9)) == 0:
        doc["firmware"] = "1.2[3]"
    style = draw(st.sampled_from(["orjson", "orjson", "spaced", "dup"]))
    if style == "spaced":
        text = json.dumps(doc, indent=1).encode()
    else:
        text = orjson.dumps(doc) if "nan" not in repr(doc) else json.dumps(doc).encode()
        if style == "dup" and n:
            text = text[:-1] + b',"power_w":[' + b",".join([b"1"] * n) + b"]}"
    topic = draw(st.sampled_from(["ev/A/1/meter", "ev/B/2/meter", "ev/C/0/meter"]))
    return topic, text


@settings(max_examples=400, deadline=None)
@given(st.lists(messages(), min_size=1, max_size=6))
def test_fast_and_general_paths_agree(msgs: list[tuple[str, bytes]]) -> None:
    same(msgs)


def test_plain_messages_take_the_fast_path_and_match() -> None:
    ts = [NOW - 3 + k for k in range(3)]
    plain = [
        ("ev/A/1/meter", orjson.dumps({"ts": ts, "energy_wh": [1.0, 2, 3.5],
                                       "current_a": [[1, 2, 3]] * 3, "voltage_v": [[230]] * 3})),
        ("ev/A/2/meter", orjson.dumps({"ts": ts, "power_w": [7000, 7100.5, 0],
                                       "current_a": [16, 16, 16], "soc_pct": None})),
    ]  # fmt: skip
    dec = NativeDecoder(ConnectorIndex())
    taken = []
    add = dec._simd.add
    dec._simd.add = lambda *a: taken.append(add(*a)) or taken[-1]  # type: ignore[method-assign]
    sink = DecodeSink()
    dec.decode_meters([(ROUTER.route(t), t, p, NOW) for t, p in plain], sink)
    assert taken == [True, True]
    batch = sink.meter.build()
    assert len(batch) == 6 and not sink.rejects
    same(plain)
    assert np.allclose(batch.col("current_l3_a")[:3], 3.0)
    assert np.isnan(batch.col("voltage_l2_v")[:3]).all()


def test_a_bad_sample_sends_its_message_to_the_general_decoder() -> None:
    ts = [NOW - 1, NOW + 10**6, NOW]
    msgs = [
        ("ev/A/1/meter", orjson.dumps({"ts": ts, "power_w": [1, 2, 3]})),
        ("ev/A/2/meter", orjson.dumps({"ts": [NOW - 1, NOW], "power_w": [1, 3e6]})),
        ("ev/A/3/meter", orjson.dumps({"ts": [NOW - 1, NOW], "power_w": [1, 2]})),
    ]
    batch, rejects = decode(msgs, True)
    assert len(batch) == 2 + 1 + 2
    assert sorted((r.topic, r.reason, r.index) for r in rejects) == [
        ("ev/A/1/meter", "future_timestamp", 1),
        ("ev/A/2/meter", "out_of_range", 1),
    ]
    same(msgs)
