"""OCPP-J framing: what a frame must look like, and the frame being decoded.

An OCPP-J message (OCPP-J RPC framework) is a JSON array: ``[2, id, action, {}]``
(CALL), ``[3, id, {}]`` (CALLRESULT) or ``[4, id, code, description, {}]``
(CALLERROR). :func:`frame_problem` says why a parsed payload is none of these;
:class:`Frame` carries what every handler needs about the one being decoded.
"""

from __future__ import annotations

__all__ = [
    "CALL",
    "ERROR",
    "RESULT",
    "SOURCES",
    "VERSIONS",
    "Frame",
    "RejectError",
    "as_bytes",
    "frame_problem",
    "text",
]

from typing import Any, Final

from chargewatch.ingest.ocpp.state import ChargerState
from chargewatch.model.decoding import DecodeSink
from chargewatch.model.events import Source

VERSIONS: Final = {"1.6": "ocpp1.6", "2.0.1": "ocpp2.0.1"}
SOURCES: Final = frozenset({"cp", "csms", "command"})
CALL, RESULT, ERROR = 2, 3, 4
_MAX_ID = 36  # OCPP-J: message id is at most 36 characters
_MAX_RAW = 4096  # raw text kept in a rejection of an unparsable payload


class RejectError(Exception):
    """A rejection found below the frame level; caught where its scope ends."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(reason, detail)
        self.reason = reason
        self.detail = detail


class Frame:
    """What every handler needs about the frame being decoded."""

    __slots__ = (
        "charger",
        "digest",
        "frame",
        "recv",
        "sink",
        "source",
        "state",
        "topic",
        "version",
    )

    def __init__(
        self,
        topic: str,
        version: str,
        charger: str,
        frame: list[Any],
        recv: float,
        sink: DecodeSink,
        state: ChargerState,
        digest: int = 0,
    ) -> None:
        self.topic = topic
        self.digest = digest
        self.version = version
        self.charger = charger
        self.frame = frame
        self.recv = recv
        self.sink = sink
        self.state = state
        self.source: Source = "ocpp1.6" if version == "1.6" else "ocpp2.0.1"

    def reject(
        self, reason: str, detail: str, index: int | None = None, value_index: int | None = None
    ) -> None:
        """Reject the frame, its item ``index``, or that item's sampled value ``value_index``."""
        self.sink.reject(self.topic, reason, detail, self.frame, self.recv, index, value_index)


def frame_problem(frame: Any) -> str:
    """Why ``frame`` is not an OCPP-J message (OCPP-J RPC framework), or ""."""
    if not isinstance(frame, list):
        return f"a frame is a JSON array, got {type(frame).__name__}"
    if len(frame) < 3:
        return f"a frame has 3 to 5 elements, got {len(frame)}"
    kind = frame[0]
    if type(kind) is not int or kind not in (CALL, RESULT, ERROR):
        return f"message type {kind!r} is not 2 (CALL), 3 (CALLRESULT) or 4 (CALLERROR)"
    msg_id = frame[1]
    if not isinstance(msg_id, str) or not 0 < len(msg_id) <= _MAX_ID:
        return f"message id {msg_id!r} is not a string of 1..{_MAX_ID} characters"
    if kind == CALL:
        return _call_problem(frame)
    if kind == RESULT:
        return _result_problem(frame)
    return _error_problem(frame)


def _call_problem(frame: list[Any]) -> str:
    if len(frame) != 4:
        return f"a CALL has 4 elements, got {len(frame)}"
    if not isinstance(frame[2], str) or not frame[2]:
        return f"CALL action {frame[2]!r} is not a string"
    if not isinstance(frame[3], dict):
        return f"CALL payload is {type(frame[3]).__name__}, not an object"
    return ""


def _result_problem(frame: list[Any]) -> str:
    if len(frame) != 3:
        return f"a CALLRESULT has 3 elements, got {len(frame)}"
    if not isinstance(frame[2], dict):
        return f"CALLRESULT payload is {type(frame[2]).__name__}, not an object"
    return ""


def _error_problem(frame: list[Any]) -> str:
    if len(frame) != 5:
        return f"a CALLERROR has 5 elements, got {len(frame)}"
    if not isinstance(frame[2], str) or not isinstance(frame[3], str):
        return "CALLERROR errorCode and errorDescription must be strings"
    if not isinstance(frame[4], dict):
        return f"CALLERROR details is {type(frame[4]).__name__}, not an object"
    return ""


def text(payload: bytes) -> str:
    """The start of an unparsable payload, as kept in its rejection."""
    return payload[:_MAX_RAW].decode("utf-8", "replace")


def as_bytes(payload: object) -> bytes:
    if isinstance(payload, bytearray | memoryview):
        return bytes(payload)
    return str(payload).encode("utf-8", "replace")
