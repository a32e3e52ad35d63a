"""One session's mutable state, kept small (many thousands live at once), and its
checkpoint form.

The checkpoint form is version 1's: register segments as lists of 4 floats,
bridges as a dict, the power track's fields by name, NaN written as null.
"""

from __future__ import annotations

__all__ = [
    "SessionState",
    "bridge_key",
    "flag_set",
    "session_from_dict",
    "session_to_dict",
]

import math
import sys
from array import array
from dataclasses import dataclass, field, fields
from typing import Any

from chargewatch.model.events import SignedReading
from chargewatch.sessions.power_track import PowerTrack

# Flag tuples shared by all sessions that hold the same flags (a 1-tuple is 48 B
# per session otherwise); the flags are QUALITY_FLAGS' names, so few combinations.
_FLAG_SETS: dict[tuple[str, ...], tuple[str, ...]] = {(): ()}


def flag_set(flags: tuple[str, ...]) -> tuple[str, ...]:
    got = _FLAG_SETS.get(flags)
    if got is None:
        flags = tuple(sys.intern(f) for f in flags)
        got = _FLAG_SETS[flags] = flags
    return got


@dataclass(slots=True)
class SessionState:
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
    # Every signed reading (OCMF) of the session, decoded, once each, in
    # arrival order: what sessions/signatures.py checks. () when unsigned.
    signed: tuple[SignedReading, ...] = ()
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
    # The sampled register (batch rows, not event-borne points): first and last
    # reading, last power, the open flat run's energy by power and the energy
    # proven missed by stuck runs (see energy.track_samples). None until the first.
    sampled: array[float] | None = None
    revision: int = -1  # -1: never emitted
    fingerprint: str = ""
    # The charger's clock offset its times were corrected by (clock_offsets.py); 0 nearly always.
    clock_offset: float = 0.0

    def flag(self, name: str) -> None:
        if name not in self.flags:
            self.flags = flag_set((*self.flags, name))

    def keep_signed(self, got: SignedReading | None) -> None:
        """Keep a signed reading once (KEBA sends one record with Begin and End)."""
        if got is not None and all(x.raw != got.raw for x in self.signed):
            self.signed = (*self.signed, got)

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


def session_from_dict(d: dict[str, Any]) -> SessionState:
    d = dict(d)
    d.pop("anchors", None)  # the engine's, not the session's (see session_checkpoint)
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
    d["flags"] = flag_set(tuple(d.get("flags", ())))
    segs = d.pop("segs", [])
    d["bridges"] = d.get("bridges") or None
    sampled = d.pop("sampled", None)  # absent from version 1 checkpoints
    d["signed"] = tuple(SignedReading(**x) for x in d.get("signed", ()))
    s = SessionState(track=track, **d)
    if sampled:
        s.sampled = array("d", [float(x) for x in sampled])
    s.set_segs([[float(x) for x in seg] for seg in segs])
    return s


_SESSION_FIELDS = tuple(f.name for f in fields(SessionState) if f.name != "track")
# The checkpoint's names, in the order version 1 wrote them (PowerTrack's fields then).
_TRACK_FIELDS = ("first", "last", "pieces", "gaps", "soft", "spacing", "dts")


def session_to_dict(s: SessionState, anchors: list[float] | None = None) -> dict[str, Any]:
    """``asdict`` without its deep copy (see :func:`session_checkpoint.snapshot`)."""
    d = {name: getattr(s, name) for name in _SESSION_FIELDS}
    if anchors:
        # Only while some wait: version 1 had no such key, and readers default it.
        d["anchors"] = list(anchors)
    # The checkpoint keeps version 1's shapes: segments as lists, bridges as a dict.
    d["segs"] = s.seg_list()
    d["bridges"] = s.bridges or {}
    if s.sampled is not None:
        d["sampled"] = s.sampled.tolist()
    else:
        del d["sampled"]  # version 1's shape while there is nothing to keep
    if s.signed:
        d["signed"] = [{f.name: getattr(x, f.name) for f in fields(x)} for x in s.signed]
    else:
        del d["signed"]  # likewise
    if not s.clock_offset:
        del d["clock_offset"]  # likewise
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


def bridge_key(a: list[float], b: list[float]) -> str:
    """Key of the reset interval between segments ``a`` and ``b`` in ``bridges``."""
    return f"{a[2]:.3f}:{b[0]:.3f}"
