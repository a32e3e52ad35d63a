"""Per-sample Python reference of the detectors' sample path (benchmark baseline).

The straightforward way to write the same detectors: one object of state per
connector, one Python step per sample, the same cleaning, thresholds, learned
cadence and hysteresis/minimum-duration rule as ``chargewatch.detectors`` (read
``docs/detectors.md`` for each rule). bench_detectors.py measures what
vectorisation buys against it, and tests/detectors/test_reference_parity.py
checks that both find the same faults on the same connectors, so the ratio
compares like with like.

What it covers, per sample: the sequencer (bad rows, inf and negative values,
negative registers kept and counted, out-of-order and duplicate rows, the
interval learned as the median of the last 9 ts deltas, each row's rank), the
meter detectors (stuck; regression confirmed by the next register, with
per-transaction restarts; mismatch windows with CUSUM; unit error by power and
by register), over-temperature (level, rate, steep and limit paths, idle
statuses), over-current, voltage band per phase, phase loss (voltage and
current side), imbalance, oscillation (samples and time windows), charging
interrupted (stall and abnormal stops), clock skew, and the per-row parts of
the liveness and failed-start detectors (stale telemetry's cadence per mode,
a charger's last message, delivery after a start). Not covered: what only a
tick does (silences found while nothing arrives, stale temperature), status
flapping and idle blocking (status events, no samples), and evidence/scores.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import cast

from chargewatch.detectors import params as prm
from chargewatch.model.events import CONNECTOR_STATUSES

NAN = float("nan")
INF = float("inf")
_ST = {s: i for i, s in enumerate(CONNECTOR_STATUSES)}
CHARGING = _ST["Charging"]
_TEMP_IDLE = {_ST["Available"], _ST["Finishing"], _ST["Unavailable"]}
_LIVE = {_ST["Charging"], _ST["SuspendedEV"], _ST["SuspendedEVSE"]}
_IDLE = {_ST["Available"], _ST["Unavailable"]}
ABNORMAL_STOPS = frozenset(
    {"EmergencyStop", "PowerLoss", "Reboot", "HardReset", "SoftReset", "Other", "UnlockCommand"}
)
# Field positions in a MeterBatch row (chargewatch.model.batch.METER_FIELDS).
E, P, I1, V1, TEMP, SOC, OFFERED = 0, 1, 2, 5, 8, 9, 10
_UNSIGNED = (1, 2, 3, 4, 5, 6, 7, 9, 10)  # every field but energy and temperature
_DELTAS = 9  # the sequencer's INTERVAL_DELTAS
_CAD_KEEP, _CAD_MIN = 5, 3  # stale_telemetry's cadence per mode


@dataclass(slots=True)
class RefFinding:
    fault: str
    connector: int
    start: float
    detected: float
    end: float | None = None


def _fmax(a: float, b: float) -> float:
    """numpy's fmax: NaN only when both are."""
    return b if a != a else a if b != b else max(a, b)


def _fmin(a: float, b: float) -> float:
    return b if a != a else a if b != b else min(a, b)


def _thousandfold(r: float) -> bool:
    return 1e2 < r < 1e4 or 1e-4 < r < 1e-2


def _div(a: float, b: float) -> float:
    """a / b as numpy computes it (inf or NaN instead of an exception)."""
    if b == 0:
        return NAN if a == 0 or a != a else math.copysign(INF, a)
    return a / b


def _median(xs: list[float]) -> float:
    v = sorted(x for x in xs if x == x)
    n = len(v)
    if n == 0:
        return NAN
    return 0.5 * (v[(n - 1) // 2] + v[n // 2])


class Episode:
    """The hysteresis/minimum-duration machine of ``episodes.Episodes`` for one
    connector and path: a set run must last ``min_d`` seconds and span
    1 + ceil(0.75 * min_d / interval) rows (when ranks are given), timed from
    its first row's ``began`` (default: its ts); a clear run ``clr_d``; rows in
    neither break both runs."""

    __slots__ = ("active", "c", "clr_since", "fault", "open", "set_rank", "set_since", "sink")

    def __init__(self, fault: str, c: int, sink: list[RefFinding]) -> None:
        self.fault, self.c, self.sink = fault, c, sink
        self.active = False
        self.set_since = self.set_rank = self.clr_since = NAN
        self.open: RefFinding | None = None

    def step(
        self,
        ts: float,
        s: bool,
        c: bool,
        min_d: float,
        clr_d: float = 0.0,
        rank: float = NAN,
        interval: float = NAN,
        began: float = NAN,
    ) -> None:
        if not s and not self.active:
            # Nothing to open, nothing to close (the healthy case): a clear run
            # matters only to an active episode, and a set row restarts it.
            self.set_since = NAN
            return
        c = c and not s
        if s:
            if self.set_since != self.set_since:
                self.set_since, self.set_rank = (began if began == began else ts), rank
        else:
            self.set_since = self.set_rank = NAN
        if c:
            if self.clr_since != self.clr_since:
                self.clr_since = ts
        else:
            self.clr_since = NAN
        if s and ts - self.set_since >= min_d:
            if rank == rank:
                need = 1.0 + math.ceil(0.75 * (min_d / interval)) if interval > 0 else 1.0
                if rank - self.set_rank + 1.0 < need:
                    return
            if not self.active:
                self.active = True
                self.open = RefFinding(self.fault, self.c, self.set_since, ts)
                self.sink.append(self.open)
        elif c and ts - self.clr_since >= clr_d and self.active:
            self.active = False
            self._close(self.clr_since)

    def _close(self, at: float) -> None:
        if self.open is not None:
            self.open.end = max(at, self.open.start)
            self.open = None

    def force(self, on: bool, start: float, at: float) -> None:
        if on and not self.active:
            self.open = RefFinding(self.fault, self.c, start, at)
            self.sink.append(self.open)
        elif not on and self.active:
            self._close(at)
        self.active = on

    def end(self, at: float) -> None:
        if self.active:
            self._close(at)
        self.active = False
        self.set_since = self.set_rank = self.clr_since = NAN


class _Conn:
    """One connector's state across every detector."""

    def __init__(self, c: int, sink: list[RefFinding]) -> None:
        self.last_ts = -INF
        self.rows = 0.0  # rows processed: the next row's rank
        self.deltas: list[float] = []  # the last 9 ts deltas (NaN for the first row)
        self.interval = NAN
        self.e = self.e_ts = self.e_recv = NAN  # last known register
        self.p = self.p_ts = NAN  # last known power
        # meter_regression: the last transaction start, an unconfirmed fall
        self.tx_start = NAN
        self.pend_pre = self.pend_e = self.pend_ts = NAN
        self.pe_before = NAN  # the register before the last known one
        # meter_mismatch: the open window and its sums, the CUSUM
        self.win = NAN
        self.sums = [0.0, 0.0, 0.0, 0.0, 0.0, 0.0]  # de, ip, reg, frozen, suspect, counted
        self.up = self.down = 0.0
        # over_temperature: last judged reading, its ts and receive time, the rates
        self.t = self.t_ts = self.t_recv = NAN
        self.rate = self.fast = NAN
        self.three = False  # phase_loss: the session drew on three phases
        # power_oscillation: the last large step's sign, reversals of the last
        # window_samples power rows, the times of the latest reversals
        self.sign = 0.0
        self.revs: list[bool] = []
        self.rev_times: list[float] = []
        self.armed = False  # charging_interrupted
        self.last_on = self.soc = NAN
        self.stop_until = NAN
        # stale_telemetry: the last processed row's receive time and mode, gaps per mode
        self.row_recv = NAN
        self.row_mode = -1
        self.gaps: tuple[list[float], list[float]] = ([], [])
        self.cadence = [NAN, NAN]
        self.arm = NAN  # failed_start: waiting for delivery since
        self.ep = {
            k: Episode(f, c, sink)
            for k, f in (
                ("stuck", "meter_stuck"),
                ("regr", "meter_regression"),
                ("mism", "meter_mismatch"),
                ("unit", "meter_unit_error"),
                ("unit_e", "meter_unit_error"),
                ("temp", "over_temperature"),
                ("rate", "over_temperature"),
                ("steep", "over_temperature"),
                ("limit", "over_temperature"),
                ("cur", "over_current"),
                ("volt", "voltage_out_of_band"),
                ("loss", "phase_loss"),
                ("imb", "phase_imbalance"),
                ("osc", "power_oscillation"),
                ("intr", "charging_interrupted"),
                ("stop", "charging_interrupted"),
                ("skew", "clock_skew"),
                ("offline", "charger_offline"),
            )
        }


class ReferenceDetectors:
    """The detectors' sample path, one sample at a time (default parameters)."""

    def __init__(self, config: prm.DetectorConfig | None = None) -> None:
        p = (config or prm.DetectorConfig()).params()  # the defaults (no site/model)
        self.ms = cast(prm.MeterStuckParams, p["meter_stuck"])
        self.mr = cast(prm.MeterRegressionParams, p["meter_regression"])
        self.mm = cast(prm.MeterMismatchParams, p["meter_mismatch"])
        self.mu = cast(prm.MeterUnitErrorParams, p["meter_unit_error"])
        self.ot = cast(prm.OverTemperatureParams, p["over_temperature"])
        self.oc = cast(prm.OverCurrentParams, p["over_current"])
        self.vb = cast(prm.VoltageOutOfBandParams, p["voltage_out_of_band"])
        self.pl = cast(prm.PhaseLossParams, p["phase_loss"])
        self.pi = cast(prm.PhaseImbalanceParams, p["phase_imbalance"])
        self.po = cast(prm.PowerOscillationParams, p["power_oscillation"])
        self.ci = cast(prm.ChargingInterruptedParams, p["charging_interrupted"])
        self.cs = cast(prm.ClockSkewParams, p["clock_skew"])
        self.co = cast(prm.ChargerOfflineParams, p["charger_offline"])
        self.fs = cast(prm.FailedStartParams, p["failed_start"])
        self.found: list[RefFinding] = []
        self.state: dict[int, _Conn] = {}
        self.counters: dict[str, int] = {}
        self.last_seen: dict[str, float] = {}  # per charger: its last message

    @property
    def findings(self) -> int:
        return len(self.found)

    def _st(self, c: int) -> _Conn:
        st = self.state.get(c)
        if st is None:
            st = self.state[c] = _Conn(c, self.found)
        return st

    def _count(self, key: str, k: int = 1) -> None:
        self.counters[key] = self.counters.get(key, 0) + k

    # -- events ----------------------------------------------------------------

    def transaction_start(self, c: int, recv: float) -> None:
        st = self._st(c)
        st.tx_start = recv
        st.arm = recv

    def transaction_stop(self, c: int, recv: float, reason: str) -> None:
        """charging_interrupted (b): an abnormal stop while power flowed."""
        st = self._st(c)
        ci = self.ci
        ep = st.ep["stop"]
        if ep.active and st.stop_until <= recv:
            ep.force(False, st.stop_until, st.stop_until)
        st.arm = NAN
        if reason not in ABNORMAL_STOPS or ep.active:
            return
        flowing = recv - st.last_on <= 2 * ci.min_duration_s + 60.0
        if flowing and not st.soc >= ci.full_soc_pct:
            ep.force(True, recv, recv)
            st.stop_until = recv + ci.hold_s

    def status(self, c: int, recv: float, code: int) -> None:
        """A status change: over_temperature ends when the port stops charging."""
        st = self._st(c)
        if code in _TEMP_IDLE and not st.t_recv > recv:
            for k in ("temp", "rate", "steep", "limit"):
                st.ep[k].end(recv)

    # -- samples ---------------------------------------------------------------

    def sample(
        self,
        c: int,
        ts: float,
        recv: float,
        v: list[float],
        status: int,
        rated_a: float,
        nominal_v: float,
        phases: int,
        charger: str | None = None,
    ) -> None:
        """One meter row: ``v`` the 11 fields, ``status`` the connector's status
        code in force, the rest from the inventory."""
        if not (math.isfinite(ts) and math.isfinite(recv)):
            self._count("bad_rows")
            return
        st = self._st(c)
        v = self._clean(v)
        self._received(st, c, ts, recv, v, charger)
        if ts <= st.last_ts:
            self._count("duplicate_ts" if ts == st.last_ts else "out_of_order")
            return
        delta = ts - st.last_ts if st.last_ts > -INF else NAN
        st.deltas.append(delta)
        if len(st.deltas) > _DELTAS:
            st.deltas.pop(0)
        st.interval = _median(st.deltas)
        st.last_ts = ts
        rank = st.rows
        st.rows += 1.0
        self._meter(st, ts, recv, v, rank)
        self._electrical(st, ts, recv, v, status, rated_a, nominal_v, phases, rank)
        self._charging(st, ts, recv, v, status, rank)
        self._stale(st, recv, v, status)
        if v[E] == v[E]:
            st.pe_before = st.e
            st.e, st.e_ts, st.e_recv = v[E], ts, recv
        if v[P] == v[P]:
            st.p, st.p_ts = v[P], ts

    def _clean(self, v: list[float]) -> list[float]:
        out = list(v)
        for j, x in enumerate(out):
            if x != x:
                continue
            if math.isinf(x):
                self._count("nonfinite_values")
                out[j] = NAN
            elif x < 0:
                if j == E:
                    self._count("negative_registers")
                elif j in _UNSIGNED:
                    self._count("negative_values")
                    out[j] = NAN
        return out

    def _received(
        self, st: _Conn, c: int, ts: float, recv: float, v: list[float], charger: str | None
    ) -> None:
        """What every received row feeds, processed or not: clock skew, the
        charger's last message, delivery after a start."""
        cs = self.cs
        off = abs(recv - ts)
        mx = cs.max_offset_s
        st.ep["skew"].step(recv, off > mx, off <= 0.5 * mx, cs.min_duration_s - 1.0)
        co = self.co
        h = charger if charger is not None else str(c)
        last = self.last_seen.get(h, NAN)
        silence = co.silence_s
        if recv - last > silence:  # a silence no tick saw, found when data resumes
            st.ep["offline"].force(True, last, last + silence)
        if st.ep["offline"].active:
            st.ep["offline"].force(False, last, recv)
        self.last_seen[h] = _fmax(last, recv)
        if st.arm == st.arm and v[P] > self.fs.min_power_w:
            st.arm = NAN  # delivered

    def _meter(self, st: _Conn, ts: float, recv: float, v: list[float], rank: float) -> None:
        e, pw = v[E], v[P]
        pe, pet, pp, ppt = st.e, st.e_ts, st.p, st.p_ts
        cur, volt = v[I1 : I1 + 3], v[V1 : V1 + 3]
        vis = [a * b for a, b in zip(cur, volt, strict=True)]
        known_vi = [x for x in vis if x == x]
        vi = sum(known_vi) if known_vi else NAN
        # meter_stuck: power against register over the interval since the last
        # register; power reported since it stands in for a missing one.
        mp = self.ms
        p_i = pw if pw == pw else (pp if ppt >= pet else NAN)
        if e == e and p_i == p_i:
            de = e - pe
            flowed = p_i * (ts - pet) / 3600.0
            still = de < 0.05 * flowed
            if still:
                still = not _thousandfold(_div(de, flowed))
            stuck = still and de >= 0 and p_i > mp.min_power_w
            moved = de > 0 and not still
            # Still since the previous register: the run is timed from it.
            st.ep["stuck"].step(ts, stuck, moved, mp.min_duration_s, 0.0, rank, st.interval, pet)
        if e == e:
            self._regression(st, ts, e, pe, pet, pw, pp)
            self._mismatch(st, ts, e, pw, pe, pet, pp, ppt, vi)
        # meter_unit_error: power against V*I, and the register's step against V*I*dt
        mu = self.mu
        itot = sum(a for a in cur if a == a)
        ratio = _div(pw, vi)
        if pw == pw and vi == vi and itot >= mu.min_current_a:
            bad = _thousandfold(ratio)
            st.ep["unit"].step(ts, bad, not bad, mu.min_duration_s, 0.0, rank, st.interval)
        ref = vi if vi == vi else pw
        dt = ts - pet
        expected = ref * dt / 3600.0
        de = e - pe
        switch = _thousandfold(_div(pe, e if e > 0 else NAN))
        ok = expected >= mu.min_expected_wh and dt <= mu.max_gap_s and de > 0
        if ok or switch:
            er = e / pe if switch else _div(de, expected)
            # the end of a single reading ~1000x too high is no unit change
            ebad = _thousandfold(er) and not (switch and pe > e >= st.pe_before)
            # timed from the previous register, as meter_stuck's
            st.ep["unit_e"].step(ts, ebad, not ebad, mu.min_duration_s, 0.0, rank, st.interval, pet)

    def _regression(
        self, st: _Conn, ts: float, e: float, pe: float, pet: float, pw: float, pp: float
    ) -> None:
        """A fall confirmed by the next known register; a restart at the first
        register after a transaction start is none, nor the end of a single
        reading too high (the fall lands at or above the register before it).
        Where power is known, half the energy it says flowed is expected on
        top, in both comparisons."""
        mr = self.mr
        tol = mr.tolerance_wh
        rate = _fmin(pw, pp)
        rate = max(rate, 0.0) if rate == rate else 0.0

        def grew(since: float) -> float:
            g = 0.5 * rate * (ts - since) / 3600.0
            return g if g == g else 0.0

        restart = st.tx_start > st.e_recv or (st.e_recv != st.e_recv and st.tx_start == st.tx_start)
        fall = pe - e > tol and not _thousandfold(_div(pe, e if e > 0 else NAN)) and not restart
        # a single high reading ending
        fall = fall and not e >= st.pe_before - tol + grew(pet)
        bad = e < st.pend_pre - tol + grew(st.pend_ts) and not restart
        st.ep["regr"].step(ts, bad, not (bad or fall), 0.0, mr.hold_s)
        st.pend_pre, st.pend_e, st.pend_ts = (pe, e, pet) if fall else (NAN, NAN, NAN)

    def _mismatch(
        self,
        st: _Conn,
        ts: float,
        e: float,
        pw: float,
        pe: float,
        pet: float,
        pp: float,
        ppt: float,
        vi: float,
    ) -> None:
        """Tumbling windows of register delta against the power integral."""
        mm = self.mm
        ws = mm.window_s
        w = math.floor(ts / ws)
        if w != st.win:
            if st.win == st.win:
                self._judge_window(st, (st.win + 1.0) * ws)
            st.win, st.sums = w, [0.0, 0.0, 0.0, 0.0, 0.0, 0.0]
        dt = ts - pet
        ok = dt <= mm.max_gap_s and ts - ppt == dt and pw == pw
        big = _fmax(pw, pp)
        if abs(pw - pp) > 0.3 * big and big > 1000.0:
            ok = False
        s = st.sums
        de = ip = 0.0
        if ok:
            de = e - pe
            ip = (pw + pp) * (0.5 / 3600.0) * dt
            s[5] += dt
        if de < 0:
            s[2] += 1.0
            de = 0.0
        if ok and de == 0 and _fmin(pw, pp) > 500.0:
            s[3] += dt
        if de > 5.0 * abs(ip) + 50.0 or _thousandfold(_div(pw, vi)):
            s[4] += 1.0
        s[0] += de
        s[1] += ip

    def _judge_window(self, st: _Conn, t_end: float) -> None:
        mm = self.mm
        de, ip, reg, frozen, suspect, counted = st.sums
        judged = (
            ip >= mm.min_energy_wh
            and reg == 0
            and frozen <= 20.0
            and suspect == 0
            and counted >= 0.5 * mm.window_s
        )
        if not judged:
            return
        ratio = de / ip
        x = ratio - 1.0
        tol, limit = mm.tolerance, mm.drift_limit
        plausible = 0.05 < ratio < 20.0
        large = plausible and abs(x) > tol
        if plausible:  # two-sided CUSUM of the relative error, capped at the limit
            k = mm.drift_allowance
            st.up = min(max(st.up + x - k, 0.0), limit)
            st.down = min(max(st.down - x - k, 0.0), limit)
        if large:
            st.up = st.down = 0.0
        drift = max(st.up, st.down)
        bad = large or (plausible and drift >= limit)
        good = (abs(x) <= tol and drift <= 0.5 * limit) or not plausible
        st.ep["mism"].step(t_end, bad, good, 0.0)

    def _electrical(
        self,
        st: _Conn,
        ts: float,
        recv: float,
        v: list[float],
        status: int,
        rated_a: float,
        nominal_v: float,
        phases: int,
        rank: float,
    ) -> None:
        iv = st.interval
        temp = v[TEMP]
        if temp == temp and status not in _TEMP_IDLE:
            self._temperature(st, ts, recv, temp, rank)
        cur = v[I1 : I1 + 3]
        known = [a for a in cur if a == a]
        imax = max(known) if known else NAN
        if known and phases > 0:  # over_current (AC)
            oc = self.oc
            rated = rated_a if rated_a > 0 else INF
            lim = _fmin(v[OFFERED], rated)
            over = imax > lim * (1.0 + oc.tolerance) + oc.margin_a
            st.ep["cur"].step(ts, over, not over, oc.min_duration_s, 0.0, rank, iv)
        ratios = [x / nominal_v for x in v[V1 : V1 + 3]]
        if phases > 0:  # voltage_out_of_band: each live phase against nominal
            vb = self.vb
            lf = vb.loss_fraction
            devs = [abs(r - 1.0) for r in ratios if r >= lf]
            if devs:
                worst = max(devs)
                st.ep["volt"].step(
                    ts,
                    worst > vb.band,
                    worst < vb.clear_band,
                    vb.min_duration_s,
                    0.0,
                    rank,
                    iv,
                )
        if phases == 3:
            self._phases(st, ts, cur, ratios, rank)
        if v[P] == v[P]:
            self._oscillation(st, ts, v[P], rank)

    def _temperature(self, st: _Conn, ts: float, recv: float, t: float, rank: float) -> None:
        ot = self.ot
        iv = st.interval
        level = ot.level_c
        st.ep["temp"].step(ts, t > level, t < ot.clear_c, ot.min_duration_s, 0.0, rank, iv)
        # Time-weighted EWMAs of the slope (C/min); 0 before the first slope.
        if st.t == st.t:
            dt = ts - st.t_ts
            slope = min(max((t - st.t) * (60.0 / dt), -1000.0), 1000.0)
            a = math.exp(-dt / ot.rate_tau_s)
            st.rate = a * st.rate + (1.0 - a) * slope
            a = math.exp(-dt / ot.steep_tau_s)
            st.fast = a * st.fast + (1.0 - a) * slope
            rate, fast = st.rate, st.fast
        else:
            st.rate = st.fast = 0.0
            rate = fast = NAN
        if fast == fast:
            lim = ot.steep_c_per_min
            warm = t > ot.steep_floor_c
            st.ep["steep"].step(
                ts,
                warm and fast > lim,
                not warm or fast <= 0.5 * lim,
                ot.steep_min_duration_s,
                0.0,
                rank,
                iv,
            )
        limit = level + ot.limit_margin_c
        st.ep["limit"].step(ts, t > limit, t <= limit, ot.limit_min_duration_s, 0.0, rank, iv)
        if rate == rate:
            lim = ot.rate_c_per_min
            hot = t > ot.rate_floor_c
            st.ep["rate"].step(
                ts,
                hot and rate > lim and t <= level,
                not hot or rate <= 0.5 * lim,
                ot.rate_min_duration_s,
                0.0,
                rank,
                iv,
            )
        st.t, st.t_ts, st.t_recv = t, ts, recv

    def _phases(
        self, st: _Conn, ts: float, cur: list[float], ratios: list[float], rank: float
    ) -> None:
        """phase_loss (a lost phase voltage, or a three-phase load losing one
        phase's current) and phase_imbalance, on three-phase AC connectors."""
        pl = self.pl
        frac = pl.loss_fraction
        v_all = all(r == r for r in ratios)
        v_judged = v_all and max(ratios) >= frac
        v_loss = v_judged and min(ratios) < frac
        i_known = all(a == a for a in cur)
        ncarry = sum(a >= pl.min_current_a for a in cur) if i_known else 0
        idle = i_known and max(cur) < 1.0
        if ncarry == 3 or idle:
            st.three = ncarry == 3
        i_loss = i_known and ncarry == 2 and not idle and st.three
        if v_judged or i_known:
            loss = v_loss or i_loss
            st.ep["loss"].step(ts, loss, not loss, pl.min_duration_s, 0.0, rank, st.interval)
        if i_known:
            pi = self.pi
            loaded = [a for a in cur if a > pi.floor_a]
            imax = max(cur)
            imb = 0.0
            if len(loaded) >= 2 and imax >= pi.min_current_a:
                imb = (imax - min(loaded)) / imax
            st.ep["imb"].step(
                ts,
                imb > pi.threshold,
                imb < pi.clear,
                pi.min_duration_s,
                0.0,
                rank,
                st.interval,
            )

    def _oscillation(self, st: _Conn, ts: float, pw: float, rank: float) -> None:
        """Reversals of large power steps among the last window_samples power
        rows, or min_reversals of them within window_s."""
        po = self.po
        need = po.min_reversals
        pp = st.p
        big = abs(pw - pp) > po.swing_fraction * _fmax(_fmax(pw, pp), po.min_power_w)
        rev = False
        if big:
            sgn = 1.0 if pw > pp else -1.0
            rev = sgn * st.sign < 0
            st.sign = sgn
        st.revs.append(rev)
        if len(st.revs) > po.window_samples:
            st.revs.pop(0)
        if rev:
            st.rev_times.append(ts)
            if len(st.rev_times) > need:
                st.rev_times.pop(0)
        count = sum(st.revs)
        window = po.window_s
        recent = len(st.rev_times) >= need and ts - st.rev_times[0] <= window
        lately = bool(st.rev_times) and ts - st.rev_times[-1] <= window
        st.ep["osc"].step(
            ts,
            count >= need or recent,
            count < 0.5 * need and not lately,
            po.min_duration_s,
            0.0,
            rank,
            st.interval,
        )

    def _charging(
        self, st: _Conn, ts: float, recv: float, v: list[float], status: int, rank: float
    ) -> None:
        """charging_interrupted (a): still Charging, armed by earlier power, and
        nothing flows (by power, and by the currents when reported)."""
        pw = v[P]
        if pw != pw:
            return
        ci = self.ci
        on = pw > ci.on_power_w
        charging = status == CHARGING
        if on:
            st.last_on = _fmax(st.last_on, recv)
        if v[SOC] == v[SOC]:
            st.soc = v[SOC]
        if on or not charging:
            st.armed = on
        known = [a for a in v[I1 : I1 + 3] if a == a]
        flowing = bool(known) and sum(known) >= 1.0
        full = v[SOC] >= ci.full_soc_pct
        stall = st.armed and charging and pw < ci.off_power_w and not full and not flowing
        st.ep["intr"].step(
            ts,
            stall,
            on or not charging,
            ci.min_duration_s,
            0.0,
            rank,
            st.interval,
        )

    def _stale(self, st: _Conn, recv: float, v: list[float], status: int) -> None:
        """stale_telemetry's per-row learning: each mode's cadence, the median of
        its last gaps between rows of that mode."""
        mode = 1 if status in _LIVE else 0 if status in _IDLE else -1
        gap = recv - st.row_recv
        if mode >= 0 and mode == st.row_mode and gap >= 1.0:
            g = st.gaps[mode]
            g.append(gap)
            if len(g) > _CAD_KEEP:
                g.pop(0)
            st.cadence[mode] = _median(g) if len(g) >= _CAD_MIN else NAN
        st.row_recv, st.row_mode = recv, mode
