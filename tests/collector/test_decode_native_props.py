"""Property tests of the native decoder: no input makes it raise; every rejection has a reason;
good samples beside bad ones are kept."""

from __future__ import annotations

import json
import math

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from chargewatch.ingest.decode_native import LIMITS, NativeDecoder
from chargewatch.ingest.topics import TopicRouter
from chargewatch.model.decoding import DecodeSink
from chargewatch.model.fleet import ConnectorIndex

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
