"""Power track of a session: power integral, charging/idle pieces, unbridged gaps.

(Named power_track, not periods: billing/periods.py is the tariff engine's.)

Per session we keep only summary state: the first and last power samples, the
*pieces* (contiguous spans of one kind — charging or idle — with energy, min/max
power and max current) and the *gaps* (intervals between consecutive samples
longer than ``gap_s``, not bridged because nobody knows what happened there).
Late samples land in a gap, before the first sample or after the last, and are
integrated against the neighbouring samples, so summary state stays exact.

Charging periods for OCPI (:func:`build_periods`) are the pieces merged, with
the unmeasured head, tail and gaps given to a neighbouring kind.
"""

from __future__ import annotations

__all__ = [
    "Period",
    "PowerTrack",
    "build_periods",
    "interval_stats",
    "pieces_from",
    "pieces_from_many",
]

from array import array
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from typing import Any, TypeAlias

import numpy as np
from numpy.typing import NDArray

#: An interval longer than this many typical sample spacings is refinable by late samples.
SOFT_FACTOR = 2.5
MAX_SOFT = 64

# (t, power_w, current_a) (current NaN when unknown), as array("d"): 88 B, a tuple of
# three float objects 136 B, and a session keeps two for its whole life.
Sample: TypeAlias = "array[float]"
# [kind (1 charging, 0 idle), t0, t1, wh, pmin, pmax, imax], kept as an
# array('d'): every open session holds a few for its whole life, and 7 doubles
# in one array take ~120 B where a list of 7 float objects takes ~280 B.
Piece: TypeAlias = "array[float]"  # (array is not subscriptable at runtime before 3.12)
#: PowerTrack.a: [first t, p, i, last t, p, i, spacing], then the pieces back to back.
HEAD = 7
Span = list[float]  # a piece while build_periods works on it
Gap = list[float]  # [ta, pa, ia, tb, pb, ib]


@dataclass(frozen=True, slots=True)
class Period:
    kind: str  # "charging" | "idle"
    start: float
    end: float
    energy_wh: float
    min_power_w: float | None
    max_power_w: float | None
    max_current_a: float | None

    @property
    def duration_s(self) -> float:
        return self.end - self.start


def pieces_from(
    t: NDArray[np.float64],
    p: NDArray[np.float64],
    cur: NDArray[np.float64],
    *,
    threshold_w: float,
    gap_s: float,
    soft_s: float = float("inf"),
) -> tuple[list[Piece], list[Gap], list[Gap]]:
    """Pieces and gaps of a time-sorted sample run (vectorised; loops only over pieces).

    Each interval is integrated by the trapezoid over its real length. Where
    power crosses ``threshold_w`` inside an interval, the crossing time is
    interpolated and the interval split there, so a period boundary does not
    snap to the sampling grid.
    """
    if t.size < 2:
        return [], [], []
    # (Written for small runs too: the general path calls this per session and
    # region, where numpy's per-call cost outweighs the samples.)
    ta, tb = t[:-1], t[1:]
    dt = tb - ta
    pa, pb = p[:-1], p[1:]
    ia, ib = cur[:-1], cur[1:]
    bridged = (dt <= gap_s) & (dt > 0)
    unbridged = dt > gap_s
    refinable = bridged & (dt > soft_s)
    gaps: list[Gap] = []
    soft: list[Gap] = []
    if unbridged.any() or refinable.any():
        ends = np.column_stack((ta, pa, ia, tb, pb, ib))
        gaps = ends[unbridged].tolist()
        soft = ends[refinable].tolist()
    parts = _split(bridged, ta, tb, pa, pb, ia, ib, threshold_w, None)
    if parts is None:
        return [], gaps, soft
    return [piece for _, piece in _pieces(*parts)], gaps, soft


Run: TypeAlias = "tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64], float]"
Integrated: TypeAlias = "tuple[list[Piece], list[Gap], list[Gap]]"


def pieces_from_many(runs: list[Run], *, threshold_w: float, gap_s: float) -> list[Integrated]:
    """:func:`pieces_from` of many runs ``(t, p, cur, soft_s)`` at once, bit for bit.

    The general path integrates a few samples per session; numpy's per-call
    cost (~25 us a run) dominates there, so the runs of all sessions of a step
    go through one vectorised pass. Intervals never span two runs, a piece
    never spans two runs, and every reduction covers the same elements in the
    same order as a run on its own would, so the results are identical.
    """
    out: list[Integrated] = [([], [], []) for _ in runs]
    use = [i for i, r in enumerate(runs) if r[0].size >= 2]
    if len(use) <= 1:
        for i in use:
            t1, p1, c1, soft1 = runs[i]
            out[i] = pieces_from(t1, p1, c1, threshold_w=threshold_w, gap_s=gap_s, soft_s=soft1)
        return out
    t = np.concatenate([runs[i][0] for i in use])
    p = np.concatenate([runs[i][1] for i in use])
    cur = np.concatenate([runs[i][2] for i in use])
    run = np.repeat(np.arange(len(use)), [runs[i][0].size for i in use])
    soft_s = np.array([runs[i][3] for i in use], np.float64)
    ta, tb = t[:-1], t[1:]
    dt = tb - ta
    pa, pb = p[:-1], p[1:]
    ia, ib = cur[:-1], cur[1:]
    ir = run[:-1]  # the run of each interval; those across two runs are none
    inside = ir == run[1:]
    bridged = inside & (dt <= gap_s) & (dt > 0)
    unbridged = inside & (dt > gap_s)
    refinable = bridged & (dt > soft_s[ir])
    for mask, k in ((unbridged, 1), (refinable, 2)):
        if mask.any():
            ends = np.column_stack((ta, pa, ia, tb, pb, ib))[mask]
            for r, row in zip(ir[mask].tolist(), ends.tolist(), strict=True):
                out[use[r]][k].append(row)
    parts = _split(bridged, ta, tb, pa, pb, ia, ib, threshold_w, ir)
    if parts is not None:
        for r, piece in _pieces(*parts):
            out[use[r]][0].append(piece)
    return out


Columns: TypeAlias = "tuple[NDArray[Any], ...]"


def interval_stats(
    pa: NDArray[np.float64],
    pb: NDArray[np.float64],
    ia: NDArray[np.float64],
    ib: NDArray[np.float64],
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
    """Min power, max power and max current of intervals whose two end samples
    are of one kind (both in the period the interval belongs to).

    The one definition of a period's statistics: they are the min/max of the
    samples inside the period, so an interval contributes its two samples. The
    general path (:func:`_split`) and the live fast path (fast_tail) both
    reduce these, so a session resumed from a checkpoint, whose next data goes
    through either, gives the figures of one that ran through. A current
    nobody measured is NaN and loses to a measured one (``np.fmax``).
    """
    return np.minimum(pa, pb), np.maximum(pa, pb), np.fmax(ia, ib)


def _split(
    bridged: NDArray[np.bool_],
    ta: NDArray[np.float64],
    tb: NDArray[np.float64],
    pa: NDArray[np.float64],
    pb: NDArray[np.float64],
    ia: NDArray[np.float64],
    ib: NDArray[np.float64],
    threshold_w: float,
    ir: NDArray[np.int64] | None,
) -> Columns | None:
    """The bridged intervals as sub-intervals of one kind each (split where power
    crosses the threshold), ordered by (run, start): columns (start, end, above
    threshold, power at start, power at end, max current, run, min and max
    sampled power). ``ir``: each interval's run, None for a single run. None
    when there is no sub-interval.

    A crossing is a boundary, not a sample: the threshold power there enters
    the energy of both halves (the trapezoid needs it) but neither half's
    statistics; each half's min/max power and max current are those of its own
    sample only (see :func:`sample_stats`)."""
    dt = tb - ta
    run = np.zeros(ta.shape, np.int64) if ir is None else ir
    ka = pa > threshold_w
    kb = pb > threshold_w
    lo, hi, imax = interval_stats(pa, pb, ia, ib)
    cross = bridged & (ka != kb)
    if not cross.any():
        # Whole intervals only, already in (run, time) order.
        m = bridged
        cols: Columns = (ta[m], tb[m], ka[m], pa[m], pb[m], imax[m], run[m], lo[m], hi[m])
    else:
        same = bridged & (ka == kb)
        with np.errstate(divide="ignore", invalid="ignore"):
            frac = np.where(cross, (threshold_w - pa) / (pb - pa), 0.0)
        tc = ta + frac * dt
        thr = np.full_like(pa, threshold_w)
        # Whole intervals without a crossing, and both halves of those with one.
        # Each half holds one sample: its statistics are that sample's alone.
        parts = [
            (same, (ta, tb, ka, pa, pb, imax, run, lo, hi)),
            (cross, (ta, tc, ka, pa, thr, ia, run, pa, pa)),
            (cross, (tc, tb, kb, thr, pb, ib, run, pb, pb)),
        ]
        cols = tuple(np.concatenate([c[j][m] for m, c in parts]) for j in range(9))
        # Stable: within a run, whole intervals, then first halves, then second
        # halves, each in time order.
        order = np.argsort(cols[0], kind="stable") if ir is None else np.lexsort((cols[0], cols[6]))
        cols = tuple(c[order] for c in cols)
    return cols if cols[0].size else None


def _pieces(
    s0: NDArray[np.float64],
    s1: NDArray[np.float64],
    sk: NDArray[np.bool_],
    x0: NDArray[np.float64],
    x1: NDArray[np.float64],
    si: NDArray[np.float64],
    sr: NDArray[np.int64],
    lo: NDArray[np.float64],
    hi: NDArray[np.float64],
) -> Iterator[tuple[int, Piece]]:
    """(run, piece) for the sub-intervals of :func:`_split`, in order."""
    wh = (x0 + x1) * 0.5 * (s1 - s0) / 3600.0
    # A new piece starts where the kind or the run changes, or the sub-intervals
    # are not contiguous.
    brk = (sk[1:] != sk[:-1]) | (s0[1:] != s1[:-1]) | (sr[1:] != sr[:-1])
    idx = np.concatenate(([0], np.flatnonzero(brk) + 1))
    end_idx = np.concatenate((idx[1:], [s0.size])) - 1
    for r, k, a0, b1, w, a, b, c in zip(
        sr[idx].tolist(),
        sk[idx].tolist(),
        s0[idx].tolist(),
        s1[end_idx].tolist(),
        np.add.reduceat(wh, idx).tolist(),
        np.minimum.reduceat(lo, idx).tolist(),
        np.maximum.reduceat(hi, idx).tolist(),
        np.fmax.reduceat(si, idx).tolist(),
        strict=True,
    ):
        yield r, array("d", (1.0 if k else 0.0, a0, b1, w, a, b, c))


def _median(xs: list[float]) -> float:
    """``np.median`` of a few floats, bit for bit (the mean of the middle two is
    (a + b) / 2 there too), without its ~20 us of overhead."""
    v = sorted(xs)
    n = len(v)
    return v[n // 2] if n % 2 else (v[n // 2 - 1] + v[n // 2]) / 2.0


class PowerTrack:
    """Summary state of one session's power samples (see the module docstring).

    Stored compactly, since every open session keeps one for its whole life:
    one ``array('d')`` holds the first and last samples, the spacing and then
    the pieces, 7 doubles each (~290 B with three pieces, where two sample
    arrays, a float and a list of three piece arrays took ~650), and the gap
    lists are created only when there is one (an empty list is 56 B, and most
    tracks have none).
    """

    __slots__ = ("_dts", "_gaps", "_soft", "a")

    def __init__(
        self,
        first: Sample | None = None,
        last: Sample | None = None,
        pieces: list[Piece] | None = None,
        gaps: list[Gap] | None = None,
        soft: list[Gap] | None = None,
        spacing: float = 0.0,
        dts: list[float] | None = None,
    ) -> None:
        # [first t, p, i, last t, p, i, spacing, *pieces]; None while all is unknown.
        # A NaN time stands for "no such sample" (sample times are finite).
        self.a: array[float] | None = None
        self._gaps: list[Gap] | None = gaps or None
        self._soft: list[Gap] | None = soft or None
        self._dts: list[float] | None = dts or None
        if pieces:
            self.pieces = pieces
        if first is not None:
            self.first = first
        if last is not None:
            self.last = last
        if spacing:
            self.spacing = spacing

    def _head(self) -> array[float]:
        if self.a is None:
            nan = float("nan")
            self.a = array("d", (nan, nan, nan, nan, nan, nan, 0.0))
        return self.a

    @property
    def first(self) -> Sample | None:
        a = self.a
        return None if a is None or a[0] != a[0] else a[0:3]

    @first.setter
    def first(self, v: Sample) -> None:
        self._head()[0:3] = array("d", v)

    @property
    def last(self) -> Sample | None:
        a = self.a
        return None if a is None or a[3] != a[3] else a[3:6]

    @last.setter
    def last(self, v: Sample) -> None:
        self._head()[3:6] = array("d", v)

    @property
    def spacing(self) -> float:
        """Median sample spacing seen first (0: not known yet)."""
        return 0.0 if self.a is None else self.a[6]

    @spacing.setter
    def spacing(self, v: float) -> None:
        self._head()[6] = v

    @property
    def pieces(self) -> list[Piece]:
        """The pieces (copies: change them through the track's methods)."""
        a = self.a
        return [] if a is None else [a[k : k + 7] for k in range(HEAD, len(a), 7)]

    @pieces.setter
    def pieces(self, v: list[Piece]) -> None:
        # A fresh array of the exact size (appending over-allocates, and the state lives long).
        flat = self._head()[:HEAD]
        for pc in v:
            flat += pc
        self.a = array("d", flat)

    def shift(self, dt: float) -> None:
        """Move every time by ``dt`` s (a session re-based to its charger's clock
        offset, clock_rebase.py); spacings and energies stay."""
        a = self.a
        if a is not None:
            a[0] += dt  # (NaN, no such sample, stays NaN)
            a[3] += dt
            for k in range(HEAD, len(a), 7):
                a[k + 1] += dt
                a[k + 2] += dt
        for g in (*self.gaps, *self.soft):
            g[0] += dt
            g[3] += dt

    @property
    def gaps(self) -> list[Gap]:
        return self._gaps if self._gaps is not None else []

    @gaps.setter
    def gaps(self, v: list[Gap]) -> None:
        self._gaps = v or None

    @property
    def soft(self) -> list[Gap]:
        """Bridged intervals clearly longer than the usual sample spacing (a short
        offline spell): late samples that land in one replace its trapezoid."""
        return self._soft if self._soft is not None else []

    @soft.setter
    def soft(self, v: list[Gap]) -> None:
        self._soft = v or None

    @property
    def dts(self) -> list[float]:
        """First intervals, until the spacing is known."""
        return self._dts if self._dts is not None else []

    @dts.setter
    def dts(self, v: list[float]) -> None:
        self._dts = v or None

    @property
    def integral_wh(self) -> float:
        a = self.a
        return 0.0 if a is None else float(sum(a[HEAD + 3 :: 7]))

    def merge(
        self,
        t: NDArray[np.float64],
        p: NDArray[np.float64],
        cur: NDArray[np.float64],
        *,
        threshold_w: float,
        gap_s: float,
        synthetic: NDArray[np.bool_] | None = None,
    ) -> tuple[int, int]:
        """Merge time-sorted samples; return (samples used out of order, samples ignored).

        Samples at or inside already-integrated spans are ignored: a charger that
        re-sends queued MeterValues after reconnecting must not be billed twice.
        ``synthetic`` marks points the engine made up (status anchors): they are
        merged like samples but never counted as out of order, since no meter
        sent them late.
        """
        steps = self.merge_steps(
            t, p, cur, threshold_w=threshold_w, gap_s=gap_s, synthetic=synthetic
        )
        try:
            runs = next(steps)
            steps.send(pieces_from_many(runs, threshold_w=threshold_w, gap_s=gap_s))
        except StopIteration as done:
            result: tuple[int, int] = done.value
            return result
        raise AssertionError("merge_steps yields once")

    def merge_steps(
        self,
        t: NDArray[np.float64],
        p: NDArray[np.float64],
        cur: NDArray[np.float64],
        *,
        threshold_w: float,
        gap_s: float,
        synthetic: NDArray[np.bool_] | None = None,
    ) -> Generator[list[Run], list[Integrated], tuple[int, int]]:
        """:meth:`merge` in two halves, so that many tracks' runs are integrated at
        once (:func:`pieces_from_many`): yields the runs to integrate (at most once),
        takes their results, returns what :meth:`merge` returns."""
        if t.size == 0:
            return 0, 0
        if not self.spacing:
            # The first few intervals (across batches: live data often comes one
            # sample per batch) give the charger's sample spacing.
            prev = [self.last[0]] if self.last is not None else []
            d = np.diff(np.concatenate((prev, t)))
            self.dts += d[d > 0][: 5 - len(self.dts)].tolist()
            if len(self.dts) >= 3:
                self.spacing = _median(self.dts)
                self.dts = []  # read only until the spacing is known
        # Until the spacing is known (fewer than 3 samples so far) every interval is refinable.
        soft_s = SOFT_FACTOR * self.spacing if self.spacing else 0.0
        if self.first is None or self.last is None:
            keep = np.concatenate(([True], np.diff(t) > 0))
            t, p, cur = t[keep], p[keep], cur[keep]
            self.first = array("d", (float(t[0]), float(p[0]), float(cur[0])))
            self.last = array("d", (float(t[-1]), float(p[-1]), float(cur[-1])))
            ((pcs, gps, sfs),) = yield [(t, p, cur, soft_s)]
            self.pieces, self.gaps, self.soft = pcs, gps, sfs
            return 0, int((~keep).sum())
        f, la = self.first, self.last
        if t[0] > la[0]:
            # Live data: everything after the last sample; just extend the tail.
            tt = np.concatenate(([la[0]], t))
            keep = np.concatenate(([True], np.diff(tt) > 0))
            tt = tt[keep]
            pp = np.concatenate(([la[1]], p))[keep]
            cc = np.concatenate(([la[2]], cur))[keep]
            self.last = array("d", (float(tt[-1]), float(pp[-1]), float(cc[-1])))
            ((pcs, gps, sfs),) = yield [(tt, pp, cc, soft_s)]
            self.gaps += gps
            if sfs:
                self.soft += sfs
                del self.soft[:-MAX_SOFT]
            self._append_pieces(pcs)
            return 0, int((~keep).sum())
        holes = [(g, False) for g in self.gaps] + [(g, True) for g in self.soft]
        n_holes = len(holes)
        # Region of each sample: -1 head, 0..H-1 inside hole h, H tail, -2 ignored.
        region = np.full(t.size, -2, np.int64)
        region[t < f[0]] = -1
        region[t > la[0]] = n_holes
        for h, (gap, _soft) in enumerate(holes):
            region[(t > gap[0]) & (t < gap[3])] = h
        used = region[region != -2]
        ignored = t.size - used.size
        early = (region >= -1) & (region < n_holes)  # head and holes
        if synthetic is not None:
            early &= ~synthetic
        late = int(np.count_nonzero(early))
        filled: list[int] = []
        runs: list[Run] = []
        # (A set, not np.unique, and slices, not np.diff / np.append: a few samples
        # per session here, where numpy's per-call cost dominates.)
        for r in sorted(set(used.tolist())):
            m = region == r
            tt, pp, cc = t[m], p[m], cur[m]
            keep = np.concatenate(([True], tt[1:] > tt[:-1]))
            tt, pp, cc = tt[keep], pp[keep], cc[keep]
            if r == -1:
                tt = np.concatenate((tt, [f[0]]))
                pp = np.concatenate((pp, [f[1]]))
                cc = np.concatenate((cc, [f[2]]))
                self.first = array("d", (float(tt[0]), float(pp[0]), float(cc[0])))
            elif r == n_holes:
                tt = np.concatenate(([la[0]], tt))
                pp = np.concatenate(([la[1]], pp))
                cc = np.concatenate(([la[2]], cc))
                self.last = array("d", (float(tt[-1]), float(pp[-1]), float(cc[-1])))
            else:
                gap, is_soft = holes[r]
                tt = np.concatenate(([gap[0]], tt, [gap[3]]))
                pp = np.concatenate(([gap[1]], pp, [gap[4]]))
                cc = np.concatenate(([gap[2]], cc, [gap[5]]))
                filled.append(r)
                if is_soft:
                    self._unbridge(gap, threshold_w)
            runs.append((tt, pp, cc, soft_s))
        new_pieces: list[Piece] = []
        new_gaps: list[Gap] = []
        new_soft: list[Gap] = []
        for pcs, gps, sfs in (yield runs) if runs else []:
            new_pieces.extend(pcs)
            new_gaps.extend(gps)
            new_soft.extend(sfs)
        self.gaps = [g for i, (g, soft) in enumerate(holes) if not soft and i not in filled]
        self.gaps += new_gaps
        self.gaps.sort(key=lambda g: g[0])
        self.soft = [g for i, (g, soft) in enumerate(holes) if soft and i not in filled]
        self.soft += new_soft
        self.soft.sort(key=lambda g: g[0])
        # Bounded state: the oldest refinable intervals stay as bridged.
        del self.soft[:-MAX_SOFT]
        self._add_pieces(new_pieces)
        return late, ignored

    def _unbridge(self, g: Gap, threshold_w: float) -> None:
        """Take a bridged interval's trapezoid back out of the pieces (late samples refine it).

        The piece that held it is cut around the interval; its remaining energy
        is shared by the two sides in proportion to their length (the pieces do
        not remember where inside them energy was delivered).
        """
        nan = float("nan")
        old, _, _ = pieces_from(
            np.array([g[0], g[3]]),
            np.array([g[1], g[4]]),
            np.array([nan, nan]),
            threshold_w=threshold_w,
            gap_s=float("inf"),
        )
        pieces = self.pieces
        for op in old:
            for k, pc in enumerate(pieces):
                if pc[0] == op[0] and pc[1] <= op[1] + 1e-6 and op[2] <= pc[2] + 1e-6:
                    left, right = op[1] - pc[1], pc[2] - op[2]
                    rest = pc[3] - op[3]
                    parts = []
                    if left > 0:
                        wh = rest * left / (left + right)
                        parts.append(array("d", (pc[0], pc[1], op[1], wh, *pc[4:])))
                    if right > 0:
                        wh = rest * right / (left + right)
                        parts.append(array("d", (pc[0], op[2], pc[2], wh, *pc[4:])))
                    pieces[k : k + 1] = parts
                    break
        self.pieces = pieces

    def _append_pieces(self, new: list[Piece]) -> None:
        """Pieces that all start at or after the last one ends (the live case)."""
        for pc in new:
            f = self._head()  # the last piece is f[-7:]
            if len(f) > HEAD and pc[0] == f[-7] and pc[1] == f[-5]:
                f[-5] = pc[2]
                f[-4] += pc[3]
                f[-3] = min(f[-3], pc[4])
                f[-2] = max(f[-2], pc[5])
                f[-1] = float(np.fmax(f[-1], pc[6]))
            else:
                self.a = f + pc

    def _add_pieces(self, new: list[Piece]) -> None:
        if not new:
            return
        allp = self.pieces + new
        allp.sort(key=lambda pc: pc[1])
        merged: list[Piece] = [allp[0]]
        for pc in allp[1:]:
            cur = merged[-1]
            # Contiguous pieces of one kind are one piece: keeps state small.
            if pc[0] == cur[0] and pc[1] == cur[2]:
                cur[2] = pc[2]
                cur[3] += pc[3]
                cur[4] = min(cur[4], pc[4])
                cur[5] = max(cur[5], pc[5])
                cur[6] = float(np.fmax(cur[6], pc[6]))
            else:
                merged.append(pc)
        self.pieces = merged

    def integral_between(self, a: float, b: float) -> float:
        """Power integral over [a, b] (Wh), pieces clipped pro rata."""
        total = 0.0
        f = self.a
        if f is None:
            return total
        for k in range(HEAD, len(f), 7):
            t0, t1 = f[k + 1], f[k + 2]
            lo, hi = max(t0, a), min(t1, b)
            if hi > lo and t1 > t0:
                total += f[k + 3] * (hi - lo) / (t1 - t0)
        return total

    def last_active(self, threshold_w: float) -> float | None:
        """End of the last charging piece (or the last sample if it is charging)."""
        f = self.a
        if f is None:
            return None
        if f[3] == f[3] and f[4] > threshold_w:
            return f[3]
        for k in range(len(f) - 7, HEAD - 1, -7):
            if f[k] == 1.0:
                return f[k + 2]
        return None


def _nan_none(x: float) -> float | None:
    return None if np.isnan(x) else x


def build_periods(
    track: PowerTrack,
    start: float,
    stop: float,
    energy_wh: float,
    *,
    threshold_w: float,
) -> list[Period]:
    """Charging and idle periods covering [start, stop], whose energies sum to ``energy_wh``.

    Measured pieces are clipped to the session. The spans without samples (head,
    tail, unbridged gaps) take the kind of the sample next to them: a car that
    was charging at the last sample before a gap is assumed still charging.
    Unless nothing measured holds the energy: then it flowed in those spans, and
    where it is more than idle power (``threshold_w``) could deliver over them
    they are charging, whatever their edges say (see _unmeasured_charging).
    Energy is spread over the measured charging energy in proportion (the
    register is the truth; the power integral only says *when*); with no
    measured energy at all it is spread over the charging time, else the session.
    """
    if stop <= start:
        return [
            Period(
                "charging" if energy_wh > 0 else "idle", start, stop, energy_wh, None, None, None
            )
        ]
    spans: list[Span] = []
    nan = float("nan")
    for pc in track.pieces:
        a, b = max(pc[1], start), min(pc[2], stop)
        if b <= a:
            continue
        frac = (b - a) / (pc[2] - pc[1]) if pc[2] > pc[1] else 1.0
        spans.append([pc[0], a, b, pc[3] * frac, pc[4], pc[5], pc[6]])
    n_measured = len(spans)  # the rest, appended below, are unmeasured
    if track.first is not None and track.last is not None:
        fk = 1.0 if track.first[1] > threshold_w else 0.0
        lk = 1.0 if track.last[1] > threshold_w else 0.0
        if track.first[0] > start:
            spans.append([fk, start, min(track.first[0], stop), 0.0, nan, nan, nan])
        if track.last[0] < stop:
            spans.append([lk, max(track.last[0], start), stop, 0.0, nan, nan, nan])
        for g in track.gaps:
            a, b = max(g[0], start), min(g[3], stop)
            if b > a:
                spans.append([1.0 if g[1] > threshold_w else 0.0, a, b, 0.0, nan, nan, nan])
    else:
        spans.append([1.0 if energy_wh > 0 else 0.0, start, stop, 0.0, nan, nan, nan])
    _unmeasured_charging(spans, len(spans) - n_measured, energy_wh, threshold_w)
    spans.sort(key=lambda s: s[1])
    merged: list[Span] = []
    for s in spans:
        if merged and merged[-1][0] == s[0] and s[1] <= merged[-1][2] + 1e-6:
            m = merged[-1]
            m[2] = max(m[2], s[2])
            m[3] += s[3]
            m[4] = float(np.fmin(m[4], s[4]))
            m[5] = float(np.fmax(m[5], s[5]))
            m[6] = float(np.fmax(m[6], s[6]))
        else:
            merged.append(list(s))
    measured = sum(m[3] for m in merged)
    if measured > 0:
        scale = energy_wh / measured
        wh = [m[3] * scale for m in merged]
    else:
        charging = [m for m in merged if m[0] == 1.0]
        pool = charging or merged
        ids = {id(m) for m in pool}
        total = sum(m[2] - m[1] for m in pool) or 1.0
        wh = [energy_wh * (m[2] - m[1]) / total if id(m) in ids else 0.0 for m in merged]
    return [
        Period(
            "charging" if m[0] == 1.0 else "idle",
            m[1],
            m[2],
            w,
            _nan_none(m[4]),
            _nan_none(m[5]),
            _nan_none(m[6]),
        )
        for m, w in zip(merged, wh, strict=True)
    ]


def _unmeasured_charging(
    spans: list[Span], n_unmeasured: int, energy_wh: float, threshold_w: float
) -> None:
    """Make the unmeasured spans (the last ``n_unmeasured``) charging when they
    must hold the session's energy: no measured piece charged or delivered any,
    yet the register grew by more than idle power could over their time.

    Their kind comes from the samples at their edges, and a register-only
    charger that repeats its Begin and End readings a moment apart gives 0 W
    edges to a gap of hours (the real KEBA P30 2.0.1 transaction: 19.7 kWh over
    6.5 h). Idle, that gap was billed as parking time although the energy can
    only have flowed in it; when is unknown, and unknown time is not billed as
    parking. A register creeping at idle power stays idle.
    """
    dark = spans[len(spans) - n_unmeasured :] if n_unmeasured else []
    if not dark or energy_wh <= 0 or any(s[0] == 1.0 or s[3] > 0 for s in spans):
        return
    seconds = sum(s[2] - s[1] for s in dark)
    if seconds > 0 and energy_wh * 3600.0 / seconds > threshold_w:
        for s in dark:
            s[0] = 1.0
