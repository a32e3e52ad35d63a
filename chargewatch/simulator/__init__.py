"""A seeded fleet simulator: realistic sessions, injectable faults, ground truth.

Pure generation (no I/O) lives in :class:`Simulation`; publishing to a broker in
:mod:`chargewatch.simulator.publish`; the ``chargewatch simulate`` command in
:mod:`chargewatch.cli.simulate`.

Example::

    from chargewatch.simulator import FaultSpec, SimConfig, Simulation

    sim = Simulation(SimConfig(
        chargers=20, sites=3, seed=7, duration=6 * 3600, interval=5.0, batch=12,
        faults=(FaultSpec("meter_stuck", "CP0003", 1, start=3600, duration=1800),),
        random_faults=5,
    ))
    fleet = sim.fleet()                         # chargewatch.model.fleet.Fleet
    for recv, topic, payload in sim.messages(): # time-ordered MQTT messages
        ...
    for batch in sim.meter_batches():           # collector MeterBatch, no JSON (fastest)
        ...
    truth = sim.truth()                         # .sessions, .faults, .normals
    sim.write_capture("capture.jsonl")
    sim.write_truth("truth.jsonl")
    sim.write_fleet("fleet.yaml")

Labelled *normal* datasets: ``SimConfig().with_scenario(name)`` for each name in
:data:`SCENARIOS` (suspended_ev, suspended_evse, high_soc_taper, dc_curves,
single_phase_cars, kw_power, ocpp_quirks, idle_after_charging, reboots, telemetry_gaps,
quiet, default). Faults: :data:`FAULTS` (the telemetry vocabulary plus
every OCPP 1.6 error code); each fault class in :mod:`.fault_models` documents what it
means physically and how it looks in the data. More in docs/simulator.md.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from chargewatch.simulator.fault_models import FAULTS, FaultSpec, parse_fault
from chargewatch.simulator.scenarios import DEFAULT_START, SCENARIOS, SimConfig

if TYPE_CHECKING:
    from chargewatch.simulator.simulation import Simulation, write_capture
    from chargewatch.simulator.truth import FaultTruth, NormalTruth, SessionTruth, Truth

# The generator (numpy, scipy) is loaded on first use, not with the package:
# ``chargewatch simulate --help`` needs only the fault and scenario vocabularies.
_LAZY = {
    "Simulation": "simulation",
    "write_capture": "simulation",
    "FaultTruth": "truth",
    "NormalTruth": "truth",
    "SessionTruth": "truth",
    "Truth": "truth",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "DEFAULT_START",
    "FAULTS",
    "SCENARIOS",
    "FaultSpec",
    "FaultTruth",
    "NormalTruth",
    "SessionTruth",
    "SimConfig",
    "Simulation",
    "Truth",
    "parse_fault",
    "write_capture",
]
