"""Transaction, meter-reading and status events: which session they open, adopt,
close or revise (the start and end rules of session_engine's docstring)."""

from __future__ import annotations

__all__ = ["apply_events"]

from chargewatch.model.events import (
    CONNECTOR_STATUSES,
    Event,
    MeterReading,
    StatusEvent,
    TransactionEvent,
)
from chargewatch.sessions.session_book import OCCUPIED, STATUS, TX, SessionBook
from chargewatch.sessions.session_state import SessionState, flag_set
from chargewatch.sessions.session_types import session_id

_STATUS_NAMES = {s: s for s in CONNECTOR_STATUSES}


def apply_events(book: SessionBook, events: list[Event], now: float) -> None:
    """Apply a step's events in time order; those too far in the future are rejected."""
    for ev in sorted(
        (e for e in events if isinstance(e, TransactionEvent | MeterReading | StatusEvent)),
        key=_event_order,
    ):
        if ev.ts > now + book.config.future_tolerance_s:
            book.reject(ev.charger, ev.connector, ev.ts, "future_timestamp", type(ev).__name__)
        elif isinstance(ev, TransactionEvent):
            _on_transaction(book, ev)
        elif isinstance(ev, MeterReading):
            _on_reading(book, ev)
        else:
            _on_status(book, ev)


def _event_order(ev: TransactionEvent | MeterReading | StatusEvent) -> tuple[float, int, int]:
    # Same timestamp: a start before its readings, readings before the stop,
    # and statuses last (a charger reports Available after it stopped).
    if isinstance(ev, TransactionEvent):
        rank = {"start": 0, "update": 2, "stop": 3}[ev.kind]
        return (ev.ts, rank, ev.seq_no or 0)
    if isinstance(ev, MeterReading):
        return (ev.ts, 1 if ev.context == "Transaction.Begin" else 2, 0)
    return (ev.ts, 4, 0)


def _on_transaction(book: SessionBook, ev: TransactionEvent) -> None:
    book.sends[ev.charger] = book.sends.get(ev.charger, 0) | TX
    conn = book.index.id(ev.charger, ev.connector)
    book.due_stale.add(conn)
    cur = book.current(conn)
    known_sid = book.by_tx.get((ev.charger, ev.transaction_id))
    known = book.sessions.get(known_sid) if known_sid else None
    if ev.kind == "start":
        if not _on_start(book, ev, conn, cur, known):
            return
    elif not _on_update_or_stop(book, ev, cur, known):
        return
    target = known or book.sessions.get(book.by_tx.get((ev.charger, ev.transaction_id), ""))
    if target is not None and (ev.offline or ev.recv - ev.ts > book.config.late_after_s):
        target.flag("late_data")


def _on_start(
    book: SessionBook,
    ev: TransactionEvent,
    conn: int,
    cur: SessionState | None,
    known: SessionState | None,
) -> bool:
    """Open the transaction's session; False when the start needs no late-data check."""
    if known is not None:  # re-delivered start
        if known.meter_start is None and ev.meter_wh is not None:
            known.meter_start = ev.meter_wh
            book.point(known, ev.ts, ev.meter_wh)
        return False
    if cur is not None and ev.ts < cur.start:
        _late_start(book, ev, cur)
        return False
    if cur is not None:
        if not cur.transaction_id and cur.n_reg < 2 and cur.track.integral_wh < 1.0:
            # A status-inferred session before the charger showed it sends
            # transactions: the transaction is the session; drop the guess.
            del book.open[conn]
            book.drop(cur.sid)
        elif cur.available_at is not None:
            # Freed before this start: rule 3 applies, whatever the grace.
            book.close(cur, cur.available_at, ev.ts, "available")
        else:
            book.close(cur, cur.last_seen, ev.ts, "next_start")
    s = book.open_session(ev.charger, ev.connector, ev.transaction_id, ev.ts, "transaction")
    s.meter_start = ev.meter_wh
    s.id_tag = ev.id_tag
    s.signed_start = ev.signed_data
    book.point(s, ev.ts, ev.meter_wh)
    return True


def _on_update_or_stop(
    book: SessionBook,
    ev: TransactionEvent,
    cur: SessionState | None,
    known: SessionState | None,
) -> bool:
    """Find (or open, adopt) the transaction's session; False when there is none."""
    s2 = known
    if s2 is None and ev.kind == "update":
        if cur is not None and not cur.transaction_id:
            s2 = cur
            s2.transaction_id = ev.transaction_id
            book.by_tx[(ev.charger, ev.transaction_id)] = s2.sid
        elif cur is None:
            # Updates of a transaction whose start we never saw (e.g. the
            # collector started mid-session): a session from here on.
            s2 = book.open_session(ev.charger, ev.connector, ev.transaction_id, ev.ts, "update")
    if s2 is None:
        book.reject(ev.charger, ev.connector, ev.ts, "stop_without_session", ev.transaction_id)
        return False
    if ev.kind == "stop":
        _on_stop(book, ev, s2)
    book.point(s2, ev.ts, ev.meter_wh)
    s2.last_seen = max(s2.last_seen, ev.ts)
    return True


def _on_stop(book: SessionBook, ev: TransactionEvent, s2: SessionState) -> None:
    if ev.meter_wh is not None:
        s2.meter_stop = ev.meter_wh
    s2.reason = ev.reason
    s2.signed_stop = ev.signed_data
    if s2.is_open:
        book.close(s2, ev.ts, ev.ts, "transaction")
    elif s2.closed_by != "transaction":
        # The real stop after an inferred one (late, or after a timeout).
        s2.stop = ev.ts
        s2.window_end = max(s2.window_end or ev.ts, ev.ts)
        s2.closed_by = "transaction"
        if "inferred_stop" in s2.flags:
            s2.flags = flag_set(tuple(f for f in s2.flags if f != "inferred_stop"))
        book.dirty.add(s2.sid)


def _late_start(book: SessionBook, ev: TransactionEvent, cur: SessionState) -> None:
    """A start older than the connector's current session (queued offline, 2.0.1).

    It belongs before the current session: its window ends where that one
    starts, and it stays inferred-stopped until its own stop arrives.
    """
    s = SessionState(
        sid=session_id(ev.charger, ev.connector, ev.transaction_id, ev.ts),
        charger=ev.charger,
        connector=ev.connector,
        transaction_id=ev.transaction_id,
        start=ev.ts,
        start_source="transaction",
        window_end=cur.start,
        last_seen=ev.ts,
        closed_by="next_start",
        meter_start=ev.meter_wh,
        id_tag=ev.id_tag,
        signed_start=ev.signed_data,
    )
    if s.sid in book.sessions:
        return
    s.flag("inferred_stop")
    s.flag("late_data")
    book.add(s)
    book.point(s, ev.ts, ev.meter_wh)
    book.dirty.add(s.sid)


def _on_reading(book: SessionBook, ev: MeterReading) -> None:
    if ev.context not in ("Transaction.Begin", "Transaction.End"):
        return  # periodic values reach us through the batch
    sid = book.by_tx.get((ev.charger, ev.transaction_id)) if ev.transaction_id else None
    if sid is None:
        sid = book.open.get(book.index.id(ev.charger, ev.connector))
    s = book.sessions.get(sid) if sid else None
    if s is None or ev.energy_wh is None:
        return
    if ev.context == "Transaction.Begin" and s.meter_start is None:
        s.meter_start = ev.energy_wh
    elif ev.context == "Transaction.End" and s.meter_stop is None:
        s.meter_stop = ev.energy_wh
    book.point(s, ev.ts, ev.energy_wh)


def _on_status(book: SessionBook, ev: StatusEvent) -> None:
    sends = book.sends[ev.charger] = book.sends.get(ev.charger, 0) | STATUS
    conn = book.index.id(ev.charger, ev.connector)
    book.due_stale.add(conn)
    cur = book.current(conn)
    prev = book.status.get(conn)
    book.status[conn] = _STATUS_NAMES.get(ev.status, ev.status)  # not a copy per connector
    if not sends & TX and ev.status in OCCUPIED and cur is None:
        cur = book.open_session(ev.charger, ev.connector, "", ev.ts, "status")
    if cur is not None and prev is not None and (prev == "Charging") != (ev.status == "Charging"):
        # Energy starts flowing when the connector enters Charging and stops when
        # it leaves it: a zero-power point there keeps the power integral from
        # smearing a ramp or a stop across a whole (often 5-15 min) sample interval.
        book.anchors.setdefault(cur.sid, []).append(ev.ts)
        book.dirty.add(cur.sid)
    if sends & TX:
        if cur is not None and cur.transaction_id:
            if ev.status == "Available":
                cur.available_at = ev.ts if cur.available_at is None else cur.available_at
            elif ev.status in OCCUPIED:
                cur.available_at = None
        elif cur is None and ev.status == "Available":
            _available_after_timeout(book, conn, ev.ts)
        return
    if ev.status == "Available" and cur is not None and not cur.transaction_id:
        book.close(cur, ev.ts, ev.ts, "status")


def _available_after_timeout(book: SessionBook, conn: int, ts: float) -> None:
    """A session closed by the timeout ends for real when the connector frees up."""
    sids = book.conn_sids(conn)
    if not sids:
        return
    s = book.sessions[sids[-1]]
    if s.closed_by == "timeout" and s.stop is not None and ts >= s.stop:
        s.stop = ts
        s.window_end = max(s.window_end or ts, ts)
        s.closed_by = "available"
        book.dirty.add(s.sid)
