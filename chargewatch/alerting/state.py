"""Alert instances and their lifecycle, as in Prometheus's alerting rules.

One rule has one :class:`AlertSet`: an :class:`Alert` per label set (in
practice, per connector). :meth:`AlertSet.update` is the only place states
change, and it is handed the time, so replay and live share one code path.
"""

from __future__ import annotations

__all__ = [
    "RESOLVED_RETENTION_S",
    "Alert",
    "AlertSet",
    "AlertState",
    "Key",
    "Notification",
    "Transition",
    "rfc3339",
]

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import Enum
from typing import Any, Literal

#: Prometheus keeps resolved alerts, and resends them, for 15 minutes so a
#: receiver that missed the first "resolved" still learns of it.
RESOLVED_RETENTION_S = 15 * 60.0

Key = tuple[tuple[str, str], ...]  # sorted label pairs: an alert's identity


def key_of(labels: Mapping[str, str]) -> Key:
    return tuple(sorted(labels.items()))


def rfc3339(t: float) -> str:
    """Epoch seconds -> ``2026-11-24T03:20:00.5Z`` (UTC, milliseconds when needed)."""
    dt = datetime.fromtimestamp(t, UTC)
    if dt.microsecond:
        return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"
    return dt.strftime("%Y-%m-%dT%H:%M:%SZ")


class AlertState(Enum):
    """Where one alert instance is in its life."""

    #: The condition is false; a pending alert whose condition clears is dropped.
    INACTIVE = "inactive"
    #: The condition is true, for less than the rule's ``for`` so far; nothing is sent.
    PENDING = "pending"
    #: The condition has held for ``for`` (or cleared less than ``keep_firing_for`` ago);
    #: sent, and resent every resend interval.
    FIRING = "firing"
    #: Was firing, the condition cleared; sent with endsAt and resent for 15 minutes.
    RESOLVED = "resolved"


@dataclass(slots=True)
class Alert:
    labels: dict[str, str]
    annotations: dict[str, str]
    value: float
    state: AlertState
    active_at: float
    connector: int = -1  # dense connector id at the last evaluation (-1: none)
    fired_at: float | None = None
    resolved_at: float | None = None
    last_sent_at: float | None = None
    valid_until: float = 0.0
    keep_firing_since: float | None = None
    #: The scheduled time (group grid) of the evaluation that made it pending:
    #: `for:` is counted on the grid, the times shown are when it happened.
    active_sched: float | None = None

    def needs_sending(self, now: float, resend_delay: float) -> bool:
        # Prometheus's rule: never pending; at once when newly resolved; else every resend_delay.
        if self.state in (AlertState.PENDING, AlertState.INACTIVE):
            return False
        if self.last_sent_at is None:
            return True
        if self.resolved_at is not None and self.resolved_at > self.last_sent_at:
            return True
        return self.last_sent_at + resend_delay <= now

    def to_dict(self) -> dict[str, Any]:
        return {
            "labels": dict(self.labels),
            "annotations": dict(self.annotations),
            "value": None if math.isnan(self.value) else self.value,
            "state": self.state.value,
            "active_at": self.active_at,
            "connector": self.connector,
            "fired_at": self.fired_at,
            "resolved_at": self.resolved_at,
            "last_sent_at": self.last_sent_at,
            "valid_until": self.valid_until,
            "keep_firing_since": self.keep_firing_since,
            "active_sched": self.active_sched,
        }

    def to_public(self) -> dict[str, Any]:
        """The alert as the API shows it: its labels say which connector (the
        ``connector`` of :meth:`to_dict` is an internal row number)."""
        doc = self.to_dict()
        label = self.labels.get("connector", "")
        doc["connector"] = int(label) if label.isdigit() else None
        return doc

    @staticmethod
    def from_dict(d: Mapping[str, Any]) -> Alert:
        value = d.get("value")
        return Alert(
            labels={str(k): str(v) for k, v in d["labels"].items()},
            annotations={str(k): str(v) for k, v in d.get("annotations", {}).items()},
            value=float("nan") if value is None else float(value),
            state=AlertState(d["state"]),
            active_at=float(d["active_at"]),
            connector=int(d.get("connector", -1)),
            fired_at=d.get("fired_at"),
            resolved_at=d.get("resolved_at"),
            last_sent_at=d.get("last_sent_at"),
            valid_until=float(d.get("valid_until", 0.0)),
            keep_firing_since=d.get("keep_firing_since"),
            active_sched=d.get("active_sched"),
        )


@dataclass(slots=True)
class Transition:
    """An alert started firing or resolved; the replay writes one alerts.jsonl line each."""

    at: float
    state: Literal["firing", "resolved"]
    alertname: str
    labels: dict[str, str]
    annotations: dict[str, str]
    value: float
    connector: int = -1

    def to_json(self) -> dict[str, Any]:
        """The alerts.jsonl line (docs/architecture.md, captures and replay)."""
        return {
            "at": rfc3339(self.at),
            "state": self.state,
            "alertname": self.alertname,
            "labels": self.labels,
            "annotations": self.annotations,
        }


@dataclass(frozen=True, slots=True)
class Notification:
    """One alert as sent to a receiver (Alertmanager API v2 shape)."""

    labels: Mapping[str, str]
    annotations: Mapping[str, str]
    starts_at: float
    ends_at: float
    generator_url: str = ""
    status: Literal["firing", "resolved"] = "firing"

    def to_alertmanager(self) -> dict[str, Any]:
        return {
            "labels": dict(self.labels),
            "annotations": dict(self.annotations),
            "startsAt": rfc3339(self.starts_at),
            "endsAt": rfc3339(self.ends_at),
            "generatorURL": self.generator_url,
        }


@dataclass(frozen=True, slots=True)
class Observation:
    """The condition holds for one label set at this evaluation."""

    labels: dict[str, str]
    annotations: dict[str, str]
    value: float
    connector: int
    key: Key | None = None  # key_of(labels), when the caller has it already


@dataclass
class AlertSet:
    """The alerts of one rule, keyed by label set."""

    hold_s: float = 0.0  # the rule's `for`
    keep_firing_for_s: float = 0.0
    alerts: dict[Key, Alert] = field(default_factory=dict)

    def update(
        self, now: float, observed: Iterable[Observation], sched: float | None = None
    ) -> list[Transition]:
        """Advance every alert to ``now`` given the label sets whose condition holds.

        ``sched`` is the evaluation's scheduled time on its group's grid
        (``Group.stamp``): a pending alert fires when the grid has advanced by
        its `for:` since it went pending. Counted on the times evaluations
        happened to run, each a little late, a `for:` of 1 min now and then
        missed its sixth evaluation by a hair and fired one interval late.
        Without it (a direct call), ``now`` counts."""
        out: list[Transition] = []
        seen: set[Key] = set()
        for ob in observed:
            k = ob.key if ob.key is not None else key_of(ob.labels)
            seen.add(k)
            a = self.alerts.get(k)
            if a is not None and a.state in (AlertState.PENDING, AlertState.FIRING):
                a.value, a.annotations, a.connector = ob.value, ob.annotations, ob.connector
                a.keep_firing_since = None
                continue
            # New, or resolved and back: a fresh alert whose `for` starts now.
            self.alerts[k] = Alert(
                dict(ob.labels), ob.annotations, ob.value, AlertState.PENDING, now, ob.connector
            )
            self.alerts[k].active_sched = sched
        for k, a in list(self.alerts.items()):
            if k not in seen:
                keep = False
                if a.state is AlertState.FIRING and self.keep_firing_for_s > 0:
                    if a.keep_firing_since is None:
                        a.keep_firing_since = now
                    keep = now - a.keep_firing_since < self.keep_firing_for_s
                if a.state is AlertState.PENDING:
                    del self.alerts[k]
                    continue
                if a.state is AlertState.RESOLVED and a.resolved_at is not None:
                    if now - a.resolved_at > RESOLVED_RETENTION_S:
                        del self.alerts[k]
                    continue
                if a.state is AlertState.FIRING and not keep:
                    a.state, a.resolved_at = AlertState.RESOLVED, now
                    out.append(self._transition(now, "resolved", a))
                    continue
                if not keep:
                    continue
            if a.state is AlertState.PENDING and self._held(a, now, sched) >= self.hold_s:
                a.state, a.fired_at, a.resolved_at = AlertState.FIRING, now, None
                out.append(self._transition(now, "firing", a))
        return out

    @staticmethod
    def _held(a: Alert, now: float, sched: float | None) -> float:
        """How long ``a`` has been pending, on the group's grid when both ends are on it."""
        if sched is not None and a.active_sched is not None:
            return sched - a.active_sched + 1e-9
        return now - a.active_at

    @staticmethod
    def _transition(now: float, state: Literal["firing", "resolved"], a: Alert) -> Transition:
        return Transition(
            now,
            state,
            a.labels.get("alertname", ""),
            dict(a.labels),
            dict(a.annotations),
            a.value,
            a.connector,
        )

    def firing(self) -> list[Alert]:
        return [a for a in self.alerts.values() if a.state is AlertState.FIRING]

    def notifications(
        self, now: float, *, resend_delay_s: float, interval_s: float, generator_url: str = ""
    ) -> list[Notification]:
        """Alerts due to be (re)sent at ``now``; marks them sent."""
        out: list[Notification] = []
        for a in self.alerts.values():
            if not a.needs_sending(now, resend_delay_s):
                continue
            status: Literal["firing", "resolved"]
            if a.state is AlertState.RESOLVED and a.resolved_at is not None:
                ends, status = a.resolved_at, "resolved"
            else:
                # Prometheus: endsAt a few resend periods ahead, so Alertmanager
                # resolves the alert by itself if this process dies.
                a.valid_until = now + 4 * max(resend_delay_s, interval_s)
                ends, status = a.valid_until, "firing"
            a.last_sent_at = now
            out.append(
                Notification(
                    dict(a.labels),
                    dict(a.annotations),
                    a.fired_at or a.active_at,
                    ends,
                    generator_url,
                    status,
                )
            )
        return out

    def snapshot(self) -> list[dict[str, Any]]:
        return [a.to_dict() for a in self.alerts.values() if a.state is not AlertState.INACTIVE]

    def restore(self, items: Iterable[Mapping[str, Any]]) -> None:
        for d in items:
            a = Alert.from_dict(d)
            self.alerts[key_of(a.labels)] = a
