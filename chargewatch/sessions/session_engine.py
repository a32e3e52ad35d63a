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
"""

from __future__ import annotations

__all__ = [
    "QUALITY_FLAGS",
    "Rejected",
    "SessionConfig",
    "SessionEngine",
    "SessionRecord",
    "session_id",
]

import contextlib
import hashlib
import math
import sys
from array import array
from collections.abc import Generator
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from itertools import pairwise
from typing import Any

import numpy as np
from numpy.typing import NDArray

from chargewatch.core.gcpause import gc_paused
from chargewatch.model.batch import FIELD_INDEX, MeterBatch
from chargewatch.model.events import (
    CONNECTOR_STATUSES,
    Event,
    MeterReading,
    StatusEvent,
    TransactionEvent,
)
from chargewatch.model.fleet import ConnectorIndex
from chargewatch.sessions.energy import choose_energy, merge_register, register_energy
from chargewatch.sessions.power_track import (
    HEAD,
    Integrated,
    Period,
    PowerTrack,
    Run,
    build_periods,
    pieces_from_many,
)

#: Every quality flag a record can carry, with its meaning.
QUALITY_FLAGS: dict[str, str] = {
    "inferred_start": "start not from a transaction event (status or power)",
    "inferred_stop": "no stop event; closed by next_start / available / status / timeout",
    "register_reset": "the register dropped (reboot, reset, meter swap); segments summed",
    "register_jump": "the register rose faster than possible (meter swap); not billed",
    "bad_value": "impossible register readings (negative, decreasing without reset) discarded",
    "register_stuck": "register did not grow while power was delivered; power integral used",
    "estimated": "energy from the power integral, no usable register",
    "unit_corrected": "register in kWh labelled Wh; scaled by 1000",
    "gap": "samples missing for longer than gap_s; not bridged",
    "late_data": "data arrived late (queued offline) or out of order",
    "revised": "an earlier record of this session was changed (see revision)",
    "power_register_mismatch": "register and power integral disagree beyond tolerance",
}

_STATUS_NAMES = {s: s for s in CONNECTOR_STATUSES}
_TX, _STATUS = 1, 2  # SessionEngine._sends bits
_OCCUPIED = frozenset({"Preparing", "Charging", "SuspendedEV", "SuspendedEVSE", "Finishing"})
_E = FIELD_INDEX["energy_wh"]
_P = FIELD_INDEX["power_w"]
_I = [FIELD_INDEX["current_l1_a"], FIELD_INDEX["current_l2_a"], FIELD_INDEX["current_l3_a"]]


@dataclass(frozen=True, slots=True)
class SessionConfig:
    """Thresholds of the engine. Times in seconds, power in W, energy in Wh."""

    charging_threshold_w: float = 50.0  # above: charging; at or below: idle
    gap_s: float = 1800.0  # sample gaps longer than this are not bridged
    available_grace_s: float = 300.0  # wait for a stop after Available
    stale_timeout_s: float = 86_400.0  # no growth and no power: close (rule 5)
    power_idle_timeout_s: float = 1_800.0  # same, for power-inferred sessions
    occupied_timeout_s: float = 7 * 86_400.0  # same, while the connector status is occupied
    retain_closed_s: float = 14 * 86_400.0  # closed sessions kept for late data / late stops
    future_tolerance_s: float = 3_600.0  # timestamps further ahead of `now` are rejected
    late_after_s: float = 300.0  # received this long after its timestamp: late
    register_tolerance_wh: float = 1.0
    reset_ratio: float = 0.5
    reset_from_zero_wh: float = 1_000.0  # first reading after a reset counted from 0 up to this
    max_power_w: float = 4_000_000.0  # megawatt charging (MCS); faster register rises are jumps
    mismatch_pct: float = 5.0
    mismatch_min_wh: float = 100.0

    def __post_init__(self) -> None:
        if self.gap_s <= 0 or self.charging_threshold_w < 0:
            raise ValueError("gap_s must be > 0 and charging_threshold_w >= 0")
        if not 0 < self.reset_ratio < 1:
            raise ValueError("reset_ratio must be in (0, 1)")


@dataclass(frozen=True, slots=True)
class Rejected:
    """Input not used by the engine, with a stable reason code."""

    charger: str
    connector: int
    ts: float
    reason: str  # future_timestamp | stop_without_session
    detail: str = ""


@dataclass(frozen=True, slots=True)
class SessionRecord:
    session_id: str
    charger_id: str
    connector_id: int
    site: str
    transaction_id: str
    start: float  # epoch seconds (meter clock)
    stop: float
    energy_wh: float
    energy_source: str  # register | transaction_meter | power_integral
    quality: tuple[str, ...]
    revision: int
    stop_reason: str  # transaction | next_start | available | status | timeout
    idle_s: float
    charging_s: float
    meter_start_wh: float | None
    meter_stop_wh: float | None
    register_wh: float | None
    power_integral_wh: float
    mismatch_wh: float | None
    mismatch_pct: float | None
    id_tag: str
    periods: tuple[Period, ...]
    signed_start: str = ""
    signed_stop: str = ""

    @property
    def duration_s(self) -> float:
        return self.stop - self.start

    def to_dict(self) -> dict[str, Any]:
        """The ``sessions.jsonl`` line of DESIGN.md (times RFC 3339 UTC)."""
        return {
            "session_id": self.session_id,
            "charger_id": self.charger_id,
            "connector_id": self.connector_id,
            "transaction_id": self.transaction_id,
            "start": rfc3339(self.start),
            "stop": rfc3339(self.stop),
            "energy_wh": round(self.energy_wh, 3),
            "energy_source": self.energy_source,
            "quality": list(self.quality),
            "site": self.site,
            "revision": self.revision,
            "stop_reason": self.stop_reason,
            "duration_s": round(self.duration_s, 3),
            "idle_s": round(self.idle_s, 3),
            "charging_s": round(self.charging_s, 3),
            "meter_start_wh": self.meter_start_wh,
            "meter_stop_wh": self.meter_stop_wh,
            "register_wh": _r3(self.register_wh),
            "power_integral_wh": round(self.power_integral_wh, 3),
            "mismatch_wh": _r3(self.mismatch_wh),
            "mismatch_pct": _r3(self.mismatch_pct),
            "id_tag": self.id_tag,
            "periods": [period_dict(p) for p in self.periods],
            "signed_start": self.signed_start,
            "signed_stop": self.signed_stop,
        }


def _r3(x: float | None) -> float | None:
    return None if x is None else round(x, 3)


def rfc3339(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def period_dict(p: Period) -> dict[str, Any]:
    return {
        "kind": p.kind,
        "start": rfc3339(p.start),
        "end": rfc3339(p.end),
        "duration_s": round(p.duration_s, 3),
        "energy_wh": round(p.energy_wh, 3),
        "min_power_w": p.min_power_w,
        "max_power_w": p.max_power_w,
        "max_current_a": p.max_current_a,
    }


def session_id(charger: str, connector: int, transaction_id: str, start: float) -> str:
    """Deterministic id: replaying a capture twice gives the same ids (idempotent ledger)."""
    key = f"{charger}\x1f{connector}\x1f{transaction_id}\x1f{start:.3f}"
    return hashlib.sha256(key.encode()).hexdigest()[:24]


# Flag tuples shared by all sessions that hold the same flags (a 1-tuple is 48 B
# per session otherwise); the flags are QUALITY_FLAGS' names, so few combinations.
_FLAG_SETS: dict[tuple[str, ...], tuple[str, ...]] = {(): ()}


def _flag_set(flags: tuple[str, ...]) -> tuple[str, ...]:
    got = _FLAG_SETS.get(flags)
    if got is None:
        flags = tuple(sys.intern(f) for f in flags)
        got = _FLAG_SETS[flags] = flags
    return got


@dataclass(slots=True)
class _Session:
    sid: str
    charger: str
    connector: int
    transaction_id: str
    start: float
    start_source: str  # transaction | status | power
    window_end: float | None = None  # samples up to here belong to us; None while open
    stop: float | None = None
    closed_by: str = ""
    # A tuple: () is shared, and most sessions hold at most one flag (48 B; a list 72-88 B).
    flags: tuple[str, ...] = ()
    meter_start: float | None = None
    meter_stop: float | None = None
    id_tag: str = ""
    reason: str = ""
    signed_start: str = ""
    signed_stop: str = ""
    # Register segments back to back, [t0, e0, t1, e1] each (see energy.py): one
    # array('d') of 4 doubles is 96 B where a list of one 4-float list took ~250.
    # None until the first reading.
    segs: array[float] | None = None
    n_reg: int = 0
    resets: int = 0
    jumps: int = 0
    bad: int = 0
    track: PowerTrack = field(default_factory=PowerTrack)
    last_seen: float = 0.0
    last_growth: float = 0.0
    available_at: float | None = None
    # Power samples at the two ends of each reset interval ("t1:t0" of the
    # segments around it), as trapezoid and peak-power energy: the pieces are
    # too coarse for it.
    # [trapezoid, peak] Wh; None while there is no reset (nearly always: {} is 64 B)
    bridges: dict[str, list[float]] | None = None
    revision: int = -1  # -1: never emitted
    fingerprint: str = ""

    def flag(self, name: str) -> None:
        if name not in self.flags:
            self.flags = _flag_set((*self.flags, name))

    @property
    def is_open(self) -> bool:
        return self.window_end is None

    def seg_list(self) -> list[list[float]]:
        """The register segments as the lists energy.py works on (copies)."""
        f = self.segs
        return [] if f is None else [f[k : k + 4].tolist() for k in range(0, len(f), 4)]

    def set_segs(self, segs: list[list[float]]) -> None:
        self.segs = array("d", [x for seg in segs for x in seg]) if segs else None

    @property
    def n_segs(self) -> int:
        return 0 if self.segs is None else len(self.segs) // 4


def _session_from(d: dict[str, Any]) -> _Session:
    d = dict(d)
    d.pop("anchors", None)  # the engine's, not the session's (see SessionEngine.restore)
    tr = d.pop("track")
    track = PowerTrack(
        first=_nan_sample(tr["first"]),
        last=_nan_sample(tr["last"]),
        pieces=[array("d", _nan_list(x) or []) for x in tr["pieces"]],
        gaps=[_nan_list(x) or [] for x in tr["gaps"]],
        soft=[_nan_list(x) or [] for x in tr.get("soft", [])],
        spacing=float(tr.get("spacing", 0.0)),
        dts=[float(x) for x in tr.get("dts", [])],
    )
    d["flags"] = _flag_set(tuple(d.get("flags", ())))
    segs = d.pop("segs", [])
    d["bridges"] = d.get("bridges") or None
    s = _Session(track=track, **d)
    s.set_segs([[float(x) for x in seg] for seg in segs])
    return s


_SESSION_FIELDS = tuple(f.name for f in fields(_Session) if f.name != "track")
# The checkpoint's names, in the order version 1 wrote them (PowerTrack's fields then).
_TRACK_FIELDS = ("first", "last", "pieces", "gaps", "soft", "spacing", "dts")


def _session_dict(s: _Session, anchors: list[float] | None = None) -> dict[str, Any]:
    """``asdict`` without its deep copy (see :meth:`SessionEngine.snapshot`)."""
    d = {name: getattr(s, name) for name in _SESSION_FIELDS}
    if anchors:
        # Only while some wait: version 1 had no such key, and readers default it.
        d["anchors"] = list(anchors)
    # The checkpoint keeps version 1's shapes: segments as lists, bridges as a dict.
    d["segs"] = s.seg_list()
    d["bridges"] = s.bridges or {}
    d["track"] = {name: getattr(s.track, name) for name in _TRACK_FIELDS}
    # JSON has no array('d'):
    d["track"]["pieces"] = [pc.tolist() for pc in s.track.pieces]
    for end in ("first", "last"):
        got = getattr(s.track, end)
        d["track"][end] = None if got is None else got.tolist()
    return d


def _nan_list(x: list[Any] | None) -> list[float] | None:
    # JSON encoders write NaN as null; the state uses NaN for "unknown".
    return None if x is None else [math.nan if v is None else float(v) for v in x]


def _nan_sample(x: list[Any] | None) -> array[float] | None:
    got = _nan_list(x)
    return None if got is None else array("d", got)


class SessionEngine:
    """Builds billed sessions from events and meter batches. Not thread-safe."""

    def __init__(self, index: ConnectorIndex, config: SessionConfig | None = None) -> None:
        self.index = index
        self.config = config or SessionConfig()
        self._sessions: dict[str, _Session] = {}  # open and recently closed
        self._open: dict[int, str] = {}  # dense connector -> open session id
        # dense connector -> session ids by start: the id itself when there is one
        # (nearly always; a 1-tuple is 48 B more per connector), else a tuple
        self._by_conn: dict[int, str | tuple[str, ...]] = {}
        self._by_tx: dict[tuple[str, str], str] = {}  # (charger, transaction id) -> session id
        # Charger -> what it has sent: _TX (transaction events) | _STATUS (statuses).
        # One dict, not two sets: a set's table is ~4x its size (~40-50 B a connector).
        self._sends: dict[str, int] = {}
        self._pending: dict[str, list[tuple[float, float]]] = {}  # event-borne register points
        # Zero-power anchors from statuses, kept across steps until they can be
        # merged without getting ahead of the meter (see _take_anchors).
        self._pending_p: dict[str, list[float]] = {}
        self._status: dict[int, str] = {}  # last connector status
        self._dirty: set[str] = set()
        # Per dense connector: the earliest time its open session's timeout rules
        # can close it (inf: no open session), so a step looks only at sessions
        # that are due or changed, not at every open one. Recomputed for the
        # connectors in _due_stale (events, sessions through _apply) and by the
        # fast tail for the sessions it extends.
        self._due = np.full(0, math.inf)
        self._due_stale: set[int] = set()
        self._last_prune = -math.inf
        self.fast_path = (
            True  # the vectorised live path; False only to test it against the general one
        )
        self.rejected: list[Rejected] = []

    # ------------------------------------------------------------------ public

    def update(self, batch: MeterBatch, events: list[Event], now: float) -> list[SessionRecord]:
        """Apply one step; return the records of sessions closed or revised in it."""
        for ev in sorted(
            (e for e in events if isinstance(e, TransactionEvent | MeterReading | StatusEvent)),
            key=_event_order,
        ):
            if ev.ts > now + self.config.future_tolerance_s:
                self._reject(ev.charger, ev.connector, ev.ts, "future_timestamp", type(ev).__name__)
            elif isinstance(ev, TransactionEvent):
                self._on_transaction(ev)
            elif isinstance(ev, MeterReading):
                self._on_reading(ev)
            else:
                self._on_status(ev)
        self._grow_due()
        # _apply_batch keeps each session's partial results (generators, runs,
        # pieces) alive until every session's runs are integrated at once: with
        # the cyclic GC on, that count of live containers triggers collections
        # that rescan every session (~+0.5 us a sample at 10k connectors, ~1 at
        # 100k). They hold no cycles and are freed on return, so it waits.
        with gc_paused():
            self._apply_batch(batch, now)
        self._check_timeouts(now)
        out = self._emit()
        self._prune(now)
        return out

    def open_sessions(self) -> list[dict[str, Any]]:
        """Open sessions for dashboards: id, charger, connector, start, energy so far."""
        res = []
        for sid in self._open.values():
            s = self._sessions[sid]
            res.append(
                {
                    "session_id": sid,
                    "charger_id": s.charger,
                    "connector_id": s.connector,
                    "transaction_id": s.transaction_id,
                    "start": s.start,
                    "energy_wh": register_energy(s.seg_list()) if s.n_reg >= 2 else None,
                }
            )
        return res

    def drain_rejected(self) -> list[Rejected]:
        out, self.rejected = self.rejected, []
        return out

    def snapshot(self) -> dict[str, Any]:
        """Engine state (open and recently closed sessions) as plain JSON-able data.

        The lists inside share storage with the live sessions (a deep copy of
        every power track, per checkpoint, cost more than the rest of a replay):
        encode the snapshot before the next update, as the ledger does.
        """
        pend = self._pending_p
        return {
            "version": 1,
            # Pending anchors go with their session: split_state cuts by session.
            "sessions": [_session_dict(s, pend.get(s.sid)) for s in self._sessions.values()],
            "open": sorted(self._open.values()),
            "tx_chargers": sorted(c for c, k in self._sends.items() if k & _TX),
            "status_chargers": sorted(c for c, k in self._sends.items() if k & _STATUS),
            "status": [[*self.index.keys[c], st] for c, st in sorted(self._status.items())],
        }

    def restore(self, state: dict[str, Any]) -> None:
        """Resume from :meth:`snapshot` (dense connector ids are re-derived from the index)."""
        if state.get("version") != 1:
            raise ValueError(f"unknown session snapshot version {state.get('version')!r}")
        self.__init__(self.index, self.config)  # type: ignore[misc]  # reset all state
        open_ids = set(state["open"])
        for d in state["sessions"]:
            s = _session_from(d)
            self._add(s)
            if d.get("anchors"):
                self._pending_p[s.sid] = [float(x) for x in d["anchors"]]
            if s.sid in open_ids:
                self._open[self.index.id(s.charger, s.connector)] = s.sid
        for c in state["tx_chargers"]:
            self._sends[c] = self._sends.get(c, 0) | _TX
        for c in state["status_chargers"]:
            self._sends[c] = self._sends.get(c, 0) | _STATUS
        self._status = {self.index.id(ch, cn): st for ch, cn, st in state.get("status", [])}
        self._due_stale.update(self._open)

    # ------------------------------------------------------------------ events

    def _reject(self, charger: str, connector: int, ts: float, reason: str, detail: str) -> None:
        self.rejected.append(Rejected(charger, connector, ts, reason, detail))

    def _add(self, s: _Session) -> None:
        self._sessions[s.sid] = s
        conn = self.index.id(s.charger, s.connector)
        self._set_by_conn(
            conn, sorted((*self._conn_sids(conn), s.sid), key=lambda x: self._sessions[x].start)
        )
        if s.transaction_id:
            self._by_tx[(s.charger, s.transaction_id)] = s.sid

    def _conn_sids(self, conn: int) -> tuple[str, ...]:
        got = self._by_conn.get(conn, ())
        return (got,) if isinstance(got, str) else got

    def _set_by_conn(self, conn: int, sids: list[str]) -> None:
        self._by_conn[conn] = sids[0] if len(sids) == 1 else tuple(sids)

    def _drop(self, sid: str) -> None:
        s = self._sessions.pop(sid)
        conn = self.index.id(s.charger, s.connector)
        left = list(self._conn_sids(conn))
        left.remove(sid)
        self._set_by_conn(conn, left)
        if s.transaction_id and self._by_tx.get((s.charger, s.transaction_id)) == sid:
            del self._by_tx[(s.charger, s.transaction_id)]
        self._pending.pop(sid, None)
        self._pending_p.pop(sid, None)
        self._dirty.discard(sid)

    def _open_session(
        self, charger: str, connector: int, tx: str, start: float, source: str
    ) -> _Session:
        s = _Session(
            sid=session_id(charger, connector, tx, start),
            charger=charger,
            connector=connector,
            transaction_id=tx,
            start=start,
            start_source=source,
            last_seen=start,
        )
        if source != "transaction":
            s.flag("inferred_start")
        if s.sid in self._sessions:  # the same start seen again (replayed input)
            return self._sessions[s.sid]
        self._add(s)
        self._open[self.index.id(charger, connector)] = s.sid
        return s

    def _close(self, s: _Session, stop: float, window_end: float, by: str) -> None:
        s.stop = max(stop, s.start)
        s.window_end = max(window_end, s.stop)
        s.closed_by = by
        if by != "transaction":
            s.flag("inferred_stop")
        conn = self.index.id(s.charger, s.connector)
        if self._open.get(conn) == s.sid:
            del self._open[conn]
        self._dirty.add(s.sid)

    def _point(self, s: _Session, ts: float, wh: float | None) -> None:
        if wh is not None and math.isfinite(wh):
            self._pending.setdefault(s.sid, []).append((ts, wh))
            self._dirty.add(s.sid)

    def _current(self, conn: int) -> _Session | None:
        sid = self._open.get(conn)
        return self._sessions[sid] if sid is not None else None

    def _on_transaction(self, ev: TransactionEvent) -> None:
        self._sends[ev.charger] = self._sends.get(ev.charger, 0) | _TX
        conn = self.index.id(ev.charger, ev.connector)
        self._due_stale.add(conn)
        cur = self._current(conn)
        known_sid = self._by_tx.get((ev.charger, ev.transaction_id))
        known = self._sessions.get(known_sid) if known_sid else None
        if ev.kind == "start":
            if known is not None:  # re-delivered start
                if known.meter_start is None and ev.meter_wh is not None:
                    known.meter_start = ev.meter_wh
                    self._point(known, ev.ts, ev.meter_wh)
                return
            if cur is not None and ev.ts < cur.start:
                self._late_start(ev, cur)
                return
            if cur is not None:
                if not cur.transaction_id and cur.n_reg < 2 and cur.track.integral_wh < 1.0:
                    # A status-inferred session before the charger showed it sends
                    # transactions: the transaction is the session; drop the guess.
                    del self._open[conn]
                    self._drop(cur.sid)
                elif cur.available_at is not None:
                    # Freed before this start: rule 3 applies, whatever the grace.
                    self._close(cur, cur.available_at, ev.ts, "available")
                else:
                    self._close(cur, cur.last_seen, ev.ts, "next_start")
            s = self._open_session(
                ev.charger, ev.connector, ev.transaction_id, ev.ts, "transaction"
            )
            s.meter_start = ev.meter_wh
            s.id_tag = ev.id_tag
            s.signed_start = ev.signed_data
            self._point(s, ev.ts, ev.meter_wh)
        else:
            s2 = known
            if s2 is None and ev.kind == "update":
                if cur is not None and not cur.transaction_id:
                    s2 = cur
                    s2.transaction_id = ev.transaction_id
                    self._by_tx[(ev.charger, ev.transaction_id)] = s2.sid
                elif cur is None:
                    # Updates of a transaction whose start we never saw (e.g. the
                    # collector started mid-session): a session from here on.
                    s2 = self._open_session(
                        ev.charger, ev.connector, ev.transaction_id, ev.ts, "update"
                    )
            if s2 is None:
                self._reject(
                    ev.charger, ev.connector, ev.ts, "stop_without_session", ev.transaction_id
                )
                return
            if ev.kind == "stop":
                if ev.meter_wh is not None:
                    s2.meter_stop = ev.meter_wh
                s2.reason = ev.reason
                s2.signed_stop = ev.signed_data
                if s2.is_open:
                    self._close(s2, ev.ts, ev.ts, "transaction")
                elif s2.closed_by != "transaction":
                    # The real stop after an inferred one (late, or after a timeout).
                    s2.stop = ev.ts
                    s2.window_end = max(s2.window_end or ev.ts, ev.ts)
                    s2.closed_by = "transaction"
                    if "inferred_stop" in s2.flags:
                        s2.flags = _flag_set(tuple(f for f in s2.flags if f != "inferred_stop"))
                    self._dirty.add(s2.sid)
            self._point(s2, ev.ts, ev.meter_wh)
            s2.last_seen = max(s2.last_seen, ev.ts)
        target = known or self._sessions.get(self._by_tx.get((ev.charger, ev.transaction_id), ""))
        if target is not None and (ev.offline or ev.recv - ev.ts > self.config.late_after_s):
            target.flag("late_data")

    def _late_start(self, ev: TransactionEvent, cur: _Session) -> None:
        """A start older than the connector's current session (queued offline, 2.0.1).

        It belongs before the current session: its window ends where that one
        starts, and it stays inferred-stopped until its own stop arrives.
        """
        s = _Session(
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
        if s.sid in self._sessions:
            return
        s.flag("inferred_stop")
        s.flag("late_data")
        self._add(s)
        self._point(s, ev.ts, ev.meter_wh)
        self._dirty.add(s.sid)

    def _on_reading(self, ev: MeterReading) -> None:
        if ev.context not in ("Transaction.Begin", "Transaction.End"):
            return  # periodic values reach us through the batch
        sid = self._by_tx.get((ev.charger, ev.transaction_id)) if ev.transaction_id else None
        if sid is None:
            sid = self._open.get(self.index.id(ev.charger, ev.connector))
        s = self._sessions.get(sid) if sid else None
        if s is None or ev.energy_wh is None:
            return
        if ev.context == "Transaction.Begin" and s.meter_start is None:
            s.meter_start = ev.energy_wh
        elif ev.context == "Transaction.End" and s.meter_stop is None:
            s.meter_stop = ev.energy_wh
        self._point(s, ev.ts, ev.energy_wh)

    def _on_status(self, ev: StatusEvent) -> None:
        sends = self._sends[ev.charger] = self._sends.get(ev.charger, 0) | _STATUS
        conn = self.index.id(ev.charger, ev.connector)
        self._due_stale.add(conn)
        cur = self._current(conn)
        prev = self._status.get(conn)
        self._status[conn] = _STATUS_NAMES.get(ev.status, ev.status)  # not a copy per connector
        if not sends & _TX and ev.status in _OCCUPIED and cur is None:
            cur = self._open_session(ev.charger, ev.connector, "", ev.ts, "status")
        if (
            cur is not None
            and prev is not None
            and (prev == "Charging") != (ev.status == "Charging")
        ):
            # Energy starts flowing when the connector enters Charging and stops when
            # it leaves it: a zero-power point there keeps the power integral from
            # smearing a ramp or a stop across a whole (often 5-15 min) sample interval.
            self._pending_p.setdefault(cur.sid, []).append(ev.ts)
            self._dirty.add(cur.sid)
        if sends & _TX:
            if cur is not None and cur.transaction_id:
                if ev.status == "Available":
                    cur.available_at = ev.ts if cur.available_at is None else cur.available_at
                elif ev.status in _OCCUPIED:
                    cur.available_at = None
            elif cur is None and ev.status == "Available":
                self._available_after_timeout(conn, ev.ts)
            return
        if ev.status == "Available" and cur is not None and not cur.transaction_id:
            self._close(cur, ev.ts, ev.ts, "status")

    def _available_after_timeout(self, conn: int, ts: float) -> None:
        """A session closed by the timeout ends for real when the connector frees up."""
        sids = self._conn_sids(conn)
        if not sids:
            return
        s = self._sessions[sids[-1]]
        if s.closed_by == "timeout" and s.stop is not None and ts >= s.stop:
            s.stop = ts
            s.window_end = max(s.window_end or ts, ts)
            s.closed_by = "available"
            self._dirty.add(s.sid)

    # ------------------------------------------------------------------ samples

    def _apply_batch(self, batch: MeterBatch, now: float) -> None:
        cfg = self.config
        touched: set[str] = set(self._pending) | set(self._pending_p)
        chunks: dict[str, list[NDArray[np.intp]]] = {}
        n = len(batch)
        order = np.empty(0, np.intp)
        # Current summed over phases, for every row at once (per session it cost
        # ~15 us of numpy overhead; rows are independent, so the values are the same).
        amps = _amps(batch.values)
        if n:
            ok = np.isfinite(batch.ts)
            future = ok & (batch.ts > now + cfg.future_tolerance_s)
            for r in np.flatnonzero(future).tolist():
                ch, cn = self.index.keys[int(batch.conn[r])]
                self._reject(ch, cn, float(batch.ts[r]), "future_timestamp", "meter sample")
            ok &= ~future
            order = np.lexsort((batch.ts, batch.conn))
            order = order[ok[order]]
        conns = batch.conn[order]
        ts = batch.ts[order]
        if order.size:
            bounds = np.flatnonzero(np.diff(conns)) + 1
            starts = np.concatenate(([0], bounds))
            ends = np.concatenate((bounds, [order.size]))
            done = (
                self._fast_tail(batch, amps, order, starts, ends, touched)
                if self.fast_path
                else np.zeros(starts.size, np.bool_)
            )
            # The rest (late rows, resets, state changes, no open session): one
            # iteration per connector; its samples stay vectorised.
            for g in np.flatnonzero(~done).tolist():
                a, b = int(starts[g]), int(ends[g])
                self._route(int(conns[a]), order[a:b], ts[a:b], batch, chunks)
        touched |= set(chunks)
        # Every session's _apply runs up to its power-track merge; the runs they
        # need integrated go through pieces_from_many at once; then each finishes.
        waiting: list[tuple[Generator[list[Run], list[Integrated], None], int]] = []
        runs: list[Run] = []
        for sid in touched:
            s = self._sessions.get(sid)
            if s is None:
                continue
            rows = np.concatenate(chunks[sid]) if sid in chunks else np.empty(0, np.intp)
            steps = self._apply(s, batch, amps, rows, now)
            with contextlib.suppress(StopIteration):
                got = next(steps)
                waiting.append((steps, len(got)))
                runs += got
        integrated = pieces_from_many(runs, threshold_w=cfg.charging_threshold_w, gap_s=cfg.gap_s)
        k = 0
        for steps, n_runs in waiting:
            with contextlib.suppress(StopIteration):
                steps.send(integrated[k : k + n_runs])
                raise AssertionError("_apply yields once")
            k += n_runs
        self._pending.clear()

    def _fast_tail(
        self,
        batch: MeterBatch,
        amps_all: NDArray[np.float64],
        order: NDArray[np.intp],
        starts: NDArray[np.intp],
        ends: NDArray[np.intp],
        busy: set[str],
    ) -> NDArray[np.bool_]:
        """The live case for every connector at once; return which groups it handled.

        A group qualifies when it continues its open session in order: after the
        last register reading and power sample, register and power in every row,
        the register monotonic, no charging/idle change, no interval longer than
        the refinable spacing, nothing received late, no event-borne points
        pending. Then segment end, power integral and the last piece are
        updated from per-group reductions (np.add.reduceat and friends): no
        Python work per sample, a few scalar writes per connector.
        """
        cfg = self.config
        thr = cfg.charging_threshold_w
        n_groups = starts.size
        done = np.zeros(n_groups, np.bool_)
        sess: list[_Session | None] = []
        nan = math.nan
        no_prev = (nan, nan, nan, nan, nan, nan, nan, nan)
        # Per group: [session start, last power t, p, i, seg t1, seg e1, soft spacing
        # limit, last piece's max current] (NaN: the group is not for this path).
        # Into an array('d'), not a list of tuples: tuples kept alive count toward
        # the cyclic GC's thresholds (a list of 25k of them triggers collections).
        rows: array[float] = array("d")
        open_get, sessions = self._open.get, self._sessions
        conn_list = batch.conn[order[starts]].tolist()
        for c in conn_list:
            sid = open_get(c)
            s = sessions[sid] if sid is not None else None
            if s is None or sid in busy or s.segs is None:
                sess.append(None)
                rows.extend(no_prev)
                continue
            en = s.track.a
            # No sample yet (NaN time), or the spacing not known yet (0).
            if en is None or en[3] != en[3] or not en[6]:
                sess.append(None)
                rows.extend(no_prev)
                continue
            sg = s.segs
            rows.extend(
                (
                    s.start,
                    en[3],
                    en[4],
                    en[5],
                    sg[-2],
                    sg[-1],
                    2.5 * en[6],
                    en[-1] if len(en) > HEAD else nan,
                )
            )
            sess.append(s)
        prev = np.frombuffer(rows, np.float64).reshape(n_groups, 8)
        ok_g = ~np.isnan(prev[:, 0])
        if not ok_g.any():
            return done
        gid = np.repeat(np.arange(n_groups), ends - starts)
        t = batch.ts[order]
        vals = batch.values[order]
        e = vals[:, _E]
        p = vals[:, _P]
        amps = amps_all[order]
        first_row = np.zeros(t.size, np.bool_)
        first_row[starts] = True
        # Previous sample of each row: the row before it, or the track's last sample.
        pt = np.where(first_row, prev[gid, 1], np.roll(t, 1))
        pp = np.where(first_row, prev[gid, 2], np.roll(p, 1))
        pi = np.where(first_row, prev[gid, 3], np.roll(amps, 1))
        pe = np.where(first_row, prev[gid, 5], np.roll(e, 1))
        dt = t - pt
        kind = p > thr
        row_ok = (
            np.isfinite(e)
            & np.isfinite(p)
            & (dt > 0)
            & (dt <= prev[gid, 6])
            & (t > prev[gid, 4])
            & (t >= prev[gid, 0])
            & (e >= pe - cfg.register_tolerance_wh)
            & (e - pe <= cfg.max_power_w * dt / 3600.0 + 1000.0)
            & (kind == (pp > thr))
            & (batch.recv[order] - t <= cfg.late_after_s)
        )
        ok_g &= np.logical_and.reduceat(row_ok, starts)
        if not ok_g.any():
            return done
        wh = np.add.reduceat((p + pp) * 0.5 * dt / 3600.0, starts)
        lo = np.minimum.reduceat(np.minimum(p, pp), starts)
        hi = np.maximum.reduceat(np.maximum(p, pp), starts)
        imax = np.fmax.reduceat(np.fmax(amps, pi), starts)
        # The last piece's max current if the group extends it (np.fmax, as there).
        imax_ext = np.fmax(prev[:, 7], imax)
        last = ends - 1
        e_last = e[last]
        # When the register reached its final value in the group (growth time).
        reached = e >= e_last[gid] - cfg.register_tolerance_wh
        first_reach = np.minimum.reduceat(np.where(reached, np.arange(t.size), t.size), starts)
        # Plain floats from here: the loop below is per connector, and numpy
        # scalars cost ~10x a float in Python arithmetic.
        sel = np.flatnonzero(ok_g)
        cols = zip(
            sel.tolist(),
            t[last[sel]].tolist(),
            e_last[sel].tolist(),
            t[first_reach[sel]].tolist(),
            (ends[sel] - starts[sel]).tolist(),
            wh[sel].tolist(),
            lo[sel].tolist(),
            hi[sel].tolist(),
            imax[sel].tolist(),
            imax_ext[sel].tolist(),
            p[last[sel]].tolist(),
            amps[last[sel]].tolist(),
            strict=True,
        )
        tol = cfg.register_tolerance_wh
        due = self._due
        for g, t_last, e1, t_reach, n, wh_g, lo_g, hi_g, im_g, im_ext, p_last, a_last in cols:
            s2 = sess[g]
            assert s2 is not None and s2.segs is not None
            tr = s2.track
            en = tr.a  # [first t, p, i, last t, p, i, spacing, *pieces]
            assert en is not None
            sg = s2.segs
            if e1 > sg[-1] + tol:
                s2.last_growth = max(s2.last_growth, t_reach)
            sg[-2] = t_last
            sg[-1] = max(sg[-1], e1)
            s2.n_reg += n
            k = 1.0 if en[4] > thr else 0.0
            pc = None
            if len(en) > HEAD and en[-7] == k and en[-5] == en[3]:
                en[-5] = t_last
                en[-4] += wh_g
                en[-3] = min(en[-3], lo_g)
                en[-2] = max(en[-2], hi_g)
                en[-1] = im_ext
            else:
                pc = array("d", (k, en[3], t_last, wh_g, lo_g, hi_g, im_g))
            en[3] = t_last
            en[4] = p_last
            en[5] = a_last
            if pc is not None:
                tr.a = en + pc
            s2.last_seen = max(s2.last_seen, t_last)
            # The session stays open: nothing for _emit (_dirty), but its deadline moves.
            c = conn_list[g]
            due[c] = self._due_at(s2, c)
        done[ok_g] = True
        return done

    def _route(
        self,
        conn: int,
        rows: NDArray[np.intp],
        ts: NDArray[np.float64],
        batch: MeterBatch,
        chunks: dict[str, list[NDArray[np.intp]]],
    ) -> None:
        sids = self._conn_sids(conn)
        if len(sids) == 1:
            # (The usual case, without the searchsorted and unique below.)
            one = self._sessions[sids[0]]
            end = math.inf if one.is_open else (one.window_end or 0.0)
            inwin = (ts >= one.start) & (ts <= end)
            if inwin.any():
                chunks.setdefault(sids[0], []).append(rows[inwin])
            orphan = ~inwin
        elif sids:
            ss = [self._sessions[x] for x in sids]
            w0 = np.array([s.start for s in ss])
            w1 = np.array([math.inf if s.is_open else (s.window_end or 0.0) for s in ss])
            k = np.searchsorted(w0, ts, side="right") - 1
            inwin = (k >= 0) & (ts <= w1[np.maximum(k, 0)])
            for j in np.unique(k[inwin]).tolist():
                chunks.setdefault(sids[j], []).append(rows[inwin & (k == j)])
            orphan = ~inwin
        else:
            orphan = np.ones(ts.size, np.bool_)
        charger, connector = self.index.keys[conn]
        if not orphan.any() or conn in self._open or charger in self._sends:
            return
        # Neither transactions nor statuses from this charger: power says when it charges.
        p = batch.values[rows, _P]
        hot = orphan & (p > self.config.charging_threshold_w)
        if hot.any():
            first = int(np.flatnonzero(hot)[0])
            s = self._open_session(charger, connector, "", float(ts[first]), "power")
            take = orphan & (ts >= ts[first])
            chunks.setdefault(s.sid, []).append(rows[take])

    def _take_anchors(
        self, s: _Session, batch: MeterBatch, rows: NDArray[np.intp], now: float
    ) -> list[float]:
        """The session's pending anchors to merge in this step; the rest stay pending.

        Status and meter samples come on different topics, and a meter batch
        carries up to a minute of samples after the fact, so a status often
        reaches us before the samples leading up to it. Merged then, the anchor
        would become the track's last point: those samples would land before it
        and count as late (or, at its timestamp, be ignored for it). So an anchor
        waits until a real power sample at or past it arrives (it is then merged
        with those samples, and a real sample at its time wins), or until samples
        up to it could only arrive late anyway (``late_after_s``), or until the
        session closes (its record should not wait).
        """
        anchors = self._pending_p.get(s.sid)
        if not anchors:
            return []
        if s.is_open:
            last = s.track.last
            reach = -math.inf if last is None else last[0]
            if rows.size:
                tr = batch.ts[rows][np.isfinite(batch.values[rows, _P])]
                if tr.size:
                    reach = max(reach, float(tr.max()))
            after = now - self.config.late_after_s
            take = [a for a in anchors if a <= reach or a < after]
            if len(take) < len(anchors):
                if take:
                    self._pending_p[s.sid] = [a for a in anchors if not (a <= reach or a < after)]
                return take
        del self._pending_p[s.sid]
        return anchors

    def _flush_anchors(self, s: _Session) -> None:
        """Merge the anchors of a session that closed after this step's samples went in."""
        anchors = self._pending_p.pop(s.sid, None)
        if not anchors:
            return
        cfg = self.config
        t = np.sort(np.array(anchors, np.float64))
        s.track.merge(
            t,
            np.zeros(t.size),
            np.full(t.size, math.nan),
            threshold_w=cfg.charging_threshold_w,
            gap_s=cfg.gap_s,
            synthetic=np.ones(t.size, np.bool_),
        )
        s.last_seen = max(s.last_seen, float(t[-1]))
        self._dirty.add(s.sid)

    def _apply(
        self,
        s: _Session,
        batch: MeterBatch,
        amps: NDArray[np.float64],
        rows: NDArray[np.intp],
        now: float,
    ) -> Generator[list[Run], list[Integrated], None]:
        """Merge a session's rows and pending points (a generator: it yields the
        runs its power track needs integrated once, see _apply_batch)."""
        cfg = self.config
        pend = self._pending.get(s.sid, [])
        anchors = self._take_anchors(s, batch, rows, now)
        if not (rows.size or pend or anchors):
            return  # only anchors that keep waiting
        t = batch.ts[rows]
        e = batch.values[rows, _E]
        if pend:
            t = np.concatenate((t, [x[0] for x in pend]))
            e = np.concatenate((e, [x[1] for x in pend]))
        order = np.argsort(t, kind="stable")
        t, e = t[order], e[order]
        if rows.size and (batch.recv[rows] - batch.ts[rows] > cfg.late_after_s).any():
            s.flag("late_data")
        fin = np.isfinite(e)
        segs = s.seg_list()
        before = register_energy(segs)
        stats, _ignored = merge_register(
            segs,
            t[fin],
            e[fin],
            tol_wh=cfg.register_tolerance_wh,
            reset_ratio=cfg.reset_ratio,
            max_power_w=cfg.max_power_w,
        )
        s.set_segs(segs)
        s.n_reg += int(np.count_nonzero(fin))
        s.resets += stats.resets
        s.jumps += stats.jumps
        s.bad += stats.bad
        if fin.any() and register_energy(segs) > before + cfg.register_tolerance_wh:
            # Growth ended where the readings first reach their final level.
            tf, ef = t[fin], e[fin]
            top = np.maximum.accumulate(ef[::-1])[::-1]  # max of each reading and all later
            reached = np.flatnonzero(ef >= top[-1] - cfg.register_tolerance_wh)
            s.last_growth = max(s.last_growth, float(tf[reached[0]]))
        if rows.size or anchors:
            tp = np.concatenate((batch.ts[rows], anchors))
            p = np.concatenate((batch.values[rows, _P], np.zeros(len(anchors))))
            cur = np.concatenate((amps[rows], np.full(len(anchors), np.nan)))
            # Stable, rows first: a real sample at an anchor's time is kept, the anchor dropped.
            po = np.argsort(tp, kind="stable")
            tp, p, cur = tp[po], p[po], cur[po]
            pf = np.isfinite(p)
            syn = None
            if anchors:
                syn = (po >= rows.size)[pf]
            prev = s.track.last
            late, _ign = yield from s.track.merge_steps(
                tp[pf],
                p[pf],
                cur[pf],
                threshold_w=cfg.charging_threshold_w,
                gap_s=cfg.gap_s,
                synthetic=syn,
            )
            if late:
                s.flag("late_data")
            if len(segs) > 1:
                tb, pb = tp[pf], p[pf]
                if prev is not None and (tb.size == 0 or prev[0] < tb[0]):
                    # The reset may fall between the previous batch's last sample and ours.
                    tb = np.concatenate(([prev[0]], tb))
                    pb = np.concatenate(([prev[1]], pb))
                self._bridge(s, segs, tb, pb)
            s.last_seen = max(s.last_seen, float(tp[-1]))
        if t.size:
            s.last_seen = max(s.last_seen, float(t[-1]))
        if (
            s.closed_by == "next_start"
            and s.stop is not None
            and s.window_end is not None
            and s.stop < s.last_seen <= s.window_end
        ):
            # "Stop at the last data seen": data of the window that reaches us
            # after the next start (a later batch, or late) moves it too, so
            # the stop does not depend on where the stream was cut.
            s.stop = s.last_seen
        self._dirty.add(s.sid)
        if s.is_open:
            self._due_stale.add(self.index.id(s.charger, s.connector))

    def _bridge(
        self,
        s: _Session,
        segs: list[list[float]],
        tp: NDArray[np.float64],
        p: NDArray[np.float64],
    ) -> None:
        for a, b in pairwise(segs):
            key = _bridge_key(a, b)
            if (s.bridges is not None and key in s.bridges) or tp.size == 0:
                continue
            i, j = np.searchsorted(tp, [a[2], b[0]])
            if i < tp.size and j < tp.size and tp[i] == a[2] and tp[j] == b[0]:
                dt_h = (b[0] - a[2]) / 3600.0
                if s.bridges is None:
                    s.bridges = {}
                s.bridges[key] = [float((p[i] + p[j]) * 0.5 * dt_h), float(max(p[i], p[j]) * dt_h)]

    # ------------------------------------------------------------------ closing

    def _check_timeouts(self, now: float) -> None:
        cfg = self.config
        stale = self._due_stale
        self._grow_due()  # (events may have added connectors)
        due = self._due
        for conn in stale:
            open_sid = self._open.get(conn)
            due[conn] = (
                math.inf if open_sid is None else self._due_at(self._sessions[open_sid], conn)
            )
        stale.clear()
        # The deadlines only pick the candidates (a second of margin for rounding:
        # `now - a > b` and `now > a + b` can differ in the last bit); the rules
        # below decide, exactly as for every open session.
        for conn in np.flatnonzero(due <= now + 1.0).tolist():
            sid = self._open.get(conn)
            if sid is None:
                due[conn] = math.inf
                continue
            s = self._sessions[sid]
            if s.available_at is not None and now - s.available_at > cfg.available_grace_s:
                self._close(s, s.available_at, max(s.available_at, s.last_seen), "available")
                self._flush_anchors(s)
                continue
            if s.available_at is not None:
                continue  # the Available rule decides, once its grace has passed
            active = max(s.start, s.last_growth, s.track.last_active(cfg.charging_threshold_w) or 0)
            if now - active > self._timeout_limit(s, conn):
                self._close(s, active, max(active, s.last_seen), "timeout")
                self._flush_anchors(s)
        # (A closed session's connector is in _dirty's sessions: the next step clears it.)

    def _grow_due(self) -> None:
        if len(self._due) < len(self.index):
            grown = np.full(max(len(self.index), 2 * len(self._due)), math.inf)
            grown[: len(self._due)] = self._due
            self._due = grown

    def _timeout_limit(self, s: _Session, conn: int) -> float:
        cfg = self.config
        limit = cfg.power_idle_timeout_s if s.start_source == "power" else cfg.stale_timeout_s
        if self._status.get(conn) in _OCCUPIED:
            # The connector still says a car is plugged in: a long idle stay,
            # not a lost stop (residential sessions last 10 days and more).
            limit = max(limit, cfg.occupied_timeout_s)
        return limit

    def _due_at(self, s: _Session, conn: int) -> float:
        """When the Available or the timeout rule can first close ``s`` (see _check_timeouts)."""
        cfg = self.config
        if s.available_at is not None:
            return s.available_at + cfg.available_grace_s
        active = max(s.start, s.last_growth, s.track.last_active(cfg.charging_threshold_w) or 0)
        return active + self._timeout_limit(s, conn)

    def _prune(self, now: float) -> None:
        # A sweep over every retained session: cheap, but not on every batch.
        if now - self._last_prune < 600.0:
            return
        self._last_prune = now
        for sid in [
            x
            for x, s in self._sessions.items()
            if not s.is_open and (s.window_end or 0.0) < now - self.config.retain_closed_s
        ]:
            self._drop(sid)

    def _emit(self) -> list[SessionRecord]:
        out: list[SessionRecord] = []
        for sid in sorted(self._dirty):
            s = self._sessions.get(sid)
            if s is None or s.is_open:
                continue
            rec = self._record(s)
            # What billing sees, and whether late data arrived; "revised" itself is no change.
            quality = tuple(q for q in rec.quality if q != "revised")
            fp = repr(
                (
                    rec.start,
                    rec.stop,
                    round(rec.energy_wh, 3),
                    rec.energy_source,
                    quality,
                    rec.transaction_id,
                    len(rec.periods),
                    round(rec.idle_s, 1),
                )
            )
            if fp == s.fingerprint:
                continue
            s.fingerprint = fp
            s.revision += 1
            if s.revision > 0:
                s.flag("revised")
                rec = self._record(s)
            out.append(rec)
        self._dirty.clear()
        out.sort(key=lambda r: (r.stop, r.session_id))
        return out

    def _across_reset(
        self, tr: PowerTrack, bridges: dict[str, list[float]], a: list[float], b: list[float]
    ) -> float:
        """Energy between the last reading before a reset and the first after it.

        It is in no segment. A rebooted register restarts at 0, so its first
        reading *is* the energy since the reboot — when that reading is no more
        than the peak power seen around the interval could deliver in it (or
        than ``reset_from_zero_wh`` without power samples). Otherwise (a swapped
        meter with its own total) the power trapezoid over the interval stands in.
        """
        found = bridges.get(_bridge_key(a, b))
        if found is None:
            est = tr.integral_between(a[2], b[0])
            bound = self.config.reset_from_zero_wh
        else:
            est, bound = found
        if b[1] <= 1.1 * bound + self.config.register_tolerance_wh:
            return b[1]
        return est

    def _record(self, s: _Session) -> SessionRecord:
        cfg = self.config
        stop = s.stop if s.stop is not None else s.last_seen
        tr = s.track
        integral = tr.integral_between(s.start, stop)
        complete = (
            tr.first is not None
            and tr.last is not None
            and tr.first[0] - s.start <= cfg.gap_s
            and stop - tr.last[0] <= cfg.gap_s
            and not any(g[3] > s.start and g[0] < stop for g in tr.gaps)
        )
        segs = s.seg_list()
        reg = register_energy(segs) if s.n_reg >= 2 else None
        if reg is not None:
            bridges = s.bridges or {}
            reg += sum(self._across_reset(tr, bridges, a, b) for a, b in pairwise(segs))
        used_tx = (
            s.meter_start is not None
            and s.meter_stop is not None
            and len(segs) == 1
            and segs[0][1] == s.meter_start
            and segs[0][3] == s.meter_stop
        )
        energy, source, eflags, mm_wh, mm_pct = choose_energy(
            register_wh=reg,
            integral_wh=integral,
            integral_complete=complete,
            used_tx_meter=used_tx,
            mismatch_pct=cfg.mismatch_pct,
            mismatch_min_wh=cfg.mismatch_min_wh,
        )
        flags = list(s.flags)
        if s.resets:
            flags.append("register_reset")
        if s.jumps:
            flags.append("register_jump")
        if s.bad:
            flags.append("bad_value")
        if tr.gaps and any(g[3] > s.start and g[0] < stop for g in tr.gaps):
            flags.append("gap")
        flags += eflags
        quality = tuple(f for f in QUALITY_FLAGS if f in flags)
        periods = build_periods(tr, s.start, stop, energy, threshold_w=cfg.charging_threshold_w)
        idle = sum(p.duration_s for p in periods if p.kind == "idle")
        conn = self.index.id(s.charger, s.connector)
        return SessionRecord(
            session_id=s.sid,
            charger_id=s.charger,
            connector_id=s.connector,
            site=self.index.site_names[int(self.index.site[conn])],
            transaction_id=s.transaction_id,
            start=s.start,
            stop=stop,
            energy_wh=energy,
            energy_source=source,
            quality=quality,
            revision=max(s.revision, 0),
            stop_reason=s.closed_by,
            idle_s=idle,
            charging_s=(stop - s.start) - idle,
            meter_start_wh=s.meter_start,
            meter_stop_wh=s.meter_stop,
            register_wh=reg,
            power_integral_wh=integral,
            mismatch_wh=mm_wh,
            mismatch_pct=mm_pct,
            id_tag=s.id_tag,
            periods=tuple(periods),
            signed_start=s.signed_start,
            signed_stop=s.signed_stop,
        )


def _amps(values: NDArray[np.float64]) -> NDArray[np.float64]:
    """Current summed over phases (what OCPI max_current and the tariff engine use);
    NaN where no phase reported."""
    phases = values[:, _I]
    return np.where(np.isnan(phases).all(axis=1), np.nan, np.nansum(phases, axis=1))


def _bridge_key(a: list[float], b: list[float]) -> str:
    return f"{a[2]:.3f}:{b[0]:.3f}"


def _event_order(ev: TransactionEvent | MeterReading | StatusEvent) -> tuple[float, int, int]:
    # Same timestamp: a start before its readings, readings before the stop,
    # and statuses last (a charger reports Available after it stopped).
    if isinstance(ev, TransactionEvent):
        rank = {"start": 0, "update": 2, "stop": 3}[ev.kind]
        return (ev.ts, rank, ev.seq_no or 0)
    if isinstance(ev, MeterReading):
        return (ev.ts, 1 if ev.context == "Transaction.Begin" else 2, 0)
    return (ev.ts, 4, 0)
