"""The dead-letter file: every rejected message or sample, with its reason.

JSON Lines, one rejection a line: ``{"at", "topic", "reason", "detail",
"index", "payload"}``. Rotated by size (``rejected.jsonl`` →
``rejected.jsonl.1`` ...) and bounded in the number of files kept, so a flood
of bad input cannot fill the disk.
"""

from __future__ import annotations

__all__ = ["DeadLetter", "rejection_record"]

import threading
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from chargewatch.core import metrics
from chargewatch.model.decoding import Rejection


def rejection_record(r: Rejection) -> dict[str, Any]:
    return {
        "at": datetime.fromtimestamp(r.recv, UTC).isoformat().replace("+00:00", "Z"),
        "topic": r.topic,
        "reason": r.reason,
        "detail": r.detail,
        "index": r.index,
        "payload": r.payload,
    }


class DeadLetter:
    def __init__(
        self, path: Path, *, max_bytes: int = 64 << 20, keep: int = 5, rotate: bool = True
    ) -> None:
        self.path = path
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.max_bytes = max_bytes
        self.keep = keep
        self.rotate = rotate
        self._lock = threading.Lock()
        self._f = path.open("ab")
        self._size = self._f.tell()
        self.counts: dict[str, int] = {}

    def write(self, rejects: Iterable[Rejection]) -> None:
        with self._lock:
            for r in rejects:
                self.counts[r.reason] = self.counts.get(r.reason, 0) + 1
                metrics.REJECTED.labels(reason=r.reason).inc()
                line = orjson.dumps(
                    rejection_record(r),
                    option=orjson.OPT_APPEND_NEWLINE | orjson.OPT_SERIALIZE_NUMPY,
                    default=str,
                )
                self._f.write(line)
                self._size += len(line)
                if self.rotate and self._size > self.max_bytes:
                    self._rotate()
            self._f.flush()
            metrics.DEADLETTER_BYTES.set(self._size)

    def _rotate(self) -> None:
        self._f.close()
        for i in range(self.keep - 1, 0, -1):
            src = self.path.with_name(f"{self.path.name}.{i}")
            if src.exists():
                src.replace(self.path.with_name(f"{self.path.name}.{i + 1}"))
        oldest = self.path.with_name(f"{self.path.name}.{self.keep}")
        oldest.unlink(missing_ok=True)
        self.path.replace(self.path.with_name(f"{self.path.name}.1"))
        self._f = self.path.open("ab")
        self._size = 0

    def close(self) -> None:
        with self._lock:
            self._f.close()
