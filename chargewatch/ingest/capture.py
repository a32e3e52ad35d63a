"""Capture files (docs/architecture.md): JSON Lines, one MQTT message a line.

``{"ts": "<RFC 3339 receive time>", "topic": "<topic>", "payload": <JSON value,
or a string when the payload is not JSON>}``
"""

from __future__ import annotations

__all__ = ["CaptureError", "encode_record", "read_capture"]

import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import orjson


class CaptureError(ValueError):
    def __init__(self, path: str, line: int, message: str) -> None:
        self.path, self.line = path, line
        super().__init__(f"{path}:{line}: {message}")


def _rfc3339(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def encode_record(recv: float, topic: str, payload: bytes) -> bytes:
    """One capture line for a received message (keeps non-JSON payloads as text)."""
    try:
        value: Any = orjson.loads(payload)
        body = orjson.dumps({"ts": _rfc3339(recv), "topic": topic, "payload": value})
    except orjson.JSONDecodeError:
        body = orjson.dumps(
            {"ts": _rfc3339(recv), "topic": topic, "payload": payload.decode("utf-8", "replace")}
        )
    return body + b"\n"


def read_capture(path: Path) -> Iterator[tuple[float, str, bytes]]:
    """Yield (receive time, topic, payload bytes) in file order.

    A JSON payload is re-serialised compactly; a string payload is passed as its
    text (it was not JSON on the wire, so the decoders reject it just as live).
    """
    with path.open("rb") as f:
        yield from _read(f, str(path))


# A record as encode_record (and most writers) lay it out: ts, topic, then the
# payload as the rest of the line. Matched only when the line as a whole is not
# JSON that orjson reads.
_RECORD_HEAD = re.compile(
    rb'\A\s*\{\s*"ts"\s*:\s*"([^"\\]*)"\s*,\s*"topic"\s*:\s*"((?:[^"\\]|\\.)*)"\s*,'
    rb'\s*"payload"\s*:(.*)\}\s*\Z',
    re.DOTALL,
)


def _salvage(line: bytes) -> dict[str, Any] | None:
    """The record of a line whose payload orjson cannot read although the record
    around it is sound: nested deeper than orjson's 1,024 levels, a number beyond
    a double, a lone surrogate escape. What a broker can deliver, a capture can
    hold; the payload's text goes to the decoders, which reject that message
    alone with its reason, as live. Before, the whole replay stopped at it."""
    m = _RECORD_HEAD.match(line)
    if m is None:
        return None
    try:
        topic = orjson.loads(b'"' + m.group(2) + b'"')
    except orjson.JSONDecodeError:
        return None
    return {"ts": m.group(1).decode("ascii", "replace"), "topic": topic, "raw": m.group(3).strip()}


def _read(f: IO[bytes], name: str) -> Iterator[tuple[float, str, bytes]]:
    for lineno, line in enumerate(f, 1):
        if not line.strip():
            continue
        try:
            rec = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            rec = _salvage(line)
            if rec is None:
                raise CaptureError(name, lineno, f"not JSON: {exc}") from None
        if not isinstance(rec, dict) or "topic" not in rec or "ts" not in rec:
            raise CaptureError(name, lineno, "expected an object with ts, topic and payload")
        try:
            recv = datetime.fromisoformat(rec["ts"]).timestamp()
        except (TypeError, ValueError):
            raise CaptureError(name, lineno, f"ts {rec.get('ts')!r} is not RFC 3339") from None
        if "raw" in rec:
            raw = rec["raw"]
        else:
            payload = rec.get("payload")
            raw = payload.encode() if isinstance(payload, str) else orjson.dumps(payload)
        yield recv, str(rec["topic"]), raw
