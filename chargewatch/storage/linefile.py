"""A line-protocol file sink: the embedded default when no InfluxDB is configured."""

from __future__ import annotations

import threading
from pathlib import Path

from chargewatch.storage.health import StorageHealth, append_all, guarded

# Lines held in memory before write() appends them (as the file buffer used to).
_PENDING_BYTES = 64 << 10


class LineFile:
    def __init__(self, path: Path, *, health: StorageHealth | None = None) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.health = health
        # Unbuffered, appended whole (append_all): with a full disk a flush is
        # retried without a torn or doubled line, and the lines wait in memory.
        self._f = path.open("ab", buffering=0)
        self._pending: list[str] = []
        self._pending_bytes = 0
        self._lock = threading.Lock()
        self.lines_written = 0

    def write(self, lines: list[str]) -> None:
        if lines:
            with self._lock:
                self._pending.extend(lines)
                self._pending_bytes += sum(map(len, lines))
                self.lines_written += len(lines)
                if self._pending_bytes >= _PENDING_BYTES:
                    self._flush()

    def flush(self) -> None:
        with self._lock:
            self._flush()

    def _flush(self) -> None:
        if not self._pending:
            return
        data = ("\n".join(self._pending) + "\n").encode()
        guarded(self.health, "linefile", lambda: append_all(self._f, data))
        self._pending, self._pending_bytes = [], 0

    def stop(self) -> None:
        with self._lock:
            try:
                self._flush()
            finally:
                self._f.close()
