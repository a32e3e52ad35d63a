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
    unknown_stops: list[TransactionEvent] = []
    for ev in sorted(
        (e for e in events if isinstance(e, TransactionEvent | MeterReading | StatusEvent)),
        key=_event_order,
    ):
        if isinstance(ev, TransactionEvent) and ev.kind == "stop":
            # Even one from the future: a stop's time can be corrected (_stop_time).
            if not _on_transaction(book, ev):
                unknown_stops.append(ev)
        elif ev.ts > now + book.config.future_tolerance_s:
            book.reject(ev.charger, ev.connector, ev.ts, "future_timestamp", type(ev).__name__)
        elif isinstance(ev, TransactionEvent):
            _on_transaction(book, ev)
        elif isinstance(ev, MeterReading):
            _on_reading(book, ev)
        else:
            _on_status(book, ev)
    if unknown_stops:
        _wait(book, unknown_stops)
    if book.waiting_stops:
        _settle_stops(book, now)


def _wait(book: SessionBook, stops: list[TransactionEvent]) -> None:
    """Keep stops for :func:`_settle_stops`, unless the same stop already waits.

    The broker redelivers what was not acknowledged before a crash, and the
    checkpoint may already hold that stop: a second copy would be rejected
    (``stop_without_session``) once the first ended its session. A copy differs
    only in its receive time; the first receipt counts. (A set, not a scan per
    stop: a fleet-wide flood of ``-1`` stops would be quadratic.)"""
    seen = {_stop_key(w) for w in book.waiting_stops}
    for ev in stops:
        key = _stop_key(ev)
        if key not in seen:
            seen.add(key)
            book.waiting_stops.append(ev)


def _stop_key(ev: TransactionEvent) -> tuple[object, ...]:
    # What a copy shares with the original (the decoder derives the rest from it).
    return (ev.charger, ev.connector, ev.ts, ev.transaction_id, ev.meter_wh,
            ev.id_tag, ev.reason, ev.seq_no, ev.signed_data)  # fmt: skip


def _event_order(ev: TransactionEvent | MeterReading | StatusEvent) -> tuple[float, int, int]:
    # Same timestamp: a start before its readings, readings before the stop,
    # and statuses last (a charger reports Available after it stopped).
    if isinstance(ev, TransactionEvent):
        rank = {"start": 0, "update": 2, "stop": 3}[ev.kind]
        return (ev.ts, rank, ev.seq_no or 0)
    if isinstance(ev, MeterReading):
        return (ev.ts, 1 if ev.context == "Transaction.Begin" else 2, 0)
    return (ev.ts, 4, 0)


def _on_transaction(book: SessionBook, ev: TransactionEvent) -> bool:
    """Apply a transaction event; False for a stop that names no known transaction
    (it waits in ``book.waiting_stops`` for :func:`_settle_stops`)."""
    book.sends[ev.charger] = book.sends.get(ev.charger, 0) | TX
    known_sid = book.by_tx.get((ev.charger, ev.transaction_id))
    known = book.sessions.get(known_sid) if known_sid else None
    if ev.kind == "stop" and known is None:
        return False
    conn = book.index.id(ev.charger, ev.connector)
    book.due_stale.add(conn)
    cur = book.current(conn)
    ts = ev.ts
    if ev.kind == "start":
        if not _on_start(book, ev, conn, cur, known):
            return True
    elif known is not None and ev.kind == "stop":
        if known.closed_by == "transaction":
            return True  # re-delivered: nothing changes
        ts = _stop_session(book, ev, known)
    elif not _on_update(book, ev, cur, known):
        return True
    target = known or book.sessions.get(book.by_tx.get((ev.charger, ev.transaction_id), ""))
    if target is not None:
        _flag_late_event(book, ev, ts, target)
    return True


def _flag_late_event(book: SessionBook, ev: TransactionEvent, ts: float, s: SessionState) -> None:
    """``late_data`` for an event that changed ``s``: queued offline, or received
    more than ``late_after_s`` after its (corrected) time."""
    if ev.offline or ev.recv - ts > book.config.late_after_s:
        s.flag("late_data")


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
    if cur is not None and cur.start_source == "status" and _idle_until(book, cur, ev.ts):
        # The plug-in -> Preparing -> authorisation window of this transaction.
        s = _adopt(book, conn, cur, ev)
    else:
        if cur is not None and ev.ts < cur.start:
            _late_start(book, ev, cur)
            return False
        s = _close_for_start(book, ev, conn, cur)
    s.meter_start = ev.meter_wh
    s.id_tag = ev.id_tag
    s.signed_start = ev.signed_data
    s.keep_signed(ev.signed)
    book.point(s, ev.ts, ev.meter_wh)
    return True


def _close_for_start(
    book: SessionBook, ev: TransactionEvent, conn: int, cur: SessionState | None
) -> SessionState:
    """End the connector's current session, if any, and open the transaction's."""
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
    return book.open_session(ev.charger, ev.connector, ev.transaction_id, ev.ts, "transaction")


def _idle_until(book: SessionBook, s: SessionState, ts: float) -> bool:
    """Nothing delivered in ``s`` before ``ts``: neither register growth (linear
    within a segment) nor power. (What came after ``ts`` is the transaction's:
    the decoder may hold a 1.6 start until the CSMS answers.)"""
    grown = 0.0
    for t0, e0, t1, e1 in s.seg_list():
        if t0 < ts:
            frac = 1.0 if t1 <= ts else (ts - t0) / (t1 - t0)
            grown += (e1 - e0) * frac
    return (
        grown <= book.config.register_tolerance_wh
        and s.track.integral_between(s.start, max(ts, s.start)) < 1.0
    )


def _adopt(book: SessionBook, conn: int, cur: SessionState, ev: TransactionEvent) -> SessionState:
    """The status-inferred session ``cur`` becomes the transaction's session.

    It is the same plug-in: what it holds (samples, anchors) carries over, its
    id, start and transaction become the transaction's (as on a charger whose
    Preparing opened nothing), so there is no separate 0 Wh session.
    """
    points = book.points.pop(cur.sid, None)
    anchors = book.anchors.pop(cur.sid, None)
    del book.open[conn]
    book.drop(cur.sid)
    cur.sid = session_id(ev.charger, ev.connector, ev.transaction_id, ev.ts)
    cur.transaction_id = ev.transaction_id
    cur.start = ev.ts
    cur.start_source = "transaction"
    cur.flags = flag_set(tuple(f for f in cur.flags if f != "inferred_start"))
    cur.last_seen = max(cur.last_seen, ev.ts)
    book.add(cur)
    book.open[conn] = cur.sid
    if points:
        book.points[cur.sid] = points
    if anchors:
        book.anchors[cur.sid] = anchors
    book.dirty.add(cur.sid)
    return cur


def _on_update(
    book: SessionBook,
    ev: TransactionEvent,
    cur: SessionState | None,
    known: SessionState | None,
) -> bool:
    """Find (or open, adopt) the transaction's session; False when there is none."""
    s2 = known
    if s2 is None:
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
    book.point(s2, ev.ts, ev.meter_wh)
    s2.last_seen = max(s2.last_seen, ev.ts)
    s2.keep_signed(ev.signed)
    return True


def _stop_session(book: SessionBook, ev: TransactionEvent, s2: SessionState) -> float:
    """Stop ``s2`` (its own stop, or one matched to it); return the stop time used."""
    ts = _stop_time(book, ev, s2)
    meter = ev.meter_wh
    if ts != ev.ts:
        s2.flag("stop_time_corrected")
    if meter is not None and ("stop_matched" in s2.flags or ts != ev.ts):
        # The firmware that sends a broken stop may send a broken meterStop
        # too (go-e: meterStop = meterStart after a charge): one below what
        # the register already showed is discarded, not taken as a reset.
        last = s2.segs[-1] if s2.segs is not None else None
        if last is not None and meter < last - book.config.register_tolerance_wh:
            s2.bad += 1
            meter = None
    _on_stop(book, ev, s2, ts, meter)
    book.point(s2, ts, meter)
    s2.last_seen = max(s2.last_seen, ts)
    return ts


def _stop_time(book: SessionBook, ev: TransactionEvent, s: SessionState) -> float:
    """The stop's own time, unless it cannot be right; then the receive time
    (when the session's data was still arriving then) or the last data seen.

    It cannot be right before the session's start, more than ``late_after_s``
    after it was received, or more than ``late_after_s`` before the register
    last grew or the power last showed charging.
    """
    cfg = book.config
    slack = cfg.late_after_s
    active = max(s.last_growth, s.track.last_active(cfg.charging_threshold_w) or 0.0)
    if s.start <= ev.ts <= ev.recv + slack and ev.ts >= active - slack:
        return ev.ts
    # Sent live, the charger stops and reports at once; after an outage, the
    # last data bounds it.
    live = ev.recv - s.last_seen <= slack or s.last_seen <= s.start
    return max(ev.recv if live else s.last_seen, s.start, active)


def _on_stop(
    book: SessionBook, ev: TransactionEvent, s2: SessionState, ts: float, meter: float | None
) -> None:
    if meter is not None:
        s2.meter_stop = meter
    s2.reason = ev.reason
    s2.signed_stop = ev.signed_data
    s2.keep_signed(ev.signed)
    if s2.is_open:
        book.close(s2, ts, ts, "transaction")
    elif s2.closed_by != "transaction":
        # The real stop after an inferred one (late, or after a timeout).
        s2.stop = ts
        s2.window_end = max(s2.window_end or ts, ts)
        s2.closed_by = "transaction"
        if "inferred_stop" in s2.flags:
            s2.flags = flag_set(tuple(f for f in s2.flags if f != "inferred_stop"))
        book.dirty.add(s2.sid)


def _settle_stops(book: SessionBook, now: float) -> None:
    """Stops that named no known transaction, after the step's starts.

    Firmware sends them (go-e: ``transactionId: -1``), and a stop can reach
    us before its start (the decoder holds a 1.6 start until the CSMS's
    answer). One whose transaction is known by now ends it; the others are
    matched to the open transaction of their charger and
    connector (:func:`_match_stop`); one that matches nothing waits
    ``late_after_s`` for its start, then is rejected.
    """
    waiting, book.waiting_stops = book.waiting_stops, []
    for ev in waiting:
        if _on_transaction(book, ev):
            continue  # the start of the id it names came since: an ordinary stop
        s, why = _match_stop(book, ev)
        waited = now - ev.recv > book.config.late_after_s
        if s is None and why == "" and waited:
            s, why = _match_stop(book, ev, joined=True)
            if s is not None and not _placeholder(ev.transaction_id):
                s.transaction_id = ev.transaction_id
                book.by_tx[(ev.charger, ev.transaction_id)] = s.sid
        if s is not None:
            s.flag("stop_matched")
            book.due_stale.add(book.index.id(s.charger, s.connector))
            _flag_late_event(book, ev, _stop_session(book, ev, s), s)
        elif why == "" and not waited:
            book.waiting_stops.append(ev)
        else:
            future = ev.ts > now + book.config.future_tolerance_s
            reason = why or ("future_timestamp" if future else "stop_without_session")
            book.reject(ev.charger, ev.connector, ev.ts, reason, ev.transaction_id)


def _match_stop(
    book: SessionBook, ev: TransactionEvent, *, joined: bool = False
) -> tuple[SessionState | None, str]:
    """The open transaction a stop with an unknown id ends, or why there is none.

    Candidates: the open sessions of the stop's charger, on its connector
    when the decoder knew it, started by a transaction and before the stop
    was received. A stop that names a real id (not -1 or empty) only ends a
    transaction whose id we never learned. With several candidates the idTag
    decides; still several: ``stop_ambiguous`` (nothing is stopped).

    ``joined``: once the stop has waited ``late_after_s`` for its start in
    vain, the candidates are the status-inferred sessions instead. The
    collector joined that transaction mid-way (it was charging when the
    collector, or the capture, began) and its only sign of it was a status;
    the stop came before any update or reading named the transaction. Before,
    the stop was rejected and the plug-in stayed open, recorded by no one.
    """
    tx = ev.transaction_id
    placeholder = _placeholder(tx)
    sources = ("status",) if joined else ("transaction", "update")
    if ev.connector > 0 and "connector_unknown" not in ev.flags:
        sid = book.open.get(book.index.id(ev.charger, ev.connector))
        opened = [book.sessions[sid]] if sid is not None else []
    else:
        opened = [book.sessions[x] for x in book.open.values()]
    cands = [
        s
        for s in opened
        if s.charger == ev.charger
        and s.start_source in sources
        and s.start <= ev.recv + book.config.late_after_s
        and (placeholder or not s.transaction_id)
    ]
    if len(cands) > 1 and ev.id_tag:
        cands = [s for s in cands if s.id_tag == ev.id_tag] or cands
    if len(cands) > 1:
        return None, "stop_ambiguous"
    return (cands[0], "") if cands else (None, "")


def _placeholder(tx: str) -> bool:
    """A transaction id that names no transaction (go-e sends -1)."""
    return tx in ("", "-1") or tx.startswith("-")


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
        signed=(ev.signed,) if ev.signed is not None else (),
    )
    if s.sid in book.sessions:
        return
    s.flag("inferred_stop")
    s.flag("late_data")
    book.add(s)
    book.point(s, ev.ts, ev.meter_wh)
    book.dirty.add(s.sid)


def _on_reading(book: SessionBook, ev: MeterReading) -> None:
    # A transaction lives on a connector (a 1.6 StopTransaction's transactionData
    # has none: connector 0), and its end reading starts nothing.
    fresh = ev.transaction_id and (ev.charger, ev.transaction_id) not in book.by_tx
    if fresh and ev.connector > 0 and ev.context != "Transaction.End":
        _running_transaction(book, ev)
    if ev.context not in ("Transaction.Begin", "Transaction.End"):
        return  # periodic values reach us through the batch
    sid = book.by_tx.get((ev.charger, ev.transaction_id)) if ev.transaction_id else None
    if sid is None:
        sid = book.open.get(book.index.id(ev.charger, ev.connector))
    s = book.sessions.get(sid) if sid else None
    if s is not None:
        s.keep_signed(ev.signed)  # kept even when it gives no register value
    if s is None or ev.energy_wh is None:
        return
    if s.stop is not None and s.meter_stop is not None and ev.ts > s.stop:
        # Dated after a stop that carried its own end register: outside the
        # session's window. The same register again (a 2.0.1 Ended event's End
        # value stamped a moment after the event, a 1.6 transactionData) says
        # nothing new; another value (a firmware resending a later register, a
        # crafted frame) is rejected: taken as a point, it revised the closed
        # session's register energy by whatever it said.
        if abs(ev.energy_wh - s.meter_stop) > book.config.register_tolerance_wh:
            book.reject(ev.charger, ev.connector, ev.ts, "reading_after_stop", ev.transaction_id)
        return
    if ev.context == "Transaction.Begin" and s.meter_start is None:
        s.meter_start = ev.energy_wh
    elif ev.context == "Transaction.End" and s.meter_stop is None:
        s.meter_stop = ev.energy_wh
    book.point(s, ev.ts, ev.energy_wh)


def _running_transaction(book: SessionBook, ev: MeterReading) -> None:
    """A 1.6 MeterValues naming a transaction whose start we never saw (the
    charger, or the collector, was running before the capture began): that
    transaction's session from here on, as a 2.0.1 Updated event makes one
    (:func:`_on_update`). Without it the readings made a power-inferred
    session that ended when the car paused, and the transaction's stop was
    rejected as ``stop_without_session``."""
    conn = book.index.id(ev.charger, ev.connector)
    cur = book.current(conn)
    if cur is not None and cur.transaction_id:
        return  # the connector's session is another transaction's: not ours to retag
    if any(
        s.stop is not None and s.start <= ev.ts <= s.stop
        for s in map(book.sessions.get, book.conn_sids(conn))
        if s is not None
    ):
        return  # a late reading of a session already closed
    book.sends[ev.charger] = book.sends.get(ev.charger, 0) | TX
    if cur is None:
        book.open_session(ev.charger, ev.connector, ev.transaction_id, ev.ts, "update")
    else:  # a status- or power-inferred session of this plug-in: it is the transaction
        cur.transaction_id = ev.transaction_id
        book.by_tx[(ev.charger, ev.transaction_id)] = cur.sid
        book.dirty.add(cur.sid)


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
