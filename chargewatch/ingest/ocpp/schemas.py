"""The official OCPP JSON schemas (shipped by the ``ocpp`` package), compiled once.

Validation runs twice as fast paths go: every frame is checked by a
fastjsonschema-compiled function (a few µs for a MeterValues frame); only when
that fails is the schema re-run through ``jsonschema`` to list *every* error
with its JSON path, so a rejection says exactly what was wrong and a bad
sampledValue can be cut out without losing the rest of the frame.

``format`` keywords are removed before compiling: timestamps are parsed by the
decoder itself, which reports ``bad_timestamp`` with the offending text and
accepts offset-less timestamps as UTC (a counted quirk) instead of failing the
whole frame on a regex.
"""

from __future__ import annotations

__all__ = ["SchemaError", "Schemas", "actions", "schemas"]

import json
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

import fastjsonschema
import jsonschema

# The package names its 1.6 request schemas "<Action>.json" and its 2.0.1 ones
# "<Action>Request.json"; responses are "<Action>Response.json" in both.
_PACKAGE_DIR = {"1.6": "v16", "2.0.1": "v201"}
_REQUEST_SUFFIX = {"1.6": "", "2.0.1": "Request"}
_MAX_MESSAGE = 160


@dataclass(frozen=True, slots=True)
class SchemaError:
    """One schema violation: where (a JSON path as a tuple) and what."""

    path: tuple[str | int, ...]
    message: str

    def where(self) -> str:
        out = "$"
        for part in self.path:
            out += f"[{part}]" if isinstance(part, int) else f".{part}"
        return out

    def __str__(self) -> str:
        return f"{self.where()}: {self.message}"


def _strip_formats(node: Any) -> Any:
    if isinstance(node, dict):
        # The keyword's value is a string; a property *named* format (1.6
        # sampledValue.format) is a schema object and stays.
        return {
            k: _strip_formats(v)
            for k, v in node.items()
            if not (k == "format" and isinstance(v, str))
        }
    if isinstance(node, list):
        return [_strip_formats(v) for v in node]
    return node


def _load(version: str, name: str) -> dict[str, Any] | None:
    folder = resources.files("ocpp").joinpath(_PACKAGE_DIR[version], "schemas")
    file = folder.joinpath(f"{name}.json")
    if not file.is_file():
        return None
    # Some of the shipped files start with a UTF-8 byte order mark.
    raw: dict[str, Any] = json.loads(file.read_text(encoding="utf-8-sig"))
    stripped: dict[str, Any] = _strip_formats(raw)
    return stripped


@cache
def actions(version: str) -> frozenset[str]:
    """Every action the version defines (a CALL naming anything else is unknown)."""
    folder = resources.files("ocpp").joinpath(_PACKAGE_DIR[version], "schemas")
    suffix = _REQUEST_SUFFIX[version]
    names = set()
    for entry in folder.iterdir():
        stem = entry.name.removesuffix(".json")
        if not entry.name.endswith(".json") or stem.endswith("Response"):
            continue
        names.add(stem.removesuffix(suffix) if suffix else stem)
    return frozenset(names)


class _Compiled:
    __slots__ = ("check", "schema", "slow")

    def __init__(self, schema: dict[str, Any]) -> None:
        self.schema = schema
        self.check: Callable[[Any], Any] = fastjsonschema.compile(schema)
        cls = jsonschema.validators.validator_for(schema)
        self.slow: Any = cls(schema)


class Schemas:
    """Validators for one OCPP version, compiled on first use per action."""

    def __init__(self, version: str) -> None:
        self.version = version
        self._compiled: dict[str, _Compiled | None] = {}

    def _get(self, name: str) -> _Compiled | None:
        try:
            return self._compiled[name]
        except KeyError:
            schema = _load(self.version, name)
            compiled = _Compiled(schema) if schema is not None else None
            self._compiled[name] = compiled
            return compiled

    def request(self, action: str) -> _Compiled | None:
        return self._get(action + _REQUEST_SUFFIX[self.version])

    def response(self, action: str) -> _Compiled | None:
        return self._get(action + "Response")

    @staticmethod
    def errors(compiled: _Compiled, payload: Any) -> list[SchemaError]:
        """Every violation, or [] when the payload is valid (fast path first)."""
        try:
            compiled.check(payload)
        except fastjsonschema.JsonSchemaException:
            pass
        else:
            return []
        try:
            found = [
                SchemaError(tuple(e.absolute_path), _short(e.message))
                for e in compiled.slow.iter_errors(payload)
            ]
        except RecursionError:
            # jsonschema's messages repr() the offending value; orjson accepts
            # nesting (1024) deeper than repr can go.
            return [SchemaError((), "a value is nested too deeply to describe")]
        if not found:  # the two engines disagree; trust the stricter, say so
            found = [SchemaError((), "rejected by the compiled schema")]
        found.sort(key=lambda e: tuple(str(p) for p in e.path))
        return found


def _short(message: str) -> str:
    # jsonschema quotes the whole enum ("... is not one of [22 measurands]").
    return message if len(message) <= _MAX_MESSAGE else message[: _MAX_MESSAGE - 1] + "…"


@cache
def schemas(version: str) -> Schemas:
    """The shared, lazily compiled validators of ``version`` ("1.6" or "2.0.1")."""
    return Schemas(version)
