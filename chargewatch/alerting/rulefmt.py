"""Rule files: Prometheus's rule file shape, validated with every problem reported.

Each problem reads ``file:line:col: group "g", rule N, "name": what is wrong``
so an operator can fix a whole file in one go. A file is all or nothing.
"""

from __future__ import annotations

__all__ = ["DEFAULT_INTERVAL_S", "check_files", "load_groups", "rule_files"]

import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from chargewatch.alerting.expr import ExprError, compile_expr, parse_duration
from chargewatch.alerting.remediation import COMMANDS, ActionSpec
from chargewatch.alerting.rule import Group, Rule
from chargewatch.alerting.signals import EVIDENCE, SIGNALS, Signal
from chargewatch.alerting.templates import Template, TemplateError
from chargewatch.core.errors import ConfigError, ConfigProblem
from chargewatch.core.yamlsrc import Source, load_yaml

DEFAULT_INTERVAL_S = 30.0
SEVERITIES = ("critical", "warning", "info")

_GROUP_KEYS = ("name", "interval", "rules")
_RULE_KEYS = ("alert", "expr", "for", "keep_firing_for", "labels", "annotations", "actions")
_ACTION_KEYS = ("command", "params", "delay", "max_attempts", "cooldown")
_LABEL_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_RESERVED_LABELS = frozenset({"alertname", "charger", "connector", "site"})
#: The one value a rule may give the ``connector`` label: "0", OCPP's "the
#: charger as a whole". Every connector of a charger then renders the same label
#: set, and an alert is one per label set, so a charger-wide fault (offline)
#: raises one alert per charger instead of one per connector.
WHOLE_CHARGER = "0"


def rule_files(paths: Iterable[str | Path]) -> list[Path]:
    """Expand directories to their ``*.yaml``/``*.yml`` files (not ``tests/``), sorted."""
    out: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            out += sorted(f for f in p.iterdir() if f.suffix in (".yaml", ".yml") and f.is_file())
        else:
            out.append(p)
    return out


class _Checker:
    def __init__(self, src: Source, text: str, catalogue: Mapping[str, Signal] | None) -> None:
        self.src = src
        self.lines = text.splitlines()
        self.catalogue = catalogue
        self.problems: list[ConfigProblem] = []
        # What an annotation's $signals may read: the expression catalogue plus
        # the evidence worked out per alert.
        self._template_signals = frozenset((*(catalogue or SIGNALS), *EVIDENCE))

    def fail(
        self, ctx: str, path: tuple[str | int, ...], message: str, col_offset: int = 0
    ) -> None:
        line, col = self.src.where(path)
        self.problems.append(ConfigProblem(self.src.file, ctx, message, line, col + col_offset))

    def fail_key(self, ctx: str, path: tuple[str | int, ...], message: str) -> None:
        """Report at the key itself (the loader marks values; a key sits on the value's
        line, or on the line above when the value is a nested block)."""
        line, col = self.src.where(path)
        key = str(path[-1])
        for ln in (line, line - 1):
            raw = self.lines[ln - 1] if 0 < ln <= len(self.lines) else ""
            at = raw.find(f"{key}:")
            if at >= 0:
                line, col = ln, at + 1
                break
        self.problems.append(ConfigProblem(self.src.file, ctx, message, line, col))

    def expr_position(self, path: tuple[str | int, ...], pos: int, text: str) -> tuple[int, int]:
        """File line/col of character ``pos`` of an expression scalar."""
        line, col = self.src.where(path)
        raw = self.lines[line - 1] if 0 < line <= len(self.lines) else ""
        first = raw[col - 1 : col] if col else ""
        if first in ("|", ">"):
            # Block scalar: the text starts on the next line at its indentation;
            # both literal and folded keep one character per line break.
            body = self.lines[line:]
            indent = next((len(b) - len(b.lstrip()) for b in body if b.strip()), 0)
            before = text[:pos]
            return line + 1 + before.count("\n"), indent + 1 + len(before.split("\n")[-1])
        quoted = 1 if first in ("'", '"') else 0
        return line, col + quoted + pos

    def check(self, default_interval_s: float) -> list[Group]:
        data = self.src.data
        groups: list[Group] = []
        if not isinstance(data, dict):
            self.fail("", (), "expected a mapping with a 'groups' list")
            return groups
        for key in data:
            if key != "groups":
                self.fail_key("", (key,), "unknown key; a rule file has only 'groups'")
        raw_groups = data.get("groups")
        if not isinstance(raw_groups, list):
            self.fail(
                "",
                ("groups",) if "groups" in data else (),
                "expected 'groups': a list of rule groups",
            )
            return groups
        names: set[str] = set()
        for gi, g in enumerate(raw_groups):
            gp: tuple[str | int, ...] = ("groups", gi)
            if not isinstance(g, dict):
                self.fail(f"group {gi + 1}", gp, "expected a mapping with name, interval, rules")
                continue
            gname = g.get("name")
            ctx = f'group "{gname}"' if isinstance(gname, str) else f"group {gi + 1}"
            for key in g:
                if key not in _GROUP_KEYS:
                    self.fail_key(
                        ctx,
                        (*gp, key),
                        f"unknown key {key!r}; expected one of: {', '.join(_GROUP_KEYS)}",
                    )
            if not isinstance(gname, str) or not gname:
                self.fail(ctx, (*gp, "name"), "missing group name")
                gname = f"group{gi + 1}"
            elif gname in names:
                self.fail(ctx, (*gp, "name"), "duplicate group name in this file")
            names.add(gname)
            interval = self.duration(ctx, (*gp, "interval"), g.get("interval"), default_interval_s)
            if interval <= 0:
                self.fail(ctx, (*gp, "interval"), "interval must be longer than 0s")
                interval = default_interval_s
            raw_rules = g.get("rules")
            if not isinstance(raw_rules, list):
                self.fail(
                    ctx, (*gp, "rules") if "rules" in g else gp, "expected 'rules': a list of rules"
                )
                continue
            rules: list[Rule] = []
            seen: dict[str, int] = {}
            for ri, r in enumerate(raw_rules):
                rule = self.rule(gname, interval, ri, r, (*gp, "rules", ri))
                if rule is not None:
                    seen[rule.name] = seen.get(rule.name, 0) + 1
                    rule.ident = f"{gname}/{rule.name}#{seen[rule.name]}"
                    rules.append(rule)
            groups.append(Group(gname, interval, rules, self.src.file))
        return groups

    def duration(self, ctx: str, path: tuple[str | int, ...], value: Any, default: float) -> float:
        if value is None:
            return default
        if value == 0 and not isinstance(value, bool):
            return 0.0
        if not isinstance(value, str):
            self.fail(ctx, path, f"expected a duration such as 5m, got {value!r}")
            return default
        try:
            return parse_duration(value)
        except ValueError as exc:
            self.fail(ctx, path, str(exc))
            return default

    def rule(
        self, group: str, interval: float, ri: int, r: Any, rp: tuple[str | int, ...]
    ) -> Rule | None:
        name = r.get("alert") if isinstance(r, dict) else None
        ctx = f'group "{group}", rule {ri + 1}' + (f', "{name}"' if isinstance(name, str) else "")
        if not isinstance(r, dict):
            self.fail(ctx, rp, "expected a mapping with alert, expr, ...")
            return None
        ok = True
        for key in r:
            if key not in _RULE_KEYS:
                hint = (
                    "; recording rules are not supported, only alerting rules"
                    if key == "record"
                    else f"; expected one of: {', '.join(_RULE_KEYS)}"
                )
                self.fail_key(ctx, (*rp, key), f"unknown key {key!r}{hint}")
                ok = False
        if "record" in r:
            return None  # the rest would only repeat that this is not an alerting rule
        if not isinstance(name, str) or not _LABEL_NAME.fullmatch(name):
            what = "missing 'alert'" if name is None else f"invalid alert name {name!r}"
            self.fail(
                ctx, (*rp, "alert") if name is not None else rp, f"{what} (letters, digits, _)"
            )
            ok = False
        expr_text = r.get("expr")
        compiled = None
        if expr_text is None:
            self.fail(ctx, rp, "missing 'expr'")
            ok = False
        elif not isinstance(expr_text, str) or not expr_text.strip():
            self.fail(ctx, (*rp, "expr"), f"expr must be a non-empty string, got {expr_text!r}")
            ok = False
        else:
            try:
                compiled = compile_expr(expr_text, self.catalogue)
            except ExprError as exc:
                line, col = self.expr_position((*rp, "expr"), exc.pos, expr_text)
                self.problems.append(
                    ConfigProblem(self.src.file, ctx, f"expr: {exc.message}", line, col)
                )
                ok = False
        hold = self.duration(ctx, (*rp, "for"), r.get("for"), 0.0)
        keep = self.duration(ctx, (*rp, "keep_firing_for"), r.get("keep_firing_for"), 0.0)
        labels = self.templates(ctx, (*rp, "labels"), r.get("labels"), is_labels=True)
        annotations = self.templates(
            ctx, (*rp, "annotations"), r.get("annotations"), is_labels=False
        )
        actions = self.actions(ctx, (*rp, "actions"), r.get("actions"))
        if not ok or compiled is None or labels is None or annotations is None or actions is None:
            return None
        return Rule(
            name=str(name),
            expr=compiled,
            group=group,
            interval_s=interval,
            hold_s=hold,
            keep_firing_for_s=keep,
            labels=labels,
            annotations=annotations,
            actions=actions,
            file=self.src.file,
            index=ri + 1,
        )

    def templates(
        self, ctx: str, path: tuple[str | int, ...], value: Any, *, is_labels: bool
    ) -> dict[str, Template] | None:
        if value is None:
            return {}
        what = "labels" if is_labels else "annotations"
        if not isinstance(value, dict):
            self.fail(ctx, path, f"{what} must be a mapping of name: text")
            return None
        out: dict[str, Template] = {}
        ok = True
        for k, v in value.items():
            p = (*path, k)
            if not _LABEL_NAME.fullmatch(k) or k.startswith("__"):
                self.fail(ctx, p, f"invalid {what[:-1]} name {k!r} (letters, digits, _; not __)")
                ok = False
                continue
            if is_labels and k == "connector" and str(v) == WHOLE_CHARGER:
                pass  # a charger-wide alert: one per charger (see WHOLE_CHARGER)
            elif is_labels and k in _RESERVED_LABELS:
                self.fail(ctx, p, f"label {k!r} is set from the alert itself; remove it")
                ok = False
                continue
            if isinstance(v, bool) or not isinstance(v, str | int | float):
                self.fail(ctx, p, f"expected text, got {v!r}")
                ok = False
                continue
            text = str(v)
            if is_labels and k == "severity" and text not in SEVERITIES:
                self.fail(ctx, p, f"severity {text!r}; expected one of: {', '.join(SEVERITIES)}")
                ok = False
                continue
            try:
                out[k] = Template(text, self._template_signals)
                if is_labels and out[k].signals:
                    # A label is the alert's identity: one that changed with a
                    # reading would end the alert and start another each time.
                    raise TemplateError(
                        "labels cannot read $signals (an alert's labels are its identity); "
                        "use them in annotations",
                        text.find("ignals."),
                    )
            except TemplateError as exc:
                self.fail(ctx, p, f"{what}.{k}: {exc.message}", exc.pos)
                ok = False
        return out if ok else None

    def actions(
        self, ctx: str, path: tuple[str | int, ...], value: Any
    ) -> tuple[ActionSpec, ...] | None:
        if value is None:
            return ()
        if not isinstance(value, list):
            self.fail(ctx, path, "actions must be a list")
            return None
        out: list[ActionSpec] = []
        ok = True
        for i, a in enumerate(value):
            p = (*path, i)
            if not isinstance(a, dict):
                self.fail(ctx, p, "expected a mapping with command, delay, max_attempts, cooldown")
                ok = False
                continue
            for key in a:
                if key not in _ACTION_KEYS:
                    self.fail_key(
                        ctx,
                        (*p, key),
                        f"unknown key {key!r}; expected one of: {', '.join(_ACTION_KEYS)}",
                    )
                    ok = False
            cmd = a.get("command")
            if cmd not in COMMANDS:
                self.fail(
                    ctx,
                    (*p, "command") if cmd is not None else p,
                    f"command {cmd!r}; expected one of: {', '.join(COMMANDS)}",
                )
                ok = False
            params = a.get("params", {})
            if not isinstance(params, dict):
                self.fail(ctx, (*p, "params"), "params must be a mapping of OCPP fields")
                ok = False
                params = {}
            attempts = a.get("max_attempts", 1)
            if (
                isinstance(attempts, bool)
                or not isinstance(attempts, int)
                or not 1 <= attempts <= 10
            ):
                self.fail(ctx, (*p, "max_attempts"), f"expected an integer 1..10, got {attempts!r}")
                ok = False
                attempts = 1
            delay = self.duration(ctx, (*p, "delay"), a.get("delay"), 0.0)
            cooldown = self.duration(ctx, (*p, "cooldown"), a.get("cooldown"), 300.0)
            if cooldown <= 0:
                self.fail(ctx, (*p, "cooldown"), "cooldown must be longer than 0s")
                ok = False
            out.append(ActionSpec(str(cmd), dict(params), delay, attempts, cooldown))
        return tuple(out) if ok else None


def _check_file(
    path: Path, catalogue: Mapping[str, Signal] | None, default_interval_s: float
) -> tuple[list[Group], list[ConfigProblem]]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        return [], [ConfigProblem(str(path), "", f"cannot read: {exc.strerror}")]
    try:
        src = load_yaml(path, text=text)
    except ConfigError as exc:
        return [], exc.problems
    c = _Checker(src, text, catalogue)
    groups = c.check(default_interval_s)
    return groups, c.problems


def check_files(
    paths: Iterable[str | Path],
    *,
    catalogue: Mapping[str, Signal] | None = None,
    default_interval_s: float = DEFAULT_INTERVAL_S,
) -> tuple[list[Group], list[ConfigProblem]]:
    """Load every rule file (directories expanded); return groups and *all* problems."""
    groups: list[Group] = []
    problems: list[ConfigProblem] = []
    seen: dict[str, str] = {}
    for f in rule_files(paths):
        gs, ps = _check_file(f, catalogue, default_interval_s)
        problems += ps
        for g in gs:
            # Alert state is keyed by group name, so names are unique across files.
            if g.name in seen and seen[g.name] != g.file:
                problems.append(
                    ConfigProblem(
                        g.file, f'group "{g.name}"', f"group name also used in {seen[g.name]}"
                    )
                )
            seen.setdefault(g.name, g.file)
        groups += gs
    return groups, problems


def load_groups(
    paths: Iterable[str | Path],
    *,
    catalogue: Mapping[str, Signal] | None = None,
    default_interval_s: float = DEFAULT_INTERVAL_S,
) -> list[Group]:
    """Like :func:`check_files` but raises :class:`ConfigError` with every problem."""
    groups, problems = check_files(
        paths, catalogue=catalogue, default_interval_s=default_interval_s
    )
    if problems:
        raise ConfigError(problems)
    return groups
