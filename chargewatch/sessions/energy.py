"""Energy of a session from the import register, cross-checked against power.

The register is kept as *monotonic segments* ``[t0, e0, t1, e1]`` (meter clock,
Wh): a reset, reboot or meter swap starts a new segment and the session's
register energy is the sum of the segments' growth. Only segment end points
are stored, never every sample, and late samples can still be merged in
(:func:`merge_register`).
"""

from __future__ import annotations

__all__ = [
    "Chosen",
    "Evidence",
    "RegisterStats",
    "SegmentRuns",
    "choose_by_evidence",
    "choose_energy",
    "merge_register",
    "open_run_missed",
    "register_energy",
    "resync_sampled",
    "split_register",
    "track_samples",
]

import math
from array import array
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

Segment = list[float]  # [t0, e0, t1, e1]


@dataclass(slots=True)
class RegisterStats:
    """What :func:`split_register` saw besides the segments (counts feed quality flags)."""

    resets: int = 0  # drops that look like a reset (to below ``reset_ratio`` of the last value)
    jumps: int = 0  # rises faster than any charger can deliver (meter swap, corrupt value)
    bad: int = 0  # negative values, or decreases without a reset pattern (discarded)

    def add(self, other: RegisterStats) -> None:
        self.resets += other.resets
        self.jumps += other.jumps
        self.bad += other.bad


@dataclass(slots=True)
class SegmentRuns:
    runs: list[Segment] = field(default_factory=list)
    stats: RegisterStats = field(default_factory=RegisterStats)


def split_register(
    t: NDArray[np.float64],
    e: NDArray[np.float64],
    *,
    tol_wh: float,
    reset_ratio: float,
    max_power_w: float,
    jump_slack_wh: float,
) -> SegmentRuns:
    """Split time-sorted register readings into monotonic runs.

    A *reset* is a drop by more than ``tol_wh`` to below ``reset_ratio`` of the
    previous reading (a reboot to 0, a meter swap to a smaller meter). A *jump*
    is a rise no charger could deliver in the elapsed time (``max_power_w``
    plus ``jump_slack_wh``): a swap to a meter with a larger total; the jump
    itself is not energy, so it also starts a run. Any other decrease is an
    impossible value: it is discarded (counted in ``bad``) and the run goes on
    from its running maximum, so one corrupt reading cannot bill twice.
    """
    out = SegmentRuns()
    if t.size == 1:
        # One reading (a transaction's meter start, a Begin/End value): the loop
        # below would make it one run from ~15 numpy calls.
        t0, e0 = float(t[0]), float(e[0])
        if math.isfinite(e0) and e0 >= 0:
            out.runs.append([t0, e0, t0, e0])
        else:
            out.stats.bad += 1
        return out
    ok = np.isfinite(e) & (e >= 0)
    n_ok = int(np.count_nonzero(ok))
    if n_ok < ok.size:
        out.stats.bad += ok.size - n_ok
        t, e = t[ok], e[ok]
    if t.size == 0:
        return out
    # (Slices, not np.diff, and count_nonzero, not sum: the general path calls
    # this per session on a few readings, where numpy's per-call cost dominates.)
    d = e[1:] - e[:-1]
    dt = t[1:] - t[:-1]
    reset = (d < -tol_wh) & (e[1:] < reset_ratio * e[:-1])
    jump = d > max_power_w * dt / 3600.0 + jump_slack_wh
    out.stats.resets += int(np.count_nonzero(reset))
    out.stats.jumps += int(np.count_nonzero(jump))
    starts = np.concatenate(([0], np.flatnonzero(reset | jump) + 1))
    ends = np.concatenate((starts[1:], [t.size]))
    # Runs are few (resets are rare), so a loop per run is cheap; samples stay vectorised.
    for a, b in zip(starts.tolist(), ends.tolist(), strict=True):
        seg_e = e[a:b]
        runmax = np.maximum.accumulate(seg_e)
        good = seg_e >= runmax - tol_wh
        out.stats.bad += good.size - int(np.count_nonzero(good))
        last = a + int(np.flatnonzero(good)[-1])
        out.runs.append([float(t[a]), float(e[a]), float(t[last]), float(runmax[-1])])
    return out


def merge_register(
    segs: list[Segment],
    t: NDArray[np.float64],
    e: NDArray[np.float64],
    *,
    tol_wh: float = 1.0,
    reset_ratio: float = 0.5,
    max_power_w: float = 400_000.0,
    jump_slack_wh: float = 1000.0,
) -> tuple[RegisterStats, int]:
    """Merge time-sorted readings into ``segs`` (in place); return stats and readings ignored.

    Readings after the last segment continue it (the live case). Late readings
    that fall between two segments, or before the first, are processed with
    the neighbouring end point as anchor, so a reset that happened while the
    charger was offline is placed where it happened. Readings inside a
    segment's span cannot change its growth (the register is monotonic there)
    and are ignored: that is also what makes re-delivered readings harmless.
    """
    kw = {
        "tol_wh": tol_wh,
        "reset_ratio": reset_ratio,
        "max_power_w": max_power_w,
        "jump_slack_wh": jump_slack_wh,
    }
    stats = RegisterStats()
    if t.size == 0:
        return stats, 0
    if not segs:
        runs = split_register(t, e, **kw)
        segs.extend(runs.runs)
        return runs.stats, 0
    t0s = np.array([s[0] for s in segs])
    t1s = np.array([s[2] for s in segs])
    # k = number of segments that start at or before each reading.
    k = np.searchsorted(t0s, t, side="right")
    inside = (k > 0) & (t <= t1s[np.maximum(k - 1, 0)])
    ignored = int(np.count_nonzero(inside))
    # Group by the slot between segments (k-1 | k); process from the back so that
    # inserting runs does not move the slots still to do. (Few distinct slots:
    # a set is cheaper than np.unique here.)
    slots = sorted(set(k[~inside].tolist()))
    for slot in slots[::-1]:
        sel = (~inside) & (k == slot)
        tt, ee = t[sel], e[sel]
        left = segs[slot - 1] if slot > 0 else None
        if left is not None:
            tt = np.concatenate(([left[2]], tt))
            ee = np.concatenate(([left[3]], ee))
        runs = split_register(tt, ee, **kw)
        stats.add(runs.stats)
        new = runs.runs
        if left is not None and new:
            # The first run starts at the left anchor: it extends that segment.
            left[2], left[3] = new[0][2], new[0][3]
            new = new[1:]
        right = segs[slot] if slot < len(segs) else None
        tail = new[-1] if new else left
        if right is not None and tail is not None:
            dt = right[0] - tail[2]
            de = right[1] - tail[3]
            if -tol_wh <= de <= max_power_w * dt / 3600.0 + jump_slack_wh:
                # No reset between them after all: one segment.
                right[0], right[1] = tail[0], tail[1]
                if new:
                    new = new[:-1]
                else:
                    del segs[slot - 1]
        if new:
            segs[slot:slot] = new
    return stats, ignored


def register_energy(segs: list[Segment]) -> float:
    return float(sum(s[3] - s[1] for s in segs))


def register_span(segs: list[Segment]) -> int:
    """Readings-derived extent: number of segments with growth measured (two readings)."""
    return sum(1 for s in segs if s[2] > s[0])


def choose_energy(
    *,
    register_wh: float | None,
    integral_wh: float,
    integral_complete: bool,
    used_tx_meter: bool,
    mismatch_pct: float,
    mismatch_min_wh: float,
) -> tuple[float, str, list[str], float | None, float | None]:
    """Pick the billed energy; return (energy_wh, source, flags, mismatch_wh, mismatch_pct).

    * the register (transaction meter values when the session's first and last
      readings came from Transaction.Begin/End), when it grew;
    * a register that reads in kWh although labelled Wh is recognised by its
      growth being ~1/1000 of the power integral, and scaled;
    * otherwise the power integral, flagged ``estimated``.
    The register is always compared with the power integral; the difference is
    recorded, and flagged when it is large and the integral had no gaps.
    """
    flags: list[str] = []
    reg = register_wh
    if reg is not None and reg > 0 and integral_wh > 50.0:
        ratio = integral_wh / reg
        if 500.0 <= ratio <= 2000.0:
            reg = reg * 1000.0
            flags.append("unit_corrected")
    if reg is None or (reg <= 0.0 and integral_wh > mismatch_min_wh):
        if reg is not None:
            flags.append("register_stuck")
        flags.append("estimated")
        if not integral_complete:
            flags.append("gap")
        return integral_wh, "power_integral", flags, None, None
    source = "transaction_meter" if used_tx_meter else "register"
    mismatch_wh: float | None = None
    pct: float | None = None
    if integral_wh > 0:
        mismatch_wh = reg - integral_wh
        pct = 100.0 * mismatch_wh / reg if reg > 0 else None
        if (
            integral_complete
            and abs(mismatch_wh) > mismatch_min_wh
            and (pct is None or abs(pct) > mismatch_pct)
        ):
            flags.append("power_register_mismatch")
    return reg, source, flags, mismatch_wh, pct


# -- the sampled register: its extent, and runs in which it stood still under load

# Indexes into SessionState.sampled (an array('d'), one per session).
S_T0, S_E0, S_T1, S_E1, S_P1, S_RUN, S_STUCK = range(7)


def track_samples(
    got: array[float] | None,
    t: NDArray[np.float64],
    e: NDArray[np.float64],
    p: NDArray[np.float64],
    *,
    threshold_w: float,
    stuck_min_wh: float,
    tol_wh: float,
) -> array[float] | None:
    """Fold sampled register readings (rows with their power) into ``got``.

    Kept: the first and last sampled reading (the register's own extent, apart
    from the transaction's meter start/stop) and the evidence of a register
    *stuck under load*: a run of readings that did not grow while power was
    delivered, after which the register resumed from where it stood instead of
    catching up. Each run's energy by power (trapezoids of its pairs with both
    ends above ``threshold_w``, and of the pair that ends it with either) is
    compared with the register's growth at that last pair; what the register
    missed counts as stuck energy when it is over ``stuck_min_wh`` and over
    half the run's energy. An honest coarse register (1 kWh steps) stands
    still as long, but its step then repays the run; a frozen display that
    catches up (the simulator's meter_stuck) too.
    Readings older than the last one (late data) only move the first reading.
    """
    ok = np.isfinite(e)
    if not ok.all():
        t, e, p = t[ok], e[ok], p[ok]
    if t.size == 0:
        return got
    if t.size > 1:
        order = np.argsort(t, kind="stable")
        t, e, p = t[order], e[order], p[order]
    if got is None:
        got = array("d", (t[0], e[0], t[0], e[0], p[0], 0.0, 0.0))
        t, e, p = t[1:], e[1:], p[1:]
    elif t[0] < got[S_T0]:
        got[S_T0], got[S_E0] = float(t[0]), float(e[0])
    newer = t > got[S_T1]
    if not newer.all():
        t, e, p = t[newer], e[newer], p[newer]
    if t.size == 0:
        return got
    ee = np.concatenate(([got[S_E1]], e))
    d = ee[1:] - ee[:-1]
    if got[S_RUN] == 0.0 and bool((d > 0.0).all()):
        # The register grew at every reading (nearly always): no run to weigh.
        got[S_T1], got[S_E1] = float(t[-1]), float(e[-1])
        got[S_P1] = float(p[-1]) if p[-1] == p[-1] else 0.0
        return got
    tt = np.concatenate(([got[S_T1]], t))
    pp = np.nan_to_num(np.concatenate(([got[S_P1]], p)))
    hot = pp > threshold_w
    load = hot[1:] | hot[:-1]
    w = np.where(load, (pp[1:] + pp[:-1]) * 0.5 * (tt[1:] - tt[:-1]) / 3600.0, 0.0)
    # A drop (reset, reboot, swap) ends a run without proving anything: the
    # segments and their bridges account for it.
    drop = d < -tol_wh
    flat = (d <= 0.0) & ~drop
    # A flat pair proves missed energy only with load at both ends: from idle to
    # loaded the car may have started just before the second reading (a ramp
    # the register rightly did not count yet; at 300 s sampling its trapezoid
    # alone is ~450 Wh at 11 kW). The pair that ends a run counts either way.
    c = np.concatenate(([0.0], np.cumsum(np.where(flat & hot[1:] & hot[:-1], w, 0.0))))
    grow = np.flatnonzero(~flat)
    if grow.size:
        before = np.concatenate(([0.0], c[grow[:-1] + 1]))
        run = c[grow] - before
        run[0] += got[S_RUN]
        total = run + w[grow]
        missed = total - d[grow]
        hit = (run > stuck_min_wh) & (missed > stuck_min_wh) & (missed > 0.5 * total)
        hit &= ~drop[grow]
        if hit.any():
            got[S_STUCK] += float(missed[hit].sum())
        got[S_RUN] = float(c[-1] - c[grow[-1] + 1])
    else:
        got[S_RUN] += float(c[-1])
    got[S_T1], got[S_E1], got[S_P1] = float(t[-1]), float(e[-1]), float(pp[-1])
    return got


def resync_sampled(
    got: array[float] | None, segs: array[float] | None, last: array[float] | None
) -> None:
    """Catch ``got`` up with what the fast path merged since (it leaves it alone).

    The fast path takes only readings that grow, or idle ones, of sessions
    with no open flat run: so its last reading is the segments' end and the
    power track's last sample, and no run changed.
    """
    if got is None or segs is None or last is None:
        return
    t1 = segs[-2]
    if t1 > got[S_T1] and last[0] == t1:
        got[S_T1], got[S_E1], got[S_P1] = t1, segs[-1], last[1]


def open_run_missed(got: array[float], end_wh: float, stuck_min_wh: float) -> float:
    """Energy missed by a flat run still open at the session's end.

    ``end_wh`` is the register's final value (the meter stop, if it came): what
    it rose above the last sampled reading repays the run.
    """
    run = got[S_RUN]
    missed = run - max(0.0, end_wh - got[S_E1])
    return missed if missed > stuck_min_wh and missed > 0.5 * run else 0.0


# -- the energy of a session, chosen by evidence


@dataclass(frozen=True, slots=True)
class Evidence:
    """What build_record knows about a session's energy (Wh; register in its reported unit)."""

    register_wh: float | None  # growth of the register segments, resets bridged
    integral_wh: float  # power integral over the session
    integral_complete: bool  # power samples from start to stop without a gap
    used_tx_meter: bool  # the segments run from the meter start to the meter stop
    meter_start_wh: float | None
    meter_stop_wh: float | None
    sampled_wh: float | None  # last minus first sampled reading (one segment, no reset)
    sampled_fine: bool  # sampled readings not whole numbers of the reported unit
    edge_wh: float  # power integral from the start to the first sample and the last to the stop
    stuck_wh: float  # energy the register missed in runs stuck under load
    bad: int  # impossible readings discarded (decreases, negatives)
    jumps: int = 0  # rises no charger can deliver, taken for meter swaps (not billed)


@dataclass(frozen=True, slots=True)
class Chosen:
    """The chosen energy; register and estimate are set when they differ or need review."""

    energy_wh: float
    source: str
    flags: list[str]
    mismatch_wh: float | None
    mismatch_pct: float | None
    register_energy_wh: float | None = None
    estimate_energy_wh: float | None = None
    review_reason: str = ""


#: Meter values that are all whole multiples of this (Wh) are kWh readings.
_KWH = 1000.0


def choose_by_evidence(
    ev: Evidence,
    *,
    policy: str,
    mismatch_pct: float,
    mismatch_min_wh: float,
) -> Chosen:
    """The most precise source consistent with the others (docs/sessions.md, "Energy").

    1. :func:`choose_energy`: the register, unit-corrected by the power
       integral's evidence, or the integral when there is no usable register.
    2. Resolution: transaction meter values in whole kWh (kWh labelled Wh sent
       as integers) give way to the sampled registers of the same meter when
       those are finer and agree within the meter values' rounding; the power
       integral covers the bits before the first and after the last sample.
    3. Proof that the register is wrong: a run stuck under load
       (:func:`track_samples`), readings that regressed with energy missing
       against a complete power integral, or a jump after which the
       register disagrees with a complete power integral. Then the record carries
       the register figure and the estimate, ``needs_review`` with the
       reason, and ``energy_wh`` is the one ``policy`` names
       (``register`` | ``best_estimate``). A unit correction needs review too.
    """
    energy, source, flags, mm_wh, mm_pct = choose_energy(
        register_wh=ev.register_wh,
        integral_wh=ev.integral_wh,
        integral_complete=ev.integral_complete,
        used_tx_meter=ev.used_tx_meter,
        mismatch_pct=mismatch_pct,
        mismatch_min_wh=mismatch_min_wh,
    )
    unit = "unit_corrected" in flags
    if source == "power_integral":
        if "register_stuck" not in flags:
            return Chosen(energy, source, flags, mm_wh, mm_pct)
        reg = 0.0 if ev.register_wh is None else ev.register_wh * (_KWH if unit else 1.0)
        if policy == "register":
            flags = [f for f in flags if f != "estimated"]
        return _review(reg, energy, "register_stuck", flags, None, None, policy, "register", source)
    scale = _KWH if unit else 1.0
    reg = energy
    finer = _finer(ev, reg, scale)
    if finer is not None:
        reg = finer
        flags = [f for f in flags if f != "power_register_mismatch"] + ["coarse_meter_values"]
        source = "register"
    estimate, reason, est_source = _proof(ev, reg, source, unit, mismatch_pct, mismatch_min_wh)
    if reason == "register_stuck":
        flags.append("register_stuck")
    if finer is not None or reason:
        mm_wh, mm_pct, mismatch = _mismatch(ev, reg, mismatch_pct, mismatch_min_wh)
        flags = [f for f in flags if f != "power_register_mismatch"]
        if mismatch:
            flags.append("power_register_mismatch")
    if reason:
        return _review(reg, estimate, reason, flags, mm_wh, mm_pct, policy, source, est_source)
    return Chosen(reg, source, flags, mm_wh, mm_pct)


def _proof(
    ev: Evidence, reg: float, source: str, unit: bool, pct: float, min_wh: float
) -> tuple[float, str, str]:
    """(estimate, review reason, its source) when the register is proven wrong."""
    # A register read in the wrong unit was tracked in that unit: its runs prove nothing.
    if ev.stuck_wh > 0 and not unit and _closer(ev, reg + ev.stuck_wh, reg):
        return reg + ev.stuck_wh, "register_stuck", "estimate"
    if ev.bad and ev.integral_complete and _lost(ev, reg, pct, min_wh):
        return ev.integral_wh, "register_regression", "power_integral"
    if ev.jumps and ev.integral_complete and _mismatch(ev, reg, pct, min_wh)[2]:
        # A leap taken for a meter swap and left unbilled (a frozen register's
        # catch-up at 1 Hz, the end of a unit slip mid-session), and a complete
        # power integral that disagrees: the leap was energy, the register is
        # not the count. (Resets are bridged by their own evidence.)
        return ev.integral_wh, "register_break", "power_integral"
    return reg, "unit_corrected" if unit else "", source


def _finer(ev: Evidence, reg: float, scale: float) -> float | None:
    """The sampled registers' energy when finer than whole-kWh meter values and consistent."""
    if ev.sampled_wh is None or not ev.sampled_fine:
        return None
    if ev.meter_start_wh is None or ev.meter_stop_wh is None:
        return None
    ends = (ev.meter_start_wh * scale, ev.meter_stop_wh * scale)
    if any(abs(x / _KWH - round(x / _KWH)) > 1e-9 for x in ends):
        return None
    fine = ev.sampled_wh * scale + ev.edge_wh
    # Start and stop each rounded (or cut) to a whole kWh: at most 1 kWh off each.
    return fine if abs(fine - reg) <= 2 * _KWH else None


def _closer(ev: Evidence, estimate: float, reg: float) -> bool:
    """The power integral, when complete, agrees better with the estimate than the register."""
    if not ev.integral_complete:
        return True
    return abs(estimate - ev.integral_wh) < abs(reg - ev.integral_wh)


def _lost(ev: Evidence, reg: float, pct: float, min_wh: float) -> bool:
    """Energy missing from a register that went backwards, by the power integral."""
    lost = ev.integral_wh - reg
    return lost > min_wh and lost > pct / 100.0 * ev.integral_wh


def _mismatch(
    ev: Evidence, reg: float, pct: float, min_wh: float
) -> tuple[float | None, float | None, bool]:
    if ev.integral_wh <= 0:
        return None, None, False
    mm = reg - ev.integral_wh
    mm_pct = 100.0 * mm / reg if reg > 0 else None
    flagged = ev.integral_complete and abs(mm) > min_wh and (mm_pct is None or abs(mm_pct) > pct)
    return mm, mm_pct, flagged


def _review(
    reg: float,
    estimate: float,
    reason: str,
    flags: list[str],
    mm_wh: float | None,
    mm_pct: float | None,
    policy: str,
    reg_source: str,
    est_source: str,
) -> Chosen:
    """A record whose register is proven wrong: both figures, billed by ``policy``."""
    flags = [*flags, "needs_review"]
    if policy == "register":
        return Chosen(reg, reg_source, flags, mm_wh, mm_pct, reg, estimate, reason)
    return Chosen(estimate, est_source, flags, mm_wh, mm_pct, reg, estimate, reason)
