"""What the action handlers share across frames: limits, counters, field checks.

One :class:`Context` per decoder. Besides the fleet's connector index and the
limits, it reads the two fields every action carries: RFC 3339 timestamps
(checked against receipt) and connector/EVSE ids (checked against the fleet's
limit), both raising :class:`~chargewatch.ingest.ocpp.framing.RejectError`.
"""

from __future__ import annotations

__all__ = ["Context", "Handler"]

from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Final

from chargewatch.ingest.ocpp.framing import Frame, RejectError
from chargewatch.model.fleet import ConnectorIndex

_T2010: Final = 1262304000.0  # 2010-01-01T00:00:00Z

#: An action handler: the decoder's context, the frame, its schema-checked payload.
Handler = Callable[["Context", Frame, dict[str, Any]], None]


class Context:
    """Limits, the quirk counter and the timestamp cache of one decoder."""

    __slots__ = (
        "_ts_naive",
        "_ts_text",
        "_ts_value",
        "future_tolerance",
        "history",
        "index",
        "max_connector",
        "quirks",
    )

    def __init__(
        self,
        index: ConnectorIndex,
        quirks: Counter[str],
        *,
        max_pending: int,
        future_tolerance: float,
        max_connector: int,
    ) -> None:
        self.index = index
        self.quirks = quirks
        self.future_tolerance = future_tolerance
        self.max_connector = max_connector
        #: How many message ids and transaction ids a charger's state remembers.
        self.history = 4 * max_pending
        self._ts_text = ""
        self._ts_value = 0.0
        self._ts_naive = False

    def ts(self, text: str, recv: float) -> float:
        """Epoch seconds of an RFC 3339 timestamp, checked against ``recv``."""
        if text == self._ts_text:  # one frame's meterValues often share a timestamp
            ts = self._ts_value
            if self._ts_naive:
                self.quirks["timestamp_without_offset"] += 1
        else:
            # fromisoformat also takes dates without a time; RFC 3339 needs both.
            if len(text) < 19 or text[10] not in "Tt ":
                raise RejectError("bad_timestamp", f"{text!r} is not an RFC 3339 date-time")
            try:
                dt = datetime.fromisoformat(text)
            except ValueError:
                raise RejectError(
                    "bad_timestamp", f"{text!r} is not an RFC 3339 date-time"
                ) from None
            naive = dt.tzinfo is None
            if naive:
                self.quirks["timestamp_without_offset"] += 1
                dt = dt.replace(tzinfo=UTC)
            ts = dt.timestamp()
            self._ts_text, self._ts_value, self._ts_naive = text, ts, naive
        if ts < _T2010:
            raise RejectError("timestamp_before_2010", f"{text!r} is before 2010")
        if ts > recv + self.future_tolerance:
            raise RejectError("future_timestamp", f"{text!r} is {ts - recv:.0f} s after receipt")
        return ts

    def connector(self, value: int, what: str) -> int:
        """A connector/EVSE id, within 0..``max_connector``."""
        if not 0 <= value <= self.max_connector:
            raise RejectError("out_of_range", f"{what} {value} outside 0..{self.max_connector}")
        return value
