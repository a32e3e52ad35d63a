"""Energy-meter faults: meter_stuck, meter_regression, meter_mismatch, meter_unit_error.

meter_stuck
    Catches: the import register does not move (advances by less than 5 % of
    what power says flowed over the interval, ~1/1000 aside: that is
    meter_unit_error) while power above
    ``min_power_w`` flows, for ``min_duration_s`` from its last reading before
    it stood (a still step says it stood since the previous register), on the
    samples that duration spans at the connector's learned interval (counted
    from the first still step). Power against
    register, per interval between registers: power reported since the
    previous register stands in when a sample carries only the register.
    Inputs: energy_wh, power_w. Clears when the register advances. Ignores:
    rows without power (idle, SuspendedEV), registers coarser than
    ``min_power_w * min_duration_s``, falls (meter_regression's).
meter_regression
    Catches: the register goes down by more than ``tolerance_wh`` (reset, meter
    swap, wrap, a per-transaction register falling below zero) within a
    transaction or with none, and stays down: the fall is confirmed by the
    connector's next known register still being below the value before the
    fall (a real regression persists; a corrupt reading is isolated), plus half
    the energy the reported power says flowed since (at 150 kW and 60 s a 5 kWh
    fall is made up in two readings, yet the energy is lost). Found at
    that next register: one sample interval after the fall. Active for
    ``hold_s`` after the last confirmed drop. Inputs: energy_wh, negative
    values included (counted as ``negative_registers``). Ignores: one corrupt
    register (0, a low value, a negative one) that the next register undoes;
    one reading too high (a corrupt word, 0xFFFFFFFF Wh), whose fall lands at
    or above the register before it, plus half what the power says flowed
    over the fall's interval (counted as ``register_spikes``);
    the register restarting (at 0 or a low value) at the first register
    received after a transaction start, as some chargers count per
    transaction, and such a restart after a corrupt reading; NaN registers.
meter_mismatch
    Catches: register delta differs from the integral of reported power by more
    than ``tolerance`` over a ``window_s`` window (tumbling, aligned to the
    epoch so batch cuts do not matter); or a smaller error that persists: a
    two-sided CUSUM of the windows' relative error (ratio - 1) beyond
    ``drift_allowance`` per window reaches ``drift_limit`` (e.g. a meter 10 %
    off is found after ~6 windows, one 8 % off after ~10). The CUSUM clears
    once it has drained to half the limit; windows beyond ``tolerance`` reset
    it. Inputs: energy_wh, power_w (V and I to rule out unit errors). Ignores:
    errors within ``drift_allowance`` per window, and zero-mean errors (kW
    power resolution, register steps: they drain the CUSUM), windows with less than
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
    ~1000x for ``min_duration_s``, from the register before the first bad step
    on (a bad step says the register was off over its whole interval), on the
    samples that duration spans at the connector's learned interval. Ignores:
    rows with total current below ``min_current_a``, intervals expecting under
    ``min_expected_wh`` or longer than ``max_gap_s``, zero register steps
    (resolution), drops; a single register reading ~1000x too high (0xFFFFFFFF
    Wh in a MWh register), whose fall back lands at or above the register
    before it.
"""

from __future__ import annotations

__all__ = ["MeterMismatch", "MeterRegression", "MeterStuck", "MeterUnitError"]

import numpy as np
from numpy.typing import NDArray

from chargewatch.detectors.base import Detector
from chargewatch.detectors.episodes import Episodes
from chargewatch.detectors.sequencer import Events, Frame, grown

F64 = NDArray[np.float64]
I64 = NDArray[np.int64]
B = NDArray[np.bool_]


def reference_power(f: Frame) -> F64:
    """Sum of V*I over the phases where both are reported (DC: line 1); NaN if none."""
    out: F64 = f.derived("v_times_i", _reference_power)
    return out


def _reference_power(f: Frame) -> F64:
    # Phase by phase (an (n, 3) product and its masks cost a pass over 300k
    # values each); the same sums, in the same order, as over the block.
    # (Computing it in cache-sized chunks of rows was measured: no faster here,
    # the reads of the six columns bound it.)
    v, i = f.block(5), f.block(2)
    vi: list[F64] = []
    known: list[B] = []
    for j in range(3):
        x = v[:, j] * i[:, j]
        k = np.isfinite(x)
        if not k.all():
            # putmask: a masked copyto branches per row, ~5x slower on masks
            # that alternate (1- and 3-phase chargers, a row each).
            np.putmask(x, ~k, 0.0)
        vi.append(x)
        known.append(k)
    out = vi[0] + vi[1]
    out += vi[2]
    if not known[0].all():  # phase 1 is reported on every row: the usual case
        np.putmask(out, ~(known[0] | known[1] | known[2]), np.nan)
    return out


def _total_current(f: Frame) -> F64:
    """Sum of the phase currents, NaN counted as 0 (``rnansum``), phase by phase:
    a phase reported on every row needs no masked copy."""
    out: F64 = f.derived("i_total", _nansum3)
    return out


def _nansum3(f: Frame) -> F64:
    cur = f.block(2)
    cols: list[F64] = []
    for j in range(3):
        x = cur[:, j]
        nan = np.isnan(x)
        if nan.any():
            x = x.copy()
            np.putmask(x, nan, 0.0)  # (a masked copyto branches per row)
        cols.append(x)
    out: F64 = cols[0] + cols[1]
    out += cols[2]
    return out


def register_steps(f: Frame) -> tuple[F64, F64]:
    """Per row, the register's step since the connector's previous known
    register and the seconds between the two (NaN on a connector's first
    register): computed once per frame for the four meter detectors, read-only."""
    out: tuple[F64, F64] = f.derived("register_steps", _register_steps)
    return out


def _register_steps(f: Frame) -> tuple[F64, F64]:
    de = f.col("energy_wh") - f.prev_e
    dt = f.ts - f.prev_e_ts
    de.flags.writeable = False
    dt.flags.writeable = False
    return de, dt


def _flowed_wh(f: Frame, seconds: F64) -> F64:
    """Per row, the energy in Wh the reported power says flowed over ``seconds``
    before it: the lower of the row's power and the previous known one (a
    change of load within the interval is not overstated); 0 where neither is
    known or the power is negative."""
    rate = np.fmin(f.col("power_w"), f.prev_p)
    out: F64 = np.nan_to_num(np.maximum(rate, 0.0) * seconds / 3600.0, nan=0.0)
    return out


def finite_rows(f: Frame, name: str) -> B:
    """Rows where field ``name`` is known (finite): once per frame, read-only."""
    out: B = f.derived(f"finite:{name}", lambda g: _readonly(np.isfinite(g.col(name))))
    return out


def _readonly(a: NDArray[np.generic]) -> NDArray[np.generic]:
    a.flags.writeable = False
    return a


def step_range(f: Frame) -> tuple[float, float, float, bool]:
    """The least and greatest register step and the longest interval of the
    frame (NaN ignored; NaN when there is none), and whether any step is NaN:
    scalar bounds that rule out, for every row at once, conditions a healthy
    frame never meets."""
    out: tuple[float, float, float, bool] = f.derived("step_range", _step_range)
    return out


def _step_range(f: Frame) -> tuple[float, float, float, bool]:
    de, dt = register_steps(f)
    if de.shape[0] == 0:
        return np.nan, np.nan, np.nan, False
    lo = float(np.minimum.reduce(de))  # NaN if any step is
    gap = np.isnan(lo)
    if gap:
        lo = float(np.fmin.reduce(de))
    return lo, float(np.fmax.reduce(de)), float(np.fmax.reduce(dt)), gap


def _quiet(ep: Episodes) -> bool:
    """No connector active or in a pending run: then ``Episodes.step`` with no
    set row changes nothing, and the rows need not be built for it."""
    return ep.quiet


def power_over_vi(f: Frame) -> tuple[F64, B]:
    """Reported power over V*I per row, and whether it is ~1000x off either way
    (``_thousandfold``): computed once per frame for meter_mismatch and
    meter_unit_error."""
    out: tuple[F64, B] = f.derived("p_over_vi", _power_over_vi)
    return out


def _power_over_vi(f: Frame) -> tuple[F64, B]:
    ratio = f.col("power_w") / reference_power(f)
    return ratio, _thousandfold_rows(ratio)


def _all_or_mask(ok: B) -> B | None:
    """None when every row is judged (the common case: no masking needed)."""
    return None if bool(ok.all()) else ok


#: A register step below this share of the energy power says flowed over the
#: interval is a register standing still (a step of 1 Wh where 55 Wh flowed is
#: no resolution effect); meter_mismatch leaves ratios under 0.05 to meter_stuck,
#: except those near 1/1000 (meter_unit_error's).
_STILL = 0.05


class MeterStuck(Detector):
    fault = "meter_stuck"

    def _update(self, f: Frame, events: Events, now: float) -> None:
        p = f.col("power_w")
        ek, pk = finite_rows(f, "energy_wh"), finite_rows(f, "power_w")
        if pk.all():
            judged = None if ek.all() else ek
        else:
            # Register and power may come in separate samples (OCPP chargers send
            # them in separate MeterValues): power reported since the previous
            # register stands for the interval.
            pet = f.prev_e_ts
            p = np.where(pk, p, np.where(f.prev_p_ts >= pet, f.prev_p, np.nan))
            judged = _all_or_mask(ek & np.isfinite(p))
        de, dt = register_steps(f)
        still = self._still(p, de, dt, step_range(f)[2])
        if still.any() or not _quiet(self.episodes):
            self._judge(f, p, de, dt, still, judged)
            return
        # The healthy case: no register stands still, nothing open or pending;
        # no row is stuck, so only each connector's last row (its score) counts.
        c, r = self._last_rows(f, judged)
        lo, _, _, gap = step_range(f)
        if lo > 0.0 and not gap:  # every register moved: 0 everywhere
            self.score[c] = 0.0
            return
        moved = de[r] > 0
        low = p[r] <= self.p["min_power_w"][c]
        self.score[c] = np.where(moved | low, 0.0, np.nan)

    @staticmethod
    def _still(p: F64, de: F64, dt: F64, dt_max: float) -> B:
        """Rows whose register step is under ``_STILL`` of what power says flowed
        (NaN on a connector's first register: neither). A step at or above that
        share of what the largest power flowing over the longest interval gives
        is none (one product a row, no margin to spare for rounding: 1e-9 is
        ample), so the exact products are formed only when some row fails that."""
        bound = dt_max * (1.0 / 3600.0) * _STILL * (1.0 + 1e-9)
        # (Negative power, from a frame not built by the sequencer: exactly.)
        if np.isfinite(bound) and bound >= 0.0 and np.fmin.reduce(p) >= 0.0:
            if np.fmin.reduce(de) >= np.fmax.reduce(p) * bound:  # no row: no pass
                return np.zeros(de.shape[0], np.bool_)
            cand = de < p * bound
            if not cand.any():
                return cand
        # The same products, in place, as _STILL * (p * dt * (1 / 3600)).
        lim = p * dt
        lim *= 1.0 / 3600.0
        lim *= _STILL
        out: B = de < lim
        return out

    def _judge(self, f: Frame, p: F64, de: F64, dt: F64, still: B, judged: B | None) -> None:
        """Every row through the episodes: some register stands still, or an
        episode is open or pending."""
        e = f.col("energy_wh")
        flowed = p * dt * (1.0 / 3600.0)
        if still.any():
            # A register ~1000x slow is one in kWh labelled Wh: meter_unit_error's.
            still = still & ~_thousandfold(de / flowed)
        floor = self._at("min_power_w", f.conn)
        # Power must also have flowed at the step's start (where known): at long
        # intervals a charge that resumes just before a reading shows power at
        # it over a step that was mostly paused, the register rightly still.
        stuck = still & (de >= 0) & (p > floor) & ~(f.prev_p <= floor)
        moved = (de > 0) & ~still
        # A still step says the register stood from its previous reading on: the
        # run is timed from there. Timed from the first still row instead, a
        # register was one interval longer still than its run said, and at 60 s
        # two intervals of 59-61 s (1 s of jitter) fell short of 120 s about
        # half the time, costing a third interval (issue 17's budget overshot).
        self.episodes.step(
            f.conn,
            f.ts,
            stuck,
            moved,
            self.p["min_duration_s"],
            0.0,
            lambda: {"energy_wh": e, "power_w": p, "since_s": dt},
            judged,
            cadence=f.cadence,
            began=f.prev_e_ts,
            began_is_sample=True,
        )
        # Score: 1.0 while the register is frozen under load, 0 when it moves.
        c, r = self._last_rows(f, judged)
        st, mv = stuck[r], moved[r]
        low = p[r] <= self.p["min_power_w"][c]
        self.score[c] = np.where(st, 1.0, np.where(mv | low, 0.0, np.nan))


class MeterRegression(Detector):
    """A register that falls, and stays fallen. A fall at the first register
    received after a transaction start is the register restarting for the
    transaction (some chargers count per transaction), not a regression; falls
    within a transaction, or with no transaction seen, are.

    A fall is confirmed by the connector's next known register: a reset, meter
    swap or wrap persists (the next register is still below the value before
    the fall, whether it stands or counts on from the lower value), while a
    corrupt reading is isolated (the next register continues from the value
    before it). So one bad sample (0, 5 Wh or -5 Wh among 1 MWh registers) is
    no finding, and a regression is found one sample interval later than the
    fall itself.

    Where power is reported, the register is expected to have grown meanwhile:
    a fall is confirmed while the next register is below the value before the
    fall plus half the energy the power says flowed since (slow sampling of a
    fast charger: at 150 kW and 60 s a 5 kWh fall is made up within two
    readings, yet the energy is lost).

    A single reading too high is as common (a corrupt word, 0xFFFFFFFF Wh from
    a failed meter read): the fall after it lands at or above the register
    before it (within the tolerance), so nothing the meter had counted was
    lost. Such a fall is the glitch ending, not a regression, and is counted
    (``register_spikes``). Where power is reported, the fallen value must also
    have grown on from that register by half the energy the power says flowed
    over the fall's interval: a register that stands still under load for two
    intervals is a fall, not a spike ending.
    """

    fault = "meter_regression"

    def _grow(self, n: int) -> None:
        if not hasattr(self, "_tx_start"):
            self._tx_start = np.full(0, np.nan)  # receive time of the last tx start
            self._e_recv = np.full(0, np.nan)  # receive time of the last known register
            # An unconfirmed fall at the connector's last known register: the
            # register before it, and the fallen value (NaN: none pending).
            self._pend_pre = np.full(0, np.nan)
            self._pend_e = np.full(0, np.nan)
            self._pend_ts = np.full(0, np.nan)  # ts of the register before the fall
            # The register before the connector's last known register (NaN: none).
            self._last_pe = np.full(0, np.nan)
        self._last_pe = grown(self._last_pe, n, np.nan)
        self._tx_start = grown(self._tx_start, n, np.nan)
        self._e_recv = grown(self._e_recv, n, np.nan)
        self._pend_pre = grown(self._pend_pre, n, np.nan)
        self._pend_e = grown(self._pend_e, n, np.nan)
        self._pend_ts = grown(self._pend_ts, n, np.nan)

    def _update(self, f: Frame, events: Events, now: float) -> None:
        e = f.col("energy_wh")
        pe = f.prev_e
        known = finite_rows(f, "energy_wh")
        judged = _all_or_mask(known)
        tol = self._at("tolerance_wh", f.conn)
        fall = self._falls(f, tol)
        pending = np.isfinite(self._pend_pre[f.touched]).any()
        if fall is None and not pending and _quiet(self.episodes):
            # The healthy case: no fall here or pending, nothing open.
            self._remember(f, events, known, None, pending=False)
            self.score[self._last_rows(f, judged)[0]] = 0.0
            return
        if fall is None:
            fall = np.zeros(e.shape[0], np.bool_)
        if fall.any():
            # A ~1000x step is a unit change (kWh read as Wh), reported as meter_unit_error.
            fall &= ~_thousandfold(pe / np.where(e > 0, e, np.nan))
            fall[self._restarts(f, events, known, fall)] = False
            spikes = self._spike_ends(f, known, fall, tol)
            if spikes:
                fall[spikes] = False
                self.counters["register_spikes"] = self.counters.get("register_spikes", 0) + len(
                    spikes
                )
        if fall.any() or pending:
            pre, low, pre_ts = self._pending(f, known, fall)
            grew = 0.5 * _flowed_wh(f, f.ts - pre_ts)  # 0 without power
            bad = e < pre - tol + grew  # NaN (nothing pending) is False
            if bad.any():  # a restart after a glitch confirms nothing
                bad[self._restarts(f, events, known, bad)] = False
        else:  # no fall here or pending, nothing to confirm
            pre, low, bad = pe, e, np.zeros(e.shape[0], np.bool_)
        self.episodes.step(
            f.conn,
            f.ts,
            bad,
            ~(bad | fall) if fall.any() else ~bad,
            0.0,
            self.p["hold_s"],
            lambda: {"energy_wh": low, "previous_wh": pre, "drop_wh": pre - low},
            judged,
        )
        self._remember(f, events, known, fall)
        c, r = self._last_rows(f, judged)
        # Score: the confirmed drop over the tolerance; an unconfirmed fall is unknown.
        d = np.where(bad[r], pre[r] - low[r], np.where(fall[r], np.nan, 0.0))
        tl = np.maximum(self.p["tolerance_wh"][c], 1.0)
        self.score[c] = np.maximum(d, 0.0) / tl

    @staticmethod
    def _falls(f: Frame, tol: F64 | float) -> B | None:
        """Rows where the register fell by more than the tolerance (pe - e > tol,
        from the shared steps: IEEE subtraction is antisymmetric); None when
        none did, which the least step shows without a pass when it is uniform."""
        if isinstance(tol, float) and step_range(f)[0] >= -tol:
            return None
        fall: B = register_steps(f)[0] < -tol
        return fall if fall.any() else None

    def _pending(self, f: Frame, known: B, fall: B) -> tuple[F64, F64, F64]:
        """Per row, the fall awaiting confirmation at it: the register before
        the fall, the fallen value and the ts of that register before, from the
        connector's previous known row (or an earlier update); NaN where none
        is pending."""
        pre, low = np.full(known.shape[0], np.nan), np.full(known.shape[0], np.nan)
        pre_ts = np.full(known.shape[0], np.nan)
        k = np.flatnonzero(known)
        if k.size == 0:
            return pre, low, pre_ts
        kc = f.conn[k]
        first = np.ones(k.size, np.bool_)
        first[1:] = kc[1:] != kc[:-1]
        pre_k = np.where(fall[k], f.prev_e[k], np.nan)
        low_k = np.where(fall[k], f.col("energy_wh")[k], np.nan)
        ts_k = np.where(fall[k], f.prev_e_ts[k], np.nan)
        pre[k[1:]], low[k[1:]], pre_ts[k[1:]] = pre_k[:-1], low_k[:-1], ts_k[:-1]
        fc = kc[first]
        pre[k[first]], low[k[first]] = self._pend_pre[fc], self._pend_e[fc]
        pre_ts[k[first]] = self._pend_ts[fc]
        return pre, low, pre_ts

    def _spike_ends(self, f: Frame, known: B, fall: B, tol: F64 | float) -> list[int]:
        """The rows of ``fall`` that end a single reading too high: the fallen
        value is at or above (less the tolerance) the register before the high
        one. Falls are rare, so they are walked one by one."""
        out: list[int] = []
        e = f.col("energy_wh")
        for i in np.flatnonzero(fall).tolist():
            lo = int(f.seg_start[i])
            before = np.flatnonzero(known[lo:i])
            # The register before the previous known one: that row's own previous.
            pp = f.prev_e[lo + before[-1]] if before.size else self._last_pe[int(f.conn[i])]
            t = tol if isinstance(tol, float) else float(tol[i])
            grew = 0.5 * float(_flowed_wh(f, f.ts - f.prev_e_ts)[i])  # 0 without power
            if e[i] >= pp - t + grew:  # NaN (no such register) is False
                out.append(i)
        return out

    def _restarts(self, f: Frame, events: Events, known: B, bad: B) -> list[int]:
        """The rows of ``bad`` that are a register restarting at a transaction
        start: one received after the previous register and by this row. Falls
        are rare, so they are walked one by one."""
        out: list[int] = []
        starts = events.tx_kind == 0
        s_conn, s_recv = events.tx_conn[starts], events.tx_recv[starts]
        for i in np.flatnonzero(bad).tolist():
            c = int(f.conn[i])
            lo = int(f.seg_start[i])
            before = np.flatnonzero(known[lo:i])
            prev = float(f.recv[lo + before[-1]]) if before.size else float(self._e_recv[c])
            mine = s_recv[(s_conn == c) & (s_recv <= f.recv[i])]
            latest = max(float(mine.max()) if mine.size else -np.inf, self._tx_start[c])
            if latest > prev or (np.isnan(prev) and np.isfinite(latest)):
                out.append(i)
        return out

    def _remember(
        self, f: Frame, events: Events, known: B, fall: B | None, pending: bool = True
    ) -> None:
        """``pending``: whether a touched connector may have a fall pending (False:
        none has, and there is none to clear)."""
        starts = np.flatnonzero(events.tx_kind == 0)
        if starts.size:  # events are sorted by (connector, recv): the last wins
            self._tx_start[events.tx_conn[starts]] = events.tx_recv[starts]
        lk = f.last_where(known)
        got = lk >= 0
        c, r = f.touched[got], lk[got]
        self._e_recv[c] = f.recv[r]
        self._last_pe[c] = f.prev_e[r]
        # A fall at a connector's last known register waits for the next one.
        if fall is None:
            if pending:
                self._pend_pre[c] = np.nan
                self._pend_e[c] = np.nan
                self._pend_ts[c] = np.nan
            return
        self._pend_pre[c] = np.where(fall[r], f.prev_e[r], np.nan)
        self._pend_e[c] = np.where(fall[r], f.col("energy_wh")[r], np.nan)
        self._pend_ts[c] = np.where(fall[r], f.prev_e_ts[r], np.nan)


#: Segments this long or shorter, all of one length, are summed position by
#: position (``_sums_by_position``); others by ``reduceat``, whose cost is per
#: segment (~20 ns each: 10k connectors' windows cost more than the rows).
_SUM_LOOP_MAX = 32


def _group_sums(f: Frame, x: F64, gi: I64) -> F64:
    """``np.add.reduceat(x, gi)``, bit for bit: by position when the groups are
    the connectors' segments, all ``f.uniform`` rows long."""
    n_rows = f.uniform if gi is f.first_idx else 0
    if 0 < n_rows <= _SUM_LOOP_MAX and x.shape[0] == gi.shape[0] * n_rows:
        return _sums_by_position(x.reshape(-1, n_rows))
    out: F64 = np.add.reduceat(x, gi)
    return out


def _sums_by_position(v: F64) -> F64:
    """Each row's sum of an (m, k) array, k <= 128, in the order of numpy's
    ``add.reduceat`` over a segment of k values (which a test holds it to): the
    first value plus the pairwise sum of the rest, which for fewer than 8 is a
    plain running sum and otherwise runs 8 accumulators, combines them as
    ((0+1)+(2+3))+((4+5)+(6+7)) and adds the remainder in order. Strided passes
    over all segments at once instead of a call per segment."""
    k = v.shape[1]
    if k == 1:
        return v[:, 0].copy()
    n = k - 1  # the values after the first
    if n < 8:
        res = v[:, 1].copy()
        for j in range(2, k):
            res += v[:, j]
    else:
        acc = [v[:, 1 + j] for j in range(8)]  # views until written
        i = 8
        while i < n - n % 8:
            for j in range(8):
                acc[j] = acc[j] + v[:, 1 + i + j]
            i += 8
        res = acc[0] + acc[1]
        s23 = acc[2] + acc[3]
        s45 = acc[4] + acc[5]
        s45 += acc[6] + acc[7]
        res += s23
        res += s45
        for j in range(i, n):
            res += v[:, 1 + j]
    out: F64 = v[:, 0] + res
    return out


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

    def grow(self, n: int) -> None:
        self.w = grown(self.w, n, np.nan)
        self.sums = grown(self.sums, n, 0.0)

    @staticmethod
    def _groups(f: Frame, window_s: F64 | float) -> tuple[I64, F64]:
        """The first row of each (connector, window) group of rows, and the
        group's window id. ts rises within a connector and its window_s is one
        value, so when its first and last row share a window all its rows do
        (the usual case for short batches): the window is then worked out for
        those two rows only, and for every row otherwise."""
        fi, li = f.first_idx, f.last_idx
        if isinstance(window_s, float):
            wf, wl = np.floor(f.ts[fi] / window_s), np.floor(f.ts[li] / window_s)
        else:
            wf, wl = np.floor(f.ts[fi] / window_s[fi]), np.floor(f.ts[li] / window_s[li])
        if bool((wf == wl).all()):
            return fi, wf
        wid = np.floor(f.ts / window_s)
        # Rows are sorted by (conn, ts), so each (conn, window) group is contiguous.
        start = f.first.copy()
        start[1:] |= wid[1:] != wid[:-1]
        gi = np.flatnonzero(start)
        return gi, wid[gi]

    @staticmethod
    def _leave_out_steps(p: F64, pp: F64, ok: B) -> None:
        """Clear ``ok`` (in place) on intervals with a step in power: their
        integral is unknowable from samples (the register knows, the samples do
        not). A step is |p - pp| > 0.3 * max(p, pp) with max(p, pp) > 1000 W,
        so |p - pp| > 300 W (0.3 * 1000.0 rounds to 300.0, and rounding is
        monotonic): the exact test runs on the rows beyond that only."""
        jump = p - pp
        np.abs(jump, out=jump)
        cand = np.flatnonzero(jump > 300.0)
        if cand.size == 0:
            return
        big = np.fmax(p[cand], pp[cand])
        step = (jump[cand] > 0.3 * big) & (big > 1000.0)
        ok[cand[step]] = False

    def step(
        self, f: Frame, window_s: F64 | float, max_gap_s: F64 | float
    ) -> tuple[I64, F64, NDArray[np.float64]]:
        """Returns completed windows: connector, end time, sums (k, 6).

        ``window_s`` and ``max_gap_s`` are per row or scalars; rows must have a
        known register. Previous values are the frame's: the last *known*
        register and power, each with its own ts.
        """
        n = f.conn.shape[0]
        if n == 0:
            return np.empty(0, np.int64), np.empty(0), np.empty((0, 6))
        p = f.col("power_w")
        pt, pp, ppt = f.prev_e_ts, f.prev_p, f.prev_p_ts
        de, dt = register_steps(f)  # read-only: copied before any row is zeroed
        # An interval counts for the register only when its power integral counts
        # too (both ends known, the same interval), so a sample with unknown power
        # cannot skew a ratio.
        ok_e = dt <= max_gap_s  # NaN (no previous register): False
        if ppt is not pt:  # the sequencer shares one array when they are equal
            ok_e &= f.ts - ppt == dt
        pk = finite_rows(f, "power_w")
        if not pk.all():
            ok_e &= pk  # pp is finite where its ts equals pt
        self._leave_out_steps(p, pp, ok_e)
        ip = p + pp  # (p + pp) * (0.5 / 3600.0) * dt, in place
        ip *= 0.5 / 3600.0
        ip *= dt
        counted = dt
        all_ok = bool(ok_e.all())
        if not all_ok:  # intervals left out count for nothing
            out = ~ok_e
            de, counted = de.copy(), dt.copy()
            de[out], ip[out], counted[out] = 0.0, 0.0, 0.0
        de_min = step_range(f)[0]  # (left-out rows are 0: no lower)
        reg = de < 0 if not de_min >= 0.0 else None
        any_reg = reg is not None and bool(reg.any())
        if any_reg:
            de = de.copy() if not de.flags.writeable else de
            de[reg] = 0.0
        # Seconds the register stood still under load: such windows belong to
        # meter_stuck, and comparing them would report the same fault twice.
        frozen = None
        if not (all_ok and de_min > 0.0):
            still = de == 0
            if still.any():
                frozen = np.where(ok_e & still & (np.fmin(p, pp) > 500.0), dt, 0.0)
        # Intervals no calibration error explains: a catch-up jump after a freeze
        # or lost samples, or power off by ~1000x against V*I (a unit error).
        # (V*I is >= 0: the sequencer drops negatives; p / 0 is inf, not 1000x.)
        suspect = power_over_vi(f)[1]
        # de > 5 |ip| + 50 needs de > 5 m + 50 for any m <= every |ip| (the bound
        # rounds the same way): when no row's step exceeds it, no row is a jump.
        m = float(np.fmin.reduce(ip))
        if np.fmax.reduce(de) > 5.0 * (m if m > 0.0 else 0.0) + 50.0:
            lim = np.abs(ip)  # 5.0 * np.abs(ip) + 50.0, in place
            lim *= 5.0
            lim += 50.0
            suspect = suspect | (de > lim)
        cols = [de, ip, reg if any_reg else None, frozen, suspect, counted]
        gi, gw = self._groups(f, window_s)
        sums = np.zeros((gi.shape[0], 6))
        for j, col in enumerate(cols):
            # Columns that are zero on every row (the healthy case for the flags)
            # need no reduction.
            if col is not None and (j < 2 or col.any()):
                sums[:, j] = _group_sums(f, col.astype(np.float64, copy=False), gi)
        gconn = f.conn[gi]
        if gi.shape[0] == f.first_idx.shape[0]:
            # The usual case for short batches: each connector's rows lie in one
            # window, so every group is its connector's first and last.
            fi = np.arange(gi.shape[0])
            li = fi
        else:
            gfirst = f.first[gi]
            glast = np.ones(gi.shape[0], np.bool_)
            glast[:-1] = gconn[1:] != gconn[:-1]
            fi, li = np.flatnonzero(gfirst), np.flatnonzero(glast)
        # Each connector's carried open window either continues in its first
        # group, or was complete already (a later window has begun).
        fc = gconn[fi]
        if fc.size and fc[-1] == fc.shape[0] - 1:
            # Every connector 0..k-1 has rows (fc ascends, no repeats): its
            # state is a leading slice, read and written without a gather.
            cw = self.w[: fc.shape[0]].copy()
            carried = self.sums[: fc.shape[0]].copy()
        else:
            cw = self.w[fc]
            carried = np.take(self.sums, fc, axis=0)
        same = cw == gw[fi]
        if same.all():
            if li is fi:
                sums += carried
            else:
                sums[fi] += carried
            closed = np.zeros(fc.shape[0], np.bool_)
        else:
            sums[fi[same]] += carried[same]
            closed = np.isfinite(cw) & ~same
        if li is fi and fi.shape[0] == gi.shape[0]:  # one group per connector
            if gconn.size and gconn[-1] == gconn.shape[0] - 1:
                self.w[: gconn.shape[0]] = gw
                self.sums[: gconn.shape[0]] = sums
            else:
                self.w[gconn] = gw
                self.sums[gconn] = sums
        else:
            self.w[gconn[li]] = gw[li]
            self.sums[gconn[li]] = np.take(sums, li, axis=0)
        if li.shape[0] == gi.shape[0] and not closed.any():
            return np.empty(0, np.int64), np.empty(0), np.empty((0, 6))
        done = np.ones(gi.shape[0], np.bool_)
        done[li] = False
        dc = np.concatenate([fc[closed], gconn[done]])
        dw = np.concatenate([cw[closed], gw[done]])
        dsum = np.concatenate([carried[closed], sums[done]])
        order = np.argsort(dc, kind="stable")  # per connector, the carried window first
        dc, dw, dsum = dc[order], dw[order], dsum[order]
        return dc, dw, dsum


class MeterMismatch(Detector):
    fault = "meter_mismatch"

    def _grow(self, n: int) -> None:
        if not hasattr(self, "_w"):
            self._w = _Windows()
            self._up = np.zeros(0)  # CUSUM of (ratio - 1) above the allowance,
            self._down = np.zeros(0)  # and below it, per connector
        self._w.grow(n)
        self._up = grown(self._up, n, 0.0)
        self._down = grown(self._down, n, 0.0)

    def _update(self, frame: Frame, events: Events, now: float) -> None:
        known = finite_rows(frame, "energy_wh")
        f = frame if known.all() else frame.rows(known)
        conn, wid, s = self._w.step(f, self._at("window_s", f.conn), self._at("max_gap_s", f.conn))
        if conn.size == 0:
            return
        t_end = (wid + 1.0) * self.p["window_s"][conn]
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
        large = judged & plausible & (dev > tol)
        drift = self._cusum(conn, ratio - 1.0, judged & plausible, large)
        limit = self.p["drift_limit"][conn]
        bad = large | (judged & plausible & (drift >= limit))
        good = judged & (((dev <= tol) & (drift <= 0.5 * limit)) | ~plausible)
        k = judged
        self.episodes.step(
            conn[k],
            t_end[k],
            bad[k],
            good[k],
            0.0,
            0.0,
            {
                "register_delta_wh": de[k],
                "power_integral_wh": ip[k],
                "ratio": ratio[k],
                "drift": drift[k],
            },
        )
        # Score: the last judged window of each connector (unjudged windows keep it).
        jc = conn[judged]
        jscore = np.where(plausible, np.fmax(dev / tol, drift / limit), 0.0)[judged]
        last = np.ones(jc.shape[0], np.bool_)
        last[:-1] = jc[1:] != jc[:-1]
        self.score[jc[last]] = jscore[last]

    def _cusum(self, conn: I64, x: F64, use: B, reset: B) -> F64:
        """Two-sided CUSUM of the windows' relative error ``x`` (ratio - 1), per
        connector in window order: up = max(0, up + x - k), down = max(0, down - x
        - k), k = ``drift_allowance``, each capped at ``drift_limit`` (so that it
        drains in a few windows once the drift ends). Windows beyond
        ``tolerance`` reset it (they are a finding of their own); windows not
        judged leave it. Returns max(up, down) after each window.

        Completed windows are few per update (one per connector per window_s), so
        this walks them by rank within their connector: a loop over window
        positions, each step vectorised over connectors.
        """
        n = conn.shape[0]
        out = np.zeros(n)
        first = np.ones(n, np.bool_)
        first[1:] = conn[1:] != conn[:-1]
        starts = np.flatnonzero(first)
        rank = np.arange(n) - np.repeat(starts, np.diff(np.append(starts, n)))
        allow, cap = self.p["drift_allowance"], self.p["drift_limit"]
        for r in range(int(rank.max()) + 1):
            rows = np.flatnonzero(rank == r)
            c = conn[rows]
            xr, u, z = x[rows], use[rows], reset[rows]
            up = np.where(
                u, np.minimum(np.maximum(self._up[c] + xr - allow[c], 0.0), cap[c]), self._up[c]
            )
            down = np.where(
                u, np.minimum(np.maximum(self._down[c] - xr - allow[c], 0.0), cap[c]), self._down[c]
            )
            up[z] = 0.0
            down[z] = 0.0
            self._up[c], self._down[c] = up, down
            out[rows] = np.maximum(up, down)
        return out


def _thousandfold(ratio: F64) -> B:
    """Ratio near 1/1000 or 1000 (a kilo- prefix lost or added): |log10| in (2, 4),
    by comparisons (no logarithm over every row). NaN is False."""
    r = np.asarray(ratio)
    return np.asarray(((r > 1e2) & (r < 1e4)) | ((r > 1e-4) & (r < 1e-2)))


def _thousandfold_rows(ratio: F64) -> B:
    """``_thousandfold(ratio)``; when every ratio lies within [1e-2, 1e2] (NaN
    aside: two reductions show it, the healthy case), no row is, and the four
    comparisons over every row are spared."""
    if ratio.shape[0] and np.fmin.reduce(ratio) >= 1e-2 and np.fmax.reduce(ratio) <= 1e2:
        return np.zeros(ratio.shape[0], np.bool_)
    return _thousandfold(ratio)


class MeterUnitError(Detector):
    fault = "meter_unit_error"

    def _episodes(self) -> Episodes:
        self._energy = Episodes(self.fault, self.findings)
        return Episodes(self.fault, self.findings)

    @property
    def active(self) -> NDArray[np.bool_]:
        return (self.episodes.active | self._energy.active)[: self.n]

    def _grow(self, n: int) -> None:
        self._energy.ensure(n)
        if not hasattr(self, "_last_pe"):
            # The register before the connector's last known register (NaN: none).
            self._last_pe = np.full(0, np.nan)
        self._last_pe = grown(self._last_pe, n, np.nan)

    def _update(self, f: Frame, events: Events, now: float) -> None:
        self._power(f)
        self._register(f)
        lk = f.last_where(finite_rows(f, "energy_wh"))
        got = lk >= 0
        self._last_pe[f.touched[got]] = f.prev_e[lk[got]]

    def _spike_ends(self, f: Frame, switch: B) -> list[int]:
        """The rows of ``switch`` that end a single reading ~1000x too high: the
        level falls back to at or above the register before that reading.
        Such a pair of steps is a corrupt reading (0xFFFFFFFF Wh in a MWh
        register), not a unit change, which stays at its new level."""
        out: list[int] = []
        e, known = f.col("energy_wh"), finite_rows(f, "energy_wh")
        for i in np.flatnonzero(switch & (e < f.prev_e)).tolist():
            lo = int(f.seg_start[i])
            before = np.flatnonzero(known[lo:i])
            pp = f.prev_e[lo + before[-1]] if before.size else self._last_pe[int(f.conn[i])]
            if e[i] >= pp:  # NaN (no such register) is False
                out.append(i)
        return out

    def _power(self, f: Frame) -> None:
        """Power path: reported power vs V*I, per sample."""
        p = f.col("power_w")
        pref = reference_power(f)
        ratio, thousandfold = power_over_vi(f)
        if thousandfold.any() or not _quiet(self.episodes):
            judged = self._judged(f, None)
            bad = thousandfold & judged
            self.episodes.step(
                f.conn,
                f.ts,
                bad,
                ~bad,
                self.p["min_duration_s"],
                0.0,
                lambda: {"power_w": p, "v_times_i_w": pref, "ratio": ratio},
                _all_or_mask(judged),
                cadence=f.cadence,
            )
            c, r = self._last_rows(f, judged)
        else:
            # The healthy case: no row ~1000x off, nothing open or pending; only
            # each connector's last judged row (its score) counts, and when every
            # connector's last row is judged, no other row need be looked at.
            last = f.last_idx
            if self._judged(f, last).all():
                c, r = f.touched, last
            else:
                c, r = self._last_rows(f, self._judged(f, None))
        self.score[c] = np.abs(np.log10(np.maximum(ratio[r], 1e-12))) / 3.0

    def _judged(self, f: Frame, rows: I64 | None) -> B:
        """Rows (all, or ``rows``) where power and V*I are known and the total
        current reaches ``min_current_a``."""
        p, pref = f.col("power_w"), reference_power(f)
        if rows is None:
            itot = _total_current(f)
            judged = (itot >= self._at("min_current_a", f.conn)) & np.isfinite(p)
            judged &= np.isfinite(pref)
            return judged
        # Column by column: a gather of rows of the (n, 3) block is ~3x slower.
        cur = f.block(2)
        itot = np.take(cur[:, 0], rows)
        for j in range(3):  # as rnansum: (z0 + z1) + z2, NaN as 0
            x = itot if j == 0 else np.take(cur[:, j], rows)
            np.putmask(x, np.isnan(x), 0.0)  # (a masked copyto branches per row)
            if j:
                itot = itot + x
        ok = (itot >= self._at("min_current_a", f.conn[rows])) & np.isfinite(p[rows])
        ok &= np.isfinite(pref[rows])
        return ok

    def _judged_steps(self, f: Frame, de: F64, dt: F64, expected: F64) -> B:
        """Zero steps say nothing (register resolution); drops are
        meter_regression's; long gaps and small expectations are not judged."""
        ok = expected >= self._at("min_expected_wh", f.conn)
        ok &= dt <= self._at("max_gap_s", f.conn)
        ok &= de > 0
        return ok

    @staticmethod
    def _switches(f: Frame, de: F64) -> B | None:
        """Rows where the register's level jumps ~1000x (pe / e, e > 0); None if
        none. That needs a fall (pe > 100 e) or a rise by nearly all of e (pe <
        e / 100): a step range within [0, 0.98 min(e)] rules both out for every
        row without a pass (rounding is monotonic), else the rows are tested."""
        e, pe = f.col("energy_wh"), f.prev_e
        lo, hi, _, _ = step_range(f)
        if e.shape[0] == 0 or (lo >= 0.0 and hi <= np.fmin.reduce(e) * 0.98):
            return None
        near = de > e * 0.98
        near |= de < 0
        if not near.any():
            return None
        switch: B = _thousandfold(pe / e) & (e > 0)
        return switch if switch.any() else None

    def _register(self, f: Frame) -> None:
        """Energy path, per interval: register delta vs V*I (or power) times dt."""
        p, e = f.col("power_w"), f.col("energy_wh")
        pref = reference_power(f)
        pe = f.prev_e
        ref = pref if np.isfinite(pref).all() else np.where(np.isfinite(pref), pref, p)
        de, dt = register_steps(f)
        expected = ref * dt  # ref * dt / 3600.0, in place
        expected /= 3600.0
        # The step where the unit changes is itself evidence: the level jumps ~1000x.
        switch = self._switches(f, de)
        if switch is not None:
            ok = self._judged_steps(f, de, dt, expected) | switch
            er = np.where(switch, e / pe, de / np.where(ok, expected, 1.0))
            ebad = _thousandfold(er) & ok
            # The end of a single reading too high clears, whatever came before.
            ebad[self._spike_ends(f, switch)] = False
        else:
            er = de / expected
            tf = _thousandfold_rows(er)
            if not tf.any() and _quiet(self._energy):
                return  # nothing set, nothing open or pending: the step changes nothing
            ok = self._judged_steps(f, de, dt, expected)
            ebad = tf & ok
        # A bad step says the register was off over its whole interval, from the
        # previous register on (the unit changed in between): the run is timed
        # from there, as meter_stuck's. Timed from the bad row itself, at 60 s
        # two intervals of 59-61 s (1 s of jitter) fell short of min_duration_s
        # about half the time, and a third interval was waited for.
        self._energy.step(
            f.conn,
            f.ts,
            ebad,
            ok & ~ebad,
            self.p["min_duration_s"],
            0.0,
            lambda: {"register_delta_wh": de, "expected_wh": expected, "ratio": er},
            _all_or_mask(ok),
            cadence=f.cadence,
            began=f.prev_e_ts,
        )
