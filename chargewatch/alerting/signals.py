"""The catalogue of per-connector signals alert rules may name.

One place for the pipeline (which fills a frame with these columns), the rule
loader (an unknown name in an expression is a load-time error) and the docs.

A *frame* is ``dict[str, numpy array]``: every column has one entry per dense
connector id (:class:`chargewatch.model.fleet.ConnectorIndex`). Missing numbers are
NaN, missing strings are ``""``; booleans have no "unknown" (a detector that
does not know says False and leaves its ``_score`` NaN).
"""

from __future__ import annotations

__all__ = [
    "ALERT_LABEL_COLUMNS",
    "EVIDENCE",
    "EVIDENCE_FNS",
    "FAULTS",
    "LABEL_COLUMNS",
    "SIGNALS",
    "SIGNAL_LABELS",
    "Frame",
    "Kind",
    "Signal",
    "empty_frame",
    "frame_length",
]

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

from chargewatch.model.faults import FAULTS
from chargewatch.model.mrec import MREC_CODES

Kind = Literal["number", "bool", "string"]
Frame = Mapping[str, NDArray[Any]]


@dataclass(frozen=True, slots=True)
class Signal:
    name: str
    kind: Kind
    unit: str  # "" when dimensionless
    help: str


# The fault vocabulary lives in chargewatch.model.faults (one definition for all).

#: Label columns of the frame: strings, copied onto every alert of the connector.
#: ``connector`` is the OCPP connector id as text; ``ocpp_version`` ("1.6" or
#: "2.0.1", "" when unknown) tells remediation which command dialect to speak.
LABEL_COLUMNS: tuple[str, ...] = ("charger", "connector", "site", "model", "ocpp_version")

#: The labels every alert carries from the frame (docs/architecture.md, fault vocabulary).
ALERT_LABEL_COLUMNS: tuple[str, ...] = ("charger", "connector", "site")

#: Labels the data may state for a rule that declares them: when the connector's
#: column holds one of the allowed values, it replaces the rule's own (static)
#: value, which stays the fallback. ``mrec``: the ChargeX code the charger stated
#: itself (1.6 vendorErrorCode, 2.0.1 techCode) beats the pairing of its OCPP
#: error code that rules/error_codes.yaml writes. Only a code of the table is
#: taken, so whatever a charger sends never becomes a label value otherwise.
#: ``connector``: "0" where the error is the charger's own (reported on connector
#: 0, column ``error_connector``), for every rule that reads ``error_code``: its
#: alerts are then one per charger, as ChargerOffline's, not one per port.
SIGNAL_LABELS: dict[str, frozenset[str]] = {
    "mrec": frozenset(MREC_CODES),
    "connector": frozenset({"0"}),
}
#: The column that states a label, where it is not the label's own name.
STATED_BY: dict[str, str] = {"connector": "error_connector"}
#: Labels stated for every rule whose expression reads the signal named here,
#: rather than for the rules that declare them (a rule may not set ``connector``).
STATED_FOR: dict[str, str] = {"connector": "error_code"}

_BASE: tuple[Signal, ...] = (
    # meter: the latest value, NaN when none
    Signal("energy_wh", "number", "Wh", "import energy register"),
    Signal("power_w", "number", "W", "active power"),
    Signal("current_l1_a", "number", "A", "current, phase L1 (DC: output current)"),
    Signal("current_l2_a", "number", "A", "current, phase L2"),
    Signal("current_l3_a", "number", "A", "current, phase L3"),
    Signal("voltage_l1_v", "number", "V", "voltage L1-N (DC: output voltage)"),
    Signal("voltage_l2_v", "number", "V", "voltage L2-N"),
    Signal("voltage_l3_v", "number", "V", "voltage L3-N"),
    Signal("temperature_c", "number", "Celsius", "connector or cabinet temperature"),
    Signal("soc_pct", "number", "%", "vehicle state of charge"),
    Signal("offered_a", "number", "A", "current offered to the EV"),
    # status
    Signal("status", "string", "", "OCPP 1.6 ChargePointStatus"),
    # OCPP 2.0.1 NotifyEvent problems arrive here already mapped onto 1.6's
    # codes by the OCPP decoder (collector/decode_ocpp.py), so one rule covers both.
    Signal("error_code", "string", "", "OCPP 1.6 ChargePointErrorCode; NoError when fine"),
    Signal(
        "mrec",
        "string",
        "",
        "ChargeX MREC code the charger stated with its error (vendorErrorCode, techCode); "
        '"" when none',
    ),
    Signal(
        "error_connector",
        "string",
        "",
        '"0" when error_code is the charger\'s own (reported on connector 0); "" otherwise',
    ),
    Signal("status_age_s", "number", "s", "seconds in the current status"),
    Signal("online", "bool", "", "the charger's connection is up"),
    Signal("last_seen_age_s", "number", "s", "seconds since anything was heard from the charger"),
    # session
    # from the session stage (collector/session_stage.py): the engine's open sessions
    Signal("session_active", "bool", "", "a session is open on the connector"),
    Signal(
        "session_energy_wh",
        "number",
        "Wh",
        "register energy of the open session so far; NaN before two readings or without a register",
    ),
    Signal(
        "charging_minutes",
        "number",
        "min",
        "minutes of the open session's power track above the charging threshold; 0 without one",
    ),
    Signal(
        "idle_minutes",
        "number",
        "min",
        "minutes of the open session's power track not above the charging threshold; 0 without one",
    ),
    # the last signed session's check (docs/signatures.md), for 24 h after its stop
    Signal("signature_invalid", "bool", "", "last signed session: signature_status invalid"),
    Signal(
        "signed_energy_mismatch",
        "bool",
        "",
        "last signed session: signed energy differs from the billed beyond the meter resolution",
    ),
    Signal("signature_session_id", "string", "", "that session's id, when either is true"),
    Signal("signature_reason", "string", "", "why, when either is true"),
    # inventory
    Signal("max_power_w", "number", "W", "inventory: rated power"),
    Signal("phases", "number", "", "inventory: 1 or 3 (AC), 0 (DC)"),
    Signal("nominal_voltage_v", "number", "V", "inventory: nominal voltage"),
    Signal("rated_current_a", "number", "A", "inventory: rated current per phase"),
    Signal("site_kind", "string", "", "inventory: the site's kind (fleet.yaml), e.g. residential"),
    # detector thresholds in force for the connector (site and model overrides
    # applied), so alert texts can quote the limit next to the value
    Signal("temperature_limit_c", "number", "Celsius", "over_temperature: level limit"),
    Signal("temperature_rate_limit_c_per_min", "number", "Celsius/min", "over_temperature: rise"),
    Signal("voltage_band_pct", "number", "%", "voltage_out_of_band: allowed band around nominal"),
    Signal("idle_grace_s", "number", "s", "idle_blocking: connected without charging beyond"),
    Signal("meter_stuck_min_power_w", "number", "W", "meter_stuck: power that must advance it"),
)

_DETECTORS: tuple[Signal, ...] = tuple(
    s
    for fault in FAULTS
    for s in (
        Signal(fault, "bool", "", f"detector: {fault} active now"),
        Signal(f"{fault}_score", "number", "", f"detector: {fault} score, NaN when unknown"),
        Signal(
            f"{fault}_for_s",
            "number",
            "s",
            f"detector: how long the open {fault} episode has "
            "lasted since its onset, NaN when none",
        ),
    )
)

_LABELS: tuple[Signal, ...] = tuple(
    Signal(name, "string", "", f"label column: {name}") for name in LABEL_COLUMNS
)

#: Every name an expression may use, with its kind.
SIGNALS: dict[str, Signal] = {s.name: s for s in (*_BASE, *_DETECTORS, *_LABELS)}


_PHASES = ("L1", "L2", "L3")
_VOLTS = ("voltage_l1_v", "voltage_l2_v", "voltage_l3_v")
_AMPS = ("current_l1_a", "current_l2_a", "current_l3_a")


def _row(frame: Frame, names: tuple[str, ...], i: int) -> list[float]:
    out = []
    for name in names:
        col = frame.get(name)
        out.append(float(col[i]) if col is not None else math.nan)
    return out


def _pick(values: list[float], key: Any) -> int:
    """Index of the known value with the largest ``key`` (-1: none known)."""
    known = [k for k, v in enumerate(values) if not math.isnan(v)]
    return max(known, key=lambda k: key(values[k])) if known else -1


def _nominal(frame: Frame, i: int) -> float:
    col = frame.get("nominal_voltage_v")
    return float(col[i]) if col is not None else math.nan


def _worst_voltage(frame: Frame, i: int) -> tuple[str, float]:
    v, nominal = _row(frame, _VOLTS, i), _nominal(frame, i)
    k = _pick(v, lambda x: abs(x - nominal) if not math.isnan(nominal) else 0.0)
    return (_PHASES[k], v[k]) if k >= 0 else ("", math.nan)


def _lowest_voltage(frame: Frame, i: int) -> tuple[str, float]:
    v = _row(frame, _VOLTS, i)
    k = _pick(v, lambda x: -x)
    return (_PHASES[k], v[k]) if k >= 0 else ("", math.nan)


def _largest_current(frame: Frame, i: int) -> tuple[str, float]:
    a = _row(frame, _AMPS, i)
    k = _pick(a, lambda x: x)
    return (_PHASES[k], a[k]) if k >= 0 else ("", math.nan)


def _smallest_current(frame: Frame, i: int) -> float:
    a = [x for x in _row(frame, _AMPS, i) if not math.isnan(x)]
    return min(a) if a else math.nan


def _deviation_pct(frame: Frame, i: int) -> float:
    nominal = _nominal(frame, i)
    return (_worst_voltage(frame, i)[1] / nominal - 1.0) * 100.0 if nominal > 0 else math.nan


#: Evidence for alert texts (``$signals.NAME`` in templates only, not
#: expressions): worked out from the alert's own row of the frame when an alert
#: renders, so a fleet of healthy connectors costs nothing for them.
EVIDENCE_FNS: dict[str, Callable[[Frame, int], float | str]] = {
    "voltage_worst_phase": lambda f, i: _worst_voltage(f, i)[0],
    "voltage_worst_v": lambda f, i: _worst_voltage(f, i)[1],
    "voltage_worst_deviation_pct": _deviation_pct,
    "voltage_lowest_phase": lambda f, i: _lowest_voltage(f, i)[0],
    "voltage_lowest_v": lambda f, i: _lowest_voltage(f, i)[1],
    "current_max_phase": lambda f, i: _largest_current(f, i)[0],
    "current_max_a": lambda f, i: _largest_current(f, i)[1],
    "current_min_a": _smallest_current,
}
EVIDENCE: dict[str, Signal] = {
    s.name: s
    for s in (
        Signal("voltage_worst_phase", "string", "", "evidence: the phase farthest from nominal"),
        Signal("voltage_worst_v", "number", "V", "evidence: that phase's voltage"),
        Signal(
            "voltage_worst_deviation_pct", "number", "%", "evidence: its deviation from nominal"
        ),
        Signal("voltage_lowest_phase", "string", "", "evidence: the phase of lowest voltage"),
        Signal("voltage_lowest_v", "number", "V", "evidence: that phase's voltage"),
        Signal("current_max_phase", "string", "", "evidence: the phase of largest current"),
        Signal("current_max_a", "number", "A", "evidence: that phase's current"),
        Signal("current_min_a", "number", "A", "evidence: the smallest phase current"),
    )
}
assert set(EVIDENCE) == set(EVIDENCE_FNS)


def frame_length(frame: Frame) -> int:
    """Number of connectors in ``frame`` (all columns are equally long)."""
    for col in frame.values():
        return int(col.shape[0])
    return 0


def empty_frame(n: int) -> dict[str, NDArray[Any]]:
    """A frame of ``n`` connectors holding only "unknown": NaN, False, ""."""
    out: dict[str, NDArray[Any]] = {}
    for s in SIGNALS.values():
        if s.kind == "number":
            out[s.name] = np.full(n, np.nan)
        elif s.kind == "bool":
            out[s.name] = np.zeros(n, np.bool_)
        else:
            out[s.name] = np.full(n, "", dtype=object)
    return out
