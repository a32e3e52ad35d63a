"""The dead-letter file: every rejected message or sample, with its reason.

JSON Lines, one rejection a line: ``{"at", "topic", "reason", "detail",
"index", "payload"}``. Rotated by size (``rejected.jsonl`` →
``rejected.jsonl.1`` ...) and bounded in the number of files kept, so a flood
of bad input cannot fill the disk.
"""

from __future__ import annotations

__all__ = ["DeadLetter", "rejection_record"]

import os
import threading
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from chargewatch.core import metrics
from chargewatch.model.decoding import Rejection
from chargewatch.storage.health import StorageHealth, append_all, guarded


def rejection_record(r: Rejection) -> dict[str, Any]:
    return {
        "at": datetime.fromtimestamp(r.recv, UTC).isoformat().replace("+00:00", "Z"),
        "topic": r.topic,
        "reason": r.reason,
        "detail": r.detail,
        "index": r.index,
        "value_index": r.value_index,
        "payload": r.payload,
    }


class DeadLetter:
    def __init__(
        self,
        path: Path,
        *,
        max_bytes: int = 64 << 20,
        keep: int = 5,
        rotate: bool = True,
        health: StorageHealth | None = None,
    ) -> None:
        self.path = path
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.max_bytes = max_bytes
        self.keep = keep
        self.rotate = rotate
        self.health = health
        self._lock = threading.Lock()
        # Unbuffered: a write that fails (disk full) is undone by truncating to
        # where it began, so the retry never leaves a torn or doubled line.
        self._f = path.open("ab", buffering=0)
        self._size = self._f.seek(0, os.SEEK_END)
        self.counts: dict[str, int] = {}

    def write(self, rejects: Iterable[Rejection]) -> None:
        with self._lock:
            lines = []
            for r in rejects:
                self.counts[r.reason] = self.counts.get(r.reason, 0) + 1
                metrics.REJECTED.labels(reason=r.reason).inc()
                lines.append(
                    orjson.dumps(
                        rejection_record(r),
                        option=orjson.OPT_APPEND_NEWLINE | orjson.OPT_SERIALIZE_NUMPY,
                        default=str,
                    )
                )
            if lines:
                guarded(self.health, "deadletter", lambda: self._append(b"".join(lines)))
            metrics.DEADLETTER_BYTES.set(self._size)

    def _append(self, data: bytes) -> None:
        """All of ``data`` or nothing (a failed attempt is truncated away)."""
        if self.rotate and self._size > self.max_bytes:
            self._rotate()  # before the write: a failed rotation is retried, not the lines
        append_all(self._f, data)
        self._size += len(data)

    def _rotate(self) -> None:
        self._f.close()
        for i in range(self.keep - 1, 0, -1):
            src = self.path.with_name(f"{self.path.name}.{i}")
            if src.exists():
                src.replace(self.path.with_name(f"{self.path.name}.{i + 1}"))
        oldest = self.path.with_name(f"{self.path.name}.{self.keep}")
        oldest.unlink(missing_ok=True)
        if self.path.exists():  # (not after a rotation that failed to reopen)
            self.path.replace(self.path.with_name(f"{self.path.name}.1"))
        self._f = self.path.open("ab", buffering=0)
        self._size = 0

    def close(self) -> None:
        with self._lock:
            self._f.close()
