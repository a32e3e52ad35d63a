"""A full disk is an outage, not a crash: storage writes retried until space returns.

Every write that makes acknowledged data durable (dead-letter file, InfluxDB
spool, ledger, fleet and alert state files) runs through
:meth:`StorageHealth.retry`. On ENOSPC, EDQUOT or EIO (or SQLite's "database
or disk is full" and "disk I/O error") the calling thread waits with backoff
and tries the same write again, so:

* nothing is acknowledged to MQTT that is not on disk: the pipeline thread is
  held inside the write, before its ``ingest.ack``; the broker keeps the
  unacknowledged messages (Receive Maximum bounds what it sends meanwhile);
* nothing is processed twice: the write is retried, not the batch;
* space coming back ends the episode without a restart.

Each write is made so that a failed attempt leaves nothing half-written (the
stores truncate, unlink or roll back), so repeating it is safe.

An episode is logged once when it starts and once when it ends, counted in
``chargewatch_storage_errors_total{store,errno}`` per failed attempt, and
shown as ``chargewatch_storage_degraded{store}`` = 1 and in ``/readyz``.
"""

from __future__ import annotations

__all__ = [
    "StorageHealth",
    "StorageUnavailableError",
    "append_all",
    "guarded",
    "storage_errno",
]

import errno
import logging
import os
import sqlite3
import threading
from collections.abc import Callable
from typing import BinaryIO, TypeVar

from chargewatch.core import metrics

log = logging.getLogger(__name__)

T = TypeVar("T")

# Errors that mean "the disk cannot take this now", not "this write is wrong".
_OUTAGE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EIO, errno.EROFS}
_SQLITE_OUTAGE = {"SQLITE_FULL", "SQLITE_IOERR", "SQLITE_READONLY"}
# PostgreSQL SQLSTATEs (or their class) that mean "the server cannot take this
# now": connection lost (08), shutdown or restart (57P01-57P03), a standby that
# is read-only (25006, a failover in progress), out of disk or connections (53),
# a serialisation failure or deadlock (40001, 40P01). The transaction was rolled
# back; running it again is the fix.
_PG_OUTAGE_CLASSES = ("08", "53")
_PG_OUTAGE = {"57P01", "57P02", "57P03", "25006", "40001", "40P01"}


def storage_errno(exc: BaseException) -> str | None:
    """The outage an exception reports ("ENOSPC", "SQLITE_FULL", "PG_08006", ...), or None."""
    if isinstance(exc, OSError) and exc.errno in _OUTAGE_ERRNOS:
        return errno.errorcode[exc.errno]
    if type(exc).__module__.split(".")[0] in ("psycopg", "psycopg_pool"):
        return _pg_outage(exc)
    if isinstance(exc, sqlite3.OperationalError | sqlite3.DatabaseError):
        name = getattr(exc, "sqlite_errorname", "") or ""
        # Extended codes (SQLITE_IOERR_WRITE, ...) name their primary code first.
        for primary in _SQLITE_OUTAGE:
            if name == primary or name.startswith(primary + "_"):
                return primary
        text = str(exc)
        if "database or disk is full" in text or "disk I/O error" in text:
            return "SQLITE_FULL" if "full" in text else "SQLITE_IOERR"
    return None


def _pg_outage(exc: BaseException) -> str | None:
    """psycopg is not imported for this: a SQLite-only collector never loads it."""
    state = getattr(exc, "sqlstate", None)
    if state is None:
        # No SQLSTATE: libpq lost or could not open the connection (or the pool
        # had none to give) -- psycopg's OperationalError and its PoolTimeout.
        operational = any(c.__name__ == "OperationalError" for c in type(exc).__mro__)
        return "PG_CONNECTION" if operational else None
    if state in _PG_OUTAGE or state[:2] in _PG_OUTAGE_CLASSES:
        return f"PG_{state}"
    return None


class StorageUnavailableError(RuntimeError):
    """A write given up on because the collector is stopping while the disk is full."""


class StorageHealth:
    """Shared by the stores of one collector; read by ``/readyz``."""

    def __init__(self, *, min_backoff_s: float = 0.2, max_backoff_s: float = 5.0) -> None:
        self.min_backoff_s = min_backoff_s
        self.max_backoff_s = max_backoff_s
        self.stopping = threading.Event()
        self._lock = threading.Lock()
        self._degraded: dict[str, str] = {}  # store -> last error, while failing
        self.episodes = 0

    @property
    def degraded(self) -> dict[str, str]:
        with self._lock:
            return dict(self._degraded)

    def retry(self, store: str, write: Callable[[], T]) -> T:
        """Run ``write`` until it succeeds; other exceptions propagate at once."""
        backoff = self.min_backoff_s
        while True:
            try:
                result = write()
            except Exception as exc:  # storage_errno tells outages from bugs
                code = storage_errno(exc)
                if code is None:
                    raise
                self._failed(store, code, exc)
                if self.stopping.wait(backoff):
                    raise StorageUnavailableError(f"{store}: {exc}") from exc
                backoff = min(backoff * 2, self.max_backoff_s)
                continue
            self._recovered(store)
            return result

    def _failed(self, store: str, code: str, exc: BaseException) -> None:
        metrics.STORAGE_ERRORS.labels(store=store, errno=code).inc()
        with self._lock:
            first = store not in self._degraded
            self._degraded[store] = f"{code}: {exc}"
            if first:
                self.episodes += 1
        if first:
            metrics.STORAGE_DEGRADED.labels(store=store).set(1)
            log.error(
                "storage %s: write failed (%s: %s); holding acknowledgements and "
                "retrying until it takes writes again",
                store, code, exc,
            )  # fmt: skip

    def _recovered(self, store: str) -> None:
        if store not in self._degraded:  # the common case: one dict lookup
            return
        with self._lock:
            self._degraded.pop(store, None)
        metrics.STORAGE_DEGRADED.labels(store=store).set(0)
        log.warning("storage %s: writes succeed again; resuming", store)


def guarded(health: StorageHealth | None, store: str, write: Callable[[], T]) -> T:
    """``write`` through ``health`` when there is one, else plainly (tests, replay)."""
    return write() if health is None else health.retry(store, write)


def append_all(f: BinaryIO, data: bytes) -> None:
    """Append ``data`` to an unbuffered file whole, or not at all: a write that
    fails part-way (disk full) is truncated away, so retrying it cannot leave
    a torn or doubled line."""
    start = f.seek(0, os.SEEK_END)
    try:
        view = memoryview(data)
        while view:
            view = view[f.write(view) or 0 :]
    except OSError:
        os.ftruncate(f.fileno(), start)
        f.seek(start)
        raise
