"""A meter batch into the sessions: sorted by connector and time, the live
in-order case through the fast tail, the rest routed by session window (or
opening power-inferred sessions) and merged per session."""

from __future__ import annotations

__all__ = ["apply_batch"]

import contextlib
import math
from collections.abc import Generator

import numpy as np
from numpy.typing import NDArray

from chargewatch.model.batch import FIELD_INDEX, MeterBatch
from chargewatch.sessions.fast_tail import fast_tail
from chargewatch.sessions.power_track import Integrated, Run, pieces_from_many
from chargewatch.sessions.sample_merge import merge_session
from chargewatch.sessions.session_book import SessionBook

_P = FIELD_INDEX["power_w"]
_I = [FIELD_INDEX["current_l1_a"], FIELD_INDEX["current_l2_a"], FIELD_INDEX["current_l3_a"]]


def apply_batch(book: SessionBook, batch: MeterBatch, now: float, *, fast_path: bool) -> None:
    """Merge the batch and the step's pending points into their sessions."""
    touched: set[str] = set(book.points) | set(book.anchors)
    chunks: dict[str, list[NDArray[np.intp]]] = {}
    # The largest phase's current, for every row at once (per session it cost
    # ~15 us of numpy overhead; rows are independent, so the values are the same).
    amps = _amps(batch.values)
    order = _usable_order(book, batch, now)
    conns = batch.conn[order]
    ts = batch.ts[order]
    if order.size:
        bounds = np.flatnonzero(np.diff(conns)) + 1
        starts = np.concatenate(([0], bounds))
        ends = np.concatenate((bounds, [order.size]))
        done = (
            fast_tail(book, batch, amps, order, starts, ends, touched)
            if fast_path
            else np.zeros(starts.size, np.bool_)
        )
        # The rest (late rows, resets, state changes, no open session): one
        # iteration per connector; its samples stay vectorised.
        for g in np.flatnonzero(~done).tolist():
            a, b = int(starts[g]), int(ends[g])
            _route(book, int(conns[a]), order[a:b], ts[a:b], batch, chunks)
    touched |= set(chunks)
    _merge_all(book, batch, amps, touched, chunks, now)
    book.points.clear()


def _usable_order(book: SessionBook, batch: MeterBatch, now: float) -> NDArray[np.intp]:
    """Rows by connector then time, without those in the future (rejected)."""
    if not len(batch):
        return np.empty(0, np.intp)
    ok = np.isfinite(batch.ts)
    future = ok & (batch.ts > now + book.config.future_tolerance_s)
    for r in np.flatnonzero(future).tolist():
        ch, cn = book.index.keys[int(batch.conn[r])]
        book.reject(ch, cn, float(batch.ts[r]), "future_timestamp", "meter sample")
    ok &= ~future
    order = np.lexsort((batch.ts, batch.conn))
    return order[ok[order]]


def _merge_all(
    book: SessionBook,
    batch: MeterBatch,
    amps: NDArray[np.float64],
    touched: set[str],
    chunks: dict[str, list[NDArray[np.intp]]],
    now: float,
) -> None:
    """Every session's merge runs up to its power-track merge; the runs they
    need integrated go through pieces_from_many at once; then each finishes."""
    cfg = book.config
    waiting: list[tuple[Generator[list[Run], list[Integrated], None], int]] = []
    runs: list[Run] = []
    for sid in touched:
        s = book.sessions.get(sid)
        if s is None:
            continue
        rows = np.concatenate(chunks[sid]) if sid in chunks else np.empty(0, np.intp)
        steps = merge_session(book, s, batch, amps, rows, now)
        with contextlib.suppress(StopIteration):
            got = next(steps)
            waiting.append((steps, len(got)))
            runs += got
    integrated = pieces_from_many(runs, threshold_w=cfg.charging_threshold_w, gap_s=cfg.gap_s)
    k = 0
    for steps, n_runs in waiting:
        with contextlib.suppress(StopIteration):
            steps.send(integrated[k : k + n_runs])
            raise AssertionError("merge_session yields once")
        k += n_runs


def _route(
    book: SessionBook,
    conn: int,
    rows: NDArray[np.intp],
    ts: NDArray[np.float64],
    batch: MeterBatch,
    chunks: dict[str, list[NDArray[np.intp]]],
) -> None:
    """Hand one connector's rows to the sessions whose windows hold them."""
    sids = book.conn_sids(conn)
    if len(sids) == 1:
        # (The usual case, without the searchsorted and unique below.)
        one = book.sessions[sids[0]]
        end = math.inf if one.is_open else (one.window_end or 0.0)
        inwin = (ts >= one.start) & (ts <= end)
        if inwin.any():
            chunks.setdefault(sids[0], []).append(rows[inwin])
        orphan = ~inwin
    elif sids:
        ss = [book.sessions[x] for x in sids]
        w0 = np.array([s.start for s in ss])
        w1 = np.array([math.inf if s.is_open else (s.window_end or 0.0) for s in ss])
        k = np.searchsorted(w0, ts, side="right") - 1
        inwin = (k >= 0) & (ts <= w1[np.maximum(k, 0)])
        for j in np.unique(k[inwin]).tolist():
            chunks.setdefault(sids[j], []).append(rows[inwin & (k == j)])
        orphan = ~inwin
    else:
        orphan = np.ones(ts.size, np.bool_)
    charger, connector = book.index.keys[conn]
    if not orphan.any() or conn in book.open or charger in book.sends:
        return
    # Neither transactions nor statuses from this charger: power says when it charges.
    p = batch.values[rows, _P]
    hot = orphan & (p > book.config.charging_threshold_w)
    if hot.any():
        first = int(np.flatnonzero(hot)[0])
        s = book.open_session(charger, connector, "", float(ts[first]), "power")
        take = orphan & (ts >= ts[first])
        chunks.setdefault(s.sid, []).append(rows[take])


def _amps(values: NDArray[np.float64]) -> NDArray[np.float64]:
    """The largest phase's current; NaN where no phase reported.

    Per phase, not the sum: a charger is rated (and a car draws) per phase, so
    a 3 x 32 A session shows 32 A, not 96 A, in CDRs, reports and tariff
    matching (docs/pricing.md, "Current").
    """
    phases = values[:, _I]
    none = np.isnan(phases).all(axis=1)
    # -inf stands in for a missing phase (nanmax would warn on all-NaN rows).
    return np.where(none, np.nan, np.max(np.where(np.isnan(phases), -np.inf, phases), axis=1))
