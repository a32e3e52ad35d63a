"""Session faults: charging_interrupted, idle_blocking, failed_start, status_flapping.

These follow status and transaction events (receive clock) and, where energy
matters, meter rows. Events are few (a handful per session), so they are
walked in order; meter rows stay vectorised.

charging_interrupted
    Catches: a connector that was delivering above ``on_power_w`` and (a) stays
    in status Charging below ``off_power_w`` for ``min_duration_s``, or (b)
    stops its transaction for an abnormal reason (EmergencyStop,
    PowerLoss, Reboot, resets, Other, UnlockCommand) while power was flowing;
    (b) stays active ``hold_s``. Ignores: SuspendedEV/SuspendedEVSE (the car or
    load management paused), SoC at or above ``full_soc_pct`` (taper to full),
    normal stops (Local, Remote, EVDisconnected, DeAuthorized), Faulted (an
    OCPP error code alert covers it).
idle_blocking
    Catches: a connector in SuspendedEV or Finishing (connected, not charging)
    continuously for longer than ``grace_s``. Start = when it became idle;
    detected = start + grace. Ignores: pauses shorter than the grace, idle after
    charging within the grace.
failed_start
    Catches: a transaction (or a Charging request after a pause) that does not
    deliver more than ``min_power_w`` within ``timeout_s`` of plug-in (Preparing;
    of the transaction start when no Preparing was seen); a Preparing
    connector that never starts a transaction within ``preparing_timeout_s``.
    Ignores: time spent in SuspendedEV/SuspendedEVSE (scheduled or
    load-managed charging), sessions that stop before the timeout, connectors
    whose meter rows stopped arriving in the second half of the wait (no
    evidence: that is stale_telemetry). Delivery is judged on every received
    row, including rows a wrong clock put behind processed ones. A row without
    power (a register-only charger: OCPP 1.6's default measurand) delivers
    when the register has risen since the wait began by more than a minute at
    ``min_power_w`` (the register before the wait, else the first one in it;
    a register that restarts below it, per transaction, counts from its low).
status_flapping
    Catches: ``changes`` status changes within ``window_s``. Clears when fewer
    than half that many remain within the window. Ignores: repeated identical
    statuses (boot notifications resend them).
"""

from __future__ import annotations

__all__ = ["ChargingInterrupted", "FailedStart", "IdleBlocking", "StatusFlapping"]

import numpy as np
from numpy.typing import NDArray

from chargewatch.detectors.base import Detector
from chargewatch.detectors.episodes import Episodes
from chargewatch.detectors.meter import finite_rows
from chargewatch.detectors.sequencer import (
    STATUS_CODE,
    Events,
    Frame,
    ffill_index,
    grown,
    rany,
    rnansum,
)

F64 = NDArray[np.float64]
I64 = NDArray[np.int64]

CHARGING = STATUS_CODE["Charging"]
PREPARING = STATUS_CODE["Preparing"]
FAULTED = STATUS_CODE["Faulted"]
AVAILABLE = STATUS_CODE["Available"]
_IDLE = {STATUS_CODE["SuspendedEV"], STATUS_CODE["Finishing"]}
_PAUSED = {STATUS_CODE["SuspendedEV"], STATUS_CODE["SuspendedEVSE"]}
_ENDED = {STATUS_CODE[s] for s in ("Available", "Finishing", "Unavailable", "Faulted")}
ABNORMAL_STOPS = frozenset(
    {"EmergencyStop", "PowerLoss", "Reboot", "HardReset", "SoftReset", "Other", "UnlockCommand"}
)

_ONE = np.ones(1, np.bool_)
_ZERO = np.zeros(1, np.bool_)
_NO_FRAME = Frame.empty(0)  # between updates: the last frame is not kept


def _f(x: float) -> F64:
    return np.array([x], np.float64)


def _c(c: int) -> I64:
    return np.array([c], np.int64)


def _soonest(due: F64, among: NDArray[np.bool_]) -> float:
    """The earliest deadline among ``among`` (NaN: none), less a millisecond so
    that rounding in ``now - since > grace`` cannot skip a tick; inf if none."""
    d = due[among]
    d = d[~np.isnan(d)]
    return float(d.min()) - 1e-3 if d.size else np.inf


def _ordered(events: Events) -> list[tuple[float, int, int, int, str]]:
    """Status (kind 0) and transaction (kind 1) events in receive order.

    Tuples are (t, conn, kind, code, reason).
    """
    out = [
        (t, c, 0, k, "")
        for c, t, k in zip(
            events.st_conn.tolist(), events.st_recv.tolist(), events.st_code.tolist(), strict=True
        )
    ]
    out += [
        (t, c, 1, k, r)
        for c, t, k, r in zip(
            events.tx_conn.tolist(),
            events.tx_recv.tolist(),
            events.tx_kind.tolist(),
            events.tx_reason,
            strict=True,
        )
    ]
    out.sort(key=lambda e: (e[0], e[1], e[2]))
    return out


def _latest(f: Frame) -> F64:
    """Each connector's latest receive time (aligned with ``f.last_idx``). Rows
    are in ts order; when recv rises with ts too (the usual case: rows arrive in
    time order), it is on the last row, and a reduction per segment is spared."""
    r = f.recv
    if r.shape[0] < 2 or bool(((r[1:] >= r[:-1]) | f.first[1:]).all()):
        out: F64 = r[f.last_idx]
        return out
    got: F64 = np.maximum.reduceat(r, f.first_idx)
    return got


class ChargingInterrupted(Detector):
    fault = "charging_interrupted"

    def _episodes(self) -> Episodes:
        self._stop = Episodes(self.fault, self.findings)
        return Episodes(self.fault, self.findings)

    @property
    def active(self) -> NDArray[np.bool_]:
        return (self.episodes.active | self._stop.active)[: self.n]

    def _grow(self, n: int) -> None:
        if not hasattr(self, "_armed"):
            self._armed = np.zeros(0, np.bool_)
            self._last_on = np.full(0, np.nan)
            self._soc = np.full(0, np.nan)
            self._until = np.full(0, np.nan)
        self._armed = grown(self._armed, n, False)
        self._last_on = grown(self._last_on, n, np.nan)
        self._soc = grown(self._soc, n, np.nan)
        self._until = grown(self._until, n, np.nan)
        self._stop.ensure(n)

    def _end(self, c: int, at: float) -> None:
        self.episodes.end(c, at)
        self._stop.end(c, at)

    def _update(self, frame: Frame, events: Events, now: float) -> None:
        # (b) abnormal ends, judged against power flow received before the event.
        on_rows = np.zeros(0, np.bool_)
        for t, ci, kind, code, reason in _ordered(events):
            if on_rows.shape[0] != len(frame):
                on_rows = frame.col("power_w") > self.p["on_power_w"][frame.conn]
            self._expire(ci, t)
            # Faulted carries an OCPP error code: that alert is the error_code's, not ours.
            abnormal = kind == 1 and code == 2 and reason in ABNORMAL_STOPS
            if not abnormal or ci in self._stop.open:
                continue
            lo, hi = np.searchsorted(frame.conn, [ci, ci + 1])
            r = frame.recv[lo:hi]
            sel = on_rows[lo:hi] & (r <= t)
            last_on = float(r[sel].max()) if sel.any() else float(self._last_on[ci])
            soc = frame.col("soc_pct")[lo:hi][r <= t]
            soc = soc[np.isfinite(soc)]
            soc_now = float(soc[-1]) if soc.size else float(self._soc[ci])
            flowing = t - last_on <= 2 * self.p["min_duration_s"][ci] + 60.0
            if flowing and not (soc_now >= self.p["full_soc_pct"][ci]):
                self._stop.force(_c(ci), _ONE, _f(t), _f(t), {"last_power_s_ago": _f(t - last_on)})
                self._until[ci] = t + self.p["hold_s"][ci]
        # (a) still "Charging" but nothing flows.
        known = finite_rows(frame, "power_w")
        f = frame if known.all() else frame.rows(known)
        c = f.conn
        p = f.col("power_w")
        on = p > self._at("on_power_w", c)
        charging = f.status == CHARGING
        decisive = on | ~charging
        soc = f.col("soc_pct")
        cand = charging & (p < self._at("off_power_w", c))
        if cand.any():
            src = ffill_index(decisive, f.seg_start)
            armed = np.where(src >= 0, on[np.maximum(src, 0)], self._armed[c])
            full = soc >= self._at("full_soc_pct", c)
            # "Nothing flows" by the currents too, when reported: a power value in kW
            # read as W is tiny but is not a stop (that is meter_unit_error).
            cur = f.block(2)
            flowing = rany(np.isfinite(cur)) & (rnansum(cur) >= 1.0)
            stalled = armed & cand & ~full & ~flowing
        else:  # the usual case: no row could be a stall
            stalled = cand
        self.episodes.step(
            c,
            f.ts,
            stalled,
            decisive,
            self.p["min_duration_s"],
            0.0,
            {"power_w": p},
            cadence=f.cadence,
        )
        lc, last = f.touched, f.last_idx
        lw = f.last_where(decisive)
        d = lw >= 0
        self._armed[lc[d]] = on[lw[d]]
        if on.all():  # every row delivers (the usual case while charging): no mask
            self._last_on[lc] = np.fmax(self._last_on[lc], _latest(f))
        elif on.any():
            latest = np.maximum.reduceat(np.where(on, f.recv, -np.inf), f.first_idx)
            self._last_on[lc] = np.fmax(
                self._last_on[lc], np.where(latest > -np.inf, latest, np.nan)
            )
        self._last_soc(f, soc)
        self.score[lc] = np.where(stalled[last], 1.0, 0.0) if stalled.any() else 0.0
        self.tick(now)

    def _last_soc(self, f: Frame, soc: F64) -> None:
        """Remember each connector's last SoC. DC chargers report it on every
        row, AC ones on none: when every row with one lies in a segment whose
        last row has one, those last rows are the answer."""
        fin = np.isfinite(soc)
        if not fin.any():
            return  # no SoC at all (AC chargers): nothing to remember
        lc, last = f.touched, f.last_idx
        at_end = fin[last]
        # (One row per connector: every row is a last row, nothing to check.)
        if last.shape[0] == fin.shape[0] or not (fin & ~f.per_row(at_end)).any():
            self._soc[lc[at_end]] = soc[last[at_end]]
            return
        ls = f.last_where(fin)
        s = ls >= 0
        self._soc[lc[s]] = soc[ls[s]]

    def _expire(self, c: int, t: float) -> None:
        if c in self._stop.open and self._until[c] <= t:
            self._stop.force(_c(c), _ZERO, _f(self._until[c]), _f(self._until[c]))

    def tick(self, now: float) -> None:
        for c in list(self._stop.open):
            self._expire(c, now)


class IdleBlocking(Detector):
    fault = "idle_blocking"
    # Defined before any update, so a tick that comes first (a quiet start) works.
    _since: F64 = np.full(0, np.nan)

    _now = np.nan
    _next = -np.inf  # no connector can newly time out before this (tick's cache)

    def _grow(self, n: int) -> None:
        self._since = grown(self._since, n, np.nan)
        self._next = -np.inf

    def forget(self, conns: I64, at: float) -> None:
        super().forget(conns, at)
        self._since[conns[conns < self.n]] = np.nan  # idle since: the new owner's to judge
        self._next = -np.inf

    def _update(self, frame: Frame, events: Events, now: float) -> None:
        if events.st_conn.size:
            self._next = -np.inf  # idle periods may start or end
        for t, c, kind, code, _ in _ordered(events):
            if kind != 0:
                continue
            if code in _IDLE:
                if np.isnan(self._since[c]):
                    self._since[c] = t
                continue
            since = self._since[c]
            if np.isnan(since):
                continue
            grace = self.p["grace_s"][c]
            if c not in self.episodes.open and t - since > grace:
                # Idle period that no tick saw: the finding a tick would have made.
                self.episodes.force(
                    _c(c),
                    _ONE,
                    _f(since),
                    _f(since + grace),
                    {"idle_since": _f(since), "grace_s": _f(grace)},
                )
            self.episodes.force(_c(c), _ZERO, _f(since), _f(t))
            self._since[c] = np.nan
        self.tick(now)

    def tick(self, now: float) -> None:
        n = self.n
        self._now = now
        if now <= self._next:
            return
        since = self._since[:n]
        grace = self.p["grace_s"][:n]
        idle = now - since
        idx = np.flatnonzero((idle > grace) & ~self.episodes.active[:n])
        if idx.size:
            self.episodes.force(
                idx.astype(np.int64),
                np.ones(idx.size, np.bool_),
                since[idx],
                since[idx] + grace[idx],
                {"idle_since": since[idx], "grace_s": grace[idx]},
            )
        self._next = _soonest(since + grace, ~self.episodes.active[:n])

    def refresh(self) -> None:
        n = self.n
        # NaN when not idle: unknown/not applicable.
        self.score[:n] = (self._now - self._since[:n]) / self.p["grace_s"][:n]


class FailedStart(Detector):
    fault = "failed_start"
    _now = np.nan
    _next = -np.inf  # no connector can newly time out before this (tick's cache)

    def _grow(self, n: int) -> None:
        self._next = -np.inf
        if not hasattr(self, "_arm"):
            self._prep = np.zeros(0, np.bool_)
            self._arm = np.full(0, np.nan)
            self._timeout = np.full(0, np.nan)
            self._paused = np.zeros(0, np.bool_)
        self._arm = grown(self._arm, n, np.nan)
        self._timeout = grown(self._timeout, n, np.nan)
        self._paused = grown(self._paused, n, False)
        self._prep = grown(self._prep, n, False)
        if not hasattr(self, "_evid"):
            self._evid = np.zeros(0, np.bool_)
            self._frame = _NO_FRAME
        self._evid = grown(self._evid, n, False)
        if not hasattr(self, "_e0"):
            self._e0 = np.full(0, np.nan)  # register when the wait began (NaN: none yet)
            self._last_e = np.full(0, np.nan)  # last register received
        self._e0 = grown(self._e0, n, np.nan)
        self._last_e = grown(self._last_e, n, np.nan)

    def forget(self, conns: I64, at: float) -> None:
        super().forget(conns, at)
        c = conns[conns < self.n]  # disarmed: the wait is the new owner's to time
        self._arm[c] = np.nan
        self._prep[c] = False
        self._evid[c] = False
        self._paused[c] = False
        self._e0[c] = np.nan
        self._next = -np.inf

    def _baseline(self, frame: Frame, c: int, t: float) -> None:
        """The wait begins at ``t``: the register received last before it."""
        lo, hi = np.searchsorted(frame.raw_conn, [c, c + 1])
        e = frame.raw_energy[lo:hi]
        before = np.flatnonzero((frame.raw_recv[lo:hi] < t) & np.isfinite(e))
        self._e0[c] = e[before[-1]] if before.size else self._last_e[c]

    def _rose(self, frame: Frame, lo: int, hi: int) -> NDArray[np.bool_]:
        """Rows ``lo:hi`` (sorted by connector) without power whose register rose
        past the delivery step since their connector's wait began."""
        rc = frame.raw_conn[lo:hi]
        step = self._at("min_power_w", rc) * (60.0 / 3600.0)
        e = frame.raw_energy[lo:hi]
        base = np.take(self._e0, rc)
        # A register below the baseline in the wait restarted (per transaction,
        # meterStart 0): the previous session's last reading would never be
        # passed, so the wait counts from the lowest register since.
        low = np.where((frame.raw_recv[lo:hi] >= np.take(self._arm, rc)) & (e < base), e, np.nan)
        if not np.isnan(low).all():
            base = base.copy()
            for c in np.unique(rc[~np.isnan(low)]).tolist():
                seg = np.flatnonzero(rc == c)
                base[seg] = np.fmin(base[seg], np.fmin.accumulate(low[seg]))
        rose: NDArray[np.bool_] = ~np.isfinite(frame.raw_power[lo:hi]) & (e - base > step)
        return rose

    def _lower_baselines(self, frame: Frame) -> None:
        """Keep a restarted register's low (see ``_rose``) as the baseline for
        the rows of later batches."""
        rc, e = frame.raw_conn, frame.raw_energy
        fell = (frame.raw_recv >= np.take(self._arm, rc)) & (e < np.take(self._e0, rc))
        idx = np.flatnonzero(fell)
        if idx.size:
            np.minimum.at(self._e0, rc[idx], e[idx])

    def _first_registers(self, frame: Frame) -> None:
        """Armed connectors with no register before their wait take the first
        one received in it as the baseline."""
        rc, rr, e = frame.raw_conn, frame.raw_recv, frame.raw_energy
        need = np.isnan(np.take(self._e0, rc)) & (rr >= np.take(self._arm, rc)) & np.isfinite(e)
        idx = np.flatnonzero(need)
        if idx.size:
            first = np.ones(idx.size, np.bool_)
            first[1:] = rc[idx[1:]] != rc[idx[:-1]]
            self._e0[rc[idx[first]]] = e[idx[first]]

    def _remember_registers(self, frame: Frame) -> None:
        rc, e = frame.raw_conn, frame.raw_energy
        if rc is frame.conn and rc.size and finite_rows(frame, "energy_wh").all():
            # Every row has a register (the usual case) and the received rows are
            # the frame's: each connector's last register is on its last row.
            self._last_e[frame.touched] = e[frame.last_idx]
            return
        idx = np.flatnonzero(np.isfinite(e))
        if idx.size:
            last = np.ones(idx.size, np.bool_)
            last[:-1] = rc[idx[1:]] != rc[idx[:-1]]
            self._last_e[rc[idx[last]]] = e[idx[last]]

    def _seen_late(self, c: int, deadline: float) -> bool:
        """Were meter rows received in the second half of the wait (so "no energy"
        is evidence, not missing telemetry)? From earlier batches or this one."""
        if self._evid[c]:
            return True
        since = deadline - 0.5 * float(self._timeout[c])
        f = self._frame
        lo, hi = np.searchsorted(f.raw_conn, [c, c + 1])
        r = f.raw_recv[lo:hi]
        return bool(((r >= since) & (r <= deadline)).any())

    def _disarm(self, c: int, t: float) -> None:
        arm = self._arm[c]
        if np.isnan(arm):
            return
        to = self._timeout[c]
        if (
            c not in self.episodes.open
            and not self._paused[c]
            and t - arm > to
            and self._seen_late(c, float(arm + to))
        ):
            self.episodes.force(
                _c(c), _ONE, _f(arm), _f(arm + to), {"armed_at": _f(arm), "timeout_s": _f(to)}
            )
        self.episodes.force(_c(c), _ZERO, _f(arm), _f(t))
        self._arm[c] = np.nan
        self._prep[c] = False
        self._evid[c] = False
        self._e0[c] = np.nan

    def _update(self, frame: Frame, events: Events, now: float) -> None:
        # Received rows, in receive order: delivery is about what the charger
        # said, even when its clock (ts) puts the rows behind processed ones.
        self._frame = frame
        if events.st_conn.size or events.tx_conn.size:
            self._next = -np.inf  # arming, pauses and disarming move deadlines
        ordered = _ordered(events)
        # Built only when an event or an armed connector needs it.
        deliver = self._delivering(frame) if ordered else _ZERO[:0]
        for t, c, kind, code, _ in ordered:
            # Energy delivered before this event disarms first.
            self._deliveries(frame, deliver, c, t)
            if kind == 1:
                if code == 0:
                    # The clock runs from plug-in (Preparing) when there was one: the
                    # driver has been waiting since then.
                    plugged = self._arm[c] if self._prep[c] else np.nan
                    self._disarm(c, t)
                    self._arm[c] = t if np.isnan(plugged) else plugged
                    self._baseline(frame, c, self._arm[c])
                    self._timeout[c] = self.p["timeout_s"][c]
                    self._evid[c] = False
                    self._paused[c] = False
                    self._prep[c] = False
                elif code == 2:
                    self._disarm(c, t)
                continue
            if code == PREPARING and np.isnan(self._arm[c]):
                self._arm[c], self._timeout[c] = t, self.p["preparing_timeout_s"][c]
                self._baseline(frame, c, t)
                self._paused[c] = False
                self._prep[c] = True
                self._evid[c] = False
            elif code in _PAUSED:
                self._paused[c] = True
            elif code == CHARGING:
                if self._paused[c] and not np.isnan(self._arm[c]):
                    self._arm[c] = t  # the EV asks for energy now: the clock restarts
                    self._baseline(frame, c, t)
                    self._timeout[c] = self.p["timeout_s"][c]
                    self._evid[c] = False
                self._paused[c] = False
            elif code in _ENDED:
                self._disarm(c, t)
        # Remaining deliveries, vectorised: first delivering row at/after the arm time.
        rc, rr = frame.raw_conn, frame.raw_recv
        if rc.size and not np.isnan(self._arm[: self.n]).all():
            if deliver.shape[0] != rc.size:
                deliver = self._delivering(frame)
            self._first_registers(frame)
            deliver |= self._rose(frame, 0, rc.size)
            arm = np.take(self._arm, rc)
            idx = np.flatnonzero(deliver & (rr >= arm))
            if idx.size:
                first = np.ones(idx.size, np.bool_)
                first[1:] = rc[idx[1:]] != rc[idx[:-1]]
                i = idx[first]  # one per connector that started delivering
                self._disarm_many(rc[i], rr[i])
                arm = np.take(self._arm, rc)
            # Evidence for the armed connectors: a row in the second half of the wait.
            to = np.take(self._timeout, rc)
            hit = (rr >= arm + 0.5 * to) & (rr <= arm + to)
            if hit.any():
                hc = rc[hit]
                if not self._evid[hc].all():
                    self._next = -np.inf  # evidence makes a deadline count
                    self._evid[hc] = True
            self._lower_baselines(frame)
        self._remember_registers(frame)
        # _evid now holds this frame's evidence: keeping the frame (every array of
        # the batch, ~1 KB a connector) until the next update would only cost memory.
        self._frame = _NO_FRAME
        self.tick(now)

    def _delivering(self, frame: Frame) -> NDArray[np.bool_]:
        """Received rows with power above ``min_power_w``."""
        out: NDArray[np.bool_] = frame.raw_power > self._at("min_power_w", frame.raw_conn)
        return out

    def _disarm_many(self, cs: I64, ts: F64) -> None:
        """``_disarm`` for many connectors at once (each at most once)."""
        self._next = -np.inf
        arm = self._arm[cs]
        ok = ~np.isnan(arm)
        cs, ts, arm = cs[ok], ts[ok], arm[ok]
        to = self._timeout[cs]
        late = ~self.episodes.active[cs] & ~self._paused[cs] & (ts - arm > to)
        for j in np.flatnonzero(late).tolist():  # rare: a start that came too late
            c = int(cs[j])
            if self._seen_late(c, float(arm[j] + to[j])):
                self.episodes.force(
                    _c(c),
                    _ONE,
                    arm[j : j + 1],
                    arm[j : j + 1] + to[j : j + 1],
                    {"armed_at": arm[j : j + 1], "timeout_s": to[j : j + 1]},
                )
        self.episodes.force(cs, np.zeros(cs.shape[0], np.bool_), arm, ts)
        self._arm[cs] = np.nan
        self._prep[cs] = False
        self._evid[cs] = False

    def _deliveries(self, frame: Frame, deliver: NDArray[np.bool_], c: int, t: float) -> None:
        if np.isnan(self._arm[c]):
            return
        lo, hi = np.searchsorted(frame.raw_conn, [c, c + 1])
        r = frame.raw_recv[lo:hi]
        sel = (deliver[lo:hi] | self._rose(frame, lo, hi)) & (r >= self._arm[c]) & (r <= t)
        if sel.any():
            self._disarm(c, float(r[sel].min()))

    def tick(self, now: float) -> None:
        n = self.n
        self._now = now
        if now <= self._next:
            return
        arm, to = self._arm[:n], self._timeout[:n]
        waited = now - arm
        # Only with telemetry near the deadline: silence is stale_telemetry's.
        evidence = self._evid[:n]
        idx = np.flatnonzero(
            (waited > to) & ~self._paused[:n] & ~self.episodes.active[:n] & evidence
        )
        if idx.size:
            self.episodes.force(
                idx.astype(np.int64),
                np.ones(idx.size, np.bool_),
                arm[idx],
                arm[idx] + to[idx],
                {"armed_at": arm[idx], "timeout_s": to[idx]},
            )
        self._next = _soonest(arm + to, ~self._paused[:n] & ~self.episodes.active[:n] & evidence)

    def refresh(self) -> None:
        n = self.n
        waited = self._now - self._arm[:n]
        self.score[:n] = np.where(self._paused[:n], 0.0, waited / self._timeout[:n])


class StatusFlapping(Detector):
    fault = "status_flapping"
    _now = np.nan

    def _grow(self, n: int) -> None:
        k = int(self.params.changes)  # type: ignore[attr-defined]
        if not hasattr(self, "_ring"):
            self._ring = np.full((0, k), np.nan)  # change times, oldest .. newest
            self._last = np.full(0, -1, np.int8)
        self._ring = grown(self._ring, n, np.nan)
        self._last = grown(self._last, n, -1)

    def _clear_time(self, c: int) -> float:
        k = self._ring.shape[1]
        return float(self._ring[c, k - max(k // 2, 1)] + self.p["window_s"][c])

    def _update(self, frame: Frame, events: Events, now: float) -> None:
        k = self._ring.shape[1]
        for c, t, code in zip(
            events.st_conn.tolist(), events.st_recv.tolist(), events.st_code.tolist(), strict=True
        ):
            prev = int(self._last[c])
            self._last[c] = code
            if prev in (-1, code):
                continue
            if c in self.episodes.open and self._clear_time(c) <= t:
                ct = self._clear_time(c)
                self.episodes.force(_c(c), _ZERO, _f(ct), _f(ct))
            self._ring[c, :-1] = self._ring[c, 1:]
            self._ring[c, -1] = t
            oldest = self._ring[c, 0]
            if c not in self.episodes.open and t - oldest <= self.p["window_s"][c]:
                self.episodes.force(_c(c), _ONE, _f(oldest), _f(t), {"changes": _f(float(k))})
        self.tick(now)

    def tick(self, now: float) -> None:
        for c in list(self.episodes.open):
            ct = self._clear_time(c)
            if ct <= now:
                self.episodes.force(_c(c), _ZERO, _f(ct), _f(ct))
        self._now = now

    def refresh(self) -> None:
        n = self.n
        if n:
            w = self.p["window_s"][:n]
            recent = (self._now - self._ring[:n] <= w[:, None]).sum(axis=1)
            self.score[:n] = recent / self.p["changes"][:n]
