"""The telemetry fault vocabulary (docs/architecture.md): the ``fault`` label of alerts, the
detectors' names and the rules' signal names. Defined once, here."""

from __future__ import annotations

__all__ = ["FAULTS"]

#: In documentation order.
FAULTS: tuple[str, ...] = (
    "charger_offline",
    "stale_telemetry",
    "meter_stuck",
    "meter_regression",
    "meter_mismatch",
    "meter_unit_error",
    "over_temperature",
    "over_current",
    "voltage_out_of_band",
    "phase_loss",
    "phase_imbalance",
    "charging_interrupted",
    "power_oscillation",
    "clock_skew",
    "idle_blocking",
    "failed_start",
    "status_flapping",
)
