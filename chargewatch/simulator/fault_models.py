"""Fault vocabulary of the simulator: what each fault means physically and in the data.

Every telemetry fault of the vocabulary (``model.faults``) is one class here; its docstring
says what happens on the charger and how it shows in the telemetry. OCPP error
codes (GroundFailure, OverCurrentFailure, ...) are one more family,
:class:`ErrorCodeFault`. The engine applies the effects; this module only
describes them, so the documentation and the behaviour live side by side.

Effects come in four kinds, which decide where the engine applies them:

- *plan*: the fault shapes a session (a car that never draws current, a car left
  plugged in long after it is full);
- *physical*: the energy actually delivered changes, so the register, the truth
  energy and the SoC all follow (phase loss, oscillation, interruption, ...);
- *reporting*: only what the charger reports is wrong (a stuck register, a skewed
  clock); the truth stays physical;
- *delivery*: messages are not sent (offline, stale telemetry) or extra status
  messages are sent (flapping).
"""

from __future__ import annotations

__all__ = [
    "ERROR_CODE_FAULTS",
    "FAULTS",
    "TELEMETRY_FAULTS",
    "FaultKind",
    "FaultSpec",
    "fault_kind",
    "parse_duration",
    "parse_fault",
]

import re
from dataclasses import dataclass, field
from typing import ClassVar, Literal

from chargewatch.model.events import ERROR_CODES

Scope = Literal["charger", "connector"]
Needs = Literal["any", "charging", "three_phase", "plan"]


class FaultKind:
    """Base of the fault vocabulary; subclasses are documented by their docstring."""

    name: ClassVar[str] = ""
    scope: ClassVar[Scope] = "connector"
    #: What the connector must be doing for the fault to show: "charging" makes
    #: the planner put a charging session around the fault window; "three_phase"
    #: additionally needs a three-phase car on a three-phase AC charger; "plan"
    #: means the fault builds its own session.
    needs: ClassVar[Needs] = "any"
    default_duration: ClassVar[float] = 1800.0
    #: Tunable parameters and their values when not given (see the docstring).
    defaults: ClassVar[dict[str, float]] = {}
    kind: ClassVar[Literal["plan", "physical", "reporting", "delivery"]] = "reporting"

    @classmethod
    def doc(cls) -> str:
        return " ".join((cls.__doc__ or "").split())


class ChargerOffline(FaultKind):
    """The charger loses its connection to the broker/CSMS.

    Data: the retained ``ev/<id>/online`` flips to ``{"online": false}`` at the
    start (the broker publishing the last will), nothing at all arrives from the
    charger during the window (no meter, heartbeat or status), and at the end the
    flag returns to true and every connector re-sends its status. Transaction
    messages raised while offline are queued and delivered at reconnection with
    their original ``ts`` (as OCPP chargers do); meter samples are lost. Charging
    itself goes on, so the register jumps by the energy delivered meanwhile.
    """

    name = "charger_offline"
    scope = "charger"
    default_duration = 1200.0
    kind = "delivery"


class StaleTelemetry(FaultKind):
    """The connector's meter data stops while the charger stays online.

    Data: no ``meter`` samples (OCPP: no MeterValues) for the window, while
    heartbeats and status messages continue — a hung metering task or a broken
    meter bus. Samples resume at the end with the register caught up.
    """

    name = "stale_telemetry"
    default_duration = 1200.0
    kind = "delivery"


class MeterStuck(FaultKind):
    """The energy register stops increasing while power is being delivered.

    Data: ``energy_wh`` stays at its value from the fault start for the whole
    window while ``power_w`` and the currents show charging; at the end the
    register jumps to the true value (the meter's internal count was right, its
    reported value froze).
    """

    name = "meter_stuck"
    needs = "charging"
    kind = "reporting"


class MeterRegression(FaultKind):
    """The energy register goes backwards (a meter reset, swap or firmware bug).

    Data: at the start ``energy_wh`` drops by ``drop_wh`` (default 5 kWh, at most
    the register's value) and keeps counting from the lower value; at the end it
    jumps back to the true register.
    """

    name = "meter_regression"
    defaults: ClassVar[dict[str, float]] = {"drop_wh": 5000.0}
    needs = "charging"
    kind = "reporting"


class MeterMismatch(FaultKind):
    """Register and power disagree: the power measurement is wrong.

    Data: ``power_w`` reads ``factor`` (default 0.5) times the true power — as
    when a current transformer sits on the wrong conductor — while the register
    (and the currents) keep counting the true energy, so the register's delta no
    longer equals the integral of the reported power.
    """

    name = "meter_mismatch"
    defaults: ClassVar[dict[str, float]] = {"factor": 0.5}
    needs = "charging"
    kind = "reporting"


class MeterUnitError(FaultKind):
    """The register is sent in kWh while labelled Wh (OpenEVSE#703).

    Data: ``energy_wh`` is the true register divided by 1000 during the window
    (OCPP: value in kWh, unit "Wh"); power stays correct.
    """

    name = "meter_unit_error"
    needs = "charging"
    kind = "reporting"


class OverTemperature(FaultKind):
    """The charger overheats (blocked cooling fan, loose terminal).

    Data: ``temperature_c`` rises by ``rise_c`` (default 55 °C) above its normal
    value within the first tenth of the window, stays there, and cools with the
    charger's thermal time constant after the window.
    """

    name = "over_temperature"
    defaults: ClassVar[dict[str, float]] = {"rise_c": 55.0}
    needs = "charging"
    kind = "reporting"


class OverCurrent(FaultKind):
    """The car draws more current than the charger offers (faulty onboard charger).

    Physical: the current on every phase is ``factor`` (default 1.35) times the
    normal current, above ``offered_a``; power and register follow.
    """

    name = "over_current"
    defaults: ClassVar[dict[str, float]] = {"factor": 1.35}
    needs = "charging"
    kind = "physical"


class VoltageOutOfBand(FaultKind):
    """The supply voltage leaves the ±10 % band (grid fault, loose neutral).

    Data: every phase voltage is offset by ``offset_pct`` (default +13 %, may be
    negative) of nominal; currents and power are left unchanged. ``phase`` 1-3
    confines it to that phase (a sag on one phase, e.g. -17.4 %: L1-N at 190 V
    while L2/L3 stay at 230 V, as an overloaded feeder or a loose connection on
    one line shows); 0 (default) moves all phases.
    """

    name = "voltage_out_of_band"
    defaults: ClassVar[dict[str, float]] = {"offset_pct": 13.0, "phase": 0.0}
    kind = "reporting"


class PhaseLoss(FaultKind):
    """One phase of a three-phase supply is lost (blown fuse, failed contactor pole).

    Physical: on a three-phase car, phase ``phase`` (default 3) carries no current
    and its voltage reads ~0 V; power drops to two thirds. (Contrast: a
    single-phase car on a three-phase charger is normal — all three voltages stay
    present, only L1 carries current.)
    """

    name = "phase_loss"
    defaults: ClassVar[dict[str, float]] = {"phase": 3.0}
    needs = "three_phase"
    kind = "physical"


class PhaseImbalance(FaultKind):
    """Phase currents differ strongly while all voltages are present (bad contact).

    Physical: on a three-phase car, phase ``phase`` (default 2) carries ``ratio``
    (default 0.4) of the others' current; power is reduced accordingly.
    """

    name = "phase_imbalance"
    defaults: ClassVar[dict[str, float]] = {"phase": 2.0, "ratio": 0.4}
    needs = "three_phase"
    kind = "physical"


class ChargingInterrupted(FaultKind):
    """Energy delivery stops mid-session without any status saying why.

    Physical: power and currents fall to 0 for the window while the status stays
    ``Charging``, the car is not full and ``offered_a`` is unchanged; charging
    resumes at the end. (Contrast: SuspendedEV/SuspendedEVSE pauses are normal —
    they are announced by the status.)
    """

    name = "charging_interrupted"
    needs = "charging"
    default_duration = 900.0
    kind = "physical"


class PowerOscillation(FaultKind):
    """The delivered power swings periodically (unstable control loop, chattering contactor).

    Physical: power alternates between (1 + ``depth``) and (1 − ``depth``) times
    its normal value (default depth 0.7) with period ``period_s`` (default 20 s);
    currents follow and the register integrates the oscillating power.
    """

    name = "power_oscillation"
    defaults: ClassVar[dict[str, float]] = {"period_s": 20.0, "depth": 0.7}
    needs = "charging"
    kind = "physical"


class ClockSkew(FaultKind):
    """The charger's clock is wrong (lost NTP, wrong time zone handling).

    Data: every ``ts`` the charger sends (meter, status, transaction, heartbeat;
    OCPP timestamps) is off by ``offset_s`` (default +900 s) during the window;
    receive times are true.
    """

    name = "clock_skew"
    defaults: ClassVar[dict[str, float]] = {"offset_s": 900.0}
    scope = "charger"
    default_duration = 3600.0
    kind = "reporting"


class IdleBlocking(FaultKind):
    """A car that finished charging stays plugged in, blocking the connector.

    Plan: a session is built so that charging completes at the fault start and
    the car stays connected (status ``SuspendedEV``, transaction open, power 0)
    until the fault end. The truth records when the idling physically began. Short
    idling after charging is normal; this is the long kind.
    """

    name = "idle_blocking"
    needs = "plan"
    default_duration = 4 * 3600.0
    kind = "plan"


class FailedStart(FaultKind):
    """A car is plugged in and authorised, but charging never begins.

    Plan: plug-in (Preparing) at the start, the transaction starts and the status
    turns ``Charging``, yet power stays 0 for the whole window; at the end the
    driver gives up (StopTransaction reason EVDisconnected, Available). The
    session's energy is 0.
    """

    name = "failed_start"
    needs = "plan"
    default_duration = 600.0
    kind = "plan"


class StatusFlapping(FaultKind):
    """The connector status toggles rapidly (bad cable sensing, reconnect loops).

    Delivery: every ``period_s`` (default 10 s) the status alternates between the
    true status and a spurious one (``Unavailable`` when idle, ``SuspendedEVSE``
    while charging); the true status is re-sent at the end. Power is unaffected.
    """

    name = "status_flapping"
    defaults: ClassVar[dict[str, float]] = {"period_s": 10.0}
    default_duration = 600.0
    kind = "delivery"


class ErrorCodeFault(FaultKind):
    """An OCPP error: the connector reports ``Faulted`` with an OCPP 1.6 error code.

    Physical + status: StatusNotification ``Faulted`` with ``errorCode`` (e.g.
    GroundFailure), a vendor error code and info at the start; energy delivery
    and the offered current drop to 0; at the end the connector recovers
    (``NoError`` and its true status). An open transaction stays open.
    """

    name = "error_code"
    default_duration = 900.0
    kind = "physical"


TELEMETRY_FAULTS: dict[str, type[FaultKind]] = {
    k.name: k
    for k in (
        ChargerOffline,
        StaleTelemetry,
        MeterStuck,
        MeterRegression,
        MeterMismatch,
        MeterUnitError,
        OverTemperature,
        OverCurrent,
        VoltageOutOfBand,
        PhaseLoss,
        PhaseImbalance,
        ChargingInterrupted,
        PowerOscillation,
        ClockSkew,
        IdleBlocking,
        FailedStart,
        StatusFlapping,
    )
}
#: OCPP 1.6 ChargePointErrorCodes injectable as faults (all but NoError).
ERROR_CODE_FAULTS: tuple[str, ...] = tuple(c for c in ERROR_CODES if c != "NoError")
FAULTS: tuple[str, ...] = (*TELEMETRY_FAULTS, *ERROR_CODE_FAULTS)


def fault_kind(name: str) -> type[FaultKind]:
    if name in TELEMETRY_FAULTS:
        return TELEMETRY_FAULTS[name]
    if name in ERROR_CODE_FAULTS:
        return ErrorCodeFault
    raise ValueError(f"unknown fault {name!r}; expected one of: {', '.join(FAULTS)}")


@dataclass(frozen=True)
class FaultSpec:
    """One fault to inject.

    ``charger`` is a charger id (``CP0003``) or a 0-based index as a string;
    ``connector`` None means connector 1 for connector faults (ignored for
    charger faults); ``start`` is seconds after the simulation start (None: the
    planner picks a time); ``duration`` None takes the fault's default.
    ``params`` tune the effect (see each fault's docstring).
    """

    name: str
    charger: str
    connector: int | None = None
    start: float | None = None
    duration: float | None = None
    params: dict[str, float] = field(default_factory=dict)
    # Host the fault in a charging session even when its model does not need one
    # (e.g. a sag of one phase while a three-phase car draws ~20 kW, as reported
    # in issue 17): an idle OCPP connector reports too seldom to show it.
    in_session: bool = False

    def __post_init__(self) -> None:
        kind = fault_kind(self.name)  # validates the name early, listing the vocabulary
        unknown = sorted(set(self.params) - set(kind.defaults))
        if unknown:
            raise ValueError(
                f"fault {self.name}: unknown parameter(s) {unknown};"
                f" expected {list(kind.defaults) or 'none'}"
            )
        if self.duration is not None and self.duration <= 0:
            raise ValueError(f"fault {self.name}: duration must be > 0, got {self.duration}")
        if self.start is not None and self.start < 0:
            raise ValueError(f"fault {self.name}: start must be >= 0, got {self.start}")


_UNITS = {"": 1.0, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d*)?)\s*([smhd]?)\s*$")


def parse_duration(text: str) -> float:
    """``90``, ``90s``, ``15m``, ``2h``, ``1d`` → seconds."""
    m = _DURATION.match(text)
    if not m:
        raise ValueError(f"bad duration {text!r}; expected e.g. 90, 90s, 15m, 2h, 1d")
    return float(m.group(1)) * _UNITS[m.group(2)]


def parse_fault(text: str) -> FaultSpec:
    """Parse ``NAME@CHARGER[:CONNECTOR][@START+DURATION][,PARAM=VALUE...]``.

    START and DURATION as in :func:`parse_duration`, START relative to the
    simulation start; PARAMs tune the effect, e.g.
    ``meter_mismatch@CP0003:1@2h+30m,factor=0.3`` (see each fault's docstring).
    """
    text, *extra = text.split(",")
    params: dict[str, float] = {}
    for item in extra:
        key, eq, value = item.partition("=")
        try:
            params[key.strip()] = float(value)
        except ValueError:
            eq = ""
        if not eq or not key.strip():
            raise ValueError(f"bad fault parameter {item!r}; expected NAME=NUMBER")
    parts = text.split("@")
    if len(parts) not in (2, 3) or not parts[0] or not parts[1]:
        raise ValueError(
            f"bad fault {text!r}; expected NAME@CHARGER[:CONNECTOR][@START+DURATION],"
            " e.g. meter_stuck@CP0003:1@2h+30m"
        )
    name = parts[0].strip()
    charger, _, conn = parts[1].partition(":")
    connector = int(conn) if conn else None
    start: float | None = None
    duration: float | None = None
    if len(parts) == 3:
        s, plus, d = parts[2].partition("+")
        start = parse_duration(s)
        duration = parse_duration(d) if plus else None
    return FaultSpec(name, charger.strip(), connector, start, duration, params)
