"""Charger clocks that are off: each charger's offset from the receive clock,
measured from its own timestamps, and the step's data moved by it before the
sessions see it.

Why: a charger that sends local time as UTC (CEST: two hours ahead) or never
had its clock set stamps everything it sends wrong. Two hours ahead, the
engine rejected every status, transaction and sample as ``future_timestamp``
and the charge was neither recorded nor billed; one hour ahead, the stop lay
after its own receipt and the session was cut short; and every such session
is priced by the wrong hour of the tariff. The receive clock is the one clock
chargewatch keeps right, so a charger's own clock is judged against it.

Each message with a timestamp gives ``d = ts - recv = offset - latency``
(latency >= 0). The offset applied to a charger changes only on evidence:

* offsets smaller than ``clock_min_offset_s`` are never corrected (network
  latency and drift; ClockSkew alerts on those);
* a message ahead of the applied offset by more than ``clock_agree_s`` is
  impossible for a clock the correction has right: two such messages that
  agree within ``clock_agree_s`` set the new offset;
* a message behind it by more is also what a late delivery looks like (a
  charger emptying its queue after an outage, a broker backlog): the new
  offset takes ``clock_confirm_n`` agreeing messages spread over at least
  ``clock_confirm_span_s`` of receive time (a queue arrives in a burst, and
  a backlog's delay shrinks as it drains);
* back to a right clock (``d`` under ``clock_min_offset_s``: NTP caught up)
  takes the same number of messages over two agreement widths (120 s): late
  delivery would have to be late by the offset itself, to the minute;
* a message that agrees with the applied offset drops any such candidate;
* the new offset is the candidate's largest ``d``: the message that waited
  least.

A timestamp exactly equal to its receive time is the decoder standing in for
a missing one (a 1.6 StatusNotification may leave it out): not evidence.

The whole step is moved by the offsets as they stand after it, so the
messages that confirm an offset are corrected too. The corrected sessions
carry the offset (``clock_offset_s``) and the flag ``clock_corrected``;
the raw timestamps stay as received everywhere else (InfluxDB, detectors).
"""

from __future__ import annotations

__all__ = ["ClockOffsets"]

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace

import numpy as np
from numpy.typing import NDArray

from chargewatch.model.batch import MeterBatch
from chargewatch.model.events import (
    Event,
    MeterReading,
    StatusEvent,
    TransactionEvent,
    charger_stamped,
)
from chargewatch.model.fleet import ConnectorIndex

_TIMED = (TransactionEvent, MeterReading, StatusEvent)


@dataclass(slots=True)
class _Candidate:
    """Messages that disagree with the applied offset and agree with each other."""

    d_max: float  # the largest d: the least latency
    n: int
    first_recv: float
    last_recv: float


@dataclass(slots=True)
class _Clock:
    offset: float = 0.0  # subtracted from the charger's timestamps
    candidate: _Candidate | None = None
    conns: set[int] = field(default_factory=set)  # its dense connectors seen so far


class ClockOffsets:
    """Per-charger clock offsets. Pure: fed the step's data, no clock of its own."""

    def __init__(
        self,
        index: ConnectorIndex,
        *,
        min_offset_s: float,
        agree_s: float,
        confirm_n: int,
        confirm_span_s: float,
    ) -> None:
        self.index = index
        self.min_offset_s = min_offset_s
        self.agree_s = agree_s
        self.confirm_n = confirm_n
        self.confirm_span_s = confirm_span_s
        self._clocks: dict[str, _Clock] = {}
        # Per dense connector: its charger's applied offset (0 for most), so a
        # step of healthy clocks is screened with a few array operations.
        self._conn_offset = np.zeros(0)
        self._filled = 0  # connectors of the index whose offset is filled in
        # Chargers whose offset changed in the last step -> the offset before:
        # what their data held from before the step was moved by (clock_rebase.py).
        self.changed: dict[str, float] = {}

    def offset(self, charger: str) -> float:
        got = self._clocks.get(charger)
        return 0.0 if got is None else got.offset

    def offsets(self) -> dict[str, float]:
        """The chargers whose offset is not 0 (for the checkpoint)."""
        return {c: k.offset for c, k in self._clocks.items() if k.offset}

    def applied(self) -> NDArray[np.float64] | None:
        """Per dense connector of the index, its charger's applied offset (0 for
        a right clock), read-only; None while no charger has one (nearly always).
        For the one-minute rollups (storage/rollups.py), so they move a charger
        by the offset the sessions are moved by, not by a second estimate."""
        if not self._any_offset():
            return None
        if self._filled < len(self.index):
            self._sync_conns()  # connectors learned since the last step take theirs
        view = self._conn_offset[: len(self.index)]
        view.flags.writeable = False
        return view

    def in_doubt(self, charger: str) -> float | None:
        """The ``d`` of the charger's offset candidate not yet confirmed, if any."""
        got = self._clocks.get(charger)
        return None if got is None or got.candidate is None else got.candidate.d_max

    def pending(self) -> dict[str, float]:
        """Chargers with an offset candidate not yet confirmed: its ``d`` (its
        largest). A few at most: _clocks holds only clocks off or in doubt."""
        return {c: k.candidate.d_max for c, k in self._clocks.items() if k.candidate is not None}

    def candidates(self) -> list[list[float | str]]:
        """The candidates not yet confirmed, for the checkpoint: [charger, d_max,
        n, first_recv, last_recv] each. Why: a clock behind is in doubt for ten
        minutes; a restart or a move to another collector that forgot them
        started the confirmation over, and the session opened in the doubt was
        split (docs/sessions.md)."""
        return [
            [c, k.candidate.d_max, k.candidate.n, k.candidate.first_recv, k.candidate.last_recv]
            for c, k in sorted(self._clocks.items())
            if k.candidate is not None
        ]

    def witness(self, charger: str, recv: float, d: float) -> None:
        """Judge one message again (a held message restored from a checkpoint
        rebuilds the candidate it was held for)."""
        self._judge(charger, -1, recv, d)

    def restore(
        self, offsets: dict[str, float], candidates: Iterable[Sequence[float | str]] = ()
    ) -> None:
        """Offsets from :meth:`offsets` and candidates from :meth:`candidates`
        (none in checkpoints written before they were kept)."""
        self._clocks = {c: _Clock(float(o)) for c, o in offsets.items()}
        self._conn_offset = np.zeros(0)
        self._filled = 0
        self._sync_conns()
        for charger, d_max, n, first, last in candidates:
            c = str(charger)
            clock = self._clocks.setdefault(c, _Clock())
            clock.candidate = _Candidate(float(d_max), int(n), float(first), float(last))
            # Its connectors known so far, so their rows that agree with the
            # applied offset are judged (and drop it) as before the restart.
            clock.conns.update(i for i, (ch, _) in enumerate(self.index.keys) if ch == c)

    def correct(self, events: list[Event], batch: MeterBatch) -> tuple[list[Event], MeterBatch]:
        """Observe the step's timestamps, then return the step moved by the offsets."""
        self.changed = {}
        if self._filled < len(self.index):
            self._sync_conns()
        self._observe(events, batch)
        if not self._any_offset():
            return events, batch
        return self._moved_events(events), self._moved_batch(batch)

    def _any_offset(self) -> bool:
        # _clocks holds only chargers with an offset or a candidate: a few.
        return any(k.offset for k in self._clocks.values())

    # --- observation ----------------------------------------------------------
    def _observe(self, events: list[Event], batch: MeterBatch) -> None:
        # (recv, d, charger, dense connector or -1)
        seen: list[tuple[float, float, str, int]] = [
            (ev.recv, ev.ts - ev.recv, ev.charger, -1) for ev in events if charger_stamped(ev)
        ]
        if len(batch):
            d = batch.ts - batch.recv
            # Rows that disagree with their charger's applied offset, and every
            # row of a charger with a candidate (an agreeing one drops it).
            if self._any_offset():
                applied = self._conn_offset[batch.conn]
                tol = np.where(applied == 0.0, self.min_offset_s, self.agree_s)
                odd = np.abs(d - applied) > tol
            else:  # (nearly always: every clock right, nothing applied)
                odd = np.abs(d) > self.min_offset_s
            pending = [k.conns for k in self._clocks.values() if k.candidate is not None]
            if pending:
                odd |= np.isin(batch.conn, np.fromiter(set().union(*pending), np.int64))
            odd &= np.isfinite(d) & (d != 0.0)
            keys = self.index.keys
            for r in np.flatnonzero(odd).tolist():
                conn = int(batch.conn[r])
                seen.append((float(batch.recv[r]), float(d[r]), keys[conn][0], conn))
        elif not seen:
            return
        for recv, dd, charger, conn in sorted(seen):
            self._judge(charger, conn, recv, dd)

    def _judge(self, charger: str, conn: int, recv: float, d: float) -> None:
        clock = self._clocks.get(charger)
        if clock is None:
            clock = self._clocks[charger] = _Clock()
        if conn >= 0 and conn not in clock.conns:
            # A connector of the charger seen for the first time takes its offset.
            clock.conns.add(conn)
            self._conn_offset[conn] = clock.offset
        tol = self.min_offset_s if clock.offset == 0.0 else self.agree_s
        if abs(d - clock.offset) <= tol:
            clock.candidate = None
            if not clock.offset:
                del self._clocks[charger]  # nothing to remember about a right clock
            return
        c = clock.candidate
        if c is not None and abs(d - c.d_max) <= self.agree_s:
            c.n += 1
            c.d_max = max(c.d_max, d)
            c.last_recv = recv
        else:
            c = clock.candidate = _Candidate(d, 1, recv, recv)
        ahead = c.d_max > clock.offset
        # Back to a right clock (NTP caught up): a late delivery would have to
        # be late by the offset itself, to the minute, three times -- so the
        # span that rules out a burst (two agreement widths) is enough.
        span = self.confirm_span_s if abs(c.d_max) >= self.min_offset_s else 2 * self.agree_s
        if (ahead and c.n >= 2) or (
            c.n >= self.confirm_n and c.last_recv - c.first_recv >= min(span, self.confirm_span_s)
        ):
            self.changed.setdefault(charger, clock.offset)
            clock.offset = c.d_max if abs(c.d_max) >= self.min_offset_s else 0.0
            clock.candidate = None
            # (A scan of the index, but only when an offset changes: rarely.)
            clock.conns.update(i for i, (ch, _) in enumerate(self.index.keys) if ch == charger)
            self._conn_offset[list(clock.conns)] = clock.offset

    # --- correction ------------------------------------------------------------
    def _moved_events(self, events: list[Event]) -> list[Event]:
        out: list[Event] = []
        for ev in events:
            if isinstance(ev, _TIMED) and (off := self.offset(ev.charger)):
                out.append(replace(ev, ts=ev.ts - off))
            else:
                out.append(ev)
        return out

    def _moved_batch(self, batch: MeterBatch) -> MeterBatch:
        if not len(batch):
            return batch
        off = self._conn_offset[batch.conn]
        if not off.any():
            return batch
        return MeterBatch(batch.conn, batch.ts - off, batch.recv, batch.values)

    # --- connectors ------------------------------------------------------------
    def _sync_conns(self) -> None:
        """Room for the connectors the index learned since, with their offsets."""
        n = len(self.index)
        if n > len(self._conn_offset):
            grown = np.zeros(max(n, 2 * len(self._conn_offset), 64))
            grown[: len(self._conn_offset)] = self._conn_offset
            self._conn_offset = grown
        if any(k.offset for k in self._clocks.values()):
            for i in range(self._filled, n):
                clock = self._clocks.get(self.index.keys[i][0])
                if clock is not None and clock.offset:
                    clock.conns.add(i)
                    self._conn_offset[i] = clock.offset
        self._filled = n
