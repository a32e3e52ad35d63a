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
    "FAULTS",
    "LABEL_COLUMNS",
    "SIGNALS",
    "Frame",
    "Kind",
    "Signal",
    "empty_frame",
    "frame_length",
]

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

from chargewatch.model.faults import FAULTS

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
    Signal("status_age_s", "number", "s", "seconds in the current status"),
    Signal("online", "bool", "", "the charger's connection is up"),
    Signal("last_seen_age_s", "number", "s", "seconds since anything was heard from the charger"),
    # session
    Signal("session_active", "bool", "", "a transaction is running"),
    Signal("session_energy_wh", "number", "Wh", "energy of the running session"),
    Signal("charging_minutes", "number", "min", "minutes of the session spent charging"),
    Signal("idle_minutes", "number", "min", "minutes of the session spent not charging"),
    # inventory
    Signal("max_power_w", "number", "W", "inventory: rated power"),
    Signal("phases", "number", "", "inventory: 1 or 3 (AC), 0 (DC)"),
    Signal("nominal_voltage_v", "number", "V", "inventory: nominal voltage"),
    Signal("rated_current_a", "number", "A", "inventory: rated current per phase"),
)

_DETECTORS: tuple[Signal, ...] = tuple(
    s
    for fault in FAULTS
    for s in (
        Signal(fault, "bool", "", f"detector: {fault} active now"),
        Signal(f"{fault}_score", "number", "", f"detector: {fault} score, NaN when unknown"),
    )
)

_LABELS: tuple[Signal, ...] = tuple(
    Signal(name, "string", "", f"label column: {name}") for name in LABEL_COLUMNS
)

#: Every name an expression may use, with its kind.
SIGNALS: dict[str, Signal] = {s.name: s for s in (*_BASE, *_DETECTORS, *_LABELS)}


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
