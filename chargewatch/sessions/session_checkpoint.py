"""The engine's checkpoint (version 1): open and recently closed sessions,
which chargers send transactions or statuses, the last connector statuses, and
the stops still waiting for their start, and the charger clocks found off.

``waiting_stops`` was added within version 1: it is written only when there
are any (so a checkpoint without them is byte-for-byte what older engines
wrote and read) and is optional on restore (older checkpoints have none);
``clock_offsets``, ``clock_held``, ``clock_candidates`` and ``clock_doubt``
likewise."""

from __future__ import annotations

__all__ = ["restore", "snapshot", "stop_from_dict", "stop_to_dict"]

from dataclasses import asdict
from typing import Any

from chargewatch.model.events import SignedReading, TransactionEvent
from chargewatch.sessions.session_book import STATUS, TX, SessionBook
from chargewatch.sessions.session_state import session_from_dict, session_to_dict


def snapshot(book: SessionBook) -> dict[str, Any]:
    """The book as plain JSON-able data (sharing storage with it; see SessionEngine)."""
    pend = book.anchors
    out: dict[str, Any] = {
        "version": 1,
        # Pending anchors go with their session: split_state cuts by session.
        "sessions": [session_to_dict(s, pend.get(s.sid)) for s in book.sessions.values()],
        "open": sorted(book.open.values()),
        "tx_chargers": sorted(c for c, k in book.sends.items() if k & TX),
        "status_chargers": sorted(c for c, k in book.sends.items() if k & STATUS),
        "status": [[*book.index.keys[c], st] for c, st in sorted(book.status.items())],
    }
    if book.waiting_stops:
        # Each names its charger, so split_state moves it with the charger.
        out["waiting_stops"] = [stop_to_dict(ev) for ev in book.waiting_stops]
    offsets = book.clock.offsets()
    if offsets:
        # Likewise only when a clock is off: [[charger, offset s], ...].
        out["clock_offsets"] = [[c, o] for c, o in sorted(offsets.items())]
    candidates = book.clock.candidates()
    if candidates:
        # Offsets in doubt: [[charger, d, n, first recv, last recv], ...], and
        # the open sessions waiting on them to be re-based: [[charger, sid, d]].
        out["clock_candidates"] = candidates
        doubt = [
            [c, s.sid, d]
            for c, opened in sorted(book.opened_in_doubt.items())
            for s, d in opened
            if book.sessions.get(s.sid) is s and s.is_open
        ]
        if doubt:
            out["clock_doubt"] = doubt
    held = book.held.snapshot()
    if held:
        # Messages held for a clock offset in doubt (clock_hold.py), per charger.
        out["clock_held"] = held
    return out


def restore(book: SessionBook, state: dict[str, Any]) -> None:
    """Fill an empty book from :func:`snapshot` (dense ids re-derived from the index)."""
    open_ids = set(state["open"])
    for d in state["sessions"]:
        s = session_from_dict(d)
        book.add(s)
        if d.get("anchors"):
            book.anchors[s.sid] = [float(x) for x in d["anchors"]]
        if s.sid in open_ids:
            book.open[book.index.id(s.charger, s.connector)] = s.sid
    for c in state["tx_chargers"]:
        book.sends[c] = book.sends.get(c, 0) | TX
    for c in state["status_chargers"]:
        book.sends[c] = book.sends.get(c, 0) | STATUS
    book.status = {book.index.id(ch, cn): st for ch, cn, st in state.get("status", [])}
    book.due_stale.update(book.open)
    # Their receive time is kept: late_after_s still counts from the receipt.
    book.waiting_stops = [stop_from_dict(d) for d in state.get("waiting_stops", [])]
    book.clock.restore(
        {c: float(o) for c, o in state.get("clock_offsets", [])},
        state.get("clock_candidates", []),
    )
    for charger, sid, d in state.get("clock_doubt", []):
        if sid in book.sessions:
            book.opened_in_doubt.setdefault(charger, []).append((book.sessions[sid], float(d)))
    book.held.restore(state.get("clock_held", []))  # (after the offsets: it judges on them)


def stop_to_dict(ev: TransactionEvent) -> dict[str, Any]:
    """A waiting stop as JSON-able data (every field, the signed reading nested)."""
    return asdict(ev)


def stop_from_dict(d: dict[str, Any]) -> TransactionEvent:
    """The inverse of :func:`stop_to_dict` (JSON gives lists where the event holds tuples)."""
    fields = dict(d)
    fields["flags"] = tuple(fields.get("flags", ()))
    if fields.get("signed") is not None:
        fields["signed"] = SignedReading(**fields["signed"])
    return TransactionEvent(**fields)
