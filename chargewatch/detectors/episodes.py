"""Findings, and the hysteresis/minimum-duration state machine every detector shares.

An episode opens when the *set* condition has held on consecutive known rows
of a connector for ``min_duration`` seconds, on at least as many rows as that
duration spans at the connector's learned sampling interval (less a quarter:
one lost sample in four is tolerated, a gap is not bridged by two samples
either side of it), and closes when the *clear* condition has held for
``clear_duration`` seconds. A set run is timed from its first row: its ts,
or, for a condition judged over the interval since an earlier row (a register
that did not move since its previous reading), that earlier row's (``began``).
Rows where neither holds
(between the two thresholds) keep the current state: that is the hysteresis.
Rows a detector cannot judge (NaN input) are not passed in at all, so they
neither count towards nor break a run.

The scan is vectorised: run starts are found with a segmented forward fill,
and the state of every row is the latest decisive row's verdict. Only rows
where a connector's state changes go through Python (to create or close a
:class:`Finding`), and those are rare by construction.
"""

from __future__ import annotations

__all__ = ["Episodes", "Finding"]

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from chargewatch.detectors.sequencer import ffill_index, grown, prev_in_segment

F64 = NDArray[np.float64]
B = NDArray[np.bool_]
Evidence = dict[str, F64] | Callable[[], dict[str, F64]] | None

#: The share of the samples a minimum duration spans at the learned interval
#: that a run must hold: at 30 s sampling a 60 s duration needs 3 samples (2
#: that straddle a lost one do not do), at 10 s 6 of 7, at 1 s 46 of 61.
COVERAGE = 0.75


def min_samples(min_duration: F64 | float, interval: F64) -> F64:
    """Rows a run must hold to last ``min_duration`` at sampling ``interval``
    (per row): 1 + ceil(COVERAGE * duration / interval); 1 when the interval is
    not known yet (the duration alone decides)."""
    need = 1.0 + np.ceil(COVERAGE * (min_duration / interval))
    out: F64 = np.where(np.isfinite(need), need, 1.0)  # NaN interval: unknown
    return out


@dataclass(slots=True)
class Finding:
    """One episode of one fault on one connector.

    ``start``: when the condition began (first offending sample; the reading a
    still register stood at, for meter_stuck; last sign of life for silence
    detectors); ``detected``: when the detector asserted it;
    ``end``: when it cleared (None while open). Times are epoch seconds on the
    clock the detector documents (meter ``ts`` for sample detectors, receive
    time for liveness and event detectors). ``evidence``: the values that
    triggered it, at detection.
    """

    fault: str
    connector: int
    start: float
    detected: float
    end: float | None = None
    evidence: dict[str, float] = field(default_factory=dict)

    def as_dict(self) -> dict[str, object]:
        return {
            "fault": self.fault,
            "connector": self.connector,
            "start": self.start,
            "detected": self.detected,
            "end": self.end,
            "evidence": dict(self.evidence),
        }


def _segments(conn: NDArray[np.int64]) -> tuple[B, B, NDArray[np.int64]]:
    n = conn.shape[0]
    first = np.ones(n, np.bool_)
    last = np.ones(n, np.bool_)
    if n > 1:
        first[1:] = conn[1:] != conn[:-1]
        last[:-1] = first[1:]
    seg_start = np.where(first, np.arange(n), 0)
    np.maximum.accumulate(seg_start, out=seg_start)
    return first, last, seg_start


class Episodes:
    """Per-connector episode state for one fault; appends to a shared findings list."""

    def __init__(self, fault: str, sink: list[Finding]) -> None:
        self.fault = fault
        self.sink = sink
        self.active = np.zeros(0, np.bool_)
        # Where the connector's current run of set (pending) or clear rows began;
        # NaN when its last row was in neither. The two runs exclude each other
        # (clear rows are those not set), so one float per connector holds
        # both, and ``setting`` says which: 9 bytes instead of 16.
        self.since = np.full(0, np.nan)
        self.setting = np.zeros(0, np.bool_)
        # The connector's row rank (Frame.rank) where its current run of set
        # rows began (meaningful while ``setting``).
        self.rank0 = np.zeros(0)
        self.open: dict[int, Finding] = {}
        # False only when no connector is active or in a pending run: then a
        # batch without any set row cannot change anything (the fast path).
        self._live = False

    def ensure(self, n: int) -> None:
        self.active = grown(self.active, n, False)
        self.since = grown(self.since, n, np.nan)
        self.setting = grown(self.setting, n, False)
        self.rank0 = grown(self.rank0, n, 0.0)

    @property
    def quiet(self) -> bool:
        """No connector is active or in a pending run. ``_live`` is False only
        then (every write to ``active`` and ``setting`` is this class's, and each
        keeps it so), which answers without two passes over the fleet's flags:
        a screen asked by several detectors on every update, at a cost that
        grows with the fleet rather than the batch."""
        return not (self._live and (self.active.any() or self.setting.any()))

    @property
    def set_since(self) -> F64:
        """Per connector, where its current run of set rows began (NaN: none)."""
        return np.where(self.setting, self.since, np.nan)

    @property
    def clear_since(self) -> F64:
        """Per connector, where its current run of clear rows began (NaN: none)."""
        return np.where(self.setting, np.nan, self.since)

    def _runs(self, cond: B, ts: F64, first: B, seg_start: NDArray[np.int64], carried: F64) -> F64:
        """Per row, the ts where the current run of ``cond`` began (NaN off-run)."""
        in_run_before = prev_in_segment(cond, first, ~np.isnan(carried))
        start = cond & ~in_run_before
        idx = ffill_index(start, seg_start)
        since = np.where(idx >= 0, ts[np.maximum(idx, 0)], carried)
        since[~cond] = np.nan
        return since

    def step(
        self,
        conn: NDArray[np.int64],
        ts: F64,
        set_cond: B,
        clear_cond: B,
        min_duration: F64 | float,
        clear_duration: F64 | float = 0.0,
        evidence: Evidence = None,
        judged: B | None = None,
        cadence: tuple[F64, F64] | None = None,
        began: F64 | None = None,
        began_is_sample: bool = False,
    ) -> None:
        """Advance with rows sorted by (conn, ts).

        Durations are per connector (indexed by connector id) or one scalar.
        ``cadence`` (``Frame.cadence``): each row's rank among its connector's
        rows, and each connector's learned sampling interval; with it, a run
        must also span ``min_samples`` of the connector's rows (judged or not:
        an input reported on every other sample is no gap) before it opens an
        episode.
        ``judged`` (default: every row) marks the rows the detector can judge;
        the others neither count towards nor break a run, and ``set_cond`` must
        be False on them. ``evidence`` (per-row arrays, or a function returning
        them, called only when an episode opens) goes into new findings.
        ``began`` (default: ``ts``): per row, when the set condition it reports
        began to hold, at or before its ts (a condition judged over the
        interval since an earlier row held from that row on); a run lasts from
        its first row's ``began``, the finding's start, while its rows are
        still counted from that first row, unless ``began_is_sample``: then the
        row it began at is one of the run's samples too (a register that stood
        still stood at that reading; at 300 s sampling the first still step
        already spans 2 samples, not 1). Not so for a step that is wrong over
        its interval (a unit change): the reading before it was right.
        """
        n = conn.shape[0]
        if n == 0:
            return
        any_set = bool(set_cond.any())
        if not any_set and not self._live:
            # The common, healthy case: nothing open, nothing pending, nothing to open.
            return
        # Only connectors that are active, pending, or set now can change state;
        # the others' rows are left out (a few connectors among thousands).
        rel = self.active | self.setting
        if any_set:
            rel[conn[set_cond]] = True
        keep = rel[conn]
        if judged is not None:
            keep &= judged
        k: NDArray[np.int64] | None = None
        if not keep.all():
            if not keep.any():
                self._live = bool(rel.any())
                return
            k = np.flatnonzero(keep)
            conn, ts, set_cond, clear_cond = conn[k], ts[k], set_cond[k], clear_cond[k]
            if began is not None:
                began = began[k]
        rank = None if cadence is None else cadence[0] if k is None else cadence[0][k]
        min_d = min_duration if isinstance(min_duration, int | float) else min_duration[conn]
        clr_d = clear_duration if isinstance(clear_duration, int | float) else clear_duration[conn]
        first, last, seg_start = _segments(conn)
        clear_cond = clear_cond & ~set_cond
        since, setting = self.since[conn], self.setting[conn]
        at = ts if began is None else began
        s_since = self._runs(set_cond, at, first, seg_start, np.where(setting, since, np.nan))
        c_since = self._runs(clear_cond, ts, first, seg_start, np.where(setting, np.nan, since))
        set_evt = set_cond & (ts - s_since >= min_d)
        s_rank0 = None
        if cadence is not None and rank is not None:
            carried = np.where(setting, self.rank0[conn], np.nan)
            s_rank0 = self._runs(set_cond, rank, first, seg_start, carried)
            spanned = rank - s_rank0 + (2.0 if began_is_sample else 1.0)
            set_evt &= spanned >= min_samples(min_d, np.take(cadence[1], conn))
        clr_evt = clear_cond & (ts - c_since >= clr_d)
        di = ffill_index(set_evt | clr_evt, seg_start)
        was = self.active[conn]
        state = np.where(di >= 0, set_evt[np.maximum(di, 0)], was)
        before = prev_in_segment(state, first, was)
        changed = np.flatnonzero(state != before)
        ev_rows: dict[str, F64] | None = None
        for i in changed.tolist():  # transitions only: rare by construction
            c = int(conn[i])
            if state[i]:
                if ev_rows is None:  # evidence is computed only for findings
                    ev_rows = evidence() if callable(evidence) else (evidence or {})
                    if k is not None:
                        ev_rows = {name: v[k] for name, v in ev_rows.items()}
                ev = {name: float(v[i]) for name, v in ev_rows.items()}
                self._open(c, float(s_since[i]), float(ts[i]), ev)
            else:
                self._close(c, float(c_since[i]))
        lc = conn[last]
        self.active[lc] = state[last]
        s_last = s_since[last]
        pending = ~np.isnan(s_last)
        self.setting[lc] = pending
        if s_rank0 is not None:
            self.rank0[lc] = np.where(pending, s_rank0[last], 0.0)
        self.since[lc] = np.where(pending, s_last, c_since[last])
        self._live = bool(self.active.any() or self.setting.any())

    def _open(self, c: int, start: float, detected: float, evidence: dict[str, float]) -> None:
        f = Finding(self.fault, c, start, detected, None, evidence)
        self.open[c] = f
        self.sink.append(f)

    def _close(self, c: int, end: float) -> None:
        f = self.open.pop(c, None)
        if f is not None:
            f.end = max(end, f.start)

    def end(self, c: int, at: float) -> None:
        """Close connector ``c``'s episode at ``at`` and forget its pending run:
        the evidence it rested on is gone (the session ended, the reading went
        stale), so the next reading starts afresh instead of continuing it."""
        if self.active[c]:
            self._close(c, at)
        self.active[c] = False
        self.setting[c] = False
        self.since[c] = np.nan
        self._live = bool(self.active.any() or self.setting.any())

    def force(
        self,
        conns: NDArray[np.int64],
        active: B,
        start: F64,
        at: F64,
        evidence: dict[str, F64] | None = None,
    ) -> None:
        """Set state directly (silence and event detectors that decide themselves).

        ``start``/``at``: per connector, the onset and the time of the decision
        (detection time on opening, end time on closing).
        """
        if conns.size == 0:
            return
        was = self.active[conns]
        for i in np.flatnonzero(was != active).tolist():
            c = int(conns[i])
            if active[i]:
                ev = {k: float(v[i]) for k, v in (evidence or {}).items()}
                self._open(c, float(start[i]), float(at[i]), ev)
            else:
                self._close(c, float(at[i]))
        self.active[conns] = active
        if active.any():
            self._live = True
