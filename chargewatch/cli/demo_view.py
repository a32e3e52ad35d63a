"""The demo's live view: what the collector is doing, by name, not only by count.

``DemoLog`` gathers what the tables show from the collector's callbacks (CDRs,
remediation commands) and its recent alert transitions; ``view`` renders it
with rich. Everything here runs in the demo's display thread and only reads
lists the pipeline thread appends to (copied before use).
"""

from __future__ import annotations

__all__ = ["DemoLog", "Outcome", "view"]

import json
import threading
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import RenderableType

    from chargewatch.alerting import Command, Transition


@dataclass(frozen=True, slots=True)
class Outcome:
    """One remediation command and what became of its alert."""

    at: float
    action: str
    charger: str
    alertname: str
    result: str  # "waiting", "auto-remediated", "escalated"


@dataclass
class DemoLog:
    cdrs: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=50))
    commands: list[Command] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def cdr(self, line: str) -> None:
        """CdrIssuer's ``emit``: one OCPI CDR as a JSON line."""
        doc = json.loads(line)
        with self._lock:
            self.cdrs.append(doc)

    def command(self, cmd: Command) -> None:
        with self._lock:
            self.commands.append(cmd)

    def recent_cdrs(self, n: int) -> list[dict[str, Any]]:
        with self._lock:
            return list(self.cdrs)[-n:]

    def sent(self) -> list[Command]:
        with self._lock:
            return list(self.commands)


def firing(transitions: list[Transition]) -> list[Transition]:
    """The alerts whose latest transition is ``firing``, oldest first."""
    latest: dict[tuple[str, tuple[tuple[str, str], ...]], Transition] = {}
    for t in transitions:
        latest[(t.alertname, tuple(sorted(t.labels.items())))] = t
    return sorted((t for t in latest.values() if t.state == "firing"), key=lambda t: t.at)


def outcomes(commands: list[Command], transitions: list[Transition]) -> list[Outcome]:
    """Each command with the fate of its alert, read from the later transitions."""
    out = []
    for cmd in commands:
        result = "waiting"
        for t in transitions:
            if t.at < cmd.at or t.alertname != cmd.alertname:
                continue
            if t.labels.get("charger") != cmd.charger:
                continue
            if t.state == "firing" and t.labels.get("escalated") == "true":
                result = "escalated"
            elif t.state == "resolved" and "auto-remediated" in t.annotations.get(
                "remediation", ""
            ):
                result = "auto-remediated"
        out.append(Outcome(cmd.at, cmd.action, cmd.charger, cmd.alertname, result))
    return out


def _age(seconds: float) -> str:
    seconds = max(0.0, seconds)
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.0f} min"


def _cost(cdr: dict[str, Any]) -> str:
    cost = cdr.get("total_cost") or {}
    value = cost.get("incl_vat") if cost.get("incl_vat") is not None else cost.get("excl_vat")
    return f"{value} {cdr.get('currency', '')}".strip()


def view(
    stats: list[tuple[str, str]],
    transitions: list[Transition],
    log: DemoLog,
    now: float,
    *,
    max_rows: int = 6,
) -> RenderableType:
    """The live screen: counters, then firing alerts, recent CDRs and remediations."""
    from rich.console import Group  # noqa: PLC0415 - cheap --help
    from rich.table import Table  # noqa: PLC0415

    counters = Table.grid(padding=(0, 2))
    for _ in range(2):
        counters.add_column()
        counters.add_column(justify="right", style="bold")
    for i in range(0, len(stats), 2):
        pair = stats[i : i + 2]
        counters.add_row(*(cell for kv in pair for cell in kv))

    alerts = Table(title="firing alerts", title_justify="left", expand=True)
    for col in ("alert", "charger", "severity", "for"):
        alerts.add_column(col)
    live = firing(transitions)
    for t in live[-max_rows:]:
        sev = t.labels.get("severity", "")
        if t.labels.get("escalated") == "true":
            sev += " (escalated)"
        where = f"{t.labels.get('charger', '?')}/{t.labels.get('connector', '?')}"
        alerts.add_row(t.alertname, where, sev, _age(now - t.at))
    if not live:
        alerts.add_row("[dim]none[/dim]", "", "", "")

    cdrs = Table(title="last CDRs", title_justify="left", expand=True)
    for col in ("session", "charger", "kWh", "cost", "tariff"):
        cdrs.add_column(col, justify="right" if col in ("kWh", "cost") else "left")
    recent = log.recent_cdrs(max_rows // 2 + 1)
    for c in reversed(recent):
        loc = c.get("cdr_location") or {}
        tariff = (c.get("tariffs") or [{}])[0].get("id", "")
        charger = str(loc.get("evse_uid", "")).replace("*", "/")
        energy = c.get("total_energy")
        kwh = f"{float(energy):.2f}" if energy is not None else ""
        cdrs.add_row(str(c.get("session_id", ""))[:12], charger, kwh, _cost(c), tariff)
    if not recent:
        cdrs.add_row("[dim]none yet[/dim]", "", "", "", "")

    rem = Table(title="remediation", title_justify="left", expand=True)
    for col in ("command", "charger", "alert", "outcome"):
        rem.add_column(col)
    done = outcomes(log.sent(), transitions)
    colour = {"auto-remediated": "green", "escalated": "red", "waiting": "yellow"}
    for o in done[-max_rows // 2 :]:
        rem.add_row(o.action, o.charger, o.alertname, f"[{colour[o.result]}]{o.result}[/]")
    if not done:
        rem.add_row("[dim]none yet[/dim]", "", "", "")
    return Group(counters, alerts, cdrs, rem)
