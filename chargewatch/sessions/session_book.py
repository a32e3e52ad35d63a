"""The engine's books: every open and recently closed session, how to find it
(by connector, by transaction), what waits to be merged and what changed.

The event, meter, closing and emit steps all work on one ``SessionBook``; the
primitives that keep its indexes consistent (add, drop, open, close) are here.
"""

from __future__ import annotations

__all__ = ["OCCUPIED", "STATUS", "TX", "SessionBook"]

import math

import numpy as np

from chargewatch.model.events import TransactionEvent
from chargewatch.model.fleet import ConnectorIndex
from chargewatch.sessions.clock_hold import ClockHold
from chargewatch.sessions.clock_offsets import ClockOffsets
from chargewatch.sessions.session_state import SessionState
from chargewatch.sessions.session_types import Rejected, SessionConfig, session_id

TX, STATUS = 1, 2  # SessionBook.sends bits
OCCUPIED = frozenset({"Preparing", "Charging", "SuspendedEV", "SuspendedEVSE", "Finishing"})


class SessionBook:
    """Shared state of one engine. Not thread-safe."""

    def __init__(self, index: ConnectorIndex, config: SessionConfig) -> None:
        self.index = index
        self.config = config
        self.sessions: dict[str, SessionState] = {}  # open and recently closed
        self.open: dict[int, str] = {}  # dense connector -> open session id
        # dense connector -> session ids by start: the id itself when there is one
        # (nearly always; a 1-tuple is 48 B more per connector), else a tuple
        self.by_conn: dict[int, str | tuple[str, ...]] = {}
        self.by_tx: dict[tuple[str, str], str] = {}  # (charger, transaction id) -> session id
        # Charger -> what it has sent: TX (transaction events) | STATUS (statuses).
        # One dict, not two sets: a set's table is ~4x its size (~40-50 B a connector).
        self.sends: dict[str, int] = {}
        self.points: dict[str, list[tuple[float, float]]] = {}  # event-borne register points
        # Zero-power anchors from statuses, kept across steps until they can be
        # merged without getting ahead of the meter (see sample_merge.take_anchors).
        self.anchors: dict[str, list[float]] = {}
        self.status: dict[int, str] = {}  # last connector status
        self.dirty: set[str] = set()
        # Per dense connector: the earliest time its open session's timeout rules
        # can close it (inf: no open session), so a step looks only at sessions
        # that are due or changed, not at every open one. Recomputed for the
        # connectors in due_stale (events, sessions through sample_merge) and by
        # the fast tail for the sessions it extends.
        self.due = np.full(0, math.inf)
        self.due_stale: set[int] = set()
        self.last_prune = -math.inf
        self.rejected: list[Rejected] = []
        # Stops that named no known transaction, waiting for their start to
        # arrive (session_events._settle_stops); checkpointed with the sessions.
        self.waiting_stops: list[TransactionEvent] = []
        # Each charger's clock offset, measured and applied before a step is used.
        self.clock = ClockOffsets(
            index,
            min_offset_s=config.clock_min_offset_s,
            agree_s=config.clock_agree_s,
            confirm_n=config.clock_confirm_n,
            confirm_span_s=config.clock_confirm_span_s,
        )
        # Charger -> sessions opened while its clock offset was in doubt, with the
        # candidate's d (clock_rebase.py): a few chargers at most, for ten minutes.
        # The sessions themselves: a transaction start adopting one changes its id.
        self.opened_in_doubt: dict[str, list[tuple[SessionState, float]]] = {}
        # Messages from the future held while their charger's offset is in doubt.
        self.held = ClockHold(
            index,
            self.clock,
            future_tolerance_s=config.future_tolerance_s,
            hold_s=config.clock_hold_s,
            max_held=config.clock_hold_max,
        )

    def reject(self, charger: str, connector: int, ts: float, reason: str, detail: str) -> None:
        self.rejected.append(Rejected(charger, connector, ts, reason, detail))

    def conn_sids(self, conn: int) -> tuple[str, ...]:
        got = self.by_conn.get(conn, ())
        return (got,) if isinstance(got, str) else got

    def set_by_conn(self, conn: int, sids: list[str]) -> None:
        self.by_conn[conn] = sids[0] if len(sids) == 1 else tuple(sids)

    def current(self, conn: int) -> SessionState | None:
        sid = self.open.get(conn)
        return self.sessions[sid] if sid is not None else None

    def add(self, s: SessionState) -> None:
        self.sessions[s.sid] = s
        conn = self.index.id(s.charger, s.connector)
        self.set_by_conn(
            conn, sorted((*self.conn_sids(conn), s.sid), key=lambda x: self.sessions[x].start)
        )
        if s.transaction_id:
            self.by_tx[(s.charger, s.transaction_id)] = s.sid

    def drop(self, sid: str) -> None:
        s = self.sessions.pop(sid)
        conn = self.index.id(s.charger, s.connector)
        left = list(self.conn_sids(conn))
        left.remove(sid)
        self.set_by_conn(conn, left)
        if s.transaction_id and self.by_tx.get((s.charger, s.transaction_id)) == sid:
            del self.by_tx[(s.charger, s.transaction_id)]
        self.points.pop(sid, None)
        self.anchors.pop(sid, None)
        self.dirty.discard(sid)

    def rekey(self, s: SessionState, sid: str) -> None:
        """File ``s`` again under ``sid`` (its start moved: clock_rebase.py)."""
        conn = self.index.id(s.charger, s.connector)
        was_open = self.open.get(conn) == s.sid
        anchors = self.anchors.get(s.sid)
        self.drop(s.sid)
        s.sid = sid
        self.add(s)
        if was_open:
            self.open[conn] = sid
        if anchors:
            self.anchors[sid] = anchors
        self.dirty.add(sid)

    def open_session(
        self, charger: str, connector: int, tx: str, start: float, source: str
    ) -> SessionState:
        s = SessionState(
            sid=session_id(charger, connector, tx, start),
            charger=charger,
            connector=connector,
            transaction_id=tx,
            start=start,
            start_source=source,
            last_seen=start,
            clock_offset=self.clock.offset(charger),
        )
        if source != "transaction":
            s.flag("inferred_start")
        if s.sid in self.sessions:  # the same start seen again (replayed input)
            return self.sessions[s.sid]
        self.add(s)
        if (d := self.clock.in_doubt(charger)) is not None:  # re-based if confirmed
            self.opened_in_doubt.setdefault(charger, []).append((s, d))
        self.open[self.index.id(charger, connector)] = s.sid
        return s

    def doubt_lag(self, s: SessionState) -> float:
        """How far (s, <= 0) the clock ``s`` was built on is behind the receive
        clock: while ``s`` was opened in doubt and its charger's candidate still
        agrees, the candidate's ``d`` less the offset ``s`` was moved by; else 0.

        Why: a clock behind is not confirmed for ten minutes, and its samples
        on its own clock look hours stale on the receive clock -- a
        power-inferred session timed out the step it opened, one per sample.
        Its timeout rules read the receive clock moved by this (the charger's
        own clock), so it waits to be re-based (clock_rebase.py). Never ahead:
        the doubt only postpones a close."""
        opened = self.opened_in_doubt.get(s.charger)
        if not opened:  # (nearly always)
            return 0.0
        cand = self.clock.in_doubt(s.charger)
        if cand is None:
            return 0.0
        for x, d in opened:
            if x is s and abs(d - cand) <= self.config.clock_agree_s:
                return min(cand - s.clock_offset, 0.0)
        return 0.0

    def close(self, s: SessionState, stop: float, window_end: float, by: str) -> None:
        s.stop = max(stop, s.start)
        s.window_end = max(window_end, s.stop)
        s.closed_by = by
        if by != "transaction":
            s.flag("inferred_stop")
        conn = self.index.id(s.charger, s.connector)
        if self.open.get(conn) == s.sid:
            del self.open[conn]
        self.dirty.add(s.sid)

    def point(self, s: SessionState, ts: float, wh: float | None) -> None:
        """An event-borne register reading, merged with the step's samples."""
        if wh is not None and math.isfinite(wh):
            self.points.setdefault(s.sid, []).append((ts, wh))
            self.dirty.add(s.sid)

    def grow_due(self) -> None:
        """Make room in ``due`` for connectors the index learned since."""
        if len(self.due) < len(self.index):
            grown = np.full(max(len(self.index), 2 * len(self.due)), math.inf)
            grown[: len(self.due)] = self.due
            self.due = grown
