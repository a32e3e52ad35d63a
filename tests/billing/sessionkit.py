"""Small builders for session tests: meter batches and OCPP-like event sequences."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from chargewatch.model.batch import FIELD_INDEX, N_FIELDS, MeterBatch
from chargewatch.model.events import Event, StatusEvent, TransactionEvent
from chargewatch.model.fleet import ConnectorIndex
from chargewatch.sessions.session_engine import SessionConfig, SessionEngine, SessionRecord

T0 = 1_700_000_000.0


def batch(
    index: ConnectorIndex,
    charger: str,
    connector: int,
    ts: Sequence[float],
    energy: Sequence[float] | None = None,
    power: Sequence[float] | None = None,
    recv: Sequence[float] | None = None,
) -> MeterBatch:
    n = len(ts)
    vals = np.full((n, N_FIELDS), np.nan)
    if energy is not None:
        vals[:, FIELD_INDEX["energy_wh"]] = energy
    if power is not None:
        vals[:, FIELD_INDEX["power_w"]] = power
    t = np.asarray(ts, dtype=np.float64)
    return MeterBatch(
        np.full(n, index.id(charger, connector), np.int32),
        t,
        np.asarray(recv, dtype=np.float64) if recv is not None else t + 1.0,
        vals,
    )


def start(ch: str, tx: str, ts: float, wh: float | None, conn: int = 1) -> TransactionEvent:
    return TransactionEvent(ch, conn, ts, ts + 1, "start", tx, meter_wh=wh, source="ocpp1.6")


def stop(ch: str, tx: str, ts: float, wh: float | None, conn: int = 1) -> TransactionEvent:
    return TransactionEvent(
        ch, conn, ts, ts + 1, "stop", tx, meter_wh=wh, reason="EVDisconnected", source="ocpp1.6"
    )


def status(ch: str, st: str, ts: float, conn: int = 1) -> StatusEvent:
    return StatusEvent(ch, conn, ts, ts + 1, st)


def charge(
    t0: float, minutes: int, kw: float, base: float, step: float = 60.0, idle_after: int = 0
) -> tuple[list[float], list[float], list[float]]:
    """Samples every ``step`` s: ``minutes`` at ``kw`` then ``idle_after`` minutes at 0 W."""
    ts, e, p = [], [], []
    wh = base
    n_charge = int(minutes * 60 / step)
    n_idle = int(idle_after * 60 / step)
    for k in range(n_charge + n_idle + 1):
        t = t0 + k * step
        pw = kw * 1000.0 if k < n_charge else 0.0
        ts.append(t)
        e.append(wh)
        p.append(pw)
        wh += pw * step / 3600.0
    return ts, e, p


def run(
    steps: Sequence[tuple[float, MeterBatch, list[Event]]],
    index: ConnectorIndex,
    config: SessionConfig | None = None,
    engine: SessionEngine | None = None,
) -> tuple[SessionEngine, list[SessionRecord]]:
    eng = engine or SessionEngine(index, config)
    out: list[SessionRecord] = []
    for now, b, ev in steps:
        out += eng.update(b, ev, now)
    return eng, out


def final(records: Sequence[SessionRecord]) -> dict[str, SessionRecord]:
    """Latest revision of each session."""
    res: dict[str, SessionRecord] = {}
    for r in records:
        if r.session_id not in res or r.revision >= res[r.session_id].revision:
            res[r.session_id] = r
    return res
