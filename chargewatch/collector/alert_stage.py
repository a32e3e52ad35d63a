"""Wiring of the alert engine into the pipeline: frames in, notifications and commands out.

The engine is pure; this stage builds its frame from the fleet state and the
other stages' signals, hands notifications to a sender thread (a slow or
unreachable Alertmanager never stalls ingest) and publishes remediation
commands through the collector's MQTT client.
"""

from __future__ import annotations

__all__ = [
    "EVIDENCE_START",
    "AlertStage",
    "Deadlines",
    "NotifyWorker",
    "detector_signals",
    "note_cleared_at",
    "note_evidence_start",
    "note_status_cleared",
    "ocpp_versions",
    "transition_row",
]

import logging
import math
import queue
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Protocol

import numpy as np
from numpy.typing import NDArray

from chargewatch.alerting import AlertEngine, Command, Notification, Transition
from chargewatch.alerting.state import key_of
from chargewatch.core import metrics
from chargewatch.detectors import DetectorSet
from chargewatch.detectors.episodes import Finding
from chargewatch.detectors.params import DetectorConfig
from chargewatch.ingest.decode_ocpp import OcppDecoder
from chargewatch.model.batch import MeterBatch
from chargewatch.model.events import Event
from chargewatch.model.fleet import ConnectorIndex
from chargewatch.notify.notifiers import Notifier
from chargewatch.state.fleet_state import FleetState

log = logging.getLogger(__name__)

SignalProvider = Callable[[float], dict[str, NDArray[Any]]]


class Deadlines(Protocol):
    """Signals that change by time alone at an instant known in advance (a
    liveness timeout): :class:`DetectorSet` is one."""

    @property
    def deadline_signals(self) -> tuple[str, ...]: ...

    @property
    def outage_changes(self) -> int:
        """Moves whenever one of ``deadline_signals`` changed."""
        ...

    def next_deadline(self) -> float:
        """When they next change unless data comes first (inf: never known)."""
        ...


class NotifyWorker:
    """Delivers notification batches from a bounded queue on thread ``collector.notify``."""

    def __init__(self, notifiers: Sequence[Notifier], max_batches: int = 1000) -> None:
        self.notifiers = list(notifiers)
        self._q: queue.Queue[list[Notification] | None] = queue.Queue(max_batches)
        self.dropped = 0
        self._thread = threading.Thread(target=self._run, name="collector.notify", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def submit(self, batch: list[Notification]) -> None:
        try:
            self._q.put_nowait(batch)
        except queue.Full:
            # The engine resends firing alerts every resend interval, so a
            # dropped batch is repaired later; blocking ingest is never right.
            self.dropped += 1
            log.error("notification queue full; dropped a batch of %d alerts", len(batch))

    def stop(self, timeout: float = 10.0) -> None:
        self._q.put(None)
        self._thread.join(timeout)

    def _run(self) -> None:
        while True:
            batch = self._q.get()
            if batch is None:
                return
            for n in self.notifiers:
                try:
                    n.send(batch)
                except Exception:  # a receiver bug must not end delivery to the others
                    log.exception("notifier %s failed", getattr(n, "name", n))


class _Onsets:
    """When each open episode began, per (fault, connector), for ``<fault>_for_s``.

    Follows the detectors' findings list (append-only) from where it last
    looked, so an evaluation costs the new findings and the open ones, not
    every finding since start.
    """

    def __init__(self) -> None:
        self.seen = 0
        self.open: dict[tuple[str, int], list[Finding]] = {}

    def columns(
        self, findings: list[Finding], faults: Iterable[str], n: int, now: float
    ) -> dict[str, NDArray[Any]]:
        if len(findings) < self.seen:  # the list was replaced or trimmed: start over
            self.seen, self.open = 0, {}
        for f in findings[self.seen :]:
            if f.end is None:
                self.open.setdefault((f.fault, f.connector), []).append(f)
        self.seen = len(findings)
        starts: dict[str, dict[int, float]] = {}
        for key, fs in list(self.open.items()):
            live = [f for f in fs if f.end is None]
            if not live:
                del self.open[key]
                continue
            self.open[key] = live
            starts.setdefault(key[0], {})[key[1]] = min(f.start for f in live)
        # Most faults have no open episode: one shared read-only column of NaN.
        none: NDArray[Any] = np.broadcast_to(np.float64(np.nan), (n,))
        out: dict[str, NDArray[Any]] = {}
        for fault in faults:
            by = starts.get(fault)
            if not by:
                out[f"{fault}_for_s"] = none
                continue
            col = np.full(n, np.nan)
            conns = np.fromiter((c for c in by if c < n), np.int64)
            began = np.fromiter((by[c] for c in by if c < n), np.float64)
            # A finding on the meter clock may sit a little ahead of `now`.
            col[conns] = np.maximum(now - began, 0.0)
            out[f"{fault}_for_s"] = col
        return out


#: Threshold signals (alerting.signals) -> (fault, parameter, scale).
_THRESHOLDS: dict[str, tuple[str, str, float]] = {
    "temperature_limit_c": ("over_temperature", "level_c", 1.0),
    "temperature_rate_limit_c_per_min": ("over_temperature", "rate_c_per_min", 1.0),
    "voltage_band_pct": ("voltage_out_of_band", "band", 100.0),
    "idle_grace_s": ("idle_blocking", "grace_s", 1.0),
    "meter_stuck_min_power_w": ("meter_stuck", "min_power_w", 1.0),
}


class _Thresholds:
    """The detector thresholds in force per connector (site and model overrides
    applied), grown with the index and rebuilt when the fleet is reloaded."""

    def __init__(self, config: DetectorConfig) -> None:
        self.config = config
        self.cols: dict[str, NDArray[np.float64]] = {k: np.zeros(0) for k in _THRESHOLDS}
        self.generation = 0

    def columns(self, index: ConnectorIndex, n: int) -> dict[str, NDArray[Any]]:
        if index.generation != self.generation:  # a fleet reload may move a connector
            self.generation = index.generation
            self.cols = {k: np.zeros(0) for k in _THRESHOLDS}
        have = next(iter(self.cols.values())).shape[0]
        if have < n:
            grown = {
                k: np.concatenate([v, np.full(n - have, np.nan)]) for k, v in self.cols.items()
            }
            for c in range(have, n):
                params = self.config.params(
                    index.site_of(c), index.fleet.model_of(index.charger_of(c))
                )
                for name, (fault, param, scale) in _THRESHOLDS.items():
                    grown[name][c] = float(getattr(params[fault], param, np.nan)) * scale
            self.cols = grown
        return {k: v[:n] for k, v in self.cols.items()}


def detector_signals(
    detectors: DetectorSet,
    index: ConnectorIndex,
    flush: Callable[[float], None] | None = None,
) -> SignalProvider:
    """The detectors' ``<fault>``/``<fault>_score``/``<fault>_for_s`` columns and
    their thresholds (``temperature_limit_c`` ...), sized to every known connector.

    ``flush``: when the detectors run on coalesced batches, hands them what is
    waiting first, so the rules judge every sample received so far.
    """
    onsets = _Onsets()
    thresholds = _Thresholds(detectors.config)

    def provide(now: float) -> dict[str, NDArray[Any]]:
        if flush is not None:
            flush(now)
        n = len(index)
        out: dict[str, NDArray[Any]] = {}
        out.update(onsets.columns(detectors.findings, detectors.detectors, n, now))
        out.update(thresholds.columns(index, n))
        for name, col in detectors.signals.items():
            if col.shape[0] >= n:
                out[name] = col[:n]
                continue
            # Connectors seen only through events so far: not active, score unknown.
            fill: NDArray[Any] = (
                np.zeros(n, col.dtype) if col.dtype == np.bool_ else np.full(n, np.nan)
            )
            fill[: col.shape[0]] = col
            out[name] = fill
        return out

    return provide


def ocpp_versions(decoder: OcppDecoder, index: ConnectorIndex) -> SignalProvider:
    """The ``ocpp_version`` label column: the version each connector's charger last spoke.

    Remediation reads it to choose the command topic and dialect; without it a
    2.0.1 charger would be sent 1.6 frames on ``ocpp/1.6/...``. "" (never heard
    over OCPP) falls back to 1.6 in the planner.
    """
    cached: list[Any] = [None, None]  # (len(index), decoder.versions_changed), column

    def provide(now: float) -> dict[str, NDArray[Any]]:
        n = len(index)
        key = (n, decoder.versions_changed)
        if cached[0] != key:
            # Rebuilt only when a connector or a charger's version is new: rare.
            versions = decoder.versions
            cached[0] = key
            cached[1] = np.array([versions.get(c, "") for c, _ in index.keys[:n]], dtype=object)
        col: NDArray[Any] = cached[1]
        return {"ocpp_version": col}

    return provide


#: The annotation a transition carries when the evidence shows its state began
#: earlier than the transition (epoch s): a firing, when the detector's episode
#: began; a resolution, when the condition stopped holding (before the rule's
#: ``keep_firing_for``). The ledger's ``alert_transitions.evidence_start``.
EVIDENCE_START = "evidence_start"


def note_evidence_start(
    transitions: Sequence[Transition], frame: dict[str, NDArray[Any]], now: float
) -> None:
    """Annotate each firing whose ``fault`` label has an open detector episode with
    that episode's start (``now`` − ``<fault>_for_s``): ChargerOffline's is the
    charger's last sign of life, a heartbeat timeout before the alert fires, and
    uptime counts the outage from there (docs/analytics.md, Uptime)."""
    for t in transitions:
        col = frame.get(f"{t.labels.get('fault', '')}_for_s")
        if t.state != "firing" or col is None or not 0 <= t.connector < col.shape[0]:
            continue
        lasted = float(col[t.connector])
        if math.isfinite(lasted):  # NaN: no open episode on this connector
            # A copy: the alert's own annotations (what Alertmanager gets) stay as written.
            t.annotations = {**t.annotations, EVIDENCE_START: repr(now - lasted)}


def note_cleared_at(transitions: Sequence[Transition], engine: AlertEngine) -> None:
    """Annotate each resolution held by ``keep_firing_for`` with when its condition
    stopped holding: ChargerOffline resolves 2 min after the charger is back, and
    uptime ends the outage at the return (docs/analytics.md, Uptime)."""
    gone = [t for t in transitions if t.state == "resolved"]
    if not gone:
        return
    # A resolved alert stays in its rule's set for a while, under its labels' key.
    rules = {r.name: r for r in engine.rules if r.keep_firing_for_s > 0}
    for t in gone:
        rule = rules.get(t.alertname)
        a = rule.alerts.alerts.get(key_of(t.labels)) if rule is not None else None
        if a is not None and a.resolved_at == t.at and a.keep_firing_since is not None:
            t.annotations = {**t.annotations, EVIDENCE_START: repr(a.keep_firing_since)}


def note_status_cleared(
    transitions: Sequence[Transition],
    frame: dict[str, NDArray[Any]],
    now: float,
    engine: AlertEngine,
) -> None:
    """Annotate each resolution of an error-code alert with when the connector's
    status changed, if that was since the group's previous evaluation: the
    charger's StatusNotification cleared the error then, and uptime ends the
    outage there, not at the evaluation that noticed (up to a group interval
    later; docs/analytics.md, Uptime). Charger-wide errors (connector "0") are
    not a port's status: left as they are."""
    ages = frame.get("status_age_s")
    if ages is None:
        return
    interval = {r.name: g.interval_s for g in engine.groups for r in g.rules}
    for t in transitions:
        if (
            t.state != "resolved"
            or not t.labels.get("error_code")
            or t.labels.get("connector") == "0"
            or EVIDENCE_START in t.annotations
            or not 0 <= t.connector < ages.shape[0]
        ):
            continue
        age = float(ages[t.connector])
        if math.isfinite(age) and 0.0 <= age <= interval.get(t.alertname, 0.0):
            t.annotations = {**t.annotations, EVIDENCE_START: repr(now - age)}


def transition_row(t: Transition) -> dict[str, Any]:
    """A transition as ``Ledger.write_alert_transitions`` takes it."""
    return {
        "at": t.at,
        "state": t.state,
        "alertname": t.alertname,
        "labels": t.labels,
        "evidence_start": t.annotations.get(EVIDENCE_START),
    }


class AlertStage:
    """Evaluates the rules as time advances (at most every ``min_eval_interval_s``).

    ``deadlines``: the signals it names (``charger_offline``) change at an
    instant known in advance; the rules that read one with no `for` of their
    own are evaluated as soon as it changed, off their group's grid
    (``AlertEngine.evaluate``), and :meth:`next_wake` says when the caller must
    tick for the next such change (live a timer, replay its capture clock).
    """

    def __init__(
        self,
        engine: AlertEngine,
        state: FleetState,
        *,
        providers: Sequence[SignalProvider] = (),
        deliver: Callable[[list[Notification]], None] | None = None,
        publish: Callable[[Command], None] | None = None,
        on_transitions: Callable[[list[Transition]], None] | None = None,
        min_eval_interval_s: float = 0.25,
        reload_interval_s: float = 5.0,
        deadlines: Deadlines | None = None,
    ) -> None:
        self.engine = engine
        self.deadlines = deadlines
        self._deadline_changes = deadlines.outage_changes if deadlines is not None else 0
        self.state = state
        self.providers = list(providers)
        self.deliver = deliver
        self.publish = publish
        self.on_transitions = on_transitions
        self.min_eval = min_eval_interval_s
        self.reload_interval = reload_interval_s
        self._last_eval = float("-inf")
        self._last_reload = float("-inf")
        self.transitions = 0
        self.firing: int = 0
        self._gauged: set[tuple[str, str]] = set()
        self.export_reload()

    def export_reload(self) -> None:
        ruleset = self.engine.ruleset
        ok = 1 if ruleset.reload_ok else 0
        # Also as config="rules" beside tariffs and fleet (collector/reload.py):
        # a rule file changed on disk reloads without a SIGHUP.
        metrics.RULES_RELOAD_SUCCESS.set(ok)
        metrics.CONFIG_RELOAD_SUCCESS.labels(config="rules").set(ok)
        if ruleset.reload_success_at is not None:
            metrics.RULES_RELOAD_TIME.set(ruleset.reload_success_at)
            metrics.CONFIG_RELOAD_TIME.labels(config="rules").set(ruleset.reload_success_at)

    def on_batch(self, batch: MeterBatch, events: list[Event], now: float) -> None:
        self._evaluate(now)

    def next_wake(self) -> float:
        """When the next deadline signal changes unless data comes first (inf:
        none, or no rule is prompt on it; -inf: the detectors' next tick
        knows): a tick then evaluates its rules at that moment."""
        d = self.deadlines
        if d is None or not self.engine.prompt(d.deadline_signals):
            return float("inf")
        return d.next_deadline()

    def _changed(self) -> tuple[str, ...]:
        """The deadline signals, when they changed since the last evaluation."""
        d = self.deadlines
        if d is None or d.outage_changes == self._deadline_changes:
            return ()
        self._deadline_changes = d.outage_changes
        return d.deadline_signals

    def tick(self, now: float) -> None:
        self._evaluate(now)
        if now - self._last_reload >= self.reload_interval:
            self._last_reload = now
            if self.engine.maybe_reload(now) is not None:
                self.export_reload()

    @staticmethod
    def _send(publish: Callable[[Command], None], cmd: Command) -> None:
        # One command that cannot leave (a broker error, a topic the broker
        # refuses) must not cost the others due in the same evaluation.
        try:
            publish(cmd)
        except Exception:
            metrics.REMEDIATION_PUBLISH_ERRORS.inc()
            log.exception(
                "remediation: %s to %s (alert %s) could not be published",
                cmd.action, cmd.charger, cmd.alertname,
            )  # fmt: skip
            return
        metrics.REMEDIATION_COMMANDS.inc()

    def _evaluate(self, now: float) -> None:
        # A deadline signal that changed is judged now, however recent the last
        # evaluation: the page goes out at the detector's deadline.
        changed = self._changed()
        if now - self._last_eval < self.min_eval and not changed:
            return
        self._last_eval = now
        frame: dict[str, NDArray[Any]] = {}
        if self.engine.due(now, changed):
            # Only a group that evaluates reads the frame: building it (and
            # flushing the coalesced detectors for it) at every call would
            # cost per connector several times a second for nothing.
            frame = self.state.frame(now)
            for provide in self.providers:
                frame.update(provide(now))
        t0 = time.perf_counter()
        transitions = self.engine.evaluate(now, frame, changed)
        metrics.RULE_EVAL_SECONDS.observe(time.perf_counter() - t0)
        if transitions:
            note_evidence_start(transitions, frame, now)
            note_cleared_at(transitions, self.engine)
            note_status_cleared(transitions, frame, now, self.engine)
            self.transitions += len(transitions)
            if self.on_transitions is not None:
                self.on_transitions(transitions)
        notes = self.engine.notifications()
        if notes and self.deliver is not None:
            self.deliver(notes)
        if self.publish is not None:
            for cmd in self.engine.commands(now):
                self._send(self.publish, cmd)
        for s in self.engine.suppressed():
            metrics.REMEDIATION_SUPPRESSED.labels(reason=s.reason).inc()
            log.warning(
                "remediation: %s to %s (site %s, alert %s) not sent: %s; alert escalated",
                s.action, s.charger, s.site, s.alertname, s.detail,
            )  # fmt: skip
        counts: dict[tuple[str, str], int] = {}
        for a in self.engine.active():
            key = (a.state.name.lower(), a.labels.get("severity", ""))
            counts[key] = counts.get(key, 0) + 1
        for key in self._gauged - counts.keys():
            metrics.ALERTS.labels(state=key[0], severity=key[1]).set(0)
        for (state, severity), n in counts.items():
            metrics.ALERTS.labels(state=state, severity=severity).set(n)
        self._gauged = set(counts)
        self.firing = sum(n for (state, _), n in counts.items() if state == "firing")
