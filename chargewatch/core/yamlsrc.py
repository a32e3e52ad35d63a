"""YAML loading that remembers where every value came from.

Operators edit YAML by hand (config, fleet, rules); an error must say
``file:line:col: key.path: what was expected``. PyYAML's composed node tree
carries the marks, so values are built from nodes and each key path's position
is kept beside the plain data. Only the safe constructors are used.

Loading is bounded before anything is built: a file of at most
:data:`MAX_BYTES`, nesting at most :data:`MAX_DEPTH` levels deep, and aliases
that add at most :data:`MAX_ALIAS_NODES` values when expanded. A 330-byte
"billion laughs" file would otherwise expand to gigabytes, and an alias inside
its own anchor to an endless structure; both are refused in milliseconds with
``file:line:col: key.path: ...``.
"""

from __future__ import annotations

__all__ = [
    "MAX_ALIAS_NODES",
    "MAX_BYTES",
    "MAX_DEPTH",
    "MISSING",
    "Path",
    "Reader",
    "Source",
    "load_yaml",
    "path_str",
]

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path as FsPath
from typing import Any

import yaml

from chargewatch.core.errors import ConfigError, ConfigProblem

Path = tuple[str | int, ...]

# A 100,000-charger fleet.yaml is about 13 MB; rule, config and parameter
# files are kilobytes.
MAX_BYTES = 32 * 1024 * 1024
# Real files nest fewer than ten levels; the bound keeps every recursive walk
# (ours, PyYAML's pure-Python composer) far from Python's recursion limit.
MAX_DEPTH = 100
# What aliases may add to a document once expanded. Hand-written anchors
# (shared label sets, repeated test inputs) add tens; an alias bomb, billions.
MAX_ALIAS_NODES = 100_000


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
            key = str(key_node.value)  # _check_graph let only scalar keys through
            key_marks[(*path, key)] = (key_node.start_mark.line + 1, key_node.start_mark.column + 1)
            out[key] = _construct(value_node, (*path, key), marks, loader, key_marks)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [
            _construct(v, (*path, i), marks, loader, key_marks) for i, v in enumerate(node.value)
        ]
    try:
        return loader.construct_object(node, deep=True)
    except yaml.MarkedYAMLError as exc:  # an unknown tag (!!python/...), bad !!binary
        raise _BadValueError(path, node, str(exc.problem or exc)) from exc
    except ValueError as exc:  # an int past CPython's 4,300 digits, 2026-02-30
        text = str(node.value)
        if len(text) > 4300:
            raise _BadValueError(path, node, f"a number of {len(text):,} digits; too long") from exc
        raise _BadValueError(path, node, f"cannot read {text!r}: {exc}") from exc


class _BadValueError(Exception):
    def __init__(self, path: Path, node: yaml.Node, message: str) -> None:
        self.path, self.node, self.message = path, node, message


# libyaml's parser when PyYAML was built with it (it keeps line and column
# marks): a 10,000-charger fleet.yaml parses in a fraction of a second
# instead of seconds.
_LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _children(node: yaml.Node) -> list[tuple[str | int, yaml.Node, yaml.Mark]]:
    """(key, child, where the slot is written) for each value under ``node``."""
    if isinstance(node, yaml.MappingNode):
        return [(str(k.value), v, k.start_mark) for k, v in node.value]
    if isinstance(node, yaml.SequenceNode):
        return [(i, v, v.start_mark) for i, v in enumerate(node.value)]
    return []


def _check_keys(name: str, node: yaml.MappingNode, path: Path) -> None:
    # Keys are names. A list or mapping as a key (YAML's "? [a, b]: x") has no
    # name to report it under, and its text could be an alias bomb's.
    for key_node, _ in node.value:
        if not isinstance(key_node, yaml.ScalarNode):
            line, col = key_node.start_mark.line + 1, key_node.start_mark.column + 1
            msg = "a key must be a plain name, not a list or mapping"
            raise ConfigError([ConfigProblem(name, path_str(path), msg, line, col)])


def _check_graph(name: str, root: yaml.Node, text_length: int) -> None:
    """Refuse cycles, deep nesting and alias expansion beyond the bounds.

    PyYAML composes an alias as the anchored node itself, so the node tree is
    a graph. One iterative depth-first walk visits each node once and keeps,
    per node, its expanded size and height: linear in the file, whatever the
    aliases would expand to.
    """
    size: dict[int, int] = {}  # id(node) -> values under it once expanded (capped)
    height: dict[int, int] = {}
    on_path: set[int] = set()
    # Sizes only need comparing with (nodes in the file + budget), and a file
    # holds fewer nodes than twice its characters: a cap keeps the numbers
    # small where a bomb's would have hundreds of digits.
    cap = 2 * text_length + MAX_ALIAS_NODES + 1

    def fail(path: Path, mark: yaml.Mark, message: str) -> ConfigError:
        line, col = mark.line + 1, mark.column + 1
        where = (
            path_str(path) if len(path) <= 12 else f"{path_str(path[:6])}...{path_str(path[-3:])}"
        )
        return ConfigError([ConfigProblem(name, where, message, line, col)])

    # Frames: (node, its path, its children, index of the next child to visit).
    stack: list[tuple[yaml.Node, Path, list[tuple[str | int, yaml.Node, yaml.Mark]], int]]
    if isinstance(root, yaml.MappingNode):
        _check_keys(name, root, ())
    stack = [(root, (), _children(root), 0)]
    on_path.add(id(root))
    distinct = 1
    while stack:
        node, path, kids, i = stack[-1]
        if i < len(kids):
            stack[-1] = (node, path, kids, i + 1)
            key, child, mark = kids[i]
            child_path = (*path, key)
            if isinstance(node, yaml.SequenceNode) and (
                id(child) in on_path or id(child) in height
            ):
                # An alias in a list: its node's mark is the anchor's; the list
                # that holds the alias is the closest mark to where it is written.
                mark = node.start_mark
            if id(child) in on_path:
                raise fail(child_path, mark, "an alias to a node that contains it (a cycle)")
            if id(child) in height:  # seen before: an alias
                if len(child_path) + height[id(child)] - 1 > MAX_DEPTH:
                    raise fail(child_path, mark, f"nested more than {MAX_DEPTH} levels deep")
                continue
            if len(child_path) > MAX_DEPTH:
                raise fail(child_path, mark, f"nested more than {MAX_DEPTH} levels deep")
            distinct += 1
            if isinstance(child, yaml.MappingNode):
                _check_keys(name, child, child_path)
            on_path.add(id(child))
            stack.append((child, child_path, _children(child), 0))
            continue
        stack.pop()
        on_path.discard(id(node))
        size[id(node)] = min(cap, 1 + sum(size[id(c)] for _, c, _ in kids))
        height[id(node)] = 1 + max((height[id(c)] for _, c, _ in kids), default=0)
        if size[id(node)] - distinct > MAX_ALIAS_NODES:
            # Only aliases can make a node larger than the whole file's node count.
            raise fail(
                path,
                node.start_mark,
                f"aliases expand this to more than {MAX_ALIAS_NODES:,} values beyond the "
                "file's own; write the values out, or share fewer",
            )


def load_yaml(source: str | FsPath, *, text: str | None = None) -> Source:
    """Load ``source`` (a path; or a display name when ``text`` is given) safely."""
    name = str(source)
    too_big = f"larger than {MAX_BYTES:,} bytes; refused"
    if text is None:
        try:
            if FsPath(source).stat().st_size > MAX_BYTES:
                raise ConfigError([ConfigProblem(name, "", too_big)])
            text = FsPath(source).read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError([ConfigProblem(name, "", f"cannot read: {exc.strerror}")]) from exc
        except UnicodeDecodeError as exc:
            raise ConfigError([ConfigProblem(name, "", f"not UTF-8 text: {exc.reason}")]) from exc
    if len(text) > MAX_BYTES:
        raise ConfigError([ConfigProblem(name, "", too_big)])
    try:
        node = yaml.compose(text, Loader=_LOADER)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (0, 0)
        raise ConfigError(
            [ConfigProblem(name, "", f"YAML syntax: {exc.problem or exc}", line, col)]
        ) from exc
    except yaml.YAMLError as exc:  # e.g. a control character libyaml refuses unmarked
        raise ConfigError([ConfigProblem(name, "", f"YAML syntax: {exc}")]) from exc
    except RecursionError as exc:  # PyYAML's pure-Python composer, without libyaml
        msg = f"nested more than {MAX_DEPTH} levels deep"
        raise ConfigError([ConfigProblem(name, "", msg)]) from exc
    if node is not None:
        _check_graph(name, node, len(text))
    marks: dict[Path, tuple[int, int]] = {}
    key_marks: dict[Path, tuple[int, int]] = {}
    try:
        data = None if node is None else _construct(node, (), marks, yaml.SafeLoader(""), key_marks)
    except _BadValueError as exc:
        mark = exc.node.start_mark
        problem = ConfigProblem(
            name, path_str(exc.path), exc.message, mark.line + 1, mark.column + 1
        )
        raise ConfigError([problem]) from exc
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
