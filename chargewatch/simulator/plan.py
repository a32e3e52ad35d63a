"""The simulated fleet and its plan: chargers, sessions, faults and normal events.

Planning is cheap (a few Python objects per session) and happens once per
:class:`~chargewatch.simulator.timeseries.Simulation`; the per-sample work happens
in the engine, vectorised. Everything is drawn from generators seeded by
``(seed, purpose, index)``, so adding a charger does not reshuffle the others.
"""

from __future__ import annotations

__all__ = [
    "OCPP_QUIRKS",
    "Car",
    "ConnInfo",
    "NormalEvent",
    "Plan",
    "PlannedFault",
    "Session",
    "Window",
]

import itertools
import logging
import math
import zoneinfo
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

import numpy as np
from numpy.typing import NDArray

from chargewatch.model.fleet import ChargerSpec, Fleet, SiteSpec
from chargewatch.simulator.fault_models import (
    ERROR_CODE_FAULTS,
    TELEMETRY_FAULTS,
    FaultSpec,
    fault_kind,
)
from chargewatch.simulator.scenarios import SimConfig

F64 = NDArray[np.float64]
log = logging.getLogger("chargewatch.simulator")

POWER_FACTOR = 0.99  # onboard chargers run with PFC; close to 1
AC_EFFICIENCY = 0.9  # grid → battery, onboard charger + battery losses
DC_EFFICIENCY = 0.95
AC_TAPER_SOC = 0.92  # AC cars taper only close to full (BMS balancing)
WARM_START_S = 12 * 3600.0  # arrivals begin this long before the start: a run opens mid-activity

# Sessions starting per hour of local day, from two real public datasets
# (Caltech ACN JPL workplace, 2021; Norwegian residential,
# 2018-2020); "public" and "highway" are flatter day shapes.
_WORKPLACE = [5, 7, 1, 0, 4, 14, 72, 106, 272, 185, 177, 126, 120, 156, 165, 112, 117, 82,
              118, 124, 80, 39, 14, 18]  # fmt: skip
_RESIDENTIAL = [102, 40, 25, 17, 7, 9, 19, 79, 81, 66, 116, 173, 202, 294, 408, 787, 966, 608,
                584, 676, 583, 463, 374, 199]  # fmt: skip
_PUBLIC = [2, 1, 1, 1, 1, 3, 6, 10, 12, 12, 12, 13, 14, 13, 12, 12, 13, 14, 13, 11, 9, 7, 5, 3]
_HIGHWAY = [3, 2, 1, 1, 2, 4, 7, 10, 11, 12, 13, 14, 14, 13, 13, 13, 14, 14, 13, 11, 9, 7, 5, 4]


@dataclass(frozen=True, slots=True)
class SiteType:
    name: str
    shape: tuple[float, ...]  # relative arrivals per local hour
    sessions_per_day: float  # per connector
    dwell_mu: float  # log-hours, lognormal dwell (fitted to the datasets above)
    dwell_sigma: float
    # The fleet file's site kind (model.fleet.SITE_KINDS): what alert defaults key
    # on, e.g. no IdleBlocking page for a car plugged in all night at home.
    kind: str = "public"


SITE_TYPES: tuple[SiteType, ...] = (
    SiteType("residential", tuple(map(float, _RESIDENTIAL)), 1.0, 1.8, 1.0, "residential"),
    SiteType("workplace", tuple(map(float, _WORKPLACE)), 1.6, 0.65, 1.0, "workplace"),
    SiteType("public", tuple(map(float, _PUBLIC)), 3.0, 0.2, 0.7),
    SiteType("highway", tuple(map(float, _HIGHWAY)), 10.0, -1.0, 0.5),
)
_ZONES = ("Europe/Oslo", "Europe/Berlin", "America/Los_Angeles", "Europe/London", "Asia/Tokyo")
_VENDORS = (("Alfen", "Eve Single"), ("ABB", "Terra AC"), ("Wallbox", "Pulsar Plus"),
            ("Easee", "Charge"), ("Kempower", "S-Series"), ("Growatt", "THOR 22AS"))  # fmt: skip


#: How real chargers bend OCPP 1.6 without being wrong about the energy
#: (field reports cited per quirk, docs/simulator.md): the register with neither
#: measurand nor unit (spec defaults: Energy.Active.Import.Register in Wh; steve
#: fixture), the register missing from some samples (ABB Terra, lbbrhzn/ocpp#374),
#: power per phase instead of a total (Growatt, #1709), timestamps with the local
#: offset instead of Z (Growatt THOR, #1838).
OCPP_QUIRKS: tuple[str, ...] = (
    "implicit_register",
    "register_dropout",
    "per_phase_power",
    "local_offset",
)


@dataclass(frozen=True, slots=True)
class ConnInfo:
    """One connector, with the row it gets in every per-connector array (``idx``)."""

    idx: int
    charger: str
    charger_idx: int
    connector: int
    site: str
    site_type: SiteType
    phases: int  # 0 DC, 1 or 3 AC
    max_power_w: float
    nominal_v: float
    rated_current_a: float  # per phase (AC), max output current (DC)
    offset_s: float  # the charger's sampling phase within one interval
    utc_offset_h: float  # for the time-of-day shape
    kw_power: bool  # OCPP: reports Power.Active.Import in kW
    quirk: str = ""  # OCPP: one of OCPP_QUIRKS, or ""
    tx_register: bool = False  # OCPP: the register restarts at 0 every transaction

    @property
    def dc(self) -> bool:
        return self.phases == 0


@dataclass(frozen=True, slots=True)
class Car:
    capacity_wh: float
    soc0: float  # 0..1 at plug-in
    soc_target: float  # the car stops charging here (its charge limit)
    phases: int  # onboard charger phases (AC)
    max_current_a: float  # onboard charger per-phase current limit (AC)
    dc_max_w: float  # peak DC power the battery accepts
    pack_v: float  # nominal pack voltage (400 V or 800 V class)


@dataclass(slots=True)
class Window:
    """A stretch of a session in which delivery differs from the car's curve.

    ``rate`` scales both the charging progress and the power (0 = paused);
    ``weights`` replace the per-phase current split; ``osc`` = (period_s, depth)
    modulates the power only; ``status`` is what the connector reports meanwhile
    (None: no status change); ``offered_zero`` drops the offered current.
    """

    t0: float
    t1: float
    rate: float = 1.0
    weights: tuple[float, float, float] | None = None
    osc: tuple[float, float] | None = None
    status: str | None = None
    offered_zero: bool = False


@dataclass(slots=True)
class Session:
    conn: ConnInfo
    plug_in: float
    start: float  # transaction start (authorised)
    stop: float  # transaction stop
    unplug: float
    stop_reason: str
    id_tag: str
    car: Car
    weights: tuple[float, float, float]
    windows: list[Window] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)
    transaction_id: int = 0
    # Derived by finalize(): the charging clock and the SoC curve.
    edges: F64 = field(default_factory=lambda: np.zeros(0))
    rates: F64 = field(default_factory=lambda: np.zeros(0))
    tau_b: F64 = field(default_factory=lambda: np.zeros(0))
    s_grid: F64 = field(default_factory=lambda: np.zeros(0))
    t_of_s: F64 = field(default_factory=lambda: np.zeros(0))
    t_full: float = math.inf
    statuses: list[tuple[float, str]] = field(default_factory=list)

    # -- the car's acceptance curve ------------------------------------------------
    def p_limit_w(self) -> float:
        c = self.conn
        if c.dc:
            return min(c.max_power_w, self.car.dc_max_w)
        lines = min(c.phases, self.car.phases)
        amps = min(c.rated_current_a, self.car.max_current_a)
        return amps * c.nominal_v * POWER_FACTOR * lines

    def curve_w(self, s: F64) -> F64:
        """Power the car accepts at SoC ``s`` (no faults, no pauses)."""
        if self.conn.dc:
            # CC up to ~50 %, then the BMS lowers the current (CV-like) and tapers
            # hard above 80 % — the shape of published DC charging curves.
            frac = np.where(
                s < 0.5,
                1.0,
                np.where(s < 0.8, 1.0 - (s - 0.5) / 0.3 * 0.45, 0.55 * np.exp(-(s - 0.8) / 0.08)),
            )
            out: F64 = np.minimum(self.conn.max_power_w, self.car.dc_max_w * frac)
            return out
        taper = np.clip((1.0 - s) / (1.0 - AC_TAPER_SOC), 0.12, 1.0)
        return self.p_limit_w() * taper

    def pack_voltage(self, s: F64) -> F64:
        out: F64 = self.car.pack_v * (0.9 + 0.12 * s)
        return out

    # -- derived timeline ----------------------------------------------------------
    def finalize(self) -> None:
        """Compute the charging clock (τ), the full time and the status timeline."""
        eff = DC_EFFICIENCY if self.conn.dc else AC_EFFICIENCY
        self.s_grid = np.linspace(self.car.soc0, self.car.soc_target, 257)
        p = self.curve_w(self.s_grid)
        # seconds of full-rate charging per unit SoC: battery Wh / (η P) * 3600
        dt_ds = self.car.capacity_wh * 3600.0 / (eff * p)
        ds = np.diff(self.s_grid)
        self.t_of_s = np.concatenate(([0.0], np.cumsum(0.5 * (dt_ds[1:] + dt_ds[:-1]) * ds)))
        edges = {self.start, self.stop}
        for w in self.windows:
            for t in (w.t0, w.t1):
                if self.start < t < self.stop:
                    edges.add(t)
        e = np.array(sorted(edges))
        mids = 0.5 * (e[1:] + e[:-1])
        rates = np.ones(mids.shape[0])
        for w in self.windows:
            rates[(mids >= w.t0) & (mids < w.t1)] *= w.rate
        self.edges = e
        self.rates = rates
        self.tau_b = np.concatenate(([0.0], np.cumsum(rates * np.diff(e))))
        tau_full = float(self.t_of_s[-1])
        j = int(np.searchsorted(self.tau_b, tau_full))
        if j == 0:
            self.t_full = self.start
        elif j >= self.tau_b.shape[0]:
            self.t_full = math.inf
        else:
            self.t_full = float(e[j - 1] + (tau_full - self.tau_b[j - 1]) / rates[j - 1])
        st: list[tuple[float, str]] = [(self.plug_in, "Preparing"), (self.start, "Charging")]
        for w in sorted(self.windows, key=lambda w: w.t0):
            if w.status and w.t0 < min(self.t_full, self.stop):
                st.append((w.t0, w.status))
                st.append((min(w.t1, self.stop), "Charging"))
        if self.t_full < self.stop:
            st.append((self.t_full, "SuspendedEV"))
        if self.stop < self.unplug:
            st.append((self.stop, "Finishing"))
        st.append((self.unplug, "Available"))
        st.sort(key=lambda x: x[0])
        # Later statuses win at equal times; drop entries superseded by a
        # later status at the same time and repeats.
        out: list[tuple[float, str]] = []
        for t, s in st:
            if out and out[-1][0] == t:
                out[-1] = (t, s)
            elif not out or out[-1][1] != s:
                out.append((t, s))
        self.statuses = out

    def tau(self, t: F64) -> F64:
        out: F64 = np.interp(t, self.edges, self.tau_b)
        return out

    def idle_s(self) -> float:
        """Time plugged in after the car was full (0 if it left before)."""
        return max(0.0, self.unplug - self.t_full) if math.isfinite(self.t_full) else 0.0


@dataclass(frozen=True, slots=True)
class PlannedFault:
    """A fault placed on the timeline (absolute epoch seconds)."""

    name: str
    charger: str
    connector: int | None  # None: charger-wide
    start: float
    end: float
    params: dict[str, float]
    conns: tuple[int, ...]  # affected connector rows


@dataclass(frozen=True, slots=True)
class NormalEvent:
    """A hard normal case that is not a session attribute (reboot, telemetry gap)."""

    name: str
    charger: str
    connector: int | None
    start: float
    end: float


@dataclass
class Plan:
    config: SimConfig
    sites: list[SiteSpec]
    chargers: list[ChargerSpec]
    conns: list[ConnInfo]
    sessions: list[Session]
    faults: list[PlannedFault]
    normals: list[NormalEvent]

    def fleet(self) -> Fleet:
        return Fleet({s.id: s for s in self.sites}, {c.id: c for c in self.chargers})


def _rng(seed: int, *purpose: int) -> np.random.Generator:
    return np.random.default_rng([seed & 0xFFFFFFFF, *purpose])


# ---------------------------------------------------------------------------------
# Fleet
# ---------------------------------------------------------------------------------


def build_fleet(cfg: SimConfig) -> tuple[list[SiteSpec], list[ChargerSpec], list[ConnInfo]]:
    rs = _rng(cfg.seed, 1)
    sites: list[SiteSpec] = []
    site_types: list[SiteType] = []
    offsets: list[float] = []
    when = datetime.fromtimestamp(cfg.start, UTC)
    for i in range(cfg.sites):
        tz = _ZONES[i % len(_ZONES)]
        st = SITE_TYPES[i % len(SITE_TYPES)] if not cfg.dc_only else SITE_TYPES[3]
        sites.append(
            SiteSpec(id=f"site{i + 1:02d}", timezone=tz, name=f"{st.name} {i + 1}", kind=st.kind)
        )
        site_types.append(st)
        off = zoneinfo.ZoneInfo(tz).utcoffset(when)
        offsets.append(off.total_seconds() / 3600.0 if off else 0.0)
    chargers: list[ChargerSpec] = []
    conns: list[ConnInfo] = []
    for i in range(cfg.chargers):
        r = _rng(cfg.seed, 2, i)
        si = int(rs.integers(cfg.sites)) if i >= cfg.sites else i  # every site gets one
        st = site_types[si]
        dc_p = 0.8 if st.name == "highway" else cfg.dc_fraction
        cid = f"CP{i + 1:04d}"
        vendor, model = _VENDORS[int(r.integers(len(_VENDORS)))]
        if cfg.dc_only or r.random() < dc_p:
            pmax = float(r.choice([50_000.0, 150_000.0, 300_000.0], p=[0.3, 0.5, 0.2]))
            phases, vnom, n_conn = 0, (800.0 if pmax >= 300_000 else 400.0), int(r.integers(1, 3))
            model = "HPC" if pmax >= 150_000 else "DC50"
        elif r.random() < cfg.single_phase_charger_fraction:
            pmax, phases, vnom, n_conn = 7_400.0, 1, 230.0, 1
        else:
            pmax = float(r.choice([11_000.0, 22_000.0], p=[0.4, 0.6]))
            phases, vnom, n_conn = 3, 230.0, int(r.choice([1, 2], p=[0.6, 0.4]))
        spec = ChargerSpec(
            id=cid,
            site=sites[si].id,
            connectors=n_conn,
            max_power_w=pmax,
            phases=phases,
            nominal_voltage_v=vnom,
            model=f"{vendor} {model}",
        )
        chargers.append(spec)
        offset = float(r.random()) * cfg.interval
        kw = bool(r.random() < cfg.kw_power_fraction)
        rq = _rng(cfg.seed, 12, i)  # own stream: quirks do not reshuffle the fleet
        quirk = ""
        if rq.random() < cfg.ocpp_quirk_fraction:
            options = [q for q in OCPP_QUIRKS if q != "per_phase_power" or phases == 3]
            quirk = options[int(rq.integers(len(options)))]
        # Own stream again, drawn only when asked for: older seeds stay as they were.
        tx_register = (
            cfg.protocol == "ocpp1.6"
            and cfg.register_restart_fraction > 0
            and _rng(cfg.seed, 13, i).random() < cfg.register_restart_fraction
        )
        for c in range(1, n_conn + 1):
            conns.append(
                ConnInfo(
                    idx=len(conns),
                    charger=cid,
                    charger_idx=i,
                    connector=c,
                    site=sites[si].id,
                    site_type=st,
                    phases=phases,
                    max_power_w=pmax,
                    nominal_v=vnom,
                    rated_current_a=(pmax / vnom if phases == 0 else pmax / (phases * vnom)),
                    offset_s=offset,
                    utc_offset_h=offsets[si],
                    kw_power=kw,
                    quirk=quirk,
                    tx_register=tx_register,
                )
            )
    return sites, chargers, conns


# ---------------------------------------------------------------------------------
# Sessions
# ---------------------------------------------------------------------------------


def _car(r: np.random.Generator, cfg: SimConfig, conn: ConnInfo, high_soc: bool) -> Car:
    cap = float(r.choice([40e3, 58e3, 64e3, 77e3, 82e3, 100e3]))
    full = r.random() < cfg.full_charge_fraction or high_soc
    if conn.dc:
        target = 1.0 if full else float(r.uniform(0.78, 0.85))
    else:
        target = 1.0 if full else float(r.choice([0.8, 0.9, 1.0]))
    if high_soc:
        soc0 = float(r.uniform(0.75, 0.92))
    else:
        # The energy a driver needs, lognormal: AC median 10 kWh, 90th percentile
        # ~32 kWh, as delivered in the ACN (6.8 / 32.8) and Norwegian (9 / 26)
        # datasets; DC stops are bigger. The arrival SoC follows from it.
        med, sigma = (28e3, 0.5) if conn.dc else (10e3, 0.9)
        need = float(np.clip(r.lognormal(math.log(med), sigma), 500.0, 0.9 * cap))
        soc0 = max(0.05, target - need / cap)
    target = max(target, soc0 + 0.02)
    one_phase = r.random() < cfg.single_phase_car_fraction
    pack = 800.0 if (r.random() < 0.25 and cap >= 77e3) else 400.0
    return Car(
        capacity_wh=cap,
        soc0=soc0,
        soc_target=min(target, 1.0),
        phases=1 if one_phase else 3,
        max_current_a=float(r.choice([16.0, 32.0], p=[0.6, 0.4])),
        dc_max_w=float(r.choice([50e3, 120e3, 170e3, 250e3]) if pack < 800 else 250e3),
        pack_v=pack,
    )


def _next_arrival(r: np.random.Generator, conn: ConnInfo, rate_mult: float, t: float) -> float:
    """Next arrival after ``t`` of a Poisson process with a time-of-day rate (thinning)."""
    st = conn.site_type
    shape = np.asarray(st.shape)
    per_hour = st.sessions_per_day * rate_mult / 24.0 * shape / shape.mean()
    lam_max = float(per_hour.max()) / 3600.0
    if lam_max <= 0:
        return math.inf
    while True:
        t += float(r.exponential(1.0 / lam_max))
        hour = int(((t / 3600.0) + conn.utc_offset_h) % 24.0)
        if r.random() * lam_max * 3600.0 <= per_hour[hour]:
            return t


def _session(r: np.random.Generator, cfg: SimConfig, conn: ConnInfo, plug_in: float) -> Session:
    high = bool(r.random() < cfg.high_soc_fraction)
    car = _car(r, cfg, conn, high)
    start = plug_in + float(r.uniform(5.0, 60.0))  # cable lock, EV handshake, RFID
    weights = (1.0, 1.0, 1.0) if car.phases == 3 else (1.0, 0.0, 0.0)
    sess = Session(conn, plug_in, start, start, start, "EVDisconnected", "", car, weights)
    sess.stop = sess.unplug = start + 1e9  # provisional, to find the unpaused full time
    sess.finalize()
    t_full0 = sess.t_full
    if conn.dc:
        unplug = t_full0 + float(r.uniform(60.0, 600.0))
        if r.random() < 0.3:  # drivers often leave before the car is full
            unplug = start + (t_full0 - start) * float(r.uniform(0.5, 0.95))
    else:
        st = conn.site_type
        dwell_h = float(np.clip(r.lognormal(st.dwell_mu, st.dwell_sigma), 0.1, 30.0))
        unplug = plug_in + dwell_h * 3600.0
    tags: list[str] = []
    horizon = min(t_full0, unplug)
    if r.random() < cfg.suspended_ev_prob and horizon - start > 900:
        tags.append("suspended_ev")
        for _ in range(int(r.integers(1, 4))):
            t0 = float(r.uniform(start + 120.0, horizon - 300.0))
            sess.windows.append(
                Window(t0, t0 + float(r.uniform(60, 600)), 0.0, status="SuspendedEV")
            )
    if r.random() < cfg.suspended_evse_prob and horizon - start > 900:
        tags.append("suspended_evse")
        t0 = float(r.uniform(start + 120.0, horizon - 300.0))
        sess.windows.append(
            Window(t0, t0 + float(r.uniform(120, 900)), 0.0, status="SuspendedEVSE",
                   offered_zero=True)
        )  # fmt: skip
    # Pauses must not overlap: keep the earliest of any overlapping pair.
    sess.windows.sort(key=lambda w: w.t0)
    kept: list[Window] = []
    for w in sess.windows:
        if not kept or w.t0 >= kept[-1].t1 + 30.0:
            kept.append(w)
    sess.windows = kept
    pause_s = sum(w.t1 - w.t0 for w in kept)
    if conn.dc and unplug > t_full0:
        unplug += pause_s  # the DC driver waits for the car, pauses included
    if r.random() < cfg.long_idle_fraction:
        tags.append("long_idle")
        unplug = max(unplug, t_full0 + pause_s + float(r.uniform(3600.0, 3 * 3600.0)))
    unplug = max(unplug, start + 30.0)
    sess.unplug = unplug
    if r.random() < 0.4:
        sess.stop_reason = "Local"  # RFID swipe / app stop, then unplug
        sess.stop = unplug - float(r.uniform(10.0, 120.0))
        sess.stop = max(sess.stop, start + 10.0)
    else:
        sess.stop = unplug
    sess.tags = tags
    sess.finalize()
    _tag(sess, high)
    return sess


def _tag(sess: Session, high: bool = False) -> None:
    c = sess.conn
    extra = []
    if c.dc:
        extra.append("dc")
    elif c.phases == 3 and sess.car.phases == 1:
        extra.append("single_phase_car_on_three_phase")
    if high:
        extra.append("high_soc")
    if sess.car.soc_target >= 1.0:
        extra.append("full_charge")
    if sess.t_full > sess.stop:
        extra.append("unplugged_while_charging")
    if sess.idle_s() >= 3600.0 and "fault_host" not in sess.tags:
        extra.append("long_idle")  # natural (e.g. overnight at home) or forced: normal
    sess.tags.extend(t for t in extra if t not in sess.tags)


def _host_session(
    r: np.random.Generator, conn: ConnInfo, t0: float, t1: float, three_phase: bool
) -> Session:
    """A plain session that is charging through [t0, t1] (hosts a fault)."""
    plug_in = t0 - float(r.uniform(120.0, 600.0))
    start = plug_in + float(r.uniform(15.0, 45.0))
    car = Car(
        capacity_wh=float(r.choice([77e3, 82e3, 100e3])),
        soc0=float(r.uniform(0.05, 0.15)),
        soc_target=1.0,
        phases=3,
        max_current_a=32.0,
        dc_max_w=150e3,
        pack_v=400.0,
    )
    if not three_phase and not conn.dc and r.random() < 0.2:
        car = replace(car, phases=1)
    unplug = t1 + float(r.uniform(300.0, 900.0))
    weights = (1.0, 1.0, 1.0) if car.phases == 3 else (1.0, 0.0, 0.0)
    s = Session(conn, plug_in, start, unplug, unplug, "EVDisconnected", "", car, weights)
    s.tags = ["fault_host"]
    return s


# ---------------------------------------------------------------------------------
# Faults
# ---------------------------------------------------------------------------------


def _resolve_charger(spec: FaultSpec, chargers: list[ChargerSpec]) -> int:
    for i, c in enumerate(chargers):
        if c.id == spec.charger:
            return i
    if spec.charger.isdigit() and int(spec.charger) < len(chargers):
        return int(spec.charger)
    raise ValueError(
        f"fault {spec.name}: unknown charger {spec.charger!r}"
        f" (chargers are {chargers[0].id}..{chargers[-1].id}, or a 0-based index)"
    )


def _random_specs(cfg: SimConfig, chargers: list[ChargerSpec]) -> list[FaultSpec]:
    r = _rng(cfg.seed, 3)
    names = list(TELEMETRY_FAULTS)
    three = [i for i, c in enumerate(chargers) if c.phases == 3]
    busy: dict[int, list[tuple[float, float]]] = {}
    out: list[FaultSpec] = []
    attempts = 0
    while len(out) < cfg.random_faults and attempts < 50 * (cfg.random_faults + 1):
        attempts += 1
        if r.random() < 0.8:
            name = names[int(r.integers(len(names)))]
        else:
            name = ERROR_CODE_FAULTS[int(r.integers(len(ERROR_CODE_FAULTS)))]
        kind = fault_kind(name)
        if kind.needs == "three_phase":
            if not three:
                continue
            ci = three[int(r.integers(len(three)))]
        else:
            ci = int(r.integers(len(chargers)))
        dur = min(kind.default_duration * float(r.uniform(0.5, 1.5)), 0.4 * cfg.duration)
        start = float(r.uniform(0.05, 0.9)) * cfg.duration
        start = min(start, max(0.0, cfg.duration - dur - 1800.0))
        # Faults on one charger never overlap (margin for host sessions), so the
        # truth's windows stay unambiguous for scoring.
        margin = 3600.0
        if any(start - margin < e and s < start + dur + margin for s, e in busy.get(ci, [])):
            continue
        busy.setdefault(ci, []).append((start, start + dur))
        conn = int(r.integers(1, chargers[ci].connectors + 1))
        out.append(FaultSpec(name, chargers[ci].id, conn, round(start), round(dur)))
    return out


def build_plan(cfg: SimConfig) -> Plan:
    sites, chargers, conns = build_fleet(cfg)
    by_charger: dict[str, list[ConnInfo]] = {}
    for c in conns:
        by_charger.setdefault(c.charger, []).append(c)
    specs = list(cfg.faults) + _random_specs(cfg, chargers)
    faults: list[PlannedFault] = []
    fixed: dict[int, list[Session]] = {}  # sessions that faults build, per connector row
    rf = _rng(cfg.seed, 4)
    for n, spec in enumerate(specs):
        kind = fault_kind(spec.name)
        ci = _resolve_charger(spec, chargers)
        ch = chargers[ci]
        cc = by_charger[ch.id]
        connector = spec.connector or 1
        if not 1 <= connector <= ch.connectors:
            raise ValueError(
                f"fault {spec.name}: {ch.id} has connectors 1..{ch.connectors}, not {connector}"
            )
        conn = cc[connector - 1]
        if kind.needs == "three_phase" and (conn.phases != 3):
            raise ValueError(f"fault {spec.name} needs a three-phase AC charger; {ch.id} is not")
        dur = spec.duration if spec.duration is not None else kind.default_duration
        rel = spec.start if spec.start is not None else float(rf.uniform(0.1, 0.7)) * cfg.duration
        if rel >= cfg.duration:
            # A caller may keep one fault list for runs of any length (the demo
            # does); a fault that would never show is left out of the truth too.
            log.warning(
                "fault %s@%s starts at %g s, after the simulation's end (%g s): skipped",
                spec.name, spec.charger, rel, cfg.duration,
            )  # fmt: skip
            continue
        t0 = cfg.start + rel
        t1 = t0 + dur
        params = {**kind.defaults, **spec.params}  # the truth records every value used
        r = _rng(cfg.seed, 5, n)
        if kind.needs in ("charging", "three_phase") or spec.in_session:
            three = kind.needs == "three_phase" or (spec.in_session and conn.phases == 3)
            host = _host_session(r, conn, t0, t1, three)
            fixed.setdefault(conn.idx, []).append(host)
        elif spec.name == "failed_start":
            car = Car(60e3, 0.3, 0.9, 3, 16.0, 50e3, 400.0)
            host = Session(conn, t0, t0 + float(r.uniform(10, 30)), t1, t1, "EVDisconnected", "",
                           car, (1.0, 1.0, 1.0))  # fmt: skip
            host.windows.append(Window(host.start, t1, 0.0))
            host.tags = ["fault_host"]
            fixed.setdefault(conn.idx, []).append(host)
        elif spec.name == "idle_blocking":
            car = Car(60e3, float(r.uniform(0.3, 0.6)), 0.8, 3, 16.0, 50e3, 400.0)
            host = Session(conn, 0.0, 0.0, 1e18, 1e18, "EVDisconnected", "", car, (1.0, 1.0, 1.0))
            host.start = 1.0
            host.finalize()
            need = host.t_full - host.start  # charging time to the car's limit
            room = t0 - cfg.start - 120.0
            if need > room > 0:
                # start fuller, so that the charge fits after the simulation start
                soc0 = car.soc_target - (car.soc_target - car.soc0) * room / need * 0.9
                host.car = replace(car, soc0=soc0)
                host.finalize()
                need = host.t_full - host.start
            host.plug_in = t0 - need - 30.0
            host.start = t0 - need
            host.stop = host.unplug = t1
            host.tags = ["fault_host"]
            fixed.setdefault(conn.idx, []).append(host)
        affected = tuple(c.idx for c in cc) if kind.scope == "charger" else (conn.idx,)
        faults.append(
            PlannedFault(
                spec.name,
                ch.id,
                None if kind.scope == "charger" else connector,
                t0,
                t1,
                params,
                affected,
            )
        )
    # Physical fault windows go onto their host sessions.
    for f in faults:
        if f.connector is None:
            continue
        for host in fixed.get(f.conns[0], []):
            if host.plug_in <= f.start and f.end <= host.unplug:
                w = _physical_window(f, host)
                if w is not None:
                    host.windows.append(w)
    sessions: list[Session] = []
    for conn in conns:
        r = _rng(cfg.seed, 6, conn.idx)
        hosts = sorted(fixed.get(conn.idx, []), key=lambda s: s.plug_in)
        for h0, h1 in itertools.pairwise(hosts):
            if h1.plug_in < h0.unplug + 60.0:
                raise ValueError(
                    f"faults on {conn.charger}:{conn.connector} at"
                    f" {h0.plug_in - cfg.start:.0f}-{h0.unplug - cfg.start:.0f} s and"
                    f" {h1.plug_in - cfg.start:.0f}-{h1.unplug - cfg.start:.0f} s need"
                    " sessions that overlap; move one or use another connector"
                )
        for h in hosts:
            h.finalize()
            _tag(h)
        blocked = [(h.plug_in - 120.0, h.unplug + 120.0) for h in hosts]
        own: list[Session] = list(hosts)
        t = cfg.start - (WARM_START_S if cfg.warm_start else 0.0)
        while True:
            arr = _next_arrival(r, conn, cfg.arrival_rate, t)
            if arr >= cfg.end:
                break
            s = _session(r, cfg, conn, arr)
            clash = [b for b in blocked if s.plug_in < b[1] and b[0] < s.unplug + 60.0]
            if clash:
                t = max(b[1] for b in clash)
                continue
            if s.unplug > cfg.start + 60.0:  # else over before the simulation begins
                own.append(s)
            t = s.unplug + 60.0
        sessions.extend(own)
    # Errors on the charger/connector also stop delivery in whatever session is on.
    for f in faults:
        if fault_kind(f.name).name != "error_code":
            continue
        for s in sessions:
            if s.conn.idx in f.conns and s.start < f.end and f.start < s.stop:
                s.windows.append(Window(f.start, f.end, 0.0, offered_zero=True))
                s.finalize()
    sessions.sort(key=lambda s: (s.start, s.conn.idx))
    ids = _rng(cfg.seed, 7)
    for i, s in enumerate(sessions):
        s.transaction_id = 1000 + i
        s.id_tag = f"{int(ids.integers(0, 1 << 32)):08X}"
    normals = _normal_events(cfg, conns, by_charger, sessions, faults)
    return Plan(cfg, sites, chargers, conns, sessions, faults, normals)


def _physical_window(f: PlannedFault, host: Session) -> Window | None:
    p = f.params
    if f.name == "over_current":
        return Window(f.start, f.end, rate=p.get("factor", 1.35))
    if f.name == "charging_interrupted":
        return Window(f.start, f.end, rate=0.0)
    if f.name == "power_oscillation":
        return Window(f.start, f.end, osc=(p.get("period_s", 20.0), p.get("depth", 0.7)))
    if f.name in ("phase_loss", "phase_imbalance"):
        default_phase = 3 if f.name == "phase_loss" else 2
        ph = int(p.get("phase", default_phase)) - 1
        ratio = 0.0 if f.name == "phase_loss" else p.get("ratio", 0.4)
        w = [1.0, 1.0, 1.0]
        w[ph] = ratio
        return Window(f.start, f.end, rate=sum(w) / 3.0, weights=(w[0], w[1], w[2]))
    return None


def _normal_events(
    cfg: SimConfig,
    conns: list[ConnInfo],
    by_charger: dict[str, list[ConnInfo]],
    sessions: list[Session],
    faults: list[PlannedFault],
) -> list[NormalEvent]:
    out: list[NormalEvent] = []
    busy: dict[str, list[tuple[float, float]]] = {}
    for s in sessions:
        busy.setdefault(s.conn.charger, []).append((s.plug_in, s.unplug))
    for f in faults:
        busy.setdefault(f.charger, []).append((f.start, f.end))
    for cid in by_charger:
        r = _rng(cfg.seed, 8, int(cid[2:]))
        iv = sorted(busy.get(cid, []))
        t = cfg.start + 300.0  # not during the initial boot
        gaps: list[tuple[float, float]] = []
        for a, b in iv:
            if a > t:
                gaps.append((t, a))
            t = max(t, b)
        gaps.append((t, cfg.end))
        for a, b in gaps:
            if b - a > 900.0 and r.random() < cfg.reboot_prob:
                t0 = float(r.uniform(a + 120.0, b - 600.0))
                t1 = t0 + float(r.uniform(30.0, 120.0))
                out.append(NormalEvent("reboot", cid, None, t0, t1))
                if r.random() < cfg.boot_blip_prob:
                    # Some firmware reports Faulted/NoError for a moment while
                    # booting (sap-labs-france/ev-server#3904): normal, not a fault.
                    out.append(NormalEvent("boot_faulted_blip", cid, None, t1 + 1.5, t1 + 3.5))
    if cfg.protocol == "ocpp1.6":
        out.extend(
            NormalEvent(f"ocpp_quirk:{c.quirk}", c.charger, None, cfg.start, cfg.end)
            for c in conns
            if c.quirk and c.connector == 1
        )
    for conn in conns:
        r = _rng(cfg.seed, 9, conn.idx)
        n = int(r.poisson(cfg.gap_rate_per_hour * cfg.duration / 3600.0))
        if cfg.end - 200.0 <= cfg.start + 300.0:
            n = 0  # too short a run to place a gap away from its start and end
        for _ in range(n):
            t0 = float(r.uniform(cfg.start + 300.0, cfg.end - 200.0))
            out.append(
                NormalEvent("telemetry_gap", conn.charger, conn.connector, t0,
                            t0 + float(r.uniform(5.0, 120.0)))
            )  # fmt: skip
    out.sort(key=lambda e: e.start)
    return out
