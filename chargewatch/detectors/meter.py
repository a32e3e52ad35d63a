"""Energy-meter faults: meter_stuck, meter_regression, meter_mismatch, meter_unit_error.

meter_stuck
    Catches: the import register does not move while power above
    ``min_power_w`` flows, for ``min_duration_s``. Inputs: energy_wh, power_w.
    Clears when the register advances. Ignores: rows without power (idle,
    SuspendedEV), registers coarser than ``min_power_w * min_duration_s``.
meter_regression
    Catches: the register goes down by more than ``tolerance_wh`` (reset, meter
    swap, wrap, corrupted value). Active for ``hold_s`` after the last drop.
    Ignores: NaN and negative registers (counted by the sequencer).
meter_mismatch
    Catches: register delta differs from the integral of reported power by more
    than ``tolerance`` over a ``window_s`` window (tumbling, aligned to the
    epoch so batch cuts do not matter). Ignores: windows with less than
    ``min_energy_wh`` integrated, intervals longer than ``max_gap_s`` (gaps),
    windows with a regression, windows where the register stood still under
    load for more than 20 s (meter_stuck's), windows with less than half their time in
    judged intervals, intervals with a power step (their integral is
    unknowable from samples), ratios beyond 20x either way (those are
    meter_unit_error or meter_stuck).
meter_unit_error
    Catches: register in kWh labelled Wh, or power in kW labelled W: reported
    power vs sum of V*I off by ~1000x for ``min_duration_s``, or the register's
    step per interval vs V*I*dt (or power*dt when V/I are not reported) off by
    ~1000x for ``min_duration_s``. Ignores: rows with total current below
    ``min_current_a``, intervals expecting under ``min_expected_wh`` or longer
    than ``max_gap_s``, zero register steps (resolution), drops.
"""

from __future__ import annotations

__all__ = ["MeterMismatch", "MeterRegression", "MeterStuck", "MeterUnitError"]

import numpy as np
from numpy.typing import NDArray

from chargewatch.detectors.base import Detector
from chargewatch.detectors.episodes import Episodes
from chargewatch.detectors.frame import Events, Frame, grown, prev_in_segment, rany, rnansum

F64 = NDArray[np.float64]
I64 = NDArray[np.int64]
B = NDArray[np.bool_]


def reference_power(f: Frame) -> F64:
    """Sum of V*I over the phases where both are reported (DC: line 1); NaN if none."""
    out: F64 = f.derived("v_times_i", _reference_power)
    return out


def _reference_power(f: Frame) -> F64:
    v = f.values[:, 5:8]
    i = f.values[:, 2:5]
    vi = v * i
    known = np.isfinite(vi)
    out = rnansum(vi)
    out[~rany(known)] = np.nan
    return out


class _Carry:
    """Last known value of a quantity per connector (for deltas across batches)."""

    def __init__(self) -> None:
        self.v = np.full(0, np.nan)
        self.t = np.full(0, np.nan)

    def grow(self, n: int) -> None:
        self.v = grown(self.v, n, np.nan)
        self.t = grown(self.t, n, np.nan)

    def prev(self, conn: I64, first: B, x: F64, ts: F64) -> tuple[F64, F64]:
        px = prev_in_segment(x, first, self.v[conn])
        pt = prev_in_segment(ts, first, self.t[conn])
        return px, pt

    def store(self, conn: I64, last: B, x: F64, ts: F64) -> None:
        self.v[conn[last]] = x[last]
        self.t[conn[last]] = ts[last]


def _known(f: Frame, *cols: F64) -> Frame:
    ok = np.ones(len(f), np.bool_)
    for c in cols:
        ok &= np.isfinite(c)
    return f if ok.all() else f.rows(ok)


class MeterStuck(Detector):
    fault = "meter_stuck"

    def _grow(self, n: int) -> None:
        if not hasattr(self, "_e"):
            self._e = _Carry()
        self._e.grow(n)

    def _update(self, frame: Frame, events: Events, now: float) -> None:
        f = _known(frame, frame.col("energy_wh"), frame.col("power_w"))
        e, p = f.col("energy_wh"), f.col("power_w")
        pe, _ = self._e.prev(f.conn, f.first, e, f.ts)
        minp = self.p["min_power_w"][f.conn]
        same = e == pe
        stuck = same & (p > minp)
        moved = e > pe
        self.episodes.step(
            f.conn,
            f.ts,
            stuck,
            moved,
            self.p["min_duration_s"][f.conn],
            0.0,
            {"energy_wh": e, "power_w": p},
        )
        self._e.store(f.conn, f.last, e, f.ts)
        # Score: 1.0 while the register is frozen under load, 0 when it moves.
        score = np.where(stuck, 1.0, np.where(moved | (p <= minp), 0.0, np.nan))
        self._set_score(f.conn, score, f.last)


class MeterRegression(Detector):
    fault = "meter_regression"

    def _grow(self, n: int) -> None:
        if not hasattr(self, "_e"):
            self._e = _Carry()
        self._e.grow(n)

    def _update(self, frame: Frame, events: Events, now: float) -> None:
        f = _known(frame, frame.col("energy_wh"))
        e = f.col("energy_wh")
        pe, _ = self._e.prev(f.conn, f.first, e, f.ts)
        drop = pe - e
        tol = self.p["tolerance_wh"][f.conn]
        # A ~1000x step is a unit change (kWh read as Wh), reported as meter_unit_error.
        bad = (drop > tol) & ~_thousandfold(pe / np.where(e > 0, e, np.nan))
        self.episodes.step(
            f.conn,
            f.ts,
            bad,
            ~bad,
            0.0,
            self.p["hold_s"][f.conn],
            {"energy_wh": e, "previous_wh": pe, "drop_wh": drop},
        )
        self._e.store(f.conn, f.last, e, f.ts)
        score = np.where(np.isnan(drop), np.nan, np.maximum(drop, 0.0) / np.maximum(tol, 1.0))
        self._set_score(f.conn, score, f.last)


class _Windows:
    """Tumbling per-connector windows of register delta and integral of power.

    Windows are aligned to the epoch (``floor(ts / window_s)``), so where a
    stream is cut into batches does not move them. A window is complete once a
    row of a later window arrives; its sums are returned then.
    """

    # Columns of the sums.
    DE, IP, REG, FROZEN, SUSPECT, COUNTED = range(6)

    def __init__(self) -> None:
        self.w = np.full(0, np.nan)  # current (open) window id per connector
        self.sums = np.zeros((0, 6))
        self.e, self.p = _Carry(), _Carry()

    def grow(self, n: int) -> None:
        self.w = grown(self.w, n, np.nan)
        self.sums = grown(self.sums, n, 0.0)
        self.e.grow(n)
        self.p.grow(n)

    def step(self, f: Frame, window_s: F64, max_gap_s: F64) -> tuple[I64, F64, NDArray[np.float64]]:
        """Returns completed windows: connector, end time, sums (k, 6).

        ``window_s`` and ``max_gap_s`` are per connector (indexed by id).
        """
        e, p = f.col("energy_wh"), f.col("power_w")
        pe, pt = self.e.prev(f.conn, f.first, e, f.ts)
        pp, ppt = self.p.prev(f.conn, f.first, p, f.ts)
        # Carry the last *known* value of each quantity, not the last row's NaN.
        for carry, x in ((self.e, e), (self.p, p)):
            ok = np.isfinite(x)
            if ok.all():
                carry.store(f.conn, f.last, x, f.ts)
            elif ok.any():
                idx = np.flatnonzero(ok)
                c = f.conn[idx]
                lastk = np.ones(idx.shape[0], np.bool_)
                lastk[:-1] = c[1:] != c[:-1]
                carry.v[c[lastk]] = x[idx[lastk]]
                carry.t[c[lastk]] = f.ts[idx[lastk]]
        # Prev values above are from the previous *row*; an interval counts for
        # the register only when its power integral counts too (both ends known,
        # the same interval), so a sample with unknown power cannot skew a ratio.
        dt = f.ts - pt
        ok_e = (dt <= max_gap_s[f.conn]) & (f.ts - ppt == dt)
        ok_e &= np.isfinite(e) & np.isfinite(pe) & np.isfinite(p) & np.isfinite(pp)
        # A step in power between two samples has an unknowable integral (the
        # register knows, the samples do not): leave such intervals out of both.
        big = np.fmax(p, pp)
        ok_e &= ~((np.abs(p - pp) > 0.3 * big) & (big > 1000.0))
        de = np.where(ok_e, e - pe, 0.0)
        reg = de < 0
        de[reg] = 0.0
        ip = np.where(ok_e, (p + pp) * (0.5 / 3600.0) * dt, 0.0)
        n = f.conn.shape[0]
        rows = np.empty((n, 6))
        rows[:, self.DE] = de
        rows[:, self.IP] = ip
        rows[:, self.REG] = reg
        # Seconds the register stood still under load: such windows belong to
        # meter_stuck, and comparing them would report the same fault twice.
        rows[:, self.FROZEN] = np.where(ok_e & (de == 0) & (np.fmin(p, pp) > 500.0), dt, 0.0)
        # Intervals no calibration error explains: a catch-up jump after a freeze
        # or lost samples, or power off by ~1000x against V*I (a unit error).
        r = reference_power(f)
        rows[:, self.SUSPECT] = (de > 5.0 * np.abs(ip) + 50.0) | _thousandfold(
            p / np.where(r > 0, r, np.nan)
        )
        rows[:, self.COUNTED] = np.where(ok_e, dt, 0.0)
        wid = np.floor(f.ts / window_s[f.conn])
        n = f.conn.shape[0]
        if n == 0:
            return np.empty(0, np.int64), np.empty(0), np.empty((0, 6))
        # Rows are sorted by (conn, ts), so each (conn, window) group is contiguous.
        start = f.first.copy()
        start[1:] |= wid[1:] != wid[:-1]
        gi = np.flatnonzero(start)
        sums = np.add.reduceat(rows, gi, axis=0)
        gconn, gw = f.conn[gi], wid[gi]
        gfirst = f.first[gi]
        glast = np.ones(gi.shape[0], np.bool_)
        glast[:-1] = gconn[1:] != gconn[:-1]
        # Each connector's carried open window either continues in its first
        # group, or was complete already (a later window has begun).
        fc = gconn[gfirst]
        cw = self.w[fc]
        carried = self.sums[fc]
        same = cw == gw[gfirst]
        sums[np.flatnonzero(gfirst)[same]] += carried[same]
        closed = np.isfinite(cw) & ~same
        self.w[gconn[glast]] = gw[glast]
        self.sums[gconn[glast]] = sums[glast]
        done = ~glast
        dc = np.concatenate([fc[closed], gconn[done]])
        dw = np.concatenate([cw[closed], gw[done]])
        dsum = np.concatenate([carried[closed], sums[done]])
        order = np.argsort(dc, kind="stable")  # per connector, the carried window first
        dc, dw, dsum = dc[order], dw[order], dsum[order]
        return dc, (dw + 1.0) * window_s[dc], dsum


class MeterMismatch(Detector):
    fault = "meter_mismatch"

    def _grow(self, n: int) -> None:
        if not hasattr(self, "_w"):
            self._w = _Windows()
        self._w.grow(n)

    def _update(self, frame: Frame, events: Events, now: float) -> None:
        f = _known(frame, frame.col("energy_wh"))
        conn, t_end, s = self._w.step(f, self.p["window_s"], self.p["max_gap_s"])
        if conn.size == 0:
            return
        w = _Windows
        de, ip = s[:, w.DE], s[:, w.IP]
        judged = (
            (ip >= self.p["min_energy_wh"][conn])
            & (s[:, w.REG] == 0)
            & (s[:, w.FROZEN] <= 20.0)
            & (s[:, w.SUSPECT] == 0)
            & (s[:, w.COUNTED] >= 0.5 * self.p["window_s"][conn])  # half the window judged
        )
        ratio = np.where(judged, de / np.where(judged, ip, 1.0), np.nan)
        dev = np.abs(ratio - 1.0)
        tol = self.p["tolerance"][conn]
        plausible = (ratio > 0.05) & (ratio < 20.0)  # beyond: unit error or stuck
        bad = judged & plausible & (dev > tol)
        good = judged & ((dev <= tol) | ~plausible)
        k = judged
        self.episodes.step(
            conn[k],
            t_end[k],
            bad[k],
            good[k],
            0.0,
            0.0,
            {"register_delta_wh": de[k], "power_integral_wh": ip[k], "ratio": ratio[k]},
        )
        # Score: the last judged window of each connector (unjudged windows keep it).
        jc = conn[judged]
        jscore = np.where(plausible, dev / tol, 0.0)[judged]
        last = np.ones(jc.shape[0], np.bool_)
        last[:-1] = jc[1:] != jc[:-1]
        self.score[jc[last]] = jscore[last]


def _thousandfold(ratio: F64) -> B:
    """Ratio near 1/1000 or 1000 (a kilo- prefix lost or added)."""
    a = np.abs(np.log10(np.where(ratio > 0, ratio, np.nan)))
    return np.asarray((a > 2.0) & (a < 4.0))


class MeterUnitError(Detector):
    fault = "meter_unit_error"

    def _episodes(self) -> Episodes:
        self._energy = Episodes(self.fault, self.findings)
        return Episodes(self.fault, self.findings)

    @property
    def active(self) -> NDArray[np.bool_]:
        return (self.episodes.active | self._energy.active)[: self.n]

    def _grow(self, n: int) -> None:
        if not hasattr(self, "_e"):
            self._e = _Carry()
        self._e.grow(n)
        self._energy.ensure(n)

    def _update(self, frame: Frame, events: Events, now: float) -> None:
        # Power path: reported power vs V*I, per sample.
        p = frame.col("power_w")
        pref = reference_power(frame)
        itot = frame.derived("i_total", lambda f: rnansum(f.values[:, 2:5]))
        judged = np.isfinite(p) & np.isfinite(pref) & (itot >= self.p["min_current_a"][frame.conn])
        f = frame.rows(judged) if not judged.all() else frame
        ratio = f.col("power_w") / reference_power(f)
        bad = _thousandfold(ratio)
        self.episodes.step(
            f.conn,
            f.ts,
            bad,
            ~bad,
            self.p["min_duration_s"][f.conn],
            0.0,
            {"power_w": f.col("power_w"), "v_times_i_w": reference_power(f), "ratio": ratio},
        )
        score = np.abs(np.log10(np.maximum(ratio, 1e-12))) / 3.0
        self._set_score(f.conn, score, f.last)
        # Energy path, per interval: register delta vs V*I (or power) times dt.
        g = _known(frame, frame.col("energy_wh"))
        e = g.col("energy_wh")
        pe, pt = self._e.prev(g.conn, g.first, e, g.ts)
        self._e.store(g.conn, g.last, e, g.ts)
        ref = reference_power(g)
        ref = np.where(np.isfinite(ref), ref, g.col("power_w"))
        dt = g.ts - pt
        expected = ref * dt / 3600.0
        de = e - pe
        # Zero steps say nothing (register resolution); drops are meter_regression's.
        ok = (expected >= self.p["min_expected_wh"][g.conn]) & (dt <= self.p["max_gap_s"][g.conn])
        # The step where the unit changes is itself evidence: the level jumps ~1000x.
        switch = _thousandfold(pe / np.where(e > 0, e, np.nan))
        ok = (ok & (de > 0)) | switch
        er = np.where(switch, e / pe, de / np.where(ok, expected, 1.0))
        ebad = _thousandfold(er)
        self._energy.step(
            g.conn[ok],
            g.ts[ok],
            ebad[ok],
            ~ebad[ok],
            self.p["min_duration_s"][g.conn][ok],
            0.0,
            {"register_delta_wh": de[ok], "expected_wh": expected[ok], "ratio": er[ok]},
        )
