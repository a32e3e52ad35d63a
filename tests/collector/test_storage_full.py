"""A full disk at each store: the write is retried, never torn, doubled or lost.

Each store is made to fail the way a full file system fails (ENOSPC part-way
through a write, SQLite's "database or disk is full") and then recovers;
``tests/integration/test_disk_full.py`` does it for real on a tmpfs.
"""

from __future__ import annotations

import errno
import logging
import os
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

import orjson
import pytest

from chargewatch.core import metrics
from chargewatch.model.decoding import Rejection
from chargewatch.model.events import StatusEvent
from chargewatch.storage.deadletter import DeadLetter
from chargewatch.storage.fleet_store import FleetStateStore
from chargewatch.storage.health import (
    StorageHealth,
    StorageUnavailableError,
    storage_errno,
)
from chargewatch.storage.influx import InfluxConfig, InfluxWriter
from chargewatch.storage.ledger import Ledger
from chargewatch.storage.linefile import LineFile
from chargewatch.storage.spool import Spool
from tests.collector.test_fleet_store import fleet, reopened
from tests.collector.test_fleetstate import batch

T = 1_795_000_000.0


def enospc() -> OSError:
    return OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


class FullDisk:
    """Wraps an unbuffered file: the next ``fails`` writes store half their
    bytes and then raise ENOSPC, as a file system running out mid-write does."""

    def __init__(self, f: Any, fails: int) -> None:
        self.f, self.fails = f, fails

    def write(self, data: Any) -> int:
        if self.fails:
            self.fails -= 1
            self.f.write(bytes(data)[: len(data) // 2])
            raise enospc()
        return int(self.f.write(data))

    def __getattr__(self, name: str) -> Any:
        return getattr(self.f, name)


def fast() -> StorageHealth:
    return StorageHealth(min_backoff_s=0.001, max_backoff_s=0.01)


def errors(store: str, code: str) -> float:
    return metrics.STORAGE_ERRORS.labels(store=store, errno=code)._value.get()


def degraded(store: str) -> float:
    return metrics.STORAGE_DEGRADED.labels(store=store)._value.get()


# -- the policy -----------------------------------------------------------------


def test_outage_errors_are_recognised_and_others_are_not() -> None:
    assert storage_errno(enospc()) == "ENOSPC"
    assert storage_errno(OSError(errno.EDQUOT, "quota")) == "EDQUOT"
    assert storage_errno(OSError(errno.EIO, "io")) == "EIO"
    assert storage_errno(sqlite3.OperationalError("database or disk is full")) == "SQLITE_FULL"
    assert storage_errno(OSError(errno.EACCES, "denied")) is None
    assert storage_errno(sqlite3.OperationalError("no such table: x")) is None


def test_an_episode_is_retried_logged_once_counted_and_recovers(
    caplog: pytest.LogCaptureFixture,
) -> None:
    health = fast()
    seen: list[float] = []
    calls = 0

    def write() -> str:
        nonlocal calls
        calls += 1
        seen.append(degraded("unit"))
        if calls <= 5:
            raise enospc()
        return "done"

    before = errors("unit", "ENOSPC")
    with caplog.at_level(logging.WARNING, logger="chargewatch.storage.health"):
        assert health.retry("unit", write) == "done"
    assert calls == 6
    assert errors("unit", "ENOSPC") - before == 5
    assert seen[0] == 0 and seen[1:] == [1] * 5  # degraded while it failed
    assert degraded("unit") == 0 and health.degraded == {}
    errors_logged = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors_logged) == 1 and "ENOSPC" in errors_logged[0].getMessage()
    assert any("succeed again" in r.getMessage() for r in caplog.records)


def test_a_write_error_that_is_not_an_outage_propagates_at_once() -> None:
    def write() -> None:
        raise OSError(errno.EACCES, "denied")

    with pytest.raises(PermissionError):
        fast().retry("unit", write)


def test_stopping_gives_up_after_the_next_failed_attempt() -> None:
    health = fast()
    health.stopping.set()
    with pytest.raises(StorageUnavailableError):
        health.retry("unit", lambda: (_ for _ in ()).throw(enospc()))
    assert health.retry("unit", lambda: 1) == 1  # a write that succeeds still runs


# -- each store -----------------------------------------------------------------


def rejection(i: int) -> Rejection:
    return Rejection(f"ev/CP{i}/meter", "bad_json", "x", "{", T + i)


def test_deadletter_lines_are_written_exactly_once_after_enospc(tmp_path: Path) -> None:
    dl = DeadLetter(tmp_path / "rejected.jsonl", health=fast())
    dl.write([rejection(0)])
    dl._f = FullDisk(dl._f, fails=3)  # type: ignore[assignment]
    dl.write([rejection(1), rejection(2)])
    dl.close()
    rows = [orjson.loads(x) for x in (tmp_path / "rejected.jsonl").read_bytes().splitlines()]
    assert [r["topic"] for r in rows] == ["ev/CP0/meter", "ev/CP1/meter", "ev/CP2/meter"]


def test_deadletter_without_health_raises_and_leaves_no_torn_line(tmp_path: Path) -> None:
    dl = DeadLetter(tmp_path / "rejected.jsonl")
    dl._f = FullDisk(dl._f, fails=1)  # type: ignore[assignment]
    with pytest.raises(OSError):
        dl.write([rejection(1)])
    dl.write([rejection(2)])
    dl.close()
    lines = (tmp_path / "rejected.jsonl").read_bytes().splitlines()
    assert [orjson.loads(x)["topic"] for x in lines] == ["ev/CP2/meter"]


def test_linefile_lines_are_written_exactly_once_after_enospc(tmp_path: Path) -> None:
    lf = LineFile(tmp_path / "lines.lp", health=fast())
    lf.write(["a 1", "b 2"])
    lf.flush()
    lf._f = FullDisk(lf._f, fails=4)  # type: ignore[assignment]
    lf.write(["c 3"])
    lf.flush()
    lf.write(["d 4"])
    lf.stop()
    assert (tmp_path / "lines.lp").read_text().splitlines() == ["a 1", "b 2", "c 3", "d 4"]


def test_spool_put_that_fails_leaves_no_chunk_and_is_retried(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spool = Spool(tmp_path / "spool", fsync=True)
    real_fsync, fails = os.fsync, [2]

    def fsync(fd: int) -> None:
        if fails[0]:
            fails[0] -= 1
            raise enospc()
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    with pytest.raises(OSError):
        spool.put(b"one")
    assert list((tmp_path / "spool").iterdir()) == [] and len(spool) == 0
    writer = InfluxWriter(
        InfluxConfig(url="http://127.0.0.1:9", batch_lines=2, gzip=False),
        tmp_path / "spool",
        health=fast(),
    )
    writer.spool = spool
    writer.write(["m v=1 1", "m v=2 2"])  # a full chunk: spooled at once, after one retry
    assert len(spool) == 1 and spool.peek() is not None
    assert spool.peek()[1] == b"m v=1 1\nm v=2 2\n"  # type: ignore[index]


def test_spool_write_blocks_the_producer_until_space_returns(tmp_path: Path) -> None:
    """The issue's lost samples: the flush thread died and the pipeline acked on.
    Now a write() waits behind the failing flush: the batch it carries is not acked."""
    health = StorageHealth(min_backoff_s=0.01, max_backoff_s=0.02)
    writer = InfluxWriter(
        InfluxConfig(url="http://127.0.0.1:9", batch_lines=1000, gzip=False),
        tmp_path / "spool",
        health=health,
    )
    full = threading.Event()
    full.set()
    real_put = writer.spool.put

    def put(body: bytes) -> None:
        if full.is_set():
            raise enospc()
        real_put(body)

    writer.spool.put = put  # type: ignore[method-assign]
    writer.write(["m v=1 1"])
    flusher = threading.Thread(target=writer.flush)
    flusher.start()
    time.sleep(0.1)
    assert health.degraded.keys() == {"spool"}
    producer_done = threading.Event()
    threading.Thread(target=lambda: (writer.write(["m v=2 2"]), producer_done.set())).start()
    assert not producer_done.wait(0.2)  # held: the pipeline cannot ack this batch
    full.clear()
    flusher.join(5)
    assert producer_done.wait(5)
    writer.flush()
    bodies = []
    while (item := writer.spool.peek()) is not None:
        bodies.append(item[1])
        writer.spool.pop(item[0])
    assert b"".join(bodies) == b"m v=1 1\nm v=2 2\n"
    assert health.degraded == {}


def test_fleet_state_journal_and_snapshot_survive_enospc(tmp_path: Path) -> None:
    _, state = fleet()
    store = FleetStateStore(tmp_path, state, health=fast())
    store.restore()
    store.save()
    state.on_batch(
        batch([], [], [], []), [StatusEvent("CP0007", 1, T, T, "Charging", "NoError", "", "")], T
    )
    store.journal()  # opens the journal file
    assert store._journal is not None
    store._journal = FullDisk(store._journal, fails=2)  # type: ignore[assignment]
    state.on_batch(
        batch([], [], [], []), [StatusEvent("CP0008", 1, T, T, "Faulted", "NoError", "", "")], T
    )
    store.journal()
    lines = store.journal_file.read_bytes().splitlines()
    assert [orjson.loads(x)["seq"] for x in lines] == [1, 2]  # whole lines, once each
    back = reopened(tmp_path)
    assert back.status[back.index.id("CP0008", 1)] == "Faulted"


def test_ledger_write_waits_for_space_and_commits_once(tmp_path: Path) -> None:
    """SQLite's own "database or disk is full" (SQLITE_FULL), from max_page_count."""
    health = StorageHealth(min_backoff_s=0.01, max_backoff_s=0.05)
    led = Ledger(tmp_path / "ledger.sqlite", health=health)
    led.journal_append([("StatusEvent", "{}")])
    pages = led.db.execute("PRAGMA page_count").fetchone()[0]
    led.db.execute(f"PRAGMA max_page_count={pages}")
    rows = [("StatusEvent", "x" * 2000)] * 50
    done = threading.Event()
    failed: list[BaseException] = []

    def append() -> None:
        try:
            led.journal_append(iter(rows))  # an iterator: read once, retried whole
        except BaseException as exc:  # pragma: no cover - reported below
            failed.append(exc)
        done.set()

    before = errors("ledger", "SQLITE_FULL")
    threading.Thread(target=append).start()
    assert not done.wait(0.3)
    assert "ledger" in health.degraded and errors("ledger", "SQLITE_FULL") > before
    assert not led.db.in_transaction
    led.db.execute("PRAGMA max_page_count=1000000")
    assert done.wait(5) and not failed
    assert health.degraded == {}
    assert led.db.execute("SELECT COUNT(*) FROM session_journal").fetchone()[0] == 51
    led.close()
