"""Messages held while their charger's clock offset is in doubt.

Why: a charger two hours ahead has its first message stamped beyond
``future_tolerance_s`` before a second one confirms its offset
(clock_offsets.py: two agreeing messages). Rejected as ``future_timestamp``,
that message -- in OCPP 2.0.1 the first StatusNotification -- was lost
although the next message showed it was only the clock.

So a message (event or meter row) that the engine would reject as
``future_timestamp`` and that agrees with its charger's pending offset
candidate is held, per charger, until:

* the candidate is confirmed (the applied offset now agrees with what was
  held): the held messages are moved by it and join the step, whose
  ordinary time ordering puts them in their place;
* it is refuted (a message agreeing with the applied offset dropped it, or a
  different candidate replaced it), or ``clock_hold_s`` of receive time
  passed since the first was held: they are rejected as ``future_timestamp``,
  as they were before, with the time and detail they had then.

At most ``clock_hold_max`` messages are held per charger (the oldest is
rejected first), and only while their charger has a candidate: memory is
bounded by both. Stops are never held (the engine does not reject them for
their time; it corrects it). Held messages are in the engine's checkpoint
(``clock_held``) and move with their charger between collectors, as does
the candidate they wait for (``clock_candidates``; rebuilt from them when a
checkpoint has none).
"""

from __future__ import annotations

__all__ = ["ClockHold"]

import math
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np

from chargewatch.model.batch import MeterBatch
from chargewatch.model.events import (
    Event,
    MeterReading,
    SignedReading,
    StatusEvent,
    TransactionEvent,
)
from chargewatch.model.fleet import ConnectorIndex
from chargewatch.sessions.clock_offsets import ClockOffsets
from chargewatch.sessions.session_types import Rejected

_Timed = TransactionEvent | MeterReading | StatusEvent
_KINDS: dict[str, type[_Timed]] = {
    c.__name__: c for c in (TransactionEvent, MeterReading, StatusEvent)
}


@dataclass(slots=True)
class _Held:
    """One charger's held messages, on its own clock (raw timestamps)."""

    d: float  # the candidate's ts - recv they agree with
    since: float  # receipt of the first held
    events: list[_Timed] = field(default_factory=list)
    rows: list[MeterBatch] = field(default_factory=list)  # one row each

    def __len__(self) -> int:
        return len(self.events) + len(self.rows)


class ClockHold:
    """Per-charger holding of future messages while a clock offset is confirmed.
    Pure: fed the step after ClockOffsets.correct and ``now``."""

    def __init__(
        self,
        index: ConnectorIndex,
        clock: ClockOffsets,
        *,
        future_tolerance_s: float,
        hold_s: float,
        max_held: int,
    ) -> None:
        self.index = index
        self.clock = clock
        self.future_tolerance_s = future_tolerance_s
        self.hold_s = hold_s
        self.max_held = max_held
        self._held: dict[str, _Held] = {}

    def __len__(self) -> int:
        """Messages held now."""
        return sum(len(h) for h in self._held.values())

    def step(
        self, events: list[Event], batch: MeterBatch, now: float
    ) -> tuple[list[Event], MeterBatch, list[Rejected]]:
        """The step (corrected by the applied offsets) with the messages whose
        offset was confirmed added and those now held taken out; and the held
        messages given up on, as the engine's rejections."""
        rejected: list[Rejected] = []
        if self._held:
            events, batch = self._settle(events, batch, now, rejected)
        pending = self.clock.pending()
        if pending:
            events, batch = self._take(events, batch, now, pending, rejected)
        return events, batch, rejected

    def give_up(self) -> list[Rejected]:
        """Reject everything held (a replay's capture has ended: no message will
        confirm an offset any more), as the end of ``clock_hold_s`` would."""
        rejected: list[Rejected] = []
        for charger, h in sorted(self._held.items()):
            off = self.clock.offset(charger)
            rejected.extend(self._rejection(ev, off) for ev in h.events)
            rejected.extend(self._row_rejection(r, off) for r in h.rows)
        self._held = {}
        return rejected

    # --- what is held ------------------------------------------------------------
    def _settle(
        self, events: list[Event], batch: MeterBatch, now: float, rejected: list[Rejected]
    ) -> tuple[list[Event], MeterBatch]:
        pending = self.clock.pending()
        agree = self.clock.agree_s
        released_events: list[Event] = []
        released_rows: list[MeterBatch] = []
        for charger, h in list(self._held.items()):
            off = self.clock.offset(charger)
            cand = pending.get(charger)
            if abs(h.d - off) <= agree:  # confirmed: used, on the receive clock
                released_events += [replace(ev, ts=ev.ts - off) for ev in h.events]
                released_rows += [_moved(r, off) for r in h.rows]
            elif cand is not None and abs(cand - h.d) <= agree and now - h.since <= self.hold_s:
                continue  # still in doubt
            else:  # refuted or waited too long: rejected as they would have been
                rejected.extend(self._rejection(ev, off) for ev in h.events)
                rejected.extend(self._row_rejection(r, off) for r in h.rows)
            del self._held[charger]
        if released_events:
            events = [*released_events, *events]
        if released_rows:
            batch = MeterBatch.concat([*released_rows, batch])
        return events, batch

    # --- what to hold --------------------------------------------------------------
    def _take(
        self,
        events: list[Event],
        batch: MeterBatch,
        now: float,
        pending: dict[str, float],
        rejected: list[Rejected],
    ) -> tuple[list[Event], MeterBatch]:
        limit = now + self.future_tolerance_s
        kept: list[Event] = []
        for ev in events:
            if (
                isinstance(ev, _Timed)
                and ev.ts > limit
                and not (isinstance(ev, TransactionEvent) and ev.kind == "stop")
                and ev.charger in pending
            ):
                off = self.clock.offset(ev.charger)
                if abs(ev.ts + off - ev.recv - pending[ev.charger]) <= self.clock.agree_s:
                    raw = replace(ev, ts=ev.ts + off) if off else ev
                    self._group(ev.charger, pending[ev.charger], ev.recv, rejected).events.append(
                        raw
                    )
                    continue
            kept.append(ev)
        if len(kept) < len(events):
            events = kept
        if len(batch) and (future := batch.ts > limit).any():
            keys = self.index.keys
            held = np.zeros(len(batch), np.bool_)
            for r in np.flatnonzero(future).tolist():
                charger = keys[int(batch.conn[r])][0]
                d = pending.get(charger)
                off = self.clock.offset(charger)
                raw_ts = float(batch.ts[r]) + off
                if d is None or abs(raw_ts - float(batch.recv[r]) - d) > self.clock.agree_s:
                    continue
                row = batch.take(slice(r, r + 1))
                row = MeterBatch(row.conn.copy(), row.ts + off, row.recv.copy(), row.values.copy())
                self._group(charger, d, float(batch.recv[r]), rejected).rows.append(row)
                held[r] = True
            if held.any():
                batch = batch.take(~held)
        return events, batch

    def _group(self, charger: str, d: float, recv: float, rejected: list[Rejected]) -> _Held:
        """The charger's held messages, with room for one more."""
        h = self._held.get(charger)
        if h is None:
            h = self._held[charger] = _Held(d, recv)
        while len(h) >= self.max_held:  # the oldest goes first
            off = self.clock.offset(charger)
            first_ev = min((ev.recv for ev in h.events), default=math.inf)
            first_row = min((float(r.recv[0]) for r in h.rows), default=math.inf)
            if first_ev <= first_row:
                ev = min(h.events, key=lambda e: e.recv)
                h.events.remove(ev)
                rejected.append(self._rejection(ev, off))
            else:
                row = min(h.rows, key=lambda b: float(b.recv[0]))
                h.rows.remove(row)
                rejected.append(self._row_rejection(row, off))
        return h

    def _rejection(self, ev: _Timed, off: float) -> Rejected:
        return Rejected(
            ev.charger, ev.connector, ev.ts - off, "future_timestamp", type(ev).__name__
        )

    def _row_rejection(self, row: MeterBatch, off: float) -> Rejected:
        charger, connector = self.index.keys[int(row.conn[0])]
        return Rejected(
            charger, connector, float(row.ts[0]) - off, "future_timestamp", "meter sample"
        )

    # --- checkpoint ------------------------------------------------------------------
    def snapshot(self) -> list[dict[str, Any]]:
        """The held messages as JSON-able data, one dict per charger (empty: none)."""
        out = []
        for charger, h in sorted(self._held.items()):
            rows = []
            for r in h.rows:
                _, connector = self.index.keys[int(r.conn[0])]
                values = [None if math.isnan(v) else v for v in r.values[0].tolist()]
                rows.append([connector, float(r.ts[0]), float(r.recv[0]), values])
            out.append(
                {
                    "charger": charger,
                    "d": h.d,
                    "since": h.since,
                    "events": [[type(ev).__name__, asdict(ev)] for ev in h.events],
                    "rows": rows,
                }
            )
        return out

    def restore(self, held: list[dict[str, Any]]) -> None:
        """Held messages from :meth:`snapshot`, after the candidates were
        restored (ClockOffsets.restore); a charger without one (a checkpoint
        written before candidates were kept) has it rebuilt from them."""
        self._held = {}
        for x in held:
            charger = str(x["charger"])
            h = self._held[charger] = _Held(float(x["d"]), float(x["since"]))
            h.events = [_event(kind, fields) for kind, fields in x.get("events", [])]
            for connector, ts, recv, values in x.get("rows", []):
                h.rows.append(
                    MeterBatch(
                        np.array([self.index.id(charger, int(connector))], np.int32),
                        np.array([float(ts)]),
                        np.array([float(recv)]),
                        np.array([[math.nan if v is None else float(v) for v in values]]),
                    )
                )
            if self.clock.in_doubt(charger) is not None:
                continue  # its candidate was checkpointed itself: judged already
            witnessed = [(ev.recv, ev.ts - ev.recv) for ev in h.events]
            witnessed += [(float(r.recv[0]), float(r.ts[0] - r.recv[0])) for r in h.rows]
            for recv, d in sorted(witnessed):
                self.clock.witness(charger, recv, d)


def _moved(row: MeterBatch, off: float) -> MeterBatch:
    return MeterBatch(row.conn, row.ts - off, row.recv, row.values) if off else row


def _event(kind: str, fields: dict[str, Any]) -> _Timed:
    """An event from its checkpoint form (JSON gives lists where events hold tuples)."""
    fields = dict(fields)
    if "flags" in fields:
        fields["flags"] = tuple(fields["flags"])
    if fields.get("signed") is not None:
        fields["signed"] = SignedReading(**fields["signed"])
    return _KINDS[kind](**fields)
