"""Where an OCPP sampledValue goes in a meter row, and how its unit converts.

The rules (OCPP 1.6 SampledValue and 2.0.1 SampledValueType, with their defaults
measurand = Energy.Active.Import.Register, unit = Wh, location = Outlet):

* Only what flows through the outlet to the EV goes in the batch: energy, power,
  current and voltage at location Outlet (the default). Inlet (grid side,
  includes the charger's own consumption), Cable and EV readings of those
  measurands are kept out, except on connector 0 (the station's main meter,
  OCPP 1.6 connectorId 0 / 2.0.1 evseId 0), whose Inlet readings are its readings; the
  decoder maps them before calling :func:`plan`.
* Temperature (1.6 only; 2.0.1 moved it to NotifyEvent monitors) from Outlet,
  Cable, Body or Inlet goes to ``temperature_c``, the hottest one winning: the
  over-temperature detector wants the worst spot. EV (battery) temperature is
  kept out.
* SoC is the EV's by nature: accepted from any location (chargers send it with
  location EV or none).
* Current.Offered is the pilot/profile limit: accepted from any location.
* Phases: "L1" and "L1-N" both mean line 1 to neutral; no phase means the total
  (power, energy) or, for current and voltage, line 1 (single-phase and DC
  chargers send it that way). Line-to-line voltages (L1-L2, L2-L3, L3-L1) are
  kept out, not converted: dividing by √3 assumes a balanced system, which is
  exactly what the phase-imbalance detector must not assume. Neutral current
  ("N") is kept out.
* Per-phase Power.Active.Import with no total is summed into ``power_w`` by the
  decoder (Growatt THOR 11A/S, lbbrhzn/ocpp#1709).
* Everything else (export, reactive, interval, frequency, power factor, RPM,
  Power.Offered) is kept out of the batch but not rejected.

When a non-energy sample has no unit, its natural unit is assumed (W, A, V,
Celsius, Percent) instead of the spec's literal default Wh, which would make
every unit-less voltage an error; that is counted as the ``unit_defaulted``
quirk.
"""

from __future__ import annotations

__all__ = [
    "ENERGY",
    "FIELD_RANGE",
    "KEPT_OUT",
    "NATURAL_UNIT",
    "POWER",
    "POWER_PHASE",
    "UNITS",
    "Plan",
    "Target",
    "in_range",
    "plan",
    "target",
]

import math
from functools import cache, lru_cache
from typing import Final

from chargewatch.model.batch import FIELD_INDEX

ENERGY: Final = FIELD_INDEX["energy_wh"]
POWER: Final = FIELD_INDEX["power_w"]
_CURRENT = (FIELD_INDEX["current_l1_a"], FIELD_INDEX["current_l2_a"], FIELD_INDEX["current_l3_a"])
_VOLTAGE = (FIELD_INDEX["voltage_l1_v"], FIELD_INDEX["voltage_l2_v"], FIELD_INDEX["voltage_l3_v"])
_TEMPERATURE: Final = FIELD_INDEX["temperature_c"]
_SOC: Final = FIELD_INDEX["soc_pct"]
_OFFERED: Final = FIELD_INDEX["offered_a"]

#: Target for per-phase Power.Active.Import: summed by the decoder into power_w.
POWER_PHASE: Final = -2
#: Target for samples kept out of the batch (not an error).
KEPT_OUT: Final = -1

# (scale, offset): si = value * scale + offset
_Conv = tuple[float, float]

#: Unit conversions per quantity. 1.6's schema spells Celsius "Celcius" too (a
#: typo in the spec's own schema), so both are accepted as the spec's.
UNITS: Final[dict[str, dict[str, _Conv]]] = {
    "energy": {"Wh": (1.0, 0.0), "kWh": (1000.0, 0.0)},
    "power": {"W": (1.0, 0.0), "kW": (1000.0, 0.0)},
    "current": {"A": (1.0, 0.0)},
    "voltage": {"V": (1.0, 0.0)},
    "temperature": {
        "Celsius": (1.0, 0.0),
        "Celcius": (1.0, 0.0),
        "K": (1.0, -273.15),
        "Fahrenheit": (5.0 / 9.0, -32.0 * 5.0 / 9.0),
    },
    "percent": {"Percent": (1.0, 0.0)},
}

NATURAL_UNIT: Final[dict[str, str]] = {
    "energy": "Wh",
    "power": "W",
    "current": "A",
    "voltage": "V",
    "temperature": "Celsius",
    "percent": "Percent",
}

#: Plausible range per field after conversion; outside it a sample is rejected
#: as ``out_of_range``. Wide on purpose: they catch garbage and unit slips by
#: 1000×, not faults (faults are the detectors' business). Import power and
#: current tolerate small negatives: meters report noise around zero when idle.
FIELD_RANGE: Final[dict[int, tuple[float, float]]] = {
    ENERGY: (0.0, 1e12),  # 1 TWh: no charger's lifetime register gets there
    POWER: (-1_000.0, 2_000_000.0),
    **{i: (-10.0, 3_000.0) for i in _CURRENT},
    **{i: (0.0, 2_000.0) for i in _VOLTAGE},
    _TEMPERATURE: (-60.0, 250.0),
    _SOC: (0.0, 100.0),
    _OFFERED: (0.0, 3_000.0),
    POWER_PHASE: (-1_000.0, 1_000_000.0),
}

_PHASE_LINE = {
    None: 0,
    "L1": 0,
    "L1-N": 0,
    "L2": 1,
    "L2-N": 1,
    "L3": 2,
    "L3-N": 2,
}


class Target:
    """Where one (measurand, phase, location) goes: a field index and a quantity.

    ``line`` (0..2) is set for per-phase power, which the decoder sums.
    """

    __slots__ = ("field", "line", "quantity")

    def __init__(self, field: int, quantity: str, line: int = 0) -> None:
        self.field = field
        self.quantity = quantity
        self.line = line

    @property
    def kept_out(self) -> bool:
        return self.field == KEPT_OUT


_OUT = Target(KEPT_OUT, "")
_OUTLET_ONLY = frozenset({"Outlet"})
_HEAT_SPOTS = frozenset({"Outlet", "Cable", "Body", "Inlet"})


@cache  # arguments are schema-checked enum values, so the cache stays small
def target(measurand: str, phase: str | None, location: str) -> Target:
    """The batch field of a sample (``kept_out`` when it has none)."""
    if measurand == "Energy.Active.Import.Register":
        if phase is None and location in _OUTLET_ONLY:
            return Target(ENERGY, "energy")
        return _OUT
    if measurand == "Power.Active.Import":
        if location not in _OUTLET_ONLY:
            return _OUT
        if phase is None:
            return Target(POWER, "power")
        line = _PHASE_LINE.get(phase)
        return Target(POWER_PHASE, "power", line) if line is not None else _OUT
    if measurand in ("Current.Import", "Voltage"):
        line = _PHASE_LINE.get(phase)
        if line is None or location not in _OUTLET_ONLY:
            return _OUT
        if measurand == "Voltage":
            return Target(_VOLTAGE[line], "voltage")
        return Target(_CURRENT[line], "current")
    if measurand == "Temperature":
        return Target(_TEMPERATURE, "temperature") if location in _HEAT_SPOTS else _OUT
    if measurand == "SoC":
        return Target(_SOC, "percent")
    if measurand == "Current.Offered":
        return Target(_OFFERED, "current")
    return _OUT


def in_range(field: int, value: float) -> bool:
    low, high = FIELD_RANGE[field]
    return low <= value <= high and not math.isnan(value)


_UNIT_LOWER: Final = {
    unit.lower(): (quantity, unit) for quantity, table in UNITS.items() for unit in table
}


class Plan:
    """Everything needed to turn one kind of sample into a batch value, worked out once.

    ``error`` is set (and the rest unused) when the unit does not fit the
    measurand; ``quirk`` names the accepted deviation the sample shows, if any.
    """

    __slots__ = ("error", "field", "high", "line", "low", "offset", "quirk", "scale", "unit")

    def __init__(
        self, tgt: Target, unit: str, conv: tuple[float, float], quirk: str, error: str
    ) -> None:
        self.field = tgt.field
        self.line = tgt.line
        self.unit = unit
        self.scale, self.offset = conv
        self.low, self.high = FIELD_RANGE[tgt.field]
        self.quirk = quirk
        self.error = error


# Keyed by strings the charger chose (2.0.1 units are free text): bounded.
@lru_cache(maxsize=2048)
def plan(
    measurand: str, phase: str | None, location: str, unit: str | None, strict_units: bool
) -> Plan | None:
    """How to read a sample; None when it is kept out of the batch.

    ``strict_units`` (1.6, whose units are a schema enum): no case-insensitive
    matching; 2.0.1 units are free text and a case slip of a known unit is
    accepted as the ``unit_case`` quirk.
    """
    tgt = target(measurand, phase, location)
    if tgt.kept_out:
        return None
    table = UNITS[tgt.quantity]
    quirk = ""
    if unit is None:
        unit = NATURAL_UNIT[tgt.quantity]
        if tgt.quantity != "energy":
            quirk = "unit_defaulted"
    conv = table.get(unit)
    if conv is None and not strict_units:
        found = _UNIT_LOWER.get(unit.lower())
        if found is not None and found[0] == tgt.quantity:
            conv = table[found[1]]
            quirk = "unit_case"
    if conv is None:
        return Plan(tgt, unit, (1.0, 0.0), "", f"unit {unit!r} is not a unit of {measurand}")
    return Plan(tgt, unit, conv, quirk, "")
