"""Liveness faults: charger_offline, stale_telemetry, clock_skew. Receive clock.

charger_offline
    Catches: a charger (all its connectors together: one finding per connector,
    the same on each) from which nothing at all arrives (meter rows, heartbeats,
    status, transactions, boot) for ``interval_factor`` x its heartbeat interval
    + ``interval_margin_s`` (150 s at a 60 s heartbeat; never less than
    ``min_duration_s``, the debounce: the rule needs no `for`), or for ``silence_s``
    while its interval is unknown (native chargers without heartbeats); or whose
    retained online flag turns false (MQTT last will, or an OCPP bridge
    publishing the same topic), after ``lwt_grace_s`` (0: at once). The interval
    is the one the CSMS set (BootNotification answer, accepted
    ChangeConfiguration/SetVariables HeartbeatInterval: HeartbeatIntervalEvent),
    or the median of the charger's last heartbeat gaps when it has no such
    interval or its heartbeats come over 1.5x slower than it. Until either is
    known, an OCPP charger (one that booted before chargewatch started sends no
    BootNotification; idle, it sends only heartbeats) is given
    ``assumed_interval_s`` (900 s), or its longest heartbeat gap if longer:
    a 900 s heartbeat is no outage. Start = last sign
    of life; detected = start + timeout (the moment the silence became provable;
    ``tick`` reports it at the first tick at or after that, and ``deadline``
    says when that is, so the collector ticks at that very moment). A silence found only when
    data resumes (no tick in between) gives the same finding, with the timeout in
    force when it began, so replay and live agree. What it learned (the interval
    told, the last heartbeat gaps, that a charger speaks OCPP) is kept across a
    collector restart (``snapshot``), and so is an outage open then: the
    charger stays offline from the same start until it is heard. Other times
    are not kept: after a restart a charger's silence counts from when it was
    last heard before the stop if that silence is not yet an outage
    (``heard``), else from the restart, so the collector's own downtime is no
    outage. A charger whose partition moves to another collector
    (``forget``, ``heard``) is no longer watched by the one that gave it away;
    the one that takes it goes on as after a restart at the move: an outage
    open at the move goes on, a silence not yet an outage counts from when
    it was last heard. Ignores: a pause shorter than the timeout, a will
    answered within a non-zero grace.
stale_telemetry
    Catches: a connector that should be reporting — in a session (transaction
    started, or status Charging/SuspendedEV/SuspendedEVSE), or one seen
    reporting while idle (native telemetry, OCPP clock-aligned values) once its
    idle cadence is known — that sends no meter sample, while its charger is
    online, for ``interval_factor`` x its own cadence in that mode +
    ``interval_margin_s``, and at least ``silence_s``. The cadence per
    connector and mode (idle / in a session: OCPP's ClockAlignedDataInterval
    and MeterValueSampleInterval differ, e.g. 900 s and 10 s) is the longer of
    the one told and the one learned (fewer false pages, never a silence
    hidden). Told: the intervals the CSMS set or the charger reported
    (MeterIntervalEvent: 1.6 MeterValueSampleInterval / ClockAlignedDataInterval,
    2.0.1 SampledDataCtrlr.TxUpdatedInterval / AlignedDataCtrlr.Interval; 0 =
    none sent, nothing told): in a session the sampled interval, or the aligned
    one if shorter; idle, the aligned one, which makes an idle reporter's
    cadence known from its first idle row. So a session is judged by its
    cadence from its first samples. Learned: the median of its last gaps
    between meter rows received in that mode (rows sent while Faulted count to
    neither: a faulted session may go on sampling at 10 s, which is no idle
    cadence). When the told cadence of a mode changes (an operator throttling
    10 s to 300 s), what was learned in that mode is dropped and only gaps
    begun since count, so the new cadence is not judged by the old one. The
    silence clock restarts when the mode changes, when the told cadence
    changes, and when the charger comes back from an outage (no message at all
    for ``interval_factor`` x its heartbeat interval + ``interval_margin_s``:
    the reports it could not send while away are charger_offline's). The
    intervals told and the gaps learned are kept across a restart, as
    charger_offline's; the clock starts at the first row after it, or at the
    restart for a connector in a session: its status and open transaction are
    taken from what the collector kept (the fleet state's status, the ledger's
    open sessions; ``resume``), as they are when its partition moves to
    another collector, since a charger reports them only when they change.
    Online:
    by the charger's online flag when it publishes one (native last will, a
    bridge); otherwise (OCPP) a silence counts once another message of the
    charger (heartbeat, status, ...) came in its second half. Ignores: OCPP
    connectors without a session that never sent idle values (a told aligned
    interval alone does not make one a reporter: MeterValuesAlignedData may be
    empty, or the values go to connector 0), idle reporters until their
    cadence is known, offline or wholly silent chargers
    (charger_offline's), gaps shorter than the connector's timeout.
clock_skew
    Catches: |receive time - ts| above ``max_offset_s`` for ``min_duration_s``
    of receive time, judged on every message the charger stamped with its own
    clock: meter rows, statuses and transactions (a 1.6 StatusNotification
    without its optional timestamp, a boot or a heartbeat carries none). A
    clock behind must show on consecutive messages over the duration (late
    delivery looks the same); a stamp ahead of receipt can be neither late nor
    queued, so the clock is ahead from the first such message until one says
    otherwise, and the finding comes ``min_duration_s`` after it (at a tick)
    although an idle OCPP connector's next clock-aligned value is 900 s away.
    Ignores: bursts of queued samples and transactions after a reconnect (old
    ts, but they all arrive within seconds).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any, NamedTuple

__all__ = ["ChargerOffline", "ClockSkew", "StaleTelemetry"]

import numpy as np
from numpy.typing import NDArray

from chargewatch.detectors.base import Detector, SiteModels
from chargewatch.detectors.sequencer import (
    STATUS_CODE,
    Events,
    Frame,
    History,
    grown,
    median_of_rows,
    prev_in_segment,
    sort_by_conn_then,
)
from chargewatch.model.fleet import ConnectorIndex

F64 = NDArray[np.float64]
I64 = NDArray[np.int64]
B = NDArray[np.bool_]

# The observed heartbeat cadence: the median of a charger's last _HB_KEEP gaps
# between heartbeats, believed once there are _HB_MIN of them. Between
# heartbeats (2.0.1 lets a charger skip one after other messages; many 1.6
# chargers do too) gaps only grow, so the median errs long, on the safe side.
_HB_KEEP = 5
_HB_MIN = 3
_HB_MIN_GAP = 1.0  # shorter: a repeated heartbeat, not a cadence
# A charger whose heartbeats come this much slower than the CSMS told it is
# not keeping that interval: its own cadence is believed instead.
_HB_SLACK = 1.5

# A connector's meter cadence per mode: the median of its last _CAD_KEEP gaps
# between rows of that mode (a fault's one long gap, or a burst, does not move
# it); gaps under _CAD_MIN_GAP are one report split over several messages.
_CAD_KEEP = 5
_CAD_MIN = 3  # believed once there are this many
_CAD_MIN_GAP = 1.0
_NO_VALUES = np.empty((0, 0))

_ONE = np.ones(1, np.bool_)
_ZERO = np.zeros(1, np.bool_)


def _f(x: float) -> F64:
    return np.array([x], np.float64)


def _c(c: int) -> I64:
    return np.array([c], np.int64)


_LIVE = np.array([STATUS_CODE[s] for s in ("Charging", "SuspendedEV", "SuspendedEVSE")], np.int8)
_NO_SESSION = np.array([STATUS_CODE[s] for s in ("Available", "Unavailable", "Faulted")], np.int8)


def _lut(codes: NDArray[np.int8]) -> B:
    """Membership table indexed by status code + 1 (code -1 = never heard)."""
    t = np.zeros(len(STATUS_CODE) + 1, np.bool_)
    t[codes.astype(np.int64) + 1] = True
    return t


_LIVE_CODES = frozenset(_LIVE.tolist())
_NO_SESSION_CODES = frozenset(_NO_SESSION.tolist())
_LIVE_LUT = _lut(_LIVE)
_NO_SESSION_LUT = _lut(_NO_SESSION)


def _earliest(due: F64, among: B) -> float:
    """The earliest deadline among ``among`` (NaN: none); inf if none."""
    d = due[among]
    d = d[~np.isnan(d)]
    return float(d.min()) if d.size else np.inf


def _soonest(due: F64, among: B) -> float:
    """The earliest deadline among ``among`` (NaN: none), less a millisecond so
    that rounding in ``now - seen > silence`` cannot skip a tick; inf if none."""
    return _earliest(due, among) - 1e-3


def _told_cadence(told: F64) -> F64:
    """The meter cadence per mode (idle, in a session) that told intervals
    [sampled, aligned] make: idle, the aligned one; in a session the shorter of
    the two; NaN where none is known or none is sent (0)."""
    pos = np.where(told > 0, told, np.nan)
    return np.stack([pos[..., 1], np.fmin(pos[..., 0], pos[..., 1])], axis=-1)


def _same(a: F64 | float, b: F64 | float) -> B:
    """Equal, NaN equal to NaN."""
    return np.asarray((a == b) | (np.isnan(a) & np.isnan(b)))


# What the liveness detectors learned, as snapshot() writes it (JSON: NaN, the
# state's "unknown", is null) and restore() reads it back.


def _nums(a: F64) -> list[Any]:
    """``a`` as (nested) lists, NaN as None. Lists first: a numpy call per value
    would cost more than the snapshot (a charger has a dozen)."""
    rows: list[Any] = a.tolist()
    if a.ndim == 1:
        return [None if math.isnan(v) else v for v in rows]
    return [[None if math.isnan(v) else v for v in row] for row in rows]


def _known(a: F64) -> list[list[float]]:
    """Each row of gap histories as its values, oldest first (its empty
    slots, NaN, lead)."""
    return [[v for v in row if not math.isnan(v)] for row in a.tolist()]


def _unknown(v: Any) -> float:
    return math.nan if v is None else float(v)


def _slots(values: Iterable[Any], k: int) -> list[float]:
    """The gap history of ``k`` slots that holds the last ``k`` of ``values``
    (oldest .. newest, empty slots first: as pushing them one by one leaves it)."""
    v = [float(x) for x in values][-k:]
    return [math.nan] * (k - len(v)) + v


# Per status code (code -1, never heard, is the last entry: a negative index
# reads it), the meter mode of a row: 1 in a session, 0 idle, -1 neither.
# Idle rows are an idle connector's (clock-aligned values): a Faulted connector
# may still be sampling at its session's cadence (its transaction goes on), so
# its rows teach neither the idle cadence nor that it reports while idle.
_MODE_LUT = np.full(len(STATUS_CODE) + 1, -1, np.int8)
_MODE_LUT[_LIVE.astype(np.int64)] = 1
_MODE_LUT[[STATUS_CODE[s] for s in ("Available", "Unavailable")]] = 0


class _Stream(NamedTuple):
    """The receive stream of a frame (every row received, sorted by
    (connector, receive time)), as the liveness detectors read it."""

    first: I64  # each connector's first row
    last: I64  # and last row
    gap: F64  # per row, the gap to the previous row of its connector (-inf on first rows)
    top: float  # the largest gap
    conn: I64  # the connectors (ascending)
    t_first: F64  # their first and last receive times
    t_last: F64


def _raw_stream(f: Frame) -> _Stream:
    """The receive stream of ``f``, computed once per frame and shared by the
    liveness detectors: healthy streams have no gap near any timeout, which
    the largest gap proves in one pass, so only the first rows (carried
    state) are judged row by row."""
    got: _Stream = f.derived("liveness.raw_stream", _raw_stream_of)
    return got


def _raw_stream_of(f: Frame) -> _Stream:
    conn, t = f.raw_conn, f.raw_recv
    n = conn.shape[0]
    if conn is f.conn:  # nothing dropped: the frame's segments are the stream's
        fi, li = f.first_idx, f.last_idx
    else:
        first = np.ones(n, np.bool_)
        if n > 1:
            np.not_equal(conn[1:], conn[:-1], out=first[1:])
        fi = np.flatnonzero(first)
        li = np.append(fi[1:] - 1, n - 1) if n else fi
    d = np.empty(n)
    top = -np.inf
    if n:
        np.subtract(t[1:], t[:-1], out=d[1:])
        d[fi] = -np.inf
        top = float(d.max())
    return _Stream(fi, li, d, top, np.take(conn, li), np.take(t, fi), np.take(t, li))


def _push_last(hist: History, f: Frame, x: F64, ok: B) -> tuple[I64, F64]:
    """``hist.push`` of the rows of ``f`` where ``ok`` holds, without building a
    frame over them: each connector's buffer becomes the last ``hist.k`` of its
    old values followed by its ``ok`` rows' values. Returns the connectors that
    had such rows (ascending) and their new buffers, slot-major ((k, m): each
    slot's values contiguous)."""
    k = hist.k
    hist.buf = grown(hist.buf, f.n_conn, np.nan)
    n = ok.shape[0]
    if n and bool(ok.all()):
        # Every row kept (a steady stream): the frame's segments are the
        # connectors' runs; with k or more rows each, a buffer is its last k.
        end = f.last_idx + 1
        if int((end - f.first_idx).min()) >= k:
            new = np.take(x, (end - k) + np.arange(k)[:, None])
            m = end.shape[0]
            lo = int(f.touched[0])
            contiguous = int(f.touched[-1]) == lo + m - 1
            hist.buf[slice(lo, lo + m) if contiguous else f.touched] = new.T
            return f.touched, new
    rows = np.flatnonzero(ok)
    if rows.size == 0:
        return rows, np.empty((k, 0))
    # Per connector with ok rows: they are rows[end - cnt : end].
    cr = np.take(f.conn, rows)
    tail = np.ones(cr.shape[0], np.bool_)
    np.not_equal(cr[1:], cr[:-1], out=tail[:-1])
    end = np.flatnonzero(tail) + 1
    cnt = end.copy()
    cnt[1:] -= end[:-1]
    conns = np.take(cr, end - 1)
    m = conns.shape[0]
    lo = int(conns[0])
    span = slice(lo, lo + m) if int(conns[-1]) == lo + m - 1 else conns  # all: a slice
    if int(cnt.min()) >= k:  # new values only: the last k ok rows of each
        new = np.take(x, np.take(rows, (end - k) + np.arange(k)[:, None]))
        hist.buf[span] = new.T
        return conns, new
    u = int(cnt[0])
    if bool((cnt == u).all()):
        # Each brought the same u < k ok rows (a pipeline's short updates: one
        # row, or none kept): a buffer becomes its last k - u old values and
        # then its u new ones, two block copies instead of the index
        # arithmetic below (several passes over k * m).
        old = hist.buf[span] if isinstance(span, slice) else np.take(hist.buf, span, axis=0)
        rows_new = np.empty((m, k))
        rows_new[:, : k - u] = old[:, u:]
        rows_new[:, k - u :] = np.take(x, rows).reshape(m, u)
        hist.buf[span] = rows_new
        return conns, rows_new.T
    # Slot j of a buffer is item cnt + j of (old buffer ++ new values): from
    # z = (old buffers, flattened) ++ (the ok rows' values), an index into z
    # is row * k + item for old items, m * k + end - cnt + item - k for new.
    # Slot-major index arrays: each operation runs over m, not over k.
    item = np.arange(k)[:, None] + cnt
    base = np.arange(0, m * k, k)
    idx = item + base
    idx += (item >= k) * (m * k + end - cnt - k - base)
    z = np.concatenate([hist.buf[span].ravel(), np.take(x, rows)])
    new = np.take(z, idx)
    hist.buf[span] = new.T
    return conns, new


def _cadence_rows(a: F64) -> F64:
    """Per connector of a slot-major (_CAD_KEEP, connectors) history: the
    median of its known gaps once there are _CAD_MIN of them, else NaN.
    Connectors with all five known (the usual case) by a sorting network on
    the slots (9 compare-exchanges of contiguous arrays instead of a sort per
    connector), the others by ``median_of_rows``: the same values (the median
    of five is the third smallest, and the network only moves values)."""
    if a.shape[0] != 5:
        rows: F64 = a.T
        enough = np.isfinite(rows).sum(axis=1) >= _CAD_MIN
        full: F64 = np.where(enough, median_of_rows(rows), np.nan)
        return full
    v: list[F64] = list(a)
    known = np.isfinite(v[0])
    for col in v[1:]:
        known &= np.isfinite(col)
    for i, j in ((0, 1), (3, 4), (2, 4), (2, 3), (0, 3), (0, 2), (1, 4), (1, 3), (1, 2)):
        v[i], v[j] = np.minimum(v[i], v[j]), np.maximum(v[i], v[j])
    out = v[2]
    part = np.flatnonzero(~known)
    if part.size:
        b = np.take(a, part, axis=1).T
        enough = np.isfinite(b).sum(axis=1) >= _CAD_MIN
        out[part] = np.where(enough, median_of_rows(b), np.nan)
    return out


def _merge(conn: I64, t: F64) -> tuple[I64, F64, B, B]:
    """Messages sorted by (connector, time), with segment first/last marks."""
    order = sort_by_conn_then(conn, t)
    conn, t = conn[order], t[order]
    n = conn.shape[0]
    first = np.ones(n, np.bool_)
    last = np.ones(n, np.bool_)
    if n > 1:
        first[1:] = conn[1:] != conn[:-1]
        last[:-1] = first[1:]
    return conn, t, first, last


class _Silence(Detector):
    """A connector whose stream of messages stops: shared by offline and stale."""

    def _grow(self, n: int) -> None:
        if not hasattr(self, "last_seen"):
            self.last_seen = np.full(0, np.nan)
            self._now = np.nan
        self.last_seen = grown(self.last_seen, n, np.nan)
        # No connector can newly time out before this (a cache for tick): every
        # change that can bring a deadline forward resets it to -inf.
        self._next = -np.inf

    def _ref(self, conn: I64, prev: F64) -> F64:
        """When the silence clock of each row started (default: the previous message)."""
        return prev

    def _is_gap(self, conn: I64, t: F64, prev: F64) -> B:
        """Rows that end a silence long enough to be a finding."""
        return np.asarray((t - prev) > self._at("silence_s", conn))

    def _deadline(self, c: int, since: float, silence: float) -> tuple[float, dict[str, F64]]:
        """When a silence that began at ``since`` became provable, and the evidence."""
        return since + silence, {"last_seen": _f(since), "timeout_s": _f(silence)}

    def _gaps(self, conn: I64, t: F64, watching: B | None = None, *, ordered: bool = False) -> None:
        """Close open episodes when messages resume; report silences no tick saw.

        ``ordered``: the messages are sorted by (connector, time) already.
        """
        if conn.size == 0:
            return
        if ordered:
            n = conn.shape[0]
            first = np.ones(n, np.bool_)
            last = np.ones(n, np.bool_)
            if n > 1:
                np.not_equal(conn[1:], conn[:-1], out=first[1:])
                last[:-1] = first[1:]
        else:
            conn, t, first, last = _merge(conn, t)
        prev = self._ref(conn, prev_in_segment(t, first, self.last_seen[conn]))
        gap = self._is_gap(conn, t, prev)
        if watching is not None:
            gap &= watching[conn]
        if self.episodes.active.any():
            resumed = np.flatnonzero(gap | (first & self.episodes.active[conn]))
        else:
            resumed = np.flatnonzero(gap)
        if resumed.size:
            self._next = -np.inf  # a closed episode makes its connector eligible again
        for i in resumed.tolist():
            c = int(conn[i])
            f = self.episodes.open.get(c)
            if f is None and gap[i]:
                # A silence that no tick reported: the same record a tick would have made.
                at, ev = self._deadline(c, float(prev[i]), float(self.p["silence_s"][c]))
                self.episodes.force(_c(c), _ONE, _f(float(prev[i])), _f(at), ev)
            self.episodes.force(_c(c), _ZERO, prev[i : i + 1], t[i : i + 1])
        lc = conn[last]
        was = self.last_seen[lc]
        if np.isnan(was).any():
            self._next = -np.inf  # first message: the connector has a deadline now
        self.last_seen[lc] = np.fmax(was, t[last])


class ChargerOffline(Detector):
    """Per charger, not per connector: every message of any connector of a charger
    is a sign of life for all of them, and the state lives on the charger's first
    connector (its *head*); findings and signals are mirrored onto every connector
    of the charger (the fault is charger-wide)."""

    fault = "charger_offline"

    def _grow(self, n: int) -> None:
        if not hasattr(self, "head"):
            self.head = np.zeros(0, np.int64)  # per connector: its charger's first connector
            self.members: dict[int, tuple[int, ...]] = {}  # head -> the charger's connectors
            self._first: dict[str, int] = {}
            self._headed = 0
            self.last_seen = np.full(0, np.nan)  # per head: last message of the charger
            self.own_rows = np.full(0, np.nan)  # per connector: last meter row
            self.own_events = np.full(0, np.nan)  # per connector: last event
            self.online = np.ones(0, np.bool_)
            self.lwt_at = np.full(0, np.nan)  # last "offline" will, kept after "online"
            self.configured = np.full(0, np.nan)  # heartbeat interval the CSMS set
            self.interval = np.full(0, np.nan)  # the interval believed (NaN: unknown)
            self.hb_last = np.full(0, np.nan)
            self.hb_gaps = np.full((0, _HB_KEEP), np.nan)
            self.ocpp = np.zeros(0, np.bool_)  # per head: the charger speaks OCPP
            # Per head: when the charger was last heard before this collector
            # watched it (``heard``), taken at the next tick (``_take_heard``).
            self.heard_at = np.full(0, np.nan)
            self._heard = False  # some heard_at is waiting
            #: Outages opened or closed so far (their times are in ``snapshot``).
            self.changes = 0
            self.next_due = np.inf  # the exact deadline behind _next (``deadline``)
            self._now = np.nan
        start = self.head.shape[0]
        self.head = grown(self.head, n, 0)
        if self.head.shape[0] > start:  # new slots head themselves until an index says otherwise
            self.head[start:] = np.arange(start, self.head.shape[0])
        for name in ("last_seen", "own_rows", "own_events", "lwt_at", "configured", "heard_at"):
            setattr(self, name, grown(getattr(self, name), n, np.nan))
        self.interval = grown(self.interval, n, np.nan)
        self.hb_last = grown(self.hb_last, n, np.nan)
        self.hb_gaps = grown(self.hb_gaps, n, np.nan)
        self.online = grown(self.online, n, True)
        self.ocpp = grown(self.ocpp, n, False)
        self._next = -np.inf  # tick cache: no deadline can be sooner than this
        self._tmin = np.nan  # smallest timeout of any charger (NaN: to be computed)

    def ensure(self, index: ConnectorIndex | None, n: int, keys: SiteModels | None = None) -> None:
        super().ensure(index, n, keys)
        if index is None:
            return
        top = min(self.n, len(index))
        for c in range(self._headed, top):  # once per new connector
            h = self._first.setdefault(index.charger_of(c), c)
            self.head[c] = h
            self.members[h] = (*self.members.get(h, ()), c)
        self._headed = max(self._headed, top)

    # ------------------------------------------------------------ timeouts

    def _timeout(self, h: I64 | slice, interval: F64 | None = None) -> F64:
        """Silence that makes a charger offline: factor x its heartbeat interval +
        margin when the interval is known, else ``silence_s``."""
        iv = self.interval[h] if interval is None else interval
        known = iv * self.p["interval_factor"][h] + self.p["interval_margin_s"][h]
        out = np.where(np.isfinite(iv), known, self.p["silence_s"][h])
        return np.asarray(np.fmax(out, self.p["min_duration_s"][h]))

    def _min_timeout(self) -> float:
        if np.isnan(self._tmin):
            t = self._timeout(slice(0, self.n))
            self._tmin = float(t.min()) if t.size else np.inf
        return self._tmin

    def _believe(self, h: int) -> None:
        """The interval of charger ``h``: the CSMS's, unless the charger's own
        heartbeats (median of the last gaps) are clearly slower; then those.
        Neither known yet, an OCPP charger's is assumed (``assumed_interval_s``,
        or the longest gap seen if longer: erring long until it is known)."""
        gaps = self.hb_gaps[h]
        gaps = gaps[~np.isnan(gaps)]
        seen = float(np.median(gaps)) if gaps.size >= _HB_MIN else np.nan
        told = float(self.configured[h])
        iv = seen if np.isfinite(seen) and not seen <= _HB_SLACK * told else told
        assumed = float(self.p["assumed_interval_s"][h])
        if np.isnan(iv) and self.ocpp[h] and assumed > 0:
            iv = max(assumed, float(gaps.max())) if gaps.size else assumed
        self.interval[h] = iv

    def _mark_ocpp(self, events: Events) -> None:
        """Chargers heard speaking OCPP for the first time: their interval, while
        unknown, is assumed from now on (``_believe``)."""
        if events.ocpp_conn.size == 0:
            return
        heads = np.unique(self.head[events.ocpp_conn])
        new = heads[~self.ocpp[heads]]
        if new.size == 0:
            return
        self.ocpp[new] = True
        for h in new.tolist():
            self._believe(h)
        self._tmin = np.nan
        self._next = -np.inf

    # ------------------------------------------------------------ persistence

    def snapshot(self, index: ConnectorIndex) -> dict[str, Any]:
        """Per charger: whether it speaks OCPP, the heartbeat interval the CSMS
        set (``heartbeat_s``) and its last heartbeat gaps: what ``_believe``
        makes the interval of; and, for a charger offline now, its outage
        (``offline``: its start, detection and evidence). No other times (last
        message, last heartbeat, a will): after a restart the silence clock
        of a charger that was not offline starts anew (``heard``), so the
        collector's own downtime is never taken for the charger's. An outage
        is different: it was seen while this collector watched, and goes on
        until the charger is heard again, wherever that is (``restore``)."""
        n = self.n
        keep = self.ocpp[:n] | np.isfinite(self.configured[:n])
        keep |= np.isfinite(self.hb_gaps[:n]).any(axis=1)  # (state lives on the heads)
        off = np.flatnonzero(self.episodes.active[:n] & (self.head[:n] == np.arange(n)))
        keep[off] = True
        hs = np.flatnonzero(keep)
        out: dict[str, Any] = {
            index.charger_of(h): {"ocpp": o, "heartbeat_s": told, "heartbeat_gaps": gaps}
            for h, o, told, gaps in zip(
                hs.tolist(),
                self.ocpp[hs].tolist(),
                _nums(self.configured[hs]),
                _known(self.hb_gaps[hs]),
                strict=True,
            )
        }
        for h in off.tolist():  # (few: the chargers offline now)
            f = self.episodes.open.get(h)
            if f is not None:
                ev = {k: None if math.isnan(v) else v for k, v in f.evidence.items()}
                out[index.charger_of(h)]["offline"] = {
                    "since": f.start,
                    "detected": f.detected,
                    "evidence": ev,
                }
        return out

    def restore(self, learned: Mapping[str, Any], index: ConnectorIndex) -> None:
        """What was learned replaces what is known here; an outage (``offline``)
        goes on here, from its own start and detection, for a charger not heard
        here yet: it stays offline until it is heard (a restart, a partition
        taken over), its alert firing without a resolution in between."""
        for charger, s in learned.items():
            h = self._first.get(charger)
            if h is None:
                continue
            self.ocpp[h] = bool(s.get("ocpp", False))
            self.configured[h] = _unknown(s.get("heartbeat_s"))
            self.hb_gaps[h] = _slots(s.get("heartbeat_gaps", ()), _HB_KEEP)
            self.hb_last[h] = np.nan  # the gaps go on from its next heartbeat
            self._believe(h)
            off = s.get("offline")
            if off and np.isnan(self.last_seen[h]) and not self.episodes.active[h]:
                since = float(off["since"])
                ev = {
                    str(k): _f(_unknown(v))
                    for k, v in (off.get("evidence") or {}).items()
                    if k != "interval_s"  # (_force adds it)
                }
                # Its silence goes on from its last sign of life.
                self.last_seen[h] = since
                self._force(_c(h), _ONE, _f(since), _f(float(off["detected"])), ev)
        self._tmin = np.nan
        self._next = -np.inf

    def heard(self, conns: I64, t: F64, now: float) -> int:
        """The chargers of ``conns`` were last heard at ``t`` before this collector
        watched them (by the collector they come from, or by this one before a
        restart). Taken at the next tick, the start of the watch here
        (``_take_heard``): a charger not heard here by then counts its silence
        from ``t`` when that silence is not yet an outage, so one that began
        before a move or a short stop is found on time; an older time is not
        taken: the charger was unheard while nobody watched it (a long stop),
        which is no outage of its own, and its silence counts from the start
        of the watch. A charger offline when it was last watched is restored as
        such (``restore``), not here; heard after its outage began (the
        restored state was saved before its return), the outage ends at ``t``
        instead."""
        ok = conns < self.n
        h, t = self.head[conns[ok]], t[ok]
        # Only a restored outage has a last_seen before this collector heard
        # the charger (restore sets it to the outage's start).
        back = self.episodes.active[h] & (t > self.last_seen[h])
        if back.any():
            hb, tb = h[back], t[back]
            self._force(hb, np.zeros(hb.size, np.bool_), self.last_seen[hb], tb)
            self.last_seen[hb] = np.nan
        take = np.isnan(self.last_seen[h]) & np.isfinite(t)
        self.heard_at[h[take]] = t[take]
        if take.any():
            self._heard = True
            self._next = -np.inf
        return int(take.sum())

    def _take_heard(self, now: float) -> None:
        """The start of the watch for the chargers ``heard`` named (see there)."""
        if not self._heard:
            return
        self._heard = False
        n = self.n
        h = np.flatnonzero(np.isfinite(self.heard_at[:n]))
        t = self.heard_at[h]
        self.heard_at[h] = np.nan
        unheard = np.isnan(self.last_seen[h])
        h, t = h[unheard], t[unheard]
        fresh = now - t <= self._timeout(h)
        self.last_seen[h] = np.where(fresh, np.fmin(t, now), now)
        self._next = -np.inf

    def forget(self, conns: I64, at: float) -> None:
        """Episodes end (base), and the charger's times go: its last message
        (a silence counted from it would be the time another collector heard
        it), last heartbeat and last will. Unheard, it has no deadline here."""
        super().forget(conns, at)
        conns = conns[conns < self.n]
        heads = self.head[conns]
        for name in ("last_seen", "lwt_at", "hb_last", "heard_at"):
            getattr(self, name)[heads] = np.nan
        self.own_rows[conns] = np.nan
        self.own_events[conns] = np.nan
        self.online[heads] = True
        self.changes += 1
        self._next = -np.inf

    def _learn(self, events: Events) -> dict[int, tuple[float, list[tuple[float, float]]]]:
        """Apply this update's heartbeats, boots and intervals in time order.

        Returns, per charger whose interval changed: the interval before, and each
        change as (time, interval after), for judging the silences in between."""
        self._mark_ocpp(events)
        head = self.head
        todo: list[tuple[float, int, int, float]] = []  # time, kind, head, value
        for kind, conns, times, values in (
            (0, events.boot_conn, events.boot_recv, None),
            (1, events.iv_conn, events.iv_recv, events.iv_s),
            (2, events.hb_conn, events.hb_recv, None),
        ):
            if conns.size == 0:
                continue
            own = np.flatnonzero(head[conns] == conns)  # charger-wide: one copy each
            vals = values[own] if values is not None else np.zeros(own.size)
            todo += zip(
                times[own].tolist(),
                [kind] * own.size,
                conns[own].tolist(),
                vals.tolist(),
                strict=True,
            )
        changed: dict[int, tuple[float, list[tuple[float, float]]]] = {}
        for t, kind, h, v in sorted(todo):
            was = float(self.interval[h])
            if kind == 0:  # a reboot restarts the heartbeat timer
                self.hb_last[h] = np.nan
                continue
            if kind == 1:  # a new configuration: the old cadence no longer says anything
                self.configured[h] = v
                self.hb_gaps[h] = np.nan
                self.hb_last[h] = np.nan
            else:
                gap = t - float(self.hb_last[h])
                self.hb_last[h] = t
                if not gap >= _HB_MIN_GAP:  # a repeat, or the first heartbeat
                    continue
                self.hb_gaps[h, :-1] = self.hb_gaps[h, 1:]
                self.hb_gaps[h, -1] = gap
            self._believe(h)
            now_iv = float(self.interval[h])
            if now_iv != was and not (np.isnan(now_iv) and np.isnan(was)):
                changed.setdefault(h, (was, []))[1].append((t, now_iv))
        if changed:
            self._tmin = np.nan
            self._next = -np.inf
        return changed

    # ------------------------------------------------------------ messages

    def _update(self, frame: Frame, events: Events, now: float) -> None:
        self._take_heard(now)  # before this update's messages
        head = self.head
        for c, t, on in zip(
            events.off_conn.tolist(),
            events.off_recv.tolist(),
            events.off_online.tolist(),
            strict=True,
        ):
            h = int(head[c])
            if h != c:
                continue  # charger-wide: the head's copy
            # "online" is a message like any other (it is in events.seen and closes the
            # episode below); the will is remembered for the deadline.
            self.online[h] = on
            if not on:
                self.lwt_at[h] = t
            self._next = -np.inf
        changed = self._learn(events)
        streams = (
            (frame.raw_conn, frame.raw_recv, self.own_rows),
            (events.seen_conn, events.seen_recv, self.own_events),
        )
        hot = np.zeros(self.n, np.bool_)
        hot[list(changed)] = True
        if not self.online[: self.n].all():
            hot[: self.n] |= ~self.online[: self.n]
        if self.episodes.active[: self.n].any():
            hot[: self.n] |= self.episodes.active[: self.n]
        tmin = self._min_timeout()
        lasts = [
            self._prefilter_rows(frame, events, tmin, hot),
            self._prefilter(events.seen_conn, events.seen_recv, self.own_events, tmin, hot),
        ]
        # The exact, charger-wide judgement: only for the messages of hot
        # chargers (usually none, and then no pass over the rows at all).
        parts = [(head[c], t) for c, t, _ in streams] if hot[: self.n].any() else []
        sel = [hot[hs] for hs, _ in parts]
        if any(bool(s.any()) for s in sel):
            hh = np.concatenate([hs[s] for (hs, _), s in zip(parts, sel, strict=True)])
            tt = np.concatenate([t[s] for (_, t), s in zip(parts, sel, strict=True)])
            self._judge(hh, tt, changed)
        for lc, lt in lasts:  # every charger's last message (from its connectors' last)
            if lc.size:
                hs = head[lc]
                if np.isnan(self.last_seen[hs]).any():
                    # A first message: the charger has a deadline now (a charger
                    # listed in the fleet file, or restored, is no new connector
                    # nor, once known to speak OCPP, a newly marked one).
                    self._next = -np.inf
                np.fmax.at(self.last_seen, hs, lt)
        # Any message after the will proves the charger back (a missed "online"
        # retained message must not keep it offline forever).
        if not self.online[: self.n].all():
            self.online[: self.n] |= self.last_seen[: self.n] > self.lwt_at[: self.n]
        self.tick(now)

    def _prefilter_rows(self, frame: Frame, events: Events, tmin: float, hot: B) -> tuple[I64, F64]:
        """``_prefilter`` of the meter rows, from the frame's shared receive
        stream: past a connector's first row, only a gap above ``tmin`` makes
        its charger suspect, and the largest gap shows whether there is one.

        A connector's first row is judged from its charger's last message too
        when no message of this update came before that (the usual order): the
        charger-wide gap that ``_judge`` finds there is then at most the time
        since, so a connector's first row ever (no own row before) does not
        make a charger that was heard recently suspect."""
        rs = _raw_stream(frame)
        c0, t0 = rs.conn, rs.t_first
        if c0.size == 0:
            return c0, t0
        prev = self.own_rows[c0]
        seen = self.last_seen[self.head[c0]]
        late = self.last_seen[self.head[events.seen_conn]]
        if not ((t0 < seen).any() or (events.seen_recv < late).any()):
            prev = np.fmax(prev, seen)
        suspect = c0[~(t0 - prev <= tmin)]  # NaN: never heard from before
        if suspect.size:
            hot[self.head[suspect]] = True
        if rs.top > tmin:
            hot[self.head[frame.raw_conn[rs.gap > tmin]]] = True
        self.own_rows[c0] = np.fmax(self.own_rows[c0], rs.t_last)
        return c0, rs.t_last

    def _prefilter(self, conn: I64, t: F64, own: F64, tmin: float, hot: B) -> tuple[I64, F64]:
        """Mark the chargers that may have a silence ending in this update.

        A charger's silence is a silence of each of its connectors' streams, so a
        connector whose own gaps all stay below the smallest timeout cannot end
        one: the exact, charger-wide judgement runs only for the few others.
        ``conn``/``t`` are sorted by (connector, time); ``own`` is updated.
        Returns each connector's last message: (connectors, times)."""
        n = conn.shape[0]
        if n == 0:
            return conn, t
        first = np.ones(n, np.bool_)
        if n > 1:
            np.not_equal(conn[1:], conn[:-1], out=first[1:])
        prev = np.empty(n)
        prev[1:] = t[:-1]
        fi = np.flatnonzero(first)
        prev[fi] = own[conn[fi]]
        suspect = ~((t - prev) <= tmin)  # NaN: a stream's first message
        if suspect.any():
            hot[self.head[conn[suspect]]] = True
        last = np.append(fi[1:] - 1, n - 1)
        lc, lt = conn[last], t[last]
        own[lc] = np.fmax(own[lc], lt)
        return lc, lt

    def _judge(
        self,
        h: I64,
        t: F64,
        changed: dict[int, tuple[float, list[tuple[float, float]]]],
    ) -> None:
        """Close open episodes when messages resume; report silences no tick saw."""
        order = sort_by_conn_then(h, t)
        h, t = h[order], t[order]
        n = h.shape[0]
        first = np.ones(n, np.bool_)
        if n > 1:
            first[1:] = h[1:] != h[:-1]
        prev = prev_in_segment(t, first, self.last_seen[h])
        timeout = self._timeout(h, self._interval_at(h, prev, changed))
        gap = np.asarray((t - prev) > timeout)
        will = self.lwt_at[h]
        grace = self.p["lwt_grace_s"][h]
        # A gap also counts when a will fell inside it and its grace ran out.
        gap |= (will > prev) & (t - will > grace)
        resumed = np.flatnonzero(gap | (first & self.episodes.active[h]))
        if resumed.size:
            self._next = -np.inf  # a closed episode makes its charger eligible again
        for i in resumed.tolist():
            c = int(h[i])
            if c not in self.episodes.open and gap[i]:
                # A silence that no tick reported: the same record a tick would have made.
                since = float(prev[i])
                at, lwt = self._deadline(c, since, float(timeout[i]))
                ev = {"last_seen": _f(since), "timeout_s": _f(float(timeout[i])), "lwt": _f(lwt)}
                self._force(_c(c), _ONE, _f(since), _f(at), ev)
            self._force(_c(c), _ZERO, prev[i : i + 1], t[i : i + 1])

    def _interval_at(
        self, h: I64, when: F64, changed: dict[int, tuple[float, list[tuple[float, float]]]]
    ) -> F64:
        """Per row, the interval believed at time ``when`` (a silence's start)."""
        out = self.interval[h].copy()
        for c, (before, steps) in changed.items():
            rows = np.flatnonzero(h == c)
            if rows.size == 0:
                continue
            ts = np.array([s[0] for s in steps])
            after = np.array([before, *(s[1] for s in steps)])
            # The change at a message's own time applies to the silence after it.
            k = np.searchsorted(ts, np.nan_to_num(when[rows], nan=-np.inf), side="right")
            out[rows] = after[k]
        return out

    def _deadline(self, c: int, since: float, timeout: float) -> tuple[float, float]:
        """When a silence from ``since`` became provable: the timeout, or the last
        will's grace when the will came during the silence (then lwt = 1)."""
        at, lwt = since + timeout, 0.0
        will = float(self.lwt_at[c])
        if will > since:
            by_will = will + float(self.p["lwt_grace_s"][c])
            if by_will < at:
                at, lwt = by_will, 1.0
        return at, lwt

    def _force(
        self, heads: I64, active: B, start: F64, at: F64, ev: dict[str, F64] | None = None
    ) -> None:
        """Set the episode of each charger in ``heads`` on all of its connectors."""
        if (self.episodes.active[heads] != active).any():
            self.changes += 1
        reps = [self.members.get(h, (h,)) for h in heads.tolist()]
        counts = np.array([len(r) for r in reps], np.int64)
        conns = np.fromiter((c for r in reps for c in r), np.int64, int(counts.sum()))
        extra = {k: np.repeat(v, counts) for k, v in ev.items()} if ev else None
        evidence = None
        if extra is not None:
            extra["interval_s"] = np.repeat(self.interval[heads], counts)
            evidence = extra
        self.episodes.force(
            conns,
            np.repeat(active, counts),
            np.repeat(start, counts),
            np.repeat(at, counts),
            evidence,
        )

    def tick(self, now: float) -> None:
        self._take_heard(now)
        n = self.n
        self._now = now
        if n == 0 or now <= self._next:
            return
        seen = self.last_seen[:n]
        timeout = self._timeout(slice(0, n))
        grace = self.p["lwt_grace_s"][:n]
        will = self.lwt_at[:n]
        after = (will > seen) | (np.isnan(seen) & np.isfinite(will))
        off = ~self.online[:n] & after
        # Per charger (head), when silence or the last will makes it offline.
        # Offline at the deadline itself (silent for the whole timeout), so a
        # tick at exactly the deadline (``deadline``: the collector wakes for
        # it and the rules read it then) finds it.
        by_silence = seen + timeout
        by_will = np.where(off, will + grace, np.inf)
        due = np.fmin(by_silence, by_will)
        by_silence = np.where(by_silence <= now, by_silence, np.inf)
        by_will = np.where(by_will <= now, by_will, np.inf)
        at = np.fmin(by_silence, by_will)  # NaN last_seen (never heard): unknown, not offline
        inactive = ~self.episodes.active[:n]
        idx = np.flatnonzero(np.isfinite(at) & inactive)
        self.next_due = _earliest(due, inactive & ~np.isfinite(at))
        self._next = self.next_due - 1e-3
        if idx.size:
            start = np.where(np.isnan(seen[idx]), will[idx], seen[idx])
            self._force(
                idx.astype(np.int64),
                np.ones(idx.size, np.bool_),
                start,
                at[idx],
                {
                    "last_seen": seen[idx],
                    "timeout_s": timeout[idx],
                    "lwt": (by_will[idx] < by_silence[idx]).astype(float),
                },
            )

    def deadline(self) -> float:
        """The earliest time at which a charger not offline now becomes offline
        unless it is heard before (its last message + its timeout, or its will
        + grace): inf if none; -inf when only the next tick can say (a change
        since the last one). A caller that ticks at this moment finds the
        outage at its deadline, not at the next of its regular ticks."""
        return -np.inf if self._next == -np.inf else self.next_due

    def refresh(self) -> None:
        n = self.n
        quiet = (self._now - self.last_seen[:n]) / self._timeout(slice(0, n))
        self.score[:n] = quiet[self.head[:n]]  # the charger's, on each connector


# A connector's entry in StaleTelemetry.snapshot(), in the order it builds them.
_STALE_KEYS = ("heartbeat_s", "heartbeat_gaps", "told", "idle_gaps", "session_gaps")


class StaleTelemetry(_Silence):
    """The silence a connector is judged against is its own: per mode (in a
    session, or idle), the longer of the cadence the CSMS told it
    (_learn_meter_interval) and the median of its last _CAD_KEEP gaps between
    meter rows received in that mode, times ``interval_factor`` plus
    ``interval_margin_s``, and never less than ``silence_s``. The clock restarts
    when the mode changes (a session starting after 800 s of an idle
    connector's 900 s cadence is not 800 s late)."""

    fault = "stale_telemetry"

    def _grow(self, n: int) -> None:
        super()._grow(n)
        if not hasattr(self, "in_tx"):
            self.in_tx = np.zeros(0, np.bool_)
            self.status = np.full(0, -1, np.int8)
            self.live_since = np.full(0, np.nan)
            self.online = np.ones(0, np.bool_)
            self.reporter = np.zeros(0, np.bool_)
            # Learned cadence per mode (0: idle, 1: in a session); NaN: not yet.
            self._cadence = np.full((0, 2), np.nan)
            # Session cadences whose history grew since they were last computed
            # (see the cadence property).
            self._cad_due = np.zeros(0, np.bool_)
            self._any_cad_due = False
            self._gap_hist = (History(_CAD_KEEP), History(_CAD_KEEP))
            self.row_recv = np.full(0, np.nan)  # last meter row received, and its mode
            self.row_mode = np.full(0, -1, np.int8)
            # Chargers that publish an online flag (native last will, a bridge) say
            # when they are online; for the others (OCPP) another message during
            # the silence (a heartbeat, a status) is what shows them online.
            self.flagged = np.zeros(0, np.bool_)
            self.life = np.full(0, np.nan)  # last message other than meter rows
            self._lifeless = np.zeros(0, np.bool_)  # due, but no sign of life yet
            self._ev_conn, self._ev_recv = np.empty(0, np.int64), np.empty(0)
            # The charger's heartbeat interval (the CSMS's, or its observed gaps)
            # and, per connector, the end of its charger's last outage (see _outages).
            self.hb_told = np.full(0, np.nan)
            self.hb_last = np.full(0, np.nan)
            self._hb_hist = History(_HB_KEEP)
            self.any_last = np.full(0, np.nan)  # last message of any kind, meter rows too
            self.back_since = np.full(0, np.nan)
            self._ret_conn, self._ret_t = np.empty(0, np.int64), np.empty(0)
            self._heartbeats = False  # any heartbeat or interval seen yet
            # The meter intervals the CSMS told (MeterIntervalEvent), per connector:
            # [sampled, aligned] as told (0: none sent; NaN: not told), the cadence
            # they make per mode (idle, in a session; _told_cadence) and when that
            # last changed; this update's changes are kept for _told_at/_cut.
            self.told = np.full((0, 2), np.nan)
            self.told_cad = np.full((0, 2), np.nan)
            self.told_at = np.full((0, 2), np.nan)
            self._told_steps: dict[int, tuple[F64, F64, list[tuple[float, F64]]]] = {}
            self._told_any = False  # any told yet (else the hot path skips them)
        for name in ("hb_told", "hb_last", "any_last", "back_since"):
            setattr(self, name, grown(getattr(self, name), n, np.nan))
        self.flagged = grown(self.flagged, n, False)
        self.life = grown(self.life, n, np.nan)
        self._lifeless = grown(self._lifeless, n, False)
        self.reporter = grown(self.reporter, n, False)
        self.in_tx = grown(self.in_tx, n, False)
        self.status = grown(self.status, n, -1)
        self.live_since = grown(self.live_since, n, np.nan)
        self.online = grown(self.online, n, True)
        self._cadence = grown(self._cadence, n, np.nan)
        self._cad_due = grown(self._cad_due, n, False)
        for name in ("told", "told_cad", "told_at"):
            setattr(self, name, grown(getattr(self, name), n, np.nan))
        self.row_recv = grown(self.row_recv, n, np.nan)
        self.row_mode = grown(self.row_mode, n, -1)

    # ------------------------------------------------------------ persistence

    def snapshot(self, index: ConnectorIndex) -> dict[str, Any]:
        """Per charger, per connector number: the heartbeat interval told and
        the last heartbeat gaps (``_hb_interval``, for finding its charger's
        returns from outages), the meter intervals told ([sampled, aligned], as
        MeterIntervalEvent gave them) and the last same-mode gaps between meter
        rows, idle and in a session (the learned cadences). Not kept: times
        (the silence clock starts at the first row after a restart), the
        session state, nor whether a connector reports while idle (its first
        idle row says so again)."""
        n = self.n
        hb = self._grown_hist(self._hb_hist)[:n]
        idle, sess = (self._grown_hist(h)[:n] for h in self._gap_hist)
        keep = np.isfinite(self.hb_told[:n]) | np.isfinite(self.told[:n]).any(axis=1)
        for buf in (hb, idle, sess):
            keep |= np.isfinite(buf).any(axis=1)
        cs = np.flatnonzero(keep)
        out: dict[str, Any] = {}
        keys = index.keys
        for c, *values in zip(
            cs.tolist(),
            _nums(self.hb_told[cs]),
            _known(hb[cs]),
            _nums(self.told[cs]),
            _known(idle[cs]),
            _known(sess[cs]),
            strict=True,
        ):
            charger, connector = keys[c]
            entry = dict(zip(_STALE_KEYS, values, strict=True))
            out.setdefault(charger, {})[str(connector)] = entry
        return out

    def restore(self, learned: Mapping[str, Any], index: ConnectorIndex) -> None:
        hb = self._grown_hist(self._hb_hist)
        idle, sess = (self._grown_hist(h) for h in self._gap_hist)
        rows: list[int] = []
        cols: tuple[list[Any], ...] = ([], [], [], [], [])
        for charger, connectors in learned.items():
            for k, s in connectors.items():
                c = index.get(str(charger), int(k))
                if c is None or c >= self.n:
                    continue
                rows.append(c)
                told = s.get("told") or (None, None)
                for col, v in zip(
                    cols,
                    (
                        _unknown(s.get("heartbeat_s")),
                        _slots(s.get("heartbeat_gaps", ()), _HB_KEEP),
                        [_unknown(told[0]), _unknown(told[1])],
                        _slots(s.get("idle_gaps", ()), _CAD_KEEP),
                        _slots(s.get("session_gaps", ()), _CAD_KEEP),
                    ),
                    strict=True,
                ):
                    col.append(v)
        if not rows:
            return
        idx = np.array(rows, np.int64)
        self.hb_told[idx] = cols[0]
        hb[idx] = cols[1]
        self.hb_last[idx] = np.nan  # the gaps go on from its next heartbeat
        self.told[idx] = cols[2]
        self.told_cad[idx] = _told_cadence(self.told[idx])
        # The gaps kept were all begun after the told cadence last changed, and
        # every gap from now on begins after the restore.
        self.told_at[idx] = np.nan
        idle[idx] = cols[3]
        sess[idx] = cols[4]
        self._cadence[idx, 0] = _cadence_rows(np.ascontiguousarray(idle[idx].T))
        self._cad_due[idx] = True  # the session cadence: when read (the cadence property)
        self._any_cad_due = True
        self._told_any |= bool(np.isfinite(self.told[idx]).any())
        self._heartbeats |= bool(np.isfinite(self.hb_told[idx]).any() or np.isfinite(hb[idx]).any())
        self._next = -np.inf

    def resume(self, conns: I64, status: NDArray[np.int8], in_tx: B, now: float) -> None:
        """In a session (or not) as the persisted state says: a connector in one
        is watched from ``now`` (the collector's own downtime is not its silence)."""
        keep = conns < self.n
        c = conns[keep]
        self.status[c] = status[keep]
        self.in_tx[c] = in_tx[keep] & ~_NO_SESSION_LUT[status[keep].astype(np.int64) + 1]
        watched = self._watchable(c)
        self.live_since[c[watched]] = now
        self._next = -np.inf

    def forget(self, conns: I64, at: float) -> None:
        """Episodes end (base); the times a silence is counted from go, and the
        session state (the next owner has the connector's status now)."""
        super().forget(conns, at)
        c = conns[conns < self.n]
        for name in ("last_seen", "live_since", "any_last", "back_since", "life", "row_recv"):
            getattr(self, name)[c] = np.nan
        self.hb_last[c] = np.nan
        self.row_mode[c] = -1
        self.status[c] = -1
        self.in_tx[c] = False
        self.online[c] = True
        self._lifeless[c] = False
        self._next = -np.inf

    def _grown_hist(self, hist: History) -> F64:
        hist.buf = grown(hist.buf, self.n, np.nan)
        buf: F64 = hist.buf
        return buf

    @property
    def cadence(self) -> F64:
        """Learned cadence per connector and mode (0 idle, 1 in a session; NaN:
        not yet). A session cadence changes with nearly every batch but is read
        only when a deadline or a score is judged: between reads, only which
        histories grew is noted, and their medians are computed at the read."""
        if self._any_cad_due:
            self._any_cad_due = False
            idx = np.flatnonzero(self._cad_due)
            self._cad_due[idx] = False
            hist = np.take(self._gap_hist[1].buf, idx, axis=0)
            self._cadence[idx, 1] = _cadence_rows(np.ascontiguousarray(hist.T))
        return self._cadence

    def _in_session(self, c: I64 | slice) -> B:
        return np.asarray(self.in_tx[c] | _LIVE_LUT[self.status[c] + 1])

    def _watchable(self, c: I64 | slice) -> B:
        """In a session or an idle reporter, and online: the segments walked.
        Whether an idle reporter's cadence was known is judged per silence, at
        its time (``_limit``), so the segments do not depend on batch cuts."""
        return np.asarray((self._in_session(c) | self.reporter[c]) & self.online[c])

    def _modes_of(self, c: int) -> tuple[bool, bool]:
        """``_watchable`` and ``_in_session`` of one connector, in plain Python
        (the per-event loop: a numpy call per event costs more than the rule)."""
        sess = bool(self.in_tx[c]) or int(self.status[c]) in _LIVE_CODES
        return (sess or bool(self.reporter[c])) and bool(self.online[c]), sess

    def _watching(self, c: I64 | slice) -> B:
        # An idle reporter is watched once its idle cadence is known.
        known = np.isfinite(self.cadence[c, 0])
        if self._told_any:
            known |= np.isfinite(self.told_cad[c, 0])
        idle_ok = self.reporter[c] & known
        return np.asarray((self._in_session(c) | idle_ok) & self.online[c])

    def _timeout(self, c: I64 | slice) -> F64:
        """The silence that makes connector(s) ``c`` stale, in their current mode."""
        sess = self._in_session(c)
        iv = np.where(sess, self.cadence[c, 1], self.cadence[c, 0])
        if self._told_any:
            # The longer of learned and told: fewer false pages, never a silence hidden.
            iv = np.fmax(iv, np.where(sess, self.told_cad[c, 1], self.told_cad[c, 0]))
        own = iv * self.p["interval_factor"][c] + self.p["interval_margin_s"][c]
        return np.asarray(np.fmax(self.p["silence_s"][c], own))  # NaN cadence: silence_s

    def _gaps_of(self, f: Frame) -> tuple[F64, NDArray[np.int8]]:
        """Per row of ``f``: the gap to the connector's previous meter row when
        both are of the same mode (NaN otherwise; a gap under _CAD_MIN_GAP is
        kept, and every reader skips it), and the row's mode (0 idle, 1 in a
        session, -1 neither: Preparing, Finishing, Faulted, ...)."""
        n = len(f)
        lo, hi = (int(f.status.min()), int(f.status.max())) if n else (0, 0)
        # One status throughout (usual): no gather per row.
        mode = np.full(n, _MODE_LUT[lo], np.int8) if lo == hi else np.take(_MODE_LUT, f.status)
        gap = np.empty(n)
        if n == 0:
            return gap, mode
        fi, c = f.first_idx, f.touched
        np.subtract(f.recv[1:], f.recv[:-1], out=gap[1:])
        m = int(mode[0])
        if lo == hi and m >= 0:
            # Every row but a connector's first has the mode of the row before.
            g0 = f.recv[fi] - self.row_recv[c]
            g0[self.row_mode[c] != m] = np.nan
            gap[fi] = g0
            return gap, mode
        gap[fi] = f.recv[fi] - self.row_recv[c]
        same = (mode == f.shift(mode, self.row_mode[c])) & (mode >= 0)
        return np.where(same, gap, np.nan), mode

    def _cadence_at(self, c: int, t: float, m: int) -> float:
        """Connector ``c``'s cadence in mode ``m`` as it stood at receive time
        ``t`` of this update: the longer of the told one and the learned one,
        from its gaps received before ``t`` (this frame's, then the carried
        ones; only gaps since the told cadence last changed), so a silence is
        judged the same however the stream is cut into updates."""
        gaps: list[float] = []
        f, gap, mode = self._ctx
        cut, carried = self._cut(c, t, m)
        lo, hi = np.searchsorted(f.conn, [c, c + 1])
        if hi > lo:
            rows = np.arange(lo, hi)
            g, r = gap[lo:hi], f.recv[lo:hi]
            rows = rows[(mode[lo:hi] == m) & (g >= _CAD_MIN_GAP) & (r < t) & ~(r - g < cut)]
            gaps = gap[rows[-_CAD_KEEP:]].tolist()
        if len(gaps) < _CAD_KEEP and carried:
            old = self._gap_hist[m].buf[c] if c < self._gap_hist[m].buf.shape[0] else np.empty(0)
            gaps = [*old[~np.isnan(old)].tolist(), *gaps][-_CAD_KEEP:]
        learned = float(np.median(gaps)) if len(gaps) >= _CAD_MIN else np.nan
        return float(np.fmax(learned, self._told_at(c, t, m)))

    def _told_at(self, c: int, t: float, m: int) -> float:
        """The cadence told for mode ``m`` of connector ``c`` at receive time ``t``
        of this update (a change at ``t`` applies)."""
        steps = self._told_steps.get(c)
        if steps is None:
            return float(self.told_cad[c, m])
        value = float(steps[0][m])
        for at, after in steps[2]:
            if at <= t:
                value = float(after[m])
        return value

    def _cut(self, c: int, t: float, m: int) -> tuple[float, bool]:
        """When the cadence told for mode ``m`` of ``c`` last changed as of ``t``
        (gaps that began before say nothing of it; NaN: never), and whether the
        gaps carried from earlier updates still count then."""
        steps = self._told_steps.get(c)
        if steps is None:
            return float(self.told_at[c, m]), True
        cut, carried = float(steps[1][m]), True
        value = steps[0][m]
        for at, after in steps[2]:
            if at <= t and not _same(after[m], value):
                cut, carried, value = at, False, after[m]
        return cut, carried

    def _learn_meter_interval(self, events: Events) -> None:
        """The meter intervals the CSMS told each connector (MeterIntervalEvent),
        in receive order. Where the cadence told for a mode changes, what was
        learned in that mode is dropped (at the end of the update: _learn_cadence)
        so the new cadence is not judged against the old gaps, and the silence
        clock restarts there (as at a return from an outage: the charger's
        timer starts anew)."""
        self._told_steps = {}
        if events.mi_conn.size == 0:
            return
        self._next = -np.inf
        self._told_any = True
        o = sort_by_conn_then(events.mi_conn, events.mi_recv)
        restart: list[tuple[int, float]] = []
        for c, t, k, v in zip(
            events.mi_conn[o].tolist(),
            events.mi_recv[o].tolist(),
            events.mi_kind[o].tolist(),
            events.mi_s[o].tolist(),
            strict=True,
        ):
            before = self.told_cad[c].copy()
            self.told[c, k] = v
            after = _told_cadence(self.told[c])
            changed = ~_same(after, before)
            if not changed.any():
                continue
            entry = self._told_steps.setdefault(c, (before, self.told_at[c].copy(), []))
            entry[2].append((t, after))
            self.told_cad[c] = after
            self.told_at[c, changed] = t
            restart.append((c, t))
        if restart:
            rc = np.array([c for c, _ in restart], np.int64)
            rt = np.array([t for _, t in restart])
            conn = np.concatenate([self._ret_conn, rc])
            order = sort_by_conn_then(conn, np.concatenate([self._ret_t, rt]))
            self._ret_conn = conn[order]
            self._ret_t = np.concatenate([self._ret_t, rt])[order]

    def _learn_cadence(self, f: Frame, gap: F64, mode: NDArray[np.int8]) -> None:
        """Push the same-mode gaps of ``f``'s rows and update the touched
        connectors' cadences (after judging: a gap is judged by the cadence
        before it)."""
        for m, hist in enumerate(self._gap_hist):
            self._drop_learned(m, hist)
        if len(f) == 0:
            return
        c = f.touched
        lo, hi = int(mode.min()), int(mode.max())
        for m, hist in enumerate(self._gap_hist):
            if not lo <= m <= hi:
                continue
            ok = gap >= _CAD_MIN_GAP  # NaN: another mode before, or none
            if lo != hi:
                ok &= mode == m
            if self._told_any:
                # Gaps that began before the told cadence last changed say nothing of it.
                ok &= ~(f.recv - gap < self.told_at[f.conn, m])
            cs, buf = _push_last(hist, f, gap, ok)
            if cs.size == 0:
                continue
            if m == 1:  # computed when read (the cadence property)
                self._cad_due[cs] = True
                self._any_cad_due = True
                continue
            learned = _cadence_rows(buf)
            if not np.array_equal(learned, self._cadence[cs, 0], equal_nan=True):
                self._next = -np.inf  # idle reporters may be newly watched
            self._cadence[cs, 0] = learned
        self.row_recv[c] = f.recv[f.last_idx]
        self.row_mode[c] = mode[f.last_idx]

    def _drop_learned(self, m: int, hist: History) -> None:
        """Forget what was learned in mode ``m`` by the connectors whose told
        cadence in that mode changed in this update."""
        drop = [c for c, (b, _, steps) in self._told_steps.items()
                if any(not _same(a[m], b[m]) for _, a in steps)]  # fmt: skip
        if drop:
            hist.buf = grown(hist.buf, self.n, np.nan)
            hist.buf[drop] = np.nan
            self._cadence[drop, m] = np.nan  # (a due session median is NaN too now)

    def _learn_heartbeat(self, events: Events) -> None:
        """Each connector's view of its charger's heartbeat interval: the longer
        of the CSMS's (last HeartbeatInterval event) and the median of the last
        heartbeat gaps (longer: fewer outages found, never a silence hidden)."""
        if events.iv_conn.size or events.hb_conn.size:
            self._heartbeats = True  # outages can be judged from now on
        if events.iv_conn.size:
            o = sort_by_conn_then(events.iv_conn, events.iv_recv)
            self.hb_told[events.iv_conn[o]] = events.iv_s[o]  # the latest per connector
        if events.hb_conn.size:
            conn, t, first, last = _merge(events.hb_conn, events.hb_recv)
            gap = t - prev_in_segment(t, first, self.hb_last[conn])
            lc = conn[last]
            self.hb_last[lc] = np.fmax(self.hb_last[lc], t[last])
            rows = np.flatnonzero(gap >= _HB_MIN_GAP)  # NaN: a first heartbeat
            if rows.size:
                z = np.zeros(rows.size, np.int8)
                sub = Frame.build(conn[rows], gap[rows], gap[rows], _NO_VALUES, z, self.n)
                self._hb_hist.push(sub, gap[rows])

    def _hb_interval(self, c: I64) -> F64:
        self._hb_hist.buf = grown(self._hb_hist.buf, self.n, np.nan)
        buf = self._hb_hist.buf[c]
        seen = np.where(np.isfinite(buf).sum(axis=1) >= _HB_MIN, median_of_rows(buf), np.nan)
        return np.asarray(np.fmax(self.hb_told[c], seen))

    def _outages(self, frame: Frame) -> None:
        """Where each connector's charger came back from an outage in this
        update: its first message (of any kind, this connector's meter rows
        included) after none for ``interval_factor`` x the charger's heartbeat
        interval + ``interval_margin_s`` (charger_offline's rule). Reports the
        connector could not send while its charger was away are not late: the
        silence clock restarts there. Unknown interval: no outage is found."""
        if not self._heartbeats:  # native telemetry: no heartbeat, no interval
            self._ret_conn, self._ret_t = self._ret_conn[:0], self._ret_t[:0]
            return
        conn = np.concatenate([frame.raw_conn, self._ev_conn])
        t = np.concatenate([frame.raw_recv, self._ev_recv])
        known = np.isfinite(self.hb_told[conn]) | np.isfinite(self.hb_last[conn])
        conn, t = conn[known], t[known]
        if conn.size == 0:
            self._ret_conn, self._ret_t = conn, t
            return
        conn, t, first, last = _merge(conn, t)
        gap = t - prev_in_segment(t, first, self.any_last[conn])
        limit = self._hb_interval(conn) * self.p["interval_factor"][conn]
        away = gap > limit + self.p["interval_margin_s"][conn]  # NaN: no
        self._ret_conn, self._ret_t = conn[away], t[away]
        lc = conn[last]
        self.any_last[lc] = np.fmax(self.any_last[lc], t[last])

    def _back(self, c: int, t: float) -> float:
        """When connector ``c``'s charger last came back from an outage, as of
        receive time ``t`` (NaN: not in memory)."""
        lo, hi = np.searchsorted(self._ret_conn, [c, c + 1])
        r = self._ret_t[lo:hi]
        r = r[r <= t]
        return float(np.fmax(self.back_since[c], r.max())) if r.size else float(self.back_since[c])

    def _limit(self, c: int, t: float, sess: bool) -> float:
        """The timeout of a silence of ``c`` ending at ``t`` in a session or not
        (inf: an idle connector whose idle cadence was not yet known)."""
        iv = self._cadence_at(c, t, 1 if sess else 0)
        if not sess and not (np.isfinite(iv) and self.reporter[c]):
            return np.inf
        own = iv * float(self.p["interval_factor"][c]) + float(self.p["interval_margin_s"][c])
        return float(np.fmax(float(self.p["silence_s"][c]), own))

    def _alive(self, c: int, a: float, b: float, limit: float) -> bool:
        """Whether connector ``c``'s charger was online during the silence (a, b):
        its flag says so, or another message came from it in the silence's second
        part (past half the timeout: a heartbeat just before a charger went away
        does not make it online)."""
        a += 0.5 * limit
        if self.flagged[c] or a < self.life[c] < b:
            return True
        lo, hi = np.searchsorted(self._ev_conn, [c, c + 1])
        t = self._ev_recv[lo:hi]
        return bool(((t > a) & (t < b)).any())

    def _silence(self, c: int, start: float, end: float, timeout: float) -> None:
        """A silence from ``start`` to ``end`` longer than ``timeout``: close the
        episode a tick opened, or record the one no tick saw."""
        self._next = -np.inf
        if c not in self.episodes.open:
            self.episodes.force(
                _c(c),
                _ONE,
                _f(start),
                _f(start + timeout),
                {"last_seen": _f(start), "timeout_s": _f(timeout)},
            )
        self.episodes.force(_c(c), _ZERO, _f(start), _f(end))

    def _update(self, frame: Frame, events: Events, now: float) -> None:
        n = self.n
        self._ctx = (frame, *self._gaps_of(frame))
        order = sort_by_conn_then(events.seen_conn, events.seen_recv)
        self._ev_conn, self._ev_recv = events.seen_conn[order], events.seen_recv[order]
        if events.off_conn.size:
            self.flagged[events.off_conn] = True
        self._learn_heartbeat(events)
        self._outages(frame)
        self._learn_meter_interval(events)
        if self._ev_conn.size and self._lifeless[self._ev_conn].any():
            self._next = -np.inf  # a silence that waited for a sign of life has one
        # Connectors that report while idle (native telemetry; OCPP clock-aligned
        # values) are expected to keep reporting at their idle cadence.
        idle_rows = self._ctx[2] == 0
        if idle_rows.any():
            idle_rows &= np.isfinite(frame.col("power_w"))
            rep = frame.conn[idle_rows]
            if not self.reporter[rep].all():
                self._next = -np.inf  # newly watched connectors
                self.reporter[rep] = True
        # Before the events: whether each connector with events was watched, in
        # which mode, and since when (connectors without transitions keep all).
        ev = np.unique(np.concatenate([events.st_conn, events.tx_conn, events.off_conn]))
        ev_conns = ev.tolist()
        live0 = dict(zip(ev_conns, self._watchable(ev).tolist(), strict=True))
        sess0 = dict(zip(ev_conns, self._in_session(ev).tolist(), strict=True))
        since0 = dict(zip(ev_conns, self.live_since[ev].tolist(), strict=True))
        # Session state from events, in receive order (events are rare).
        changes: list[tuple[float, int, int, int]] = []  # t, conn, kind, value
        changes += [
            (t, c, 0, k)
            for c, t, k in zip(
                events.st_conn.tolist(),
                events.st_recv.tolist(),
                events.st_code.tolist(),
                strict=True,
            )
        ]
        changes += [
            (t, c, 1, k)
            for c, t, k in zip(
                events.tx_conn.tolist(),
                events.tx_recv.tolist(),
                events.tx_kind.tolist(),
                strict=True,
            )
        ]
        changes += [
            (t, c, 2, int(o))
            for c, t, o in zip(
                events.off_conn.tolist(),
                events.off_recv.tolist(),
                events.off_online.tolist(),
                strict=True,
            )
        ]
        changes.sort()
        if changes:
            self._next = -np.inf  # watching, session start or online may have changed
        changed = np.zeros(0, np.bool_)
        # Per connector: (time, watched after, in a session after) at each change
        # of either; a change of mode restarts the silence clock.
        trans: dict[int, list[tuple[float, bool, bool]]] = {}
        for t, c, kind, v in changes:
            was, was_sess = self._modes_of(c)
            if kind == 0:
                self.status[c] = v
                if v in _NO_SESSION_CODES:
                    self.in_tx[c] = False
            elif kind == 1:
                self.in_tx[c] = v != 2
            else:
                self.online[c] = bool(v)
            live, sess = self._modes_of(c)
            if live != was or (live and sess != was_sess):
                trans.setdefault(c, []).append((t, live, sess))
                self.live_since[c] = t if live else np.nan
        if trans:
            changed = np.zeros(n, np.bool_)
            changed[list(trans)] = True
        conn, tr = frame.raw_conn, frame.raw_recv  # sorted by (conn, recv)
        # Connectors whose session state did not change: candidates are the rows
        # that end a silence longer than silence_s; each is judged by the
        # connector's cadence as it stood then (rare).
        rows, ref, in_s = self._candidates(frame, changed if trans else None)
        for i, r in enumerate(rows.tolist()):
            c, b = int(conn[r]), float(tr[r])
            a = float(np.fmax(ref[i], self._back(c, b)))
            limit = self._limit(c, b, bool(in_s[i]))
            quiet = b - a > limit and self._alive(c, a, b, limit)
            if quiet or c in self.episodes.open:
                self._silence(c, a, b, limit)
        # Connectors whose session or watch state changed in this batch: walk
        # their watched segments of one mode (per transition, not per sample).
        if trans:
            keys = np.fromiter(trans, np.int64, len(trans))
            spans = zip(
                np.searchsorted(conn, keys).tolist(),
                np.searchsorted(conn, keys + 1).tolist(),
                strict=True,
            )
            for (c, tl), span in zip(trans.items(), spans, strict=True):
                self._walk(c, tl, conn, tr, live0[c], sess0[c], since0[c], span=span)
        if conn.size:
            rs = _raw_stream(frame)
            seen_before = self.last_seen[rs.conn]
            if np.isnan(seen_before).any():
                self._next = -np.inf  # first sample: the connector has a deadline now
            self.last_seen[rs.conn] = np.fmax(seen_before, rs.t_last)
        self._learn_cadence(frame, *self._ctx[1:])
        if self._ret_conn.size:
            np.fmax.at(self.back_since, self._ret_conn, self._ret_t)
        self._ret_conn, self._ret_t = self._ret_conn[:0], self._ret_t[:0]
        if self._ev_conn.size:
            np.fmax.at(self.life, self._ev_conn, self._ev_recv)
        self._ev_conn, self._ev_recv = self._ev_conn[:0], self._ev_recv[:0]
        self.tick(now)

    def _candidates(self, frame: Frame, changed: B | None) -> tuple[I64, F64, B]:
        """The received rows (indices into ``frame.raw_*``) that end a silence
        longer than ``silence_s`` of a watchable connector, counted from the
        start of its silence clock (the previous row, or a later change of
        mode); with the clock start and whether the connector is in a session.
        ``changed``: connectors left out (their segments are walked instead).

        A row's gap to the previous row of its connector bounds its silence,
        so past each connector's first row (whose clock start is carried) only
        gaps above the smallest ``silence_s`` can qualify: in a healthy stream
        there are none, which the largest gap shows without a pass per row."""
        rs = _raw_stream(frame)
        conn, tr = frame.raw_conn, frame.raw_recv
        silence = self.p["silence_s"]
        u = self._uniform["silence_s"]
        # First rows: the clock start is carried (last row, or a change of mode).
        c0 = rs.conn
        ref0 = np.fmax(self.last_seen[c0], self.live_since[c0])
        pick = np.flatnonzero(rs.t_first - ref0 > (u if u is not None else silence[c0]))
        rows, ref = np.take(rs.first, pick), np.take(ref0, pick)
        smin = u if u is not None else float(silence[: self.n].min()) if self.n else np.inf
        if rs.top > smin:  # later rows: the previous row, or a change of mode after it
            mid = np.flatnonzero(rs.gap > smin)
            cm = np.take(conn, mid)
            rows = np.concatenate([rows, mid])
            ref = np.concatenate([ref, np.fmax(np.take(tr, mid - 1), self.live_since[cm])])
            order = np.argsort(rows, kind="stable")
            rows, ref = rows[order], ref[order]
        if rows.size == 0:
            return rows, ref, np.zeros(0, np.bool_)
        c = np.take(conn, rows)
        in_s, on = self._in_session(c), self.online[c]
        cand = ((in_s & on) | (self.reporter[c] & on)) & (np.take(tr, rows) - ref > silence[c])
        if changed is not None:
            cand &= ~changed[c]
        keep = np.flatnonzero(cand)
        return rows[keep], ref[keep], in_s[keep]

    def _walk(
        self,
        c: int,
        tl: list[tuple[float, bool, bool]],
        conn: I64,
        tr: F64,
        live0: bool,
        sess0: bool,
        since0: float,
        *,
        span: tuple[int, int] | None = None,
    ) -> None:
        """Silences of connector ``c`` within the segments it was watched in one
        mode, given its transitions ``tl`` in this batch (``span``: its rows in
        ``conn``, when the caller looked them up for many connectors at once)."""
        lo, hi = np.searchsorted(conn, [c, c + 1]) if span is None else span
        times = tr[lo:hi]
        # A connector watched since before any recorded start (an idle reporter)
        # has no live_since: its segment starts at -inf.
        a: float | None = (since0 if np.isfinite(since0) else -np.inf) if live0 else None
        mode = sess0
        segs: list[tuple[float, float, bool]] = []
        for tt, live, sess in tl:
            if a is not None:
                segs.append((a, tt, mode))
            a, mode = (tt if live else None), sess
        if a is not None:
            segs.append((a, np.inf, mode))
        if hi == lo and not self._may_gap(c, segs):
            return
        for a0, b0, sess in segs:
            before = times[times < a0]
            seen = np.fmax(self.last_seen[c], before.max()) if before.size else self.last_seen[c]
            inside = times[(times >= a0) & (times < b0)]
            head = np.fmax(a0, seen)
            xs = np.concatenate(
                [[head] if np.isfinite(head) else [], inside, [b0] if np.isfinite(b0) else []]
            )
            silence = float(self.p["silence_s"][c])
            for k in np.flatnonzero(np.diff(xs) > silence).tolist():
                b = float(xs[k + 1])
                a = float(np.fmax(xs[k], self._back(c, b)))
                limit = self._limit(c, b, sess)
                if b - a > limit and self._alive(c, a, b, limit):
                    self._silence(c, a, b, limit)

    def _may_gap(self, c: int, segs: list[tuple[float, float, bool]]) -> bool:
        """For a connector without rows in this update: whether one of its
        watched segments (start, end) is longer than ``silence_s`` counted from
        its last row, the only silence ``_walk`` could find there (plain Python:
        the events of a whole fleet's start must not cost numpy calls each)."""
        seen = float(self.last_seen[c])
        silence = float(self.p["silence_s"][c])
        for a0, b0, _ in segs:
            head = a0 if math.isnan(seen) else max(a0, seen)
            if math.isfinite(head) and math.isfinite(b0) and b0 - head > silence:
                return True
        return False

    def _clock_start(self, n: int) -> F64:
        """Where each connector's silence clock started: its last meter row, a
        change of mode, or its charger's return from an outage, the latest."""
        ref = np.fmax(self.last_seen[:n], self.live_since[:n])
        return np.asarray(np.fmax(ref, self.back_since[:n]))

    def tick(self, now: float) -> None:
        n = self.n
        self._now = now
        if n == 0 or now <= self._next:
            return
        watching = self._watching(slice(0, n))
        ref = self._clock_start(n)
        limit = self._timeout(slice(0, n))
        due = ref + limit
        waiting = watching & ~self.episodes.active[:n]
        due_now = waiting & (now - ref > limit)
        # Without an online flag, a silence counts once the charger showed life in it.
        alive = self.flagged[:n] | (self.life[:n] > ref + 0.5 * limit)
        self._lifeless[:n] = due_now & ~alive
        idx = np.flatnonzero(due_now & alive)
        if idx.size:
            self.episodes.force(
                idx.astype(np.int64),
                np.ones(idx.size, np.bool_),
                ref[idx],
                ref[idx] + limit[idx],
                {"last_seen": ref[idx], "timeout_s": limit[idx]},
            )
        self._next = _soonest(due, waiting & ~self._lifeless[:n])

    def refresh(self) -> None:
        n = self.n
        ref = self._clock_start(n)
        quiet = self._now - ref
        limit = self._timeout(slice(0, n))
        self.score[:n] = np.where(self._watching(slice(0, n)), quiet / limit, np.nan)


class ClockSkew(Detector):
    fault = "clock_skew"

    def _grow(self, n: int) -> None:
        # Connectors whose latest evidence is a run of timestamps ahead of
        # receipt: (receive time of the run's first, its offset). A few at most.
        if n == 0:
            self._ahead: dict[int, tuple[float, float]] = {}

    def _update(self, frame: Frame, events: Events, now: float) -> None:
        # All received rows: rows dropped as "older than processed" after a clock
        # jumps back are exactly the evidence this detector needs. With them,
        # the charger's stamped statuses and transactions: an idle OCPP
        # connector's only rows are clock-aligned values every 900 s.
        conn, recv = frame.raw_conn, frame.raw_recv
        off = recv - frame.raw_ts
        if events.ck_conn.size:
            conn = np.concatenate([conn, events.ck_conn])
            recv = np.concatenate([recv, events.ck_recv])
            off = np.concatenate([off, events.ck_off])
            order = np.lexsort((recv, conn))
            conn, recv, off = conn[order], recv[order], off[order]
        if conn.size == 0:
            self._due(now)
            return
        u = self._uniform["max_offset_s"]
        lim_min = u if u is not None else float(self.p["max_offset_s"][: self.n].min())
        ep = self.episodes
        # The healthy case: no offset beyond the smallest limit and no episode
        # open or pending: stepping would change nothing (no row is bad).
        quiet = (
            max(-float(off.min()), float(off.max())) <= lim_min
            and not ep.active[: self.n].any()
            and not ep.setting[: self.n].any()
            and not self._ahead
        )
        last = np.flatnonzero(np.append(conn[1:] != conn[:-1], True))
        if not quiet:
            aoff = np.abs(off)
            lim = self._at("max_offset_s", conn)
            # Durations on the receive clock: a burst of queued samples spans
            # minutes of meter time but arrives within seconds.
            # 1 s of slack: receive times jitter with delivery latency, and a run of
            # exactly min_duration_s must not wait one more sample for it.
            self.episodes.step(
                conn,
                recv,
                aoff > lim,
                aoff <= 0.5 * lim,
                self.p["min_duration_s"] - 1.0,
                0.0,
                {"offset_s": off},
            )
            self._track_ahead(conn, recv, off, off < -lim, last)
        self._due(now)
        lc = conn[last]
        self.score[lc] = np.abs(off[last]) / self.p["max_offset_s"][lc]

    def _track_ahead(self, conn: I64, recv: F64, off: F64, ahead: B, last: I64) -> None:
        """Keep, per connector, the run of timestamps ahead of receipt its
        evidence ends with. Such a stamp is no late delivery and no queued
        message (those are old, not early): the clock is ahead from the run's
        first one on, until a message says otherwise, however long the next
        one takes (900 s for an idle connector's clock-aligned values)."""
        touched = set(conn[ahead].tolist()) | (set(conn[last].tolist()) & set(self._ahead))
        if not touched:
            return
        first = np.append(0, last[:-1] + 1)
        for i in np.flatnonzero(np.isin(conn[last], list(touched))).tolist():
            a, b = int(first[i]), int(last[i])
            c = int(conn[b])
            if not ahead[b]:
                self._ahead.pop(c, None)
                continue
            broken = np.flatnonzero(~ahead[a : b + 1])
            j = a + int(broken[-1]) + 1 if broken.size else a
            if j > a or c not in self._ahead:
                self._ahead[c] = (float(recv[j]), float(off[j]))

    def _due(self, now: float) -> None:
        """Open the episodes of connectors ahead for ``min_duration_s`` by ``now``:
        found when the run became that long (as charger_offline's silences),
        not at the next message."""
        if not self._ahead:
            return
        for c, (since, off) in list(self._ahead.items()):
            at = since + float(self.p["min_duration_s"][c])
            if self.episodes.active[c]:
                del self._ahead[c]  # open already (its rows made the duration)
            elif now >= at:
                del self._ahead[c]
                self.episodes.force(_c(c), _ONE, _f(since), _f(at), {"offset_s": _f(off)})

    def tick(self, now: float) -> None:
        self._due(now)

    def _end(self, c: int, at: float) -> None:
        self._ahead.pop(c, None)
        super()._end(c, at)
