"""Closing sessions nobody stops (rules 3 and 5: Available, timeout) by
per-connector deadlines, and forgetting closed sessions past retention."""

from __future__ import annotations

__all__ = ["check_timeouts", "close_if_due", "due_at", "prune"]

import math

import numpy as np

from chargewatch.sessions.sample_merge import flush_anchors
from chargewatch.sessions.session_book import OCCUPIED, SessionBook
from chargewatch.sessions.session_state import SessionState


def check_timeouts(book: SessionBook, now: float) -> None:
    stale = book.due_stale
    book.grow_due()  # (events may have added connectors)
    due = book.due
    for conn in stale:
        open_sid = book.open.get(conn)
        due[conn] = math.inf if open_sid is None else due_at(book, book.sessions[open_sid], conn)
    stale.clear()
    # The deadlines only pick the candidates (a second of margin for rounding:
    # `now - a > b` and `now > a + b` can differ in the last bit); the rules
    # below decide, exactly as for every open session.
    for conn in np.flatnonzero(due <= now + 1.0).tolist():
        sid = book.open.get(conn)
        if sid is None:
            due[conn] = math.inf
            continue
        close_if_due(book, book.sessions[sid], conn, now)
    # (A closed session's connector is in dirty's sessions: the next step clears it.)


def close_if_due(book: SessionBook, s: SessionState, conn: int, now: float) -> None:
    """Rules 3 and 5 for open session ``s`` at ``now`` (receive clock), read on
    the clock ``s`` was built on (SessionBook.doubt_lag: a clock behind in doubt)."""
    cfg = book.config
    if book.opened_in_doubt:  # (nearly always empty)
        now += book.doubt_lag(s)
    if s.available_at is not None:
        if now - s.available_at > cfg.available_grace_s:
            book.close(s, s.available_at, max(s.available_at, s.last_seen), "available")
            flush_anchors(book, s)
        return  # else the Available rule decides, once its grace has passed
    active = max(s.start, s.last_growth, s.track.last_active(cfg.charging_threshold_w) or 0)
    if now - active > _timeout_limit(book, s, conn):
        book.close(s, active, max(active, s.last_seen), "timeout")
        flush_anchors(book, s)


def _timeout_limit(book: SessionBook, s: SessionState, conn: int) -> float:
    cfg = book.config
    limit = cfg.power_idle_timeout_s if s.start_source == "power" else cfg.stale_timeout_s
    if book.status.get(conn) in OCCUPIED:
        # The connector still says a car is plugged in: a long idle stay,
        # not a lost stop (residential sessions last 10 days and more).
        limit = max(limit, cfg.occupied_timeout_s)
    return limit


def due_at(book: SessionBook, s: SessionState, conn: int) -> float:
    """When the Available or the timeout rule can first close ``s`` (see check_timeouts)."""
    cfg = book.config
    # (On the receive clock also for a session waiting on its charger's clock
    # in doubt: the doubt only postpones, so this is still the earliest; such
    # a session is looked at every step of its few minutes of doubt.)
    if s.available_at is not None:
        return s.available_at + cfg.available_grace_s
    active = max(s.start, s.last_growth, s.track.last_active(cfg.charging_threshold_w) or 0)
    return active + _timeout_limit(book, s, conn)


def prune(book: SessionBook, now: float) -> None:
    # A sweep over every retained session: cheap, but not on every batch.
    if now - book.last_prune < 600.0:
        return
    book.last_prune = now
    for sid in [
        x
        for x, s in book.sessions.items()
        if not s.is_open and (s.window_end or 0.0) < now - book.config.retain_closed_s
    ]:
        book.drop(sid)
