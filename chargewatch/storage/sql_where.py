"""Parameterised SQL ``WHERE`` clauses for the ledger's filtered reads.

The ledger's readers (sessions and CDRs for the API, the analytics loaders)
filter by time, site and charger; each filter is optional. :class:`Where`
collects the ones that are set as ``column op ?`` with their values apart, so
a value never becomes SQL text. Columns and operators are the caller's
constants, checked here so a mistake fails loudly rather than reaching SQLite.
"""

from __future__ import annotations

__all__ = ["Where", "session_where"]

from typing import Any

_OPERATORS = frozenset({"=", "!=", "<", "<=", ">", ">="})


class Where:
    """The conditions whose value is set, ANDed; ``table`` qualifies the columns."""

    def __init__(self, table: str = "") -> None:
        if table and not table.isidentifier():
            raise ValueError(f"not a table alias: {table!r}")
        self._prefix = f"{table}." if table else ""
        self._conditions: list[str] = []
        self.args: list[Any] = []

    def compare(self, column: str, op: str, value: Any) -> Where:
        """Adds ``column op ?`` unless ``value`` is None (the filter is not set)."""
        if not column.isidentifier() or op not in _OPERATORS:
            raise ValueError(f"not a column comparison: {column!r} {op!r}")
        if value is not None:
            self._conditions.append(f"{self._prefix}{column} {op} ?")
            self.args.append(value)
        return self

    @property
    def sql(self) -> str:
        """`` WHERE a AND b`` with a leading space, or "" when no filter is set."""
        return (" WHERE " + " AND ".join(self._conditions)) if self._conditions else ""


def session_where(
    table: str = "",
    *,
    start_from: float | None = None,
    start_to: float | None = None,
    charger: str | None = None,
    site: str | None = None,
) -> Where:
    """Rows of ``sessions`` or ``cdrs`` whose start is in
    [start_from, start_to), on ``charger``, at ``site``; None leaves a filter out."""
    return (
        Where(table)
        .compare("start", ">=", start_from)
        .compare("start", "<", start_to)
        .compare("charger_id", "=", charger)
        .compare("site", "=", site)
    )
