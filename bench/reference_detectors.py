"""Per-sample Python reference of the detectors' meter-row logic (benchmark baseline).

The straightforward way to write the same detectors: one dict of state per
connector, one Python step per sample, the same thresholds and the same
hysteresis/minimum-duration rule. Used only by bench_detectors.py to measure
what vectorisation buys; event-driven detectors (idle, failed start, flapping)
see no samples and are left out of both sides' sample path.
"""

from __future__ import annotations

import math
import statistics
from typing import Any

from chargewatch.detectors.params import DetectorConfig

NAN = float("nan")


def _min_samples(min_d: float, interval: float) -> float:
    """Rows a run must span: 1 + ceil(0.75 * duration / interval); 1 while the
    interval is unknown (chargewatch.detectors.episodes.min_samples)."""
    if math.isnan(interval) or interval <= 0:
        return 1.0
    return 1.0 + math.ceil(0.75 * (min_d / interval))


class _Episode:
    __slots__ = ("active", "clr_since", "set_rank", "set_since")

    def __init__(self) -> None:
        self.active = False
        self.set_since = NAN
        self.set_rank = NAN
        self.clr_since = NAN

    def step(
        self,
        ts: float,
        s: bool,
        c: bool,
        min_d: float,
        clr_d: float,
        rank: float = NAN,
        interval: float = NAN,
    ) -> bool:
        """Returns True when the state changed. ``rank``: the row's number among
        its connector's rows; ``interval``: the connector's learned interval."""
        c = c and not s
        if s:
            if math.isnan(self.set_since):
                self.set_since = ts
                self.set_rank = rank
        else:
            self.set_since = NAN
            self.set_rank = NAN
        if c:
            if math.isnan(self.clr_since):
                self.clr_since = ts
        else:
            self.clr_since = NAN
        was = self.active
        spanned = rank - self.set_rank + 1.0
        enough = math.isnan(spanned) or spanned >= _min_samples(min_d, interval)
        if s and ts - self.set_since >= min_d and enough:
            self.active = True
        elif c and ts - self.clr_since >= clr_d:
            self.active = False
        return was != self.active


class ReferenceDetectors:
    """The meter-row detectors, one sample at a time."""

    def __init__(self, config: DetectorConfig | None = None) -> None:
        self.p = {k: v for k, v in (config or DetectorConfig()).params().items()}
        self.state: dict[int, dict[str, Any]] = {}
        self.findings = 0

    def transaction_start(self, c: int, recv: float) -> None:
        """A transaction start received for connector ``c``."""
        self._st(c)["tx_start"] = recv

    def _st(self, c: int) -> dict[str, Any]:
        st = self.state.get(c)
        if st is None:
            st = self.state[c] = {
                "last_ts": -math.inf,
                "rows": 0.0,  # rows processed: the next row's rank
                "deltas": [],  # the last 9 ts deltas
                "interval": NAN,  # their median
                "e": NAN,
                "e_ts": NAN,
                "e_recv": NAN,
                "tx_start": NAN,
                "p": NAN,
                "p_ts": NAN,
                "t": NAN,
                "temp": NAN,
                "temp_ts": NAN,
                "rate": 0.0,
                "sign": 0.0,
                "revs": [],
                "win": NAN,
                "sums": [0.0, 0.0],
                "up": 0.0,
                "down": 0.0,
                "armed": False,
                "ep": {
                    k: _Episode()
                    for k in (
                        "stuck",
                        "regr",
                        "mism",
                        "unit",
                        "temp",
                        "rate",
                        "cur",
                        "volt",
                        "loss",
                        "imb",
                        "osc",
                        "intr",
                        "skew",
                    )
                },
            }
        return st

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
    ) -> None:
        st = self._st(c)
        prm = self.p
        if not (math.isfinite(ts) and math.isfinite(recv)) or ts <= st["last_ts"]:
            return
        if st["last_ts"] > -math.inf:
            deltas = st["deltas"]
            deltas.append(ts - st["last_ts"])
            if len(deltas) > 9:
                deltas.pop(0)
            st["interval"] = statistics.median(deltas)
        st["last_ts"] = ts
        rank, interval = st["rows"], st["interval"]
        st["rows"] = rank + 1.0
        ep = st["ep"]
        e, pw = v[0], v[1]
        cur = v[2:5]
        volt = v[5:8]
        temp, soc, offered = v[8], v[9], v[10]
        pe, pp, pt = st["e"], st["p"], st["t"]
        n = 0
        # meter_stuck: power against register over the interval since the last
        # register (power reported within it stands in for a missing one)
        pw_i = pw if math.isfinite(pw) else (pp if st["p_ts"] >= st["e_ts"] else NAN)
        if math.isfinite(e) and math.isfinite(pw_i):
            mp = prm["meter_stuck"]
            de = e - pe
            flowed = pw_i * (ts - st["e_ts"]) / 3600.0
            still = de < 0.05 * flowed
            if still and flowed != 0:
                r = de / flowed
                still = not (1e-4 < r < 1e-2 or 1e2 < r < 1e4)
            stuck = still and de >= 0 and pw_i > mp.min_power_w
            moved = de > 0 and not still
            n += ep["stuck"].step(ts, stuck, moved, mp.min_duration_s, 0, rank, interval)
        # meter_regression: a fall, unless the first register after a transaction start
        if math.isfinite(e):
            mr = prm["meter_regression"]
            drop = pe - e
            bad = drop > mr.tolerance_wh and not (e > 0 and 2 < abs(math.log10(pe / e)) < 4)
            if bad and st["tx_start"] > st["e_recv"]:
                bad = False
            n += ep["regr"].step(ts, bad, not bad, 0, mr.hold_s)
            st["e_recv"] = recv
        # meter_mismatch: tumbling windows of register delta vs power integral
        mm = prm["meter_mismatch"]
        w = math.floor(ts / mm.window_s)
        if w != st["win"]:
            de, ip = st["sums"]
            if ip >= mm.min_energy_wh:
                ratio = de / ip
                x = ratio - 1.0
                plausible = 0.05 < ratio < 20
                large = plausible and abs(x) > mm.tolerance
                if large:
                    st["up"] = st["down"] = 0.0
                elif plausible:  # two-sided CUSUM of the relative error
                    k, h = mm.drift_allowance, mm.drift_limit
                    st["up"] = min(max(st["up"] + x - k, 0.0), h)
                    st["down"] = min(max(st["down"] - x - k, 0.0), h)
                drift = max(st["up"], st["down"])
                bad = large or (plausible and drift >= mm.drift_limit)
                ok = not plausible or (not large and drift <= 0.5 * mm.drift_limit)
                n += ep["mism"].step(ts, bad, ok, 0, 0)
            st["win"], st["sums"] = w, [0.0, 0.0]
        if math.isfinite(e) and math.isfinite(pe) and math.isfinite(pw) and math.isfinite(pp):
            dt = ts - pt
            big = max(pw, pp)
            if dt <= mm.max_gap_s and e >= pe and not (abs(pw - pp) > 0.3 * big and big > 1000):
                st["sums"][0] += e - pe
                st["sums"][1] += (pw + pp) * 0.5 * dt / 3600.0
        # meter_unit_error: power vs V*I
        vi = sum(a * b for a, b in zip(cur, volt, strict=True) if math.isfinite(a * b))
        itot = sum(a for a in cur if math.isfinite(a))
        mu = prm["meter_unit_error"]
        if math.isfinite(pw) and vi > 0 and itot >= mu.min_current_a:
            r = pw / vi
            bad = r > 0 and 2 < abs(math.log10(r)) < 4
            n += ep["unit"].step(ts, bad, not bad, mu.min_duration_s, 0, rank, interval)
        # over_temperature: level, and rise as a time-weighted EWMA of the slope
        ot = prm["over_temperature"]
        if math.isfinite(temp):
            n += ep["temp"].step(
                ts, temp > ot.level_c, temp < ot.clear_c, ot.min_duration_s, 0, rank, interval
            )
            if math.isfinite(st["temp"]):
                dt = ts - st["temp_ts"]
                a = math.exp(-dt / ot.rate_tau_s)
                slope = min(max((temp - st["temp"]) * 60.0 / dt, -1000.0), 1000.0)
                st["rate"] = a * st["rate"] + (1.0 - a) * slope
                rate = st["rate"]
                hot = temp > ot.rate_floor_c
                n += ep["rate"].step(
                    ts,
                    hot and rate > ot.rate_c_per_min and temp <= ot.level_c,
                    not hot or rate <= 0.5 * ot.rate_c_per_min,
                    ot.rate_min_duration_s,
                    0,
                    rank,
                    interval,
                )
            st["temp"], st["temp_ts"] = temp, ts
        # over_current (AC)
        oc = prm["over_current"]
        known = [a for a in cur if math.isfinite(a)]
        if known and phases > 0:
            lim = min(offered, rated_a) if math.isfinite(offered) else rated_a
            allowed = lim * (1 + oc.tolerance) + oc.margin_a
            over = max(known) > allowed
            n += ep["cur"].step(ts, over, not over, oc.min_duration_s, 0, rank, interval)
        # voltage_out_of_band, phase_loss, phase_imbalance (AC)
        if phases > 0:
            vb = prm["voltage_out_of_band"]
            devs = [
                abs(x / nominal_v - 1)
                for x in volt
                if math.isfinite(x) and x / nominal_v >= vb.loss_fraction
            ]
            if devs:
                worst = max(devs)
                n += ep["volt"].step(
                    ts, worst > vb.band, worst < vb.clear_band, vb.min_duration_s, 0, rank, interval
                )
        if phases == 3 and all(math.isfinite(x) for x in volt):
            pl = prm["phase_loss"]
            lost = [x / nominal_v < pl.loss_fraction for x in volt]
            loss = any(lost) and not all(lost)
            n += ep["loss"].step(ts, loss, not loss, pl.min_duration_s, 0, rank, interval)
        if phases == 3 and len(known) == 3:
            pi = prm["phase_imbalance"]
            loaded = [a for a in cur if a > pi.floor_a]
            imb = 0.0
            if len(loaded) >= 2 and max(cur) >= pi.min_current_a:
                imb = (max(cur) - min(loaded)) / max(cur)
            n += ep["imb"].step(
                ts, imb > pi.threshold, imb < pi.clear, pi.min_duration_s, 0, rank, interval
            )
        # power_oscillation: reversals of large steps in the last k samples
        po = prm["power_oscillation"]
        if math.isfinite(pw):
            rev = False
            if math.isfinite(pp):
                level = max(pw, pp, po.min_power_w)
                dp = pw - pp
                if abs(dp) > po.swing_fraction * level:
                    sgn = 1.0 if dp > 0 else -1.0
                    rev = sgn * st["sign"] < 0
                    st["sign"] = sgn
            revs = st["revs"]
            revs.append(rev)
            if len(revs) > po.window_samples:
                revs.pop(0)
            cnt = sum(revs)
            n += ep["osc"].step(
                ts,
                cnt >= po.min_reversals,
                cnt < 0.5 * po.min_reversals,
                po.min_duration_s,
                0,
                rank,
                interval,
            )
            # charging_interrupted (stall in Charging)
            ci = prm["charging_interrupted"]
            on = pw > ci.on_power_w
            charging = status == 2
            if on or not charging:
                st["armed"] = on
            flowing = itot >= 1.0
            full = math.isfinite(soc) and soc >= ci.full_soc_pct
            stall = st["armed"] and charging and pw < ci.off_power_w and not full and not flowing
            n += ep["intr"].step(
                ts, stall, on or not charging, ci.min_duration_s, 0, rank, interval
            )
        # clock_skew on the receive clock
        cs = prm["clock_skew"]
        off = abs(recv - ts)
        n += ep["skew"].step(
            recv, off > cs.max_offset_s, off <= 0.5 * cs.max_offset_s, cs.min_duration_s - 1, 0
        )
        if math.isfinite(e):
            st["e"], st["e_ts"] = e, ts
        if math.isfinite(pw):
            st["p"], st["p_ts"] = pw, ts
        st["t"] = ts
        self.findings += n
