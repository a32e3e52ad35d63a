"""The alert engine: rule groups on their intervals, hot reload, remediation, persistence."""

from __future__ import annotations

__all__ = ["AlertEngine", "default_rules_dir", "with_inventory"]

import logging
import os
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from chargewatch.alerting.manager import RuleSet
from chargewatch.alerting.remediation import (
    Allowlist,
    Command,
    Planner,
    RateLimiter,
    RateLimits,
    Suppression,
)
from chargewatch.alerting.rule import Group, Rule
from chargewatch.alerting.rulefmt import DEFAULT_INTERVAL_S
from chargewatch.alerting.signals import Frame, Signal, frame_length
from chargewatch.alerting.state import Alert, AlertState, Notification, Transition
from chargewatch.core.resources import default_dir
from chargewatch.model.fleet import ConnectorIndex

log = logging.getLogger("chargewatch.alerting")

SNAPSHOT_VERSION = 1


def with_inventory(frame: Frame, index: ConnectorIndex) -> dict[str, NDArray[Any]]:
    """``frame`` plus the label and inventory columns it lacks, taken from ``index``."""
    n = frame_length(frame) or len(index)
    out = dict(frame)
    if "charger" not in out:
        out["charger"] = np.array([index.keys[i][0] for i in range(n)], dtype=object)
    if "connector" not in out:
        # One string per connector number ("1", "2", ...), not one per connector.
        names: dict[int, str] = {}
        out["connector"] = np.array(
            [names.setdefault(c, str(c)) for c in (index.keys[i][1] for i in range(n))],
            dtype=object,
        )
    if "site" not in out:
        out["site"] = np.array([index.site_of(i) for i in range(n)], dtype=object)
    if "site_kind" not in out:
        kinds = {s: index.fleet.site(s).kind for s in index.site_names}
        out["site_kind"] = np.array([kinds[index.site_of(i)] for i in range(n)], dtype=object)
    if "model" not in out:
        out["model"] = np.array(
            [index.fleet.model_of(index.keys[i][0]) for i in range(n)], dtype=object
        )
    for name in ("max_power_w", "nominal_voltage_v", "rated_current_a"):
        if name not in out:
            out[name] = np.asarray(getattr(index, name)[:n], dtype=np.float64)
    if "phases" not in out:
        out["phases"] = index.phases[:n].astype(np.float64)
    return out


class AlertEngine:
    """Evaluates operator rules over per-connector frames.

    ``rules`` is a directory of rule files or a list of files/directories.
    A broken rule set at construction raises :class:`ConfigError`; a broken
    set at :meth:`reload` keeps the previous rules.
    """

    def __init__(
        self,
        rules: str | Path | Sequence[str | Path],
        index: ConnectorIndex | None = None,
        *,
        allowlist: Allowlist | None = None,
        resend_delay_s: float = 60.0,
        generator_url: str = "",
        catalogue: Mapping[str, Signal] | None = None,
        default_interval_s: float = DEFAULT_INTERVAL_S,
        remediation_limits: RateLimits | None = None,
    ) -> None:
        self.ruleset = RuleSet(rules, catalogue=catalogue, default_interval_s=default_interval_s)
        self.index = index
        self.resend_delay_s = resend_delay_s
        self.generator_url = generator_url
        self.planner = Planner(
            allowlist or {}, limiter=RateLimiter(remediation_limits or RateLimits())
        )
        self._outbox: list[Notification] = []
        self._inventory: dict[str, NDArray[Any]] | None = None
        self._inventory_key = (0, 0)

    # ------------------------------------------------------------ rules

    @property
    def groups(self) -> list[Group]:
        return self.ruleset.groups

    @property
    def rules(self) -> list[Rule]:
        return self.ruleset.rules

    def reload(self, now: float | None = None) -> bool:
        """Reload the rules; on any problem keep the previous ones (see :class:`RuleSet`)."""
        return self.ruleset.reload(now)

    def maybe_reload(self, now: float | None = None) -> bool | None:
        """Reload when the rule files changed: True/False for success, None when unchanged."""
        return self.ruleset.maybe_reload(now)

    # ------------------------------------------------------------ evaluation

    def due(self, now: float, changed: Collection[str] = ()) -> bool:
        """Whether :meth:`evaluate` at ``now`` would evaluate any group, or a
        prompt rule reading ``changed`` (so needs a frame)."""
        return any(g.due(now) for g in self.groups) or self.prompt(changed)

    def prompt(self, signals: Collection[str]) -> bool:
        """Whether any rule is evaluated at once when one of ``signals`` changes
        (:meth:`evaluate`'s ``changed``)."""
        return bool(signals) and any(_prompt(r, signals) for r in self.rules)

    def evaluate(self, now: float, frame: Frame, changed: Collection[str] = ()) -> list[Transition]:
        """Evaluate every group that is due at ``now``; return firing/resolved transitions.

        Call it as often as you like (each batch): groups run on their own intervals.

        ``changed``: signals that changed since the last call at an instant
        known in advance (a liveness deadline: ``DetectorSet.next_deadline``).
        A rule that reads one and whose whole debounce is the detector's
        (`for: 0s`, no range window) is evaluated now as well when its group is
        not due, off the grid: its alert then shows, and is sent, at the moment
        the detector decided, not up to an interval later. The grid is
        unchanged (``last_eval``), and so is every other rule: `for` is
        counted on the grid, and a window's history gets one row per grid
        evaluation (docs/alerting.md, "Time to detect").
        """
        if self.index is not None:
            n = frame_length(frame) or len(self.index)
            # Label columns change only when connectors are added or the fleet is
            # reloaded: built once per size and inventory generation.
            key = (n, self.index.generation)
            if self._inventory is None or self._inventory_key != key:
                self._inventory = with_inventory({"_n": np.zeros(n)}, self.index)
                del self._inventory["_n"]
                self._inventory_key = key
            frame = {**self._inventory, **frame}
        out: list[Transition] = []
        for g in self.groups:
            if g.due(now):
                rules, sched = g.rules, g.stamp(now)
                g.last_eval = sched
            elif changed:
                # Off the grid: `for: 0s`, so no clock is counted from it.
                rules, sched = [r for r in g.rules if _prompt(r, changed)], now
            else:
                continue
            for r in rules:
                ts = r.evaluate(now, frame, sched)
                out += ts
                out += self.planner.observe(now, r, ts, frame)
        for g in self.groups:
            for r in g.rules:
                self._outbox += r.alerts.notifications(
                    now,
                    resend_delay_s=self.resend_delay_s,
                    interval_s=g.interval_s,
                    generator_url=self.generator_url,
                )
        return out

    def notifications(self) -> list[Notification]:
        """Alerts due to be sent (new, resent, resolved) since the last call."""
        out, self._outbox = self._outbox, []
        return out

    def commands(self, now: float | None = None) -> list[Command]:
        """Remediation commands planned by :meth:`evaluate`, each handed out once."""
        return self.planner.take()

    def suppressed(self) -> list[Suppression]:
        """Remediation commands that were due and not sent (paused, rate limits)."""
        return self.planner.take_suppressed()

    def active(self) -> list[Alert]:
        """Pending and firing alerts, for /api/v1/alerts and dashboards."""
        return [
            a
            for r in self.rules
            for a in r.alerts.alerts.values()
            if a.state in (AlertState.PENDING, AlertState.FIRING)
        ]

    # ------------------------------------------------------------ persistence

    def snapshot(self) -> dict[str, Any]:
        """JSON-able state: alerts (with their `for` clocks), window history, remediation."""
        return {
            "version": SNAPSHOT_VERSION,
            "groups": {g.name: g.last_eval for g in self.groups},
            "rules": {r.ident: r.snapshot() for r in self.rules},
            "remediation": self.planner.snapshot(),
            "remediation_limits": self.planner.limits_snapshot(),
        }

    def restore(self, data: Mapping[str, Any]) -> None:
        if data.get("version") != SNAPSHOT_VERSION:
            log.warning("ignoring alert state snapshot of version %r", data.get("version"))
            return
        rules = data.get("rules", {})
        for r in self.rules:
            if r.ident in rules:
                r.restore(rules[r.ident])
        last = data.get("groups", {})
        for g in self.groups:
            if last.get(g.name) is not None:
                g.last_eval = float(last[g.name])
        self.planner.restore(data.get("remediation", []))
        self.planner.limits_restore(data.get("remediation_limits", {}))


def _prompt(rule: Rule, changed: Collection[str]) -> bool:
    """A rule evaluated at once when a signal of ``changed`` changes: it reads
    one, and the detector's decision is all of its debounce (no `for`, no
    range window, whose history is one row per grid evaluation)."""
    return rule.hold_s == 0 and rule.history is None and not rule.expr.signals.isdisjoint(changed)


def default_rules_dir() -> Path:
    """The shipped rules: ``rules/`` in a checkout, ``_defaults/rules`` in a wheel."""
    try:
        return default_dir("rules")
    except FileNotFoundError:
        return Path(os.environ.get("CHARGEWATCH_RULES", "rules"))
