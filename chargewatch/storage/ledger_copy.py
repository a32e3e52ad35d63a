"""Copying a whole ledger between backends (``chargewatch ledger migrate``).

The source is read in one snapshot (a read transaction: rows a running
collector writes meanwhile are not half in the copy), the target written in one
transaction (a failure leaves it as it was), then every table's rows are
counted on both sides. Identity sequences on PostgreSQL are moved past the
copied ids, so the next journal row or exclusion does not collide with one.
"""

from __future__ import annotations

__all__ = ["CopyReport", "LedgerNotEmptyError", "copy_ledger", "row_counts"]

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from chargewatch.storage.leases import LEASE_TABLES
from chargewatch.storage.ledger import Ledger
from chargewatch.storage.sqldb import redact

#: Rows read and written per batch: bounded memory for a ledger of any size.
BATCH = 5000
# Parents before children (periods and meter_readings reference sessions).
_FIRST = ("sessions",)


class LedgerNotEmptyError(RuntimeError):
    def __init__(self, target: str, counts: dict[str, int]) -> None:
        self.counts = counts
        held = ", ".join(f"{t} {n}" for t, n in counts.items() if n)
        super().__init__(f"{redact(target)} is not empty ({held}); --force replaces its rows")


class SchemaMismatchError(RuntimeError):
    pass


@dataclass
class CopyReport:
    version: int
    source: dict[str, int] = field(default_factory=dict)
    target: dict[str, int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.source == self.target


def tables(ledger: Ledger) -> list[str]:
    """The ledger's data tables, parents first (``schema_version`` is apart)."""
    # The cluster's leases are who runs where now, not ledger data: not copied.
    names = [t for t in ledger.tables() if t != "schema_version" and t not in LEASE_TABLES]
    return [t for t in _FIRST if t in names] + [t for t in names if t not in _FIRST]


def row_counts(ledger: Ledger) -> dict[str, int]:
    return {
        t: int(ledger.db.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0]) for t in tables(ledger)
    }


def columns(ledger: Ledger, table: str) -> list[str]:
    if ledger.postgres:
        rows = ledger.db.execute(
            "SELECT column_name FROM information_schema.columns"
            " WHERE table_schema = current_schema() AND table_name = ? ORDER BY ordinal_position",
            (table,),
        )
        return [str(r[0]) for r in rows]
    return [str(r[1]) for r in ledger.db.execute(f"PRAGMA table_info({table})")]


def copy_ledger(
    source: Ledger,
    target: Ledger,
    *,
    force: bool = False,
    on_start: Callable[[dict[str, int]], None] = lambda counts: None,
    on_rows: Callable[[str, int], None] = lambda table, n: None,
) -> CopyReport:
    """Copy every row of ``source`` into ``target`` (both open and migrated).

    ``on_start(counts)`` is told the source's row counts, ``on_rows(table, n)``
    each batch written. A target with rows is refused unless ``force``, which
    replaces them.
    """
    if source.version != target.version:
        raise SchemaMismatchError(
            f"source schema {source.version}, target {target.version}: "
            "open both with this chargewatch version"
        )
    report = CopyReport(source.version)
    with _snapshot(source):
        report.source = row_counts(source)
        on_start(report.source)
        with target.transaction():
            held = row_counts(target)
            if any(held.values()):
                if not force:
                    raise LedgerNotEmptyError(target.path, held)
                for t in reversed(tables(target)):
                    target.db.execute(f"DELETE FROM {t}")
            _copy_versions(source, target)
            for t in tables(source):
                _copy_table(source, target, t, on_rows)
                if target.postgres:
                    _bump_identity(target, t)
    report.target = row_counts(target)
    return report


def _copy_versions(source: Ledger, target: Ledger) -> None:
    # When each version was applied at the source is history worth keeping.
    rows = source.db.execute("SELECT version, applied_at FROM schema_version").fetchall()
    target.db.execute("DELETE FROM schema_version")
    target.db.executemany(
        "INSERT INTO schema_version (version, applied_at) VALUES (?, ?)",
        [tuple(r) for r in rows],
    )


def _copy_table(
    source: Ledger, target: Ledger, table: str, on_rows: Callable[[str, int], None]
) -> None:
    cols = columns(source, table)
    names = ", ".join(f'"{c}"' for c in cols)
    insert = f"INSERT INTO {table} ({names}) VALUES ({', '.join('?' * len(cols))})"
    for rows in _batches(source, f"SELECT {names} FROM {table}"):
        target.db.executemany(insert, [tuple(r) for r in rows])
        on_rows(table, len(rows))


def _batches(ledger: Ledger, sql: str) -> Iterator[list[Any]]:
    if ledger.postgres:
        yield from ledger.db.stream(sql, BATCH)
        return
    cur = ledger.db.execute(sql)
    while rows := cur.fetchmany(BATCH):
        yield rows


def _bump_identity(target: Ledger, table: str) -> None:
    """An identity column filled with explicit ids: its next value past them."""
    for col in columns(target, table):
        seq = target.db.execute("SELECT pg_get_serial_sequence(?, ?)", (table, col)).fetchone()[0]
        if seq is None:
            continue
        top = target.db.execute(f'SELECT MAX("{col}") FROM {table}').fetchone()[0]
        if top is not None:
            target.db.execute("SELECT setval(?, ?)", (seq, int(top)))


@contextmanager
def _snapshot(ledger: Ledger) -> Iterator[None]:
    """One read transaction over the source: what the copy reads is one moment."""
    if ledger.postgres:
        with ledger.db.transaction(isolation="repeatable read"):
            yield
        return
    ledger.db.execute("BEGIN")  # deferred: a read snapshot in WAL, no write lock
    try:
        yield
    finally:
        if ledger.db.in_transaction:
            ledger.db.execute("COMMIT")
