"""Energy of a session from the import register, cross-checked against power.

The register is kept as *monotonic segments* ``[t0, e0, t1, e1]`` (meter clock,
Wh): a reset, reboot or meter swap starts a new segment and the session's
register energy is the sum of the segments' growth. Only segment end points
are stored, never every sample, and late samples can still be merged in
(:func:`merge_register`).
"""

from __future__ import annotations

__all__ = [
    "RegisterStats",
    "SegmentRuns",
    "choose_energy",
    "merge_register",
    "register_energy",
    "split_register",
]

import math
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
