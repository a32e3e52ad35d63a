"""The PostgreSQL ledger through a server restart (what a failover looks like to a
collector): the write in progress fails, StorageHealth retries it whole, the
pool reconnects, and nothing is written twice or lost."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from chargewatch.storage.health import StorageHealth, storage_errno
from chargewatch.storage.ledger import Ledger, query_sessions
from tests.billing.test_ledger import records
from tests.conftest import _start
from tests.services import PostgreSQL


@pytest.fixture
def own_postgresql() -> Iterator[PostgreSQL]:
    """A cluster of this test's own: it is stopped and started again."""
    svc = _start(PostgreSQL)
    yield svc
    svc.cleanup()


@pytest.mark.integration
def test_writes_wait_out_a_server_restart(own_postgresql: PostgreSQL) -> None:
    pg = own_postgresql
    url = pg.create_db("outage")
    health = StorageHealth(min_backoff_s=0.05, max_backoff_s=0.2)
    recs = records(3)
    with Ledger(url, collector_id="east", health=health) as led:
        led.claim()
        led.write(recs[:1])
        led.save_state({"v": 1}, at=1.0)
        pg.stop()  # every connection of the pool is cut
        done = threading.Event()
        errors: list[BaseException] = []

        def write() -> None:
            try:
                led.write(recs[1:])
                led.save_state({"v": 2}, at=2.0, clear_journal=True)
            except BaseException as exc:  # collected for the assertion below
                errors.append(exc)
            done.set()

        th = threading.Thread(target=write)
        th.start()
        deadline = time.monotonic() + 10
        while not health.degraded and time.monotonic() < deadline:
            time.sleep(0.05)
        assert "ledger" in health.degraded  # /readyz says so; the batch is not acked
        assert not done.is_set()
        pg.start()
        th.join(30)
        assert done.is_set() and errors == []
        assert health.degraded == {} and health.episodes == 1
        assert [s["session_id"] for s in query_sessions(led)] == [r.session_id for r in recs]
        assert led.load_state() == {"v": 2}


def test_outages_are_told_from_mistakes() -> None:
    import psycopg  # noqa: PLC0415

    assert storage_errno(psycopg.OperationalError("server closed the connection")) == (
        "PG_CONNECTION"
    )
    assert storage_errno(psycopg.errors.AdminShutdown()) == "PG_57P01"
    assert storage_errno(psycopg.errors.ReadOnlySqlTransaction()) == "PG_25006"
    assert storage_errno(psycopg.errors.UniqueViolation()) is None  # a bug: not retried
    assert storage_errno(psycopg.errors.UndefinedTable()) is None
