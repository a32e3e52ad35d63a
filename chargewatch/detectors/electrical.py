"""Electrical faults: over_temperature, over_current, voltage_out_of_band, phase_loss,
phase_imbalance, power_oscillation. All on meter ``ts``.

over_temperature
    Catches: temperature above ``level_c`` for ``min_duration_s`` (clears below
    ``clear_c``), or rising faster than ``rate_c_per_min`` (measured over
    ``rate_lag_samples`` samples, so single noisy samples do not count) while
    above ``rate_floor_c``, for ``rate_min_duration_s``. Ignores: the normal
    warm-up at session start (below the rate floor).
over_current
    Catches: the largest phase current above ``limit * (1 + tolerance) +
    margin_a`` for ``min_duration_s``, where limit = min(offered current,
    rated current of the inventory). Ignores: the few seconds an EV is allowed
    to follow a lowered pilot (IEC 61851-1), unknown offered current (rated
    only), DC connectors (their current is the charger's to set).
voltage_out_of_band
    Catches: any AC phase voltage outside nominal +-``band`` (EN 50160) for
    ``min_duration_s``; clears within +-``clear_band``. Ignores: DC connectors
    (the DC bus follows the battery), phases below ``loss_fraction`` of nominal
    (that is phase_loss), unreported phases.
phase_loss
    Catches: on a three-phase AC connector, one or two phase voltages below
    ``loss_fraction`` of nominal while another phase is live, for
    ``min_duration_s``; or a three-phase load losing one phase's current while the
    others keep carrying above ``min_current_a``. Ignores: single-phase cars on
    three-phase chargers (they never drew on three phases in the session).
phase_imbalance
    Catches: (max - min) / max of the loaded phase currents above ``threshold``
    for ``min_duration_s``, clearing below ``clear``. Ignores: phases under
    ``floor_a`` (single- and two-phase cars), light load (largest phase under
    ``min_current_a``), DC.
power_oscillation
    Catches: at least ``min_reversals`` large reversals of power (steps larger
    than ``swing_fraction`` of the power level, alternating in sign) within the
    last ``window_samples`` samples, for ``min_duration_s``. Ignores: a single
    pause and resume (SuspendedEV), smooth taper at high SoC, DC curves.
"""

from __future__ import annotations

__all__ = [
    "OverCurrent",
    "OverTemperature",
    "PhaseImbalance",
    "PhaseLoss",
    "PowerOscillation",
    "VoltageOutOfBand",
]

import numpy as np
from numpy.typing import NDArray

from chargewatch.detectors.base import Detector
from chargewatch.detectors.episodes import Episodes
from chargewatch.detectors.frame import (
    Events,
    Frame,
    History,
    ffill_index,
    grown,
    prev_in_segment,
    rall,
    rany,
    rcount,
    rmax,
    rmin,
)

F64 = NDArray[np.float64]
B = NDArray[np.bool_]


class OverTemperature(Detector):
    fault = "over_temperature"

    def _episodes(self) -> Episodes:
        self._rate = Episodes(self.fault, self.findings)
        self._hist_t = History(int(self.params.rate_lag_samples))  # type: ignore[attr-defined]
        self._hist_ts = History(int(self.params.rate_lag_samples))  # type: ignore[attr-defined]
        return Episodes(self.fault, self.findings)

    @property
    def active(self) -> NDArray[np.bool_]:
        return (self.episodes.active | self._rate.active)[: self.n]

    def _grow(self, n: int) -> None:
        self._rate.ensure(n)

    def _update(self, frame: Frame, events: Events, now: float) -> None:
        t = frame.col("temperature_c")
        known = np.isfinite(t)
        f = frame if known.all() else frame.rows(known)
        t = f.col("temperature_c")
        c = f.conn
        level = self.p["level_c"][c]
        self.episodes.step(
            c,
            f.ts,
            t > level,
            t < self.p["clear_c"][c],
            self.p["min_duration_s"][c],
            0.0,
            {"temperature_c": t, "level_c": level},
        )
        # Rise over k samples: robust to per-sample noise that a 1-step slope is not.
        t0 = self._hist_t.lag(f, t)
        ts0 = self._hist_ts.lag(f, f.ts)
        rate = (t - t0) / (f.ts - ts0) * 60.0
        lim = self.p["rate_c_per_min"][c]
        hot = t > self.p["rate_floor_c"][c]
        fast = hot & (rate > lim)
        calm = ~hot | (rate <= 0.5 * lim)
        ok = np.isfinite(rate)
        self._rate.step(
            c[ok],
            f.ts[ok],
            fast[ok],
            calm[ok],
            self.p["rate_min_duration_s"][c][ok],
            0.0,
            {"temperature_c": t[ok], "rate_c_per_min": rate[ok]},
        )
        score = np.maximum(t / level, np.where(hot & ok, rate / lim, 0.0))
        self._set_score(c, score, f.last)


class OverCurrent(Detector):
    fault = "over_current"

    def _update(self, frame: Frame, events: Events, now: float) -> None:
        frame.values[:, 2:5]
        # AC only: a DC charger's own controller sets the current, and DC data
        # (the fleet simulator's too) runs above offered_a at low pack voltage.
        frame = _ac(frame, self.phases)
        known = rany(np.isfinite(frame.values[:, 2:5]))
        f = frame if known.all() else frame.rows(known)
        c = f.conn
        i = rmax(f.values[:, 2:5])
        offered = f.col("offered_a")
        rated = np.where(self.rated_a[c] > 0, self.rated_a[c], np.inf)
        limit = np.fmin(offered, rated)  # fmin: a NaN offered falls back to rated
        tol, margin = self.p["tolerance"][c], self.p["margin_a"][c]
        allowed = limit * (1.0 + tol) + margin
        over = i > allowed
        self.episodes.step(
            c,
            f.ts,
            over,
            ~over,
            self.p["min_duration_s"][c],
            0.0,
            {"current_a": i, "offered_a": offered, "rated_a": rated, "allowed_a": allowed},
        )
        score = np.where(np.isfinite(allowed), i / allowed, np.nan)
        self._set_score(c, score, f.last)


def _ac(frame: Frame, phases: NDArray[np.int8]) -> Frame:
    """The AC connectors' rows (shared by the detectors of this module)."""

    def make(f: Frame) -> Frame:
        ac = phases[f.conn] > 0
        return f if ac.all() else f.rows(ac)

    out: Frame = frame.derived("ac_rows", make)
    return out


def _three(frame: Frame, phases: NDArray[np.int8]) -> Frame:
    """The three-phase AC connectors' rows."""

    def make(f: Frame) -> Frame:
        three = phases[f.conn] == 3
        return f if three.all() else f.rows(three)

    out: Frame = frame.derived("three_phase_rows", make)
    return out


def _phase_voltage_ratio(f: Frame, nominal: F64) -> F64:
    return f.values[:, 5:8] / nominal[:, None]


class VoltageOutOfBand(Detector):
    fault = "voltage_out_of_band"

    def _update(self, frame: Frame, events: Events, now: float) -> None:
        frame = _ac(frame, self.phases)
        r = _phase_voltage_ratio(frame, self.nominal_v[frame.conn])
        live = r >= self.p["loss_fraction"][frame.conn][:, None]  # NaN compares False
        dev = np.where(live, np.abs(r - 1.0), -1.0)
        worst = rmax(dev)
        judged = worst >= 0
        f = frame if judged.all() else frame.rows(judged)
        worst = worst[judged]
        c = f.conn
        band = self.p["band"][c]
        self.episodes.step(
            c,
            f.ts,
            worst > band,
            worst < self.p["clear_band"][c],
            self.p["min_duration_s"][c],
            0.0,
            {"worst_deviation": worst, "band": band},
        )
        self._set_score(c, worst / band, f.last)


class PhaseLoss(Detector):
    fault = "phase_loss"

    def _grow(self, n: int) -> None:
        if not hasattr(self, "_three"):
            self._three = np.zeros(0, np.bool_)
        self._three = grown(self._three, n, False)

    def _update(self, frame: Frame, events: Events, now: float) -> None:
        f = _three(frame, self.phases)
        c = f.conn
        r = _phase_voltage_ratio(f, self.nominal_v[c])
        frac = self.p["loss_fraction"][c][:, None]
        v_known = np.isfinite(r)
        lost_v = v_known & (r < frac)
        live_v = v_known & (r >= frac)
        v_judged = rany(live_v) & rall(v_known)
        v_loss = v_judged & rany(lost_v)
        # Current side: the session drew on all three phases, now one carries nothing
        # while the others still carry. A single-phase car never sets `three`.
        cur = f.values[:, 2:5]
        i_known = rall(np.isfinite(cur))
        imin = self.p["min_current_a"][c][:, None]
        carrying = i_known[:, None] & (cur >= imin)
        ncarry = rcount(carrying)
        idle = i_known & (rmax(np.where(i_known[:, None], cur, 0.0)) < 1.0)
        # `three` per row: set by a 3-phase row, reset by an idle row (session over),
        # carried between batches.
        mark = (ncarry == 3) | idle
        src = ffill_index(mark, f.seg_start)
        three_now = np.where(src >= 0, ncarry[np.maximum(src, 0)] == 3, self._three[c])
        i_loss = three_now & (ncarry == 2) & ~idle
        loss = v_loss | i_loss
        judged = v_judged | i_known
        ok = judged & ~loss
        k = judged
        g_c, g_ts = c[k], f.ts[k]
        self.episodes.step(
            g_c,
            g_ts,
            loss[k],
            ok[k],
            self.p["min_duration_s"][g_c],
            0.0,
            {
                "min_phase_voltage_ratio": rmin(np.where(v_known, r, np.inf))[k],
                "phases_carrying": ncarry[k].astype(np.float64),
            },
        )
        self._three[c[f.last]] = three_now[f.last]
        score = np.where(loss, 1.0, np.where(judged, 0.0, np.nan))
        self._set_score(c, score, f.last)


class PhaseImbalance(Detector):
    fault = "phase_imbalance"

    def _update(self, frame: Frame, events: Events, now: float) -> None:
        frame = _three(frame, self.phases)
        cur = frame.values[:, 2:5]
        judged = rall(np.isfinite(cur))
        f = frame if judged.all() else frame.rows(judged)
        c = f.conn
        cur = f.values[:, 2:5]
        floor = self.p["floor_a"][c][:, None]
        loaded = cur > floor
        imax = rmax(cur)
        imin = rmin(np.where(loaded, cur, np.inf))
        busy = (rcount(loaded) >= 2) & (imax >= self.p["min_current_a"][c])
        imb = np.where(busy, (imax - imin) / np.where(busy, imax, 1.0), 0.0)
        thr = self.p["threshold"][c]
        self.episodes.step(
            c,
            f.ts,
            imb > thr,
            imb < self.p["clear"][c],
            self.p["min_duration_s"][c],
            0.0,
            {"imbalance": imb, "max_a": imax, "min_loaded_a": imin},
        )
        self._set_score(c, imb / thr, f.last)


class PowerOscillation(Detector):
    fault = "power_oscillation"

    def _episodes(self) -> Episodes:
        self._hist = History(int(self.params.window_samples))  # type: ignore[attr-defined]
        return Episodes(self.fault, self.findings)

    def _grow(self, n: int) -> None:
        if not hasattr(self, "_p_last"):
            self._p_last = np.full(0, np.nan)
            self._sign = np.zeros(0)
            self._cum = np.zeros(0)
        self._p_last = grown(self._p_last, n, np.nan)
        self._sign = grown(self._sign, n, 0.0)
        self._cum = grown(self._cum, n, 0.0)

    def _update(self, frame: Frame, events: Events, now: float) -> None:
        p = frame.col("power_w")
        known = np.isfinite(p)
        f = frame if known.all() else frame.rows(known)
        c, p = f.conn, f.col("power_w")
        pp = prev_in_segment(p, f.first, self._p_last[c])
        dp = p - pp
        level = np.fmax(np.fmax(p, pp), self.p["min_power_w"][c])
        big = np.abs(dp) > self.p["swing_fraction"][c] * level
        sign = np.where(big, np.sign(dp), 0.0)
        # Sign of the previous large step (within the batch, else carried).
        src = ffill_index(big, f.seg_start)
        prev_src = prev_in_segment(src, f.first, np.full(src.shape[0], -1))
        prev_sign = np.where(prev_src >= 0, sign[np.maximum(prev_src, 0)], self._sign[c])
        rev = big & (sign * prev_sign < 0)
        # Rolling count of reversals over the last `window_samples` rows.
        cum = np.cumsum(rev.astype(np.float64))
        base = cum[f.seg_start] - rev[f.seg_start]  # cumsum before each segment
        run = cum - base + self._cum[c]
        lagged = self._hist.lag(f, run)
        count = run - np.where(np.isnan(lagged), 0.0, lagged)
        need = self.p["min_reversals"][c]
        self.episodes.step(
            c,
            f.ts,
            count >= need,
            count < 0.5 * need,
            self.p["min_duration_s"][c],
            0.0,
            {"reversals": count, "power_w": p},
        )
        last = f.last
        self._p_last[c[last]] = p[last]
        self._cum[c[last]] = run[last]
        has_big = src[last] >= 0
        lc = c[last]
        self._sign[lc[has_big]] = sign[src[last][has_big]]
        self._set_score(c, count / need, f.last)
