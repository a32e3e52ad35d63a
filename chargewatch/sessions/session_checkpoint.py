"""The engine's checkpoint (version 1): open and recently closed sessions,
which chargers send transactions or statuses, and the last connector statuses."""

from __future__ import annotations

__all__ = ["restore", "snapshot"]

from typing import Any

from chargewatch.sessions.session_book import STATUS, TX, SessionBook
from chargewatch.sessions.session_state import session_from_dict, session_to_dict


def snapshot(book: SessionBook) -> dict[str, Any]:
    """The book as plain JSON-able data (sharing storage with it; see SessionEngine)."""
    pend = book.anchors
    return {
        "version": 1,
        # Pending anchors go with their session: split_state cuts by session.
        "sessions": [session_to_dict(s, pend.get(s.sid)) for s in book.sessions.values()],
        "open": sorted(book.open.values()),
        "tx_chargers": sorted(c for c, k in book.sends.items() if k & TX),
        "status_chargers": sorted(c for c, k in book.sends.items() if k & STATUS),
        "status": [[*book.index.keys[c], st] for c, st in sorted(book.status.items())],
    }


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
