"""The live case for every connector of a batch at once: data that continues
its open session in order is folded in from per-group reductions, with no
Python work per sample and a few scalar writes per connector."""

from __future__ import annotations

__all__ = ["fast_tail"]

import math
from array import array
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from chargewatch.model.batch import FIELD_INDEX, MeterBatch
from chargewatch.sessions.energy import S_RUN
from chargewatch.sessions.power_track import HEAD, interval_stats
from chargewatch.sessions.session_book import SessionBook
from chargewatch.sessions.session_closing import due_at
from chargewatch.sessions.session_state import SessionState
from chargewatch.sessions.session_types import SessionConfig

_E = FIELD_INDEX["energy_wh"]
_P = FIELD_INDEX["power_w"]
_NO_PREV = (math.nan,) * 8
assert S_RUN == 5  # _tails reads it by the literal
# Per qualifying group: (group, last t, last register, growth time, rows, Wh,
# min/max power, max current, max current of the extended last piece, last
# power, last current).
_Group = tuple[int, float, float, float, int, float, float, float, float, float, float, float]


def fast_tail(
    book: SessionBook,
    batch: MeterBatch,
    amps_all: NDArray[np.float64],
    order: NDArray[np.intp],
    starts: NDArray[np.intp],
    ends: NDArray[np.intp],
    busy: set[str],
) -> NDArray[np.bool_]:
    """Handle the groups (one per connector) that qualify; return which those were.

    A group qualifies when it continues its open session in order: after the
    last register reading and power sample, register and power in every row,
    the register monotonic, no charging/idle change, no interval longer than
    the refinable spacing, nothing received late, no event-borne points
    pending. Then segment end, power integral and the last piece are
    updated from per-group reductions (np.add.reduceat and friends).
    """
    done = np.zeros(starts.size, np.bool_)
    conn_list = batch.conn[order[starts]].tolist()
    sess, prev = _tails(book, conn_list, busy)
    ok_g = ~np.isnan(prev[:, 0])
    if not ok_g.any():
        return done
    rows = _Rows.of(batch, amps_all, order, starts, ends, prev)
    ok_g &= np.logical_and.reduceat(rows.in_order(book.config, prev), starts)
    if not ok_g.any():
        return done
    cols = _group_columns(book.config, rows, prev, starts, ends, ok_g)
    _extend(book, sess, conn_list, cols)
    done[ok_g] = True
    return done


def _tails(
    book: SessionBook, conn_list: list[int], busy: set[str]
) -> tuple[list[SessionState | None], NDArray[np.float64]]:
    """Per group its open session and where that ends (NaN: not for this path).

    The columns: [session start, last power t, p, i, seg t1, seg e1, soft
    spacing limit, last piece's max current]. Into an array('d'), not a list
    of tuples: tuples kept alive count toward the cyclic GC's thresholds (a
    list of 25k of them triggers collections).
    """
    sess: list[SessionState | None] = []
    nan = math.nan
    no_prev = _NO_PREV
    rows: array[float] = array("d")
    open_get, sessions = book.open.get, book.sessions
    for c in conn_list:
        sid = open_get(c)
        s = sessions[sid] if sid is not None else None
        if s is None or sid in busy or s.segs is None:
            sess.append(None)
            rows.extend(no_prev)
            continue
        smp = s.sampled
        # No sampled register yet, or a flat run under load open (index S_RUN,
        # a literal: this loop runs per connector and batch): the general
        # path's track_samples must see what ends it. Otherwise the fast path
        # leaves `sampled` alone; energy.resync_sampled catches it up.
        if smp is None or smp[5]:
            sess.append(None)
            rows.extend(no_prev)
            continue
        en = s.track.a
        # No sample yet (NaN time), or the spacing not known yet (0).
        if en is None or en[3] != en[3] or not en[6]:
            sess.append(None)
            rows.extend(no_prev)
            continue
        sg = s.segs
        rows.extend(
            (
                s.start,
                en[3],
                en[4],
                en[5],
                sg[-2],
                sg[-1],
                2.5 * en[6],
                en[-1] if len(en) > HEAD else nan,
            )
        )
        sess.append(s)
    return sess, np.frombuffer(rows, np.float64).reshape(len(conn_list), 8)


@dataclass(slots=True)
class _Rows:
    """The batch's rows in group order, each with the sample before it."""

    gid: NDArray[np.intp]  # group of each row
    t: NDArray[np.float64]
    e: NDArray[np.float64]
    p: NDArray[np.float64]
    amps: NDArray[np.float64]
    recv: NDArray[np.float64]
    pt: NDArray[np.float64]  # previous sample's time, power, current, register
    dt: NDArray[np.float64]  # t - pt
    pp: NDArray[np.float64]
    pi: NDArray[np.float64]
    pe: NDArray[np.float64]

    @classmethod
    def of(
        cls,
        batch: MeterBatch,
        amps_all: NDArray[np.float64],
        order: NDArray[np.intp],
        starts: NDArray[np.intp],
        ends: NDArray[np.intp],
        prev: NDArray[np.float64],
    ) -> _Rows:
        gid = np.repeat(np.arange(starts.size), ends - starts)
        t = batch.ts[order]
        vals = batch.values[order]
        e = vals[:, _E]
        p = vals[:, _P]
        amps = amps_all[order]
        first_row = np.zeros(t.size, np.bool_)
        first_row[starts] = True
        # Previous sample of each row: the row before it, or the track's last sample.
        pt = np.where(first_row, prev[gid, 1], np.roll(t, 1))
        return cls(
            gid=gid,
            t=t,
            e=e,
            p=p,
            amps=amps,
            recv=batch.recv[order],
            pt=pt,
            dt=t - pt,
            pp=np.where(first_row, prev[gid, 2], np.roll(p, 1)),
            pi=np.where(first_row, prev[gid, 3], np.roll(amps, 1)),
            pe=np.where(first_row, prev[gid, 5], np.roll(e, 1)),
        )

    def in_order(self, cfg: SessionConfig, prev: NDArray[np.float64]) -> NDArray[np.bool_]:
        """Which rows continue their session as the fast path requires."""
        thr = cfg.charging_threshold_w
        gid, t, e, p, pe, dt = self.gid, self.t, self.e, self.p, self.pe, self.dt
        return (  # type: ignore[no-any-return]
            np.isfinite(e)
            & np.isfinite(p)
            & (dt > 0)
            & (dt <= prev[gid, 6])
            & (t > prev[gid, 4])
            & (t >= prev[gid, 0])
            & (e >= pe - cfg.register_tolerance_wh)
            & (e - pe <= cfg.max_power_w * dt / 3600.0 + 1000.0)
            & ((p > thr) == (self.pp > thr))
            # The register standing still under load is for track_samples.
            & ((e > pe) | (p <= thr))
            & (self.recv - t <= cfg.late_after_s)
        )


def _group_columns(
    cfg: SessionConfig,
    rows: _Rows,
    prev: NDArray[np.float64],
    starts: NDArray[np.intp],
    ends: NDArray[np.intp],
    ok_g: NDArray[np.bool_],
) -> Iterator[_Group]:
    """The reductions of each qualifying group (see _Group)."""
    t, e, p, pp, amps, dt = rows.t, rows.e, rows.p, rows.pp, rows.amps, rows.dt
    wh = np.add.reduceat((p + pp) * 0.5 * dt / 3600.0, starts)
    # Every row and the sample before it are of one kind (in_order): whole
    # intervals, whose statistics are power_track's definition.
    lo_r, hi_r, im_r = interval_stats(pp, p, rows.pi, amps)
    lo = np.minimum.reduceat(lo_r, starts)
    hi = np.maximum.reduceat(hi_r, starts)
    imax = np.fmax.reduceat(im_r, starts)
    # The last piece's max current if the group extends it (np.fmax, as there).
    imax_ext = np.fmax(prev[:, 7], imax)
    last = ends - 1
    e_last = e[last]
    # When the register reached its final value in the group (growth time).
    reached = e >= e_last[rows.gid] - cfg.register_tolerance_wh
    first_reach = np.minimum.reduceat(np.where(reached, np.arange(t.size), t.size), starts)
    # Plain floats from here: the loop over them is per connector, and numpy
    # scalars cost ~10x a float in Python arithmetic.
    sel = np.flatnonzero(ok_g)
    return zip(
        sel.tolist(),
        t[last[sel]].tolist(),
        e_last[sel].tolist(),
        t[first_reach[sel]].tolist(),
        (ends[sel] - starts[sel]).tolist(),
        wh[sel].tolist(),
        lo[sel].tolist(),
        hi[sel].tolist(),
        imax[sel].tolist(),
        imax_ext[sel].tolist(),
        p[last[sel]].tolist(),
        amps[last[sel]].tolist(),
        strict=True,
    )


def _extend(
    book: SessionBook,
    sess: list[SessionState | None],
    conn_list: list[int],
    cols: Iterator[_Group],
) -> None:
    """Write each group's reductions into its session: segment end, last piece, tail."""
    tol = book.config.register_tolerance_wh
    thr = book.config.charging_threshold_w
    due = book.due
    for g, t_last, e1, t_reach, n, wh_g, lo_g, hi_g, im_g, im_ext, p_last, a_last in cols:
        s2 = sess[g]
        assert s2 is not None and s2.segs is not None
        tr = s2.track
        en = tr.a  # [first t, p, i, last t, p, i, spacing, *pieces]
        assert en is not None
        sg = s2.segs
        if e1 > sg[-1] + tol:
            s2.last_growth = max(s2.last_growth, t_reach)
        sg[-2] = t_last
        sg[-1] = max(sg[-1], e1)
        s2.n_reg += n
        k = 1.0 if en[4] > thr else 0.0
        pc = None
        if len(en) > HEAD and en[-7] == k and en[-5] == en[3]:
            en[-5] = t_last
            en[-4] += wh_g
            en[-3] = min(en[-3], lo_g)
            en[-2] = max(en[-2], hi_g)
            en[-1] = im_ext
        else:
            pc = array("d", (k, en[3], t_last, wh_g, lo_g, hi_g, im_g))
        en[3] = t_last
        en[4] = p_last
        en[5] = a_last
        if pc is not None:
            tr.a = en + pc
        s2.last_seen = max(s2.last_seen, t_last)
        # The session stays open: nothing for emit (dirty), but its deadline moves.
        c = conn_list[g]
        due[c] = due_at(book, s2, c)
