"""Open sessions started while their charger's clock offset was in doubt,
re-based once it is confirmed.

Why: a clock behind looks like late delivery, so its offset takes
``clock_confirm_n`` messages over ``clock_confirm_span_s`` (10 min) to be
confirmed (clock_offsets.py). A session that opened in those minutes was
built on the charger's own clock: five hours behind, it started five hours
early, its first readings a gap away from the corrected ones (flags ``gap``
and ``late_data``) and its tariff hours wrong.

Every message in doubt disagreed with the applied offset and agreed with the
candidate that is now confirmed, so a session opened while its charger had
a candidate was built wholly on the old offset: when the candidate is
confirmed, all its times move by (old offset - new offset), before the step
that confirmed it -- already corrected -- is applied. Its id is derived from
its start, so it takes the id of the corrected start (a replayed start then
finds it). ``late_data`` goes: what set it was late only on the wrong clock.
The record carries the flag ``clock_rebased``. A session that opened before
the candidate (a clock set right during it) keeps its times: its first part
was right on the old offset (docs/sessions.md).

Only open sessions are re-based: one that closed while in doubt was emitted
on the charger's clock.

Stops waiting for their start (session_events._settle_stops) are moved the
same way (:func:`rebase_stops`): one received in doubt agreed with the
candidate, and would otherwise end its session -- re-based by then -- at a
time on the charger's clock, hours before its start (then replaced by its
receipt or the last data, flag ``stop_time_corrected``).
"""

from __future__ import annotations

__all__ = ["rebase", "rebase_stops"]

from dataclasses import replace
from itertools import pairwise

from chargewatch.sessions.energy import S_T0, S_T1
from chargewatch.sessions.session_book import SessionBook
from chargewatch.sessions.session_state import SessionState, bridge_key, flag_set
from chargewatch.sessions.session_types import session_id


def rebase(book: SessionBook, s: SessionState, offset: float) -> None:
    """Move open session ``s`` from its offset to ``offset`` (its charger's, just confirmed)."""
    dt = s.clock_offset - offset
    if s.bridges:  # keyed by the times of the segments around each reset
        segs = s.seg_list()
        moved: dict[str, list[float]] = {}
        for a, b in pairwise(segs):
            key = bridge_key(a, b)
            if key in s.bridges:
                moved[bridge_key([a[0] + dt, a[1], a[2] + dt, a[3]], [b[0] + dt, *b[1:]])] = (
                    s.bridges[key]
                )
        s.bridges = moved or None
    if s.segs is not None:
        for k in range(0, len(s.segs), 4):
            s.segs[k] += dt
            s.segs[k + 2] += dt
    if s.sampled is not None:
        s.sampled[S_T0] += dt
        s.sampled[S_T1] += dt
    s.track.shift(dt)
    s.start += dt
    s.last_seen += dt
    if s.last_growth:  # (0: no growth yet)
        s.last_growth += dt
    if s.available_at is not None:
        s.available_at += dt
    if s.sid in book.anchors:
        book.anchors[s.sid] = [t + dt for t in book.anchors[s.sid]]
    s.clock_offset = offset
    s.flags = flag_set(tuple(f for f in s.flags if f != "late_data"))
    s.flag("clock_rebased")
    # Never emitted (nearly always): the id of its corrected start -- unless a
    # session of that id exists already (then the old id is kept: nothing lost).
    sid = session_id(s.charger, s.connector, s.transaction_id, s.start)
    book.rekey(s, sid if s.revision < 0 and sid not in book.sessions else s.sid)
    book.due_stale.add(book.index.id(s.charger, s.connector))


def rebase_stops(book: SessionBook) -> None:
    """Move the waiting stops of chargers whose offset changed in this step
    (``book.clock.changed``: charger -> offset before) that were received
    while the new offset was in doubt: those whose own time, as sent, agrees
    with it. One that agreed with the old offset (sent before the clock went
    off, or before it was set right) stays as it is."""
    changed = book.clock.changed
    agree = book.config.clock_agree_s
    moved = []
    for ev in book.waiting_stops:
        old = changed.get(ev.charger)
        if old is not None:
            new = book.clock.offset(ev.charger)
            # (ts was moved by the old offset on arrival: ts + old is as sent.)
            if abs(ev.ts + old - ev.recv - new) <= agree:
                moved.append(replace(ev, ts=ev.ts + old - new))
                continue
        moved.append(ev)
    book.waiting_stops = moved
