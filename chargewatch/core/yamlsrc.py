"""YAML loading that remembers where every value came from.

Operators edit YAML by hand (config, fleet, rules); an error must say
``file:line:col: key.path: what was expected``. PyYAML's composed node tree
carries the marks, so values are built from nodes and each key path's position
is kept beside the plain data. Only the safe constructors are used.
"""

from __future__ import annotations

__all__ = ["MISSING", "Path", "Reader", "Source", "load_yaml", "path_str"]

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path as FsPath
from typing import Any

import yaml

from chargewatch.core.errors import ConfigError, ConfigProblem

Path = tuple[str | int, ...]


def path_str(path: Path) -> str:
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + part
    return out


@dataclass
class Source:
    """Plain data from a YAML file plus the position of every key path in it."""

    file: str
    data: Any
    marks: dict[Path, tuple[int, int]] = field(default_factory=dict)
    key_marks: dict[Path, tuple[int, int]] = field(default_factory=dict)  # where each key is

    def where(self, path: Path) -> tuple[int, int]:
        # Fall back to the closest enclosing node that has a mark.
        p = path
        while p:
            if p in self.marks:
                return self.marks[p]
            p = p[:-1]
        return self.marks.get((), (0, 0))

    def problem(self, path: Path, message: str, *, at_key: bool = False) -> ConfigProblem:
        line, col = self.key_marks.get(path, (0, 0)) if at_key else (0, 0)
        if not line:
            line, col = self.where(path)
        return ConfigProblem(self.file, path_str(path), message, line, col)


def _construct(
    node: yaml.Node,
    path: Path,
    marks: dict[Path, tuple[int, int]],
    loader: yaml.SafeLoader,
    key_marks: dict[Path, tuple[int, int]],
) -> Any:
    marks[path] = (node.start_mark.line + 1, node.start_mark.column + 1)
    if isinstance(node, yaml.MappingNode):
        out: dict[str, Any] = {}
        for key_node, value_node in node.value:
            # Keys are names; a structured key is kept as its text.
            key = str(key_node.value) if isinstance(key_node, yaml.ScalarNode) else str(key_node)
            key_marks[(*path, key)] = (key_node.start_mark.line + 1, key_node.start_mark.column + 1)
            out[key] = _construct(value_node, (*path, key), marks, loader, key_marks)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [
            _construct(v, (*path, i), marks, loader, key_marks) for i, v in enumerate(node.value)
        ]
    return loader.construct_object(node, deep=True)


# libyaml's parser when PyYAML was built with it (it keeps line and column
# marks): a 10,000-charger fleet.yaml parses in a fraction of a second
# instead of seconds.
_LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def load_yaml(source: str | FsPath, *, text: str | None = None) -> Source:
    """Load ``source`` (a path; or a display name when ``text`` is given) safely."""
    name = str(source)
    if text is None:
        try:
            text = FsPath(source).read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError([ConfigProblem(name, "", f"cannot read: {exc.strerror}")]) from exc
    try:
        node = yaml.compose(text, Loader=_LOADER)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (0, 0)
        raise ConfigError(
            [ConfigProblem(name, "", f"YAML syntax: {exc.problem or exc}", line, col)]
        ) from exc
    marks: dict[Path, tuple[int, int]] = {}
    key_marks: dict[Path, tuple[int, int]] = {}
    data = None if node is None else _construct(node, (), marks, yaml.SafeLoader(""), key_marks)
    return Source(name, data, marks, key_marks)


class _Missing:
    def __repr__(self) -> str:
        return "MISSING"


MISSING: Any = _Missing()

_TYPE_NAMES = {
    str: "a string",
    int: "an integer",
    float: "a number",
    bool: "true or false",
    dict: "a mapping",
    list: "a list",
}


def _type_name(kind: type | tuple[type, ...]) -> str:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    return " or ".join(_TYPE_NAMES.get(k, k.__name__) for k in kinds)


class Reader:
    """Collects every problem while reading a :class:`Source`, instead of stopping at one."""

    def __init__(self, source: Source) -> None:
        self.source = source
        self.problems: list[ConfigProblem] = []

    def fail(self, path: Path, message: str, *, at_key: bool = False) -> None:
        self.problems.append(self.source.problem(path, message, at_key=at_key))

    def raise_if_failed(self) -> None:
        if self.problems:
            raise ConfigError(self.problems)

    def mapping(
        self,
        value: Any,
        path: Path,
        *,
        allowed: Iterable[str] | None = None,
        required: Iterable[str] = (),
    ) -> dict[str, Any]:
        """Check that ``value`` is a mapping with no unknown keys; return it (or {})."""
        if value is None:
            value = {}
        if not isinstance(value, dict):
            self.fail(path, f"expected a mapping, got {type(value).__name__}")
            return {}
        if allowed is not None:
            allowed_set = set(allowed)
            for key in value:
                if key not in allowed_set:
                    hint = ", ".join(sorted(allowed_set))
                    self.fail((*path, key), f"unknown key; expected one of: {hint}", at_key=True)
        for key in required:
            if key not in value:
                self.fail(path, f"missing required key {key!r}")
        return value

    def get(
        self,
        obj: dict[str, Any],
        path: Path,
        key: str,
        kind: type | tuple[type, ...],
        default: Any = MISSING,
        *,
        check: Callable[[Any], bool] | None = None,
        expected: str = "",
        secret: bool = False,
    ) -> Any:
        """Read ``obj[key]``: type-checked, optionally range-checked; ``default`` when absent.

        ``secret``: a wrong value is described by its type only, never echoed.
        """
        p = (*path, key)
        if key not in obj or obj[key] is None:
            if default is MISSING:
                self.fail(path, f"missing required key {key!r} ({expected or _type_name(kind)})")
            return None if default is MISSING else default
        value = obj[key]
        kinds = kind if isinstance(kind, tuple) else (kind,)
        # YAML ints are acceptable where numbers are; bools are never numbers.
        ok = isinstance(value, kinds) and not (isinstance(value, bool) and bool not in kinds)
        if not ok and float in kinds and isinstance(value, int) and not isinstance(value, bool):
            value, ok = float(value), True
        if not ok:
            got = f"a value of type {type(value).__name__}" if secret else repr(value)
            self.fail(p, f"expected {expected or _type_name(kind)}, got {got}")
            return None if default is MISSING else default
        if check is not None and not check(value):
            self.fail(p, f"expected {expected}, got {value!r}")
            return None if default is MISSING else default
        return value
