"""What the demo makes happen in its first simulated hour.

The demo runs on a simulated clock (``--speed``, 60 x wall time by default),
shared by the simulator's meter time and the collector: the *shipped* rules,
with their `for:`, delays and cooldowns, see an hour of fleet in a minute.
This module only schedules the story: faults on chosen chargers, a few short
top-up sessions, and chargers whose tariff is missing.
"""

from __future__ import annotations

__all__ = [
    "UNPRICED_TARIFF",
    "demo_faults",
    "finishing",
    "mark_unpriced",
    "short_sessions",
]

from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from chargewatch.model.fleet import ChargerSpec, Fleet
    from chargewatch.simulator import FaultSpec, Simulation
    from chargewatch.simulator.plan import ConnInfo, Plan, Session

# A tariff the demo's fleet names but does not load: its chargers' sessions are
# recorded as unpriced, as a site whose tariff is not yet published would be.
UNPRICED_TARIFF = "not-yet-published"

# (fault, start s, duration s), simulated time from the start, against the
# shipped rules (rules/error_codes.yaml, rules/faults.yaml):
#   GroundFailure          for 1m, no remote action: fires and resolves
#   ConnectorLockFailure   for 2m, UnlockConnector 1m later; the fault clears
#                          inside the 5m cooldown: auto-remediated
#   InternalError          for 2m, Reset 2m later and again after a 10m
#                          cooldown; outlasts the second: escalated (~25 min)
#   over_temperature, phase_loss: telemetry detectors on charging connectors
_SCHEDULE = (
    ("GroundFailure", 80.0, 280.0),
    ("ConnectorLockFailure", 120.0, 360.0),
    ("InternalError", 60.0, 1800.0),
    ("over_temperature", 160.0, 500.0),
    ("phase_loss", 240.0, 400.0),
)


def demo_faults(chargers: list[ChargerSpec]) -> tuple[FaultSpec, ...]:
    """The schedule above, each fault on its own charger (phase loss on a three-phase one)."""
    from chargewatch.simulator.fault_models import FaultSpec  # noqa: PLC0415 - cheap --help

    three_phase = [c.id for c in chargers if c.phases == 3 and not c.is_dc]
    taken = set(three_phase[:1])
    others = [c.id for c in chargers if c.id not in taken and not c.is_dc]
    faults = []
    for name, start, duration in _SCHEDULE:
        pool = three_phase if name == "phase_loss" else others
        if pool:
            faults.append(FaultSpec(name, pool.pop(0), 1, start=start, duration=duration))
    return tuple(faults)


def mark_unpriced(fleet: Fleet, every: int = 5, finishing: Sequence[str] = ()) -> Fleet:
    """Every ``every``-th charger gets a tariff that is not loaded, so unpriced
    sessions show. ``finishing``: the chargers whose sessions end within the
    demo, in the order they end. The demo starts at the wall clock's time of
    day, so which sessions end in its hour changes with it: when two or more
    chargers finish one, at least one of them is unpriced and one priced."""
    from chargewatch.model.fleet import Fleet  # noqa: PLC0415 - cheap --help

    unpriced = {k for i, k in enumerate(fleet.chargers) if i % every == every - 1}
    ending = list(dict.fromkeys(finishing))
    if len(ending) >= 2:
        if not unpriced & set(ending):
            unpriced.add(ending[0])
        if set(ending) <= unpriced:
            unpriced.discard(ending[-1])
    chargers = {
        k: replace(c, tariff=UNPRICED_TARIFF) if k in unpriced else c
        for k, c in fleet.chargers.items()
    }
    return Fleet(fleet.sites, chargers, fleet.file)


def finishing(sim: Simulation, until: float) -> list[str]:
    """The chargers whose planned sessions stop before ``until``, by stop time."""
    t0 = sim.config.start
    ends = sorted((s.stop, s.conn.charger) for s in sim.plan.sessions if t0 < s.stop < until)
    return [charger for _, charger in ends]


def short_sessions(
    sim: Simulation, n: int = 6, first: float = 120.0, every: float = 240.0
) -> list[str]:
    """``n`` drivers plug in for a 15-25 minute top-up, one every ``every`` s.

    Planned sessions last hours at workplaces and homes: in the demo's hour
    few of those that start would also end. So short sessions are added on AC
    connectors of chargers without a fault (cars copied from planned
    sessions). Each goes to a connector free over its own stay: one idle then
    if there is one, else one whose planned drivers in that stay only arrive
    after the demo's start: the top-up's driver comes instead (their sessions
    are dropped). Asking for connectors idle for the whole hour, as before,
    found none at busy hours (12 chargers from 18:50 UTC: every AC connector
    without a fault held or expected a car) and the demo had no top-up. A
    top-up no connector can take is left out. The plan is changed before any
    message is generated, so the simulated data (transaction start and stop,
    status, meter) stays self-consistent. Returns the chargers given one, in
    order.
    """
    import copy  # noqa: PLC0415 - cheap --help

    t0 = sim.config.start
    plan = sim.plan
    faulted = {f.charger for f in plan.faults}
    conns = [c for c in plan.conns if c.phases and c.charger not in faulted]
    cars = [s for s in plan.sessions if s.conn.phases]
    chargers: list[str] = []
    added: list[Session] = []
    for picked, template in enumerate(cars[:n]):
        plug_in = t0 + first + every * picked
        unplug = plug_in + 20.0 + 900.0 + 120.0 * picked + 60.0
        conn = _free_connector(plan, conns, plug_in, unplug, t0, added)
        if conn is None:
            continue
        # The top-up's driver comes instead of those planned meanwhile.
        plan.sessions = [s for s in plan.sessions if not _clashes(s, conn.idx, plug_in, unplug)]
        s = copy.copy(template)
        s.conn = conn
        s.plug_in = plug_in
        s.start = s.plug_in + 20.0
        s.stop = s.start + 900.0 + 120.0 * picked
        s.unplug = s.stop + 60.0
        s.stop_reason = "EVDisconnected"
        s.windows, s.tags = [], ["top_up"]  # a plain top-up: no pauses
        s.transaction_id = 90_000 + picked
        s.finalize()
        plan.sessions.append(s)
        added.append(s)
        chargers.append(conn.charger)
    plan.sessions.sort(key=lambda s: (s.start, s.conn.idx))
    # The simulation derived its event list and sample engine from the plan.
    from chargewatch.simulator.timeline import build_events  # noqa: PLC0415
    from chargewatch.simulator.timeseries import Engine  # noqa: PLC0415

    sim.engine = Engine(sim.plan)
    sim.events = build_events(sim.plan, sim.latency)
    return chargers


# Kept clear before a plug-in and after an unplug, as the planner keeps
# sessions apart from those that host faults.
_MARGIN_S = 120.0


def _clashes(s: Session, row: int, plug_in: float, unplug: float) -> bool:
    """``s`` holds connector ``row`` within [plug_in, unplug] or its margins."""
    return s.conn.idx == row and s.plug_in < unplug + _MARGIN_S and plug_in - _MARGIN_S < s.unplug


def _free_connector(
    plan: Plan,
    conns: list[ConnInfo],
    plug_in: float,
    unplug: float,
    t0: float,
    added: list[Session],
) -> ConnInfo | None:
    """A connector for a stay [plug_in, unplug]: idle then, else one whose
    clashing sessions all arrive after the start ``t0`` (none is under way
    when the demo begins) and are not top-ups ``added`` before; never one
    whose charger reboots meanwhile."""
    down = {e.charger for e in plan.normals if e.connector is None and e.start < unplug
            and plug_in < e.end and not e.name.startswith("ocpp_quirk")}  # fmt: skip
    held: dict[int, list[Session]] = {}
    for s in plan.sessions:
        if _clashes(s, s.conn.idx, plug_in, unplug):
            held.setdefault(s.conn.idx, []).append(s)
    ours = {id(s) for s in added}  # by identity: sessions hold arrays, == is no use
    usable = [c for c in conns if c.charger not in down]
    idle = [c for c in usable if not held.get(c.idx)]
    if idle:
        return idle[0]
    # Drivers planned to arrive within the demo: the top-up's driver comes instead.
    for c in usable:
        if all(s.plug_in > t0 and id(s) not in ours for s in held.get(c.idx, [])):
            return c
    return None
