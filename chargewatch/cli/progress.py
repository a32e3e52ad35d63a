"""Progress for long commands (replay, simulate to a file, report), on stderr.

Shown only when stderr is a terminal: piped or redirected, the commands print
exactly what they did before (their JSON summaries stay machine-readable).
rich is imported only when a bar is shown, so ``chargewatch --help`` stays cheap.
"""

from __future__ import annotations

__all__ = ["progress_enabled", "spinner", "table_progress", "track_capture", "track_simulation"]

import contextlib
import sys
import time
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from typing import Any

Msg = tuple[float, str, bytes]

# The bar is redrawn every this many messages: a replay reads ~15k/s, so about
# ten updates a second, each far cheaper than the messages between them.
EVERY = 2000
# A capture line's bytes besides topic and payload: {"ts":"…","topic":"","payload":}\n
LINE_OVERHEAD = 50


def progress_enabled() -> bool:
    isatty = getattr(sys.stderr, "isatty", None)
    return bool(isatty and isatty())


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S")


def _progress(*, bar: bool) -> Any:
    from rich.console import Console  # noqa: PLC0415 - only when shown
    from rich.progress import (  # noqa: PLC0415
        BarColumn,
        Progress,
        SpinnerColumn,
        TaskProgressColumn,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    columns: list[Any] = [SpinnerColumn(), TextColumn("{task.description}")]
    if bar:
        columns += [BarColumn(), TaskProgressColumn(), TextColumn("ETA"), TimeRemainingColumn()]
    columns += [TextColumn("elapsed"), TimeElapsedColumn(), TextColumn("{task.fields[status]}")]
    return Progress(*columns, console=Console(stderr=True), transient=False)


def _tracked(
    messages: Iterable[Msg], label: str, total: float, position: Any, *, rate: bool
) -> Iterator[Msg]:
    with _progress(bar=True) as bar:
        task = bar.add_task(label, total=total, status="")
        t0 = time.monotonic()
        first: float | None = None
        n = 0
        for msg in messages:
            if first is None:
                first = msg[0]
            n += 1
            if n % EVERY == 0:
                wall = time.monotonic() - t0
                status = f"{n:,} msgs, capture time {_iso(msg[0])}"
                if rate and wall > 0:
                    status += f", {(msg[0] - first) / wall:,.0f}x real time"
                bar.update(task, completed=min(position(msg), total), status=status)
            yield msg
        bar.update(task, completed=total, status=f"{n:,} msgs")


def track_capture(messages: Iterable[Msg], size_bytes: int, label: str) -> Iterator[Msg]:
    """Replay's input: share of the file read (estimated from what was yielded),
    capture time reached, speed-up over real time, ETA."""
    if not progress_enabled():
        return iter(messages)
    read = 0

    def position(msg: Msg) -> float:
        return read

    def counted() -> Iterator[Msg]:
        nonlocal read
        for msg in messages:
            read += len(msg[1]) + len(msg[2]) + LINE_OVERHEAD
            yield msg

    return _tracked(counted(), label, float(max(size_bytes, 1)), position, rate=True)


def track_simulation(
    messages: Iterable[Msg], start: float, end: float, label: str
) -> Iterator[Msg]:
    """A simulation written to a file: simulated time reached out of its span, ETA."""
    if not progress_enabled():
        return iter(messages)
    return _tracked(messages, label, max(end - start, 1.0), lambda m: m[0] - start, rate=True)


def table_progress() -> Any:
    """Bars for work counted in rows (``ledger migrate``: one task per table)."""
    return _progress(bar=True)


@contextlib.contextmanager
def spinner(label: str) -> Iterator[None]:
    """Work without a measure of its own (a report): a spinner and the time spent."""
    if not progress_enabled():
        yield
        return
    with _progress(bar=False) as p:
        p.add_task(label, total=None, status="")
        yield
