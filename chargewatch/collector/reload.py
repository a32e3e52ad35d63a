"""What the collector loaded, and reloading rules, tariffs and fleet without a restart.

``chargewatch run`` asks for a reload on SIGHUP (:meth:`ConfigReloader.request`,
safe in a signal handler); the pipeline thread carries it out at its next
turn (:meth:`ConfigReloader.poll`), so no stage ever sees half a set. Each of
the three is loaded whole and swapped in only when it has no problem; a broken
file keeps the previous set, logs every problem with file:line:col and sets
``chargewatch_config_last_reload_success{config=...}`` to 0.
"""

from __future__ import annotations

__all__ = ["ConfigReloader", "loaded_summary"]

import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from chargewatch.alerting import default_rules_dir
from chargewatch.alerting.rulefmt import rule_files
from chargewatch.billing.tariff_files import load_tariff_dir
from chargewatch.config.fleet_file import load_fleet
from chargewatch.core import metrics
from chargewatch.core.errors import ConfigError

if TYPE_CHECKING:
    from chargewatch.collector.service import Collector

log = logging.getLogger("chargewatch.collector")

RELOADABLE = ("rules", "tariffs", "fleet")


def _where(url: str) -> str:
    """A URL without credentials or query (tokens live there): safe to log."""
    u = urlsplit(url)
    host = u.hostname or ""
    port = f":{u.port}" if u.port else ""
    return f"{u.scheme}://{host}{port}{u.path}"


def loaded_summary(c: Collector) -> list[str]:
    """One line each for rules, tariffs, fleet and sinks: what this process runs with."""
    cfg = c.config
    groups = c.alert_engine.groups
    paths = [cfg.rules or default_rules_dir()]
    files = rule_files(paths)
    per_group = ", ".join(f"{g.name} ({len(g.rules)})" for g in groups)
    lines = [
        f"rules: {len(groups)} groups, {len(c.alert_engine.rules)} rules from "
        f"{len(files)} files in {', '.join(map(str, paths))}: {per_group}",
    ]
    if c.tariffs:
        ids = ", ".join(sorted(c.tariffs))
        lines.append(f"tariffs: {len(c.tariffs)} from {cfg.tariffs}: {ids}")
    else:
        lines.append("tariffs: none (every finished session is recorded unpriced)")
    if cfg.fleet:
        f = c.fleet
        connectors = sum(s.connectors for s in f.chargers.values())
        lines.append(
            f"fleet: {len(f.sites)} sites, {len(f.chargers)} chargers, {connectors} connectors "
            f"from {cfg.fleet}"
        )
    else:
        lines.append("fleet: none (chargers are monitored with defaults as they appear)")
    lines.append("sinks: " + "; ".join(_sinks(c)))
    return lines


def _sinks(c: Collector) -> list[str]:
    cfg = c.config
    out: list[str] = []
    if c.writer is not None:
        ic = c.writer.config
        target = f"db {ic.database} rp {ic.retention_policy or '(default)'}"
        if ic.api == "v2":
            target = f"bucket {ic.bucket}"
        out.append(f"InfluxDB {ic.api} {_where(ic.url)} {target}")
    if c.rollup_writer is not None:
        out.append(f"rollups to rp {c.rollup_writer.config.retention_policy}")
    if cfg.influx_file is not None:
        out.append(f"line protocol to {cfg.influx_file}")
    if c.writer is None and c.linefile is None:
        out.append("no time series sink")
    ledger = str(c.ledger_path)
    out.append(f"ledger {_where(ledger) if '://' in ledger else ledger}")
    out += [f"Alertmanager {_where(u)}" for u in cfg.alerting.alertmanager]
    if cfg.alerting.webhook:
        out.append(f"webhook {_where(cfg.alerting.webhook)}")
    if cfg.alerting.log:
        out.append("alert log")
    return out


class ConfigReloader:
    """Reloads rules, tariffs and fleet in the pipeline thread when asked."""

    def __init__(self, collector: Collector, *, now: float) -> None:
        self.c = collector
        self._requested = threading.Event()
        self.results: dict[str, bool] = {}
        for name in RELOADABLE:  # loaded at start, or start would have failed
            metrics.CONFIG_RELOAD_SUCCESS.labels(config=name).set(1)
            metrics.CONFIG_RELOAD_TIME.labels(config=name).set(now)

    def request(self) -> None:
        """Ask for a reload at the pipeline's next turn (signal-handler safe)."""
        self._requested.set()

    def poll(self, now: float) -> dict[str, bool] | None:
        """Reload when asked; the result per config, or None when not asked."""
        if not self._requested.is_set():
            return None
        self._requested.clear()
        return self.reload(now)

    def reload(self, now: float) -> dict[str, bool]:
        steps: dict[str, Callable[[float], bool]] = {
            "rules": self._rules,
            "tariffs": self._tariffs,
            "fleet": self._fleet,
        }
        log.info("reloading rules, tariffs and fleet")
        for name, step in steps.items():
            ok = step(now)
            self.results[name] = ok
            metrics.CONFIG_RELOAD_SUCCESS.labels(config=name).set(1 if ok else 0)
            metrics.CONFIG_RELOADS.labels(config=name, result="ok" if ok else "failed").inc()
            if ok:
                metrics.CONFIG_RELOAD_TIME.labels(config=name).set(now)
        for line in loaded_summary(self.c)[:3]:  # the sinks are not reloaded
            log.info("now running with %s", line)
        return dict(self.results)

    def _rules(self, now: float) -> bool:
        # The rule set keeps the previous rules on a problem and logs it itself.
        ok = self.c.alert_engine.reload(now)
        self.c.alerts.export_reload()
        return ok

    def _tariffs(self, now: float) -> bool:
        directory = self.c.config.tariffs
        if directory is None:
            return True
        try:
            tariffs = load_tariff_dir(directory)
        except ConfigError as exc:
            log.error("tariff reload failed; keeping the previous tariffs:\n%s", exc)
            return False
        self.c.tariffs = tariffs
        self.c.cdrs.tariffs = tariffs  # read by the pipeline thread: this one
        return True

    def _fleet(self, now: float) -> bool:
        path: Path | None = self.c.config.fleet
        if path is None:
            return True
        try:
            fleet = load_fleet(path)
        except ConfigError as exc:
            log.error("fleet reload failed; keeping the previous fleet:\n%s", exc)
            return False
        c = self.c
        with c.state_lock:  # the API reads the index and state under it
            c.index.refit(fleet)
            c.fleet = fleet
            c.cdrs.fleet = fleet
            c.alert_lines.fleet = fleet
        return True
