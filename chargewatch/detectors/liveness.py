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
    Catches: a connector in a live session (transaction started, or status
    Charging/SuspendedEV/SuspendedEVSE) that sends no meter sample for
    ``silence_s`` while its charger is online. Ignores: connectors without a
    session (chargers sample only during transactions), offline chargers
    (charger_offline covers them).
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
from chargewatch.detectors.frame import STATUS_CODE, Events, Frame, grown, prev_in_segment

F64 = NDArray[np.float64]
I64 = NDArray[np.int64]
B = NDArray[np.bool_]

_LIVE = np.array([STATUS_CODE[s] for s in ("Charging", "SuspendedEV", "SuspendedEVSE")], np.int8)
_NO_SESSION = np.array([STATUS_CODE[s] for s in ("Available", "Unavailable", "Faulted")], np.int8)


def _merge(conn: I64, t: F64) -> tuple[I64, F64, B, B]:
    order = np.lexsort((t, conn))
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
        self.last_seen = grown(self.last_seen, n, np.nan)

    def _ref(self, conn: I64, prev: F64) -> F64:
        """When the silence clock of each row started (default: the previous message)."""
        return prev

    def _gaps(self, conn: I64, t: F64, watching: B | None = None) -> None:
        """Close open episodes when messages resume; report silences no tick saw."""
        if conn.size == 0:
            return
        conn, t, first, last = _merge(conn, t)
        prev = self._ref(conn, prev_in_segment(t, first, self.last_seen[conn]))
        silence = self.p["silence_s"][conn]
        gap = (t - prev) > silence
        if watching is not None:
            gap &= watching[conn]
        for i in np.flatnonzero(gap | (first & self.episodes.active[conn])).tolist():
            c = int(conn[i])
            f = self.episodes.open.get(c)
            if f is None and gap[i]:
                # A silence that no tick reported: same record a tick would have made.
                self.episodes.force(
                    np.array([c]), np.array([True]), np.array([prev[i]]),
                    np.array([prev[i] + silence[i]]), {"silence_s": np.array([t[i] - prev[i]])},
                )
            self.episodes.force(np.array([c]), np.array([False]), prev[i : i + 1], t[i : i + 1])
        self.last_seen[conn[last]] = np.fmax(self.last_seen[conn[last]], t[last])


class ChargerOffline(_Silence):
    fault = "charger_offline"

    def _grow(self, n: int) -> None:
        super()._grow(n)
        if not hasattr(self, "online"):
            self.online = np.ones(0, np.bool_)
            self.offline_since = np.full(0, np.nan)
        self.online = grown(self.online, n, True)
        self.offline_since = grown(self.offline_since, n, np.nan)

    def _update(self, frame: Frame, events: Events, now: float) -> None:
        # The last-will flag first: an explicit offline needs no timeout.
        for c, t, on in zip(
            events.off_conn.tolist(), events.off_recv.tolist(), events.off_online.tolist(),
            strict=True,
        ):
            if on:
                # The episode itself closes in _gaps: "online" is a message like any other.
                self.online[c] = True
                self.offline_since[c] = np.nan
            elif self.online[c]:
                self.online[c] = False
                self.offline_since[c] = t
        self._gaps(
            np.concatenate([frame.conn, events.seen_conn]),
            np.concatenate([frame.recv, events.seen_recv]),
        )
        # Any message after the last will proves the charger back (a missed
        # "online" retained message must not keep it offline forever).
        back = np.flatnonzero(self.last_seen[: self.n] > self.offline_since[: self.n])
        if back.size:
            self.online[back] = True
            self.offline_since[back] = np.nan
        self.tick(now)

    def tick(self, now: float) -> None:
        n = self.n
        if n == 0:
            return
        seen = self.last_seen[:n]
        silence = self.p["silence_s"][:n]
        quiet = now - seen
        silent = quiet > silence  # NaN (never seen) compares False: unknown, not offline
        lwt = ~self.online[:n] & (now - self.offline_since[:n] >= self.p["lwt_grace_s"][:n])
        # Only open here; closing happens when messages resume (in update).
        opening = (silent | lwt) & ~self.episodes.active[:n]
        idx = np.flatnonzero(opening)
        if idx.size:
            by_lwt = lwt[idx] & ~silent[idx]
            start = np.where(by_lwt, self.offline_since[idx], seen[idx])
            at = np.where(by_lwt, start + self.p["lwt_grace_s"][idx], start + silence[idx])
            self.episodes.force(
                idx.astype(np.int64), np.ones(idx.size, np.bool_), start, at,
                {"silence_s": quiet[idx], "lwt": by_lwt.astype(np.float64)},
            )
        self.score[:n] = quiet / silence


class StaleTelemetry(_Silence):
    fault = "stale_telemetry"

    def _grow(self, n: int) -> None:
        super()._grow(n)
        if not hasattr(self, "in_tx"):
            self.in_tx = np.zeros(0, np.bool_)
            self.status = np.full(0, -1, np.int8)
            self.live_since = np.full(0, np.nan)
            self.online = np.ones(0, np.bool_)
        self.in_tx = grown(self.in_tx, n, False)
        self.status = grown(self.status, n, -1)
        self.live_since = grown(self.live_since, n, np.nan)
        self.online = grown(self.online, n, True)

    def _ref(self, conn: I64, prev: F64) -> F64:
        # A session that started after the last sample starts the clock itself.
        return np.fmax(prev, self.live_since[conn])

    def _live(self, c: I64) -> B:
        return self.in_tx[c] | np.isin(self.status[c], _LIVE)

    def _update(self, frame: Frame, events: Events, now: float) -> None:
        # Session state from events, in receive order per connector (events are rare).
        changes: list[tuple[int, float, int, int]] = []  # conn, t, kind, value
        changes += [(c, t, 0, k) for c, t, k in zip(
            events.st_conn.tolist(), events.st_recv.tolist(), events.st_code.tolist(), strict=True)]
        changes += [(c, t, 1, k) for c, t, k in zip(
            events.tx_conn.tolist(), events.tx_recv.tolist(), events.tx_kind.tolist(), strict=True)]
        changes += [(c, t, 2, int(o)) for c, t, o in zip(
            events.off_conn.tolist(), events.off_recv.tolist(), events.off_online.tolist(),
            strict=True)]
        changes.sort(key=lambda x: (x[1], x[0]))
        for c, t, kind, v in changes:
            was = bool(self._live(np.array([c]))[0]) and bool(self.online[c])
            if kind == 0:
                self.status[c] = v
                if v in _NO_SESSION:
                    self.in_tx[c] = False
            elif kind == 1:
                self.in_tx[c] = v != 2
            else:
                self.online[c] = bool(v)
            now_live = bool(self._live(np.array([c]))[0]) and bool(self.online[c])
            if now_live and not was:
                # The silence clock starts at the later of session start and last sample.
                self.live_since[c] = t
            elif was and not now_live:
                self.live_since[c] = np.nan
                # A session that ends (or a charger going offline) ends the stale episode.
                if c in self.episodes.open:
                    # Rows received before t still count; close at t.
                    self.episodes.force(np.array([c]), np.array([False]), np.array([t]),
                                        np.array([t]))
        watching = self._live(np.arange(self.n)) & self.online[: self.n]
        self._gaps(frame.conn, frame.recv, watching)
        self.tick(now)

    def tick(self, now: float) -> None:
        n = self.n
        if n == 0:
            return
        watching = self._live(np.arange(n)) & self.online[:n]
        ref = np.fmax(self.last_seen[:n], self.live_since[:n])
        silence = self.p["silence_s"][:n]
        quiet = now - ref
        opening = watching & (quiet > silence) & ~self.episodes.active[:n]
        idx = np.flatnonzero(opening)
        if idx.size:
            self.episodes.force(
                idx.astype(np.int64), np.ones(idx.size, np.bool_), ref[idx],
                ref[idx] + silence[idx], {"silence_s": quiet[idx]},
            )
        self.score[:n] = np.where(watching, quiet / silence, np.nan)


class ClockSkew(Detector):
    fault = "clock_skew"

    def _update(self, frame: Frame, events: Events, now: float) -> None:
        off = frame.recv - frame.ts
        lim = self.p["max_offset_s"][frame.conn]
        bad = np.abs(off) > lim
        good = np.abs(off) <= 0.5 * lim
        # Durations on the receive clock: a burst of queued samples spans
        # minutes of meter time but arrives within seconds.
        # 1 s of slack: receive times jitter with delivery latency, and a run of
        # exactly min_duration_s must not wait one more sample for it.
        self.episodes.step(
            frame.conn, frame.recv, bad, good, self.p["min_duration_s"][frame.conn] - 1.0, 0.0,
            {"offset_s": off},
        )
        self._set_score(frame.conn, np.abs(off) / lim, frame.last)
