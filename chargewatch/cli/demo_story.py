"""What the demo makes happen in its first minute, and the demo-only rule timings that let it.

The demo runs on the wall clock (the collector, the simulator's meter time and
the rules all read real time), so to show alerts firing, resolving, a
remediation and an escalation inside 60 s it compresses the *shipped* rules'
timings by ``TIME_SCALE`` into a copy under its data folder. The shipped rules
are never changed; the copy says at its top what it is.
"""

from __future__ import annotations

__all__ = [
    "TIME_SCALE",
    "UNPRICED_TARIFF",
    "demo_faults",
    "demo_rules",
    "mark_unpriced",
    "short_sessions",
]

from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from chargewatch.model.fleet import ChargerSpec, Fleet
    from chargewatch.simulator import FaultSpec, Simulation

# Rule `for:`, `keep_firing_for:`, group intervals and action delays and
# cooldowns run this many times faster in the demo (2m -> 6 s, 10m -> 30 s).
TIME_SCALE = 20.0
# Remediation tries once in the demo, so a fault that outlasts one cooldown
# escalates within the minute (the shipped rules try up to twice).
DEMO_MAX_ATTEMPTS = 1
# A tariff the demo's fleet names but does not load: its chargers' sessions are
# recorded as unpriced, as a site whose tariff is not yet published would be.
UNPRICED_TARIFF = "not-yet-published"

# (fault, start s, duration s): what the story needs, by kind of charger.
#   GroundFailure          fires and resolves (no remote action: an electrician must look)
#   ConnectorLockFailure   UnlockConnector sent, the fault clears inside the cooldown:
#                          auto-remediated
#   InternalError          Reset sent, the fault outlasts the cooldown: escalated
#   over_temperature, phase_loss: telemetry detectors on charging connectors
_SCHEDULE = (
    ("GroundFailure", 4.0, 14.0),
    ("ConnectorLockFailure", 6.0, 18.0),
    ("InternalError", 3.0, 48.0),
    ("over_temperature", 8.0, 25.0),
    ("phase_loss", 12.0, 20.0),
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


def mark_unpriced(fleet: Fleet, every: int = 5) -> Fleet:
    """Every ``every``-th charger gets a tariff that is not loaded, so unpriced sessions show."""
    from chargewatch.model.fleet import Fleet  # noqa: PLC0415 - cheap --help

    chargers = {
        k: replace(c, tariff=UNPRICED_TARIFF) if i % every == every - 1 else c
        for i, (k, c) in enumerate(fleet.chargers.items())
    }
    return Fleet(fleet.sites, chargers, fleet.file)


def _scaled(text: Any) -> str:
    from chargewatch.alerting.expr import parse_duration  # noqa: PLC0415 - cheap --help

    # Whole seconds (the rule format's unit); a nonzero duration stays nonzero.
    seconds = parse_duration(str(text)) / TIME_SCALE
    return f"{max(1, round(seconds)) if seconds else 0}s"


def _compress_rule(rule: dict[str, Any]) -> None:
    for key in ("for", "keep_firing_for"):
        if key in rule:
            rule[key] = _scaled(rule[key])
    for action in rule.get("actions") or ():
        for key in ("delay", "cooldown"):
            if key in action:
                action[key] = _scaled(action[key])
        action["max_attempts"] = min(int(action.get("max_attempts", 1)), DEMO_MAX_ATTEMPTS)


def demo_rules(shipped: Path, out: Path) -> Path:
    """Copy every rule file of ``shipped`` into ``out`` with its timings compressed."""
    import yaml  # noqa: PLC0415 - cheap --help

    out.mkdir(parents=True, exist_ok=True)
    for src in sorted(shipped.glob("*.yaml")):
        doc = yaml.safe_load(src.read_text(encoding="utf-8"))
        if not isinstance(doc, dict) or "groups" not in doc:
            continue  # not a rule file (a test file, say)
        for group in doc["groups"]:
            if "interval" in group:
                group["interval"] = _scaled(group["interval"])
            for rule in group.get("rules") or ():
                _compress_rule(rule)
        header = (
            f"# The demo's copy of {src}: every `for`, `keep_firing_for`, group interval\n"
            f"# and action delay/cooldown divided by {TIME_SCALE:g}, at most "
            f"{DEMO_MAX_ATTEMPTS} attempt(s),\n"
            "# so the story fits in a minute of wall time. Not for production.\n"
        )
        (out / src.name).write_text(
            header + yaml.safe_dump(doc, sort_keys=False, allow_unicode=True), encoding="utf-8"
        )
    return out


def short_sessions(sim: Simulation, n: int = 6, first: float = 4.0, every: float = 5.0) -> int:
    """``n`` drivers plug in during the first half minute and leave ~25 s later.

    Real sessions last hours; on the wall clock none that the demo sees start
    would end during it. So ``n`` short sessions are added on AC connectors
    that are idle around the start (cars copied from planned sessions). The
    plan is changed before any message is generated, so the simulated data
    (transaction start and stop, status, meter) stays self-consistent.
    """
    import copy  # noqa: PLC0415 - cheap --help

    t0 = sim.config.start
    plan = sim.plan
    busy = {s.conn.idx for s in plan.sessions if s.plug_in < t0 + 600 and s.unplug > t0 - 300}
    faulted = {f.charger for f in sim.config.faults}
    idle = [c for c in plan.conns if c.phases and c.idx not in busy and c.charger not in faulted]
    cars = [s for s in plan.sessions if s.conn.phases]
    picked = 0
    for conn, template in zip(idle[:n], cars, strict=False):
        s = copy.copy(template)
        s.conn = conn
        s.plug_in = t0 + first + every * picked
        s.start = s.plug_in + 3.0
        s.stop = s.start + 25.0
        s.unplug = s.stop + 2.0
        s.stop_reason = "EVDisconnected"
        s.windows, s.tags = [], []  # no pauses inside 25 s
        s.transaction_id = 90_000 + picked
        s.finalize()
        plan.sessions.append(s)
        picked += 1
    plan.sessions.sort(key=lambda s: (s.start, s.conn.idx))
    # The simulation derived its event list and sample engine from the plan.
    from chargewatch.simulator.timeline import build_events  # noqa: PLC0415
    from chargewatch.simulator.timeseries import Engine  # noqa: PLC0415

    sim.engine = Engine(sim.plan)
    sim.events = build_events(sim.plan, sim.latency)
    return picked
