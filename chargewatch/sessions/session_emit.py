"""Records of closed sessions: energy chosen from register and power integral,
quality flags, periods; emitted again (``revision`` + 1) only when what billing
sees changed."""

from __future__ import annotations

__all__ = ["build_record", "emit"]

from dataclasses import dataclass
from itertools import pairwise

from chargewatch.sessions.energy import choose_energy, register_energy
from chargewatch.sessions.power_track import PowerTrack, build_periods
from chargewatch.sessions.session_book import SessionBook
from chargewatch.sessions.session_state import SessionState, bridge_key
from chargewatch.sessions.session_types import QUALITY_FLAGS, SessionConfig, SessionRecord


def emit(book: SessionBook) -> list[SessionRecord]:
    """Records of the closed sessions that changed in this step, by stop time."""
    out: list[SessionRecord] = []
    for sid in sorted(book.dirty):
        s = book.sessions.get(sid)
        if s is None or s.is_open:
            continue
        rec = build_record(book, s)
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
            rec = build_record(book, s)
        out.append(rec)
    book.dirty.clear()
    out.sort(key=lambda r: (r.stop, r.session_id))
    return out


@dataclass(frozen=True, slots=True)
class _Energy:
    """The energy figures of one record (see choose_energy)."""

    integral_wh: float
    register_wh: float | None
    energy_wh: float
    source: str
    flags: list[str]
    mismatch_wh: float | None
    mismatch_pct: float | None


def build_record(book: SessionBook, s: SessionState) -> SessionRecord:
    cfg = book.config
    stop = s.stop if s.stop is not None else s.last_seen
    tr = s.track
    en = _energy(cfg, s, stop)
    flags = list(s.flags)
    if s.resets:
        flags.append("register_reset")
    if s.jumps:
        flags.append("register_jump")
    if s.bad:
        flags.append("bad_value")
    if tr.gaps and any(g[3] > s.start and g[0] < stop for g in tr.gaps):
        flags.append("gap")
    flags += en.flags
    if s.start_source == "status" and en.energy_wh <= cfg.register_tolerance_wh:
        flags.append("failed_start")  # a plug-in that never charged (docs/sessions.md)
    quality = tuple(f for f in QUALITY_FLAGS if f in flags)
    periods = build_periods(tr, s.start, stop, en.energy_wh, threshold_w=cfg.charging_threshold_w)
    idle = sum(p.duration_s for p in periods if p.kind == "idle")
    conn = book.index.id(s.charger, s.connector)
    return SessionRecord(
        session_id=s.sid,
        charger_id=s.charger,
        connector_id=s.connector,
        site=book.index.site_names[int(book.index.site[conn])],
        transaction_id=s.transaction_id,
        start=s.start,
        stop=stop,
        energy_wh=en.energy_wh,
        energy_source=en.source,
        quality=quality,
        revision=max(s.revision, 0),
        stop_reason=s.closed_by,
        idle_s=idle,
        charging_s=(stop - s.start) - idle,
        meter_start_wh=s.meter_start,
        meter_stop_wh=s.meter_stop,
        register_wh=en.register_wh,
        power_integral_wh=en.integral_wh,
        mismatch_wh=en.mismatch_wh,
        mismatch_pct=en.mismatch_pct,
        id_tag=s.id_tag,
        periods=tuple(periods),
        signed_start=s.signed_start,
        signed_stop=s.signed_stop,
    )


def _energy(cfg: SessionConfig, s: SessionState, stop: float) -> _Energy:
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
        reg += sum(_across_reset(cfg, tr, bridges, a, b) for a, b in pairwise(segs))
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
    return _Energy(integral, reg, energy, source, eflags, mm_wh, mm_pct)


def _across_reset(
    cfg: SessionConfig,
    tr: PowerTrack,
    bridges: dict[str, list[float]],
    a: list[float],
    b: list[float],
) -> float:
    """Energy between the last reading before a reset and the first after it.

    It is in no segment. A rebooted register restarts at 0, so its first
    reading *is* the energy since the reboot — when that reading is no more
    than the peak power seen around the interval could deliver in it (or
    than ``reset_from_zero_wh`` without power samples). Otherwise (a swapped
    meter with its own total) the power trapezoid over the interval stands in.
    """
    found = bridges.get(bridge_key(a, b))
    if found is None:
        est = tr.integral_between(a[2], b[0])
        bound = cfg.reset_from_zero_wh
    else:
        est, bound = found
    if b[1] <= 1.1 * bound + cfg.register_tolerance_wh:
        return b[1]
    return est
