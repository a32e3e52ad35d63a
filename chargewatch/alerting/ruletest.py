"""Rule unit tests in the format of ``promtool test rules``, per connector.

::

    rule_files: [../faults.yaml]          # relative to this file
    evaluation_interval: 30s
    tests:
      - name: over temperature pages after 2m
        interval: 30s                      # input sample step (default: evaluation_interval)
        input_series:
          - series: 'temperature_c{charger="CP1",connector="1",site="depot"}'
            values: '40 95x6 40x4'         # a+bxn, axn, _ (no sample), _xn, stale
          - series: 'status{charger="CP1",connector="1"}'
            values: 'Available Faultedx3'  # string signals: words (or "quoted"), wordxn
        alert_rule_test:
          - eval_time: 2m
            alertname: OverTemperature
            exp_alerts:
              - exp_labels: {severity: critical, fault: over_temperature,
                             charger: CP1, connector: "1", site: depot}
                exp_annotations: {summary: "..."}

A series is one signal of one connector: its labels name the connector
(``charger``, ``connector`` default "1") and may set ``site``, ``model``,
``ocpp_version``. Like Prometheus, a missing sample (``_``) still shows the
previous value for 5 minutes; ``stale`` ends the series until its next sample.
Unlike promtool, ``exp_annotations`` is checked for the keys given (defaults
carry long descriptions and runbook URLs); ``exp_labels`` must match exactly
(everything but ``alertname``). All groups run at ``evaluation_interval``.
"""

from __future__ import annotations

__all__ = ["CaseResult", "FileResult", "run_test_file", "run_test_files"]

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from chargewatch.alerting.expr import format_duration, parse_duration
from chargewatch.alerting.rule import Group
from chargewatch.alerting.rulefmt import check_files
from chargewatch.alerting.signals import LABEL_COLUMNS, SIGNALS, Signal, empty_frame
from chargewatch.alerting.state import AlertState
from chargewatch.core.errors import ConfigError
from chargewatch.core.yamlsrc import load_yaml
from chargewatch.model.fleet import DEFAULT_CHARGER, SiteSpec

LOOKBACK_S = 300.0  # Prometheus's default lookback delta

_SERIES_RE = re.compile(r"\s*([A-Za-z_][A-Za-z0-9_]*)\s*(?:\{(.*)\})?\s*")
_LABEL_RE = re.compile(r'\s*([A-Za-z_][A-Za-z0-9_]*)\s*=\s*"((?:[^"\\]|\\.)*)"\s*(?:,|$)')
_NUM = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?|[-+]?Inf|NaN"
_EXPAND_RE = re.compile(rf"({_NUM})(?:([-+])((?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)x(\d+)|x(\d+))?")
_MISSING_RE = re.compile(r"_(?:x(\d+))?")
_STALE = object()


@dataclass
class CaseResult:
    file: str
    name: str
    failures: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failures


@dataclass
class FileResult:
    file: str
    cases: list[CaseResult] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)  # the file itself is unusable

    @property
    def ok(self) -> bool:
        return not self.errors and all(c.ok for c in self.cases)

    def report(self) -> str:
        lines: list[str] = []
        lines += [f"{self.file}: {e}" for e in self.errors]
        for c in self.cases:
            for f in c.failures:
                lines.append(f"{self.file}: {c.name}: {f}")
        return "\n".join(lines)


def expand_values(text: str, kind: str) -> list[Any]:
    """``'1+2x3 _ stale'`` -> [1, 3, 5, 7, None, _STALE]; None is "no sample"."""
    out: list[Any] = []
    for tok in str(text).split():
        m = _MISSING_RE.fullmatch(tok)
        if m:
            out += [None] * (int(m.group(1)) if m.group(1) else 1)
            continue
        if tok == "stale":
            out.append(_STALE)
            continue
        if kind == "string":
            sm = re.fullmatch(r'("(?:[^"\\]|\\.)*"|[A-Za-z][A-Za-z0-9_.-]*?)(?:x(\d+))?', tok)
            if not sm:
                raise ValueError(f'bad string sample {tok!r} (a word, or "quoted", optionally xN)')
            word = sm.group(1).strip('"')
            out += [word] * (int(sm.group(2)) + 1 if sm.group(2) else 1)
            continue
        if kind == "bool" and tok in ("true", "false"):
            out.append(1.0 if tok == "true" else 0.0)
            continue
        nm = _EXPAND_RE.fullmatch(tok)
        if not nm:
            raise ValueError(f"bad sample {tok!r} (expected a, a+bxn, a-bxn, axn, _, _xn or stale)")
        start = float(nm.group(1).replace("Inf", "inf").replace("NaN", "nan"))
        if nm.group(4):
            step = float(nm.group(3)) * (-1 if nm.group(2) == "-" else 1)
            out += [start + step * i for i in range(int(nm.group(4)) + 1)]
        elif nm.group(5):
            out += [start] * (int(nm.group(5)) + 1)
        else:
            out.append(start)
    return out


@dataclass
class _Series:
    signal: Signal
    connector: tuple[str, str]
    values: list[Any]

    def at(self, t: float, step: float) -> Any:
        """The value a query sees at ``t``: last sample within the lookback, else None."""
        j = math.floor(t / step + 1e-9)
        j = min(j, len(self.values) - 1)
        while j >= 0 and t - j * step <= LOOKBACK_S + 1e-9:
            v = self.values[j]
            if v is _STALE:
                return None
            if v is not None:
                return v
            j -= 1
        return None


def _parse_series(text: str) -> tuple[str, dict[str, str]]:
    m = _SERIES_RE.fullmatch(text)
    if not m:
        raise ValueError(
            f'bad series selector {text!r}; expected name{{charger="CP1",connector="1"}}'
        )
    labels: dict[str, str] = {}
    body = m.group(2) or ""
    pos = 0
    while pos < len(body.strip()):
        lm = _LABEL_RE.match(body, pos)
        if not lm:
            raise ValueError(f"bad label matcher in {text!r} near {body[pos:]!r}")
        labels[lm.group(1)] = lm.group(2)
        pos = lm.end()
    return m.group(1), labels


def _duration(value: Any, default: float | None = None) -> float:
    if value is None:
        if default is None:
            raise ValueError("missing duration")
        return default
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return parse_duration(str(value))


def run_test_file(path: str | Path) -> FileResult:
    path = Path(path)
    res = FileResult(str(path))
    try:
        src = load_yaml(path)
    except ConfigError as exc:
        res.errors += [str(p) for p in exc.problems]
        return res
    data = src.data
    if not isinstance(data, dict):
        res.errors.append("expected a mapping with rule_files and tests")
        return res
    unknown = set(data) - {"rule_files", "evaluation_interval", "tests", "group_eval_order"}
    if unknown:
        res.errors.append(f"unknown keys: {', '.join(sorted(unknown))}")
    files = data.get("rule_files") or []
    if not isinstance(files, list) or not files:
        res.errors.append(
            "rule_files: name at least one rule file; a test that loads no rules tests nothing"
        )
        return res
    rule_paths = [path.parent / str(f) for f in files]
    try:
        interval = _duration(data.get("evaluation_interval"), 60.0)
    except ValueError as exc:
        res.errors.append(f"evaluation_interval: {exc}")
        return res
    groups, problems = check_files(rule_paths)
    if problems:
        res.errors += [f"rule file problem: {p}" for p in problems]
        return res
    if not any(g.rules for g in groups):
        res.errors.append(f"no rules loaded from {', '.join(map(str, files))}")
        return res
    tests = data.get("tests") or []
    if not isinstance(tests, list) or not tests:
        res.errors.append("tests: expected a non-empty list")
        return res
    for i, t in enumerate(tests):
        name = f"test #{i + 1}" + (
            f' "{t["name"]}"' if isinstance(t, dict) and t.get("name") else ""
        )
        case = CaseResult(str(path), name)
        try:
            _run_case(t, rule_paths, interval, case)
        except (ValueError, KeyError, TypeError) as exc:
            case.failures.append(f"bad test: {exc}")
        res.cases.append(case)
    return res


def _fresh_groups(rule_paths: list[Path], interval: float) -> list[Group]:
    groups, _ = check_files(rule_paths)
    for g in groups:
        g.interval_s = interval
        for r in g.rules:
            r.set_interval(interval)
    return groups


def _run_case(t: Any, rule_paths: list[Path], interval: float, case: CaseResult) -> None:
    if not isinstance(t, dict):
        raise ValueError("a test is a mapping with input_series and alert_rule_test")
    unknown = set(t) - {
        "name",
        "interval",
        "input_series",
        "alert_rule_test",
        "promql_expr_test",
        "external_labels",
    }
    if unknown:
        raise ValueError(f"unknown keys {sorted(unknown)}")
    step = _duration(t.get("interval"), interval)
    series: list[_Series] = []
    connectors: dict[tuple[str, str], dict[str, str]] = {}
    for s in t.get("input_series") or []:
        name, labels = _parse_series(str(s["series"]))
        sig = SIGNALS.get(name)
        if sig is None or name in LABEL_COLUMNS:
            raise ValueError(f"unknown signal {name!r} in series {s['series']!r}")
        if "charger" not in labels:
            raise ValueError(f"series {s['series']!r} needs a charger label")
        extra = set(labels) - set(LABEL_COLUMNS)
        if extra:
            raise ValueError(
                f"series {s['series']!r}: unknown labels {sorted(extra)}; use {LABEL_COLUMNS}"
            )
        conn = (labels["charger"], labels.get("connector", "1"))
        info = connectors.setdefault(conn, {})
        for lab in ("site", "model", "ocpp_version"):
            if lab in labels:
                info[lab] = labels[lab]
        series.append(_Series(sig, conn, expand_values(str(s.get("values", "")), sig.kind)))
    order = list(connectors)
    pos = {c: i for i, c in enumerate(order)}
    groups = _fresh_groups(rule_paths, interval)
    names = {r.name for g in groups for r in g.rules}
    checks = t.get("alert_rule_test") or []
    if not checks:
        raise ValueError("alert_rule_test: expected at least one check")
    by_time: dict[float, list[dict[str, Any]]] = {}
    for c in checks:
        if c.get("alertname") not in names:
            case.failures.append(
                f"alertname {c.get('alertname')!r}: no such rule in {[str(p) for p in rule_paths]}"
            )
            continue
        by_time.setdefault(_duration(c.get("eval_time")), []).append(c)
    if not by_time:
        return
    end = max(by_time)
    n = len(order)
    frame = empty_frame(n)
    frame["charger"][:] = [c[0] for c in order]
    frame["connector"][:] = [c[1] for c in order]
    frame["site"][:] = [connectors[c].get("site", DEFAULT_CHARGER.site) for c in order]
    frame["model"][:] = [connectors[c].get("model", "") for c in order]
    frame["site_kind"][:] = SiteSpec(id="").kind
    frame["ocpp_version"][:] = [connectors[c].get("ocpp_version", "") for c in order]
    frame["max_power_w"][:] = DEFAULT_CHARGER.max_power_w
    frame["phases"][:] = DEFAULT_CHARGER.phases
    frame["nominal_voltage_v"][:] = DEFAULT_CHARGER.nominal_voltage_v
    frame["rated_current_a"][:] = DEFAULT_CHARGER.rated_current_a
    steps = math.floor(end / interval + 1e-9)
    check_times = sorted(by_time)
    ci = 0
    for k in range(steps + 1):
        now = k * interval
        for s in series:
            v = s.at(now, step)
            col = frame[s.signal.name]
            if s.signal.kind == "string":
                col[pos[s.connector]] = "" if v is None else str(v)
            elif s.signal.kind == "bool":
                col[pos[s.connector]] = bool(v) if v is not None else False
            else:
                col[pos[s.connector]] = np.nan if v is None else float(v)
        for g in groups:
            for r in g.rules:
                r.evaluate(now, frame)
        # Checks between evaluation steps see the state of the last evaluation.
        nxt = (k + 1) * interval
        while ci < len(check_times) and (check_times[ci] < nxt - 1e-9 or k == steps):
            _check(check_times[ci], by_time[check_times[ci]], groups, case)
            ci += 1


def _check(at: float, checks: list[dict[str, Any]], groups: list[Group], case: CaseResult) -> None:
    for c in checks:
        name = c["alertname"]
        got = [
            a
            for g in groups
            for r in g.rules
            if r.name == name
            for a in r.alerts.alerts.values()
            if a.state is AlertState.FIRING
        ]
        exp = c.get("exp_alerts") or []
        got_l = [{k: v for k, v in a.labels.items() if k != "alertname"} for a in got]
        unmatched = list(range(len(got)))
        problems: list[str] = []
        for e in exp:
            el = {str(k): str(v) for k, v in (e.get("exp_labels") or {}).items()}
            ea = {str(k): str(v) for k, v in (e.get("exp_annotations") or {}).items()}
            hit = next((i for i in unmatched if got_l[i] == el), None)
            if hit is None:
                problems.append(f"expected a firing alert with labels {el}")
                continue
            unmatched.remove(hit)
            for k, v in ea.items():
                actual = got[hit].annotations.get(k)
                if actual != v:
                    problems.append(f"labels {el}: annotation {k!r} is {actual!r}, expected {v!r}")
        problems += [f"unexpected firing alert with labels {got_l[i]}" for i in unmatched]
        if problems:
            when = format_duration(at)
            case.failures.append(f"alertname {name} at {when}: " + "; ".join(problems))


def run_test_files(paths: Iterable[str | Path]) -> list[FileResult]:
    out: list[FileResult] = []
    for p in map(Path, paths):
        files = sorted(p.glob("*.yaml")) + sorted(p.glob("*.yml")) if p.is_dir() else [p]
        out += [run_test_file(f) for f in files]
    return out


def summary(results: Iterable[FileResult]) -> Mapping[str, int]:
    rs = list(results)
    return {
        "files": len(rs),
        "cases": sum(len(r.cases) for r in rs),
        "failed": sum(1 for r in rs for c in r.cases if not c.ok) + sum(1 for r in rs if r.errors),
    }
