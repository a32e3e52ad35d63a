"""A bounded, durable FIFO of write chunks on disk.

Each chunk is one gzip-compressed line-protocol body, in its own file named by
a monotonically increasing sequence number, so the order survives restarts and
a crash loses at most the chunk being written (written to a temporary name,
then renamed). When the spool is full the oldest chunks are dropped (counted):
the meter series are monitoring data, and the billing record lives in the
ledger, so an outage longer than the spool allows loses the oldest telemetry,
never the newest.
"""

from __future__ import annotations

__all__ = ["Spool"]

import logging
import os
import threading
from pathlib import Path

log = logging.getLogger(__name__)


class Spool:
    def __init__(self, directory: Path, *, max_bytes: int = 1 << 30, fsync: bool = False) -> None:
        if max_bytes < 1 << 16:
            raise ValueError("spool max_bytes must be at least 64 KiB")
        self.dir = directory
        self.dir.mkdir(parents=True, exist_ok=True)
        self.max_bytes = max_bytes
        self.fsync = fsync
        self._lock = threading.Condition()
        self._files: list[tuple[int, Path, int]] = []  # (seq, path, size), oldest first
        for p in self.dir.glob("*.lp.gz.tmp"):
            p.unlink(missing_ok=True)  # torn write from a crash: never acknowledged
        for p in sorted(self.dir.glob("*.lp.gz")):
            try:
                self._files.append((int(p.name.split(".")[0]), p, p.stat().st_size))
            except (ValueError, OSError):
                log.warning("ignoring unexpected spool file %s", p)
        self._next = self._files[-1][0] + 1 if self._files else 0
        self.bytes = sum(s for _, _, s in self._files)
        self.dropped_chunks = 0

    def __len__(self) -> int:
        with self._lock:
            return len(self._files)

    def put(self, body: bytes) -> None:
        with self._lock:
            seq = self._next
            self._next += 1
            path = self.dir / f"{seq:016d}.lp.gz"
            tmp = path.with_name(path.name + ".tmp")
            try:
                with tmp.open("wb") as f:
                    f.write(body)
                    if self.fsync:
                        f.flush()
                        os.fsync(f.fileno())
                tmp.replace(path)
            except OSError:
                tmp.unlink(missing_ok=True)  # a full disk: nothing half-written stays
                raise
            self._files.append((seq, path, len(body)))
            self.bytes += len(body)
            while self.bytes > self.max_bytes and len(self._files) > 1:
                _, old, size = self._files.pop(0)
                old.unlink(missing_ok=True)
                self.bytes -= size
                self.dropped_chunks += 1
                log.error("spool full (%d bytes): dropped oldest chunk %s", self.max_bytes, old)
            self._lock.notify_all()

    def peek(self, timeout: float | None = None) -> tuple[int, bytes] | None:
        """The oldest chunk (sequence, body), waiting up to ``timeout`` for one."""
        with self._lock:
            if not self._files and timeout:
                self._lock.wait(timeout)
            if not self._files:
                return None
            seq, path, _ = self._files[0]
        return seq, path.read_bytes()

    def pop(self, seq: int) -> None:
        """Remove chunk ``seq`` after it was delivered (or given up on)."""
        with self._lock:
            if self._files and self._files[0][0] == seq:
                _, path, size = self._files.pop(0)
                path.unlink(missing_ok=True)
                self.bytes -= size
                self._lock.notify_all()

    def wait_empty(self, timeout: float) -> bool:
        with self._lock:
            return self._lock.wait_for(lambda: not self._files, timeout)
