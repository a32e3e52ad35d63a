"""Just enough OCPP-J framing to route frames: the message type and id, cheaply.

Frames pass through as the text they arrived as; only CALLs from the CSMS and
answers while a CALL is outstanding are parsed at all.
"""

from __future__ import annotations

__all__ = ["CALL", "CALLERROR", "CALLRESULT", "frame_id", "frame_type", "refusal"]

from typing import Any

import orjson

CALL, CALLRESULT, CALLERROR = 2, 3, 4
_WS = " \t\r\n"


def frame_type(frame: str | bytes) -> int:
    """2, 3 or 4 for a CALL, CALLRESULT or CALLERROR; 0 for anything else."""
    if not isinstance(frame, str):
        return 0  # binary frames are not OCPP-J: passed through untouched
    s = frame.lstrip(_WS)
    if not s.startswith("["):
        return 0
    d = s[1:].lstrip(_WS)[:2]
    return int(d[0]) if d[:1] in ("2", "3", "4") and not d[1:2].isdigit() else 0


def frame_id(frame: str) -> tuple[list[Any] | None, str]:
    """The parsed frame and its message id ("" when it has none)."""
    try:
        doc = orjson.loads(frame)
    except orjson.JSONDecodeError:
        return None, ""
    if isinstance(doc, list) and len(doc) >= 2 and isinstance(doc[1], str):
        return doc, doc[1]
    return None, ""


def refusal(message_id: str, code: str, reason: str, description: str) -> str:
    """A CALLERROR the bridge answers a command with (details say it was the bridge)."""
    details = {"refusedBy": "chargewatch-bridge", "reason": reason}
    return orjson.dumps([CALLERROR, message_id, code, description, details]).decode()
