"""Detector parameters: one frozen dataclass per fault, and the configuration that
overrides them per site or charger model.

Every numeric field carries its valid range in ``metadata``; :func:`validate`
checks them all and names the offending parameter. Defaults work for AC and DC.

YAML shape (``DetectorConfig.from_mapping``)::

    defaults:            # overrides for every connector
      over_temperature: {level_c: 80}
    sites:               # per site id
      depot-north:
        idle_blocking: {grace_s: 3600}
    models:              # per charger model (fleet.yaml ``model``); wins over site
      "Acme DC150":
        over_temperature: {level_c: 90, clear_c: 85}
"""

from __future__ import annotations

__all__ = ["FAULTS", "PARAMS", "DetectorConfig", "Params", "validate"]

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from chargewatch.core.errors import ConfigError, ConfigProblem
from chargewatch.core.yamlsrc import Reader, Source
from chargewatch.model.faults import FAULTS

# The fault vocabulary lives in chargewatch.model.faults (one definition for all).


def _p(default: float, lo: float, hi: float, doc: str) -> Any:
    return field(default=default, metadata={"lo": lo, "hi": hi, "doc": doc})


@dataclass(frozen=True, slots=True)
class Params:
    """Base of every detector's parameters."""


@dataclass(frozen=True, slots=True)
class ChargerOfflineParams(Params):
    silence_s: float = _p(600.0, 1, 86400, "no message at all for this long (interval unknown)")
    # An OCPP charger sends nothing but heartbeats while idle, so until its own
    # interval is known (no BootNotification answer seen: it booted before
    # chargewatch started) a silence of silence_s says nothing: CSMSs commonly
    # set 300-900 s. Assumed this long (or the longest gap seen, if longer)
    # until the CSMS's interval or _HB_MIN gaps are known.
    assumed_interval_s: float = _p(
        900.0, 0, 86400, "heartbeat interval assumed for an OCPP charger until known (0: none)"
    )
    interval_factor: float = _p(2.0, 1, 100, "silent for this many heartbeat intervals ...")
    interval_margin_s: float = _p(30.0, 0, 3600, "... plus this long (interval known)")
    # 0 makes a retained online=false immediate; the default lets a reboot
    # (30-120 s, the simulator's "reboots" normal case) pass without a finding.
    lwt_grace_s: float = _p(120.0, 0, 3600, "online flag false (MQTT last will) for this long")
    # The debounce lives here, not in the rule's `for`: whatever the heartbeat,
    # a silence shorter than this (a reconnect) is never offline.
    min_duration_s: float = _p(60.0, 0, 3600, "silent at least this long, whatever the interval")


@dataclass(frozen=True, slots=True)
class StaleTelemetryParams(Params):
    silence_s: float = _p(300.0, 1, 86400, "no meter sample while one is expected")
    # A connector's own cadence (900 s clock-aligned values while idle, 300 s
    # sample intervals) is a silence of its own. 2: one report lost in a network
    # blip is normal (OCPP does not resend clock-aligned values outside a
    # transaction); two in a row are stale.
    interval_factor: float = _p(2.0, 1, 100, "... nor for fewer of its own intervals ...")
    interval_margin_s: float = _p(30.0, 0, 3600, "... plus this long (per mode, learned)")


@dataclass(frozen=True, slots=True)
class ClockSkewParams(Params):
    max_offset_s: float = _p(120.0, 1, 86400, "|receive time - meter ts| above this")
    min_duration_s: float = _p(300.0, 0, 86400, "for this long, on the receive clock")


@dataclass(frozen=True, slots=True)
class MeterStuckParams(Params):
    min_power_w: float = _p(1000.0, 1, 1e6, "power above this means energy must advance")
    min_duration_s: float = _p(120.0, 1, 86400, "register unchanged under power this long")


@dataclass(frozen=True, slots=True)
class MeterRegressionParams(Params):
    tolerance_wh: float = _p(1.0, 0, 1e6, "a drop larger than this is a regression")
    hold_s: float = _p(300.0, 0, 86400, "finding stays active this long after the last drop")


@dataclass(frozen=True, slots=True)
class MeterMismatchParams(Params):
    window_s: float = _p(600.0, 10, 86400, "register delta and power integral compared per window")
    min_energy_wh: float = _p(200.0, 1, 1e7, "windows with less integrated energy are not judged")
    tolerance: float = _p(0.15, 0.01, 0.9, "|delta / integral - 1| above this is a mismatch")
    max_gap_s: float = _p(120.0, 1, 86400, "intervals longer than this are left out of both")
    # kW-resolution power (0.1 kW steps) is up to 4 % off at the smallest judged
    # windows (200 Wh in 600 s, 1.2 kW): the allowance sits above that.
    drift_allowance: float = _p(0.05, 0.0, 0.9, "per-window relative error the CUSUM tolerates")
    drift_limit: float = _p(0.3, 0.01, 100, "CUSUM of the excess error that is a mismatch")


@dataclass(frozen=True, slots=True)
class MeterUnitErrorParams(Params):
    min_current_a: float = _p(2.0, 0.1, 1000, "power vs V*I is judged above this total current")
    min_duration_s: float = _p(60.0, 0, 86400, "power or register off by ~1000x this long")
    min_expected_wh: float = _p(2.0, 0.01, 1e6, "register steps judged when V*I*dt exceeds this")
    max_gap_s: float = _p(120.0, 1, 86400, "intervals longer than this are left out")


@dataclass(frozen=True, slots=True)
class OverTemperatureParams(Params):
    level_c: float = _p(75.0, -50, 300, "temperature above this")
    clear_c: float = _p(70.0, -50, 300, "clears below this (hysteresis)")
    # The rule's `for` is 0s: these durations are the whole debounce.
    min_duration_s: float = _p(60.0, 0, 86400, "level exceeded for this long")
    rate_c_per_min: float = _p(3.0, 0.01, 100, "rise faster than this ...")
    rate_floor_c: float = _p(50.0, -50, 300, "... while above this temperature")
    rate_tau_s: float = _p(60.0, 1, 3600, "rise = EWMA of the slope, this time constant")
    rate_min_duration_s: float = _p(90.0, 0, 86400, "fast rise sustained this long")
    # A normal warm-up rises at most (its full rise) / (thermal time constant):
    # 50 K (IEC 62196-1's terminal limit) over >= 5 min is <= 10 C/min.
    steep_c_per_min: float = _p(10.0, 0.01, 1000, "a steeper rise than this ...")
    steep_floor_c: float = _p(40.0, -50, 300, "... while above this temperature ...")
    steep_tau_s: float = _p(20.0, 1, 3600, "... (EWMA of the slope, this time constant)")
    steep_min_duration_s: float = _p(20.0, 0, 86400, "... sustained this long")
    limit_margin_c: float = _p(15.0, 0, 300, "level_c + this pages at once")
    limit_min_duration_s: float = _p(5.0, 0, 3600, "above that this long (one reading is a glitch)")
    stale_intervals: float = _p(3.0, 1, 1000, "ends after no reading for this many intervals")


@dataclass(frozen=True, slots=True)
class OverCurrentParams(Params):
    tolerance: float = _p(0.10, 0, 2, "phase current above limit * (1 + tolerance) + margin")
    margin_a: float = _p(1.0, 0, 100, "absolute allowance over the limit")
    min_duration_s: float = _p(10.0, 0, 3600, "IEC 61851-1 gives the EV 5 s to follow the pilot")


@dataclass(frozen=True, slots=True)
class VoltageOutOfBandParams(Params):
    band: float = _p(0.10, 0.01, 0.5, "EN 50160: +-10 % of nominal")
    clear_band: float = _p(0.08, 0.0, 0.5, "clears when back within this band")
    min_duration_s: float = _p(60.0, 0, 86400, "out of band this long")
    loss_fraction: float = _p(0.5, 0.05, 0.9, "below this fraction of nominal it is phase_loss")


@dataclass(frozen=True, slots=True)
class PhaseLossParams(Params):
    loss_fraction: float = _p(0.5, 0.05, 0.9, "phase voltage below this fraction of nominal ...")
    min_duration_s: float = _p(30.0, 0, 86400, "... while another phase is live, this long")
    min_current_a: float = _p(4.0, 0.1, 1000, "current-side: phases carrying above this ...")


@dataclass(frozen=True, slots=True)
class PhaseImbalanceParams(Params):
    threshold: float = _p(0.25, 0.01, 1, "(max - min) / max of loaded phase currents")
    clear: float = _p(0.15, 0.0, 1, "clears below this")
    min_current_a: float = _p(6.0, 0.1, 1000, "judged when the largest phase carries this")
    floor_a: float = _p(1.0, 0.0, 1000, "phases below this are unloaded (1-phase cars)")
    min_duration_s: float = _p(120.0, 0, 86400, "imbalanced this long")


@dataclass(frozen=True, slots=True)
class PowerOscillationParams(Params):
    window_samples: int = _p(10, 3, 1000, "reversals counted over this many samples")
    min_reversals: int = _p(4, 2, 1000, "this many large direction reversals in the window")
    # At 1 Hz ten samples span half a 20 s swing: the window is also one of time.
    window_s: float = _p(60.0, 1, 86400, "... or within this long (fast sampling)")
    swing_fraction: float = _p(0.3, 0.01, 10, "a large step is this fraction of the power")
    min_power_w: float = _p(1000.0, 1, 1e6, "steps measured against at least this power")
    min_duration_s: float = _p(60.0, 0, 86400, "oscillating this long")


@dataclass(frozen=True, slots=True)
class ChargingInterruptedParams(Params):
    on_power_w: float = _p(1000.0, 1, 1e6, "was charging: power above this")
    off_power_w: float = _p(100.0, 0, 1e6, "stopped: power below this ...")
    min_duration_s: float = _p(60.0, 0, 86400, "... while still in Charging status this long")
    full_soc_pct: float = _p(95.0, 0, 100, "stops at or above this SoC are the car being full")
    hold_s: float = _p(300.0, 0, 86400, "a finding from a stop event stays active this long")


@dataclass(frozen=True, slots=True)
class IdleBlockingParams(Params):
    # Normal "idle after charging" runs to 3 h in the fleet simulator's sessions;
    # sites with idle fees override this (e.g. 1800 s).
    grace_s: float = _p(12600.0, 0, 7 * 86400, "connected without charging beyond this")


@dataclass(frozen=True, slots=True)
class FailedStartParams(Params):
    timeout_s: float = _p(180.0, 1, 86400, "a session delivers energy within this")
    min_power_w: float = _p(500.0, 1, 1e6, "delivering: power above this")
    preparing_timeout_s: float = _p(900.0, 1, 86400, "Preparing without a session this long")


@dataclass(frozen=True, slots=True)
class StatusFlappingParams(Params):
    changes: int = _p(6, 2, 1000, "this many status changes ...")
    window_s: float = _p(300.0, 1, 86400, "... within this window")


PARAMS: dict[str, type[Params]] = {
    "charger_offline": ChargerOfflineParams,
    "stale_telemetry": StaleTelemetryParams,
    "meter_stuck": MeterStuckParams,
    "meter_regression": MeterRegressionParams,
    "meter_mismatch": MeterMismatchParams,
    "meter_unit_error": MeterUnitErrorParams,
    "over_temperature": OverTemperatureParams,
    "over_current": OverCurrentParams,
    "voltage_out_of_band": VoltageOutOfBandParams,
    "phase_loss": PhaseLossParams,
    "phase_imbalance": PhaseImbalanceParams,
    "charging_interrupted": ChargingInterruptedParams,
    "power_oscillation": PowerOscillationParams,
    "clock_skew": ClockSkewParams,
    "idle_blocking": IdleBlockingParams,
    "failed_start": FailedStartParams,
    "status_flapping": StatusFlappingParams,
}

# Pairs (set, clear) where the clear threshold must sit on the safe side.
_ORDERED: dict[str, list[tuple[str, str, str]]] = {
    "over_temperature": [("clear_c", "<=", "level_c")],
    "meter_mismatch": [("drift_allowance", "<", "tolerance")],
    "voltage_out_of_band": [("clear_band", "<=", "band")],
    "phase_imbalance": [("clear", "<=", "threshold")],
    "charging_interrupted": [("off_power_w", "<", "on_power_w")],
}


def problems(fault: str, p: Params) -> list[tuple[str, str]]:
    """Every (parameter, message) wrong with ``p``; empty when valid."""
    out: list[tuple[str, str]] = []
    for f in dataclasses.fields(p):
        v = getattr(p, f.name)
        lo, hi = f.metadata["lo"], f.metadata["hi"]
        is_int = isinstance(f.default, int)
        if isinstance(v, bool) or not isinstance(v, int | float) or (is_int and v != int(v)):
            out.append((f.name, f"expected {'an integer' if is_int else 'a number'}, got {v!r}"))
        elif not (math.isfinite(v) and lo <= v <= hi):
            out.append(
                (f.name, f"expected {lo:g} <= {f.name} <= {hi:g} ({f.metadata['doc']}), got {v!r}")
            )
    if not out:
        for a, op, b in _ORDERED.get(fault, []):
            va, vb = getattr(p, a), getattr(p, b)
            if not (va <= vb if op == "<=" else va < vb):
                out.append((a, f"expected {a} {op} {b} ({vb!r}), got {va!r}"))
    return out


def validate(fault: str, p: Params) -> None:
    """Raise ValueError naming the first wrong parameter, e.g. ``over_temperature.level_c``."""
    bad = problems(fault, p)
    if bad:
        name, msg = bad[0]
        raise ValueError(f"{fault}.{name}: {msg}")


Overrides = dict[str, dict[str, Any]]  # fault -> {parameter: value}


def _in_range(lo: float, hi: float) -> Callable[[Any], bool]:
    def check(v: Any) -> bool:
        return bool(lo <= v <= hi)

    return check


@dataclass(frozen=True)
class DetectorConfig:
    """Default parameters plus per-site and per-model overrides (model wins)."""

    defaults: Overrides = field(default_factory=dict)
    sites: dict[str, Overrides] = field(default_factory=dict)
    models: dict[str, Overrides] = field(default_factory=dict)
    # Resolved parameters by (site, model): every detector asks for every new
    # connector, and building and validating 17 parameter sets each time cost
    # ~1 ms per connector (90 s at 100,000 connectors).
    _resolved: dict[tuple[str, str], dict[str, Params]] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        # Fail at construction, naming the parameter, not at the first batch.
        self.params("")
        for s in self.sites:
            self.params(s)
        for m in self.models:
            self.params("", m)

    def params(self, site: str = "", model: str = "") -> dict[str, Params]:
        """Parameters of every fault for a connector at ``site`` of charger ``model``."""
        hit = self._resolved.get((site, model))
        if hit is not None:
            return hit
        out: dict[str, Params] = {}
        for fault, cls in PARAMS.items():
            kw: dict[str, Any] = {}
            for layer in (self.defaults, self.sites.get(site, {}), self.models.get(model, {})):
                kw.update(layer.get(fault, {}))
            try:
                p = cls(**kw)
            except TypeError as exc:
                raise ValueError(f"{fault}: {exc}") from exc
            validate(fault, p)
            out[fault] = p
        self._resolved[(site, model)] = out
        return out

    @staticmethod
    def from_mapping(
        data: Any, file: str = "<config>", source: Source | None = None
    ) -> DetectorConfig:
        """Build from plain data (e.g. the ``detectors:`` section of a YAML file).

        Every problem is collected and raised together as a :class:`ConfigError`
        with file, line (when ``source`` carries marks), key path and expectation.
        """
        src = source if source is not None else Source(file, data)
        r = Reader(src)
        top = r.mapping(data, (), allowed=("defaults", "sites", "models"))

        def overrides(obj: Any, path: tuple[str | int, ...]) -> Overrides:
            m = r.mapping(obj, path, allowed=PARAMS)
            out: Overrides = {}
            for fault, raw in m.items():
                if fault not in PARAMS:
                    continue
                fp = (*path, fault)
                cls = PARAMS[fault]
                names = [f.name for f in dataclasses.fields(cls)]
                pm = r.mapping(raw, fp, allowed=names)
                kw: dict[str, Any] = {}
                for f in dataclasses.fields(cls):
                    if f.name not in pm:
                        continue
                    kind: type = int if isinstance(f.default, int) else float
                    v = r.get(
                        pm,
                        fp,
                        f.name,
                        kind,
                        f.default,
                        check=_in_range(f.metadata["lo"], f.metadata["hi"]),
                        expected=f"{'an integer' if kind is int else 'a number'} in "
                        f"[{f.metadata['lo']:g}, {f.metadata['hi']:g}] ({f.metadata['doc']})",
                    )
                    kw[f.name] = v
                for name, msg in problems(fault, dataclasses.replace(cls(), **kw)):
                    if name in kw:  # range problems were reported by r.get already
                        for a, _, _ in _ORDERED.get(fault, []):
                            if a == name:
                                r.fail((*fp, name), msg)
                out[fault] = kw
            return out

        defaults = overrides(top.get("defaults"), ("defaults",))
        sites = {
            str(k): overrides(v, ("sites", str(k)))
            for k, v in r.mapping(top.get("sites"), ("sites",)).items()
        }
        models = {
            str(k): overrides(v, ("models", str(k)))
            for k, v in r.mapping(top.get("models"), ("models",)).items()
        }
        r.raise_if_failed()
        try:
            return DetectorConfig(defaults, sites, models)
        except ValueError as exc:  # a combination of layers breaks an ordering rule
            raise ConfigError([ConfigProblem(src.file, "", str(exc))]) from exc
