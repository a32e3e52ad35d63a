"""Tariff files: OCPI Tariff JSON read with exact numbers, one file or a folder.

The only module of billing that reads files; pricing itself stays pure.
"""

from __future__ import annotations

__all__ = ["load_json", "load_tariff", "load_tariff_dir"]

import json
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from chargewatch.billing.tariff import Tariff, parse_tariff
from chargewatch.core.errors import ConfigError, ConfigProblem


def load_json(path: str | Path) -> Any:
    """Decode a JSON file keeping numbers exact (Decimal); ConfigError if unreadable."""
    name = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([ConfigProblem(name, "", f"cannot read: {exc.strerror}")]) from exc
    try:
        return json.loads(text, parse_float=_decimal, parse_int=_integer)
    except json.JSONDecodeError as exc:
        raise ConfigError(
            [ConfigProblem(name, "", f"invalid JSON: {exc.msg}", exc.lineno, exc.colno)]
        ) from exc
    except RecursionError:
        # json recurses per level: a file nested some thousand levels deep
        # escaped as a RecursionError (a traceback from run and replay).
        line, col = _depth_exceeded(text, MAX_JSON_DEPTH)
        msg = f"invalid JSON: nested deeper than {MAX_JSON_DEPTH} levels"
        raise ConfigError([ConfigProblem(name, "", msg, line, col)]) from None


#: No OCPI tariff nests beyond a dozen levels; json gives up near a thousand.
MAX_JSON_DEPTH = 100


def _depth_exceeded(text: str, limit: int) -> tuple[int, int]:
    """Line and column (1-based) of the bracket that first opens level limit + 1."""
    depth, line, col, in_str, esc = 0, 1, 0, False, False
    for ch in text:
        col += 1
        if ch == "\n":
            line, col = line + 1, 0
        elif in_str:
            esc, in_str = (False, True) if esc else (ch == "\\", ch != '"')
        elif ch == '"':
            in_str = True
        elif ch in "[{":
            depth += 1
            if depth > limit:
                return line, col
        elif ch in "]}":
            depth -= 1
    return line, col


def _decimal(text: str) -> Decimal:
    try:
        return Decimal(text)
    except InvalidOperation:
        # An exponent beyond what Decimal holds (1e99999999999999999999): an
        # infinity, which the tariff's bounds then report with its key path.
        return Decimal("-Infinity" if text.startswith("-") else "Infinity")


def _integer(text: str) -> int | Decimal:
    # int() refuses more than 4,300 digits with a ValueError (CPython's guard);
    # a long literal stays exact as a Decimal and meets the bounds instead.
    return int(text) if len(text) <= 18 else Decimal(text)


def load_tariff(path: str | Path) -> Tariff:
    """Read and validate one OCPI Tariff file; ConfigError lists every problem."""
    return parse_tariff(load_json(path), file=str(path))


def load_tariff_dir(directory: str | Path) -> dict[str, Tariff]:
    """Every ``*.json`` tariff in a directory, by tariff id (for ``--tariffs DIR``).

    Raises one ConfigError with the problems of all files, including two files
    that share an id (a fleet names tariffs by id, so that would be ambiguous).
    """
    tariffs: dict[str, Tariff] = {}
    where: dict[str, str] = {}
    problems: list[ConfigProblem] = []
    for path in sorted(Path(directory).glob("*.json")):
        try:
            tariff = load_tariff(path)
        except ConfigError as exc:
            problems.extend(exc.problems)
            continue
        if tariff.id in tariffs:
            problems.append(
                ConfigProblem(
                    str(path), "id", f"tariff {tariff.id!r} is also in {where[tariff.id]}"
                )
            )
            continue
        tariffs[tariff.id] = tariff
        where[tariff.id] = str(path)
    if problems:
        raise ConfigError(problems)
    return tariffs
