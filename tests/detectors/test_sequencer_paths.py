"""The sequencer's fast paths (field-major columns, cleaning by min/max, the
interval's median, the delta history) agree exactly with plain definitions."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import chargewatch.detectors.sequencer as sq
from chargewatch.detectors.sequencer import (
    Events,
    Frame,
    History,
    Sequencer,
    _median_sorted,
    median_of_rows,
)
from chargewatch.model.batch import FIELD_INDEX, N_FIELDS, MeterBatch
from chargewatch.model.fleet import ConnectorIndex


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


def _tick_major(
    rng: np.random.Generator, conns: np.ndarray, ticks: int, t0: float, shuffle: bool
) -> MeterBatch:
    """``ticks`` ticks of ``conns`` (each once a tick, 1 s apart), tick by tick,
    in one order throughout or (``shuffle``) in a new order every tick."""
    order = [rng.permutation(conns) if shuffle else conns for _ in range(ticks)]
    conn = np.concatenate(order).astype(np.int32)
    ts = t0 + np.repeat(np.arange(ticks, dtype=float), conns.shape[0])
    recv = ts + rng.uniform(0.05, 0.5, ts.shape[0])
    v = rng.uniform(0.0, 100.0, (ts.shape[0], N_FIELDS))
    v[rng.random(v.shape) < 0.05] = np.nan  # gaps, in the register and power too
    return MeterBatch(conn, ts, recv, v)


def _run(batches: list[MeterBatch], n_conn: int) -> tuple[list[Frame], dict[str, int], Sequencer]:
    seq, counters = Sequencer(), dict[str, int]()
    frames = [seq.frame(b, Events.none(), n_conn, counters) for b in batches]
    return frames, counters, seq


def _same(a: object, b: object) -> bool:
    if isinstance(a, np.ndarray) and isinstance(b, np.ndarray):
        return a.dtype == b.dtype and np.array_equal(a, b, equal_nan=a.dtype.kind == "f")
    return a == b


def _layouts(rng: np.random.Generator) -> dict[str, list[MeterBatch]]:
    t0 = 1_800_000_000.0
    every = np.arange(12)
    some = np.array([9, 2, 5, 11, 7])  # not consecutive ids, not sorted
    out: dict[str, list[MeterBatch]] = {}
    for ticks in (1, 3, 9, 10, 12):
        at = [t0 + i * ticks for i in range(4)]
        out[f"{ticks} ticks"] = [_tick_major(rng, every, ticks, t, False) for t in at]
    out["some connectors"] = [_tick_major(rng, some, 10, t0 + 10 * i, False) for i in range(3)]
    out["one order per batch"] = [
        _tick_major(rng, rng.permutation(every), 4, t0 + 4 * i, False) for i in range(3)
    ]
    out["new order every tick"] = [_tick_major(rng, every, 4, t0 + 4 * i, True) for i in range(3)]
    b = _tick_major(rng, every, 10, t0, False)
    once = [b.take(slice(0, 36)), b.take(slice(24, 36)), b.take(slice(36, 120))]
    out["a tick twice in a batch"] = [MeterBatch.concat(once)]
    out["then the same tick again"] = [b.take(slice(0, 60)), b.take(slice(48, 108))]
    g = _tick_major(rng, every, 10, t0, False)
    g.values[3, FIELD_INDEX["power_w"]] = np.inf
    g.values[40, FIELD_INDEX["power_w"]] = -3.0
    g.values[70, FIELD_INDEX["energy_wh"]] = -1.0
    out["garbage values"] = [g]
    late = _tick_major(rng, every, 3, t0, False)
    late.recv[30] = late.recv[5] - 1.0  # received before its connector's previous row
    out["recv out of order"] = [late]
    bad = _tick_major(rng, every, 3, t0, False)
    bad.ts[14] = np.nan
    out["a bad ts"] = [bad]
    return out


def test_tick_major_batches_give_the_general_paths_frames(monkeypatch: pytest.MonkeyPatch) -> None:
    """The transposition for tick-major batches gives exactly the frames, the
    counters and the carried state of the sort-and-gather path."""
    taken: list[bool] = []
    ticked = sq._ticked_rows

    def watched(*a: object) -> object:
        got = ticked(*a)  # type: ignore[arg-type]
        taken.append(got is not None)
        return got

    rng = np.random.default_rng(5)
    for name, batches in _layouts(rng).items():
        monkeypatch.setattr(sq, "_ticked_rows", watched)
        got, got_counters, got_seq = _run(batches, 12)
        monkeypatch.setattr(sq, "_ticked_rows", lambda *a: None)
        want, want_counters, want_seq = _run(batches, 12)
        assert got_counters == want_counters, name
        for g, w in zip(got, want, strict=True):
            for fld in Frame.__dataclass_fields__:
                if fld != "cache":
                    assert _same(getattr(g, fld), getattr(w, fld)), (name, fld)
            assert g.values.flags.f_contiguous
        for attr in ("interval", "rows_seen", "last_ts", "status", "known_v", "known_t"):
            assert _same(getattr(got_seq, attr), getattr(want_seq, attr)), (name, attr)
        assert _same(got_seq._deltas.buf, want_seq._deltas.buf), name
    # Tick-major batches took the transposition; the others the general path.
    assert any(taken) and not all(taken)


def test_frames_carry_plain_per_connector_state() -> None:
    """Whatever the layout: each row's rank, previous known register and power
    (with their ts), and each connector's interval (the median of its last
    INTERVAL_DELTAS ts deltas) as a per-row loop over the processed rows gives them."""
    rng = np.random.default_rng(6)
    e, p = FIELD_INDEX["energy_wh"], FIELD_INDEX["power_w"]
    for name, batches in _layouts(rng).items():
        frames, _, seq = _run(batches, 12)
        rank: dict[int, int] = {}
        known: dict[tuple[int, int], tuple[float, float]] = {}
        last: dict[int, float] = {}
        deltas: dict[int, list[float]] = {}
        for f in frames:
            for i, c in enumerate(f.conn.tolist()):
                t = float(f.ts[i])
                assert f.rank[i] == rank.get(c, 0), name
                rank[c] = rank.get(c, 0) + 1
                for col, pv, pt in ((e, f.prev_e, f.prev_e_ts), (p, f.prev_p, f.prev_p_ts)):
                    want = known.get((c, col), (np.nan, np.nan))
                    np.testing.assert_array_equal([pv[i], pt[i]], want, err_msg=name)
                    if np.isfinite(f.values[i, col]):
                        known[(c, col)] = (float(f.values[i, col]), t)
                deltas.setdefault(c, []).append(t - last[c] if c in last else np.nan)
                last[c] = t
        for c, d in deltas.items():
            want_iv = median_of_rows(np.array([([np.nan] * 9 + d)[-9:]]))[0]
            np.testing.assert_array_equal(seq.interval[c], want_iv, err_msg=name)


@pytest.mark.parametrize("n_conn", [7, 70_000])  # uint16 radix keys; int32 above 2**16
def test_connector_order_is_the_stable_sort(n_conn: int) -> None:
    rng = np.random.default_rng(7)
    for conn in (
        rng.integers(0, n_conn, 500),  # arrival order
        np.sort(rng.integers(0, n_conn, 500)),  # connector-major already
        np.concatenate([rng.permutation(40) for _ in range(5)]) * (n_conn // 40),
        np.array([n_conn - 1]),
        np.zeros(0, np.int64),
    ):
        got = sq._conn_order(conn.astype(np.int64), n_conn)
        assert got.dtype == np.int64
        np.testing.assert_array_equal(got, np.argsort(conn, kind="stable"))


def test_interval_through_small_updates_follows_an_uneven_cadence() -> None:
    """Updates of 1-12 rows per connector, with deltas drawn from a few values
    or all 1 s: the window's leaving and entering deltas are often but not
    always equal, so the screens both skip and recompute medians; each
    connector's interval is checked against the plain median after every update.
    Some updates bring only a block of connectors, some a scattered few."""
    rng = np.random.default_rng(8)
    n = 20
    last = np.full(n, 1_800_000_000.0)
    seen: dict[int, list[float]] = {}  # each connector's processed ts
    seq = Sequencer()
    for step in range(120):
        # The same count for every connector of an update: fewer, as many and
        # more rows than the window holds (each count takes its own path).
        rows = (1, 2, 3, 9, 10, 12)[step % 6]
        steady = (step // 12) % 2 == 0  # stretches where every delta is 1 s
        sub = [np.arange(n), np.arange(3, 11), np.array([1, 4, 9, 16])][step % 3]
        conn, ts = [], []
        for _ in range(rows):  # tick-major: each tick every connector of ``sub`` once
            last[sub] += 1.0 if steady else rng.choice([1.0, 1.0, 1.0, 2.0, 5.0], sub.shape[0])
            conn.append(sub)
            ts.append(last[sub].copy())
            for c in sub.tolist():
                seen.setdefault(c, []).append(float(last[c]))
        c_all, t_all = np.concatenate(conn).astype(np.int32), np.concatenate(ts)
        v = np.ones((c_all.shape[0], N_FIELDS))
        seq.frame(MeterBatch(c_all, t_all, t_all + 0.1, v), Events.none(), n, {})
        for c, t in seen.items():
            d = [np.nan, *np.diff(t).tolist()]
            want = median_of_rows(np.array([([np.nan] * 9 + d)[-9:]]))[0]
            np.testing.assert_array_equal(seq.interval[c], want)


@pytest.mark.parametrize("per", [1, 2, 5])
def test_shift_and_last_rows_for_equal_segments(per: int) -> None:
    """With every segment ``per`` rows long, once known (``Frame.uniform``),
    ``shift`` writes the carried values by a stride and ``last_rows`` is a slice:
    the same results as the scatter and the gather by ``first_idx``/``last_idx``."""
    f = _frame(np.repeat(np.array([4, 0, 2, 7]), per))
    x = np.arange(len(f), dtype=float) * 1.5
    carried = np.array([-1.0, -2.0, -3.0, -4.0])
    plain = f.shift(x, carried)  # the uniform length not known yet: the scatter
    assert "uniform" not in f.cache
    want_last = x[f.last_idx]
    assert f.uniform == per
    np.testing.assert_array_equal(f.shift(x, carried), plain)
    assert isinstance(f.last_rows, slice)
    np.testing.assert_array_equal(x[f.last_rows], want_last)
    uneven = _frame(np.array([0, 0, 1, 2, 2, 2]))
    assert uneven.uniform == 0
    np.testing.assert_array_equal(uneven.last_rows, uneven.last_idx)


def test_no_events_give_what_the_general_build_gives() -> None:
    """``Events.build`` of an empty list takes a shortcut; a generator (whose
    emptiness is unknown) takes the loop: the same fields, dtypes and shapes."""
    counters: dict[str, int] = {}
    fast = Events.build([], ConnectorIndex(), {}, counters)
    slow = Events.build(iter(()), ConnectorIndex(), {}, counters)
    assert counters == {}
    for name in Events.__dataclass_fields__:
        a, b = getattr(fast, name), getattr(slow, name)
        assert _same(a, b), name
        if isinstance(a, np.ndarray):
            assert a.shape == b.shape == (0,), name
    assert fast.st_conn is not Events.build([], ConnectorIndex(), {}, {}).st_conn  # fresh


def test_late_and_repeated_rows_are_dropped_and_counted() -> None:
    """Rows at or before their connector's last processed ts (late, resent), and a
    ts repeated within a batch, are dropped and counted; a batch whose every
    connector starts past its last ts keeps all its rows (the per-connector check)."""
    seq, counters = Sequencer(), dict[str, int]()

    def batch(conn: list[int], ts: list[float]) -> MeterBatch:
        t = np.array(ts)
        return MeterBatch(np.array(conn, np.int32), t, t + 0.5, np.ones((len(conn), N_FIELDS)))

    seq.frame(batch([0, 1, 2], [10.0, 10.0, 10.0]), Events.none(), 3, counters)
    # Connector 1 resends its last row (no connector starts before its last ts).
    f = seq.frame(
        batch([1, 0, 1, 2, 2], [10.0, 11.0, 12.0, 11.0, 11.0]), Events.none(), 3, counters
    )
    assert counters == {"duplicate_ts": 2}
    np.testing.assert_array_equal(f.conn, [0, 1, 2])
    np.testing.assert_array_equal(f.ts, [11.0, 12.0, 11.0])
    f = seq.frame(batch([0, 1, 0], [9.0, 13.0, 14.0]), Events.none(), 3, counters)  # 0 late
    assert counters == {"duplicate_ts": 2, "out_of_order": 1}
    np.testing.assert_array_equal(f.conn, [0, 1])
    np.testing.assert_array_equal(f.ts, [14.0, 13.0])
    f = seq.frame(batch([2, 0, 1, 0], [12.0, 15.0, 14.0, 16.0]), Events.none(), 3, counters)
    assert counters == {"duplicate_ts": 2, "out_of_order": 1}
    np.testing.assert_array_equal(f.conn, [0, 0, 1, 2])
    np.testing.assert_array_equal(f.first_idx, [0, 2, 3])
    np.testing.assert_array_equal(f.last_idx, [1, 2, 3])
    np.testing.assert_array_equal(f.last, [False, True, True, True])
