"""The session ledger: SQLite (WAL) holding billed sessions, their charging
periods, the raw start/stop meter readings and the engine's checkpoint.

Writes are idempotent: a session row is keyed by its deterministic
``session_id`` and only replaced by an equal or higher ``revision``, so
replaying the same capture twice leaves the same rows. The schema carries a
version table and grows through :data:`MIGRATIONS` (append, never edit): the
CDR and alert-history tables of other areas go there.

Query functions (:func:`query_sessions`, :func:`get_session`) return plain
dicts in the ``sessions.jsonl`` shape (docs/architecture.md), for the HTTP API and the
exporter.
"""

from __future__ import annotations

__all__ = [
    "MIGRATIONS",
    "CollectorBusyError",
    "Ledger",
    "OwnershipConflictError",
    "get_session",
    "query_billing",
    "query_sessions",
    "session_owners",
    "with_costs",
]

import contextlib
import fcntl
import functools
import json
import math
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar, cast

import orjson

from chargewatch.billing.export import billing_row
from chargewatch.model.mrec import MREC_CODES
from chargewatch.sessions.session_engine import SessionRecord
from chargewatch.storage.health import StorageHealth, guarded
from chargewatch.storage.leases import LeaseTable
from chargewatch.storage.sql_where import session_where
from chargewatch.storage.sqldb import (
    Dialects,
    PgDatabase,
    PgOptions,
    advisory_key,
    is_postgres,
    pg_ddl,
    redact,
    sqlite_path,
)

_F = TypeVar("_F", bound=Callable[..., Any])


def _durable(method: _F) -> _F:
    """A write transaction retried through the ledger's StorageHealth while the disk
    is full (SQLITE_FULL/IOERR roll it back whole, so a retry repeats nothing).
    Iterators among the arguments are read once, before the first attempt."""

    @functools.wraps(method)
    def wrapper(self: Ledger, *args: Any, **kwargs: Any) -> Any:
        args = tuple(list(a) if isinstance(a, Iterator) else a for a in args)
        return guarded(self.health, "ledger", lambda: method(self, *args, **kwargs))

    return cast(_F, wrapper)


#: (version, statements). Append new versions; never edit an applied one.
#: A statement is written in SQLite's dialect; PostgreSQL runs it through
#: ``sqldb.pg_ddl`` (REAL, AUTOINCREMENT, ``end``). One that cannot be written
#: for both is a ``Dialects(sqlite=..., postgresql=...)`` pair.
MIGRATIONS: list[tuple[int, Sequence[str | Dialects]]] = [
    (
        1,
        (
            """CREATE TABLE sessions (
                session_id TEXT PRIMARY KEY,
                charger_id TEXT NOT NULL,
                connector_id INTEGER NOT NULL,
                site TEXT NOT NULL,
                transaction_id TEXT NOT NULL,
                start REAL NOT NULL,            -- epoch s (meter clock)
                stop REAL NOT NULL,
                energy_wh REAL NOT NULL,
                energy_source TEXT NOT NULL,    -- register | transaction_meter | power_integral
                quality TEXT NOT NULL,          -- JSON list of flags
                revision INTEGER NOT NULL,
                stop_reason TEXT NOT NULL,
                duration_s REAL NOT NULL,
                idle_s REAL NOT NULL,
                charging_s REAL NOT NULL,
                register_wh REAL,
                power_integral_wh REAL NOT NULL,
                mismatch_wh REAL,
                mismatch_pct REAL,
                id_tag TEXT NOT NULL,
                record TEXT NOT NULL,           -- the sessions.jsonl object, as emitted
                written_at REAL NOT NULL
            )""",
            "CREATE INDEX sessions_by_start ON sessions(start)",
            "CREATE INDEX sessions_by_charger ON sessions(charger_id, start)",
            "CREATE INDEX sessions_by_site ON sessions(site, start)",
            """CREATE TABLE periods (
                session_id TEXT NOT NULL REFERENCES sessions(session_id) ON DELETE CASCADE,
                seq INTEGER NOT NULL,
                kind TEXT NOT NULL,             -- charging | idle
                start REAL NOT NULL,
                end REAL NOT NULL,
                energy_wh REAL NOT NULL,
                min_power_w REAL,
                max_power_w REAL,
                max_current_a REAL,
                PRIMARY KEY (session_id, seq)
            )""",
            """CREATE TABLE meter_readings (
                session_id TEXT NOT NULL REFERENCES sessions(session_id) ON DELETE CASCADE,
                kind TEXT NOT NULL,             -- start | stop
                ts REAL NOT NULL,
                energy_wh REAL,
                signed_data TEXT NOT NULL,
                PRIMARY KEY (session_id, kind)
            )""",
            """CREATE TABLE engine_state (
                name TEXT PRIMARY KEY,
                state TEXT NOT NULL,            -- JSON (NaN allowed)
                saved_at REAL NOT NULL
            )""",
        ),
    ),
    (
        # Priced CDRs (one per session) and the alert history, for revenue and
        # reliability analytics. Costs are REAL for aggregation; ``cdr`` keeps the
        # exact OCPI object (decimal strings) for billing.
        2,
        (
            """CREATE TABLE cdrs (
                session_id TEXT PRIMARY KEY,
                charger_id TEXT NOT NULL,
                site TEXT NOT NULL,
                start REAL NOT NULL,
                tariff_id TEXT NOT NULL,
                currency TEXT NOT NULL,
                total_cost_excl_vat REAL NOT NULL,
                total_cost_incl_vat REAL,       -- NULL: VAT unknown
                total_energy_kwh REAL NOT NULL,
                cdr TEXT NOT NULL,              -- OCPI 2.2.1 CDR JSON
                written_at REAL NOT NULL
            )""",
            "CREATE INDEX cdrs_by_start ON cdrs(start)",
            """CREATE TABLE alert_transitions (
                at REAL NOT NULL,
                state TEXT NOT NULL,            -- firing | resolved
                alertname TEXT NOT NULL,
                labels TEXT NOT NULL,           -- JSON object, sorted keys
                charger TEXT NOT NULL,
                site TEXT NOT NULL,
                PRIMARY KEY (alertname, labels, at, state)
            )""",
            "CREATE INDEX alert_transitions_by_at ON alert_transitions(at)",
        ),
    ),
    (
        3,
        (
            # Every CDR ever issued, credits included: a CDR is never changed
            # silently (OCPI: credit the old one, issue a new one). ``cdrs``
            # keeps the current CDR of each session for queries and analytics.
            """CREATE TABLE cdr_history (
                cdr_id TEXT PRIMARY KEY,
                session_id TEXT NOT NULL,
                kind TEXT NOT NULL,             -- issued | credit
                revision INTEGER NOT NULL,
                issued_at REAL NOT NULL,
                cdr TEXT NOT NULL
            )""",
            "CREATE INDEX cdr_history_by_session ON cdr_history(session_id)",
            # Sessions that could not be priced (no tariff), never priced as 0.
            """CREATE TABLE unpriced (
                session_id TEXT PRIMARY KEY,
                charger_id TEXT NOT NULL,
                site TEXT NOT NULL,
                start REAL NOT NULL,
                reason TEXT NOT NULL,
                at REAL NOT NULL
            )""",
        ),
    ),
    (
        4,
        (
            # Session events (transactions, statuses, begin/end readings) since the
            # last engine checkpoint, written before the batch is acknowledged to
            # the broker and cleared by the next checkpoint: a restart replays them
            # on top of the checkpoint. Cheaper than a full checkpoint per batch.
            """CREATE TABLE session_journal (
                seq INTEGER PRIMARY KEY AUTOINCREMENT,
                kind TEXT NOT NULL,             -- the event's class name
                event TEXT NOT NULL             -- its fields, JSON
            )""",
        ),
    ),
    (
        # Several collectors on one ledger (docs/scaling.md): each journals and
        # clears only its own events. Rows from before are the single collector's.
        5,
        (
            "ALTER TABLE session_journal ADD COLUMN collector TEXT NOT NULL DEFAULT 'default'",
            "CREATE INDEX session_journal_by_collector ON session_journal(collector, seq)",
        ),
    ),
    (
        # State a collector gave up (its chargers now belong to another
        # collector) until their new owner takes it (docs/scaling.md, handover).
        6,
        (
            """CREATE TABLE handover (
                seq INTEGER PRIMARY KEY AUTOINCREMENT,
                kind TEXT NOT NULL,             -- sessions | fleet_state
                from_collector TEXT NOT NULL,
                state TEXT NOT NULL,            -- part of a snapshot, JSON
                at REAL NOT NULL
            )""",
            "CREATE INDEX handover_by_kind ON handover(kind, seq)",
        ),
    ),
    (
        # Issue 18: where the register is proven wrong (needs_review) or differs
        # from the best estimate, both figures and the reason.
        7,
        (
            "ALTER TABLE sessions ADD COLUMN register_energy_wh REAL",
            "ALTER TABLE sessions ADD COLUMN estimate_energy_wh REAL",
            "ALTER TABLE sessions ADD COLUMN review_reason TEXT NOT NULL DEFAULT ''",
        ),
    ),
    (
        # Outage time an operator tagged with a cause of 23 CFR 680.116(b)(3)
        # (docs/analytics.md, Uptime). A tag is never deleted, only marked
        # removed; every tag, change and removal is kept in the audit trail.
        8,
        (
            """CREATE TABLE uptime_exclusions (
                id INTEGER PRIMARY KEY AUTOINCREMENT,
                charger TEXT NOT NULL,
                connector TEXT NOT NULL,        -- "" = every port of the charger
                start REAL NOT NULL,
                end REAL NOT NULL,
                cause TEXT NOT NULL,
                tagged_by TEXT NOT NULL,
                reason TEXT NOT NULL,
                removed INTEGER NOT NULL DEFAULT 0
            )""",
            """CREATE TABLE uptime_exclusion_audit (
                seq INTEGER PRIMARY KEY AUTOINCREMENT,
                exclusion_id INTEGER NOT NULL,
                action TEXT NOT NULL,           -- tag | change | remove
                at REAL NOT NULL,
                by TEXT NOT NULL,
                reason TEXT NOT NULL,
                record TEXT NOT NULL            -- the exclusion after the action, JSON
            )""",
        ),
    ),
    (
        # Issue 21: the verdict on a session's signed meter readings (OCMF), and
        # each signed reading with its own verdict, for receipts and audits
        # (docs/signatures.md). Sessions written before keep 'unsigned'.
        9,
        (
            "ALTER TABLE sessions ADD COLUMN signature_status TEXT NOT NULL DEFAULT 'unsigned'",
            "ALTER TABLE sessions ADD COLUMN signature_reason TEXT NOT NULL DEFAULT ''",
            "ALTER TABLE sessions ADD COLUMN key_pinned INTEGER NOT NULL DEFAULT 0",
            "ALTER TABLE sessions ADD COLUMN public_key TEXT NOT NULL DEFAULT ''",
            """CREATE TABLE signed_readings (
                session_id TEXT NOT NULL REFERENCES sessions(session_id) ON DELETE CASCADE,
                seq INTEGER NOT NULL,           -- order of arrival
                record INTEGER NOT NULL,        -- which OCMF string (one may hold B and E)
                ocmf TEXT NOT NULL,             -- as received when it is not OCMF
                meter_serial TEXT NOT NULL,
                time TEXT NOT NULL,             -- OCMF TM, as written
                value TEXT NOT NULL,            -- OCMF RV, as written
                unit TEXT NOT NULL,             -- OCMF RU
                reason TEXT NOT NULL,           -- OCMF TX: B, C, E, ...
                pagination TEXT NOT NULL,       -- OCMF PG
                signature_valid INTEGER,        -- NULL: not checked (no key, not OCMF)
                status TEXT NOT NULL,           -- verified | invalid | key_unknown | unreadable
                detail TEXT NOT NULL,
                public_key TEXT NOT NULL,       -- hex DER the signature was checked with
                key_pinned INTEGER NOT NULL,
                PRIMARY KEY (session_id, seq)
            )""",
        ),
    ),
    (
        # Issue 22: every connector status change, kept so that uptime over a past
        # year survives restarts (the fleet state keeps only the latest status).
        # Keyed by port and time: re-recording a replay adds nothing.
        11,
        (
            """CREATE TABLE port_status (
                charger TEXT NOT NULL,
                connector TEXT NOT NULL,
                at REAL NOT NULL,               -- when the charger says it changed
                status TEXT NOT NULL,           -- OCPP 1.6 ChargePointStatus
                error_code TEXT NOT NULL,       -- OCPP 1.6 ChargePointErrorCode
                PRIMARY KEY (charger, connector, at)
            ) WITHOUT ROWID""",
            "CREATE INDEX port_status_by_at ON port_status(at)",
        ),
    ),
    (
        # Issue 22: an offline outage starts at the charger's last sign of life, which
        # the alert fires only a timeout later; the alert stage writes that time
        # (NULL: not known, the firing time stands). And the MREC code a charger
        # stated gets its own column instead of riding after a comma in error_code.
        12,
        (
            "ALTER TABLE alert_transitions ADD COLUMN evidence_start REAL",
            "ALTER TABLE port_status ADD COLUMN mrec TEXT NOT NULL DEFAULT ''",
            Dialects(
                sqlite="UPDATE port_status"
                " SET mrec = substr(error_code, instr(error_code, ',') + 1),"
                " error_code = substr(error_code, 1, instr(error_code, ',') - 1)"
                " WHERE instr(error_code, ',') > 0",
                postgresql="UPDATE port_status"
                " SET mrec = split_part(error_code, ',', 2),"
                " error_code = split_part(error_code, ',', 1)"
                " WHERE strpos(error_code, ',') > 0",
            ),
        ),
    ),
    (
        # Issue 23: dynamic partitions' leases and members (storage/leases.py),
        # created with the schema rather than by the first collector of a
        # cluster. Used on PostgreSQL only; empty on SQLite, for one schema.
        # IF NOT EXISTS: ledgers of clusters started before have them already.
        13,
        (
            """CREATE TABLE IF NOT EXISTS partition_leases (
                partition INTEGER NOT NULL PRIMARY KEY,
                owner TEXT NOT NULL DEFAULT '',
                token BIGINT NOT NULL DEFAULT 0,  -- fencing token, +1 at every claim
                expires_at REAL NOT NULL DEFAULT 0  -- epoch s, the database's clock
            )""",
            """CREATE TABLE IF NOT EXISTS cluster_members (
                collector TEXT PRIMARY KEY,
                seen_until REAL NOT NULL
            )""",
        ),
    ),
]

#: How long a writer waits for another process's write transaction (SQLite
#: busy timeout). Collectors sharing a ledger hold it for milliseconds per batch.
BUSY_TIMEOUT_S = 30.0

# Upserts in the syntax both engines run (SQLite's INSERT OR REPLACE is its own).
_PUT_STATE = (
    "INSERT INTO engine_state VALUES (?, ?, ?) ON CONFLICT (name)"
    " DO UPDATE SET state=excluded.state, saved_at=excluded.saved_at"
)
_REPLACE_CDR = " ON CONFLICT (session_id) DO UPDATE SET " + ", ".join(
    f"{c}=excluded.{c}"
    for c in (
        "charger_id", "site", "start", "tariff_id", "currency", "total_cost_excl_vat",
        "total_cost_incl_vat", "total_energy_kwh", "cdr", "written_at",
    )
)  # fmt: skip


#: Splits a state part by ownership: ``(mine, rest)``; either may be None (empty).
Splitter = Callable[[dict[str, Any]], tuple[dict[str, Any] | None, dict[str, Any] | None]]
#: Joins two state parts into one.
Merger = Callable[[dict[str, Any], dict[str, Any]], dict[str, Any]]


class CollectorBusyError(RuntimeError):
    """Another process runs with this collector id on this ledger."""

    def __init__(self, collector_id: str, path: str) -> None:
        self.collector_id = collector_id
        self.path = path
        super().__init__(
            f"collector_id {collector_id!r} is already running on ledger {path}; "
            "give each collector its own collector_id"
        )


class OwnershipConflictError(RuntimeError):
    """A running collector holds state of chargers this collector owns."""

    def __init__(self, holder: str, chargers: Sequence[str]) -> None:
        self.holder = holder
        self.chargers = list(chargers)
        shown = ", ".join(self.chargers[:5]) + (" ..." if len(self.chargers) > 5 else "")
        super().__init__(
            f"running collector {holder!r} holds sessions of chargers this collector owns "
            f"({shown}): partitions overlap, or {holder!r} still runs an old partition; "
            f"stop it before starting this one (docs/scaling.md, handover)"
        )


class Ledger:
    """One SQLite file, or one PostgreSQL database (``postgresql://…``).

    The writer (the pipeline) opens it normally and uses it from one thread.
    Readers (the HTTP API) open ``Ledger(path, read_only=True)``: no
    migrations, no writes, usable from any thread (queries are serialised by
    a lock); WAL lets them read while the pipeline writes.

    Several collectors may write one ledger file on one host (docs/scaling.md):
    every write is a ``BEGIN IMMEDIATE`` transaction that waits up to
    :data:`BUSY_TIMEOUT_S` for the others; the migration runs in one such
    transaction, so two processes starting at once migrate once. Each
    collector's resume state (checkpoint, session journal) is kept under its
    ``collector_id``; sessions, CDRs and alert history are shared (their keys
    contain the charger id, and each charger has one owner).

    On PostgreSQL the collectors may run on different hosts: the migration,
    the handover and the "is this collector running" check take advisory
    locks instead of SQLite's single writer and lock files (docs/scaling.md).
    """

    def __init__(
        self,
        path: str | Path,
        *,
        read_only: bool = False,
        collector_id: str = "default",
        health: StorageHealth | None = None,
        pg: PgOptions | None = None,
    ) -> None:
        self.path = str(path)
        self.pg = pg
        self.health = health
        self.read_only = read_only
        self.collector_id = collector_id
        self.lock = threading.Lock()
        self._claim: int | None = None  # fd holding this collector's lock file
        self._pg_claim: Any = None  # PostgreSQL: the connection holding the advisory lock
        #: Dynamic partitions (PostgreSQL): the collector's leases. Set, every write
        #: of a charger's sessions, CDRs and journal, and every checkpoint, checks
        #: in its own transaction that the lease is still this collector's.
        self.fencing: LeaseTable | None = None
        self.db: Any
        if is_postgres(self.path):
            self.dialect = "postgresql"
            self.db = PgDatabase(self.path, read_only=read_only, options=pg)
            if not read_only:
                try:
                    self._migrate()
                except BaseException:
                    self.db.close()  # an open retried by StorageHealth must not leak pools
                    raise
            return
        self.dialect = "sqlite"
        file = sqlite_path(self.path)
        self.file = file
        if read_only:
            uri = f"file:{Path(file).resolve()}?mode=ro"
            self.db = sqlite3.connect(
                uri,
                uri=True,
                isolation_level=None,
                check_same_thread=False,
                timeout=BUSY_TIMEOUT_S,
            )
        else:
            # Opened by the service's main thread, written by the pipeline thread
            # only (and closed after it stopped): one user at a time.
            self.db = sqlite3.connect(
                file, isolation_level=None, check_same_thread=False, timeout=BUSY_TIMEOUT_S
            )
        self.db.row_factory = sqlite3.Row
        if read_only:
            return
        if file != ":memory:":
            # WAL: the HTTP API reads while the pipeline writes, and collectors
            # sharing the file write one after the other without blocking readers.
            # (WAL needs shared memory: every process on one host, a local disk.)
            self._enable_wal()
        self.db.execute("PRAGMA foreign_keys=ON")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self._migrate()

    def sibling(self) -> Ledger:
        """Another connection to this ledger, with the same connection settings
        (password, TLS), for a thread of its own; it may write."""
        return Ledger(self.path, pg=self.pg)

    @property
    def postgres(self) -> bool:
        return self.dialect == "postgresql"

    @property
    def memory(self) -> bool:
        return not self.postgres and self.file == ":memory:"

    def close(self) -> None:
        self.db.close()
        if self._claim is not None:
            os.close(self._claim)  # releases the flock
            self._claim = None
        if self._pg_claim is not None:
            self._pg_claim.close()  # ends the session: releases the advisory lock
            self._pg_claim = None

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def version(self) -> int:
        row = self.db.execute("SELECT MAX(version) FROM schema_version").fetchone()
        return int(row[0] or 0)

    def has_table(self, name: str) -> bool:
        """Whether the ledger has table ``name`` (a reader may open an old one)."""
        if self.postgres:
            return bool(self.db.has_table(name))
        row = self.db.execute(
            "SELECT 1 FROM sqlite_master WHERE type='table' AND name=?", (name,)
        ).fetchone()
        return row is not None

    def tables(self) -> list[str]:
        """Every table, ``schema_version`` included, by name."""
        if self.postgres:
            return list(self.db.tables())
        rows = self.db.execute(
            "SELECT name FROM sqlite_master WHERE type='table' AND name NOT LIKE 'sqlite_%'"
        ).fetchall()
        return sorted(str(r[0]) for r in rows)

    def _migrate(self) -> None:
        if not self.memory and self._current_version() >= MIGRATIONS[-1][0]:
            return  # the common case: no write lock taken at start
        # The version is read inside the write transaction: a collector that
        # waited for another one's migration sees it applied, instead of
        # running the same CREATE TABLEs again.
        with self._tx("migrate"):
            self._ddl(
                "CREATE TABLE IF NOT EXISTS schema_version"
                " (version INTEGER PRIMARY KEY, applied_at REAL NOT NULL)"
            )
            current = self.version
            for version, statements in MIGRATIONS:
                if version <= current:
                    continue
                for sql in statements:
                    self._ddl(sql)
                self.db.execute("INSERT INTO schema_version VALUES (?, ?)", (version, time.time()))

    def _ddl(self, sql: str | Dialects) -> None:
        """A migration statement in this ledger's dialect."""
        if isinstance(sql, Dialects):
            sql = sql.postgresql if self.postgres else sql.sqlite
        elif self.postgres:
            sql = pg_ddl(sql)
        if self.postgres:
            self.db.execute_ddl(sql)
        else:
            self.db.execute(sql)

    def _enable_wal(self) -> None:
        # Switching a new file to WAL takes a lock for which SQLite reports
        # "database is locked" at once instead of calling the busy handler:
        # collectors opening a fresh ledger together retry here.
        deadline = time.monotonic() + BUSY_TIMEOUT_S
        while True:
            try:
                self.db.execute("PRAGMA journal_mode=WAL")
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(0.01)

    def _current_version(self) -> int:
        if self.postgres:
            return self.version if self.has_table("schema_version") else 0
        try:
            return self.version
        except sqlite3.OperationalError:  # no schema_version table yet
            return 0

    def _state_name(self, name: str) -> str:
        # "default" keeps the unqualified name a single collector always wrote.
        return name if self.collector_id == "default" else f"{name}@{self.collector_id}"

    def _tx(self, lock: str | None = None) -> contextlib.AbstractContextManager[None]:
        """A write transaction. SQLite's are exclusive anyway; on PostgreSQL
        ``lock`` (an advisory-lock purpose) serialises the writers that name it."""
        if self.postgres:
            return cast(contextlib.AbstractContextManager[None], self.db.transaction(lock))
        return _Tx(self.db)

    def transaction(self) -> contextlib.AbstractContextManager[None]:
        """A write transaction for the ledger's other writers (uptime exclusions,
        ``ledger migrate``); they read and write in it, so on PostgreSQL they
        take one advisory lock and run one at a time, as on SQLite."""
        return self._tx("writer")

    @_durable
    def write(self, records: Iterable[SessionRecord], *, written_at: float = 0.0) -> int:
        """Insert or revise sessions; return how many rows changed.

        A record replaces the stored one only if its revision is at least as
        high, so re-applying old output (a replay, a restart) never rolls back.
        """
        changed = 0
        records = list(records)
        with self._tx():
            self._fence(r.charger_id for r in records)
            for r in records:
                d = r.to_dict()
                cur = self.db.execute(
                    """INSERT INTO sessions VALUES
                       (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)
                       ON CONFLICT(session_id) DO UPDATE SET
                         charger_id=excluded.charger_id, connector_id=excluded.connector_id,
                         site=excluded.site, transaction_id=excluded.transaction_id,
                         start=excluded.start, stop=excluded.stop,
                         energy_wh=excluded.energy_wh, energy_source=excluded.energy_source,
                         quality=excluded.quality, revision=excluded.revision,
                         stop_reason=excluded.stop_reason, duration_s=excluded.duration_s,
                         idle_s=excluded.idle_s, charging_s=excluded.charging_s,
                         register_wh=excluded.register_wh,
                         power_integral_wh=excluded.power_integral_wh,
                         mismatch_wh=excluded.mismatch_wh, mismatch_pct=excluded.mismatch_pct,
                         id_tag=excluded.id_tag, record=excluded.record,
                         written_at=excluded.written_at,
                         register_energy_wh=excluded.register_energy_wh,
                         estimate_energy_wh=excluded.estimate_energy_wh,
                         review_reason=excluded.review_reason,
                         signature_status=excluded.signature_status,
                         signature_reason=excluded.signature_reason,
                         key_pinned=excluded.key_pinned, public_key=excluded.public_key
                       WHERE excluded.revision >= sessions.revision
                         AND excluded.record != sessions.record""",
                    (
                        r.session_id,
                        r.charger_id,
                        r.connector_id,
                        r.site,
                        r.transaction_id,
                        r.start,
                        r.stop,
                        r.energy_wh,
                        r.energy_source,
                        json.dumps(list(r.quality)),
                        r.revision,
                        r.stop_reason,
                        r.duration_s,
                        r.idle_s,
                        r.charging_s,
                        r.register_wh,
                        r.power_integral_wh,
                        r.mismatch_wh,
                        r.mismatch_pct,
                        r.id_tag,
                        json.dumps(d, sort_keys=True),
                        written_at,
                        r.register_energy_wh,
                        r.estimate_energy_wh,
                        r.review_reason,
                        r.signature.status,
                        r.signature.reason,
                        int(r.signature.key_pinned),
                        r.signature.public_key,
                    ),
                )
                if cur.rowcount == 0:
                    continue
                changed += 1
                self.db.execute("DELETE FROM periods WHERE session_id=?", (r.session_id,))
                self.db.executemany(
                    "INSERT INTO periods VALUES (?,?,?,?,?,?,?,?,?)",
                    [
                        (
                            r.session_id,
                            i,
                            p.kind,
                            p.start,
                            p.end,
                            p.energy_wh,
                            p.min_power_w,
                            p.max_power_w,
                            p.max_current_a,
                        )
                        for i, p in enumerate(r.periods)
                    ],
                )
                self.db.executemany(
                    "INSERT INTO meter_readings VALUES (?,?,?,?,?)"
                    " ON CONFLICT (session_id, kind) DO UPDATE SET ts=excluded.ts,"
                    " energy_wh=excluded.energy_wh, signed_data=excluded.signed_data",
                    [
                        (r.session_id, "start", r.start, r.meter_start_wh, r.signed_start),
                        (r.session_id, "stop", r.stop, r.meter_stop_wh, r.signed_stop),
                    ],
                )
                self._write_signed(r)
        return changed

    def _write_signed(self, r: SessionRecord) -> None:
        self.db.execute("DELETE FROM signed_readings WHERE session_id=?", (r.session_id,))
        self.db.executemany(
            "INSERT INTO signed_readings VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            [
                (
                    r.session_id,
                    i,
                    c.record,
                    c.ocmf or c.raw,
                    c.meter_serial,
                    c.time,
                    c.value,
                    c.unit,
                    c.reason,
                    c.pagination,
                    None if c.signature_valid is None else int(c.signature_valid),
                    c.status,
                    c.detail,
                    c.public_key,
                    int(c.key_pinned),
                )
                for i, c in enumerate(r.signature.readings)
            ],
        )

    @_durable
    def write_cdr(
        self,
        *,
        session_id: str,
        charger_id: str,
        site: str,
        start: float,
        cdr: dict[str, Any],
        written_at: float = 0.0,
    ) -> None:
        """Store (or replace) a session's priced CDR (``PricedCdr.to_ocpi()`` plus ids)."""
        cost = cdr["total_cost"]
        incl = cost.get("incl_vat")
        with self._tx():
            self._fence([charger_id])
            self.db.execute(
                "INSERT INTO cdrs VALUES (?,?,?,?,?,?,?,?,?,?,?)" + _REPLACE_CDR,
                (
                    session_id,
                    charger_id,
                    site,
                    start,
                    str(cdr["tariffs"][0]["id"]) if cdr.get("tariffs") else "",
                    str(cdr["currency"]),
                    float(cost["excl_vat"]),
                    None if incl is None else float(incl),
                    float(cdr["total_energy"]),
                    json.dumps(cdr, default=str, sort_keys=True),
                    written_at,
                ),
            )

    @_durable
    def write_alert_transitions(self, transitions: Iterable[dict[str, Any]]) -> int:
        """Append alert transitions (``{"at": epoch s, "state", "alertname", "labels"}``,
        optionally ``evidence_start``: epoch s of the first evidence, e.g. an offline
        charger's last sign of life); a transition already stored is ignored, so
        re-recording a replay is harmless."""
        rows = [
            (
                float(t["at"]),
                str(t["state"]),
                str(t["alertname"]),
                json.dumps(t.get("labels") or {}, sort_keys=True),
                str((t.get("labels") or {}).get("charger", "")),
                str((t.get("labels") or {}).get("site", "")),
                _evidence_start(t.get("evidence_start")),
            )
            for t in transitions
        ]
        with self._tx():
            # A stale owner (its lease taken) must not record transitions, nor page
            # (the caller notifies after this write). Every held lease, not the
            # chargers': a rule may name a charger of no partition held here.
            self._fence_all()
            cur = self.db.executemany(
                "INSERT INTO alert_transitions"
                " (at, state, alertname, labels, charger, site, evidence_start)"
                " VALUES (?,?,?,?,?,?,?) ON CONFLICT DO NOTHING",
                rows,
            )
            return int(cur.rowcount)

    @_durable
    def write_port_status(self, rows: Iterable[Sequence[Any]], *, now: float) -> int:
        """Append connector status changes, ``[charger, connector, status, error code,
        since, stated MREC]`` as FleetState.take_changes gives them; ``since`` unknown
        (NaN/None) is ``now``. A change already stored is ignored. The MREC the
        charger stated goes to ``mrec`` (migration 12), only a code of the ChargeX table."""
        values = [
            (str(r[0]), str(r[1]), _at(r[4], now), str(r[2]), str(r[3]) or "NoError", _mrec(r))
            for r in rows
        ]
        if not values:
            return 0
        with self._tx():
            self._fence_all()  # as alert transitions: a stale owner's statuses are not ours
            cur = self.db.executemany(
                "INSERT INTO port_status (charger, connector, at, status, error_code, mrec)"
                " VALUES (?,?,?,?,?,?) ON CONFLICT DO NOTHING",
                values,
            )
            return int(cur.rowcount)

    @_durable
    def save_state(
        self,
        state: dict[str, Any],
        *,
        name: str = "sessions",
        at: float = 0.0,
        clear_journal: bool = False,
    ) -> None:
        """Checkpoint ``SessionEngine.snapshot()`` so that a restart resumes open sessions.

        ``clear_journal``: the snapshot includes every journaled event, so the
        journal is emptied in the same transaction.
        """
        with self._tx():
            self._fence_all()
            self.db.execute(
                _PUT_STATE,
                (self._state_name(name), _state_text(state), at),
            )
            if clear_journal:
                self.db.execute(
                    "DELETE FROM session_journal WHERE collector=?", (self.collector_id,)
                )

    @_durable
    def journal_append(self, rows: Sequence[tuple[str, str]]) -> None:
        """Append ``(kind, event JSON)`` rows to the session journal, in one transaction."""
        with self._tx():
            if self.fencing is not None:
                self._fence(str(json.loads(event).get("charger", "")) for _, event in rows)
            self.db.executemany(
                "INSERT INTO session_journal (kind, event, collector) VALUES (?, ?, ?)",
                [(kind, event, self.collector_id) for kind, event in rows],
            )

    def journal(self) -> list[tuple[str, str]]:
        """This collector's session journal since its last checkpoint, oldest first."""
        rows = self.db.execute(
            "SELECT kind, event FROM session_journal WHERE collector=? ORDER BY seq",
            (self.collector_id,),
        ).fetchall()
        return [(str(r[0]), str(r[1])) for r in rows]

    def load_state(self, name: str = "sessions") -> dict[str, Any] | None:
        """This collector's checkpoint ``name``, or None."""
        row = self.db.execute(
            "SELECT state FROM engine_state WHERE name=?", (self._state_name(name),)
        ).fetchone()
        return None if row is None else _state_of(row[0])

    def issued_cdr(self, session_id: str) -> dict[str, Any] | None:
        """The session's current CDR (as issued), or None."""
        with self.lock:
            row = self.db.execute(
                "SELECT cdr FROM cdrs WHERE session_id=?", (session_id,)
            ).fetchone()
        return None if row is None else _with_signature(dict(json.loads(row[0])))

    @_durable
    def record_cdr_history(
        self,
        *,
        cdr_id: str,
        session_id: str,
        kind: str,
        revision: int,
        at: float,
        cdr: dict[str, Any],
    ) -> bool:
        """Append to the CDR history; False when this CDR id was recorded before."""
        with self._tx():
            cur = self.db.execute(
                "INSERT INTO cdr_history VALUES (?,?,?,?,?,?) ON CONFLICT DO NOTHING",
                (
                    cdr_id,
                    session_id,
                    kind,
                    revision,
                    at,
                    json.dumps(cdr, default=str, sort_keys=True),
                ),
            )
        return bool(cur.rowcount > 0)

    @_durable
    def mark_unpriced(
        self,
        *,
        session_id: str,
        charger_id: str,
        site: str,
        start: float,
        reason: str,
        at: float,
    ) -> None:
        with self._tx():
            self.db.execute(
                "INSERT INTO unpriced VALUES (?,?,?,?,?,?) ON CONFLICT (session_id) DO UPDATE SET"
                " charger_id=excluded.charger_id, site=excluded.site, start=excluded.start,"
                " reason=excluded.reason, at=excluded.at",
                (session_id, charger_id, site, start, reason, at),
            )
            self.db.execute("DELETE FROM cdrs WHERE session_id=?", (session_id,))

    @_durable
    def clear_unpriced(self, session_id: str) -> None:
        with self._tx():
            self.db.execute("DELETE FROM unpriced WHERE session_id=?", (session_id,))

    def _fence(self, chargers: Iterable[str]) -> None:
        """In a write transaction: refuse it (FencedError) for a lost lease."""
        if self.fencing is not None:
            self.fencing.fence(c for c in chargers if c)

    def _fence_all(self) -> None:
        """A checkpoint holds every partition's state (and alert transitions and
        statuses are refused to a stale owner whichever charger they name): all
        leases held must still be this collector's, under its tokens."""
        if self.fencing is not None:
            self.fencing.fence(partitions=list(self.fencing.held))

    # -- several collectors: who runs, and handing session state over ------------------

    def _lock_file(self, collector_id: str) -> str:
        return f"{self.file}.{collector_id}.lock"

    def claim(self, timeout_s: float = 10.0) -> None:
        """Hold this collector id's lock file (beside the ledger) while the ledger is open.

        A second process with the same id fails with :class:`CollectorBusyError`
        (it would overwrite this one's checkpoint); another collector taking over
        state from a stopped one holds the lock briefly, hence the short wait.
        flock works between processes of one host, which is what a shared
        SQLite file allows anyway.
        """
        if self._claim is not None or self._pg_claim is not None or self.memory:
            return
        if self.postgres:
            self._claim_pg(timeout_s)
            return
        fd = os.open(self._lock_file(self.collector_id), os.O_RDWR | os.O_CREAT, 0o644)
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    os.close(fd)
                    raise CollectorBusyError(self.collector_id, self.file) from None
                time.sleep(0.05)
        self._claim = fd

    def _claim_pg(self, timeout_s: float) -> None:
        """PostgreSQL: a session advisory lock on a connection of its own, held
        until :meth:`close` (or until that connection dies with the process)."""
        conn = self.db.connect()
        key = advisory_key("collector", self.collector_id)
        deadline = time.monotonic() + timeout_s
        while not conn.execute("SELECT pg_try_advisory_lock(%s, %s)", key).fetchone()[0]:
            if time.monotonic() > deadline:
                conn.close()
                raise CollectorBusyError(self.collector_id, redact(self.path))
            time.sleep(0.05)
        self._pg_claim = conn

    @contextlib.contextmanager
    def _if_stopped(self, collector_id: str) -> Iterator[bool]:
        """True (and that collector kept from starting meanwhile) when it is not running."""
        if self.postgres:
            # Held until the adopting transaction ends, as the flock below is.
            yield bool(self.db.try_xact_lock("collector", collector_id))
            return
        try:
            fd = os.open(self._lock_file(collector_id), os.O_RDWR | os.O_CREAT, 0o644)
        except OSError:
            yield False
            return
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                yield False
                return
            yield True
        finally:
            os.close(fd)

    @_durable
    def adopt(
        self,
        owns: Callable[[str], bool],
        split: Splitter,
        merge: Merger,
        *,
        name: str = "sessions",
    ) -> int:
        """Take over the state of chargers this collector owns, in one transaction.

        ``owns(charger)`` says which chargers are this collector's, ``split(part)``
        cuts an engine snapshot accordingly into (this collector's, the rest). Taken: the
        owned part of every handover row (released by a collector whose
        partition changed) and of every *stopped* collector's checkpoint,
        together with those chargers' journal rows (``name`` "sessions" only). A
        *running* collector that holds owned chargers is a conflict
        (:class:`OwnershipConflictError`). Returns how many parts were taken (a
        stopped collector's journal rows alone are one): when not 0, the caller
        must replay its journal.
        """
        mine_key = self._state_name(name)
        taken = 0
        with self._tx("handover"):
            row = self.db.execute(
                "SELECT state FROM engine_state WHERE name=?", (mine_key,)
            ).fetchone()
            own: dict[str, Any] | None = None if row is None else _state_of(row[0])
            for other_id, other_key, state in self._others(name, mine_key):
                mine, rest = (None, None) if state is None else split(state)
                # The journal is the sessions' (events since that checkpoint): it
                # moves with the sessions, never with fleet or alert state.
                journal = self._journal_rows(other_id) if name == "sessions" else []
                moved = [seq for seq, charger in journal if owns(charger)]
                if mine is None and not moved:
                    continue
                with self._if_stopped(other_id) as stopped:
                    if not stopped:
                        held = sorted({s["charger"] for s in (mine or {}).get("sessions", [])})
                        raise OwnershipConflictError(other_id, held or ["(journal)"])
                    if rest is not None:
                        self.db.execute(
                            "UPDATE engine_state SET state=? WHERE name=?",
                            (_state_text(rest), other_key),
                        )
                    elif state is not None:  # emptied (its journal stays reachable: _others)
                        self.db.execute("DELETE FROM engine_state WHERE name=?", (other_key,))
                    self.db.executemany(
                        "UPDATE session_journal SET collector=? WHERE seq=?",
                        [(self.collector_id, seq) for seq in moved],
                    )
                if mine is not None:
                    own = mine if own is None else merge(own, mine)
                # Journal rows alone count too: a session that began after the
                # other collector's last checkpoint is only there, and the caller
                # replays its journal only when something was taken (issue 23).
                if mine is not None or moved:
                    taken += 1
            for mine in self._take(name, split):
                own = mine if own is None else merge(own, mine)
                taken += 1
            if taken and own is not None:
                self.db.execute(
                    _PUT_STATE,
                    (mine_key, _state_text(own), time.time()),
                )
        return taken

    def _others(self, name: str, mine_key: str) -> list[tuple[str, str, dict[str, Any] | None]]:
        """Other collectors' ``name`` state as (collector id, row name, state). For
        sessions also those with journal rows and no checkpoint row (state None):
        a taker deletes a checkpoint it emptied, and the journal rows of chargers
        in partitions not yet taken must still reach their next owner (issue 23)."""
        prefix = f"{name}@"
        rows = self.db.execute(
            "SELECT name, state FROM engine_state WHERE name != ? AND (name = ? OR name LIKE ?)",
            (mine_key, name, prefix + "%"),
        ).fetchall()
        out: list[tuple[str, str, dict[str, Any] | None]] = [
            ("default" if key == name else key[len(prefix) :], key, _state_of(text))
            for key, text in rows
        ]
        if name == "sessions":
            seen = {other for other, _, _ in out} | {self.collector_id}
            journaled = self.db.execute("SELECT DISTINCT collector FROM session_journal")
            out += [(str(c), "", None) for (c,) in journaled.fetchall() if str(c) not in seen]
        return out

    @_durable
    def release(
        self, kept: dict[str, Any], given: dict[str, Any], *, at: float, name: str = "sessions"
    ) -> None:
        """Checkpoint ``kept`` and hand ``given`` over (chargers this collector no
        longer owns), in one transaction. The journal must be absorbed in ``kept``
        and ``given`` (it is cleared)."""
        with self._tx():
            self.db.execute(
                _PUT_STATE,
                (self._state_name(name), _state_text(kept), at),
            )
            self._put(name, given, at)
            self.db.execute("DELETE FROM session_journal WHERE collector=?", (self.collector_id,))

    @_durable
    def handover_put(self, kind: str, state: dict[str, Any], *, at: float) -> None:
        """Leave ``state`` (of chargers this collector no longer owns) for their new owner."""
        with self._tx():
            self._put(kind, state, at)

    @_durable
    def handover_take(self, kind: str, split: Splitter) -> list[dict[str, Any]]:
        """Take the parts of ``kind`` handover rows that ``split`` says are ours."""
        if (
            self.db.execute("SELECT 1 FROM handover WHERE kind=? LIMIT 1", (kind,)).fetchone()
            is None
        ):
            return []  # the usual case: no write lock taken
        with self._tx("handover"):
            return list(self._take(kind, split))

    def _put(self, kind: str, state: dict[str, Any], at: float) -> None:
        self.db.execute(
            "INSERT INTO handover (kind, from_collector, state, at) VALUES (?, ?, ?, ?)",
            (kind, self.collector_id, _state_text(state), at),
        )

    def _take(self, kind: str, split: Splitter) -> Iterator[dict[str, Any]]:
        rows = self.db.execute(
            "SELECT seq, state FROM handover WHERE kind=? ORDER BY seq", (kind,)
        ).fetchall()
        for seq, text in rows:
            mine, rest = split(_state_of(text))
            if mine is None:
                continue
            if rest is None:
                self.db.execute("DELETE FROM handover WHERE seq=?", (seq,))
            else:
                self.db.execute("UPDATE handover SET state=? WHERE seq=?", (_state_text(rest), seq))
            yield mine

    def _journal_rows(self, collector_id: str) -> list[tuple[int, str]]:
        """(seq, charger) of a collector's journal rows."""
        rows = self.db.execute(
            "SELECT seq, event FROM session_journal WHERE collector=? ORDER BY seq",
            (collector_id,),
        ).fetchall()
        return [(int(r[0]), str(json.loads(r[1]).get("charger", ""))) for r in rows]


def _state_text(state: dict[str, Any]) -> str:
    """A checkpoint (engine state, handover part) as JSON text.

    orjson, not json: on a 100k-session snapshot it takes 0.2 s where
    ``json.dumps`` took 1.4. It writes NaN (the state's "unknown", e.g. a
    current never measured) as null, which every restore reads back as NaN.
    """
    return orjson.dumps(state, option=orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS).decode()


def _state_of(text: str) -> dict[str, Any]:
    """A checkpoint back; those an older collector wrote with ``json.dumps``
    hold bare NaN tokens, which only ``json`` reads."""
    try:
        doc = orjson.loads(text)
    except orjson.JSONDecodeError:
        doc = json.loads(text)
    return dict(doc)


class _Tx:
    """BEGIN IMMEDIATE .. COMMIT/ROLLBACK: one batch of records is all or nothing."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    def __enter__(self) -> None:
        self.db.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: object, *rest: object) -> None:
        if not exc_type:
            try:
                self.db.execute("COMMIT")
                return
            except sqlite3.Error:
                self._rollback()  # a COMMIT that failed (disk full) must not stay open
                raise
        self._rollback()

    def _rollback(self) -> None:
        # SQLite rolls back by itself after SQLITE_FULL and some I/O errors;
        # a second ROLLBACK would raise and hide the error that caused it.
        if self.db.in_transaction:
            self.db.execute("ROLLBACK")


def query_sessions(
    ledger: Ledger,
    *,
    start_from: float | None = None,
    start_to: float | None = None,
    charger: str | None = None,
    site: str | None = None,
    limit: int = 1000,
    offset: int = 0,
    periods: bool = True,
) -> list[dict[str, Any]]:
    """Sessions whose start is in [start_from, start_to), newest revision, ordered by start.

    Each item is the ``sessions.jsonl`` object (``GET /api/v1/sessions``);
    ``periods=False`` leaves the charging periods out of list responses.
    """
    # An empty charger or site leaves that filter out, as a missing one does.
    where = session_where(
        start_from=start_from, start_to=start_to, charger=charger or None, site=site or None
    )
    sql = f"SELECT record FROM sessions{where.sql} ORDER BY start, session_id LIMIT ? OFFSET ?"
    args = [*where.args, max(0, int(limit)), max(0, int(offset))]
    with ledger.lock:
        rows = ledger.db.execute(sql, args).fetchall()
    out = []
    for row in rows:
        d: dict[str, Any] = _with_signature(json.loads(row[0]))
        if not periods:
            d.pop("periods", None)
            d.pop("signed_readings", None)  # like the periods: GET /sessions/{id} has them
        out.append(d)
    return out


def _with_signature(d: dict[str, Any]) -> dict[str, Any]:
    """Records written before issue 21 (migration 9) were not checked: unsigned."""
    d.setdefault("signature_status", "unsigned")
    d.setdefault("signature_reason", "")
    d.setdefault("key_pinned", False)
    return d


def query_cdrs(
    ledger: Ledger,
    *,
    start_from: float | None = None,
    start_to: float | None = None,
    charger: str | None = None,
    site: str | None = None,
    history: bool = False,
    limit: int = 1000,
    offset: int = 0,
) -> list[dict[str, Any]]:
    """Current CDRs by session start (``GET /api/v1/cdrs``); ``history``: every
    CDR issued or credited, in issue order."""
    where = session_where(
        "c" if history else "", start_from=start_from, start_to=start_to, charger=charger, site=site
    )
    if history:
        sql = (
            f"SELECT h.cdr FROM cdr_history h JOIN cdrs c USING (session_id){where.sql}"
            " ORDER BY h.issued_at, h.cdr_id LIMIT ? OFFSET ?"
        )
    else:
        sql = f"SELECT cdr FROM cdrs{where.sql} ORDER BY start, session_id LIMIT ? OFFSET ?"
    with ledger.lock:
        rows = ledger.db.execute(sql, (*where.args, limit, offset)).fetchall()
    return [dict(json.loads(r[0])) for r in rows]


def query_billing(
    ledger: Ledger,
    *,
    start_from: float | None = None,
    start_to: float | None = None,
    charger: str | None = None,
    site: str | None = None,
    limit: int = 1000,
    offset: int = 0,
) -> list[dict[str, Any]]:
    """The billing export (``chargewatch billing export``, ``GET /api/v1/billing``):
    one row per session in [start_from, start_to), with its current CDR's totals
    or the reason it is unpriced (chargewatch.billing.export)."""
    sessions = query_sessions(
        ledger, start_from=start_from, start_to=start_to, charger=charger, site=site,
        limit=limit, offset=offset, periods=False,
    )  # fmt: skip
    unpriced = {u["session_id"]: u["reason"] for u in query_unpriced(ledger)}
    return [
        billing_row(s, ledger.issued_cdr(s["session_id"]), unpriced.get(s["session_id"], ""))
        for s in sessions
    ]


def with_costs(ledger: Ledger, sessions: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Sessions with their current CDR's tariff, currency and total cost (the sessions
    CSV's cost columns); empty where a session has no CDR."""
    for s in sessions:
        cdr = ledger.issued_cdr(s["session_id"]) or {}
        cost = cdr.get("total_cost") or {}
        s["tariff_id"] = (cdr.get("tariffs") or [{}])[0].get("id")
        s["currency"] = cdr.get("currency")
        s["total_cost_excl_vat"] = cost.get("excl_vat")
        s["total_cost_incl_vat"] = cost.get("incl_vat")
    return sessions


def session_owners(ledger: Ledger, session_ids: Iterable[str]) -> dict[str, dict[str, Any]]:
    """charger_id, site, connector_id and id_tag of each session (the CDR CSV's columns)."""
    out: dict[str, dict[str, Any]] = {}
    for sid in set(session_ids):
        s = get_session(ledger, sid) or {}
        out[sid] = {k: s.get(k) for k in ("charger_id", "site", "connector_id", "id_tag")}
    return out


def query_unpriced(ledger: Ledger) -> list[dict[str, Any]]:
    with ledger.lock:
        rows = ledger.db.execute(
            "SELECT session_id, charger_id, site, start, reason FROM unpriced ORDER BY start"
        ).fetchall()
    return [dict(r) for r in rows]


def get_session(ledger: Ledger, session_id: str) -> dict[str, Any] | None:
    """One session with its periods (``GET /api/v1/sessions/{id}``), or None."""
    with ledger.lock:
        row = ledger.db.execute(
            "SELECT record FROM sessions WHERE session_id=?", (session_id,)
        ).fetchone()
    return None if row is None else _with_signature(dict(json.loads(row[0])))


def _at(since: Any, now: float) -> float:
    """A status change's time: the charger's timestamp, else when it was seen."""
    try:
        t = float(since)
    except (TypeError, ValueError):
        return now
    return now if math.isnan(t) else t


def _mrec(row: Sequence[Any]) -> str:
    """The MREC code a port_status row's charger stated, when the ChargeX table has it."""
    stated = str(row[5]) if len(row) > 5 else ""
    return stated if stated in MREC_CODES else ""


def _evidence_start(value: Any) -> float | None:
    """An alert transition's first evidence (epoch s); None when absent or unreadable."""
    try:
        t = float(value)
    except (TypeError, ValueError):
        return None
    return t if math.isfinite(t) else None
