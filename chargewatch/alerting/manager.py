"""The loaded rule set and its hot reload.

A reload that finds any problem keeps the previous rules (Prometheus does the
same): a typo pushed to the rules directory must not switch alerting off.
"""

from __future__ import annotations

__all__ = ["RuleSet"]

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path

from chargewatch.alerting.rule import Group, Rule
from chargewatch.alerting.rulefmt import DEFAULT_INTERVAL_S, check_files, rule_files
from chargewatch.alerting.signals import Signal
from chargewatch.core.errors import ConfigError, ConfigProblem

log = logging.getLogger("chargewatch.alerting")

Signature = tuple[tuple[str, int, int], ...]


def _signature(files: Sequence[Path]) -> Signature:
    sig = []
    for f in files:
        try:
            st = f.stat()
            sig.append((str(f), st.st_mtime_ns, st.st_size))
        except OSError:
            sig.append((str(f), -1, -1))
    return tuple(sig)


class RuleSet:
    """Rule groups loaded from files or directories, reloaded when the files change.

    Construction raises :class:`ConfigError` on any problem; :meth:`reload`
    never raises. ``reload_ok`` and ``reload_success_at`` say how the last load
    went (the wiring exports them as metrics; this package keeps no registry).
    """

    def __init__(
        self,
        paths: str | Path | Sequence[str | Path],
        *,
        catalogue: Mapping[str, Signal] | None = None,
        default_interval_s: float = DEFAULT_INTERVAL_S,
    ) -> None:
        self.paths: list[str | Path] = [paths] if isinstance(paths, str | Path) else list(paths)
        self.catalogue = catalogue
        self.default_interval_s = default_interval_s
        self.groups: list[Group] = []
        self.last_problems: list[ConfigProblem] = []
        self._signature: Signature = ()
        self.reload_ok = True
        self.reload_success_at: float | None = None
        groups, problems, sig = self._load()
        if problems:
            raise ConfigError(problems)
        self._install(groups, sig)

    @property
    def rules(self) -> list[Rule]:
        return [r for g in self.groups for r in g.rules]

    def _load(self) -> tuple[list[Group], list[ConfigProblem], Signature]:
        # Signature first: a file changed while loading is then seen as changed again.
        sig = _signature(rule_files(self.paths))
        groups, problems = check_files(
            self.paths, catalogue=self.catalogue, default_interval_s=self.default_interval_s
        )
        return groups, problems, sig

    def _install(self, groups: list[Group], sig: Signature) -> None:
        # Carry state across a reload for rules that keep their identity, as
        # Prometheus does, so a reload neither re-pages nor restarts `for`.
        old = {r.ident: r for r in self.rules}
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
                same_windows = prev.expr.text == r.expr.text
                if same_windows and prev.history is not None and r.history is not None:
                    r.history.restore(prev.history.snapshot())
        self.groups = groups
        self._signature = sig

    def changed(self) -> bool:
        """Whether any rule file was added, removed or modified since the last load."""
        return _signature(rule_files(self.paths)) != self._signature

    def reload(self, now: float | None = None) -> bool:
        """Reload; on any problem keep the previous rules, log them and clear ``reload_ok``."""
        groups, problems, sig = self._load()
        self.last_problems = problems
        self.reload_ok = not problems
        if problems:
            # Remember the broken files' signature: no retry (and no repeated
            # log) until they change again.
            self._signature = sig
            log.error(
                "rule reload failed; keeping the previous rules:\n%s",
                "\n".join(str(p) for p in problems),
            )
            return False
        self._install(groups, sig)
        if now is not None:
            self.reload_success_at = now
        log.info("rules reloaded: %d groups, %d rules", len(groups), len(self.rules))
        return True

    def maybe_reload(self, now: float | None = None) -> bool | None:
        """Reload when the files changed: True/False for success, None when unchanged."""
        return self.reload(now) if self.changed() else None
