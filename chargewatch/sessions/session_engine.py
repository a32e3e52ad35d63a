"""Session engine: transactions, status and meter samples in; billed sessions out.

Driven by the pipeline once per batch::

    engine = SessionEngine(index)
    records = engine.update(batch, events, now)   # sessions closed or revised in this step

``now`` is handed in (the capture's receive time in replay, the wall clock live)
so both share one code path. Per open session only summary state is kept
(register segments, power pieces and gaps — see energy.py and periods.py), and
each batch is grouped by connector with one lexsort and processed vectorised.

How a session starts
    * a transaction start (OCPP 1.6 StartTransaction, 2.0.1 TransactionEvent
      Started, native ``transaction`` start);
    * for a charger that has never sent a transaction event: a connector
      status of Preparing/Charging/SuspendedEV(SE)/Finishing (flag
      ``inferred_start``); a later transaction start adopts that session;
    * for a charger that sent neither transactions nor statuses: power above
      ``charging_threshold_w`` (flag ``inferred_start``).

How a session ends (every rule but the first sets ``inferred_stop``)
    1. ``transaction``: its stop event;
    2. ``next_start``: another transaction starts on the connector — stop at
       the last data seen for the session;
    3. ``available``: the connector went Available and no stop came within
       ``available_grace_s`` — stop at the Available time;
    4. ``status``: status-inferred sessions end at Available;
    5. ``timeout``: neither register growth nor charging power for
       ``stale_timeout_s`` (``power_idle_timeout_s`` for power-inferred
       sessions) — stop at the last growth.
A stop that arrives after an inferred close revises the session.

Late data
    Samples are placed by their meter timestamp into the session whose window
    holds it — also a closed one kept for ``retain_closed_s``. A closed session
    that changes is emitted again with ``revision`` + 1 and flag ``revised``;
    its ``session_id`` stays the same, so the ledger updates it in place.

Where it lives
    session_types (config, records, rejections), session_state (one session
    and its checkpoint form), session_book (the shared indexes), session_events
    (transactions, readings, statuses), batch_routing / fast_tail /
    sample_merge (meter samples), session_closing (timeouts, pruning),
    session_emit (records), session_checkpoint (snapshot/restore),
    clock_offsets / clock_hold / clock_rebase (charger clocks that are off:
    measured and applied, messages held while in doubt, sessions re-based
    once confirmed; docs/sessions.md). This module
    composes them; its names are the package's interface.
"""

from __future__ import annotations

__all__ = [
    "QUALITY_FLAGS",
    "Rejected",
    "SessionConfig",
    "SessionEngine",
    "SessionRecord",
    "period_dict",
    "rfc3339",
    "session_id",
]

from typing import Any

import numpy as np
from numpy.typing import NDArray

from chargewatch.core.gcpause import gc_paused
from chargewatch.model.batch import MeterBatch
from chargewatch.model.events import Event
from chargewatch.model.fleet import ConnectorIndex
from chargewatch.sessions import session_checkpoint
from chargewatch.sessions.batch_routing import apply_batch
from chargewatch.sessions.clock_rebase import rebase, rebase_stops
from chargewatch.sessions.energy import register_energy
from chargewatch.sessions.session_book import OCCUPIED, SessionBook
from chargewatch.sessions.session_closing import check_timeouts, close_if_due, prune
from chargewatch.sessions.session_emit import emit
from chargewatch.sessions.session_events import apply_events
from chargewatch.sessions.session_state import SessionState
from chargewatch.sessions.session_types import (
    QUALITY_FLAGS,
    Rejected,
    SessionConfig,
    SessionRecord,
    period_dict,
    rfc3339,
    session_id,
)

_OCCUPIED = OCCUPIED  # (its name before the split; tests import it from here)


class SessionEngine:
    """Builds billed sessions from events and meter batches. Not thread-safe."""

    def __init__(self, index: ConnectorIndex, config: SessionConfig | None = None) -> None:
        self.index = index
        self.config = config or SessionConfig()
        self._book = SessionBook(index, self.config)
        self.fast_path = (
            True  # the vectorised live path; False only to test it against the general one
        )

    @property
    def rejected(self) -> list[Rejected]:
        """Input not used since the last drain (callers may clear it in place)."""
        return self._book.rejected

    # The books by their names before the split (tests check the timeout rules on them).
    @property
    def _sessions(self) -> dict[str, SessionState]:
        return self._book.sessions

    @property
    def _open(self) -> dict[int, str]:
        return self._book.open

    @property
    def _status(self) -> dict[int, str]:
        return self._book.status

    def update(self, batch: MeterBatch, events: list[Event], now: float) -> list[SessionRecord]:
        """Apply one step; return the records of sessions closed or revised in it."""
        book = self._book
        events, batch = book.clock.correct(events, batch)
        events, batch, given_up = book.held.step(events, batch, now)
        book.rejected += given_up
        if book.opened_in_doubt:
            self._rebase(set(book.clock.changed), now)
        if book.clock.changed:
            self._reclock(set(book.clock.changed))
            if book.waiting_stops:
                rebase_stops(book)
        apply_events(book, events, now)
        book.grow_due()
        # apply_batch keeps each session's partial results (generators, runs,
        # pieces) alive until every session's runs are integrated at once: with
        # the cyclic GC on, that count of live containers triggers collections
        # that rescan every session (~+0.5 us a sample at 10k connectors, ~1 at
        # 100k). They hold no cycles and are freed on return, so it waits.
        with gc_paused():
            apply_batch(book, batch, now, fast_path=self.fast_path)
        check_timeouts(book, now)
        out = emit(book)
        prune(book, now)
        return out

    def _rebase(self, chargers: set[str], now: float) -> None:
        """Open sessions opened while their charger's offset was in doubt, now
        confirmed, move to it (clock_rebase.py); the doubt of a candidate
        dropped is forgotten. A session whose doubt ended without its offset
        (refuted: late data after all) is judged on the receive clock again
        before the step is applied -- as it would have been had it not waited
        on its charger's clock (SessionBook.doubt_lag) -- so the step's fresh
        data does not join a session hours old."""
        book = self._book
        agree = book.config.clock_agree_s
        for charger, opened in list(book.opened_in_doubt.items()):
            live = [(s, d) for s, d in opened if book.sessions.get(s.sid) is s and s.is_open]
            off = book.clock.offset(charger)
            cand = book.clock.in_doubt(charger)
            ended = []  # no longer waiting on their charger's clock
            for s, d in live:
                if charger in chargers and abs(d - off) <= agree:
                    if s.clock_offset != off:
                        rebase(book, s, off)
                elif cand is None or abs(d - cand) > agree:
                    ended.append(s)
            if cand is not None and live:
                # Still in doubt (a candidate replaced by another keeps the
                # sessions of the first: their d tells them apart).
                book.opened_in_doubt[charger] = live
            else:
                del book.opened_in_doubt[charger]
            for s in ended:
                conn = book.index.id(s.charger, s.connector)
                book.due_stale.add(conn)
                close_if_due(book, s, conn, now)

    def _reclock(self, chargers: set[str]) -> None:
        """Open sessions of chargers whose offset changed carry the new one
        (their data from now on is moved by it; docs/sessions.md, clocks) --
        unless the clock was set right: part of the session was still moved,
        so it keeps that offset and its flag."""
        book = self._book
        for sid in book.open.values():
            s = book.sessions[sid]
            if s.charger in chargers and (off := book.clock.offset(s.charger)):
                s.clock_offset = off
                book.dirty.add(sid)

    def open_sessions(self) -> list[dict[str, Any]]:
        """Open sessions for dashboards and rules: id, charger, connector, start,
        energy so far, and the seconds of its integrated power track spent
        charging and not charging (the periods it will be billed by)."""
        res = []
        for sid in self._book.open.values():
            s = self._book.sessions[sid]
            charging_s = idle_s = 0.0
            for piece in s.track.pieces:  # [kind, t0, t1, ...]; kind 1 = charging
                if piece[0] == 1.0:
                    charging_s += piece[2] - piece[1]
                else:
                    idle_s += piece[2] - piece[1]
            res.append(
                {
                    "session_id": sid,
                    "charger_id": s.charger,
                    "connector_id": s.connector,
                    "transaction_id": s.transaction_id,
                    "start": s.start,
                    "energy_wh": register_energy(s.seg_list()) if s.n_reg >= 2 else None,
                    "charging_s": charging_s,
                    "idle_s": idle_s,
                }
            )
        return res

    def clock_offsets(self) -> NDArray[np.float64] | None:
        """Each dense connector's applied clock offset (s, charger time minus
        receipt; read-only), or None while every clock is right: what the
        rollups move rows by (storage/rollups.py). Read through the book on
        every call, so it follows restore, take-over and hand-over."""
        return self._book.clock.applied()

    def drain_rejected(self) -> list[Rejected]:
        out, self._book.rejected = self._book.rejected, []
        return out

    def give_up_held(self) -> None:
        """Reject the messages held for a clock offset still in doubt
        (clock_hold.py): for a replay whose capture ended, as the live service
        does once ``clock_hold_s`` passed."""
        self._book.rejected += self._book.held.give_up()

    def snapshot(self) -> dict[str, Any]:
        """Engine state (open and recently closed sessions) as plain JSON-able data.

        The lists inside share storage with the live sessions (a deep copy of
        every power track, per checkpoint, cost more than the rest of a replay):
        encode the snapshot before the next update, as the ledger does.
        """
        return session_checkpoint.snapshot(self._book)

    def restore(self, state: dict[str, Any]) -> None:
        """Resume from :meth:`snapshot` (dense connector ids are re-derived from the index)."""
        if state.get("version") != 1:
            raise ValueError(f"unknown session snapshot version {state.get('version')!r}")
        # All state starts afresh, as before the split (rejections and fast_path too).
        self.__init__(self.index, self.config)  # type: ignore[misc]
        session_checkpoint.restore(self._book, state)
