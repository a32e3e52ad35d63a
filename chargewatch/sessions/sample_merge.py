"""Merging one session's meter rows, event-borne register points and status
anchors into its register segments and power track (the general path; the
fast tail handles in-order live data without it)."""

from __future__ import annotations

__all__ = ["flush_anchors", "merge_session"]

import math
from collections.abc import Generator
from itertools import pairwise

import numpy as np
from numpy.typing import NDArray

from chargewatch.model.batch import FIELD_INDEX, MeterBatch
from chargewatch.sessions.energy import (
    merge_register,
    register_energy,
    resync_sampled,
    track_samples,
)
from chargewatch.sessions.power_track import Integrated, Run
from chargewatch.sessions.session_book import SessionBook
from chargewatch.sessions.session_state import SessionState, bridge_key
from chargewatch.sessions.session_types import SessionConfig

_E = FIELD_INDEX["energy_wh"]
_P = FIELD_INDEX["power_w"]


def merge_session(
    book: SessionBook,
    s: SessionState,
    batch: MeterBatch,
    amps: NDArray[np.float64],
    rows: NDArray[np.intp],
    now: float,
) -> Generator[list[Run], list[Integrated], None]:
    """Merge a session's rows and pending points (a generator: it yields the
    runs its power track needs integrated once, see batch_routing.apply_batch)."""
    cfg = book.config
    pend = book.points.get(s.sid, [])
    anchors = take_anchors(book, s, batch, rows, now)
    if not (rows.size or pend or anchors):
        return  # only anchors that keep waiting
    t = batch.ts[rows]
    e = batch.values[rows, _E]
    if pend:
        t = np.concatenate((t, [x[0] for x in pend]))
        e = np.concatenate((e, [x[1] for x in pend]))
    order = np.argsort(t, kind="stable")
    t, e = t[order], e[order]
    if rows.size and _late_rows_used(cfg, s, batch, rows):
        s.flag("late_data")
    resync_sampled(s.sampled, s.segs, s.track.last)
    derived = _register_power(cfg, s, t, e, batch, rows)
    segs = _merge_register(cfg, s, t, e)
    if rows.size:
        s.sampled = track_samples(
            s.sampled,
            batch.ts[rows],
            batch.values[rows, _E],
            batch.values[rows, _P],
            threshold_w=cfg.charging_threshold_w,
            stuck_min_wh=cfg.stuck_min_wh,
            tol_wh=cfg.register_tolerance_wh,
        )
    if rows.size or anchors:
        yield from _merge_power(cfg, s, batch, amps, rows, anchors, segs, derived)
    if t.size:
        s.last_seen = max(s.last_seen, float(t[-1]))
    if (
        s.closed_by == "next_start"
        and s.stop is not None
        and s.window_end is not None
        and s.stop < s.last_seen <= s.window_end
    ):
        # "Stop at the last data seen": data of the window that reaches us
        # after the next start (a later batch, or late) moves it too, so
        # the stop does not depend on where the stream was cut.
        s.stop = s.last_seen
    book.dirty.add(s.sid)
    if s.is_open:
        book.due_stale.add(book.index.id(s.charger, s.connector))


def _late_rows_used(
    cfg: SessionConfig, s: SessionState, batch: MeterBatch, rows: NDArray[np.intp]
) -> bool:
    """Whether a row received more than ``late_after_s`` after its meter time
    changes the session (docs/sessions.md, ``late_data``); call before merging.

    Re-sent readings change nothing and do not count: a register reading
    inside a span the segments already cover (merge_register ignores it; e.g.
    the Transaction.Begin value a StopTransaction repeats in its
    transactionData), a power sample at or before the track's last point
    (those the track takes, out of order, it reports itself as ``late``).
    """
    lag = batch.recv[rows] - batch.ts[rows]
    late = lag > cfg.late_after_s
    if not late.any():
        return False
    t = batch.ts[rows][late]
    vals = batch.values[rows][late]
    p_new = np.isfinite(vals[:, _P])
    last = s.track.last
    if last is not None:
        p_new &= t > last[0]
    if p_new.any():
        return True
    e_new = np.isfinite(vals[:, _E])
    f = s.segs
    if f is not None and e_new.any():
        t0s, t1s = np.asarray(f[0::4]), np.asarray(f[2::4])
        k = np.searchsorted(t0s, t, side="right")
        e_new &= ~((k > 0) & (t <= t1s[np.maximum(k - 1, 0)]))
    return bool(e_new.any())


def _register_power(
    cfg: SessionConfig,
    s: SessionState,
    t: NDArray[np.float64],
    e: NDArray[np.float64],
    batch: MeterBatch,
    rows: NDArray[np.intp],
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Power derived from the register for rows that carry one but no power
    (times, watts); call before the readings are merged into the segments.

    A register-only charger (OCPP 1.6's default measurand) would otherwise
    leave the power track empty and every session idle. Each such row gives
    the average power since the reading before it (ΔWh / Δt), placed at the
    interval's middle: it is that interval's power, and the trapezoids over
    the midpoints keep the energy where it was delivered. No value across a
    register reset (the delta means nothing) or an interval longer than
    ``gap_s`` (a long gap stays a gap, not a low "average" charging span),
    and none at or before the track's last point.
    """
    none = np.empty(0, np.float64)
    if not rows.size:
        return none, none
    vals = batch.values[rows]
    want = np.isfinite(vals[:, _E]) & ~np.isfinite(vals[:, _P])
    if not want.any():
        return none, none
    # Every known reading: segment ends before this merge, then this step's.
    f = s.segs
    old_t = np.asarray(f[0::2], np.float64) if f is not None else none
    old_e = np.asarray(f[1::2], np.float64) if f is not None else none
    fin = np.isfinite(e)
    kt = np.concatenate((old_t, t[fin]))
    ke = np.concatenate((old_e, e[fin]))
    o = np.lexsort((ke, kt))
    kt, ke = kt[o], ke[o]
    rt, re_ = batch.ts[rows][want], vals[want, _E]
    # The latest reading strictly before each row.
    j = np.searchsorted(kt, rt, side="left") - 1
    ok = j >= 0
    jj = np.maximum(j, 0)
    dt = rt - kt[jj]
    de = re_ - ke[jj]
    ok &= (dt > 0) & (dt <= cfg.gap_s) & (de >= -cfg.register_tolerance_wh)
    last = s.track.last
    if last is not None:
        # Forward only: a re-sent reading (StopTransaction's transactionData
        # repeats Transaction.Begin) must not put an estimate behind samples
        # already merged, where it would count as late data.
        ok &= kt[jj] + dt * 0.5 > last[0]
    if not ok.any():
        return none, none
    dt, de = dt[ok], de[ok]
    tm = kt[jj][ok] + dt * 0.5
    pm = np.maximum(de, 0.0) * 3600.0 / dt
    u = np.argsort(tm, kind="stable")
    return tm[u], pm[u]


def _merge_register(
    cfg: SessionConfig, s: SessionState, t: NDArray[np.float64], e: NDArray[np.float64]
) -> list[list[float]]:
    """Merge register readings (time-ordered) into the segments; return them."""
    fin = np.isfinite(e)
    segs = s.seg_list()
    before = register_energy(segs)
    stats, _ignored = merge_register(
        segs,
        t[fin],
        e[fin],
        tol_wh=cfg.register_tolerance_wh,
        reset_ratio=cfg.reset_ratio,
        max_power_w=cfg.max_power_w,
    )
    s.set_segs(segs)
    s.n_reg += int(np.count_nonzero(fin))
    s.resets += stats.resets
    s.jumps += stats.jumps
    s.bad += stats.bad
    if fin.any() and register_energy(segs) > before + cfg.register_tolerance_wh:
        # Growth ended where the readings first reach their final level.
        tf, ef = t[fin], e[fin]
        top = np.maximum.accumulate(ef[::-1])[::-1]  # max of each reading and all later
        reached = np.flatnonzero(ef >= top[-1] - cfg.register_tolerance_wh)
        s.last_growth = max(s.last_growth, float(tf[reached[0]]))
    return segs


def _merge_power(
    cfg: SessionConfig,
    s: SessionState,
    batch: MeterBatch,
    amps: NDArray[np.float64],
    rows: NDArray[np.intp],
    anchors: list[float],
    segs: list[list[float]],
    derived: tuple[NDArray[np.float64], NDArray[np.float64]],
) -> Generator[list[Run], list[Integrated], None]:
    """Merge power samples, register-derived power (see _register_power) and
    anchors into the track; bridge register resets."""
    td, pd_ = derived
    tp = np.concatenate((batch.ts[rows], td, anchors))
    p = np.concatenate((batch.values[rows, _P], pd_, np.zeros(len(anchors))))
    cur = np.concatenate((amps[rows], np.full(td.size + len(anchors), np.nan)))
    # Stable, rows first: a real sample at an anchor's time is kept, the anchor dropped.
    po = np.argsort(tp, kind="stable")
    tp, p, cur = tp[po], p[po], cur[po]
    pf = np.isfinite(p)
    syn = None
    if anchors:
        syn = (po >= rows.size + td.size)[pf]
    prev = s.track.last
    late, _ign = yield from s.track.merge_steps(
        tp[pf],
        p[pf],
        cur[pf],
        threshold_w=cfg.charging_threshold_w,
        gap_s=cfg.gap_s,
        synthetic=syn,
    )
    if late:
        s.flag("late_data")
    if len(segs) > 1:
        tb, pb = tp[pf], p[pf]
        if prev is not None and (tb.size == 0 or prev[0] < tb[0]):
            # The reset may fall between the previous batch's last sample and ours.
            tb = np.concatenate(([prev[0]], tb))
            pb = np.concatenate(([prev[1]], pb))
        _bridge(s, segs, tb, pb)
    s.last_seen = max(s.last_seen, float(tp[-1]))


def _bridge(
    s: SessionState,
    segs: list[list[float]],
    tp: NDArray[np.float64],
    p: NDArray[np.float64],
) -> None:
    """Keep the power samples at both ends of each reset interval, as energy
    (see session_emit's across_reset): the pieces are too coarse for it."""
    for a, b in pairwise(segs):
        key = bridge_key(a, b)
        if (s.bridges is not None and key in s.bridges) or tp.size == 0:
            continue
        i, j = np.searchsorted(tp, [a[2], b[0]])
        if i < tp.size and j < tp.size and tp[i] == a[2] and tp[j] == b[0]:
            dt_h = (b[0] - a[2]) / 3600.0
            if s.bridges is None:
                s.bridges = {}
            s.bridges[key] = [float((p[i] + p[j]) * 0.5 * dt_h), float(max(p[i], p[j]) * dt_h)]


def take_anchors(
    book: SessionBook, s: SessionState, batch: MeterBatch, rows: NDArray[np.intp], now: float
) -> list[float]:
    """The session's pending anchors to merge in this step; the rest stay pending.

    Status and meter samples come on different topics, and a meter batch
    carries up to a minute of samples after the fact, so a status often
    reaches us before the samples leading up to it. Merged then, the anchor
    would become the track's last point: those samples would land before it
    and count as late (or, at its timestamp, be ignored for it). So an anchor
    waits until a real power sample at or past it arrives (it is then merged
    with those samples, and a real sample at its time wins), or until samples
    up to it could only arrive late anyway (``late_after_s``), or until the
    session closes (its record should not wait).
    """
    anchors = book.anchors.get(s.sid)
    if not anchors:
        return []
    if s.is_open:
        last = s.track.last
        reach = -math.inf if last is None else last[0]
        if rows.size:
            tr = batch.ts[rows][np.isfinite(batch.values[rows, _P])]
            if tr.size:
                reach = max(reach, float(tr.max()))
        after = now - book.config.late_after_s
        take = [a for a in anchors if a <= reach or a < after]
        if len(take) < len(anchors):
            if take:
                book.anchors[s.sid] = [a for a in anchors if not (a <= reach or a < after)]
            return take
    del book.anchors[s.sid]
    return anchors


def flush_anchors(book: SessionBook, s: SessionState) -> None:
    """Merge the anchors of a session that closed after this step's samples went in."""
    anchors = book.anchors.pop(s.sid, None)
    if not anchors:
        return
    cfg = book.config
    t = np.sort(np.array(anchors, np.float64))
    s.track.merge(
        t,
        np.zeros(t.size),
        np.full(t.size, math.nan),
        threshold_w=cfg.charging_threshold_w,
        gap_s=cfg.gap_s,
        synthetic=np.ones(t.size, np.bool_),
    )
    s.last_seen = max(s.last_seen, float(t[-1]))
    book.dirty.add(s.sid)
