"""Electrical faults: over_temperature, over_current, voltage_out_of_band, phase_loss,
phase_imbalance, power_oscillation. All on meter ``ts``.

over_temperature
    Catches: temperature above ``level_c`` for ``min_duration_s`` (clears below
    ``clear_c``), or rising faster than ``rate_c_per_min`` while above
    ``rate_floor_c``, for ``rate_min_duration_s`` (clears at half the rate);
    faster (the rule has no `for`, these are the whole debounce): a rise
    steeper than ``steep_c_per_min`` while above ``steep_floor_c``, for
    ``steep_min_duration_s`` (its own EWMA, time constant ``steep_tau_s``;
    clears at half the rate), and a reading ``limit_margin_c`` above the
    level for ``limit_min_duration_s`` (two readings: one is a glitch).
    The rates are EWMAs of the slope between consecutive samples,
    weighted by time, so their noise does not grow with the sample rate as a
    slope over a fixed number of samples does (0.3 C of sensor noise is
    +-4 C/min over 6 samples at 1 Hz). Inputs: temperature_c.
    Why 10 C/min: IEC 62196-1 (temperature-rise test) allows terminals 50 K
    above ambient at rated current, and accessories and housings warm with a
    thermal time constant of minutes (the simulator's enclosure: 10 min), so a
    normal warm-up starts at most ~50 K / 5 min = 10 C/min and slows from there;
    a blocked fan or a loose terminal (the simulator's fault: +55 C in 3 min,
    18 C/min) keeps climbing. Above 40 C such a rise reaches the 50-60 C at
    which chargers typically start derating within a minute. Defaults suit an
    AC housing sensor; a model whose normal temperature is higher (a DC cable
    at 60-70 C at full current; liquid-cooled cables, IEC TS 62196-3-1, run
    near their limit by design) raises ``level_c``, ``clear_c``,
    ``rate_floor_c`` and ``steep_floor_c`` in ``models:``.
    Ends when the connector goes Available, Finishing or Unavailable, or when
    no temperature came for ``stale_intervals`` x its sampling interval (and at
    least 60 s): a last
    hot reading says nothing about a port that stopped charging.
    Ignores: the normal warm-up at session start (below the rate floor, and
    never steep), a hot housing in the sun (slow), slow rises above
    ``level_c`` (the level rule's), single noisy samples,
    unreported temperature, readings received while Available, Finishing or
    Unavailable.
over_current
    Catches: the largest phase current above ``limit * (1 + tolerance) +
    margin_a`` for ``min_duration_s``, where limit = min(offered current,
    rated current of the inventory). Ignores: the few seconds an EV is allowed
    to follow a lowered pilot (IEC 61851-1), unknown offered current (rated
    only), DC connectors (their current is the charger's to set).
voltage_out_of_band
    Catches: any AC phase voltage outside nominal +-``band`` (EN 50160) for
    ``min_duration_s``, judged per phase against the inventory's nominal
    (phase-to-neutral) whatever the other phases do: one phase sagging to 0.8
    p.u. while the others hold is out of band (not a lost phase); clears within
    +-``clear_band``. Evidence: the phase, its voltage and the nominal. Ignores: DC connectors
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
    last ``window_samples`` samples or within the last ``window_s`` seconds
    (fast sampling: at 1 Hz ten samples are half of a 20 s swing), for
    ``min_duration_s``; clears when fewer than half remain in the samples
    window and none came within ``window_s``. Ignores: a single pause and
    resume (SuspendedEV), smooth taper at high SoC, DC curves.
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

from collections.abc import Callable

import numpy as np
from numpy.typing import NDArray

from chargewatch.detectors.base import Detector
from chargewatch.detectors.episodes import Episodes
from chargewatch.detectors.sequencer import (
    STATUS_CODE,
    Events,
    Frame,
    History,
    ffill_index,
    grown,
    linear_scan,
    prev_in_segment,
    rall,
    rany,
    rcount,
    rmax,
    rmin,
)

F64 = NDArray[np.float64]
B = NDArray[np.bool_]


_MAX_SLOPE = 1000.0  # C/min: no real temperature moves faster
# At 1 Hz, 3 intervals is a network hiccup: ending (and reopening 30 s later)
# then would flap the alert.
_STALE_MIN_S = 60.0
# Statuses in which a port does not charge: a temperature then is not judged,
# and entering one ends the episode (Faulted does not: a charger may fault
# because it is hot, and its housing stays hot).
_IDLE_STATUS = np.array([STATUS_CODE[s] for s in ("Available", "Finishing", "Unavailable")])


def _idle(status: NDArray[np.int8]) -> B:
    """``np.isin(status, _IDLE_STATUS)`` by one comparison per status: isin
    converts 100k int8 to int64 for its lookup table."""
    out: B = status == _IDLE_STATUS[0]
    for code in _IDLE_STATUS[1:].tolist():
        out |= status == code
    return out


def _some_idle(status: NDArray[np.int8]) -> bool:
    """Whether any status is idle: by its extremes when there is one status only
    (a fleet charging), else by ``_idle``."""
    if status.shape[0] == 0:
        return False
    lo = int(status.min())
    if lo == int(status.max()):
        return lo in _IDLE_STATUS.tolist()
    return bool(_idle(status).any())


def _all_finite(x: F64) -> bool:
    """No NaN and no inf in ``x``: two reductions, no mask (NaN propagates)."""
    return x.shape[0] == 0 or bool(np.isfinite(x.min()) and np.isfinite(x.max()))


class OverTemperature(Detector):
    fault = "over_temperature"

    def _episodes(self) -> Episodes:
        # One episode machine per path (each has its own duration); the level's
        # is ``self.episodes``.
        self._rate = Episodes(self.fault, self.findings)
        self._steep = Episodes(self.fault, self.findings)
        self._limit = Episodes(self.fault, self.findings)
        return Episodes(self.fault, self.findings)

    def _paths(self) -> tuple[Episodes, ...]:
        return (self.episodes, self._rate, self._steep, self._limit)

    @property
    def active(self) -> NDArray[np.bool_]:
        on = self.episodes.active | self._rate.active | self._steep.active | self._limit.active
        return on[: self.n]

    def _grow(self, n: int) -> None:
        for e in self._paths()[1:]:
            e.ensure(n)
        if not hasattr(self, "_t"):
            self._t = np.full(0, np.nan)  # last known temperature, its ts,
            self._ts = np.full(0, np.nan)
            self._r = np.full(0, np.nan)  # the smoothed rate of rise (C/min),
            self._rf = np.full(0, np.nan)  # and the fast one (steep_tau_s)
            self._recv = np.full(0, np.nan)  # when the last judged reading came
            self._iv = np.full(0, np.nan)  # the connector's sampling interval
        self._t = grown(self._t, n, np.nan)
        self._ts = grown(self._ts, n, np.nan)
        self._r = grown(self._r, n, np.nan)
        self._rf = grown(self._rf, n, np.nan)
        self._recv = grown(self._recv, n, np.nan)
        self._iv = grown(self._iv, n, np.nan)

    def _update(self, frame: Frame, events: Events, now: float) -> None:
        t = frame.col("temperature_c")
        f = frame
        if not _all_finite(t) or _some_idle(frame.status):
            known = np.isfinite(t) & ~_idle(frame.status)
            f = frame if known.all() else frame.rows(known)
        t = f.col("temperature_c")
        if self._quiet(t):
            self._advance_quiet(f, t)
        else:
            self._judge(f, t)
        lc, r = f.touched, f.last_idx
        self._recv[lc] = f.recv[r]
        iv = frame.interval
        if iv.shape[0] >= frame.n_conn:
            self._iv[: frame.n_conn] = iv[: frame.n_conn]
        self._end_on_idle(events)

    def _quiet(self, t: F64) -> bool:
        """The screen: no path has an open or pending episode, and no reading is
        above the lowest level or floor of any connector. Then no row can start
        or end anything, and the rates matter only as state for later batches
        (they are judged only above a floor): the healthy batch, skipped at the
        cost of one max."""
        if t.shape[0] == 0 or not all(e.quiet for e in self._paths()):
            return False
        lowest = min(self._lowest(k) for k in ("level_c", "rate_floor_c", "steep_floor_c"))
        return bool(t.max() <= lowest)

    def _lowest(self, name: str) -> float:
        u = self._uniform[name]
        return u if u is not None else float(self.p[name][: self.n].min())

    def _advance_quiet(self, f: Frame, t: F64) -> None:
        """What ``_judge`` leaves behind on a batch that passed ``_quiet``: the
        rates' state at each connector's last row (bit for bit: ``_last_rates``),
        the last reading, and the score (its rate term is 0 below the floor)."""
        lc, r = f.touched, f.last_idx
        self._last_rates(f, t)
        tr = t[r]
        self._t[lc], self._ts[lc] = tr, f.ts[r]
        self.score[lc] = np.maximum(tr / self.p["level_c"][lc], 0.0)

    def _judge(self, f: Frame, t: F64) -> None:
        """Every row through the four paths (and the state, the score)."""
        c = f.conn
        level = self._at("level_c", c)
        self.episodes.step(
            c,
            f.ts,
            t > level,
            t < self._at("clear_c", c),
            self.p["min_duration_s"],
            0.0,
            lambda: {"temperature_c": t, "level_c": level + 0.0 * t},
            cadence=f.cadence,
        )
        rate, fast_rate = self._rate_of_rise(f, t)
        self._fast_paths(f, t, level, fast_rate)
        lim = self._at("rate_c_per_min", c)
        hot = t > self._at("rate_floor_c", c)
        # Above the level, the level rule speaks: a step to a hot, steady reading
        # keeps a rising average for a few time constants, and is one fault.
        fast = hot & (rate > lim) & (t <= level)
        ok = np.isfinite(rate)
        calm = (~hot | (rate <= 0.5 * lim)) & ok
        self._rate.step(
            c,
            f.ts,
            fast,
            calm,
            self.p["rate_min_duration_s"],
            0.0,
            lambda: {"temperature_c": t, "rate_c_per_min": rate},
            None if ok.all() else ok,
            cadence=f.cadence,
        )
        lc, r = f.touched, f.last_idx
        tr, rr = t[r], rate[r]
        hr = hot[r] & ok[r]
        lvl, rl = self.p["level_c"][lc], self.p["rate_c_per_min"][lc]
        self.score[lc] = np.maximum(tr / lvl, np.where(hr, rr / rl, 0.0))

    def _end_on_idle(self, events: Events) -> None:
        """End the episodes of connectors that stopped charging after their last
        judged reading (a reading after the status change is a new session's)."""
        if events.st_code.shape[0] == 0:
            return  # (isin costs ~80 us even on no events)
        idle = np.isin(events.st_code, _IDLE_STATUS)
        for c, at in zip(events.st_conn[idle].tolist(), events.st_recv[idle].tolist(), strict=True):
            if not self._recv[c] > at:
                self._end(c, at)

    def _fast_paths(self, f: Frame, t: F64, level: F64 | float, fast_rate: F64) -> None:
        """The two paths that page within a minute: a rise steeper than any
        warm-up, and a reading beyond the level by ``limit_margin_c`` (no reason
        to wait for the level's duration). Unlike the slow rate path, the steep
        one goes on above the level: at 60 s sampling a 3 min ramp has one
        sample below the level, and the rise is the evidence either side of it."""
        c = f.conn
        ok = np.isfinite(fast_rate)
        steep_lim = self._at("steep_c_per_min", c)
        warm = t > self._at("steep_floor_c", c)
        self._steep.step(
            c,
            f.ts,
            warm & (fast_rate > steep_lim),
            (~warm | (fast_rate <= 0.5 * steep_lim)) & ok,
            self.p["steep_min_duration_s"],
            0.0,
            lambda: {"temperature_c": t, "rate_c_per_min": fast_rate},
            None if ok.all() else ok,
            cadence=f.cadence,
        )
        limit = level + self._at("limit_margin_c", c)
        self._limit.step(
            c,
            f.ts,
            t > limit,
            t <= limit,
            self.p["limit_min_duration_s"],
            0.0,
            lambda: {"temperature_c": t, "limit_c": limit + 0.0 * t},
            cadence=f.cadence,
        )

    def _end(self, c: int, at: float) -> None:
        for e in self._paths():
            e.end(c, at)

    def tick(self, now: float) -> None:
        """End the episodes whose last reading is older than ``stale_intervals``
        x the connector's sampling interval, and at least ``_STALE_MIN_S`` (an
        unknown interval never expires). Only here, on the receive clock: an
        update's ``now`` may be far past the rows of a replayed backlog."""
        on = self.episodes.setting.copy()
        for e in self._paths():
            on |= e.active
        live = np.flatnonzero(on)
        if live.size == 0:
            return
        live = live[live < self.n]
        limit = np.fmax(self._iv[live] * self.p["stale_intervals"][live], _STALE_MIN_S)
        for c in live[now - self._recv[live] > limit].tolist():
            self._end(c, float(self._ts[c]))

    def _rate_of_rise(self, f: Frame, t: F64) -> tuple[F64, F64]:
        """Per row, EWMAs (time constants ``rate_tau_s`` and ``steep_tau_s``) of
        the slope between consecutive samples, in C/min; NaN on a connector's
        very first sample.

        Time-weighted (a = exp(-dt / tau)), so they mean the same at any sample
        rate: the noise of a slope over a fixed number of samples grows with the
        sample rate (0.3 C of noise over 6 samples at 1 Hz is +-4 C/min), that
        of this average does not (~0.3 C / tau: 0.9 C/min at 20 s). Start from
        0 (no rise) on a new connector.
        """
        lc = f.touched
        pt = f.shift(t, self._t[lc])
        dt = f.ts - f.shift(f.ts, self._ts[lc])
        first = np.isnan(pt)  # no earlier temperature at all
        # A slope beyond 1000 C/min is a corrupt reading (1e308 passes as finite):
        # clipped, such a spike and its return cancel instead of overflowing.
        slope = np.clip((t - pt) * (60.0 / dt), -_MAX_SLOPE, _MAX_SLOPE)
        last = f.last_idx
        out = []
        for tau, state in (("rate_tau_s", self._r), ("steep_tau_s", self._rf)):
            # exp in float32 is ~10x faster here, and 1e-7 is plenty for a weight.
            a = np.exp((-dt / self._at(tau, f.conn)).astype(np.float32)).astype(np.float64)
            b = (1.0 - a) * slope
            if first.any():
                a[first], b[first] = 0.0, 0.0
            rate = linear_scan(a, b, f.first_idx, np.nan_to_num(state[lc], nan=0.0))
            state[lc] = rate[last]
            if first.any():
                rate[first] = np.nan
            out.append(rate)
        self._t[lc], self._ts[lc] = t[last], f.ts[last]
        return out[0], out[1]

    def _last_rates(self, f: Frame, t: F64) -> None:
        """Advance ``_r`` and ``_rf`` as ``_rate_of_rise`` does, bit for bit, without
        the rates of the rows before each connector's last: the same weights and
        slopes per row, and only the part of ``linear_scan``'s doubling tree the
        last row depends on (``_scan_last``). Connectors are grouped by their
        number of rows, each group laid out position-major (row p of every
        connector contiguous), so that the tree's steps are contiguous passes."""
        # Equal segments (a tick-major batch: the sequencer knows it already)
        # need no per-connector lengths.
        lengths = None if f.uniform else np.diff(np.append(f.first_idx, len(f)))
        lo, hi = (
            (f.uniform, f.uniform) if lengths is None else (int(lengths.min()), int(lengths.max()))
        )
        if hi > _SCAN_LAST_MAX or f.touched.shape[0] < _SCAN_LAST_MIN_CONN:
            self._rate_of_rise(f, t)  # long segments or few connectors: the scan is cheaper
            return
        if lengths is None or lo == hi:
            self._last_rates_of(f, t, slice(None), hi)
            return
        for n_rows in np.unique(lengths).tolist():
            self._last_rates_of(f, t, np.flatnonzero(lengths == n_rows), n_rows)

    def _last_rates_of(self, f: Frame, t: F64, sel: slice | NDArray[np.intp], n_rows: int) -> None:
        """``_last_rates`` for the connectors ``sel`` (of ``f.touched``), which all
        have ``n_rows`` rows in ``f``. Both time constants at once: axis 0."""
        lc = f.touched[sel]
        tt = _by_position(t, f, sel, n_rows)
        t0 = self._t[lc]
        rise = _diff_down(tt, t0)  # t - pt of _rate_of_rise
        first = np.isnan(t0)  # no earlier temperature: only on a row 0
        y0 = np.empty((2, lc.shape[0]))
        np.take(self._r, lc, out=y0[0])
        np.take(self._rf, lc, out=y0[1])
        if not np.isfinite(y0).all():  # nan_to_num costs ~10 passes; states are finite
            np.nan_to_num(y0, copy=False, nan=0.0)
        taus = [u for k in ("rate_tau_s", "steep_tau_s") if (u := self._uniform[k]) is not None]
        step = None if len(taus) < 2 else _one_step(f, sel, n_rows, self._ts[lc], first)
        if step is not None:
            # One sampling step everywhere (the usual 1 Hz or 10 s): one weight
            # per time constant, from the same float32 exp of the same value.
            slope = rise * (60.0 / step)
            np.clip(slope, -_MAX_SLOPE, _MAX_SLOPE, out=slope)
            w = np.exp(np.array([[-step / taus[0]], [-step / taus[1]]]).astype(np.float32))
            a = w.astype(np.float64)  # (2, 1): one per time constant
            one_minus_a = 1.0 - a
            some_first = bool(first.any())

            def b_at(p: int) -> F64:
                # (1 - a) * slope per position, as the tree needs it (no (2, n, m) array)
                out: F64 = one_minus_a * slope[p]
                if p == 0 and some_first:  # the scan's a = b = 0 on a first row
                    out[:, first] = 0.0
                return out

            if some_first:
                y0[:, first] = 0.0  # and so cb = 0 there
            last = _scan_last(a, b_at, y0, slope.shape[0])
        else:
            dt = _diff_down(_by_position(f.ts, f, sel, n_rows), self._ts[lc])
            slope = rise * (60.0 / dt)
            np.clip(slope, -_MAX_SLOPE, _MAX_SLOPE, out=slope)
            aa = np.empty((2, *dt.shape))
            for k, tau in enumerate(("rate_tau_s", "steep_tau_s")):
                u = self._uniform[tau]
                tau_c = u if u is not None else self.p[tau][lc][None, :]
                aa[k] = np.exp((-dt / tau_c).astype(np.float32))
            b = (1.0 - aa) * slope
            aa[:, 0, first], b[:, 0, first] = 0.0, 0.0
            last = _scan_last(aa, lambda p: b[:, p], y0, b.shape[1])
        self._r[lc], self._rf[lc] = last[0], last[1]
        self._t[lc], self._ts[lc] = tt[-1], f.ts[f.last_idx[sel]]


def _one_step(
    f: Frame, sel: slice | NDArray[np.intp], n_rows: int, ts0: F64, first: B
) -> float | None:
    """The one ts step between consecutive rows of the connectors ``sel`` and
    from their previous row (at ``ts0``; none on a ``first`` connector), None
    when the steps differ."""
    d0 = f.ts[f.first_idx[sel]] - ts0
    if first.any():
        d0 = d0[~first]
    if n_rows > 1:
        if isinstance(sel, slice):  # every row: one contiguous diff
            d = np.subtract(f.ts[1:], f.ts[:-1])
            # From one connector's last row to the next's first: no step (d[0] is one).
            d[f.last_idx[:-1]] = d[0]
        else:
            d = np.diff(_by_position(f.ts, f, sel, n_rows), axis=0)
        step = float(d.flat[0])
        if not d.min() == step == d.max():
            return None
    elif d0.shape[0]:
        step = float(d0[0])
    else:
        return None
    return step if d0.shape[0] == 0 or d0.min() == step == d0.max() else None


def _diff_down(x: F64, before: F64) -> F64:
    """x minus the row above it (row 0: minus ``before``), per column."""
    out = np.empty_like(x)
    np.subtract(x[0], before, out=out[0])
    np.subtract(x[1:], x[:-1], out=out[1:])
    return out


#: ``_last_rates`` evaluates its tree with a few numpy calls per row position:
#: beyond this many rows per connector, or under this many connectors, the
#: whole-array scan is cheaper.
_SCAN_LAST_MAX = 128
_SCAN_LAST_MIN_CONN = 64


def _by_position(x: F64, f: Frame, sel: slice | NDArray[np.intp], n_rows: int) -> F64:
    """``x`` of the connectors ``sel`` (each with ``n_rows`` rows in ``f``) as an
    (n_rows, connectors) array: row p holds every connector's p-th row."""
    if isinstance(sel, slice):  # every connector: the rows are (connectors, n_rows)
        return np.ascontiguousarray(x.reshape(-1, n_rows).T)
    idx = f.first_idx[sel][None, :] + np.arange(n_rows)[:, None]
    out: F64 = np.take(x, idx)
    return out


def _scan_last(a: F64, b: Callable[[int], F64], y0: F64, n: int) -> F64:
    """``linear_scan`` of (a, b) along axis 1 (positions 0..n-1; y0 before the
    first) at the last position only, bit for bit, for each (k, m) of a (k, n,
    m) array; ``a`` is that array or (k, 1): one weight per k for every
    position; ``b(p)`` gives position p, (k, m).

    The scan's step with offset d sets cb[p] += ca[p] * cb[p - d] and ca[p] *=
    ca[p - d], where ca[p] is 0 once its window reaches the segment's first row
    (p < 2d): the last position depends on the positions {p, p - d} of the
    step before, recursively. Those sets are worked out top-down, then only
    they are computed, in the scan's own order of operations. (A column's
    result does not depend on the other columns: where the scan reaches into
    the segment before, it adds 0 * something.)"""
    steps = [1 << k for k in range(max(n - 1, 0).bit_length())]  # the d < n
    need_b: list[set[int]] = [set() for _ in range(len(steps) + 1)]
    need_a: list[set[int]] = [set() for _ in range(len(steps) + 1)]
    need_b[-1].add(n - 1)
    for k in range(len(steps), 0, -1):
        d = steps[k - 1]
        for p in need_b[k]:
            need_b[k - 1].add(p)
            if p >= d:
                need_b[k - 1].add(p - d)
                need_a[k - 1].add(p)
        for p in need_a[k]:
            need_a[k - 1].update((p, p - d))
    cb = {p: b(p) for p in need_b[0]}
    const = a.ndim == 2

    def at(p: int) -> F64:
        out: F64 = a if const else a[:, p]
        return out

    if 0 in cb:
        cb[0] = cb[0] + at(0) * y0
    ca = {p: at(p) for p in need_a[0]}
    for k, d in enumerate(steps, start=1):
        cb = {p: cb[p] + ca[p] * cb[p - d] if p >= d else cb[p] for p in need_b[k]}
        ca = {p: ca[p] * ca[p - d] for p in need_a[k]}
    out: F64 = cb[n - 1]
    return out


def _ac_rows(f: Frame, phases: NDArray[np.int8]) -> B:
    """Rows of AC connectors (shared by the detectors of this module)."""
    out: B = f.derived("ac", lambda g: np.take(phases, g.conn) > 0)
    return out


def _three_rows(f: Frame, phases: NDArray[np.int8]) -> B:
    """Rows of three-phase AC connectors."""
    out: B = f.derived("three", lambda g: np.take(phases, g.conn) == 3)
    return out


def _currents(f: Frame) -> tuple[F64, B, B, F64]:
    """Phase currents (n, 3), rows with any / all of them known, and the largest
    (NaN when none is known): shared by the current-based detectors."""

    def make(g: Frame) -> tuple[F64, B, B, F64]:
        cur = g.block(2)
        known = np.isfinite(cur)
        return cur, rany(known), rall(known), rmax(cur)

    out: tuple[F64, B, B, F64] = f.derived("currents", make)
    return out


def _mask(ok: B) -> B | None:
    return None if bool(ok.all()) else ok


# Screens: the detectors below first judge each connector from per-connector
# aggregates of the frame (min/max of a column over its rows): one whose
# episode is neither open nor pending and whose extremes stay inside the
# thresholds cannot change state in this batch; only its score (from its last
# row) is set, as the per-row path would. The per-row path runs on the rows of
# the other connectors only (often none). Each connector's result depends on
# its own rows alone, so the split changes nothing but the cost.

#: Segments this long or shorter, all of one length, are reduced position by
#: position (strided passes over every connector); others by ``reduceat``,
#: whose cost is per segment.
_SEG_LOOP_MAX = 32


def _seg_len(f: Frame) -> int:
    """The number of rows every connector has in ``f``, 0 when they differ (or
    exceed ``_SEG_LOOP_MAX``)."""

    def make(g: Frame) -> int:
        n = g.uniform  # cached on the frame (the sequencer's, for tick-major batches)
        return n if n <= _SEG_LOOP_MAX else 0

    out: int = f.derived("elec:seg_len", make)
    return out


def _per_conn(f: Frame, key: str, how: np.ufunc, x: F64) -> F64:
    """``how`` (fmax, fmin, minimum) reduced over each connector's rows and, for
    an (n, 3) phase block, over the phases: one value per connector of ``f``
    (aligned with ``f.touched``); cached on the frame under ``key``."""

    def make(g: Frame) -> F64:
        if x.ndim == 2:  # the phases first: contiguous passes over the columns
            col = how(x[:, 0], x[:, 1])
            how(col, x[:, 2], out=col)
        else:
            col = x
        n_rows = _seg_len(g)
        if not n_rows:
            out: F64 = how.reduceat(col, g.first_idx)
            return out
        v = col.reshape(-1, n_rows)  # (connector, position)
        out = v[:, 0].copy()
        for p in range(1, n_rows):
            how(out, v[:, p], out=out)
        return out

    got: F64 = f.derived(key, make)
    return got


def _last3(f: Frame, start: int) -> F64:
    """The phase block from ``start`` (2: currents, 5: voltages) on each
    connector's last row, (3, connectors): gathered a column at a time and
    cached (indexing the (n, 3) block by rows costs several times more).
    ``.T`` is the (connectors, 3) block of those rows."""

    def make(g: Frame) -> F64:
        block, rows = g.block(start), g.last_idx
        if rows.shape[0] == len(g) and block.flags.f_contiguous:
            # One row per connector (a pipeline's short batches): every row is a
            # last row, and the transposed block is the answer (read-only view).
            view: F64 = block.T
            view.flags.writeable = False
            return view
        out = np.empty((3, rows.shape[0]))
        for j in range(3):
            np.take(block[:, j], rows, out=out[j])
        return out

    got: F64 = f.derived(f"elec:last{start}", make)
    return got


def _phases_of(f: Frame, phases: NDArray[np.int8]) -> NDArray[np.int8]:
    """The phases of each connector of ``f`` (aligned with ``f.touched``)."""
    out: NDArray[np.int8] = f.derived("elec:phases", lambda g: phases[g.touched])
    return out


def _pending(episodes: Episodes, conns: NDArray[np.int64]) -> B:
    """Connectors with an open or pending episode."""
    if episodes.quiet:
        # None anywhere (a healthy fleet): two reductions over the connectors'
        # flags instead of two gathers and an or over the batch's.
        return np.zeros(conns.shape[0], np.bool_)
    out: B = episodes.active[conns] | episodes.setting[conns]
    return out


def _split(
    f: Frame,
    quiet: B,
    calm: Callable[[Frame, B], None],
    judge: Callable[[Frame], None],
) -> None:
    """``calm`` for the connectors that passed the screen (``quiet``, per
    ``f.touched``), ``judge`` (the per-row path) on the others' rows."""
    k = int(np.count_nonzero(quiet))
    if 8 * k < quiet.shape[0]:
        judge(f)  # mostly busy: one pass over all rows is cheaper than a split
        return
    calm(f, quiet)
    if k < quiet.shape[0]:
        judge(_segments(f, np.flatnonzero(~quiet)))


def _segments(f: Frame, segs: NDArray[np.intp]) -> Frame:
    """The rows of the connectors ``segs`` (positions in ``f.touched``), by
    index: a few connectors of many, without a mask over every row."""
    cnt = np.diff(np.append(f.first_idx, len(f)))[segs]
    start = f.first_idx[segs] - (np.cumsum(cnt) - cnt)
    rows = np.arange(int(cnt.sum())) + np.repeat(start, cnt)
    return f.rows(rows)


class OverCurrent(Detector):
    fault = "over_current"

    def _grow(self, n: int) -> None:
        self._rated_lim = np.where(self.rated_a > 0, self.rated_a, np.inf)

    def _update(self, f: Frame, events: Events, now: float) -> None:
        if len(f):
            _split(f, self._screen(f), self._calm, self._judge)

    def _screen(self, f: Frame) -> B:
        """Quiet: DC, or no row's largest current above the lowest allowed
        (from the lowest offered current of the batch, else of the connector)
        and a current on its last row (the score's)."""
        lc, ac = f.touched, _phases_of(f, self.phases) > 0
        hi = _per_conn(f, "elec:cur_fmax", np.fmax, f.block(2))
        offered = f.col("offered_a")
        over = hi > self._allowed(lc, float(np.fmin.reduce(offered)))
        if (over & ac).any():
            over = hi > self._allowed(lc, _per_conn(f, "elec:offered_fmin", np.fmin, offered))
        last = _last3(f, 2)
        ok = ~over & rany(np.isfinite(last.T))
        out: B = ~_pending(self.episodes, lc) & (~ac | ok)
        return out

    def _allowed(self, lc: NDArray[np.int64], offered: F64 | float) -> F64:
        """``_judge``'s allowed current of connectors ``lc`` at ``offered``: a
        lower bound of every row's at an offered current at or above it (the
        rounding is monotonic too)."""
        limit = np.fmin(offered, self._rated_lim[lc])  # fmin: NaN offered -> rated
        out: F64 = limit * (1.0 + self._at("tolerance", lc)) + self._at("margin_a", lc)
        return out

    def _calm(self, f: Frame, quiet: B) -> None:
        """The score of the quiet AC connectors, from their last row."""
        lc = f.touched
        i = rmax(_last3(f, 2).T)
        al = self._allowed(lc, f.col("offered_a")[f.last_idx])
        m = quiet & (_phases_of(f, self.phases) > 0)
        self.score[lc[m]] = np.where(np.isfinite(al), i / al, np.nan)[m]

    def _judge(self, f: Frame) -> None:
        # AC only: a DC charger's own controller sets the current, and DC data
        # (the fleet simulator's too) runs above offered_a at low pack voltage.
        _, i_any, _, i = _currents(f)
        judged = _ac_rows(f, self.phases) & i_any
        c = f.conn
        offered = f.col("offered_a")
        rated = np.take(self._rated_lim, c)
        limit = np.fmin(offered, rated)  # fmin: a NaN offered falls back to rated
        allowed = limit * (1.0 + self._at("tolerance", c)) + self._at("margin_a", c)
        over = (i > allowed) & judged
        self.episodes.step(
            c,
            f.ts,
            over,
            ~over,
            self.p["min_duration_s"],
            0.0,
            lambda: {"current_a": i, "offered_a": offered, "rated_a": rated, "allowed_a": allowed},
            _mask(judged),
            cadence=f.cadence,
        )
        lc, r = self._last_rows(f, judged)
        al = allowed[r]
        self.score[lc] = np.where(np.isfinite(al), i[r] / al, np.nan)


def _phase_voltage_ratio(f: Frame, nominal: NDArray[np.float64]) -> F64:
    """Phase voltages over nominal, (n, 3), computed once per frame."""

    def make(g: Frame) -> F64:
        return g.block(5) / np.take(nominal, g.conn)[:, None]

    out: F64 = f.derived("v_ratio", make)
    return out


def _voltages(f: Frame, nominal: NDArray[np.float64]) -> tuple[F64, F64, F64, B]:
    """Phase voltages over nominal (n, 3); per row the largest and smallest known
    ratio (NaN when none is known) and whether all three are known."""

    def make(g: Frame) -> tuple[F64, F64, F64, B]:
        r = _phase_voltage_ratio(g, nominal)
        return r, rmax(r), rmin(r), rall(np.isfinite(r))

    out: tuple[F64, F64, F64, B] = f.derived("voltages", make)
    return out


class VoltageOutOfBand(Detector):
    fault = "voltage_out_of_band"

    def _update(self, f: Frame, events: Events, now: float) -> None:
        if len(f):
            _split(f, self._screen(f), self._calm, self._judge)

    def _screen(self, f: Frame) -> B:
        """Quiet: DC, or every known phase of every row at or above
        loss_fraction and within the band (from the connector's extreme
        voltages; its worst row cannot be further out), and a voltage on its
        last row (the score's)."""
        lc = f.touched
        nom = self.nominal_v[lc]
        hi = _per_conn(f, "elec:v_fmax", np.fmax, f.block(5)) / nom
        lo = _per_conn(f, "elec:v_fmin", np.fmin, f.block(5)) / nom
        ok = ~(lo < self._at("loss_fraction", lc)) & (nom > 0)
        ok &= ~(np.fmax(hi - 1.0, 1.0 - lo) > self._at("band", lc))
        ok &= self._last_worst(f) >= 0
        out: B = ~_pending(self.episodes, lc) & ((_phases_of(f, self.phases) <= 0) | ok)
        return out

    def _last_worst(self, f: Frame) -> F64:
        """Per connector, the worst deviation of its last row (every known phase
        live: the per-row path's value, NaN when none is known); the screen
        and ``_calm`` both read it: computed once per frame."""

        def make(g: Frame) -> F64:
            r = (_last3(g, 5) / self.nominal_v[g.touched]).T
            out: F64 = np.fmax(rmax(r) - 1.0, 1.0 - rmin(r))
            return out

        got: F64 = f.derived(f"elec:last_worst:{id(self)}", make)
        return got

    def _calm(self, f: Frame, quiet: B) -> None:
        lc = f.touched
        m = quiet & (_phases_of(f, self.phases) > 0)
        self.score[lc[m]] = (self._last_worst(f) / self.p["band"][lc])[m]

    def _judge(self, f: Frame) -> None:
        c = f.conn
        r, hi, lo, _ = _voltages(f, self.nominal_v)
        live_min = self._at3("loss_fraction", c)
        if (lo < self._at("loss_fraction", c)).any():
            # Some phase below loss_fraction (phase_loss's): judge the others only.
            live = r >= self._at3("loss_fraction", c)  # NaN: False
            dev = np.abs(r - 1.0)
            np.copyto(dev, -1.0, where=~live)
            worst = rmax(dev)
        else:  # every known phase is live: the worst is at the largest or smallest
            worst = np.fmax(hi - 1.0, 1.0 - lo)  # NaN when no phase is known
        judged = _ac_rows(f, self.phases) & (worst >= 0)
        band = self._at("band", c)
        bad = (worst > band) & judged
        self.episodes.step(
            c,
            f.ts,
            bad,
            worst < self._at("clear_band", c),
            self.p["min_duration_s"],
            0.0,
            lambda: _band_evidence(r, worst, band, np.take(self.nominal_v, c), live_min),
            _mask(judged),
            cadence=f.cadence,
        )
        lc, rows = self._last_rows(f, judged)
        self.score[lc] = worst[rows] / self.p["band"][lc]


def _band_evidence(
    r: F64, worst: F64, band: F64 | float, nominal: F64, live_min: F64 | float
) -> dict[str, F64]:
    """Per row, the phase furthest out of band (1-3) among the live ones, its
    voltage, the nominal and the band: what an alert text names."""
    dev = np.abs(r - 1.0)
    np.copyto(dev, -1.0, where=~(r >= live_min))
    phase = np.argmax(dev, axis=1)
    ratio = np.take_along_axis(r, phase[:, None], axis=1)[:, 0]
    return {
        "worst_deviation": worst,
        "band": band + 0.0 * worst,
        "phase": phase + 1.0,
        "voltage_v": ratio * nominal,
        "nominal_v": nominal,
    }


class PhaseLoss(Detector):
    fault = "phase_loss"

    def _grow(self, n: int) -> None:
        if not hasattr(self, "_three"):
            self._three = np.zeros(0, np.bool_)
        self._three = grown(self._three, n, False)

    def _update(self, f: Frame, events: Events, now: float) -> None:
        if len(f):
            _split(f, self._screen(f), self._calm, self._judge)

    def _screen(self, f: Frame) -> B:
        """Quiet: not three-phase, or every row with three known currents of at
        least min_current_a (each marks a three-phase load, none is a loss) and
        no known phase voltage below loss_fraction."""
        lc = f.touched
        nom = self.nominal_v[lc]
        i_lo = _per_conn(f, "elec:cur_min", np.minimum, f.block(2))  # NaN: some unknown
        v_lo = _per_conn(f, "elec:v_fmin", np.fmin, f.block(5)) / nom
        ok = (i_lo >= self._at("min_current_a", lc)) & (nom > 0)
        ok &= ~(v_lo < self._at("loss_fraction", lc))
        out: B = ~_pending(self.episodes, lc) & ((_phases_of(f, self.phases) != 3) | ok)
        return out

    def _calm(self, f: Frame, quiet: B) -> None:
        """Quiet three-phase connectors: drawing on three phases, judged, no loss."""
        lc = f.touched[quiet & (_phases_of(f, self.phases) == 3)]
        self._three[lc] = True
        self.score[lc] = 0.0

    def _judge(self, f: Frame) -> None:
        three = _three_rows(f, self.phases)
        c = f.conn
        _, hi, lo, v_all = _voltages(f, self.nominal_v)
        frac = self._at("loss_fraction", c)
        v_judged = (hi >= frac) & v_all  # all known, one live
        v_loss = v_judged & (lo < frac)  # and one lost
        # Current side: the session drew on all three phases, now one carries nothing
        # while the others still carry. A single-phase car never sets `three`.
        cur, _, i_known, i_max = _currents(f)
        imin = self._at3("min_current_a", c)
        ncarry = rcount(cur >= imin) * i_known  # unknown currents: none counted
        idle = i_known & (i_max < 1.0)
        # `three` per row: set by a 3-phase row, reset by an idle row (session over),
        # carried between batches.
        mark = (ncarry == 3) | idle
        cand = three & i_known & (ncarry == 2) & ~idle
        lw = f.last_where(mark)
        has = lw >= 0
        lc = f.touched
        three_last = np.where(has, ncarry[np.maximum(lw, 0)] == 3, self._three[lc])
        if cand.any():
            src = ffill_index(mark, f.seg_start)
            three_now = np.where(src >= 0, ncarry[np.maximum(src, 0)] == 3, self._three[c])
            i_loss = cand & three_now
            loss = (v_loss | i_loss) & three
        else:
            loss = v_loss & three
        judged = (v_judged | i_known) & three
        ok = judged & ~loss
        self.episodes.step(
            c,
            f.ts,
            loss,
            ok,
            self.p["min_duration_s"],
            0.0,
            lambda: {
                "min_phase_voltage_ratio": np.where(np.isnan(lo), np.inf, lo),
                "phases_carrying": ncarry.astype(np.float64),
            },
            _mask(judged),
            cadence=f.cadence,
        )
        t3 = np.take(three, f.last_idx)
        self._three[lc[t3]] = three_last[t3]
        sc, rows = self._last_rows(f, three)
        self.score[sc] = np.where(loss[rows], 1.0, np.where(judged[rows], 0.0, np.nan))


class PhaseImbalance(Detector):
    fault = "phase_imbalance"

    def _update(self, f: Frame, events: Events, now: float) -> None:
        if len(f):
            _split(f, self._screen(f), self._calm, self._judge)

    def _screen(self, f: Frame) -> B:
        """Quiet: not three-phase, or every current known and the connector's
        smallest at least (1 - threshold / 2) of its largest: no row's
        imbalance can then reach the threshold (half of it leaves room for
        rounding)."""
        lc = f.touched
        i_lo = _per_conn(f, "elec:cur_min", np.minimum, f.block(2))  # NaN: some unknown
        i_hi = _per_conn(f, "elec:cur_fmax", np.fmax, f.block(2))
        ok = i_lo / i_hi >= 1.0 - 0.5 * self._at("threshold", lc)
        out: B = ~_pending(self.episodes, lc) & ((_phases_of(f, self.phases) != 3) | ok)
        return out

    def _calm(self, f: Frame, quiet: B) -> None:
        """The score of the quiet three-phase connectors, from their last row."""
        lc = f.touched
        cur = _last3(f, 2).T
        imb, _ = self._imbalance(cur, rmax(cur), rall(np.isfinite(cur)), lc)
        m = quiet & (_phases_of(f, self.phases) == 3)
        self.score[lc[m]] = (imb / self.p["threshold"][lc])[m]

    def _imbalance(self, cur: F64, imax: F64, judged: B, c: NDArray[np.int64]) -> tuple[F64, F64]:
        """Per row, (max - min) / max of the loaded phases (0 when not busy), and
        that min."""
        loaded = cur > self._at3("floor_a", c)
        imin = rmin(np.where(loaded, cur, np.inf))
        busy = (rcount(loaded) >= 2) & (imax >= self._at("min_current_a", c)) & judged
        imb = np.where(busy, (imax - imin) / np.where(busy, imax, 1.0), 0.0)
        return imb, imin

    def _judge(self, f: Frame) -> None:
        cur, _, i_all, imax = _currents(f)
        judged = _three_rows(f, self.phases) & i_all
        c = f.conn
        imb, imin = self._imbalance(cur, imax, judged, c)
        bad = imb > self._at("threshold", c)
        self.episodes.step(
            c,
            f.ts,
            bad,
            imb < self._at("clear", c),
            self.p["min_duration_s"],
            0.0,
            {"imbalance": imb, "max_a": imax, "min_loaded_a": imin},
            _mask(judged),
            cadence=f.cadence,
        )
        lc, rows = self._last_rows(f, judged)
        self.score[lc] = imb[rows] / self.p["threshold"][lc]


_NO_VALUES = np.empty((0, 0))


class PowerOscillation(Detector):
    fault = "power_oscillation"

    def _episodes(self) -> Episodes:
        self._hist = History(int(self.params.window_samples))  # type: ignore[attr-defined]
        # The times of each connector's last min_reversals - 1 reversals (the
        # default's count: like window_samples, not overridden per site).
        need = int(self.params.min_reversals)  # type: ignore[attr-defined]
        self._revs = History(need - 1)
        return Episodes(self.fault, self.findings)

    def _grow(self, n: int) -> None:
        if not hasattr(self, "_sign"):
            self._sign = np.zeros(0)
            self._cum = np.zeros(0)
            self._calm = np.ones(0, np.bool_)
            self._last_rev = np.full(0, np.nan)  # time of the last reversal
            self._kth_rev = np.full(0, np.nan)  # of the min_reversals-th latest
        self._sign = grown(self._sign, n, 0.0)
        self._cum = grown(self._cum, n, 0.0)
        # No reversal within the last window_samples rows: a batch without large
        # steps leaves such a connector's state as it is, with a count of zero.
        self._calm = grown(self._calm, n, True)
        self._last_rev = grown(self._last_rev, n, np.nan)
        self._kth_rev = grown(self._kth_rev, n, np.nan)

    def _update(self, frame: Frame, events: Events, now: float) -> None:
        p = frame.col("power_w")
        f = frame
        if not _all_finite(p):
            known = np.isfinite(p)
            f = frame if known.all() else frame.rows(known)
        c, p = f.conn, f.col("power_w")
        level = np.fmax(p, f.prev_p)
        np.fmax(level, self._at("min_power_w", c), out=level)
        level *= self._at("swing_fraction", c)
        step = p - f.prev_p
        big = np.abs(step, out=step) > level  # |dp| in place: the signs are read below only
        if not big.any() and self._calm[f.touched].all():
            # No reversal in any window of samples; none in the time window either?
            tc = f.touched
            quiet = ~(f.ts[f.first_idx] - self._last_rev[tc] <= self.p["window_s"][tc])
            if quiet.all():
                # The healthy case: no large step now, no reversal in any window.
                # Nothing set: only an open or pending episode can change (clear).
                if _pending(self.episodes, tc).any():
                    zero = np.zeros(c.shape[0])
                    self.episodes.step(
                        c,
                        f.ts,
                        zero > 0,
                        zero == 0,
                        self.p["min_duration_s"],
                        0.0,
                        cadence=f.cadence,
                    )
                self.score[tc] = 0.0
                return
        dp = p - f.prev_p
        sign = np.where(big, np.sign(dp), 0.0)
        # Sign of the previous large step (within the batch, else carried).
        src = ffill_index(big, f.seg_start)
        prev_src = prev_in_segment(src, f.first, np.full(src.shape[0], -1))
        prev_sign = np.where(prev_src >= 0, sign[np.maximum(prev_src, 0)], self._sign[c])
        rev = big & (sign * prev_sign < 0)
        # Rolling count of reversals over the last `window_samples` rows.
        cum = np.cumsum(rev.astype(np.float64))
        seg_start = f.seg_start
        base = cum[seg_start] - rev[seg_start]  # cumsum before each segment
        run = cum - base + self._cum[c]
        lagged = self._hist.lag(f, run)
        count = run - np.where(np.isnan(lagged), 0.0, lagged)
        need = self._at("min_reversals", c)
        # In time: the last reversal and the need-th latest, as of each row.
        last_rev, kth_rev = self._reversal_times(f, rev)
        window = self._at("window_s", c)
        recent = f.ts - kth_rev <= window
        self.episodes.step(
            c,
            f.ts,
            (count >= need) | recent,
            (count < 0.5 * need) & ~(f.ts - last_rev <= window),
            self.p["min_duration_s"],
            0.0,
            {"reversals": count, "power_w": p},
            cadence=f.cadence,
        )
        lc, last = f.touched, f.last_idx
        self._cum[lc] = run[last]
        has_big = src[last] >= 0
        self._sign[lc[has_big]] = sign[src[last][has_big]]
        buf = np.nan_to_num(self._hist.buf[lc], nan=0.0)
        self._calm[lc] = (buf == run[last][:, None]).all(axis=1)
        self.score[lc] = np.fmax(
            count[last] / self.p["min_reversals"][lc], np.where(recent[last], 1.0, 0.0)
        )

    def _reversal_times(self, f: Frame, rev: B) -> tuple[F64, F64]:
        """Per row: the time of the connector's last reversal at or before it, and
        of the min_reversals-th latest (NaN: not that many yet); carried across
        updates."""
        rows = np.flatnonzero(rev)
        tc = f.touched
        seg = np.cumsum(f.first) - 1  # each row's segment number
        if rows.size == 0:
            return self._last_rev[tc][seg], self._kth_rev[tc][seg]
        t = f.ts[rows]
        sub = Frame.build(f.conn[rows], t, t, _NO_VALUES, f.status[rows], f.n_conn)
        kth = self._revs.lag(sub, t)  # min_reversals >= 2: lag min_reversals - 1
        src = ffill_index(rev, f.seg_start)
        at = np.maximum(src, 0)
        pos = np.searchsorted(rows, at)  # each row's last reversal, among ``rows``
        pos = np.minimum(pos, rows.size - 1)
        has = src >= 0
        last_rev = np.where(has, f.ts[at], self._last_rev[tc][seg])
        kth_rev = np.where(has, kth[pos], self._kth_rev[tc][seg])
        self._last_rev[tc] = last_rev[f.last_idx]
        self._kth_rev[tc] = kth_rev[f.last_idx]
        return last_rev, kth_rev
