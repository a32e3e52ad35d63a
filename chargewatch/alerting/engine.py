"""The alert engine: rule groups on their intervals, hot reload, remediation, persistence."""

from __future__ import annotations

__all__ = ["AlertEngine", "with_inventory"]

import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from prometheus_client import Gauge

from chargewatch.alerting.remediation import Allowlist, Command, Planner
from chargewatch.alerting.rule import Group, Rule
from chargewatch.alerting.rulefmt import DEFAULT_INTERVAL_S, check_files, rule_files
from chargewatch.alerting.signals import Frame, Signal, frame_length
from chargewatch.alerting.state import Alert, AlertState, Notification, Transition
from chargewatch.errors import ConfigError
from chargewatch.fleet import ConnectorIndex

log = logging.getLogger("chargewatch.alerting")

RELOAD_SUCCESS = Gauge(
    "chargewatch_rules_last_reload_success",
    "Whether the last rule reload succeeded (1) or kept the previous rules (0).",
)
RELOAD_TIME = Gauge(
    "chargewatch_rules_last_reload_success_timestamp_seconds",
    "When the rules were last loaded successfully (the engine's clock).",
)
SNAPSHOT_VERSION = 1


def with_inventory(frame: Frame, index: ConnectorIndex) -> dict[str, NDArray[Any]]:
    """``frame`` plus the label and inventory columns it lacks, taken from ``index``."""
    n = frame_length(frame) or len(index)
    out = dict(frame)
    if "charger" not in out:
        out["charger"] = np.array([index.keys[i][0] for i in range(n)], dtype=object)
    if "connector" not in out:
        out["connector"] = np.array([str(index.keys[i][1]) for i in range(n)], dtype=object)
    if "site" not in out:
        out["site"] = np.array([index.site_of(i) for i in range(n)], dtype=object)
    if "model" not in out:
        out["model"] = np.array(
            [index.fleet.charger(index.keys[i][0]).model for i in range(n)], dtype=object
        )
    for name in ("max_power_w", "nominal_voltage_v", "rated_current_a"):
        if name not in out:
            out[name] = np.asarray(getattr(index, name)[:n], dtype=np.float64)
    if "phases" not in out:
        out["phases"] = index.phases[:n].astype(np.float64)
    return out


def _signature(files: Sequence[Path]) -> tuple[tuple[str, int, int], ...]:
    sig = []
    for f in files:
        try:
            st = f.stat()
            sig.append((str(f), st.st_mtime_ns, st.st_size))
        except OSError:
            sig.append((str(f), -1, -1))
    return tuple(sig)


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
    ) -> None:
        self.paths: list[str | Path] = [rules] if isinstance(rules, str | Path) else list(rules)
        self.index = index
        self.resend_delay_s = resend_delay_s
        self.generator_url = generator_url
        self.catalogue = catalogue
        self.default_interval_s = default_interval_s
        self.planner = Planner(allowlist or {})
        self.groups: list[Group] = []
        self._signature: tuple[tuple[str, int, int], ...] = ()
        self._outbox: list[Notification] = []
        self._inventory: dict[str, NDArray[Any]] | None = None
        groups, problems = self._load()
        if problems:
            RELOAD_SUCCESS.set(0)
            raise ConfigError(problems)
        self._install(groups)
        RELOAD_SUCCESS.set(1)

    # ------------------------------------------------------------ rules

    def _load(self) -> tuple[list[Group], list[Any]]:
        self._pending_signature = _signature(rule_files(self.paths))
        return check_files(
            self.paths, catalogue=self.catalogue, default_interval_s=self.default_interval_s
        )

    def _install(self, groups: list[Group]) -> None:
        # Carry state across a reload for rules that keep their identity, as
        # Prometheus does, so a reload neither re-pages nor restarts `for`.
        old = {r.ident: r for g in self.groups for r in g.rules}
        old_groups = {g.name: g for g in self.groups}
        for g in groups:
            if g.name in old_groups:
                g.last_eval = old_groups[g.name].last_eval
            for r in g.rules:
                prev = old.get(r.ident)
                if prev is None:
                    continue
                r.alerts.alerts = prev.alerts.alerts
                r.overrides = prev.overrides
                if (
                    prev.expr.text == r.expr.text
                    and prev.history is not None
                    and r.history is not None
                ):
                    r.history.restore(prev.history.snapshot())
        self.groups = groups
        self._signature = self._pending_signature

    def changed(self) -> bool:
        """Whether any rule file was added, removed or modified since the last load."""
        return _signature(rule_files(self.paths)) != self._signature

    def reload(self, now: float | None = None) -> bool:
        """Reload the rules; on any problem keep the previous ones, log and set the gauge to 0."""
        groups, problems = self._load()
        if problems:
            RELOAD_SUCCESS.set(0)
            # Remember the broken signature: do not retry (and re-log) until the files change again.
            self._signature = self._pending_signature
            log.error(
                "rule reload failed; keeping the previous rules:\n%s",
                "\n".join(str(p) for p in problems),
            )
            return False
        self._install(groups)
        RELOAD_SUCCESS.set(1)
        if now is not None:
            RELOAD_TIME.set(now)
        log.info("rules reloaded: %d groups, %d rules", len(groups), len(self.rules))
        return True

    def maybe_reload(self, now: float | None = None) -> bool | None:
        """Reload when the files changed: True/False for success, None when unchanged."""
        return self.reload(now) if self.changed() else None

    @property
    def rules(self) -> list[Rule]:
        return [r for g in self.groups for r in g.rules]

    # ------------------------------------------------------------ evaluation

    def evaluate(self, now: float, frame: Frame) -> list[Transition]:
        """Evaluate every group that is due at ``now``; return firing/resolved transitions.

        Call it as often as you like (each batch): groups run on their own intervals.
        """
        if self.index is not None:
            n = frame_length(frame) or len(self.index)
            # Label columns change only when connectors are added: build them once per size.
            if self._inventory is None or frame_length(self._inventory) != n:
                self._inventory = with_inventory({"_n": np.zeros(n)}, self.index)
                del self._inventory["_n"]
            frame = {**self._inventory, **frame}
        out: list[Transition] = []
        for g in self.groups:
            if not g.due(now):
                continue
            g.last_eval = now
            for r in g.rules:
                ts = r.evaluate(now, frame)
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


def default_rules_dir() -> Path:
    """The shipped rules: ``rules/`` in a checkout, ``_defaults/rules`` in a wheel."""
    here = Path(__file__).resolve().parent.parent
    for candidate in (here.parent / "rules", here / "_defaults" / "rules"):
        if candidate.is_dir():
            return candidate
    return Path(os.environ.get("CHARGEWATCH_RULES", "rules"))
