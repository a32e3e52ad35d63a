"""Simulation configuration and the named scenarios for labelled datasets."""

from __future__ import annotations

__all__ = ["DEFAULT_START", "SCENARIOS", "SimConfig"]

from dataclasses import dataclass, fields, replace
from typing import Any, Literal

from chargewatch.simulator.fault_models import FaultSpec

#: 2026-11-23T00:00:00Z: a fixed default so that a seed alone reproduces a run.
DEFAULT_START = 1795392000.0

Protocol = Literal["native", "ocpp1.6"]


@dataclass(frozen=True)
class SimConfig:
    """Everything that determines a simulation; same config → identical output.

    Times are epoch seconds, durations seconds, powers W. The ``*_prob`` /
    ``*_fraction`` switches control the hard *normal* cases a detector must not
    alert on; each is recorded in the truth (session ``tags`` or ``normal``
    events) so datasets can be labelled.
    """

    chargers: int = 10
    sites: int = 2
    seed: int = 0
    start: float = DEFAULT_START
    duration: float = 86400.0
    interval: float = 1.0  # meter sample interval, s
    protocol: Protocol = "native"
    batch: int = 1  # samples per meter message (native columnar batch / OCPP meterValue entries)
    heartbeat_interval: float = 60.0
    tx_update_interval: float = 900.0  # native "update" transaction events; 0: none
    faults: tuple[FaultSpec, ...] = ()
    random_faults: int = 0  # this many extra faults at random chargers and times
    # Fleet mix.
    dc_fraction: float = 0.15
    single_phase_charger_fraction: float = 0.2  # of AC chargers
    # Sessions.
    arrival_rate: float = 1.0  # multiplier on each site type's sessions per day
    dc_only: bool = False  # every charger DC (scenario "dc_curves")
    single_phase_car_fraction: float = 0.25  # AC cars with a one-phase onboard charger
    high_soc_fraction: float = 0.1  # cars arriving at 75-92 % SoC: taper dominates
    full_charge_fraction: float = 0.3  # cars that charge to 100 % (long taper)
    suspended_ev_prob: float = 0.2  # sessions with 1-3 SuspendedEV pauses
    suspended_evse_prob: float = 0.1  # sessions with a SuspendedEVSE pause (load management)
    long_idle_fraction: float = 0.0  # sessions kept plugged 1-3 h after charging (normal idle)
    # Sessions already under way at the start, as when a collector starts on a
    # live fleet (their start messages precede the simulation and are not sent).
    warm_start: bool = True
    # Reporting quirks and infrastructure.
    kw_power_fraction: float = 0.2  # OCPP chargers that report Power.Active.Import in kW
    # OCPP chargers with one field quirk each (plan.OCPP_QUIRKS: register without
    # measurand/unit, register drop-outs, per-phase power, local-offset timestamps)
    ocpp_quirk_fraction: float = 0.0
    reboot_prob: float = 0.05  # per idle gap between sessions: the charger reboots
    boot_blip_prob: float = 0.3  # a reboot shows a brief Faulted/NoError status
    gap_rate_per_hour: float = 0.05  # short telemetry gaps (5-120 s) per connector-hour
    ocpp_csms_results: bool = True  # also emit the CSMS's CALLRESULTs (not for MeterValues)
    # OCPP cadence (docs/simulator.md, simulator.cadence). Each charger's
    # HeartbeatInterval, drawn from these values (the CSMS sends it in the
    # BootNotification CALLRESULT's ``interval``); empty: ``heartbeat_interval`` for all.
    heartbeat_intervals: tuple[float, ...] = ()
    # OCPP only. 0: every connector samples at ``interval`` all the time (a native
    # stream). > 0: MeterValueSampleInterval (``interval``) applies during
    # transactions only, as the spec defines it, and an idle connector sends
    # clock-aligned values (ClockAlignedDataInterval, context Sample.Clock) every
    # this many seconds.
    idle_meter_interval: float = 0.0
    # OCPP chargers whose register restarts at 0 for every transaction (meterStart
    # 0, Transaction.Begin "0": Project EV in evcc#15768), a field behaviour, not a fault.
    register_restart_fraction: float = 0.0
    # OCPP chargers that send a Heartbeat only after HeartbeatInterval without any
    # other exchange (the spec's wording: an "interval of inactivity"), so a charger
    # sending MeterValues every 10 s heartbeats only while idle.
    heartbeat_on_inactivity_fraction: float = 0.0

    def __post_init__(self) -> None:
        if self.chargers < 1:
            raise ValueError(f"chargers must be >= 1, got {self.chargers}")
        if not 1 <= self.sites <= self.chargers:
            raise ValueError(f"sites must be 1..chargers, got {self.sites}")
        if self.interval <= 0 or self.duration <= 0:
            raise ValueError("interval and duration must be > 0")
        if self.batch < 1:
            raise ValueError(f"batch must be >= 1, got {self.batch}")
        if self.protocol not in ("native", "ocpp1.6"):
            raise ValueError(f"protocol must be native or ocpp1.6, got {self.protocol!r}")
        if self.heartbeat_interval <= 0 or self.arrival_rate < 0 or self.random_faults < 0:
            raise ValueError("heartbeat_interval > 0, arrival_rate >= 0, random_faults >= 0")
        if any(h <= 0 for h in self.heartbeat_intervals) or self.idle_meter_interval < 0:
            raise ValueError("heartbeat_intervals must be > 0 and idle_meter_interval >= 0")
        for f in fields(self):
            if f.name.endswith(("_prob", "_fraction")) and not 0.0 <= getattr(self, f.name) <= 1.0:
                raise ValueError(f"{f.name} must be within 0..1, got {getattr(self, f.name)}")

    @property
    def end(self) -> float:
        return self.start + self.duration

    def with_scenario(self, name: str) -> SimConfig:
        """This config with a named scenario's switches applied (see SCENARIOS)."""
        try:
            changes = SCENARIOS[name]
        except KeyError:
            raise ValueError(
                f"unknown scenario {name!r}; expected one of {sorted(SCENARIOS)}"
            ) from None
        return replace(self, **changes)

    def replace(self, **changes: Any) -> SimConfig:
        return replace(self, **changes)


_QUIET: dict[str, Any] = {
    "suspended_ev_prob": 0.0,
    "suspended_evse_prob": 0.0,
    "high_soc_fraction": 0.0,
    "full_charge_fraction": 0.0,
    "long_idle_fraction": 0.0,
    "kw_power_fraction": 0.0,
    "reboot_prob": 0.0,
    "boot_blip_prob": 0.0,
    "gap_rate_per_hour": 0.0,
    "single_phase_car_fraction": 0.0,
}

#: Named scenarios: each isolates one hard *normal* case (everything else quiet),
#: so a detector evaluation can build a labelled dataset of "must not alert" data.
#: "default" is the realistic mix; "quiet" switches every hard case off.
SCENARIOS: dict[str, dict[str, Any]] = {
    "default": {},
    "quiet": dict(_QUIET),
    "suspended_ev": {**_QUIET, "suspended_ev_prob": 1.0},
    "suspended_evse": {**_QUIET, "suspended_evse_prob": 1.0},
    "high_soc_taper": {**_QUIET, "high_soc_fraction": 1.0, "full_charge_fraction": 1.0},
    "dc_curves": {**_QUIET, "dc_only": True, "full_charge_fraction": 0.5},
    "single_phase_cars": {
        **_QUIET,
        "single_phase_car_fraction": 1.0,
        "dc_fraction": 0.0,
        "single_phase_charger_fraction": 0.0,
    },
    "kw_power": {**_QUIET, "kw_power_fraction": 1.0, "protocol": "ocpp1.6"},
    "ocpp_quirks": {**_QUIET, "ocpp_quirk_fraction": 1.0, "protocol": "ocpp1.6"},
    "idle_after_charging": {**_QUIET, "long_idle_fraction": 1.0},
    "reboots": {**_QUIET, "reboot_prob": 1.0, "boot_blip_prob": 0.5},
    "telemetry_gaps": {**_QUIET, "gap_rate_per_hour": 1.0},
}

_FIELD_NAMES = {f.name for f in fields(SimConfig)}
assert all(k in _FIELD_NAMES for s in SCENARIOS.values() for k in s), "scenario key typo"
