"""The public face of the simulator: :class:`Simulation`."""

from __future__ import annotations

__all__ = ["Simulation"]

import math
from collections.abc import Iterable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import IO, Any

import numpy as np
import orjson
import yaml
from numpy.typing import NDArray

from chargewatch.model.batch import METER_FIELDS, MeterBatch
from chargewatch.model.fleet import Fleet
from chargewatch.simulator import native, ocpp16
from chargewatch.simulator.fault_models import ERROR_CODE_FAULTS
from chargewatch.simulator.native import Msg
from chargewatch.simulator.plan import Plan, build_plan
from chargewatch.simulator.scenarios import SimConfig
from chargewatch.simulator.timeline import Ev, build_events, down_intervals
from chargewatch.simulator.timeseries import Chunk, Engine
from chargewatch.simulator.truth import FaultTruth, NormalTruth, SessionTruth, Truth


class Simulation:
    """A seeded fleet simulation. Pure: no I/O except the ``write_*`` helpers.

    Construction plans the whole run (fleet, sessions, faults: cheap); samples
    are generated on demand, chunk by chunk, vectorised over all connectors.
    """

    def __init__(self, config: SimConfig) -> None:
        self.config = config
        self.plan: Plan = build_plan(config)
        self.engine = Engine(self.plan)
        rng = np.random.default_rng([config.seed & 0xFFFFFFFF, 11])
        n_ch = len(self.plan.chargers)
        # Network latency charger → broker, per charger (cellular modems are slow).
        self.latency = rng.uniform(0.02, 0.3, n_ch).round(3)
        self.hb_offset = rng.uniform(0.0, config.heartbeat_interval, n_ch)
        self.hb_interval = np.full(n_ch, config.heartbeat_interval)
        if config.heartbeat_intervals:
            # Own stream: a fleet without per-charger intervals keeps its old offsets.
            rh = np.random.default_rng([config.seed & 0xFFFFFFFF, 14])
            self.hb_interval = rh.choice(np.asarray(config.heartbeat_intervals), n_ch)
            self.hb_offset = rh.uniform(0.0, 1.0, n_ch) * self.hb_interval
        self.hb_quiet: set[int] = set()
        if config.heartbeat_on_inactivity_fraction > 0:
            rq = np.random.default_rng([config.seed & 0xFFFFFFFF, 15])
            draws = rq.random(n_ch)
            self.hb_quiet = {
                i for i in range(n_ch) if draws[i] < config.heartbeat_on_inactivity_fraction
            }
        self._charger_idx = {c.id: i for i, c in enumerate(self.plan.chargers)}
        self.events: list[Ev] = build_events(self.plan, self.latency)
        self._down = down_intervals(self.plan)
        self._skews = [
            (i, f.start, f.end, f.params.get("offset_s", 900.0))
            for i, c in enumerate(self.plan.chargers)
            for f in self.plan.faults
            if f.name == "clock_skew" and f.charger == c.id
        ]
        self._truth: Truth | None = None

    # -- descriptions --------------------------------------------------------------
    def fleet(self) -> Fleet:
        """The simulated chargers as a fleet inventory (rows = ConnectorIndex order)."""
        return self.plan.fleet()

    def write_fleet(self, path: str | Path) -> None:
        """Write the fleet as ``fleet.yaml`` (what ``config.fleet_file.load_fleet`` reads)."""
        doc = {
            "sites": [
                {"id": s.id, "timezone": s.timezone, "name": s.name, "kind": s.kind}
                for s in self.plan.sites
            ],
            "chargers": [
                {
                    "id": c.id,
                    "site": c.site,
                    "connectors": c.connectors,
                    "max_power_w": c.max_power_w,
                    "phases": c.phases,
                    "nominal_voltage_v": c.nominal_voltage_v,
                    "model": c.model,
                }
                for c in self.plan.chargers
            ],
        }
        Path(path).write_text(yaml.safe_dump(doc, sort_keys=False))

    def truth(self) -> Truth:
        """Every session (with its true energy), injected fault and hard normal case.

        The first call integrates every session's power (about a third of the
        cost of generating the samples); the result is cached.
        """
        if self._truth is None:
            self._truth = self._build_truth()
        return self._truth

    def write_truth(self, path: str | Path) -> None:
        self.truth().write(path)

    def _build_truth(self) -> Truth:
        site_of = {c.id: c.site for c in self.plan.chargers}
        sessions = [
            SessionTruth(
                charger=s.conn.charger,
                connector=s.conn.connector,
                site=s.conn.site,
                transaction_id=str(s.transaction_id),
                id_tag=s.id_tag,
                plug_in=s.plug_in,
                start=s.start,
                stop=s.stop,
                unplug=s.unplug,
                full=s.t_full if s.t_full <= s.unplug else None,
                energy_wh=self.engine.session_energy(s),
                idle_s=s.idle_s(),
                soc_start=s.car.soc0,
                soc_target=s.car.soc_target,
                stop_reason=s.stop_reason,
                tags=tuple(s.tags),
                complete=self.config.start <= s.plug_in and s.unplug <= self.config.end,
            )
            for s in self.plan.sessions
        ]
        faults = [
            FaultTruth(
                fault=f.name,
                kind="error_code" if f.name in ERROR_CODE_FAULTS else "telemetry",
                charger=f.charger,
                connector=f.connector,
                site=site_of[f.charger],
                start=f.start,
                end=f.end,
                params=dict(f.params),
            )
            for f in self.plan.faults
        ]
        normals = [
            NormalTruth(e.name, e.charger, e.connector, e.start, e.end) for e in self.plan.normals
        ]
        return Truth(sessions, faults, normals)

    # -- samples -------------------------------------------------------------------
    def _k_range(self, start: float | None, end: float | None) -> tuple[float, float, int]:
        cfg = self.config
        t0 = cfg.start if start is None else max(start, cfg.start)
        t1 = cfg.end if end is None else min(end, cfg.end)
        k_to = min(self.engine.kmax, math.ceil((t1 - cfg.start) / cfg.interval) + 1)
        return t0, t1, k_to

    def chunks(self, start: float | None = None, end: float | None = None) -> Iterator[Chunk]:
        """The raw chunks (all connectors × a block of samples), for custom encoders."""
        t0, _, k_to = self._k_range(start, end)
        k_from = max(0, math.floor((t0 - self.config.start) / self.config.interval) - 1)
        yield from self.engine.run(k_from, k_to)

    def meter_batches(
        self, start: float | None = None, end: float | None = None
    ) -> Iterator[MeterBatch]:
        """Meter samples as the collector's columnar :class:`MeterBatch` (what a
        decoder would produce from :meth:`messages`), one batch per chunk, rows in
        sample-time order. ``conn`` indexes ``ConnectorIndex(self.fleet())``.
        The fastest path: no JSON at all."""
        t0, t1, _ = self._k_range(start, end)
        lat = self.latency[[c.charger_idx for c in self.plan.conns]]
        b = self.config.batch
        for ch in self.chunks(start, end):
            emit = ch.emit & (ch.t >= t0) & (ch.t < t1)
            if b > 1:
                # a batch is received when its last sample is sent
                kk = np.arange(ch.k0, ch.k1)
                last = np.minimum((kk // b + 1) * b - 1, ch.k1 - 1) - ch.k0
                recv = ch.t[:, last] + lat[:, None]
            else:
                recv = ch.t + lat[:, None]
            em = emit.T  # time-major: rows come out in sample-time order
            cols = {
                "energy_wh": ch.energy,
                "power_w": ch.power,
                "current_l1_a": ch.current[0],
                "current_l2_a": ch.current[1],
                "current_l3_a": ch.current[2],
                "voltage_l1_v": ch.voltage[0],
                "voltage_l2_v": ch.voltage[1],
                "voltage_l3_v": ch.voltage[2],
                "temperature_c": ch.temperature,
                "soc_pct": ch.soc,
                "offered_a": ch.offered,
            }
            m, n = em.shape
            full = np.empty((m, n, len(METER_FIELDS)))
            for i, f in enumerate(METER_FIELDS):
                full[:, :, i] = cols[f].T
            flat = em.ravel()
            values = full.reshape(m * n, len(METER_FIELDS))
            conn = np.tile(np.arange(n, dtype=np.int32), m)
            if flat.all():
                yield MeterBatch(conn, ch.ts.T.ravel(), recv.T.ravel(), values)
            else:
                yield MeterBatch(
                    conn[flat], ch.ts.T.ravel()[flat], recv.T.ravel()[flat], values[flat]
                )

    # -- messages ------------------------------------------------------------------
    def messages(self, start: float | None = None, end: float | None = None) -> Iterator[Msg]:
        """(receive time, topic, payload) in receive-time order over [start, end)
        (default: the configured range), in the configured protocol and batch size.
        Retained topics: ``ev/<charger>/online``."""
        cfg = self.config
        t0, t1, _ = self._k_range(start, end)
        ocpp = cfg.protocol == "ocpp1.6"
        chargers = self.plan.chargers
        conns = self.plan.conns
        by_t = sorted(self.events, key=lambda e: e.t)
        fill_i = 0
        emit_i = 0
        prev_last = self.engine.reg0.copy()
        meter_start: dict[int, tuple[float, float]] = {}  # transaction → (register, ts)
        carry: list[Msg] = []
        row_base: dict[int, float] = {}  # register-restart rows: the latest transaction's start
        quiet = _Quiet()  # heartbeats skipped by chargers that heartbeat on inactivity only
        # From the first chunk: transaction messages need the register before t0.
        for ch in self.engine.run(0, self._k_range(start, end)[2]):
            c_lo = cfg.start + ch.k0 * cfg.interval
            c_hi = cfg.start + ch.k1 * cfg.interval
            last_chunk = ch.k1 >= self.engine.kmax or c_hi >= t1
            # 1. registers for the transaction events raised in this chunk
            while fill_i < len(by_t) and (by_t[fill_i].t < c_hi or last_chunk):
                ev = by_t[fill_i]
                fill_i += 1
                if ev.row < 0 or ev.t >= t1 + cfg.interval:
                    continue
                j = math.floor((ev.t - cfg.start - conns[ev.row].offset_s) / cfg.interval)
                if j < 0:
                    ev.meter_wh = self._register_before_start(ev, j)
                elif j < ch.k0:
                    ev.meter_wh = float(prev_last[ev.row])
                else:
                    ev.meter_wh = float(ch.energy[ev.row, min(j, ch.k1 - 1) - ch.k0])
                if ev.kind == "tx_start" and ev.session is not None:
                    meter_start[ev.session.transaction_id] = (ev.meter_wh, ev.ts)
            prev_last = ch.energy[:, -1].copy()
            if c_hi <= t0:
                continue
            out: list[Msg] = []
            # 2. discrete events received in this chunk
            while emit_i < len(self.events) and (self.events[emit_i].recv < c_hi or last_chunk):
                ev = self.events[emit_i]
                emit_i += 1
                if not t0 <= ev.recv < t1:
                    continue
                cid = chargers[ev.charger].id
                if ocpp:
                    spec = chargers[ev.charger]
                    vendor, _, model = spec.model.partition(" ")
                    ms = (
                        meter_start.get(ev.session.transaction_id, (0.0, 0.0))
                        if ev.session
                        else (0.0, 0.0)
                    )
                    if ev.row >= 0 and conns[ev.row].tx_register and ev.session is not None:
                        # The register restarts at 0 with each transaction.
                        ev = replace(ev, meter_wh=ev.meter_wh - ms[0])
                        ms = (0.0, ms[1])
                    out.extend(
                        ocpp16.event_frames(
                            ev,
                            cid,
                            vendor=vendor,
                            model=model,
                            heartbeat_interval=float(self.hb_interval[ev.charger]),
                            csms=cfg.ocpp_csms_results,
                            meter_start=ms,
                        )
                    )  # fmt: skip
                else:
                    out.extend(native.event_messages(ev, cid))
            # 3. heartbeats
            out.extend(self._heartbeats(c_lo, c_hi, ocpp))
            # 4. meter samples
            if ocpp:
                view, clock = self._ocpp_view(ch, meter_start, row_base)
                out.extend(ocpp16.meter_frames(view, conns, self.latency, cfg.batch, clock))
            else:
                out.extend(native.meter_messages(ch, conns, self.latency, cfg.batch))
            out.extend(carry)
            out.sort(key=_recv)
            # Messages received after this chunk's end wait for the next chunk, so
            # the stream is in receive order across chunk boundaries too.
            cut = len(out) if last_chunk else _bisect_recv(out, c_hi)
            carry = out[cut:]
            for msg in out[:cut]:
                if t0 <= msg[0] < t1 and not (ocpp and self._idle_heartbeat(msg, quiet)):
                    yield msg
            if last_chunk:
                break

    def _idle_heartbeat(self, msg: Msg, quiet: _Quiet) -> bool:
        """True for a Heartbeat (or its CALLRESULT) that a charger flagged
        ``hb_on_inactivity`` does not send: it had another exchange within its
        HeartbeatInterval (OCPP 1.6: "interval of inactivity ... after which the
        Charge Point should send a Heartbeat.req"). Approximate: the heartbeat
        grid stays fixed, a beat is just left out."""
        recv, topic, payload = msg
        charger = topic.split("/")[2]
        ci = self._charger_idx.get(charger)
        if ci is None or ci not in self.hb_quiet:
            return False
        if topic.endswith("/csms"):
            return (
                payload.startswith(b'[3,"hb') and (charger, payload.split(b'"')[1]) in quiet.dropped
            )
        busy = recv - quiet.last.get(charger, -math.inf) < self.hb_interval[ci]
        if payload.startswith(b'[2,"hb') and busy:
            quiet.dropped.add((charger, payload.split(b'"')[1]))
            return True
        quiet.last[charger] = recv
        return False

    def _ocpp_view(
        self,
        ch: Chunk,
        meter_start: dict[int, tuple[float, float]],
        row_base: dict[int, float],
    ) -> tuple[Chunk, NDArray[np.bool_] | None]:
        """The chunk as an OCPP charger reports it: registers restarted per
        transaction where the charger does that, and (``idle_meter_interval``)
        idle connectors sampled only at clock-aligned times. Returns the view and
        the clock-aligned mask (None when every sample is periodic)."""
        cfg = self.config
        energy = ch.energy
        restart = [c.idx for c in self.plan.conns if c.tx_register]
        if restart:
            energy = ch.energy.copy()
            for r in restart:
                energy[r] -= self._tx_bases(ch, r, meter_start, row_base)
        if cfg.idle_meter_interval <= 0:
            return (replace(ch, energy=energy) if restart else ch), None
        # The first sample at or after each multiple of ClockAlignedDataInterval.
        every = cfg.idle_meter_interval
        clock = np.floor(ch.t / every) != np.floor((ch.t - cfg.interval) / every)
        clock &= ch.tx == 0
        emit = ch.emit & ((ch.tx != 0) | clock)
        return replace(ch, energy=energy, emit=emit), clock

    @staticmethod
    def _tx_bases(
        ch: Chunk,
        row: int,
        meter_start: dict[int, tuple[float, float]],
        row_base: dict[int, float],
    ) -> NDArray[np.float64]:
        """Per sample, the register at the start of the connector's latest
        transaction: what a register-restarting charger counts from. Before its
        first transaction such a charger reads 0."""
        tx = ch.tx[row]
        out = np.empty(tx.shape[0])
        cuts = np.concatenate(([0], np.nonzero(np.diff(tx))[0] + 1, [tx.shape[0]]))
        for a, b in zip(cuts[:-1].tolist(), cuts[1:].tolist(), strict=True):
            tid = int(tx[a])
            if tid:
                row_base[row] = meter_start.get(tid, (float(ch.energy[row, a]), 0.0))[0]
            out[a:b] = row_base.setdefault(row, float(ch.energy[row, a]))
        return out

    def _register_before_start(self, ev: Ev, j: int) -> float:
        """The register at grid index ``j < 0``, before the simulation's first sample.

        ``reg0`` is the register just before sample 0; going back, subtract what
        the session under way (at most one per connector) delivered since ``j``.
        """
        reg0 = float(self.engine.reg0[ev.row])
        s = ev.session
        if s is None or j >= -1:
            return reg0
        kk = np.arange(j + 1, 0, dtype=np.int64)
        delivered = float(self.engine.session_power(s, kk)[0].sum()) * self.config.interval / 3600
        return reg0 - delivered

    def _heartbeats(self, lo: float, hi: float, ocpp: bool) -> list[Msg]:
        cfg = self.config
        h = self.hb_interval
        base = cfg.start + self.hb_offset
        j0 = np.ceil((lo - base) / h).astype(np.int64)
        j1 = np.ceil((hi - base) / h).astype(np.int64)
        out: list[Msg] = []
        for ci in np.nonzero(j1 > j0)[0].tolist():
            cid = self.plan.chargers[ci].id
            for j in range(int(j0[ci]), int(j1[ci])):
                t = float(base[ci] + j * h[ci])
                if t <= cfg.start + 1.0:
                    continue  # the boot sequence comes first
                if any(c == ci and a <= t < b for c, a, b in self._down):
                    continue
                ts = t + sum(o for c, a, b, o in self._skews if c == ci and a < t <= b)
                recv = t + float(self.latency[ci])
                if ocpp:
                    out.extend(ocpp16.heartbeat_frames(cid, ts, recv, j, cfg.ocpp_csms_results))
                else:
                    out.append(native.heartbeat_message(cid, ts, recv))
        return out

    # -- captures ----------------------------------------------------------------------
    def write_capture(
        self, path: str | Path, start: float | None = None, end: float | None = None
    ) -> int:
        """Write :meth:`messages` as a capture file (JSON Lines); returns the count."""
        with open(path, "wb") as fh:
            return write_capture(fh, self.messages(start, end))


def _capture_lines(buf: list[Msg]) -> bytes:
    # Payloads are already JSON, so they are spliced in, not re-encoded; receive
    # times are formatted vectorised per block of messages.
    stamps = ocpp16.iso_array(np.array([m[0] for m in buf]))
    return b"".join(
        b'{"ts":"%s","topic":"%s","payload":%s}\n' % (s.encode(), m[1].encode(), m[2])
        for s, m in zip(stamps, buf, strict=True)
    )


def write_capture(fh: IO[bytes], messages: Iterable[Msg], block: int = 20_000) -> int:
    """Capture lines ``{"ts": RFC 3339 receive time, "topic": .., "payload": <JSON>}``."""
    n = 0
    buf: list[Msg] = []
    for msg in messages:
        buf.append(msg)
        n += 1
        if len(buf) >= block:
            fh.write(_capture_lines(buf))
            buf.clear()
    if buf:
        fh.write(_capture_lines(buf))
    return n


def tee_capture(fh: IO[bytes], messages: Iterable[Msg], block: int = 1000) -> Iterator[Msg]:
    """Yield ``messages`` unchanged while writing them to a capture."""
    buf: list[Msg] = []
    for msg in messages:
        buf.append(msg)
        yield msg
        if len(buf) >= block:
            fh.write(_capture_lines(buf))
            buf.clear()
    if buf:
        fh.write(_capture_lines(buf))


class _Quiet:
    """Per stream: each charger's last message to the CSMS, and the heartbeats left out."""

    def __init__(self) -> None:
        self.last: dict[str, float] = {}
        self.dropped: set[tuple[str, bytes]] = set()  # (charger, message id)


def _recv(m: Msg) -> float:
    return m[0]


def _bisect_recv(msgs: list[Msg], t: float) -> int:
    lo, hi = 0, len(msgs)
    while lo < hi:
        mid = (lo + hi) // 2
        if msgs[mid][0] < t:
            lo = mid + 1
        else:
            hi = mid
    return lo


def read_capture(path: str | Path) -> list[dict[str, Any]]:
    """Read a capture back (tests, small files)."""
    with open(path, "rb") as fh:
        return [orjson.loads(line) for line in fh if line.strip()]
