"""Liveness faults: charger_offline, stale_telemetry, clock_skew. Receive clock.

charger_offline
    Catches: no message at all from a connector's charger (meter rows,
    heartbeats, status, transactions, boot) for ``silence_s``, or its retained
    online flag false (MQTT last will) for ``lwt_grace_s``. Start = last sign of
    life; detected = start + timeout (the moment the silence became provable;
    ``tick`` reports it at the first tick after that). A silence found only when
    data resumes (no tick in between) gives the same finding, so replay and live
    agree. Ignores: a reboot shorter than the timeout.
stale_telemetry
    Catches: a connector that should be reporting — in a session (transaction
    started, or status Charging/SuspendedEV/SuspendedEVSE), or one that has been
    seen reporting while idle (native telemetry) — that sends no meter sample
    for ``silence_s`` while its charger is online. Ignores: OCPP connectors
    without a session (MeterValues come only in transactions), offline
    chargers (charger_offline covers them), gaps shorter than ``silence_s``.
clock_skew
    Catches: |receive time - meter ts| above ``max_offset_s`` on consecutive
    samples for ``min_duration_s`` of receive time. Ignores: bursts of queued
    samples after a reconnect (old ts, but they all arrive within seconds).
"""

from __future__ import annotations

__all__ = ["ChargerOffline", "ClockSkew", "StaleTelemetry"]

import numpy as np
from numpy.typing import NDArray

from chargewatch.detectors.base import Detector
from chargewatch.detectors.sequencer import (
    STATUS_CODE,
    Events,
    Frame,
    grown,
    prev_in_segment,
    sort_by_conn_then,
)

F64 = NDArray[np.float64]
I64 = NDArray[np.int64]
B = NDArray[np.bool_]

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


_LIVE_LUT = _lut(_LIVE)
_NO_SESSION_LUT = _lut(_NO_SESSION)


def _soonest(due: F64, among: B) -> float:
    """The earliest deadline among ``among`` (NaN: none), less a millisecond so
    that rounding in ``now - seen > silence`` cannot skip a tick; inf if none."""
    d = due[among]
    d = d[~np.isnan(d)]
    return float(d.min()) - 1e-3 if d.size else np.inf


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


class ChargerOffline(_Silence):
    fault = "charger_offline"

    def _grow(self, n: int) -> None:
        super()._grow(n)
        if not hasattr(self, "online"):
            self.online = np.ones(0, np.bool_)
            self.lwt_at = np.full(0, np.nan)
        self.online = grown(self.online, n, True)
        self.lwt_at = grown(self.lwt_at, n, np.nan)  # last "offline" will, kept after "online"

    def _deadline(self, c: int, since: float, silence: float) -> tuple[float, dict[str, F64]]:
        # Provable at the earlier of: the silence timeout, or the last will's grace
        # (when the will was published during this silence).
        at, lwt = since + silence, 0.0
        will = float(self.lwt_at[c])
        if will > since:
            by_will = will + float(self.p["lwt_grace_s"][c])
            if by_will < at:
                at, lwt = by_will, 1.0
        return at, {"last_seen": _f(since), "lwt": _f(lwt)}

    def _update(self, frame: Frame, events: Events, now: float) -> None:
        for c, t, on in zip(
            events.off_conn.tolist(),
            events.off_recv.tolist(),
            events.off_online.tolist(),
            strict=True,
        ):
            # "online" is a message like any other (it is in events.seen and closes the
            # episode in _gaps); the will is remembered for the deadline.
            self.online[c] = on
            if not on:
                self.lwt_at[c] = t
            self._next = -np.inf
        # A will that is answered within its grace is a reboot, not an outage.
        rc, rr = frame.raw_conn, frame.raw_recv  # sorted by (conn, recv)
        if events.seen_conn.size == 0:
            self._gaps(rc, rr, ordered=True)
        else:
            # Only the connectors with events need a merge; the others' rows are
            # in order already (events are few, meter rows many).
            with_ev = np.zeros(self.n, np.bool_)
            with_ev[events.seen_conn] = True
            mix = with_ev[rc]
            if mix.any():
                self._gaps(
                    np.concatenate([rc[mix], events.seen_conn]),
                    np.concatenate([rr[mix], events.seen_recv]),
                )
                self._gaps(rc[~mix], rr[~mix], ordered=True)
            else:
                self._gaps(rc, rr, ordered=True)
                self._gaps(events.seen_conn, events.seen_recv)
        # Any message after the will proves the charger back (a missed "online"
        # retained message must not keep it offline forever).
        if not self.online[: self.n].all():
            back = self.last_seen[: self.n] > self.lwt_at[: self.n]
            self.online[: self.n] |= back
        self.tick(now)

    def _is_gap(self, conn: I64, t: F64, prev: F64) -> B:
        gap: B = super()._is_gap(conn, t, prev)
        if np.isnan(self.lwt_at[: self.n]).all():
            return gap  # no last will was ever published
        # A gap also counts when a will fell inside it and its grace ran out.
        will = self.lwt_at[conn]
        by_will: B = (will > prev) & (t - will > self.p["lwt_grace_s"][conn])
        return gap | by_will

    def tick(self, now: float) -> None:
        n = self.n
        self._now = now
        if n == 0 or now <= self._next:
            return
        seen = self.last_seen[:n]
        silence = self.p["silence_s"][:n]
        grace = self.p["lwt_grace_s"][:n]
        will = self.lwt_at[:n]
        after = (will > seen) | (np.isnan(seen) & np.isfinite(will))
        # Per connector, when silence or the last will makes it offline.
        due = np.fmin(seen + silence, np.where(~self.online[:n] & after, will + grace, np.inf))
        by_silence = np.where(now - seen > silence, seen + silence, np.inf)
        by_will = np.where(~self.online[:n] & after & (now - will > grace), will + grace, np.inf)
        at = np.fmin(by_silence, by_will)  # NaN last_seen (never heard): unknown, not offline
        inactive = ~self.episodes.active[:n]
        idx = np.flatnonzero(np.isfinite(at) & inactive)
        self._next = _soonest(due, inactive & ~np.isfinite(at))
        if idx.size:
            start = np.where(np.isnan(seen[idx]), will[idx], seen[idx])
            self.episodes.force(
                idx.astype(np.int64),
                np.ones(idx.size, np.bool_),
                start,
                at[idx],
                {"last_seen": seen[idx], "lwt": (by_will[idx] < by_silence[idx]).astype(float)},
            )

    def refresh(self) -> None:
        n = self.n
        self.score[:n] = (self._now - self.last_seen[:n]) / self.p["silence_s"][:n]


class StaleTelemetry(_Silence):
    fault = "stale_telemetry"

    def _grow(self, n: int) -> None:
        super()._grow(n)
        if not hasattr(self, "in_tx"):
            self.in_tx = np.zeros(0, np.bool_)
            self.status = np.full(0, -1, np.int8)
            self.live_since = np.full(0, np.nan)
            self.online = np.ones(0, np.bool_)
        if not hasattr(self, "reporter"):
            self.reporter = np.zeros(0, np.bool_)
        self.reporter = grown(self.reporter, n, False)
        self.in_tx = grown(self.in_tx, n, False)
        self.status = grown(self.status, n, -1)
        self.live_since = grown(self.live_since, n, np.nan)
        self.online = grown(self.online, n, True)

    def _watching(self, c: I64 | slice) -> B:
        live = self.in_tx[c] | _LIVE_LUT[self.status[c] + 1] | self.reporter[c]
        return np.asarray(live & self.online[c])

    def _silence(self, c: int, start: float, end: float) -> None:
        """A silence from ``start`` to ``end`` longer than the timeout: close the
        episode a tick opened, or record the one no tick saw."""
        self._next = -np.inf
        if c not in self.episodes.open:
            silence = float(self.p["silence_s"][c])
            self.episodes.force(
                _c(c),
                _ONE,
                _f(start),
                _f(start + silence),
                {"last_seen": _f(start), "timeout_s": _f(silence)},
            )
        self.episodes.force(_c(c), _ZERO, _f(start), _f(end))

    def _update(self, frame: Frame, events: Events, now: float) -> None:
        n = self.n
        # Connectors that report while idle (native telemetry does; OCPP MeterValues
        # come only in transactions) are expected to keep reporting at all times.
        idle_rows = _NO_SESSION_LUT[frame.status + 1]
        if idle_rows.any():
            idle_rows &= np.isfinite(frame.col("power_w"))
            rep = frame.conn[idle_rows]
            if not self.reporter[rep].all():
                self._next = -np.inf  # newly watched connectors
                self.reporter[rep] = True
        # Before the events: whether each connector with events was watched, and
        # since when (connectors without transitions keep both).
        ev_conns = {int(c) for a in (events.st_conn, events.tx_conn, events.off_conn) for c in a}
        live0 = {c: bool(self._watching(_c(c))[0]) for c in ev_conns}
        since0 = {c: float(self.live_since[c]) for c in ev_conns}
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
        trans: dict[int, list[tuple[float, bool]]] = {}
        for t, c, kind, v in changes:
            was = bool(self._watching(_c(c))[0])
            if kind == 0:
                self.status[c] = v
                if v in _NO_SESSION:
                    self.in_tx[c] = False
            elif kind == 1:
                self.in_tx[c] = v != 2
            else:
                self.online[c] = bool(v)
            live = bool(self._watching(_c(c))[0])
            if live != was:
                trans.setdefault(c, []).append((t, live))
                self.live_since[c] = t if live else np.nan
        conn, tr = frame.raw_conn, frame.raw_recv  # sorted by (conn, recv)
        silence = self.p["silence_s"]
        # Connectors whose session state did not change: one vectorised pass.
        if trans:
            changed = np.zeros(n, np.bool_)
            changed[list(trans)] = True
            simple = ~changed[conn]
            sc, st = conn[simple], tr[simple]
        else:
            sc, st = conn, tr
        sfirst = np.ones(sc.shape[0], np.bool_)
        sfirst[1:] = sc[1:] != sc[:-1]
        prev = prev_in_segment(st, sfirst, self.last_seen[sc])
        # The clock starts at session start at the earliest.
        ref = np.fmax(prev, np.take(self.live_since, sc))
        watched = (
            self._watching(sc) if sc.shape[0] < n else np.take(self._watching(slice(0, n)), sc)
        )
        gap = watched & (st - ref > np.take(silence, sc))
        for i in np.flatnonzero(gap).tolist():  # rare: only real silences
            self._silence(int(sc[i]), float(ref[i]), float(st[i]))
        # Connectors whose session started or ended in this batch: walk their
        # live segments (per transition, not per sample).
        for c, tl in trans.items():
            lo, hi = np.searchsorted(conn, [c, c + 1])
            times = tr[lo:hi]
            # A connector watched since before any recorded start (an idle
            # reporter) has no live_since: its segment starts at -inf.
            start0 = float(since0[c]) if np.isfinite(since0[c]) else -np.inf
            bounds = [start0 if live0[c] else None]
            segs: list[tuple[float, float]] = []
            a = bounds[0]
            for tt, live in tl:
                if live:
                    a = tt
                elif a is not None:
                    segs.append((a, tt))
                    a = None
            if a is not None:
                segs.append((a, np.inf))
            for a0, b0 in segs:
                before = times[times < a0]
                seen = (
                    np.fmax(self.last_seen[c], before.max()) if before.size else self.last_seen[c]
                )
                inside = times[(times >= a0) & (times < b0)]
                head = np.fmax(a0, seen)
                xs = np.concatenate(
                    [[head] if np.isfinite(head) else [], inside, [b0] if np.isfinite(b0) else []]
                )
                for k in np.flatnonzero(np.diff(xs) > silence[c]).tolist():
                    self._silence(c, float(xs[k]), float(xs[k + 1]))
        ends = np.ones(conn.shape[0], np.bool_)
        ends[:-1] = conn[1:] != conn[:-1]
        if conn.size:
            ec = conn[ends]
            seen_before = self.last_seen[ec]
            if np.isnan(seen_before).any():
                self._next = -np.inf  # first sample: the connector has a deadline now
            self.last_seen[ec] = np.fmax(seen_before, tr[ends])
        self.tick(now)

    def tick(self, now: float) -> None:
        n = self.n
        self._now = now
        if n == 0 or now <= self._next:
            return
        watching = self._watching(slice(0, n))
        ref = np.fmax(self.last_seen[:n], self.live_since[:n])
        due = ref + self.p["silence_s"][:n]
        waiting = watching & ~self.episodes.active[:n]
        idx = np.flatnonzero(waiting & (now - ref > self.p["silence_s"][:n]))
        if idx.size:
            silence = self.p["silence_s"][idx]
            self.episodes.force(
                idx.astype(np.int64),
                np.ones(idx.size, np.bool_),
                ref[idx],
                ref[idx] + silence,
                {"last_seen": ref[idx], "timeout_s": silence},
            )
        self._next = _soonest(due, watching & ~self.episodes.active[:n])

    def refresh(self) -> None:
        n = self.n
        ref = np.fmax(self.last_seen[:n], self.live_since[:n])
        quiet = self._now - ref
        silence = self.p["silence_s"][:n]
        self.score[:n] = np.where(self._watching(slice(0, n)), quiet / silence, np.nan)


class ClockSkew(Detector):
    fault = "clock_skew"

    def _update(self, frame: Frame, events: Events, now: float) -> None:
        # All received rows: rows dropped as "older than processed" after a clock
        # jumps back are exactly the evidence this detector needs.
        conn, ts, recv = frame.raw_conn, frame.raw_ts, frame.raw_recv
        off = recv - ts
        aoff = np.abs(off)
        lim = self._at("max_offset_s", conn)
        bad = aoff > lim
        # Durations on the receive clock: a burst of queued samples spans
        # minutes of meter time but arrives within seconds.
        # 1 s of slack: receive times jitter with delivery latency, and a run of
        # exactly min_duration_s must not wait one more sample for it.
        self.episodes.step(
            conn,
            recv,
            bad,
            aoff <= 0.5 * lim,
            self.p["min_duration_s"] - 1.0,
            0.0,
            {"offset_s": off},
        )
        if conn.size:
            last = np.flatnonzero(conn[1:] != conn[:-1])
            last = np.append(last, conn.shape[0] - 1)
            lc = conn[last]
            self.score[lc] = aoff[last] / self.p["max_offset_s"][lc]
