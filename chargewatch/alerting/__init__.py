"""Operator alert rules: expression language, evaluation and alert state (pure, no I/O).

Integration surface for the pipeline (the collector owns I/O and wiring)::

    from chargewatch.alerting import AlertEngine

    engine = AlertEngine("rules/", index, allowlist={"*": ["Reset"]})
    engine.restore(ledger.load("alert_state"))            # after a restart
    ...
    # once per batch (groups run on their own intervals); ``now`` is the
    # batch's clock (capture receive time in replay), never time.time() here:
    transitions = engine.evaluate(now, frame)              # list[Transition]
    for t in transitions:
        alerts_jsonl.write(json.dumps(t.to_json()) + "\\n")  # the alerts.jsonl line
    notifier.send(engine.notifications())                  # new, resent, resolved
    for cmd in engine.commands(now):                       # remediation, each once
        mqtt.publish(cmd.topic, cmd.frame)
    for s in engine.suppressed():                          # over a rate limit, or paused:
        log.warning("%s not sent: %s", s.action, s.detail) # not sent; the alert escalated
    engine.maybe_reload(now)                               # hot reload on file change
    ledger.save("alert_state", engine.snapshot())          # JSON-able

``frame`` is ``dict[str, numpy array]``, one entry per dense connector id, with
the columns of :data:`chargewatch.alerting.signals.SIGNALS` (missing columns
read as unknown; label and inventory columns are filled from ``index``).
"""

from chargewatch.alerting.engine import AlertEngine, default_rules_dir, with_inventory
from chargewatch.alerting.expr import ExprError, compile_expr, parse_duration
from chargewatch.alerting.manager import RuleSet
from chargewatch.alerting.remediation import (
    BucketSpec,
    Command,
    RateLimits,
    Suppression,
    load_allowlist,
)
from chargewatch.alerting.signals import (
    FAULTS,
    SIGNALS,
    Frame,
    Signal,
    empty_frame,
)
from chargewatch.alerting.state import AlertState, Notification, Transition

__all__ = [
    "FAULTS",
    "SIGNALS",
    "AlertEngine",
    "AlertState",
    "BucketSpec",
    "Command",
    "ExprError",
    "Frame",
    "Notification",
    "RateLimits",
    "RuleSet",
    "Signal",
    "Suppression",
    "Transition",
    "compile_expr",
    "default_rules_dir",
    "empty_frame",
    "load_allowlist",
    "parse_duration",
    "with_inventory",
]
