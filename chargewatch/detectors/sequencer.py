"""What detectors see: meter rows sorted per connector, and events as arrays.

:class:`Sequencer` turns an arrival-ordered :class:`MeterBatch` into a
:class:`Frame`: bad rows dropped and counted, rows sorted by (connector, ts),
rows at or before the connector's last processed ``ts`` dropped and counted.
Every detector then works on contiguous per-connector segments with the
segmented helpers below (forward fill, previous value, last row where a
condition holds, lag through a ring buffer, first-order recurrences), so no
Python loop runs over samples or connectors.

Work that several detectors need is done once per batch, here: the sort and
segment boundaries, each row's previous known register and power (carried
across batches by the sequencer), contiguous copies of the columns and phase
blocks, and derived columns (``Frame.derived``) such as V*I.

A fleet reporting at a steady cadence reaches the sequencer tick-major (every
connector once per tick, in the same order each tick). Such a batch is sorted
by a blocked transposition of its (tick, connector) grid, without a sort or a
row-by-row gather (``_tick_major``); any other batch takes the general path,
with the same result.
"""

from __future__ import annotations

__all__ = [
    "STATUS_CODE",
    "Events",
    "Frame",
    "History",
    "Sequencer",
    "ffill_index",
    "grown",
    "linear_scan",
    "median_of_rows",
    "prev_in_segment",
    "rall",
    "rany",
    "rcount",
    "rmax",
    "rmin",
    "rnansum",
    "sort_by_conn_then",
]

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, NamedTuple

import numpy as np
from numpy.typing import NDArray

from chargewatch.model.batch import FIELD_INDEX, METER_FIELDS, N_FIELDS, MeterBatch
from chargewatch.model.events import (
    CONNECTOR_STATUSES,
    BootEvent,
    CommandResult,
    Event,
    HeartbeatEvent,
    HeartbeatIntervalEvent,
    MeterIntervalEvent,
    OnlineEvent,
    StatusEvent,
    TransactionEvent,
    charger_stamped,
)
from chargewatch.model.fleet import ConnectorIndex

F64 = NDArray[np.float64]
I64 = NDArray[np.int64]
B = NDArray[np.bool_]

#: Status names to small ints; -1 = never heard.
STATUS_CODE: dict[str, int] = {s: i for i, s in enumerate(CONNECTOR_STATUSES)}
UNKNOWN_STATUS = -1

# Every field but temperature and the register must be >= 0 in a sane reading.
# Temperature can be negative (winter); power is import power here, so a negative
# value is a sign or wiring error. A negative register is no garbage but evidence
# of a meter fault (a per-transaction register that regressed below zero): it is
# passed on for meter_regression, and counted (``negative_registers``).
_SIGNED = np.array([FIELD_INDEX["temperature_c"], FIELD_INDEX["energy_wh"]])
_REGISTER = FIELD_INDEX["energy_wh"]
_P = FIELD_INDEX["power_w"]


class _Bounds(NamedTuple):
    """Per field of a field-major batch: min and max ignoring NaN; and for the
    register and power (``_GAP_FIELDS``) whether every value is present."""

    lo: F64
    hi: F64
    full: B


#: The fields whose gaps ``Sequencer._prev`` fills from earlier rows.
_GAP_FIELDS = [_REGISTER, _P]
#: The same fields as a slice: adjacent, so a field-major block's rows of them
#: are read as a view (indexing by the list copies them first).
_GAP_SLICE = slice(_REGISTER, _P + 1)
assert list(range(N_FIELDS))[_GAP_SLICE] == _GAP_FIELDS


def grown(a: NDArray[Any], n: int, fill: Any) -> NDArray[Any]:
    """``a`` extended to at least ``n`` rows (capacity doubles), new rows = ``fill``."""
    if a.shape[0] >= n:
        return a
    cap = max(n, 2 * a.shape[0], 64)
    out = np.full((cap, *a.shape[1:]), fill, dtype=a.dtype)
    out[: a.shape[0]] = a
    return out


def _grown_fields(a: NDArray[Any], n: int, fill: Any) -> NDArray[Any]:
    """``grown`` for per-connector state kept field-major, (fields, connectors):
    each field stays one contiguous row."""
    if a.shape[1] >= n:
        return a
    cap = max(n, 2 * a.shape[1], 64)
    out = np.full((a.shape[0], cap), fill, dtype=a.dtype)
    out[:, : a.shape[1]] = a
    return out


def rmax(a: F64) -> F64:
    """Row-wise max of an (n, 3) array ignoring NaN (NaN when all are NaN).

    Column-by-column ufuncs: numpy's axis=1 reductions over 3 columns are several
    times slower than three elementwise passes.
    """
    return np.fmax(np.fmax(a[:, 0], a[:, 1]), a[:, 2])


def rmin(a: F64) -> F64:
    return np.fmin(np.fmin(a[:, 0], a[:, 1]), a[:, 2])


def rany(b: B) -> B:
    return b[:, 0] | b[:, 1] | b[:, 2]


def rall(b: B) -> B:
    return b[:, 0] & b[:, 1] & b[:, 2]


def rcount(b: B) -> NDArray[np.int64]:
    return b[:, 0].astype(np.int64) + b[:, 1] + b[:, 2]


def rnansum(a: F64) -> F64:
    z = np.where(np.isnan(a), 0.0, a)  # (np.nan_to_num costs ~10 us of Python a call)
    out: F64 = z[:, 0] + z[:, 1]
    out += z[:, 2]
    return out


#: Connector ids below this sort as uint16: numpy's stable sort of 16-bit keys
#: is a radix sort, ~4x faster than its merge sort of int32 on rows in arrival
#: order (connectors in a new order every tick).
_RADIX_CONNECTORS = 1 << 16


def _conn_order(conn: I64, n_conn: int) -> I64:
    """A stable order of rows by connector (ids in ``0..n_conn-1``)."""
    n = conn.shape[0]
    if n < 2 or bool((conn[1:] >= conn[:-1]).all()):
        return np.arange(n, dtype=np.int64)  # already in order (connector-major)
    key = conn.astype(np.uint16 if n_conn <= _RADIX_CONNECTORS else np.int32)
    return np.argsort(key, kind="stable").astype(np.int64)


def _orders(conn: I64, ts: F64, recv: F64, n_conn: int) -> tuple[I64, I64, list[NDArray[Any]]]:
    """(conn, ts) order and (conn, recv) order; one stable sort when rows arrive
    in time order (the usual case), lexsorts only for what is out of order.
    When both orders are the same, also conn, ts and recv in that order (the
    check gathers them anyway); else an empty list."""
    order = _conn_order(conn, n_conn)
    c = np.take(conn, order)
    same = c[1:] == c[:-1]
    gathered: list[NDArray[Any]] = [c]

    def ordered(t: F64) -> bool:
        tt = np.take(t, order)
        gathered.append(tt)
        return not bool(((tt[1:] < tt[:-1]) & same).any())

    by_ts = order if ordered(ts) else np.lexsort((ts, conn)).astype(np.int64)
    by_recv = order if ordered(recv) else np.lexsort((recv, conn)).astype(np.int64)
    return by_ts, by_recv, gathered if by_ts is by_recv is order else []


def sort_by_conn_then(conn: I64, t: F64) -> I64:
    """Order rows by (connector, t).

    Rows usually arrive in time order, so a stable sort on the connector alone
    (radix-fast on small ints) already orders each connector's rows by time;
    the two-key lexsort runs only when that check fails.
    """
    order = np.argsort(conn.astype(np.int32, copy=False), kind="stable")
    c, tt = conn[order], t[order]
    if tt.shape[0] > 1 and ((tt[1:] < tt[:-1]) & (c[1:] == c[:-1])).any():
        order = np.lexsort((t, conn))
    return order.astype(np.int64, copy=False)


def ffill_index(mask: B, seg_start: I64) -> I64:
    """Per row, the index of the latest row at or before it in its segment where
    ``mask`` holds; -1 when there is none."""
    idx = np.where(mask, np.arange(mask.shape[0]), -1)
    np.maximum.accumulate(idx, out=idx)
    idx[idx < seg_start] = -1
    return idx


def prev_in_segment(x: NDArray[Any], first: B, carried: NDArray[Any]) -> NDArray[Any]:
    """``x`` shifted by one row within each segment; the first row of a segment
    takes ``carried`` (one value per row: the state from earlier batches)."""
    out = np.empty_like(x)
    if x.shape[0]:
        out[1:] = x[:-1]
        out[first] = carried[first]
    return out


#: Rows gathered and transposed per step by ``_columns``: 512 rows of 11
#: float64 (45 KB) stay in the L1/L2 cache between the gather and the transpose.
_GATHER_ROWS = 512


def _columns(values: F64, order: I64) -> F64:
    """``values[order]`` transposed: (N_FIELDS, n), each field one contiguous row.

    Detectors read fields one at a time; from row-major rows every such pass
    reads the whole matrix (a field's values are 88 bytes apart), which beyond
    the L2 cache costs memory bandwidth per pass. Rows are gathered a block at
    a time into a small buffer and transposed from there while it is in cache:
    the sorted row-major copy of the whole batch (8.8 MB at 100k rows) is never
    written and read back, and a strided copy per field is avoided too.
    """
    n = order.shape[0]
    out = np.empty((values.shape[1], n))
    buf = np.empty((min(n, _GATHER_ROWS), values.shape[1]))
    for lo in range(0, n, _GATHER_ROWS):
        o = order[lo : lo + _GATHER_ROWS]
        m = o.shape[0]
        np.take(values, o, axis=0, out=buf[:m])
        out[:, lo : lo + m] = buf[:m].T
    return out


#: Rows transposed per step by ``_columns_ticked`` (and reduced while in cache
#: for ``_clean``): 5120 rows of 11 float64 (450 KB) stay in the L2 cache.
_TICK_ROWS = 5120


def _tick_major(
    conn: NDArray[Any], ts: F64, recv: F64, n_conn: int, last_ts: F64
) -> tuple[int, int, I64 | None] | None:
    """``(k, m, perm)`` when the batch is ``k`` ticks of ``m`` rows, each tick
    holding the same ``m`` distinct connectors in the same order (``perm`` sorts
    them; None when they are sorted already), every connector's ``ts`` rising
    strictly and its ``recv`` never falling from tick to tick, all finite and
    past the connector's last processed ``ts``; else None.

    That is how a collector receives a fleet reporting at a steady cadence, and
    then the (connector, ts) order is a transposition of the (tick, connector)
    grid: no sort, no duplicate or out-of-order rows, no row gathered one by one
    across the batch (the rows of one connector are a tick apart, ~1 MB at 10k
    connectors, and such a gather misses the TLB on every row). Each check is a
    contiguous pass over ``conn``, ``ts`` or ``recv``; any failure leaves the
    batch to the general path.
    """
    n = conn.shape[0]
    if n == 0:
        return None
    repeats = np.flatnonzero(conn == conn[0])
    m = int(repeats[1]) if repeats.shape[0] > 1 else n
    k = n // m
    if k * m != n:
        return None
    c2, t2, r2 = conn.reshape(k, m), ts.reshape(k, m), recv.reshape(k, m)
    tick = c2[0]
    perm = None if bool((tick[1:] > tick[:-1]).all()) else np.argsort(tick, kind="stable")
    cs = tick if perm is None else np.take(tick, perm)
    if m > 1 and not (cs[1:] > cs[:-1]).all():
        return None  # a connector twice in one tick
    if cs[0] < 0 or cs[-1] >= n_conn or not (c2[1:] == tick).all():
        return None
    # Strictly rising ts from finite first to finite last: all finite (NaN fails <).
    if not (np.isfinite(t2[0]).all() and np.isfinite(t2[-1]).all()):
        return None
    if not (np.isfinite(r2[0]).all() and np.isfinite(r2[-1]).all()):
        return None
    if not ((t2[1:] > t2[:-1]).all() and (r2[1:] >= r2[:-1]).all()):
        return None
    if not (t2[0] > np.take(last_ts, tick)).all():
        return None  # a late or repeated row: counted and dropped by the general path
    return k, m, perm


def _ticked(a: NDArray[Any], k: int, m: int, perm: I64 | None) -> NDArray[Any]:
    """A per-row array of a tick-major batch in (connector, tick) order."""
    a2 = a.reshape(k, m)
    if perm is not None:
        a2 = np.take(a2, perm, axis=1)
    return a2.T.copy().reshape(k * m)  # a copy even when k == 1: never the batch's memory


def _columns_ticked(values: F64, k: int, m: int, perm: I64 | None) -> tuple[F64, _Bounds]:
    """``_columns`` for a tick-major batch: (N_FIELDS, m * k), connector-major,
    with its ``_Bounds``.

    A block of connectors is read as ``k`` contiguous runs (one per tick) and
    written as ``N_FIELDS`` contiguous runs, in one copy; the block's per-field
    bounds are taken while it is in cache, which saves ``_clean`` two passes
    over the whole batch (from memory: it is larger than the L2 cache).
    """
    nf = values.shape[1]
    v3 = values.reshape(k, m, nf)
    out = np.empty((nf, m, k))
    step = max(1, _TICK_ROWS // k)
    blocks = -(-m // step)
    lo, hi, gaps = np.empty((blocks, nf)), np.empty((blocks, nf)), np.empty((blocks, 2))
    for i in range(blocks):
        a, b = i * step, min((i + 1) * step, m)
        src = v3[:, a:b] if perm is None else np.take(v3, perm[a:b], axis=1)
        block = out[:, a:b]
        block[...] = src.transpose(2, 1, 0)
        flat = block.reshape(nf, (b - a) * k)  # a view: each field's run is contiguous
        np.fmin.reduce(flat, axis=1, out=lo[i])
        np.fmax.reduce(flat, axis=1, out=hi[i])
        np.minimum.reduce(flat[_GAP_SLICE], axis=1, out=gaps[i])  # NaN propagates
    full = np.count_nonzero(np.isnan(gaps), axis=0) == 0
    bounds = _Bounds(np.fmin.reduce(lo), np.fmax.reduce(hi), full)
    return out.reshape(nf, m * k), bounds


def _clean(vt: F64, bounds: _Bounds | None = None) -> tuple[int, int, int]:
    """Set infinite values, and negative ones in fields that cannot be negative,
    to NaN in place (``vt`` is field-major, from ``_columns``); returns their
    counts, and that of the negative (finite) registers, which are kept.

    Clean batches are the rule: a per-field min and max (contiguous reductions,
    NaN ignored; or ``bounds``, taken while the columns were built) proves there
    is nothing to mask without building a mask.
    """
    if vt.shape[1] == 0:
        return 0, 0, 0
    if bounds is None:
        lo, hi = np.fmin.reduce(vt, axis=1), np.fmax.reduce(vt, axis=1)
    else:
        lo, hi = bounds.lo, bounds.hi
    unsigned = np.ones(vt.shape[0], np.bool_)
    unsigned[_SIGNED] = False
    nr = 0
    if lo[_REGISTER] < 0:
        reg = vt[_REGISTER]
        nr = int(np.count_nonzero((reg < 0) & np.isfinite(reg)))
    if not (np.isinf(lo).any() or np.isinf(hi).any() or (lo[unsigned] < 0).any()):
        return 0, 0, nr
    bad = np.isinf(vt)
    neg = vt < 0
    neg[_SIGNED] = False
    nb, nn = int(np.count_nonzero(bad)), int(np.count_nonzero(neg))
    vt[bad | neg] = np.nan
    return nb, nn, nr


Count = Callable[[str, int], None]


class _Rows(NamedTuple):
    """A batch's rows for a frame, before the per-connector state is applied."""

    conn: I64  # sorted by (connector, ts), late and repeated rows dropped
    ts: F64
    recv: F64
    vt: F64  # field-major (N_FIELDS, rows), cleaned
    raw: tuple[I64, F64, F64, F64, F64]  # (conn, ts, recv, power, energy) by (conn, recv)
    marks: tuple[B, B, I64, I64] | None  # ``_marks(conn)`` when the layout gives them
    # Per ``_GAP_FIELDS``: True when no row lacks the value (after cleaning); all
    # False when unknown.
    full: tuple[bool, bool] = (False, False)
    # The rows every connector brought when all brought the same (``Frame.uniform``);
    # 0 when unknown.
    segment: int = 0


def _ticked_rows(batch: MeterBatch, n_conn: int, last_ts: F64, count: Count) -> _Rows | None:
    """The rows of a tick-major batch (see ``_tick_major``) by transposition; None
    for any other batch. Such a batch has no bad, late or repeated row, its
    (connector, recv) order is its (connector, ts) order, and its connectors'
    segments are ``k`` rows each."""
    got = _tick_major(batch.conn, batch.ts, batch.recv, n_conn, last_ts)
    if got is None:
        return None
    k, m, perm = got
    vt, bounds = _columns_ticked(batch.values, k, m, perm)
    nb, nn = _count_clean(vt, count, bounds)
    # Cleaning turns values into gaps; without any to clean, the bounds say it all.
    full = (False, False) if nb or nn else (bool(bounds.full[0]), bool(bounds.full[1]))
    touched = batch.conn[:m].astype(np.int64)
    if perm is not None:
        touched = np.take(touched, perm)
    conn = np.repeat(touched, k)
    ts, recv = _ticked(batch.ts, k, m, perm), _ticked(batch.recv, k, m, perm)
    n = k * m
    first, last = np.zeros(n, np.bool_), np.zeros(n, np.bool_)
    first[::k] = True
    last[k - 1 :: k] = True
    first_idx = np.arange(0, n, k)
    marks = (first, last, first_idx, first_idx + (k - 1))
    raw = (conn, ts, recv, vt[_P], vt[_REGISTER])
    return _Rows(conn, ts, recv, vt, raw, marks, full, k)


def _count_clean(vt: F64, count: Count, bounds: _Bounds | None = None) -> tuple[int, int]:
    nb, nn, nr = _clean(vt, bounds)
    count("nonfinite_values", nb)
    count("negative_values", nn)
    count("negative_registers", nr)
    return nb, nn


def _general_rows(batch: MeterBatch, n_conn: int, last_ts: F64, count: Count) -> _Rows:
    """The rows of any batch: bad rows dropped, a sort, a gather, late and
    repeated rows dropped (each counted)."""
    conn = batch.conn.astype(np.int64)
    ts, recv, values = batch.ts, batch.recv, batch.values
    ok = (conn >= 0) & (conn < n_conn) & np.isfinite(ts) & np.isfinite(recv)
    if not ok.all():
        count("bad_rows", int(ok.size - np.count_nonzero(ok)))
        keep_ok = np.flatnonzero(ok)
        conn, ts, recv = conn[keep_ok], ts[keep_ok], recv[keep_ok]
        values = np.take(values, keep_ok, axis=0)
    order, by_recv, gathered = _orders(conn, ts, recv, n_conn)
    # Sorted and field-major: every column a detector reads is contiguous.
    vt = _columns(values, order)
    nb, nn = _count_clean(vt, count)
    if gathered:  # one order for both: the usual case
        conn, ts, recv = gathered
        raw_conn, raw_ts, raw_recv = conn, ts, recv
        raw_power = vt[_P]
        raw_energy = vt[_REGISTER]
    else:
        raw_conn = np.take(conn, by_recv)
        raw_ts, raw_recv = np.take(ts, by_recv), np.take(recv, by_recv)
        raw_power = np.take(values[:, _P], by_recv)
        raw_energy = np.take(values[:, _REGISTER], by_recv)
        if nb or nn:  # the same cleaning as the sorted columns had
            raw_power[np.isinf(raw_power) | (raw_power < 0)] = np.nan
            raw_energy[np.isinf(raw_energy)] = np.nan  # negative registers are kept
        conn, ts, recv = np.take(conn, order), np.take(ts, order), np.take(recv, order)
    n = conn.shape[0]
    first = np.ones(n, np.bool_)
    if n > 1:
        np.not_equal(conn[1:], conn[:-1], out=first[1:])
    # A row older than what was already processed cannot be placed in the
    # past of stateful detectors; a repeated ts is a resend (chargers resend
    # queued MeterValues after reconnecting). Both are dropped and counted.
    # Each connector's rows are in ts order: when its first row is past its last
    # processed ts, so are the others (the usual case: a check per connector
    # instead of a gather per row).
    heads = np.flatnonzero(first)
    old: B | None = None
    if bool((np.take(ts, heads) > np.take(last_ts, np.take(conn, heads))).all()):
        dup = np.zeros(n, np.bool_)
    else:
        carried = np.take(last_ts, conn)
        old, dup = ts < carried, ts == carried
    if n > 1:
        dup[1:] |= ~first[1:] & (ts[1:] == ts[:-1])
    n_old = 0 if old is None else int(np.count_nonzero(old))
    n_dup = int(np.count_nonzero(dup))
    count("out_of_order", n_old)
    count("duplicate_ts", n_dup)
    marks = None
    if n_old or n_dup:
        keep = np.flatnonzero(~dup if old is None else ~(dup | old))
        conn, ts, recv = conn[keep], ts[keep], recv[keep]
        vt = np.take(vt, keep, axis=1)
    else:  # the segments found above are the frame's
        marks = _marks_of(first, heads)
    raw = (raw_conn, raw_ts, raw_recv, raw_power, raw_energy)
    return _Rows(conn, ts, recv, vt, raw, marks)


def _marks(conn: I64) -> tuple[B, B, I64, I64]:
    """first/last row flags and their indices for rows sorted by connector."""
    n = conn.shape[0]
    first = np.ones(n, np.bool_)
    if n > 1:
        np.not_equal(conn[1:], conn[:-1], out=first[1:])
    return _marks_of(first, np.flatnonzero(first))


def _marks_of(first: B, first_idx: I64) -> tuple[B, B, I64, I64]:
    """``_marks`` from the first-row flags and their indices."""
    last = np.ones(first.shape[0], np.bool_)
    if first.shape[0] > 1:
        last[:-1] = first[1:]
    return first, last, first_idx, np.flatnonzero(last)


def linear_scan(a: F64, b: F64, first_idx: I64, y0: F64) -> F64:
    """``y[i] = a[i] * y[i-1] + b[i]`` along each segment (segments start at
    ``first_idx``); the value before a segment's first row is ``y0`` (one per
    segment).

    A first-order recurrence (EWMA, decay) without a loop over samples: affine
    maps compose associatively, so a doubling scan gives every prefix in log2 of
    the longest segment steps, each three whole-array passes. Folding ``y0``
    into each segment's first row and setting its ``a`` to 0 cuts the chain at
    segment boundaries, so no masks are needed. Only products of the ``a`` are
    formed (|a| <= 1 for a decay): nothing overflows, however long the segment.
    """
    n = a.shape[0]
    ca, cb = a.copy(), b.copy()
    if n == 0:
        return cb
    cb[first_idx] += ca[first_idx] * y0
    ca[first_idx] = 0.0
    longest = int(np.diff(np.append(first_idx, n)).max())
    # After the step with offset d, row i holds the map of rows i-2d+1 .. i.
    d = 1
    while d < longest:
        cb[d:] += ca[d:] * cb[:-d]  # the product is formed before cb changes
        if 2 * d >= longest:
            break  # the last step needs no products of a
        ca[d:] = ca[d:] * ca[:-d]
        d *= 2
    return cb


@dataclass(frozen=True, slots=True)
class Frame:
    """Meter rows sorted by (connector, ts), cleaned, for one update.

    ``first``/``last`` mark each connector's first and last row, and
    ``first_idx``/``last_idx`` are their indices (one per connector present,
    in connector order); ``seg_start`` is, per row, the index of its segment's
    first row. ``status`` is the connector status in force when the row was
    received. ``prev_e``/``prev_p`` (and their ``_ts``) are, per row, the
    connector's previous *known* energy register and power (from earlier rows
    or batches; NaN when there is none), computed once for every detector.
    """

    conn: I64
    ts: F64
    recv: F64
    values: F64
    first: B
    last: B
    first_idx: I64
    last_idx: I64
    status: NDArray[np.int8]
    n_conn: int  # len(index) at this update: state arrays must cover it
    # Every row received for a known connector, duplicates and late rows included,
    # sorted by (conn, recv): liveness and clock checks are about *receiving*.
    raw_conn: I64 = field(default_factory=lambda: np.empty(0, np.int64))
    raw_ts: F64 = field(default_factory=lambda: np.empty(0))
    raw_recv: F64 = field(default_factory=lambda: np.empty(0))
    raw_power: F64 = field(default_factory=lambda: np.empty(0))
    raw_energy: F64 = field(default_factory=lambda: np.empty(0))  # as raw_power
    prev_e: F64 = field(default_factory=lambda: np.empty(0))
    prev_e_ts: F64 = field(default_factory=lambda: np.empty(0))
    prev_p: F64 = field(default_factory=lambda: np.empty(0))
    prev_p_ts: F64 = field(default_factory=lambda: np.empty(0))
    # Per connector (indexed by connector id): its learned sampling interval in
    # s, the median of its recent ts deltas; NaN until it has one.
    interval: F64 = field(default_factory=lambda: np.empty(0))
    # Per row: the connector's running count of processed rows (its first row
    # ever is 0), so that the rows between two of them are counted in any subset.
    rank: F64 = field(default_factory=lambda: np.empty(0))
    cache: dict[str, Any] = field(default_factory=dict)  # derived columns, computed once

    @property
    def cadence(self) -> tuple[F64, F64] | None:
        """(rank per row, interval per connector) for ``Episodes.step``; None on a
        frame built without a sequencer."""
        if self.rank.shape[0] != len(self) or self.interval.shape[0] < self.n_conn:
            return None
        return self.rank, self.interval

    def derived(self, name: str, make: Any) -> Any:
        """A column derived from this frame (e.g. V*I), shared by the detectors."""
        got = self.cache.get(name)
        if got is None:
            got = self.cache[name] = make(self)
        return got

    def __len__(self) -> int:
        return int(self.conn.shape[0])

    def col(self, name: str) -> F64:
        """One field as a contiguous column: a view when ``values`` is column-major
        (as the sequencer builds it), else copied once per frame (the rows of a
        row-major ``values`` are 88 bytes apart, and every strided pass reads them all)."""
        got: F64 | None = self.cache.get(name)
        if got is None:
            got = self.cache[name] = np.ascontiguousarray(self.values[:, FIELD_INDEX[name]])
        return got

    def block(self, start: int) -> F64:
        """Three phase columns from ``start`` (2: currents, 5: voltages), each contiguous."""
        key = f"block{start}"
        got: F64 | None = self.cache.get(key)
        if got is None and self.values.flags.f_contiguous:
            got = self.cache[key] = self.values[:, start : start + 3]  # a view
        if got is None:
            # Column by column: np.asfortranarray of the strided slice is ~4x slower.
            got = np.empty((len(self), 3), order="F")
            for j in range(3):
                got[:, j] = self.values[:, start + j]
            self.cache[key] = got
        return got

    @property
    def seg_start(self) -> I64:
        got: I64 | None = self.cache.get("seg_start")
        if got is None:
            n = len(self)
            lengths = np.diff(np.append(self.first_idx, n))
            got = self.cache["seg_start"] = np.repeat(self.first_idx, lengths)
        return got

    def per_row(self, x: NDArray[Any]) -> NDArray[Any]:
        """One value per segment (aligned with ``last_idx``) repeated on its rows."""
        lengths = self.cache.get("lengths")
        if lengths is None:
            lengths = self.cache["lengths"] = np.diff(np.append(self.first_idx, len(self)))
        return np.repeat(x, lengths)

    @property
    def pos(self) -> I64:
        """Each row's position within its connector's segment (0 = first)."""
        got: I64 | None = self.cache.get("pos")
        if got is None:
            got = self.cache["pos"] = np.arange(len(self)) - self.seg_start
        return got

    @property
    def uniform(self) -> int:
        """The length of every connector's segment when all are equal, else 0."""
        got: int | None = self.cache.get("uniform")
        if got is None:
            n, m = len(self), self.first_idx.shape[0]
            size = n // m if m and n % m == 0 else 0
            got = size if size and (self.last_idx - self.first_idx == size - 1).all() else 0
            self.cache["uniform"] = got
        return got

    @property
    def span(self) -> slice | I64:
        """``touched`` as a slice when those connectors have consecutive ids (a
        whole fleet reporting), else ``touched``: per-connector state is then
        written without an index pass. For writes: reading through a slice
        gives a view, which a later write would change."""
        got: slice | I64 | None = self.cache.get("span")
        if got is None:
            got = t = self.touched
            if t.shape[0] and int(t[-1]) - int(t[0]) == t.shape[0] - 1:
                got = slice(int(t[0]), int(t[-1]) + 1)
            self.cache["span"] = got
        return got

    @property
    def touched(self) -> I64:
        """The connectors with rows in this frame, once each, ascending."""
        got: I64 | None = self.cache.get("touched")
        if got is None:
            got = self.cache["touched"] = self.conn[self.last_idx]
        return got

    def shift(self, x: NDArray[Any], carried: NDArray[Any]) -> NDArray[Any]:
        """``x`` one row later within each connector's segment; the first row of each
        segment takes ``carried`` (one value per segment, e.g. state[f.touched])."""
        u = self.cache.get("uniform")  # only when known: not worth a pass here
        if u == 1:  # every row is its segment's first
            return carried.astype(x.dtype, copy=True)
        out = np.empty_like(x)
        if x.shape[0]:
            out[1:] = x[:-1]
            out[slice(0, None, u) if u else self.first_idx] = carried
        return out

    @property
    def last_rows(self) -> slice | I64:
        """``last_idx`` as a strided slice when every segment has the same length
        (reading through it gives a view, no gather), else ``last_idx``."""
        u = self.uniform
        return slice(u - 1, None, u) if u else self.last_idx

    def last_where(self, mask: B) -> I64:
        """Per segment (aligned with ``last_idx``), the last row where ``mask``
        holds; -1 when it holds on none of the segment's rows."""
        last = self.last_idx
        out: I64 = last.copy()
        # Usually the mask holds on a segment's last row, which is then the
        # answer: a check per connector instead of a pass over every row.
        miss = np.flatnonzero(~np.take(mask, last))
        if miss.size == 0:
            return out
        # The others: the last true row before the segment's end, by a search
        # among the true rows (a maximum.reduceat over per-row indices costs 2-3x).
        rows = np.flatnonzero(mask)
        if rows.size == 0:
            out[:] = -1
            return out
        pos = np.searchsorted(rows, np.take(last, miss), side="right") - 1
        found = np.take(rows, np.maximum(pos, 0))
        found[(pos < 0) | (found < np.take(self.first_idx, miss))] = -1
        out[miss] = found
        return out

    def rows(self, mask: B | I64) -> Frame:
        """The rows where ``mask`` holds (or the rows ``mask`` lists, ascending),
        with segment markers recomputed."""
        n = len(self)
        sub = [
            a[mask] if a.shape[0] == n else a
            for a in (self.prev_e, self.prev_e_ts, self.prev_p, self.prev_p_ts, self.rank)
        ]
        f = Frame.build(
            self.conn[mask],
            self.ts[mask],
            self.recv[mask],
            self.values.T[:, mask].T,  # column-major stays column-major
            self.status[mask],
            self.n_conn,
        )
        return replace(
            f,
            prev_e=sub[0],
            prev_e_ts=sub[1],
            prev_p=sub[2],
            prev_p_ts=sub[3],
            interval=self.interval,
            rank=sub[4],
        )

    @staticmethod
    def build(
        conn: I64,
        ts: F64,
        recv: F64,
        values: F64,
        status: NDArray[np.int8],
        n_conn: int,
        marks: tuple[B, B, I64, I64] | None = None,
    ) -> Frame:
        """``marks``: ``_marks(conn)`` when the caller knows them already."""
        first, last, first_idx, last_idx = _marks(conn) if marks is None else marks
        return Frame(conn, ts, recv, values, first, last, first_idx, last_idx, status, n_conn)

    @staticmethod
    def empty(n_conn: int) -> Frame:
        z = np.empty(0, np.float64)
        return Frame.build(
            np.empty(0, np.int64), z, z, np.empty((0, N_FIELDS)), np.empty(0, np.int8), n_conn
        )


@dataclass(frozen=True, slots=True)
class Events:
    """The discrete events of one update as per-connector arrays, by receive time.

    Charger-wide messages (heartbeat, boot, online, connector 0) are expanded to
    every connector of the charger known to the index.
    """

    st_conn: I64  # status changes
    st_recv: F64
    st_code: NDArray[np.int8]
    tx_conn: I64  # transactions: kind 0 start, 1 update, 2 stop
    tx_recv: F64
    tx_kind: NDArray[np.int8]
    tx_reason: list[str]
    seen_conn: I64  # any message from the charger, meter rows excluded
    seen_recv: F64
    off_conn: I64  # retained online flag (last will): False = offline
    off_recv: F64
    off_online: B
    boot_conn: I64
    boot_recv: F64
    hb_conn: I64 = field(default_factory=lambda: np.empty(0, np.int64))  # heartbeats
    hb_recv: F64 = field(default_factory=lambda: np.empty(0))
    iv_conn: I64 = field(default_factory=lambda: np.empty(0, np.int64))  # heartbeat intervals
    iv_recv: F64 = field(default_factory=lambda: np.empty(0))
    iv_s: F64 = field(default_factory=lambda: np.empty(0))
    mi_conn: I64 = field(default_factory=lambda: np.empty(0, np.int64))  # meter intervals
    mi_recv: F64 = field(default_factory=lambda: np.empty(0))
    mi_kind: NDArray[np.int8] = field(default_factory=lambda: np.empty(0, np.int8))  # 0 sampled
    mi_s: F64 = field(default_factory=lambda: np.empty(0))  # 1 aligned; 0 s: none sent
    # Connectors whose charger spoke OCPP in this update (once per event; any order).
    ocpp_conn: I64 = field(default_factory=lambda: np.empty(0, np.int64))
    # Status and transaction messages stamped by the charger's clock
    # (model.events.charger_stamped): recv - ts, for clock_skew. Meter readings
    # are left out: their rows are in the frame already.
    ck_conn: I64 = field(default_factory=lambda: np.empty(0, np.int64))
    ck_recv: F64 = field(default_factory=lambda: np.empty(0))
    ck_off: F64 = field(default_factory=lambda: np.empty(0))

    @staticmethod
    def build(
        events: Iterable[Event],
        index: ConnectorIndex,
        by_charger: Mapping[str, Sequence[int]],
        counters: dict[str, int],
    ) -> Events:
        if isinstance(events, Sequence) and not events:
            return Events._empty()  # most updates: ~25x cheaper than the general build
        st: list[tuple[int, float, int]] = []
        tx: list[tuple[int, float, int, str]] = []
        seen: list[tuple[int, float]] = []
        off: list[tuple[int, float, bool]] = []
        boot: list[tuple[int, float]] = []
        hb: list[tuple[int, float]] = []
        iv: list[tuple[int, float, float]] = []
        mi: list[tuple[int, float, int, float]] = []
        ocpp: list[int] = []
        ck: list[tuple[int, float, float]] = []
        kinds = {"start": 0, "update": 1, "stop": 2}
        for ev in events:
            recv = float(ev.recv)
            if not np.isfinite(recv):
                counters["bad_event_time"] = counters.get("bad_event_time", 0) + 1
                continue
            conns: Sequence[int]
            connector = getattr(ev, "connector", 0)
            if connector:
                cid = index.get(ev.charger, connector)
                conns = () if cid is None else (cid,)
            else:
                conns = by_charger.get(ev.charger, ())
            if not conns:
                counters["event_unknown_connector"] = counters.get("event_unknown_connector", 0) + 1
                continue
            if getattr(ev, "source", "native") != "native":
                ocpp.extend(conns)
            for c in conns:
                if isinstance(ev, OnlineEvent):
                    off.append((c, recv, ev.online))
                    if ev.online:
                        seen.append((c, recv))
                    continue
                if isinstance(ev, HeartbeatIntervalEvent):
                    iv.append((c, recv, ev.interval_s))
                    continue  # the CSMS's side of an exchange: no sign of life by itself
                if isinstance(ev, MeterIntervalEvent):
                    mi.append((c, recv, ev.kind == "aligned", ev.interval_s))
                    continue  # as HeartbeatIntervalEvent
                if isinstance(ev, CommandResult) and ev.status == "Timeout":
                    continue  # chargewatch gave up waiting: nothing came from the charger
                seen.append((c, recv))
                if isinstance(ev, StatusEvent):
                    code = STATUS_CODE.get(ev.status)
                    if code is None:
                        counters["unknown_status"] = counters.get("unknown_status", 0) + 1
                    else:
                        st.append((c, recv, code))
                    if charger_stamped(ev):
                        ck.append((c, recv, recv - ev.ts))
                elif isinstance(ev, TransactionEvent):
                    tx.append((c, recv, kinds[ev.kind], ev.reason))
                    if charger_stamped(ev):
                        ck.append((c, recv, recv - ev.ts))
                elif isinstance(ev, BootEvent):
                    boot.append((c, recv))
                elif isinstance(ev, HeartbeatEvent):
                    hb.append((c, recv))

        def cols(rows: list[Any], k: int) -> list[NDArray[Any]]:
            # Stable sort by (connector, recv): events of one update arrive in any order.
            arr = [np.array([r[j] for r in rows]) for j in range(k)]
            if rows:
                order = np.lexsort((arr[1], arr[0]))
                arr = [a[order] for a in arr]
            return arr

        s = cols(st, 3)
        t = cols(tx, 4)
        e = cols(seen, 2)
        o = cols(off, 3)
        b = cols(boot, 2)
        h = cols(hb, 2)
        i = cols(iv, 3)
        m = cols(mi, 4)
        k = cols(ck, 3)
        return Events(
            s[0].astype(np.int64),
            s[1].astype(np.float64),
            s[2].astype(np.int8),
            t[0].astype(np.int64),
            t[1].astype(np.float64),
            t[2].astype(np.int8),
            [str(x) for x in t[3]],
            e[0].astype(np.int64),
            e[1].astype(np.float64),
            o[0].astype(np.int64),
            o[1].astype(np.float64),
            o[2].astype(np.bool_),
            b[0].astype(np.int64),
            b[1].astype(np.float64),
            h[0].astype(np.int64),
            h[1].astype(np.float64),
            i[0].astype(np.int64),
            i[1].astype(np.float64),
            i[2].astype(np.float64),
            m[0].astype(np.int64),
            m[1].astype(np.float64),
            m[2].astype(np.int8),
            m[3].astype(np.float64),
            np.unique(np.array(ocpp, np.int64)),
            k[0].astype(np.int64),
            k[1].astype(np.float64),
            k[2].astype(np.float64),
        )

    @staticmethod
    def none() -> Events:
        return Events.build((), ConnectorIndex(), {}, {})

    @staticmethod
    def _empty() -> Events:
        """What ``build`` gives for no events, made directly (fresh arrays: a
        caller may keep them)."""
        i64, f64, i8 = np.int64, np.float64, np.int8
        return Events(
            np.empty(0, i64),
            np.empty(0, f64),
            np.empty(0, i8),
            np.empty(0, i64),
            np.empty(0, f64),
            np.empty(0, i8),
            [],
            np.empty(0, i64),
            np.empty(0, f64),
            np.empty(0, i64),
            np.empty(0, f64),
            np.empty(0, np.bool_),
            np.empty(0, i64),
            np.empty(0, f64),
        )


class History:
    """The last ``k`` values of one quantity per connector, for lags across batches.

    ``lag(frame, x)`` gives, per row, the value ``k`` rows earlier on the same
    connector (NaN when the connector has fewer than ``k`` earlier rows), and
    remembers each connector's last ``k`` values for the next batch.
    """

    def __init__(self, k: int) -> None:
        if k < 1:
            raise ValueError("History needs k >= 1")
        self.k = k
        self.buf = np.full((0, k), np.nan)  # oldest .. newest

    def lag(self, f: Frame, x: F64) -> F64:
        k = self.k
        self.buf = grown(self.buf, f.n_conn, np.nan)
        n = x.shape[0]
        pos = np.arange(n) - f.seg_start  # position within segment
        out = np.empty(n)
        inside = pos >= k
        out[inside] = x[np.flatnonzero(inside) - k]
        outside = ~inside
        out[outside] = self.buf[f.conn[outside], pos[outside]]
        self.push(f, x)
        return out

    def set_last(self, f: Frame, last: F64) -> None:
        """``push`` for a frame whose every connector brought ``k`` rows or more,
        given their last ``k`` values (one row per connector of ``f.touched``)."""
        self.buf = grown(self.buf, f.n_conn, np.nan)
        self.buf[f.span] = last

    def push(self, f: Frame, x: F64) -> None:
        """Remember each connector's last ``k`` values of ``x`` (rows of ``f``)."""
        k = self.k
        self.buf = grown(self.buf, f.n_conn, np.nan)
        n = x.shape[0]
        # New buffer: the last k of (old buffer ++ this batch's rows), per connector.
        ends = f.last_idx
        if ends.size:
            starts = f.first_idx
            cnt = ends - starts + 1
            conns = f.conn[ends]
            lo, hi = int(cnt.min()), int(cnt.max())
            # Segments tile the frame: equal counts make ``x`` a (connector, row) grid.
            grid = x.reshape(-1, lo) if lo == hi else None
            if lo >= k:  # every connector brought k rows or more: the buffer is its last k
                if grid is not None:
                    self.buf[f.span] = grid[:, lo - k :]
                else:
                    self.buf[f.span] = np.take(x, ends[:, None] + np.arange(1 - k, 1))
                return
            if grid is not None and isinstance(f.span, slice) and self.buf.flags.c_contiguous:
                # Each brought the same number c < k, and their rows of the buffer
                # are one contiguous block: shifted left by c as one flat run (a
                # 2-D shift of the overlapping columns costs ~5x), each row's last
                # c values (now its successor's first) then overwritten.
                block = self.buf[f.span]
                flat = block.reshape(-1)
                flat[:-lo] = flat[lo:]  # numpy copies overlapping runs correctly
                block[:, k - lo :] = grid
                return
            if grid is not None:  # each brought the same number c < k (time-major batches)
                new = np.empty((conns.shape[0], k))
                new[:, : k - lo] = np.take(self.buf, conns, axis=0)[:, lo:]
                new[:, k - lo :] = grid
                self.buf[f.span] = new
                return
            j = np.arange(k)[None, :]
            src = j + cnt[:, None]  # index into (old buffer ++ rows) of length k + cnt
            old = self.buf[conns]
            from_old = src < k
            row_idx = starts[:, None] + (src - k)
            new = np.where(
                from_old,
                np.take_along_axis(old, np.minimum(src, k - 1), axis=1),
                x[np.clip(row_idx, 0, max(n - 1, 0))],
            )
            self.buf[f.span] = new


def _inf_to_nan(a: F64) -> None:
    inf = np.isinf(a)
    if inf.any():  # rarely: no masked write then
        a[inf] = np.nan


#: Per status code (code -1, never heard, is the last entry), the reporting
#: mode of a row: 1 in a transaction (OCPP MeterValueSampleInterval, 10-60 s),
#: 0 idle (ClockAlignedDataInterval, often 900 s: Finishing is after the stop,
#: Preparing before the start), -1 either (Faulted, unknown).
_MODE = np.full(len(STATUS_CODE) + 1, -1, np.int8)
_MODE[[STATUS_CODE[s] for s in ("Charging", "SuspendedEV", "SuspendedEVSE")]] = 1
_MODE[
    [STATUS_CODE[s] for s in ("Available", "Preparing", "Finishing", "Reserved", "Unavailable")]
] = 0

#: How many recent ts deltas a connector's sampling interval is the median of:
#: odd, and enough that a few gaps or bursts among them do not move it.
INTERVAL_DELTAS = 9


def median_of_rows(a: F64) -> F64:
    """Per row, the median of the finite values of ``a`` (NaN when none)."""
    lo, hi = a[:, 0].copy(), a[:, 0].copy()
    for j in range(1, a.shape[1]):  # column by column: axis=1 reductions are slow
        np.fmin(lo, a[:, j], out=lo)
        np.fmax(hi, a[:, j], out=hi)
    # Where a row's finite values are all equal (a steady cadence: the usual
    # case), the formula below gives 0.5 * (v + v) from the same two values.
    out: F64 = 0.5 * (lo + hi)
    uneven = np.flatnonzero(~((lo == hi) & np.isfinite(lo)))  # NaN, inf: sorted too
    if uneven.size:
        out[uneven] = _median_sorted(np.take(a, uneven, axis=0))
    return out


def _median_sorted(a: F64) -> F64:
    s = np.sort(a, axis=1)  # NaN sorts last
    cnt = np.isfinite(s).sum(axis=1)
    rows = np.arange(s.shape[0])
    lo, hi = np.maximum(cnt - 1, 0) // 2, cnt // 2
    out: F64 = 0.5 * (s[rows, lo] + s[rows, np.minimum(hi, s.shape[1] - 1)])
    out[cnt == 0] = np.nan
    return out


class Sequencer:
    """Cleans and orders meter rows, keeping each connector's last processed ts,
    its last known energy register and power (with their ts), and its sampling
    interval (the median of its last ``INTERVAL_DELTAS`` ts deltas: a gap, a
    burst or a resend among them does not move it)."""

    def __init__(self) -> None:
        self.interval = np.full(0, np.nan)
        self.rows_seen = np.zeros(0)
        self._deltas = History(INTERVAL_DELTAS)
        # Per connector, the reporting mode of its last row (_MODE; -1 unknown)
        # and the interval it had when it last left each mode.
        self.mode = np.full(0, -1, np.int8)
        self.mode_interval = np.full((0, 2), np.nan)
        self.last_ts = np.full(0, -np.inf)
        self.status = np.full(0, UNKNOWN_STATUS, np.int8)
        # Last known (energy, power) and the ts of each, field-major (2,
        # connectors): np.take from a strided column copies the whole column
        # first (a pass over the fleet per update, whatever the batch's size).
        self.known_v = np.full((2, 0), np.nan)
        self.known_t = np.full((2, 0), np.nan)

    def resume_status(self, conn: I64, code: NDArray[np.int8], n_conn: int) -> NDArray[np.bool_]:
        """Take the status in force of connectors not heard yet (a restart: see
        ``DetectorSet.resume``); which of ``conn`` had none and took it."""
        self.status = grown(self.status, n_conn, UNKNOWN_STATUS)
        new = self.status[conn] == UNKNOWN_STATUS
        self.status[conn[new]] = code[new]
        return np.asarray(new)

    def forget_status(self, conn: I64) -> None:
        """Connectors watched elsewhere from now on: their status is unknown here."""
        self.status[conn[conn < self.status.shape[0]]] = UNKNOWN_STATUS

    def frame(self, batch: MeterBatch, ev: Events, n_conn: int, counters: dict[str, int]) -> Frame:
        self.last_ts = grown(self.last_ts, n_conn, -np.inf)
        self.interval = grown(self.interval, n_conn, np.nan)
        self.rows_seen = grown(self.rows_seen, n_conn, 0.0)
        self.status = grown(self.status, n_conn, UNKNOWN_STATUS)
        self.known_v = _grown_fields(self.known_v, n_conn, np.nan)
        self.known_t = _grown_fields(self.known_t, n_conn, np.nan)

        def count(key: str, k: int) -> None:
            if k:
                counters[key] = counters.get(key, 0) + k

        rows = _ticked_rows(batch, n_conn, self.last_ts, count)
        if rows is None:
            rows = _general_rows(batch, n_conn, self.last_ts, count)
        conn, ts, recv, vt = rows.conn, rows.ts, rows.recv, rows.vt
        raw_conn, raw_ts, raw_recv, raw_power, raw_energy = rows.raw
        status = self._status(conn, recv, ev)
        # (rows, fields), column-major
        f = Frame.build(conn, ts, recv, vt.T, status, n_conn, marks=rows.marks)
        if rows.segment:
            f.cache["uniform"] = rows.segment
        u = f.uniform  # known before the state is read: shift and last_rows use it
        prev = [self._prev(f, j, col, rows.full[j]) for j, col in enumerate(_GAP_FIELDS)]
        # The full frame, sharing the cache of the one the state was read with
        # (the constructor directly: ``dataclasses.replace`` costs ~20 us a call).
        f = Frame(
            f.conn,
            f.ts,
            f.recv,
            f.values,
            f.first,
            f.last,
            f.first_idx,
            f.last_idx,
            f.status,
            f.n_conn,
            raw_conn=raw_conn,
            raw_ts=raw_ts,
            raw_recv=raw_recv,
            raw_power=raw_power,
            raw_energy=raw_energy,
            prev_e=prev[0][0],
            prev_e_ts=prev[0][1],
            prev_p=prev[1][0],
            prev_p_ts=prev[1][1],
            interval=self.interval,
            rank=self._rank(f),
            cache=f.cache,
        )
        if len(f):
            self.rows_seen[f.span] += u or (f.last_idx - f.first_idx + 1)
        self._learn_interval(f)
        self._follow_mode(f)
        self.last_ts[f.span] = f.ts[f.last_rows]
        return f

    def _follow_mode(self, f: Frame) -> None:
        """Where a connector's reporting mode changed (a transaction began or
        ended), its interval becomes the one it had when last in the new mode
        (unknown the first time), learned on from the rows since; the delta
        across the change is neither mode's. The median of nine deltas would
        otherwise follow a 10 s -> 900 s switch only after five idle readings
        (75 min), judging them meanwhile as 10 s samples (a 60 s minimum:
        six of them). Changes are rare: only their connectors are visited."""
        n = f.n_conn
        self.mode = grown(self.mode, n, -1)
        self.mode_interval = grown(self.mode_interval, n, np.nan)
        if len(f) == 0:
            return
        m = _MODE[f.status]  # int8 codes index directly; code -1 reads the last entry
        touched = f.touched
        carried = np.take(self.mode, touched)
        moved = (m >= 0) & (m != f.per_row(carried))
        if not moved.any():
            return
        visit = np.flatnonzero(np.logical_or.reduceat(moved, f.first_idx))  # touched positions
        # A connector seen for the first time whose rows report one mode only (at
        # start-up, every connector): no change to follow, its mode is recorded
        # in one pass, not visited one by one (10k connectors cost ~8 ms a call).
        first = carried[visit] < 0
        if first.any():
            lo = np.minimum.reduceat(np.where(m >= 0, m, 127), f.first_idx)[visit]
            hi = np.maximum.reduceat(m, f.first_idx)[visit]
            one = first & (lo == hi)
            self.mode[touched[visit[one]]] = hi[one]
            visit = visit[~one]
        k = INTERVAL_DELTAS
        for i in visit.tolist():
            c, a, b = int(touched[i]), int(f.first_idx[i]), int(f.last_idx[i])
            cur, switch = int(carried[i]), -1
            for r in range(a, b + 1):
                mr = int(m[r])
                if mr >= 0 and mr != cur:
                    if cur >= 0:
                        switch, old = r, cur
                    cur = mr
            self.mode[c] = cur
            if switch < 0:  # the first mode it is seen in: its deltas are that mode's
                continue
            buf = self._deltas.buf[c]
            q = b - switch + 1  # rows since the change: the last q deltas
            if q < k and np.isfinite(buf[: k - q]).any():
                self.mode_interval[c, old] = median_of_rows(buf[None, : k - q])[0]
            elif q >= k and switch > a:
                # The old mode's deltas have left the buffer (k rows or more came
                # after the change in this frame): take them from the frame's rows
                # before the change (and the connector's last row before it).
                pre = np.diff(np.r_[self.last_ts[c], f.ts[a:switch]])[-k:]
                if np.isfinite(pre).any():
                    self.mode_interval[c, old] = median_of_rows(pre[None, :])[0]
            if q - 1 < k:
                since = buf[k - q + 1 :] if q > 1 else buf[:0]
                seed = np.full(k - since.shape[0], self.mode_interval[c, cur])
                self._deltas.buf[c] = np.concatenate([seed, since])
            self.interval[c] = median_of_rows(self._deltas.buf[c][None, :])[0]

    def snapshot_modes(self, index: ConnectorIndex) -> dict[str, dict[str, list[Any]]]:
        """Per charger, per connector number: the reporting mode of its last row
        and the interval it had in each mode ([mode, idle, in a transaction],
        NaN as None), the current mode's being its interval now. Kept across a
        restart (``DetectorSet.snapshot``): without them the first mode change
        after one only records the mode, and the interval follows the switch
        at the pace of the median of nine deltas (five 900 s readings)."""
        n = min(self.mode.shape[0], self.interval.shape[0], self.mode_interval.shape[0])
        cs = np.flatnonzero(self.mode[:n] >= 0)
        if cs.size == 0:
            return {}
        cur = self.mode[cs].astype(np.int64)
        ivs = self.mode_interval[cs].copy()
        now_iv = self.interval[cs]
        known = np.isfinite(now_iv)
        ivs[known, cur[known]] = now_iv[known]
        out: dict[str, dict[str, list[Any]]] = {}
        keys = index.keys
        # NaN as None in one pass, not a call per value: a snapshot has an
        # entry per connector that ever reported.
        vals = ivs.astype(object)
        vals[np.isnan(ivs)] = None
        for c, m, (idle, tx) in zip(cs.tolist(), cur.tolist(), vals.tolist(), strict=True):
            charger, connector = keys[c]
            out.setdefault(charger, {})[str(connector)] = [m, idle, tx]
        return out

    def restore_modes(
        self, modes: Mapping[str, Mapping[str, Sequence[Any]]], index: ConnectorIndex, n_conn: int
    ) -> None:
        """Take back what :meth:`snapshot_modes` gave, replacing the mode state
        of those connectors (each already in ``index``). The deltas are not
        kept: the interval in the current mode is learned anew, and the next
        mode change starts from the restored interval of the mode it enters."""
        self.mode = grown(self.mode, n_conn, -1)
        self.mode_interval = grown(self.mode_interval, n_conn, np.nan)
        for charger, connectors in modes.items():
            for k, (m, *ivs) in connectors.items():
                c = index.get(str(charger), int(k))
                if c is None or c >= n_conn or int(m) not in (0, 1) or len(ivs) != 2:
                    continue
                self.mode[c] = int(m)
                self.mode_interval[c] = [math.nan if v is None else float(v) for v in ivs[:2]]

    def _rank(self, f: Frame) -> F64:
        """Per row, the connector's rows seen before this frame plus the row's
        position in its segment: ``rows_seen[conn] + pos`` with one repeat of a
        per-connector offset instead of a gather and the segment starts per row."""
        seen = np.take(self.rows_seen, f.touched)
        if f.uniform:  # equal segments: one broadcast add writes every row
            grid: F64 = seen[:, None] + np.arange(f.uniform, dtype=np.float64)
            return grid.reshape(-1)
        out: F64 = f.per_row(seen - f.first_idx)
        out += np.arange(len(f))
        return out

    def _learn_interval(self, f: Frame) -> None:
        """Push each row's ts delta (to the connector's previous processed row)
        and update the touched connectors' intervals."""
        if len(f) == 0:
            return
        c, u, k = f.touched, f.uniform, INTERVAL_DELTAS
        if u > k:
            # Every connector brought more than k rows: its last k deltas lie
            # between this frame's rows (a (connector, row) grid), the earlier
            # rows' deltas would only pass through the buffer.
            # A connector whose window is the one it had (a steady cadence) keeps
            # its interval: the window's median.
            t2 = f.ts.reshape(-1, u)
            recent = t2[:, u - k :] - t2[:, u - k - 1 : u - 1]
            _inf_to_nan(recent)
            self._deltas.buf = grown(self._deltas.buf, f.n_conn, np.nan)
            same = recent == self._deltas.buf[f.span]  # before set_last writes there
            self._deltas.set_last(f, recent)
            if not same.all():
                moved = np.flatnonzero(~same.all(axis=1))
                cm = np.take(c, moved)
                self.interval[cm] = median_of_rows(np.take(recent, moved, axis=0))
            return
        d = f.ts - self._shifted_ts(f, np.take(self.last_ts, c))
        _inf_to_nan(d)  # a connector's very first row has no delta
        if 0 < u < k:
            # Each connector's oldest u deltas leave its window and its u new ones
            # enter: where they are equal, one for one, the window holds the same
            # values and its median (the interval) cannot move. At a steady cadence
            # that is every connector, and no median is taken. (Deltas are > 0 or
            # NaN: equal values are equal bits, and NaN never counts as equal.)
            self._deltas.buf = grown(self._deltas.buf, f.n_conn, np.nan)
            same = self._deltas.buf[f.span, :u] == d.reshape(-1, u)  # before the push
            self._deltas.push(f, d)
            if not same.all():
                moved = np.flatnonzero(~same.all(axis=1))
                cm = np.take(c, moved)
                self.interval[cm] = median_of_rows(np.take(self._deltas.buf, cm, axis=0))
            return
        self._deltas.push(f, d)
        # When u == k the last k deltas are this frame's: no gather from the buffer.
        recent = d.reshape(-1, u) if u == k else np.take(self._deltas.buf, c, axis=0)
        self.interval[f.span] = median_of_rows(recent)

    @staticmethod
    def _shifted_ts(f: Frame, carried: F64) -> F64:
        """``f.shift(f.ts, carried)``, computed once per frame for equal ``carried``:
        energy and power are usually known on the same rows, and the last
        processed ts is their ts, so the three callers usually share one array
        (read-only: ``prev_e_ts is prev_p_ts`` then)."""
        got = f.cache.get("shifted_ts")
        # Bit for bit (one pass over int64 views): NaN and -0.0 need no special case.
        if got is not None and np.array_equal(got[0].view(np.int64), carried.view(np.int64)):
            out: F64 = got[1]
            return out
        out = f.shift(f.ts, carried)
        f.cache["shifted_ts"] = (carried, out)
        return out

    def _prev(self, f: Frame, j: int, col: int, full: bool) -> tuple[F64, F64]:
        """Per row, the previous known value of column ``col`` and its ts; then
        remember each connector's last known one. ``full``: no value is missing
        (known from the batch's bounds; else a pass finds out)."""
        x = f.col(METER_FIELDS[col])
        c = f.touched
        cv, ct = np.take(self.known_v[j], c), np.take(self.known_t[j], c)
        ok = None if full else np.isfinite(x)
        if ok is None or ok.all():  # the usual case: the previous row's
            pv, pt = f.shift(x, cv), self._shifted_ts(f, ct)
            self.known_v[j, f.span] = x[f.last_rows]
            self.known_t[j, f.span] = f.ts[f.last_rows]
            return pv, pt
        src = ffill_index(ok, f.seg_start)
        before = f.shift(src, np.full(c.shape[0], -1, np.int64))
        has = before >= 0
        at = np.maximum(before, 0)
        seg = np.cumsum(f.first) - 1  # segment number of each row
        pv = np.where(has, np.take(x, at), np.take(cv, seg)) if x.size else x.copy()
        pt = np.where(has, np.take(f.ts, at), np.take(ct, seg)) if x.size else x.copy()
        lk = f.last_where(ok)
        got = lk >= 0
        self.known_v[j, c[got]] = x[lk[got]]
        self.known_t[j, c[got]] = f.ts[lk[got]]
        return pv, pt

    def _status(self, conn: I64, recv: F64, ev: Events) -> NDArray[np.int8]:
        """Status in force at each row's receive time, then remember the latest."""
        base = self.status[conn]
        if ev.st_conn.size == 0:
            return base
        m = ev.st_conn.shape[0]
        all_conn = np.concatenate([ev.st_conn, conn])
        all_t = np.concatenate([ev.st_recv, recv])
        kind = np.concatenate([np.zeros(m, np.int8), np.ones(conn.shape[0], np.int8)])
        order = np.lexsort((kind, all_t, all_conn))
        sc = all_conn[order]
        first = np.ones(order.shape[0], np.bool_)
        first[1:] = sc[1:] != sc[:-1]
        seg_start = np.where(first, np.arange(order.shape[0]), 0)
        np.maximum.accumulate(seg_start, out=seg_start)
        is_ev = order < m
        src = ffill_index(is_ev, seg_start)
        code_sorted = np.full(order.shape[0], UNKNOWN_STATUS, np.int8)
        has = src >= 0
        code_sorted[has] = ev.st_code[order[src[has]]]
        rows_sorted = ~is_ev
        out = np.empty(conn.shape[0], np.int8)
        out[order[rows_sorted] - m] = code_sorted[rows_sorted]
        out = np.where(out == UNKNOWN_STATUS, base, out).astype(np.int8)
        # Remember the last status per connector (events sorted by conn, recv).
        last_ev = np.ones(m, np.bool_)
        last_ev[:-1] = ev.st_conn[1:] != ev.st_conn[:-1]
        self.status[ev.st_conn[last_ev]] = ev.st_code[last_ev]
        return out
