"""NaN, inf, negative, out-of-order and duplicated samples: no exceptions, no
false findings, and every one counted."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from chargewatch.detectors import DetectorSet
from chargewatch.model.batch import FIELD_INDEX, MeterBatch

from .helpers import T0, charging, fleet, run, session_start


def test_garbage_values_are_counted_and_raise_nothing() -> None:
    idx = fleet(1)
    b = charging(200)
    rng = np.random.default_rng(1)
    bad = rng.random(b.values.shape) < 0.05
    b.values[bad] = rng.choice([np.nan, np.inf, -np.inf, -5.0], size=int(bad.sum()))
    ds = run(b, session_start(idx), idx, cuts=7)
    assert ds.findings == []
    c = ds.counters
    assert c["nonfinite_values"] > 0 and c["negative_values"] > 0
    assert c["negative_registers"] > 0  # kept, not garbage: and no finding either


def test_out_of_order_and_duplicates_are_dropped_and_counted() -> None:
    idx = fleet(1)
    b = charging(100)
    order = np.r_[np.arange(50), np.arange(40, 100)]  # ten rows resent
    late = MeterBatch(b.conn[:5], b.ts[:5], b.recv[-5:] + 5, b.values[:5])  # stale resend
    dup = b.take(order)
    stream = MeterBatch.concat([dup, late])
    ds = DetectorSet()
    ds.update(stream.take(np.arange(len(dup))), session_start(idx), idx, float(b.recv[-1]))
    ds.update(late, [], idx, float(late.recv[-1]))
    assert ds.findings == []
    assert ds.counters["duplicate_ts"] == 10
    assert ds.counters["out_of_order"] == 5


def test_unknown_connectors_and_bad_times_are_counted() -> None:
    idx = fleet(1)
    b = charging(10)
    conn = b.conn.copy()
    conn[0] = 99
    ts = b.ts.copy()
    ts[1] = np.nan
    ds = DetectorSet()
    ds.update(MeterBatch(conn, ts, b.recv, b.values), [], idx, T0 + 100)
    assert ds.counters["bad_rows"] == 2


_floats = st.floats(allow_nan=True, allow_infinity=True, width=64)


@settings(max_examples=40, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.integers(0, 2), st.floats(-100, 5000), st.lists(_floats, min_size=11, max_size=11)
        ),
        min_size=1,
        max_size=60,
    )
)
def test_any_rows_never_raise(rows: list[tuple[int, float, list[float]]]) -> None:
    idx = fleet(3)
    conn = np.array([r[0] for r in rows], np.int32)
    ts = T0 + np.array([r[1] for r in rows])
    vals = np.array([r[2] for r in rows], np.float64)
    ds = DetectorSet()
    ds.update(MeterBatch(conn, ts, ts + 1, vals), [], idx, float(ts.max() + 2))
    ds.tick(float(ts.max() + 10_000))
    sig = ds.signals
    assert sig["meter_stuck"].shape == (3,)
    assert (
        np.isnan(sig["over_temperature_score"]).any()
        or np.isfinite(sig["over_temperature_score"]).all()
    )


def test_nan_in_means_unknown_out() -> None:
    idx = fleet(1)
    b = charging(20)
    b.values[:, FIELD_INDEX["temperature_c"]] = np.nan
    ds = run(b, [], idx)
    assert np.isnan(ds.signals["over_temperature_score"][0])
    assert not ds.signals["over_temperature"][0]
