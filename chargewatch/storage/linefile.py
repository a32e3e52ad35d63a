"""A line-protocol file sink: the embedded default when no InfluxDB is configured."""

from __future__ import annotations

import threading
from pathlib import Path


class LineFile:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._f = path.open("a", encoding="utf-8")
        self._lock = threading.Lock()
        self.lines_written = 0

    def write(self, lines: list[str]) -> None:
        if lines:
            with self._lock:
                self._f.write("\n".join(lines))
                self._f.write("\n")
                self.lines_written += len(lines)

    def flush(self) -> None:
        with self._lock:
            self._f.flush()

    def stop(self) -> None:
        with self._lock:
            self._f.close()
