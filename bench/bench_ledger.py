"""Ledger write latency, SQLite vs PostgreSQL, at the rates of a 10,000-connector fleet.

The rates (docs/performance.md, "Ledger"):

- **session close**: 10,000 connectors occupied 25 % of the time by sessions of
  30 min on average (a DC-heavy fleet; AC sessions of hours close far fewer)
  close 10,000 × 0.25 / 1,800 s = 1.4 sessions/s on average; the busiest hour
  is taken as 3× that, 4.2/s. Each close is what the collector writes for it,
  one transaction each, before the batch is acknowledged: the stop event into
  the session journal, the session row (periods, readings), the CDR read back
  for a revision, the CDR history, the unpriced mark cleared, the CDR.
- **checkpoint**: every 60 s the session engine's state of the whole fleet (an
  open session with its power track on each occupied connector) replaces the
  collector's checkpoint and clears its journal, one transaction.

Closes are issued at 4.2/s in real time; checkpoints, one a minute, are timed
back to back (at one a minute nothing else overlaps them but the closes, which
run between them here too: one every 5th close). Backends: SQLite (WAL,
``synchronous=NORMAL``, the default), PostgreSQL with ``synchronous_commit=on``
(each commit flushed to the WAL on disk) and ``off`` (like SQLite's NORMAL: a
crash of the server, not of the collector, may lose the last commits). The
PostgreSQL cluster is private, on loopback, with fsync on. Prints one JSON document.

Usage: python -m bench.bench_ledger [--closes N] [--checkpoints N] [--connectors N]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from chargewatch.model.batch import FIELD_INDEX, N_FIELDS, MeterBatch
from chargewatch.model.fleet import ConnectorIndex
from chargewatch.sessions.session_engine import SessionEngine, SessionRecord
from chargewatch.storage.ledger import Ledger
from tests.billing.sessionkit import T0, start
from tests.billing.test_ledger import records
from tests.services import PostgreSQL

ROOT = Path(__file__).resolve().parent.parent
CDR = ROOT / "tests" / "billing" / "testdata" / "ocpi" / "cdr_example.json"
OCCUPANCY = 0.25
SESSION_S = 1800.0
PEAK = 3.0
CHECKPOINT_EVERY_S = 60.0


class DurablePostgreSQL(PostgreSQL):
    """The test cluster with fsync on: commit latency includes the WAL flush."""

    def command(self) -> list[str]:
        cmd = super().command()
        for flag in ("fsync=off", "full_page_writes=off"):
            i = cmd.index(flag)
            del cmd[i - 1 : i + 1]
        return cmd


def fleet_state(connectors: int) -> dict[str, Any]:
    """The engine's snapshot with an open session on OCCUPANCY of the connectors,
    each with a power track sampled every 10 s over a random part of 30 min."""
    index = ConnectorIndex()
    engine = SessionEngine(index)
    rng = np.random.default_rng(7)
    now = T0 + SESSION_S
    for k in range(connectors):
        charger, conn = f"CP{k // 2:05d}", 1 + k % 2
        if rng.random() >= OCCUPANCY:
            continue
        t0 = now - float(rng.uniform(60, SESSION_S))
        ts = np.arange(t0, now, 10.0)
        vals = np.full((len(ts), N_FIELDS), np.nan)
        vals[:, FIELD_INDEX["power_w"]] = 11_000.0
        vals[:, FIELD_INDEX["energy_wh"]] = 1e5 + (ts - t0) * 11_000.0 / 3600.0
        cid = index.id(charger, conn)
        batch = MeterBatch(np.full(len(ts), cid, np.int32), ts, ts + 1.0, vals)
        engine.update(batch, [start(charger, f"tx{k}", t0, 1e5, conn)], now)
    return engine.snapshot()


def percentiles(ms: list[float]) -> dict[str, float]:
    q = np.percentile(ms, [50, 99]) if ms else [float("nan")] * 2
    return {"n": len(ms), "p50_ms": round(float(q[0]), 2), "p99_ms": round(float(q[1]), 2),
            "max_ms": round(max(ms), 2) if ms else float("nan")}  # fmt: skip


def close_session(led: Ledger, rec: SessionRecord, cdr: dict[str, Any], now: float) -> None:
    """The ledger writes of one closing session, in the collector's order."""
    led.journal_append([("TransactionEvent", json.dumps({"charger": rec.charger_id}))])
    led.write([rec], written_at=now)
    led.issued_cdr(rec.session_id)
    led.record_cdr_history(cdr_id=rec.session_id[:32], session_id=rec.session_id,
                           kind="issued", revision=0, at=now, cdr=cdr)  # fmt: skip
    led.clear_unpriced(rec.session_id)
    led.write_cdr(session_id=rec.session_id, charger_id=rec.charger_id, site=rec.site,
                  start=rec.start, cdr=cdr, written_at=now)  # fmt: skip


def timed(fn: Callable[[], None]) -> float:
    t = time.perf_counter()
    fn()
    return (time.perf_counter() - t) * 1000.0


def run_backend(
    location: str, state: dict[str, Any], closes: int, checkpoints: int, rate: float
) -> dict[str, Any]:
    base = records(1)[0]
    cdr = json.loads(CDR.read_text())
    with Ledger(location, collector_id="bench") as led:
        led.claim()
        # Warm-up: connections, statement caches, the first pages.
        for i in range(20):
            close_session(led, replace(base, session_id=f"warm-{i}"), cdr, T0)
        led.save_state(state, at=T0, clear_journal=True)
        close_ms: list[float] = []
        interval = 1.0 / rate
        due = time.perf_counter()
        for i in range(closes):
            rec = replace(base, session_id=f"s-{uuid.uuid4().hex}", transaction_id=str(i))
            due += interval
            close_ms.append(timed(lambda r=rec, at=T0 + i: close_session(led, r, cdr, at)))
            time.sleep(max(0.0, due - time.perf_counter()))
        ckpt_ms: list[float] = []
        for i in range(checkpoints):
            ckpt_ms.append(
                timed(lambda at=T0 + i: led.save_state(state, at=at, clear_journal=True))
            )
            for _ in range(5):
                rec = replace(base, session_id=f"c-{uuid.uuid4().hex}")
                close_session(led, rec, cdr, T0 + i)
    return {"session_close": percentiles(close_ms), "checkpoint": percentiles(ckpt_ms)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--closes", type=int, default=300)
    ap.add_argument("--checkpoints", type=int, default=30)
    ap.add_argument("--connectors", type=int, default=10_000)
    args = ap.parse_args()
    close_rate = args.connectors * OCCUPANCY / SESSION_S * PEAK
    t = time.perf_counter()
    state = fleet_state(args.connectors)
    state_bytes = len(json.dumps(state).encode())
    build_s = time.perf_counter() - t
    out: dict[str, Any] = {
        "connectors": args.connectors,
        "rates": {
            "session_close_per_s_average": round(close_rate / PEAK, 2),
            "session_close_per_s_peak": round(close_rate, 2),
            "checkpoint_every_s": CHECKPOINT_EVERY_S,
            "open_sessions": len(state.get("sessions", [])),
            "checkpoint_bytes": state_bytes,
        },
        "state_build_s": round(build_s, 1),
    }
    with tempfile.TemporaryDirectory(prefix="bench-ledger-") as tmp:
        out["sqlite"] = run_backend(
            str(Path(tmp) / "ledger.sqlite"), state, args.closes, args.checkpoints, close_rate
        )
    pg = DurablePostgreSQL()
    pg.start()
    try:
        for mode in ("on", "off"):
            name = f"bench_{mode}"
            url = pg.create_db(name)
            pg._sql(name, f"ALTER DATABASE {name} SET synchronous_commit = {mode}")
            out[f"postgresql_sync_{mode}"] = run_backend(
                url, state, args.closes, args.checkpoints, close_rate
            )
            pg.drop_db(name)
    finally:
        pg.cleanup()
    out["close_p99_ms_budget"] = round(1000.0 / close_rate, 1)  # the next close is due
    out["summary"] = {
        k: {op: v[op]["p99_ms"] for op in ("session_close", "checkpoint")}
        for k, v in out.items()
        if isinstance(v, dict) and "checkpoint" in v
    }
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
