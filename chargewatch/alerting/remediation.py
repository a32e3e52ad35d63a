"""Automatic remediation: a pure planner from firing alerts to OCPP command intents.

A rule may name actions::

    actions:
      - command: Reset          # Reset | UnlockConnector | ChangeAvailability | TriggerMessage
        params: {type: Soft}    # optional; OCPP 1.6 field names, translated for 2.0.1
        delay: 2m               # after the alert fires
        max_attempts: 2
        cooldown: 10m           # wait this long after each attempt for the fault to clear

For each firing alert the planner emits at most ``max_attempts`` command
intents, each exactly once, only for commands allowlisted for the alert's
site. If the alert resolves within ``cooldown`` of an attempt, its resolution
carries the annotation ``remediation: auto-remediated``; if it is still firing
``cooldown`` after the last attempt, it is escalated: severity becomes
``critical`` and the label ``escalated="true"`` is added, which Alertmanager
sees as a new alert (so on-call is paged) while the old label set is resolved.

Beyond each rule's ``max_attempts``/``cooldown``, every command must pass
three token buckets (:class:`RateLimits`): one per charger, one per site and
one for the fleet. A command that finds a bucket empty, or remediation paused
by an operator, is not sent: it is handed out by :meth:`Planner.take_suppressed`
(the collector counts and logs it) and its alert is escalated at once, as
after failed attempts, with the reason in the ``remediation`` annotation.
A burst of remediable faults (a site losing power, a bridge replaying stale
errors) then pages a human instead of rebooting a fleet.

The collector publishes :attr:`Command.frame` to :attr:`Command.topic`.
"""

from __future__ import annotations

__all__ = [
    "COMMANDS",
    "SUPPRESS_REASONS",
    "ActionSpec",
    "Allowlist",
    "BucketSpec",
    "Command",
    "Planner",
    "RateLimiter",
    "RateLimits",
    "Suppression",
    "TokenBucket",
    "load_allowlist",
]

import hashlib
import json
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from chargewatch.alerting.signals import Frame
from chargewatch.alerting.state import Alert, AlertState, Key, Transition, key_of
from chargewatch.core.yamlsrc import Reader, load_yaml
from chargewatch.model.topics import command_topic

if TYPE_CHECKING:
    from chargewatch.alerting.rule import Rule

#: The OCPP commands a rule may name, with their default 1.6 parameters.
COMMANDS: dict[str, dict[str, Any]] = {
    "Reset": {"type": "Soft"},
    "UnlockConnector": {},
    "ChangeAvailability": {"type": "Inoperative"},
    "TriggerMessage": {"requestedMessage": "StatusNotification"},
}

#: site -> commands allowed there; "*" applies to every site not listed.
Allowlist = Mapping[str, Collection[str]]


@dataclass(frozen=True, slots=True)
class ActionSpec:
    command: str
    params: Mapping[str, Any] = field(default_factory=dict)
    delay_s: float = 0.0
    max_attempts: int = 1
    cooldown_s: float = 300.0


@dataclass(frozen=True, slots=True)
class Command:
    """One OCPP CALL to publish: ``frame`` (JSON text) to ``topic``."""

    at: float
    charger: str
    connector: int
    ocpp_version: str  # "1.6" or "2.0.1"
    action: str
    payload: Mapping[str, Any]
    message_id: str
    alertname: str
    attempt: int

    @property
    def topic(self) -> str:
        return command_topic(self.ocpp_version, self.charger)

    @property
    def frame(self) -> str:
        return json.dumps(
            [2, self.message_id, self.action, dict(self.payload)], separators=(",", ":")
        )


#: Commands that act on one port: not sent for an alert on connector "0".
_PORT_COMMANDS = frozenset({"UnlockConnector"})


def ocpp_payload(
    action: str, params: Mapping[str, Any], connector: int, version: str
) -> dict[str, Any]:
    """The CALL payload of ``action`` in the charger's OCPP dialect."""
    p = {**COMMANDS.get(action, {}), **params}
    if version != "2.0.1":
        if action in ("UnlockConnector", "ChangeAvailability"):
            p.setdefault("connectorId", connector)
        if action == "TriggerMessage" and connector:
            p.setdefault("connectorId", connector)
        return p
    # OCPP 2.0.1 renamed the fields; connector ids are (evse, connector) where
    # chargers with one connector per EVSE (nearly all) use evseId = connector.
    if action == "Reset":
        return {"type": "Immediate" if p.get("type") == "Hard" else "OnIdle"}
    if action == "UnlockConnector":
        return {"evseId": connector, "connectorId": 1}
    if action == "ChangeAvailability":
        status = "Operative" if p.get("type") == "Operative" else "Inoperative"
        return {"operationalStatus": status, "evse": {"id": connector}}
    if action == "TriggerMessage":
        return {
            "requestedMessage": p.get("requestedMessage", "StatusNotification"),
            "evse": {"id": connector},
        }
    return p


def allowed(allowlist: Allowlist, site: str, command: str) -> bool:
    cmds = allowlist.get(site)
    if cmds is None:
        cmds = allowlist.get("*", ())
    return command in cmds


def load_allowlist(path: str | Path) -> dict[str, list[str]]:
    """Read ``{sites: {site-a: [Reset], "*": [Reset, UnlockConnector]}}`` from YAML."""
    src = load_yaml(path)
    r = Reader(src)
    top = r.mapping(src.data, (), allowed=("sites",), required=("sites",))
    sites = r.mapping(top.get("sites"), ("sites",))
    out: dict[str, list[str]] = {}
    for site, cmds in sites.items():
        if not isinstance(cmds, list):
            r.fail(("sites", site), "expected a list of OCPP commands")
            continue
        for i, c in enumerate(cmds):
            if c not in COMMANDS:
                r.fail(
                    ("sites", site, i), f"unknown command {c!r}; expected one of {sorted(COMMANDS)}"
                )
        out[str(site)] = [str(c) for c in cmds]
    r.raise_if_failed()
    return out


@dataclass(frozen=True, slots=True)
class BucketSpec:
    """A token bucket: ``per_minute`` commands on average, at most ``burst`` at once."""

    per_minute: float
    burst: float

    def __post_init__(self) -> None:
        if not (self.per_minute > 0 and self.burst >= 1):
            raise ValueError("a bucket needs per_minute > 0 and burst >= 1")


@dataclass(frozen=True, slots=True)
class RateLimits:
    """Remediation commands allowed per charger, per site and in the whole fleet.

    Defaults: a charger takes 1-3 min to come back from a reset, so one
    command per 5 min (burst 2: an unlock and a reset) is already a lot; a
    whole site reset at once goes dark together, and a site-wide fault (power,
    network) is not fixed by resets, so 2/min (burst 5); more than 10 a minute
    across the fleet (burst 20) points at the backend or the bridge, not at
    the chargers.
    """

    charger: BucketSpec = BucketSpec(0.2, 2)
    site: BucketSpec = BucketSpec(2.0, 5)
    fleet: BucketSpec = BucketSpec(10.0, 20)


SuppressReason = Literal["paused", "charger_rate", "site_rate", "fleet_rate"]
SUPPRESS_REASONS: tuple[SuppressReason, ...] = (
    "paused",
    "charger_rate",
    "site_rate",
    "fleet_rate",
)


@dataclass(slots=True)
class TokenBucket:
    """Refills continuously at ``spec.per_minute``; time is passed in, never read."""

    spec: BucketSpec
    tokens: float
    updated: float

    def level(self, now: float) -> float:
        elapsed = max(0.0, now - self.updated)
        return min(self.spec.burst, self.tokens + elapsed * self.spec.per_minute / 60.0)

    def take(self, now: float) -> None:
        self.tokens, self.updated = self.level(now) - 1.0, now


@dataclass
class RateLimiter:
    """The three buckets a command must pass; a command takes a token from each or none."""

    limits: RateLimits = field(default_factory=RateLimits)
    buckets: dict[tuple[str, str], TokenBucket] = field(default_factory=dict)

    def _bucket(self, kind: str, key: str, spec: BucketSpec, now: float) -> TokenBucket:
        b = self.buckets.get((kind, key))
        if b is None:
            b = self.buckets[(kind, key)] = TokenBucket(spec, spec.burst, now)
        return b

    def admit(self, now: float, charger: str, site: str) -> SuppressReason | None:
        """Take a token for one command, or name the bucket that is empty."""
        lim = self.limits
        checks: list[tuple[SuppressReason, TokenBucket]] = [
            ("charger_rate", self._bucket("charger", charger, lim.charger, now)),
            ("site_rate", self._bucket("site", site, lim.site, now)),
            ("fleet_rate", self._bucket("fleet", "", lim.fleet, now)),
        ]
        for reason, b in checks:
            if b.level(now) < 1.0:
                return reason
        for _, b in checks:
            b.take(now)
        # A full bucket is the same as no bucket: forget them, so the map stays
        # as small as the set of recently remediated chargers.
        for k in [k for k, b in self.buckets.items() if b.level(now) >= b.spec.burst]:
            del self.buckets[k]
        return None

    def describe(self, reason: SuppressReason) -> str:
        spec = {
            "charger_rate": self.limits.charger,
            "site_rate": self.limits.site,
            "fleet_rate": self.limits.fleet,
        }.get(reason)
        if spec is None:
            return "remediation is paused"
        what = reason.removesuffix("_rate")
        return f"{what} rate limit reached ({spec.per_minute:g}/min, burst {spec.burst:g})"

    def snapshot(self) -> list[dict[str, Any]]:
        return [
            {"kind": kind, "key": key, "tokens": b.tokens, "updated": b.updated}
            for (kind, key), b in self.buckets.items()
        ]

    def restore(self, items: list[Mapping[str, Any]]) -> None:
        specs = {"charger": self.limits.charger, "site": self.limits.site}
        for d in items:
            kind = str(d["kind"])
            spec = specs.get(kind, self.limits.fleet)
            self.buckets[(kind, str(d["key"]))] = TokenBucket(
                spec, min(float(d["tokens"]), spec.burst), float(d["updated"])
            )


@dataclass(frozen=True, slots=True)
class Suppression:
    """A command that was due and not sent, and why."""

    at: float
    alertname: str
    charger: str
    site: str
    action: str
    reason: SuppressReason
    detail: str


@dataclass
class _Track:
    """Remediation progress of one alert."""

    fired_at: float
    attempts: int = 0
    last_attempt_at: float | None = None
    escalated: bool = False
    blocked: bool = False  # the command is not allowlisted for the site


@dataclass
class Planner:
    allowlist: Allowlist = field(default_factory=dict)
    tracks: dict[tuple[str, Key], _Track] = field(default_factory=dict)
    outbox: list[Command] = field(default_factory=list)
    limiter: RateLimiter = field(default_factory=RateLimiter)
    #: Set by an operator (POST /api/v1/remediation/pause); read at each evaluation.
    paused: bool = False
    suppressed: list[Suppression] = field(default_factory=list)

    def observe(
        self, now: float, rule: Rule, transitions: list[Transition], frame: Frame | None = None
    ) -> list[Transition]:
        """Plan after ``rule`` was evaluated at ``now``; returns extra transitions (escalations).

        Resolved transitions of alerts that were remediated are annotated in place.
        """
        if not rule.actions:
            return []
        spec = rule.actions[0] if len(rule.actions) == 1 else None
        extra: list[Transition] = []
        for t in transitions:
            tk = (rule.ident, key_of(t.labels))
            if t.state == "resolved" and tk in self.tracks:
                track = self.tracks.pop(tk)
                last = track.last_attempt_at
                cooldown = max(a.cooldown_s for a in rule.actions)
                if last is not None and not track.escalated and now - last <= cooldown:
                    cmd = self._action_at(rule, track.attempts).command
                    note = f"auto-remediated by {cmd} (attempt {track.attempts})"
                    t.annotations["remediation"] = note
                    a = rule.alerts.alerts.get(key_of(t.labels))
                    if a is not None:
                        a.annotations["remediation"] = note
        for alert in rule.alerts.firing():
            k = key_of(alert.labels)
            tk = (rule.ident, k)
            found = self.tracks.get(tk)
            if found is None:
                found = self.tracks[tk] = _Track(alert.fired_at or now)
            track = found
            if track.escalated or track.blocked:
                continue
            total = sum(a.max_attempts for a in rule.actions) if spec is None else spec.max_attempts
            action = self._action_at(rule, track.attempts + 1) if track.attempts < total else None
            if action is not None:
                due = (
                    track.fired_at + action.delay_s
                    if track.last_attempt_at is None
                    else track.last_attempt_at + self._action_at(rule, track.attempts).cooldown_s
                )
                if now >= due:
                    site = alert.labels.get("site", "")
                    if not allowed(self.allowlist, site, action.command):
                        track.blocked = True
                        continue
                    if action.command in _PORT_COMMANDS and alert.labels.get("connector") == "0":
                        # The charger reported the error for itself (connector 0):
                        # no port to unlock. Someone has to look.
                        track.escalated = True
                        note = (
                            f"{action.command} not sent: the charger reported this for itself "
                            "(connector 0), not for a port; paging on-call"
                        )
                        extra += self._escalate(now, rule, alert, k, track.attempts, note)
                        continue
                    charger = alert.labels.get("charger", "")
                    reason = "paused" if self.paused else self.limiter.admit(now, charger, site)
                    if reason is not None:
                        detail = self.limiter.describe(reason)
                        self.suppressed.append(
                            Suppression(
                                now, rule.name, charger, site, action.command, reason, detail
                            )
                        )
                        track.escalated = True
                        note = f"{action.command} not sent: {detail}; paging on-call"
                        extra += self._escalate(now, rule, alert, k, track.attempts, note)
                        continue
                    track.attempts += 1
                    track.last_attempt_at = now
                    version = "1.6"
                    if (
                        frame is not None
                        and "ocpp_version" in frame
                        and 0 <= alert.connector < len(frame["ocpp_version"])
                    ):
                        version = str(frame["ocpp_version"][alert.connector]) or "1.6"
                    self.outbox.append(
                        self._command(now, rule, alert, action, track.attempts, version)
                    )
                continue
            last_action = self._action_at(rule, track.attempts)
            if (
                track.last_attempt_at is not None
                and now - track.last_attempt_at >= last_action.cooldown_s
            ):
                track.escalated = True
                extra += self._escalate(now, rule, alert, k, track.attempts)
        return extra

    @staticmethod
    def _action_at(rule: Rule, attempt: int) -> ActionSpec:
        """The action of the ``attempt``-th try (1-based): each action's attempts in order."""
        n = 0
        for a in rule.actions:
            n += a.max_attempts
            if attempt <= n:
                return a
        return rule.actions[-1]

    def _command(
        self, now: float, rule: Rule, alert: Alert, action: ActionSpec, attempt: int, version: str
    ) -> Command:
        charger = alert.labels.get("charger", "")
        try:
            connector = int(alert.labels.get("connector", "0"))
        except ValueError:
            connector = 0
        # Deterministic ids: a replay produces the same frames, and a retry of
        # the same attempt can be recognised by the bridge.
        digest = hashlib.sha1(
            f"{rule.ident}|{sorted(alert.labels.items())}|{alert.fired_at}|{attempt}".encode()
        ).hexdigest()[:16]
        return Command(
            now,
            charger,
            connector,
            version,
            action.command,
            ocpp_payload(action.command, action.params, connector, version),
            f"cw-{digest}",
            rule.name,
            attempt,
        )

    def _escalate(
        self, now: float, rule: Rule, alert: Alert, k: Key, attempts: int, note: str = ""
    ) -> list[Transition]:
        # New label set = new alert for Alertmanager (so routes for critical page
        # on-call); the old label set resolves so it does not linger.
        base = dict(k)
        extra = {"severity": "critical", "escalated": "true"}
        rule.overrides[k] = extra
        old = rule.alerts.alerts[k]
        old.state, old.resolved_at = AlertState.RESOLVED, now
        old.annotations["remediation"] = note or f"escalated after {attempts} failed attempt(s)"
        self.tracks.pop((rule.ident, k), None)
        new_labels = base | extra
        note = note or f"remediation failed after {attempts} attempt(s); paging on-call"
        annotations = dict(alert.annotations) | {"remediation": note}
        new = Alert(
            new_labels,
            annotations,
            alert.value,
            AlertState.FIRING,
            alert.active_at,
            alert.connector,
            fired_at=now,
        )
        rule.alerts.alerts[key_of(new_labels)] = new
        self.tracks[(rule.ident, key_of(new_labels))] = _Track(now, attempts, now, escalated=True)
        return [
            Transition(
                now,
                "resolved",
                rule.name,
                dict(old.labels),
                dict(old.annotations),
                old.value,
                old.connector,
            ),
            Transition(
                now, "firing", rule.name, dict(new_labels), annotations, new.value, new.connector
            ),
        ]

    def take(self) -> list[Command]:
        """Commands planned since the last call; each is handed out exactly once."""
        out, self.outbox = self.outbox, []
        return out

    def take_suppressed(self) -> list[Suppression]:
        """Commands suppressed since the last call (for the counter and the log)."""
        out, self.suppressed = self.suppressed, []
        return out

    def limits_snapshot(self) -> dict[str, Any]:
        return {"paused": self.paused, "buckets": self.limiter.snapshot()}

    def limits_restore(self, data: Mapping[str, Any]) -> None:
        self.paused = bool(data.get("paused", False))
        self.limiter.restore(data.get("buckets", []))

    def snapshot(self) -> list[dict[str, Any]]:
        return [
            {
                "rule": ident,
                "labels": dict(k),
                "fired_at": t.fired_at,
                "attempts": t.attempts,
                "last_attempt_at": t.last_attempt_at,
                "escalated": t.escalated,
                "blocked": t.blocked,
            }
            for (ident, k), t in self.tracks.items()
        ]

    def restore(self, items: list[Mapping[str, Any]]) -> None:
        for d in items:
            self.tracks[(str(d["rule"]), key_of(d["labels"]))] = _Track(
                float(d["fired_at"]),
                int(d["attempts"]),
                d.get("last_attempt_at"),
                bool(d.get("escalated")),
                bool(d.get("blocked")),
            )
