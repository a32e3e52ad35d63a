"""The vectorised engine: per-connector time series for a time range, chunk by chunk.

Every connector samples on a common grid ``start + offset_c + k * interval``
(``offset_c`` is the charger's sampling phase). A chunk is a block of grid
indices ``[k0, k1)`` computed for all connectors at once as ``(connectors,
samples)`` arrays; only the sessions overlapping the chunk are visited in Python.

The register integrates the reported power exactly: sample ``k`` stands for the
interval ``(t_{k-1}, t_k]``, and ``energy[k] = energy[k-1] + power[k] * interval
/ 3600``. State carried from chunk to chunk is just the register and the
thermal filter, so chunks must be computed in order (``Engine.run``).
"""

from __future__ import annotations

__all__ = ["Chunk", "Engine"]

import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy.signal import lfilter

from chargewatch.simulator.plan import POWER_FACTOR, Plan, Session

F64 = NDArray[np.float64]
I64 = NDArray[np.int64]

_NOISE_BITS = 20
_NOISE_MASK = (1 << _NOISE_BITS) - 1
THERMAL_TAU_S = 600.0  # charger enclosure warms/cools with ~10 min time constant
HEAT_AT_FULL_POWER_C = 30.0  # steady-state rise above ambient at rated power
LINE_RESISTANCE_OHM = 0.03  # voltage drop with load on the supply line
MAX_CHUNK_S = 900.0


@dataclass(slots=True)
class Chunk:
    """All connectors' samples for grid indices [k0, k1). Arrays are (connectors, m).

    ``t`` is the true time of each sample; ``ts`` the charger's (skewed) clock,
    rounded to ms; ``emit`` False where the sample is not sent (gaps, stale
    telemetry, offline, reboot). ``current``/``voltage`` are (3, connectors, m)
    with NaN on phases a connector does not have. ``energy`` is the *reported*
    register; ``energy_true`` the physical one.
    """

    k0: int
    k1: int
    t: F64
    ts: F64
    emit: NDArray[np.bool_]
    energy: F64
    energy_true: F64
    power: F64
    current: F64
    voltage: F64
    temperature: F64
    soc: F64
    offered: F64
    tx: I64

    @property
    def m(self) -> int:
        return self.k1 - self.k0


class Engine:
    def __init__(self, plan: Plan, target_chunk_samples: int = 400_000) -> None:
        cfg = plan.config
        self.plan = plan
        self.cfg = cfg
        self.dt = cfg.interval
        self.origin = cfg.start
        n = len(plan.conns)
        self.n = n
        rng = np.random.default_rng([cfg.seed & 0xFFFFFFFF, 10])
        # One table of standard normals; every noisy series reads it at its own
        # random offset, indexed by the absolute sample number, so noise does not
        # depend on how the time range is chunked.
        self.noise = rng.standard_normal(1 << _NOISE_BITS)
        self.noff = rng.integers(0, 1 << _NOISE_BITS, size=(8, n))
        conns = plan.conns
        self.off = np.array([c.offset_s for c in conns])
        self.phases = np.array([c.phases for c in conns])
        self.vnom = np.array([c.nominal_v for c in conns])
        self.pmax = np.array([c.max_power_w for c in conns])
        self.utc_off_h = np.array([c.utc_offset_h for c in conns])
        self.amb_off = rng.uniform(-2.0, 4.0, n)  # sun, enclosure, placement
        self.reg0 = rng.uniform(1e5, 3e7, n).round(0)  # lifetime register at start, Wh
        self.thermal_a = math.exp(-self.dt / THERMAL_TAU_S)
        self.kmax = math.ceil(cfg.duration / self.dt)
        k = max(1, target_chunk_samples // max(n, 1))
        # At most 15 simulated minutes a chunk: a small fleet published live
        # should not encode hours of messages before sending the first.
        k = min(k, max(1, math.ceil(MAX_CHUNK_S / self.dt)))
        k = max(cfg.batch, (k // cfg.batch) * cfg.batch)
        self.chunk_len = k
        ss = plan.sessions
        self.s_first = np.array(
            [math.floor((s.plug_in - self.origin - s.conn.offset_s) / self.dt) + 1 for s in ss],
            dtype=np.int64,
        )
        self.s_last = np.array(
            [math.floor((s.unplug - self.origin - s.conn.offset_s) / self.dt) for s in ss],
            dtype=np.int64,
        )
        self._stuck: dict[int, float] = {}
        self.rows_of: dict[str, list[int]] = {}
        for c in conns:
            self.rows_of.setdefault(c.charger, []).append(
                c.idx
            )  # fault index → register at its start

    # -- noise -------------------------------------------------------------------
    def _noise(self, which: int, rows: I64 | int, kk: I64) -> F64:
        off = self.noff[which, rows]
        if isinstance(off, np.ndarray):
            idx = (kk[None, :] + off[:, None]) & _NOISE_MASK
        else:
            idx = (kk + off) & _NOISE_MASK
        out: F64 = self.noise[idx]
        return out

    # -- sessions ------------------------------------------------------------------
    def session_power(self, s: Session, kk: I64) -> tuple[F64, F64, F64]:
        """Power (W, quantised to 0.01 W), SoC (0..1) and charging-clock rate at
        grid indices ``kk``; deterministic, so the truth and the engine agree."""
        t: F64 = (self.origin + s.conn.offset_s) + kk.astype(np.float64) * self.dt
        seg = np.clip(np.searchsorted(s.edges, t, "left") - 1, 0, s.rates.shape[0] - 1)
        active = (t > s.start) & (t <= s.stop)
        rate = np.where(active, s.rates[seg], 0.0)
        tau = s.tau(t)
        soc = np.interp(tau, s.t_of_s, s.s_grid)
        p = s.curve_w(soc) * rate
        p[tau >= s.t_of_s[-1]] = 0.0
        for w in s.windows:
            if w.osc is not None:
                inw = (t > w.t0) & (t <= w.t1)
                period, depth = w.osc
                hi = ((t - w.t0) / period) % 1.0 < 0.5
                p = np.where(inw, p * np.where(hi, 1.0 + depth, 1.0 - depth), p)
        p = p * (1.0 + 0.002 * self._noise(0, s.conn.idx, kk))
        return np.round(p, 2), soc, rate

    def session_energy(self, s: Session) -> float:
        """Energy counted between the transaction's start and stop, Wh."""
        ka = math.floor((s.start - self.origin - s.conn.offset_s) / self.dt) + 1
        kb = math.floor((s.stop - self.origin - s.conn.offset_s) / self.dt)
        total = 0.0
        step = 200_000
        for a in range(ka, kb + 1, step):
            kk = np.arange(a, min(a + step, kb + 1), dtype=np.int64)
            total += float(self.session_power(s, kk)[0].sum())
        return total * self.dt / 3600.0

    # -- chunks ------------------------------------------------------------------
    def run(self, k_from: int = 0, k_to: int | None = None) -> Iterator[Chunk]:
        """Chunks from grid index 0 (state needs it) to ``k_to``; those ending
        before ``k_from`` are computed but not yielded."""
        k_to = self.kmax if k_to is None else min(k_to, self.kmax)
        reg = self.reg0.copy()
        zi = np.zeros((self.n, 1))
        for k0 in range(0, k_to, self.chunk_len):
            k1 = min(k0 + self.chunk_len, k_to)
            ch, reg, zi = self._chunk(k0, k1, reg, zi)
            if k1 > k_from:
                yield ch

    def _chunk(self, k0: int, k1: int, reg: F64, zi: F64) -> tuple[Chunk, F64, F64]:
        n, m, dt = self.n, k1 - k0, self.dt
        kk = np.arange(k0, k1, dtype=np.int64)
        tg = self.origin + kk * dt
        t = tg[None, :] + self.off[:, None]
        power = np.zeros((n, m))
        current = np.zeros((3, n, m))
        offered = np.zeros((n, m))
        soc = np.full((n, m), np.nan)
        dcv = np.zeros((n, m))
        tx = np.zeros((n, m), np.int64)
        sel = np.nonzero((self.s_first < k1) & (self.s_last >= k0))[0]
        for si in sel:
            s = self.plan.sessions[int(si)]
            c = s.conn
            a = int(max(self.s_first[si], k0)) - k0
            b = int(min(self.s_last[si] + 1, k1)) - k0
            if b <= a:
                continue
            row = c.idx
            p, sc, _ = self.session_power(s, kk[a:b])
            ts = t[row, a:b]
            power[row, a:b] = p
            intx = (ts > s.start) & (ts <= s.stop)
            tx[row, a:b] = np.where(intx, s.transaction_id, 0)
            if c.dc:
                v = s.pack_voltage(sc)
                current[0, row, a:b] = np.where(p > 0, p / v, 0.0)
                dcv[row, a:b] = np.where(intx, v, 0.0)
                soc[row, a:b] = sc * 100.0
                offered[row, a:b] = c.rated_current_a
            else:
                w = np.tile(np.asarray(s.weights)[:, None], (1, b - a))
                for win in s.windows:
                    if win.weights is not None:
                        inw = (ts > win.t0) & (ts <= win.t1)
                        w[:, inw] = np.asarray(win.weights)[:, None]
                per = p / (w.sum(axis=0) * c.nominal_v * POWER_FACTOR)
                current[:, row, a:b] = w * per[None, :]
                off_a = np.full(b - a, min(c.rated_current_a, 32.0))
                for win in s.windows:
                    if win.offered_zero:
                        off_a[(ts > win.t0) & (ts <= win.t1)] = 0.0
                offered[row, a:b] = off_a
        # Per-phase current noise: small, multiplicative, only where current flows.
        rows = np.arange(n)
        for ph in range(3):
            current[ph] *= 1.0 + 0.003 * self._noise(1 + ph, rows, kk)
        current = np.round(current, 3)
        # Voltage: nominal + grid noise + a slow daily drift − drop under load.
        day = np.sin(2.0 * np.pi * ((tg / 3600.0)[None, :] + self.utc_off_h[:, None]) / 24.0)
        voltage = np.empty((3, n, m))
        for ph in range(3):
            voltage[ph] = (
                self.vnom[:, None]
                + 1.2 * self._noise(4 + (ph % 2), rows, kk + 7 * ph)
                - 2.5 * day
                - LINE_RESISTANCE_OHM * current[ph]
            )
        is_dc = self.phases == 0
        dc_noise = 0.5 * self._noise(7, rows[is_dc], kk)
        voltage[0, is_dc] = np.where(dcv[is_dc] > 0, dcv[is_dc] + dc_noise, 0.0)
        voltage = np.round(voltage, 2)
        one = self.phases <= 1
        current[1:, one] = np.nan
        voltage[1:, one] = np.nan
        # Temperature: ambient (daily cycle) + first-order lag of the power.
        amb = 10.0 + 6.0 * np.sin(
            2.0 * np.pi * ((tg / 3600.0)[None, :] + self.utc_off_h[:, None] - 9.0) / 24.0
        )
        gain = HEAT_AT_FULL_POWER_C / self.pmax
        ka = self.thermal_a
        heat, zi = lfilter([1.0 - ka], [1.0, -ka], power * gain[:, None], axis=1, zi=zi)
        temperature = amb + self.amb_off[:, None] + heat + 0.1 * self._noise(6, rows, kk)
        # Register: exact integral of the reported power, carried across chunks.
        # Summing from the carried register, in order, makes the values independent
        # of where chunks begin (reg + cumsum(x) would round differently).
        steps = np.concatenate((reg[:, None], power * (dt / 3600.0)), axis=1)
        energy_true = np.cumsum(steps, axis=1)[:, 1:]
        reg_in, reg = reg, energy_true[:, -1].copy()
        ch = Chunk(
            k0=k0,
            k1=k1,
            t=t,
            ts=t.copy(),
            emit=np.ones((n, m), np.bool_),
            energy=energy_true.copy(),
            energy_true=energy_true,
            power=power,
            current=current,
            voltage=voltage,
            temperature=temperature,
            soc=np.round(soc, 2),
            offered=np.round(offered, 1),
            tx=tx,
        )
        self._apply_reporting(ch, reg_in)
        ch.temperature = np.round(ch.temperature, 2)
        ch.ts = np.round(ch.ts, 3)
        return ch, reg, zi

    # -- reporting and delivery effects -----------------------------------------------
    def _apply_reporting(self, ch: Chunk, reg_in: F64) -> None:
        t_lo = float(ch.t.min())
        t_hi = float(ch.t.max())
        for fi, f in enumerate(self.plan.faults):
            tail = 3600.0 if f.name == "over_temperature" else 0.0
            if f.end + tail < t_lo or f.start > t_hi:
                continue
            p = f.params
            for row in f.conns:
                t = ch.t[row]
                inw = (t > f.start) & (t <= f.end)
                name = f.name
                if name in ("meter_stuck", "meter_regression"):
                    if fi not in self._stuck:
                        before = np.nonzero(t <= f.start)[0]
                        # the register at the last sample before the fault: in this
                        # chunk, or the value carried in from the previous one
                        self._stuck[fi] = (
                            float(ch.energy_true[row, before[-1]])
                            if before.size
                            else float(reg_in[row])
                        )
                    base = self._stuck[fi]
                    if name == "meter_stuck":
                        ch.energy[row, inw] = base
                    else:
                        drop = min(p.get("drop_wh", 5000.0), base)
                        ch.energy[row, inw] -= drop
                elif name == "meter_mismatch":
                    ch.power[row, inw] = np.round(ch.power[row, inw] * p.get("factor", 0.5), 2)
                elif name == "meter_unit_error":
                    ch.energy[row, inw] /= 1000.0
                elif name == "over_temperature":
                    rise = p.get("rise_c", 55.0)
                    d = f.end - f.start
                    ramp = np.clip((t - f.start) / (0.1 * d), 0.0, 1.0)
                    after = t > f.end
                    extra = np.where(inw, rise * ramp, 0.0)
                    extra = np.where(after, rise * np.exp(-(t - f.end) / THERMAL_TAU_S), extra)
                    ch.temperature[row] += extra
                elif name == "voltage_out_of_band":
                    dv = p.get("offset_pct", 13.0) / 100.0 * self.vnom[row]
                    ph = int(p.get("phase", 0.0))
                    sel = slice(None) if ph == 0 else slice(ph - 1, ph)
                    v = ch.voltage[sel, row, inw]
                    # an open DC output (0 V) stays at 0 V
                    ch.voltage[sel, row, inw] = np.where(v > 0, v + dv, v)
                elif name == "phase_loss":
                    ph = int(p.get("phase", 3)) - 1
                    # a dead phase reads a few volts induced from its neighbours
                    v = ch.voltage[ph, row, inw]
                    ch.voltage[ph, row, inw] = np.round(np.abs(v - self.vnom[row]) + 0.5, 2)
                elif name == "clock_skew":
                    ch.ts[row, inw] += p.get("offset_s", 900.0)
                elif name in ("stale_telemetry", "charger_offline"):
                    ch.emit[row, inw] = False
        by_charger = self.rows_of
        for ev in self.plan.normals:
            # only these two silence the meter; the others are status or format cases
            if ev.name not in ("reboot", "telemetry_gap") or ev.end < t_lo or ev.start > t_hi:
                continue
            rows = (
                by_charger[ev.charger]
                if ev.connector is None
                else [by_charger[ev.charger][ev.connector - 1]]
            )
            for row in rows:
                t = ch.t[row]
                ch.emit[row, (t > ev.start) & (t <= ev.end)] = False
