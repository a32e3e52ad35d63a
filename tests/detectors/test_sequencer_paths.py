"""The sequencer's fast paths (field-major columns, cleaning by min/max, the
interval's median, the delta history) agree exactly with plain definitions."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from chargewatch.detectors.sequencer import (
    Events,
    Frame,
    History,
    Sequencer,
    _median_sorted,
    median_of_rows,
)
from chargewatch.model.batch import FIELD_INDEX, N_FIELDS, MeterBatch


def _median_plain(a: np.ndarray) -> np.ndarray:
    out = np.full(a.shape[0], np.nan)
    for i, row in enumerate(a):
        v = np.sort(row[np.isfinite(row)])
        if v.size:
            out[i] = 0.5 * (v[(v.size - 1) // 2] + v[v.size // 2])
    return out


_cell = st.sampled_from([np.nan, np.inf, -np.inf, 1.0, 2.0, 10.0, 0.5, 1e308])


@settings(max_examples=60, deadline=None)
@given(st.lists(st.lists(_cell, min_size=9, max_size=9), min_size=1, max_size=20))
def test_median_of_rows_is_the_median_of_finite_values(rows: list[list[float]]) -> None:
    a = np.array(rows)
    with np.errstate(all="ignore"):
        got = median_of_rows(a)
        # The sort on every row, as before the shortcut (the deltas it is used on
        # hold no infinities; with them, both give the same too).
        np.testing.assert_array_equal(got, _median_sorted(a))
        plain = ~np.isinf(a).any(axis=1)
        np.testing.assert_array_equal(got[plain], _median_plain(a[plain]))


def test_median_of_rows_steady_and_mixed_rows() -> None:
    a = np.full((4, 9), 10.0)
    a[1, :3] = np.nan  # equal finite values and gaps: the shortcut
    a[2] = np.nan  # none: NaN
    a[3, 4] = 30.0  # uneven: sorted
    np.testing.assert_array_equal(median_of_rows(a), [10.0, 10.0, np.nan, 10.0])


def _frame(conn: np.ndarray) -> Frame:
    order = np.argsort(conn, kind="stable")
    c = conn[order].astype(np.int64)
    n = c.shape[0]
    return Frame.build(
        c,
        np.arange(n, dtype=float),
        np.arange(n, dtype=float),
        np.zeros((n, N_FIELDS)),
        np.zeros(n, np.int8),
        int(c.max()) + 1,
    )


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.lists(st.integers(0, 5), min_size=1, max_size=40), min_size=1, max_size=5),
    st.integers(1, 9),
)
def test_history_keeps_each_connectors_last_k_values(batches: list[list[int]], k: int) -> None:
    h = History(k)
    seen: dict[int, list[float]] = {}
    x0 = 0.0
    for conns in batches:
        f = _frame(np.array(conns))
        x = x0 + np.arange(len(f), dtype=float)
        x0 += len(f)
        h.push(f, x)
        for c, v in zip(f.conn.tolist(), x.tolist(), strict=True):
            seen.setdefault(c, []).append(v)
        for c, vals in seen.items():
            want = ([np.nan] * k + vals)[-k:]
            np.testing.assert_array_equal(h.buf[c], want)


def test_history_equal_counts_and_long_segments() -> None:
    for per in (1, 3, 9, 12):  # every connector brings the same count, below and above k
        h = History(9)
        seen: dict[int, list[float]] = {}
        for b in range(4):
            f = _frame(np.tile(np.arange(7), per))
            x = 100.0 * b + np.arange(len(f), dtype=float)
            h.push(f, x)
            for c, v in zip(f.conn.tolist(), x.tolist(), strict=True):
                seen.setdefault(c, []).append(v)
        for c, vals in seen.items():
            np.testing.assert_array_equal(h.buf[c], ([np.nan] * 9 + vals)[-9:])


def _batch(rng: np.random.Generator, n_conn: int, rows: int, late: bool) -> MeterBatch:
    conn = rng.integers(0, n_conn, rows).astype(np.int32)
    ts = 1_800_000_000.0 + rng.permutation(rows).astype(float)
    recv = ts + rng.uniform(0.0, 1.0, rows)
    if late:  # receive order differs from ts order: the two sorts differ
        recv = recv[::-1].copy()
    v = rng.uniform(0.0, 100.0, (rows, N_FIELDS))
    bad = rng.random(v.shape) < 0.1
    v[bad] = rng.choice([np.nan, np.inf, -np.inf, -3.0], int(bad.sum()))
    return MeterBatch(conn, ts, recv, v)


def _counts_plain(v: np.ndarray) -> tuple[int, int, int, np.ndarray]:
    """Per value: inf and negative values become NaN, except negative
    temperatures and registers (a negative register is a meter fault's evidence,
    kept and counted on its own)."""
    bad = np.isinf(v)
    neg = v < 0
    neg[:, FIELD_INDEX["temperature_c"]] = False
    e = FIELD_INDEX["energy_wh"]
    neg_reg = int((neg[:, e] & ~bad[:, e]).sum())
    neg[:, e] = False
    return int(bad.sum()), int(neg.sum()), neg_reg, np.where(bad | neg, np.nan, v)


def test_frame_columns_are_the_sorted_cleaned_rows() -> None:
    rng = np.random.default_rng(3)
    for late in (False, True):
        b = _batch(rng, 6, 300, late)
        counters: dict[str, int] = {}
        f = Sequencer().frame(b, Events.none(), 6, counters)
        nb, nn, nr, clean = _counts_plain(b.values)
        assert nr > 0  # the batch has negative registers to keep
        assert counters.get("nonfinite_values", 0) == nb
        assert counters.get("negative_values", 0) == nn
        assert counters.get("negative_registers", 0) == nr
        order = np.lexsort((b.ts, b.conn))
        np.testing.assert_array_equal(f.values, clean[order])
        assert f.values.flags.f_contiguous
        for name, j in FIELD_INDEX.items():
            np.testing.assert_array_equal(f.col(name), clean[order, j])
        np.testing.assert_array_equal(f.block(2), clean[order, 2:5])
        by_recv = np.lexsort((b.recv, b.conn))
        np.testing.assert_array_equal(f.raw_power, clean[by_recv, FIELD_INDEX["power_w"]])
        np.testing.assert_array_equal(f.raw_energy, clean[by_recv, FIELD_INDEX["energy_wh"]])
        sub = f.rows(np.arange(len(f)) % 2 == 0)
        np.testing.assert_array_equal(sub.col("power_w"), f.col("power_w")[::2])


def test_clean_batches_are_left_as_they_are() -> None:
    rng = np.random.default_rng(4)
    b = _batch(rng, 4, 50, False)
    v = np.abs(np.nan_to_num(b.values, nan=1.0, posinf=1.0, neginf=1.0))
    v[:, FIELD_INDEX["temperature_c"]] = -20.0  # may be negative
    counters: dict[str, int] = {}
    f = Sequencer().frame(MeterBatch(b.conn, b.ts, b.recv, v), Events.none(), 4, counters)
    assert "nonfinite_values" not in counters and "negative_values" not in counters
    assert "negative_registers" not in counters
    np.testing.assert_array_equal(f.values, v[np.lexsort((b.ts, b.conn))])
