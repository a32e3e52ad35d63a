"""Records of closed sessions: energy chosen from register and power integral,
quality flags, periods; emitted again (``revision`` + 1) only when what billing
sees changed."""

from __future__ import annotations

__all__ = ["build_record", "emit"]

from dataclasses import dataclass
from itertools import pairwise

from chargewatch.sessions.energy import (
    S_E0,
    S_E1,
    S_STUCK,
    S_T0,
    S_T1,
    Chosen,
    Evidence,
    choose_by_evidence,
    open_run_missed,
    register_energy,
    resync_sampled,
)
from chargewatch.sessions.power_track import PowerTrack, build_periods
from chargewatch.sessions.session_book import SessionBook
from chargewatch.sessions.session_state import SessionState, bridge_key
from chargewatch.sessions.session_types import QUALITY_FLAGS, SessionConfig, SessionRecord
from chargewatch.sessions.signatures import UNSIGNED, check_session


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
                rec.review_reason,
                quality,
                rec.transaction_id,
                len(rec.periods),
                round(rec.idle_s, 1),
                rec.signature.status,  # a late signed end reading changes it
                len(rec.signed),
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
    """The energy figures of one record (see energy.choose_by_evidence)."""

    integral_wh: float
    register_wh: float | None
    chosen: Chosen


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
    ch = en.chosen
    flags += ch.flags
    if (
        s.start_source == "status"
        and not s.transaction_id
        and ch.energy_wh <= cfg.register_tolerance_wh
    ):
        # A plug-in that never charged (docs/sessions.md). One a transaction
        # adopted by its update or stop is that transaction, billed even when
        # the car was full before the collector joined it.
        flags.append("failed_start")
    signature = (
        check_session(s.signed, charger=s.charger, keys=cfg.meter_keys, billed_wh=ch.energy_wh)
        if s.signed
        else UNSIGNED
    )
    if signature.energy_mismatch:
        flags.append("signed_energy_mismatch")
    if s.clock_offset:
        flags.append("clock_corrected")
    quality = tuple(f for f in QUALITY_FLAGS if f in flags)
    periods = build_periods(tr, s.start, stop, ch.energy_wh, threshold_w=cfg.charging_threshold_w)
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
        energy_wh=ch.energy_wh,
        energy_source=ch.source,
        quality=quality,
        revision=max(s.revision, 0),
        stop_reason=s.closed_by,
        idle_s=idle,
        charging_s=(stop - s.start) - idle,
        meter_start_wh=s.meter_start,
        meter_stop_wh=s.meter_stop,
        register_wh=en.register_wh,
        power_integral_wh=en.integral_wh,
        mismatch_wh=ch.mismatch_wh,
        mismatch_pct=ch.mismatch_pct,
        id_tag=s.id_tag,
        periods=tuple(periods),
        signed_start=s.signed_start,
        signed_stop=s.signed_stop,
        register_energy_wh=ch.register_energy_wh,
        estimate_energy_wh=ch.estimate_energy_wh,
        review_reason=ch.review_reason,
        signed=s.signed,
        signature=signature,
        clock_offset_s=s.clock_offset,
        charger_stop_reason=s.reason,
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
    chosen = choose_by_evidence(
        _evidence(cfg, s, stop, reg, integral, complete, used_tx, segs),
        policy=cfg.energy_policy,
        mismatch_pct=cfg.mismatch_pct,
        mismatch_min_wh=cfg.mismatch_min_wh,
    )
    return _Energy(integral, reg, chosen)


def _evidence(
    cfg: SessionConfig,
    s: SessionState,
    stop: float,
    reg: float | None,
    integral: float,
    complete: bool,
    used_tx: bool,
    segs: list[list[float]],
) -> Evidence:
    """The session's energy evidence: register, power, sampled extent, stuck runs."""
    got = s.sampled
    resync_sampled(got, s.segs, s.track.last)
    sampled_wh: float | None = None
    fine = False
    edge = 0.0
    stuck = 0.0
    if got is not None:
        stuck = got[S_STUCK]
        if segs:
            stuck += open_run_missed(got, segs[-1][3], cfg.stuck_min_wh)
        if len(segs) == 1 and not s.resets and got[S_T1] > got[S_T0]:
            sampled_wh = got[S_E1] - got[S_E0]
            fine = any(abs(x - round(x)) > 1e-9 for x in (got[S_E0], got[S_E1]))
            edge = _edges(cfg, s.track, s.start, got[S_T0], got[S_T1], stop)
    return Evidence(
        register_wh=reg,
        integral_wh=integral,
        integral_complete=complete,
        used_tx_meter=used_tx,
        meter_start_wh=s.meter_start,
        meter_stop_wh=s.meter_stop,
        sampled_wh=sampled_wh,
        sampled_fine=fine,
        edge_wh=edge,
        stuck_wh=stuck,
        bad=s.bad,
        jumps=s.jumps,
    )


def _edges(
    cfg: SessionConfig, tr: PowerTrack, start: float, t0: float, t1: float, stop: float
) -> float:
    """Energy before the first and after the last sampled register reading.

    The power track's where it has samples there; where it has none (the
    first MeterValues come up to an interval after the start), the power of
    the nearest sample held since the start or until the stop, if charging:
    a car plugged in and authorised charges from the start.
    """
    total = 0.0
    for a, b, end in ((start, t0, tr.first), (t1, stop, tr.last)):
        if b <= a:
            continue
        got = tr.integral_between(a, b)
        if got == 0.0 and end is not None and end[1] > cfg.charging_threshold_w:
            got = end[1] * (b - a) / 3600.0
        total += got
    return total


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
