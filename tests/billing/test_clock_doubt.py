"""A clock's ten minutes of doubt across a collector restart or a partition
move, and stops that wait through it (sessions/clock_offsets.py,
clock_rebase.py): the charge of a charger five hours behind is one session,
on the receive clock, as a right clock's."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from chargewatch.collector.session_stage import SessionStage, merge_states, split_state
from chargewatch.model.batch import FIELD_INDEX, N_FIELDS, MeterBatch
from chargewatch.model.events import Event, StatusEvent, TransactionEvent
from chargewatch.model.fleet import ConnectorIndex
from chargewatch.sessions.session_engine import SessionEngine, SessionRecord
from chargewatch.storage.ledger import Ledger
from tests.billing.sessionkit import T0, final
from tests.billing.test_clock_rebase import BEHIND, Row, _power_only, _price, _same_but_latency
from tests.billing.test_session_clock import LATENCY, STEP


def _json(state: dict[str, Any]) -> dict[str, Any]:
    return json.loads(json.dumps(state))  # as the ledger keeps it


class _Run:
    """Rows and events fed to a SessionStage in steps of STEP s of receive
    time; ``hop`` (after the step at ``at``): the collector restarts from its
    ledger, or the charger moves to another collector."""

    def __init__(self, tmp: Path | None) -> None:
        self.tmp = tmp
        self.out: list[SessionRecord] = []
        self.snapshots: list[dict[str, Any]] = []
        self.stage = self._stage(ConnectorIndex())

    def _stage(self, index: ConnectorIndex) -> SessionStage:
        ledger = Ledger(self.tmp / "ledger.db") if self.tmp is not None else None
        return SessionStage(SessionEngine(index), ledger=ledger, listeners=[self.out.extend])

    def restart(self, now: float) -> None:
        old = self.stage
        old.close(now)
        assert old.ledger is not None
        self.snapshots.append(old.ledger.load_state() or {})
        old.ledger.close()
        self.stage = self._stage(ConnectorIndex())
        assert self.stage.resume(now=now)

    def handover(self, now: float) -> None:
        state = _json(self.stage.engine.snapshot())
        self.snapshots.append(state)
        mine, rest = split_state(state, lambda c: c == "P")
        assert mine is not None and rest is None
        self.stage = self._stage(ConnectorIndex())
        self.stage.engine.restore(merge_states(mine, {}))

    def feed(
        self, rows: list[Row], events: list[Event] = (), hop: str = "", at: float = 0.0
    ) -> list[SessionRecord]:
        rows, events = sorted(rows), sorted(events, key=lambda e: e.recv)
        now, k, j, hopped = T0, 0, 0, not hop
        while k < len(rows) or j < len(events):
            now += STEP
            got = []
            while k < len(rows) and rows[k][0] <= now:
                got.append(rows[k])
                k += 1
            evs = []
            while j < len(events) and events[j].recv <= now:
                evs.append(events[j])
                j += 1
            index = self.stage.engine.index
            vals = np.full((len(got), N_FIELDS), np.nan)
            vals[:, FIELD_INDEX["power_w"]] = [r[2] for r in got]
            vals[:, FIELD_INDEX["energy_wh"]] = [r[3] for r in got]
            conn = np.full(len(got), index.id("P", 1), np.int32)
            ts, recv = np.array([r[1] for r in got]), np.array([r[0] for r in got])
            self.stage.on_batch(MeterBatch(conn, ts, recv, vals), evs, now)
            if not hopped and now >= at:
                getattr(self, hop)(now)
                hopped = True
        self.stage.tick(now + 3 * 86_400)
        return self.out


@pytest.mark.parametrize("hop", ["restart", "handover"])
@pytest.mark.parametrize(("every", "register"), [(20.0, False), (60.0, True)])
def test_a_restart_in_the_doubt_does_not_split_the_session(
    tmp_path: Path, hop: str, every: float, register: bool
) -> None:
    # The collector restarts (or the charger moves) five minutes into the ten
    # its clock's offset takes to be confirmed. Before, the candidate and the
    # sessions waiting on it were lost: confirmation started over, the session
    # opened before the hop was judged on the receive clock -- five hours
    # stale -- and the charge was split into several records.
    want = _Run(None).feed(_power_only(0.0, every=every, start_s=0.0, register=register))
    run = _Run(tmp_path)
    got = run.feed(
        _power_only(BEHIND, every=every, start_s=0.0, register=register),
        hop=hop,
        at=T0 + 300.0,
    )
    (w,), (g,) = final(want).values(), final(got).values()
    _same_but_latency(g, w)
    assert g.quality == (*w.quality, "clock_corrected", "clock_rebased")
    assert g.clock_offset_s == pytest.approx(BEHIND - LATENCY)
    assert _price(g) == _price(w)
    (state,) = run.snapshots
    assert [c for c, *_ in state["clock_candidates"]] == ["P"]  # in doubt at the hop
    assert [c for c, *_ in state["clock_doubt"]] == ["P"]
    assert "clock_candidates" not in run.stage.engine.snapshot()  # confirmed since


def test_a_checkpoint_does_not_count_a_held_message_twice() -> None:
    # A held message rebuilt its candidate on restore; with the candidate in
    # the checkpoint, it must not be judged again (two hours ahead, a second
    # agreeing message confirms: a doubled one would confirm on its own).
    eng = SessionEngine(ConnectorIndex())
    first = StatusEvent("P", 1, T0 + 7_200.0, T0, "Available")
    eng.update(MeterBatch.empty(), [first], T0 + 1.0)
    state = _json(eng.snapshot())
    assert state["clock_candidates"] == [["P", 7_200.0, 1, T0, T0]]
    again = SessionEngine(ConnectorIndex())
    again.restore(state)
    assert again._book.clock.pending() == {"P": 7_200.0}
    assert len(again._book.held) == 1
    # An older checkpoint (no candidates) still rebuilds it from what is held.
    del state["clock_candidates"]
    old = SessionEngine(ConnectorIndex())
    old.restore(state)
    assert old._book.clock.pending() == {"P": 7_200.0}


def _stop_after_doubt(offset: float, rows: list[Row]) -> list[Event]:
    """Charging at minute 0 (the collector joined the charge: no start), a
    go-e stop (``-1``) stamped at minute 6 and received 50 s later (a slow
    uplink; within ``clock_agree_s``, so it agrees with the candidate) -- in
    the doubt of a clock behind, and matched to the status-inferred session
    only after waiting ``late_after_s`` for its start, once the offset is
    confirmed (minute 10)."""
    t_stop = T0 + 360.0
    wh = max(r[3] for r in rows if r[1] - offset <= t_stop)
    return [
        StatusEvent("P", 1, T0 + offset, T0 + LATENCY, "Charging"),
        TransactionEvent(
            "P", 1, t_stop + offset, t_stop + 50.0 + LATENCY, "stop", "-1", meter_wh=wh,
            source="ocpp1.6",
        ),
    ]  # fmt: skip


def _charge_6_min(offset: float) -> list[Row]:
    """11 kW for 6 min, then 0 W, a sample with the register every 60 s for 40 min."""
    rows, wh = [], 1_000.0
    for k in range(40):
        t = T0 + k * 60.0
        rows.append((t + LATENCY, t + offset, 11_000.0 if k < 6 else 0.0, wh))
        wh += 11_000.0 / 60.0 if k < 6 else 0.0
    return rows


def test_a_stop_waiting_through_the_doubt_is_rebased() -> None:
    # Before, the waiting stop kept its charger-clock time: five hours before
    # its session's re-based start, so it was replaced by its receipt
    # (stop_time_corrected), 50 s late.
    rows_r = _charge_6_min(0.0)
    rows_b = _charge_6_min(BEHIND)
    want = _Run(None).feed(rows_r, _stop_after_doubt(0.0, rows_r))
    got = _Run(None).feed(rows_b, _stop_after_doubt(BEHIND, rows_b))
    (w,), (g,) = final(want).values(), final(got).values()
    assert w.stop_reason == "transaction" and "stop_matched" in w.quality
    assert g.stop == pytest.approx(w.stop + LATENCY, abs=0.25)
    assert g.start == pytest.approx(w.start + LATENCY, abs=0.25)
    assert g.energy_wh == pytest.approx(w.energy_wh)
    assert g.quality == (*w.quality, "clock_corrected", "clock_rebased")
