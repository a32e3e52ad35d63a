"""One alerting rule and one rule group: evaluate a condition over all connectors.

``Rule.evaluate(now, frame)`` is handed the time and never reads the clock.
"""

from __future__ import annotations

__all__ = ["Group", "Rule"]

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from chargewatch.alerting.expr import CompiledExpr, History
from chargewatch.alerting.remediation import ActionSpec
from chargewatch.alerting.signals import (
    ALERT_LABEL_COLUMNS,
    EVIDENCE,
    EVIDENCE_FNS,
    SIGNAL_LABELS,
    SIGNALS,
    STATED_BY,
    STATED_FOR,
    Frame,
    Kind,
    frame_length,
)
from chargewatch.alerting.state import AlertSet, Key, Observation, Transition, key_of
from chargewatch.alerting.templates import SignalLookup, Template


@dataclass
class Rule:
    name: str
    expr: CompiledExpr
    group: str
    interval_s: float
    hold_s: float = 0.0
    keep_firing_for_s: float = 0.0
    labels: dict[str, Template] = field(default_factory=dict)
    annotations: dict[str, Template] = field(default_factory=dict)
    actions: tuple[ActionSpec, ...] = ()
    file: str = ""
    index: int = 0  # 1-based position in its group, as error messages count
    ident: str = ""  # stable identity for snapshots and reloads: "group/alert#n"
    alerts: AlertSet = field(init=False)
    history: History | None = field(init=False, default=None)
    #: Labels that replace the rule's own for one alert (remediation escalates
    #: severity this way), keyed by the alert's label set before the override.
    overrides: dict[Key, dict[str, str]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.alerts = AlertSet(self.hold_s, self.keep_firing_for_s)
        self.set_interval(self.interval_s)
        # An alert that stays active renders the same labels, and the same
        # annotations where they do not use the value, at every evaluation:
        # kept per label set (at 100k connectors with many standing alerts,
        # rendering again was most of an evaluation).
        self._series: dict[tuple[Any, ...], tuple[dict[str, str], Key]] = {}
        self._fixed: dict[Key, dict[str, str]] = {}
        self._labels_use_value = any(t.uses_value for t in self.labels.values())
        # The data-stated labels this rule declares (signals.SIGNAL_LABELS).
        self._stated = tuple(
            name
            for name in SIGNAL_LABELS
            if (name in self.labels and name not in STATED_FOR)
            or STATED_FOR.get(name) in self.expr.signals
        )

    def set_interval(self, interval_s: float) -> None:
        """(Re)size the window history for evaluations every ``interval_s`` (clears it)."""
        self.interval_s = interval_s
        self.history = None
        if self.expr.windows:
            longest = max(self.expr.windows.values())
            # One row per evaluation plus slack for evaluations that come early.
            cap = math.ceil(longest / max(self.interval_s, 1e-3)) + 2
            kinds = {name: _kind(name) for name in self.expr.windows}
            self.history = History(kinds, cap)

    def evaluate(self, now: float, frame: Frame, sched: float | None = None) -> list[Transition]:
        """Evaluate at ``now``; ``sched`` is the evaluation's time on its group's
        grid, which counts `for:` (see AlertSet.update)."""
        n = frame_length(frame)
        if self.history is not None:
            self.history.push(now, frame, n)
        cond, value = self.expr.evaluate(now, frame, self.history)
        observed: list[Observation] = []
        stated = (STATED_BY.get(name, name) for name in self._stated)
        columns = [(c, frame[c]) for c in (*ALERT_LABEL_COLUMNS, *stated) if c in frame]
        rows = np.flatnonzero(cond)
        if len(self._series) > 2 * len(rows) + 4096:  # bounded by the alerts of late
            self._series.clear()
            self._fixed.clear()
        for idx in rows:
            i = int(idx)
            v = float(value[i])
            raw = tuple(col[i] for _, col in columns)
            hit = None if self._labels_use_value else self._series.get(raw)
            if hit is None:
                rendered = self._render_labels(columns, raw, v)
                hit = (rendered, key_of(rendered))
                if not self._labels_use_value:
                    self._series[raw] = hit
            cached, key = hit
            override = self.overrides.get(key)
            series = dict(cached)
            if override:
                series |= override
                key = key_of(series)
            fixed = self._fixed.get(key)
            if fixed is None:
                fixed = self._fixed[key] = {
                    k: t.render(series, v) for k, t in self.annotations.items() if not t.dynamic
                }
            lookup = _row_lookup(frame, i)
            annotations = {
                k: (t.render(series, v, lookup) if t.dynamic else fixed[k])
                for k, t in self.annotations.items()
            }
            observed.append(Observation(series, annotations, v, i, key))
        transitions = self.alerts.update(now, observed, sched)
        # An override lives as long as its alert.
        if self.overrides:
            live = {key_of(a.labels) for a in self.alerts.alerts.values()}
            for base_key, extra in list(self.overrides.items()):
                if key_of(dict(base_key) | extra) not in live:
                    del self.overrides[base_key]
        return transitions

    def _render_labels(
        self, columns: list[tuple[str, Any]], raw: tuple[Any, ...], v: float
    ) -> dict[str, str]:
        row = {c: str(x) for (c, _), x in zip(columns, raw, strict=True) if x != ""}
        by = {STATED_BY.get(name, name): name for name in self._stated}
        base = {c: x for c, x in row.items() if c not in by or c in ALERT_LABEL_COLUMNS}
        series = dict(base)
        for name, tmpl in self.labels.items():
            series[name] = tmpl.render(base | {"alertname": self.name}, v)
        for column, name in by.items():
            if row.get(column) in SIGNAL_LABELS[name]:
                series[name] = row[column]
        series["alertname"] = self.name
        return series

    def snapshot(self) -> dict[str, Any]:
        out: dict[str, Any] = {"alerts": self.alerts.snapshot()}
        if self.overrides:
            out["overrides"] = [[list(map(list, k)), v] for k, v in self.overrides.items()]
        if self.history is not None and self.history.count:
            out["history"] = self.history.snapshot()
        return out

    def restore(self, data: Mapping[str, Any]) -> None:
        self.alerts.restore(data.get("alerts", []))
        for k, v in data.get("overrides", []):
            self.overrides[tuple((str(a), str(b)) for a, b in k)] = dict(v)
        if self.history is not None and "history" in data:
            self.history.restore(data["history"])


def _row_lookup(frame: Frame, i: int) -> SignalLookup:
    """``$signals.NAME`` of connector ``i``: the frame's column, else an evidence
    value worked out from its row (signals.EVIDENCE), else unknown."""

    def lookup(name: str) -> float | str:
        col = frame.get(name)
        if col is None:
            derive = EVIDENCE_FNS.get(name)
            return derive(frame, i) if derive is not None else _unknown(name)
        x = col[i]
        kind = _kind(name)
        if kind == "string":
            return str(x)
        if kind == "bool":
            return "true" if bool(x) else "false"
        return float(x)

    return lookup


def _unknown(name: str) -> float | str:
    sig = SIGNALS.get(name) or EVIDENCE.get(name)
    return "" if sig is not None and sig.kind == "string" else math.nan


def _kind(name: str) -> Kind:
    return SIGNALS[name].kind if name in SIGNALS else "number"


@dataclass
class Group:
    """Rules evaluated together at one interval (Prometheus's rule group)."""

    name: str
    interval_s: float
    rules: list[Rule]
    file: str = ""
    last_eval: float | None = None

    def due(self, now: float) -> bool:
        return self.last_eval is None or now - self.last_eval >= self.interval_s - 1e-9

    def stamp(self, now: float) -> float:
        """The scheduled time of an evaluation due at ``now``: the latest point at
        or before ``now`` of the group's grid (its first evaluation, then every
        ``interval_s``), as Prometheus schedules a group. Scheduled from the
        moment each evaluation happened to run instead, every interval would
        start a little late (up to a tick live, up to a chunk in replay) and the
        evaluations drift."""
        if self.last_eval is None:
            return now
        steps = math.floor((now - self.last_eval) / self.interval_s + 1e-9)
        return self.last_eval + steps * self.interval_s
