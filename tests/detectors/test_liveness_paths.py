"""The liveness detectors' fast paths (the cadence history pushed from the ok
rows, the median of five by a sorting network) agree exactly with the plain
definitions they replace (History.push over a frame of those rows,
median_of_rows)."""

from __future__ import annotations

import itertools

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from chargewatch.detectors.liveness import _CAD_KEEP, _CAD_MIN, _cadence_rows, _push_last
from chargewatch.detectors.sequencer import Frame, History, median_of_rows

_NO_VALUES = np.empty((0, 0))


def _plain_cadence(rows: np.ndarray) -> np.ndarray:
    enough = np.isfinite(rows).sum(axis=1) >= _CAD_MIN
    return np.where(enough, median_of_rows(rows), np.nan)


def test_median_network_every_order_and_gaps() -> None:
    # Every arrangement of five values from 0..4 (ties included), then random
    # values with NaN (unknown gaps) and inf among them.
    every = np.array(list(itertools.product(range(5), repeat=5)), float)
    rng = np.random.default_rng(7)
    rand = rng.uniform(0.0, 10.0, (4000, _CAD_KEEP))
    for share in (0.0, 0.1, 0.5):
        holes = rand.copy()
        holes[rng.random(holes.shape) < share] = np.nan
        holes[rng.random(holes.shape) < share / 10] = np.inf
        for a in (every, holes):
            got = _cadence_rows(np.ascontiguousarray(a.T))
            assert np.array_equal(got, _plain_cadence(a), equal_nan=True)


def _frame(conn: np.ndarray, x: np.ndarray, n_conn: int) -> Frame:
    return Frame.build(conn, x, x, _NO_VALUES, np.zeros(conn.size, np.int8), n_conn)


@settings(max_examples=200, deadline=None)
@given(
    st.integers(1, 12),
    st.lists(st.lists(st.integers(0, 9), min_size=12, max_size=12), min_size=1, max_size=4),
    st.integers(0, 2**31 - 1),
)
def test_push_last_is_push_of_ok_rows(n_conn: int, lengths: list[list[int]], seed: int) -> None:
    rng = np.random.default_rng(seed)
    plain, fast = History(_CAD_KEEP), History(_CAD_KEEP)
    for lens in lengths:  # successive batches
        conn = np.repeat(np.arange(n_conn), lens[:n_conn])
        x = rng.uniform(0.0, 3.0, conn.size)
        x[rng.random(conn.size) < 0.2] = np.nan
        # Some batches keep every row (the fast path when each connector has
        # at least k of them), others a part.
        ok = x >= 1.0 if rng.random() < 0.5 else np.ones(conn.size, np.bool_)
        _same_as_push(plain, fast, conn, x, ok, n_conn)


@settings(max_examples=200, deadline=None)
@given(
    st.integers(1, 12),
    st.lists(st.tuples(st.integers(1, _CAD_KEEP - 1), st.integers(0, 3)), min_size=1, max_size=6),
    st.integers(0, 2**31 - 1),
)
def test_push_last_equal_short_runs_is_push(
    n_conn: int, batches: list[tuple[int, int]], seed: int
) -> None:
    # Every connector with ok rows has the same number u < k of them (a
    # pipeline's short updates: one row each, of which the gaps too short to
    # count are not kept): the two block copies against History.push, over
    # batches where some connectors bring rows none of which are kept, or
    # bring more rows of which u are kept (so the kept rows are not every row
    # and the connectors with kept rows not always consecutive ids).
    rng = np.random.default_rng(seed)
    plain, fast = History(_CAD_KEEP), History(_CAD_KEEP)
    for u, extra in batches:
        lens = np.full(n_conn, u) + rng.integers(0, extra + 1, n_conn)
        conn = np.repeat(np.arange(n_conn), lens)
        x = rng.uniform(1.0, 3.0, conn.size)
        ok = np.zeros(conn.size, np.bool_)
        starts = np.concatenate([[0], np.cumsum(lens)[:-1]])
        keep = rng.random(n_conn) < 0.7  # the others: no row kept
        for c in np.flatnonzero(keep):
            ok[starts[c] + rng.choice(lens[c], u, replace=False)] = True
        _same_as_push(plain, fast, conn, x, ok, n_conn)


def _same_as_push(
    plain: History,
    fast: History,
    conn: np.ndarray,
    x: np.ndarray,
    ok: np.ndarray,
    n_conn: int,
) -> None:
    """`_push_last` on `fast` gives what `History.push` of the kept rows gives on `plain`."""
    rows = np.flatnonzero(ok)
    cs, new = _push_last(fast, _frame(conn, x, n_conn), x, ok)
    if rows.size:
        sub = _frame(conn[rows], x[rows], n_conn)
        plain.push(sub, x[rows])
        assert np.array_equal(cs, sub.touched)
        assert np.array_equal(plain.buf[:n_conn], fast.buf[:n_conn], equal_nan=True)
    else:
        assert cs.size == 0
    assert np.array_equal(new.T, fast.buf[cs], equal_nan=True)
