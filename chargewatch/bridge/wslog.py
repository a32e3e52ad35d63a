"""The logger handed to websockets, with credentials kept out of every record.

At DEBUG websockets logs each handshake header (``> Authorization: Basic
...``); the filter replaces the value of Authorization headers before the
record is formatted, so no handler ever sees the password.
"""

from __future__ import annotations

__all__ = ["ws_logger"]

import logging

_SECRET_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie", "set-cookie"})


class _Redact(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if (
            isinstance(args, tuple)
            and len(args) == 2
            and isinstance(args[0], str)
            and args[0].lower() in _SECRET_HEADERS
        ):
            record.args = (args[0], "[redacted]")
        return True


def ws_logger() -> logging.Logger:
    logger = logging.getLogger("chargewatch.bridge.ws")
    if not any(isinstance(f, _Redact) for f in logger.filters):
        logger.addFilter(_Redact())
    return logger
