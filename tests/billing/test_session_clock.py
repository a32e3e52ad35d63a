"""Charger clocks that are off (sessions/clock_offsets.py): a charger sending
local time as UTC, or whose clock was never set, is billed on the receive
clock with the offset it was moved by; late delivery, a lone wrong timestamp
and small offsets move nothing."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest

from chargewatch.collector.session_stage import merge_states, split_state
from chargewatch.model.batch import FIELD_INDEX, N_FIELDS, MeterBatch
from chargewatch.model.events import Event, StatusEvent, TransactionEvent
from chargewatch.model.fleet import ConnectorIndex
from chargewatch.sessions.session_engine import SessionConfig, SessionEngine, SessionRecord
from tests.billing.sessionkit import T0, final

LATENCY = 0.2  # s between the charger's stamp and our receipt
STEP = 60.0  # one engine step a minute, as a live collector's flushes
# (true time, events, meter sample (ts, recv, Wh) or None, charger)
Item = tuple[float, list[Event], tuple[float, float, float] | None, str]


def _traffic(
    charger: str, offset: float, *, start_min: int, stop_min: int, kw: float = 11.0
) -> list[tuple[float, list[Event], tuple[float, float, float] | None]]:
    """One charge as the charger sends it: statuses, start, a sample every 60 s
    while the transaction runs, stop; each item (true time, events, sample)
    with the charger's clock ``offset`` s off (ts = true + offset)."""
    out: list[tuple[float, list[Event], tuple[float, float, float] | None]] = []
    wh = 50_000.0

    def at(m: float) -> tuple[float, float]:
        t = T0 + m * 60.0
        return t + offset, t + LATENCY

    ts, recv = at(0)
    out.append((T0, [StatusEvent(charger, 1, ts, recv, "Available")], None))
    ts, recv = at(start_min - 1)
    out.append((T0 + (start_min - 1) * 60, [StatusEvent(charger, 1, ts, recv, "Preparing")], None))
    ts, recv = at(start_min)
    begin = TransactionEvent(charger, 1, ts, recv, "start", "tx1", meter_wh=wh, source="ocpp1.6")
    out.append((T0 + start_min * 60, [begin], (ts, recv, wh)))
    for m in range(start_min + 1, stop_min):
        wh += kw * 1000.0 / 60.0
        ts, recv = at(m)
        out.append((T0 + m * 60, [], (ts, recv, wh)))
    ts, recv = at(stop_min)
    end = TransactionEvent(charger, 1, ts, recv, "stop", "tx1", meter_wh=wh, source="ocpp1.6")
    out.append((T0 + stop_min * 60, [end, StatusEvent(charger, 1, ts, recv, "Available")], None))
    return out


def _replay(
    index: ConnectorIndex,
    items: list[Item],
    engine: SessionEngine | None = None,
    config: SessionConfig | None = None,
) -> tuple[SessionEngine, list[SessionRecord]]:
    """Feed items (true time, events, sample, charger) in steps of STEP s."""
    eng = engine or SessionEngine(index, config)
    items = sorted(items, key=lambda x: x[0])
    out: list[SessionRecord] = []
    k = 0
    now = items[0][0]
    while k < len(items):
        now += STEP
        events: list[Event] = []
        rows: list[tuple[int, float, float, float]] = []
        while k < len(items) and items[k][0] + LATENCY <= now:
            _, evs, sample, charger = items[k]
            events += evs
            if sample is not None:
                rows.append((index.id(charger, 1), *sample))
            k += 1
        out += eng.update(_batch(rows), events, now)
    out += eng.update(MeterBatch.empty(), [], now + 3 * 86_400)
    return eng, out


def _batch(rows: list[tuple[int, float, float, float]]) -> MeterBatch:
    vals = np.full((len(rows), N_FIELDS), np.nan)
    vals[:, FIELD_INDEX["energy_wh"]] = [r[3] for r in rows]
    vals[:, FIELD_INDEX["power_w"]] = [11_000.0 for _ in rows]
    return MeterBatch(
        np.array([r[0] for r in rows], np.int32),
        np.array([r[1] for r in rows], np.float64),
        np.array([r[2] for r in rows], np.float64),
        vals,
    )


def _one(charger: str, offset: float, **kw: int) -> list[Item]:
    return [(t, ev, s, charger) for t, ev, s in _traffic(charger, offset, **kw)]


def _session(records: list[SessionRecord], charger: str) -> SessionRecord:
    (got,) = [r for r in final(records).values() if r.charger_id == charger]
    return got


@pytest.mark.parametrize("offset", [3_600.0, 7_200.0, 13.5 * 3_600.0])
def test_a_clock_ahead_is_billed_on_the_receive_clock(offset: float) -> None:
    # Local time sent as UTC east of Greenwich (CET, CEST, ... UTC+13:30).
    index = ConnectorIndex()
    eng, recs = _replay(index, _one("AHEAD", offset, start_min=10, stop_min=70))
    got = _session(recs, "AHEAD")
    assert got.start == pytest.approx(T0 + 600.0, abs=1.0)
    assert got.stop == pytest.approx(T0 + 70 * 60.0, abs=1.0)
    assert got.energy_wh == pytest.approx(11_000.0 * 59 / 60, abs=0.01)
    assert got.energy_source == "transaction_meter"
    assert got.clock_offset_s == pytest.approx(offset - LATENCY)
    assert "clock_corrected" in got.quality and got.stop_reason == "transaction"
    assert got.to_dict()["clock_offset_s"] == pytest.approx(offset - LATENCY)
    # Two hours ahead, the first status (stamped beyond future_tolerance_s
    # before a second message agreed) was held, not rejected (clock_hold.py).
    assert eng.drain_rejected() == []
    assert len(eng._book.held) == 0


def test_a_clock_behind_is_corrected_once_it_agrees_over_ten_minutes() -> None:
    # Local time sent as UTC west of Greenwich (UTC-5): what arrives looks five
    # hours late, as a queue emptied after an outage would -- until enough
    # messages over enough receive time agree.
    index = ConnectorIndex()
    _, recs = _replay(index, _one("BEHIND", -5 * 3_600.0, start_min=30, stop_min=90))
    got = _session(recs, "BEHIND")
    assert got.start == pytest.approx(T0 + 30 * 60.0, abs=1.0)
    assert got.stop == pytest.approx(T0 + 90 * 60.0, abs=1.0)
    assert got.clock_offset_s == pytest.approx(-5 * 3_600.0 - LATENCY)
    assert got.energy_wh == pytest.approx(11_000.0 * 59 / 60, abs=0.01)


def test_a_right_clock_is_left_alone_and_output_is_as_without_correction() -> None:
    index = ConnectorIndex()
    items = _one("RIGHT", 0.0, start_min=5, stop_min=65) + _one(
        "SKEW", 200.0, start_min=8, stop_min=40
    )
    _, on = _replay(index, items)
    _, off = _replay(ConnectorIndex(), items, config=SessionConfig(clock_min_offset_s=math.inf))
    assert [r.to_dict() for r in on] == [r.to_dict() for r in off]
    # 200 s is under clock_min_offset_s: ClockSkew's business, not billing's.
    assert all(r.clock_offset_s == 0.0 and "clock_corrected" not in r.quality for r in on)
    assert len(final(on)) == 2


def test_a_queue_emptied_after_an_outage_is_late_data_not_a_clock() -> None:
    # A right clock whose samples of the last 40 min arrive in one burst.
    index = ConnectorIndex()
    items = _one("QUEUED", 0.0, start_min=5, stop_min=65)
    burst = T0 + 50 * 60.0
    late = []
    for t, ev, s, ch in items:
        if T0 + 10 * 60 <= t < burst:
            t2 = burst + (t - T0) / 1000.0  # delivered within a few seconds
            moved = [replace(e, recv=t2) for e in ev]
            late.append((t2, moved, None if s is None else (s[0], t2, s[2]), ch))
        else:
            late.append((t, ev, s, ch))
    eng, recs = _replay(index, late)
    got = _session(recs, "QUEUED")
    assert got.clock_offset_s == 0.0 and got.start == pytest.approx(T0 + 300.0)
    assert got.energy_wh == pytest.approx(11_000.0 * 59 / 60, abs=0.01)
    assert eng._book.clock.offsets() == {}


def test_one_wrong_timestamp_moves_nothing() -> None:
    # A single message an hour ahead (a firmware glitch) among right ones.
    index = ConnectorIndex()
    items = _one("GLITCH", 0.0, start_min=5, stop_min=65)
    t, ev, s, ch = items[10]
    assert s is not None
    items[10] = (t, ev, (s[0] + 3_600.0, s[1], s[2]), ch)
    eng, recs = _replay(index, items)
    got = _session(recs, "GLITCH")
    assert got.clock_offset_s == 0.0 and "clock_corrected" not in got.quality
    assert got.start == pytest.approx(T0 + 300.0) and got.stop == pytest.approx(T0 + 3_900.0)
    assert eng._book.clock.offsets() == {}


def _an_hour_later_right(
    t: float, ev: list[Event], s: tuple[float, float, float] | None, ch: str
) -> Item:
    """The same traffic an hour later from a clock set right, as transaction tx2."""
    moved: list[Event] = []
    for e in ev:
        assert isinstance(e, StatusEvent | TransactionEvent)
        e2 = replace(e, ts=e.ts + 3_600.0 - 7_200.0, recv=e.recv + 3_600.0)
        moved.append(replace(e2, transaction_id="tx2") if isinstance(e2, TransactionEvent) else e2)
    s2 = None if s is None else (s[0] + 3_600.0 - 7_200.0, s[1] + 3_600.0, s[2] + 10_000.0)
    return t + 3_600.0, moved, s2, ch


def test_a_clock_set_right_mid_life_is_followed() -> None:
    # Two hours ahead for its first charge, then NTP sets it right.
    index = ConnectorIndex()
    first = _one("FIXED", 7_200.0, start_min=10, stop_min=40)
    second = [_an_hour_later_right(t, ev, s, ch) for t, ev, s, ch in first]
    eng, recs = _replay(index, first + second)
    got = sorted(final(recs).values(), key=lambda r: r.start)
    assert [r.transaction_id for r in got] == ["tx1", "tx2"]
    assert got[0].clock_offset_s == pytest.approx(7_200.0 - LATENCY)
    assert got[1].clock_offset_s == 0.0
    assert got[1].start == pytest.approx(T0 + 3_600.0 + 600.0, abs=1.0)
    assert got[1].energy_wh == pytest.approx(got[0].energy_wh)
    assert eng._book.clock.offsets() == {}


def _set_right(item: Item, offset: float) -> Item:
    t, ev, s, ch = item
    moved: list[Event] = []
    for e in ev:
        assert isinstance(e, StatusEvent | TransactionEvent)
        moved.append(replace(e, ts=e.ts - offset))
    return t, moved, None if s is None else (s[0] - offset, s[1], s[2]), ch


def test_a_clock_set_right_during_a_session_is_followed_within_minutes() -> None:
    # 15 min ahead, then NTP sets it right at minute 30 of a 60 min charge.
    index = ConnectorIndex()
    items = _one("NTP", 900.0, start_min=10, stop_min=70)
    fix = T0 + 40 * 60.0
    items = [_set_right(it, 900.0) if it[0] >= fix else it for it in items]
    # Step by step, as the collector does: when does the offset return to 0?
    back_at = None
    eng = SessionEngine(index)
    recs: list[SessionRecord] = []
    for t, ev, s, ch in items:
        b = _batch([(index.id(ch, 1), *s)]) if s is not None else MeterBatch.empty()
        recs += eng.update(b, ev, t + 1.0)
        if back_at is None and t >= fix and eng._book.clock.offset("NTP") == 0.0:
            back_at = t
    recs += eng.update(MeterBatch.empty(), [], T0 + 3 * 86_400)
    assert back_at is not None and back_at - fix <= 180.0  # 3 samples at 60 s
    got = _session(recs, "NTP")
    assert got.start == pytest.approx(T0 + 600.0, abs=1.0)
    assert got.stop == pytest.approx(T0 + 70 * 60.0, abs=1.0)
    assert got.energy_wh == pytest.approx(11_000.0 * 59 / 60, abs=0.01)
    # Half of it was moved: the record keeps that offset and says so. It opened
    # before the clock was in doubt: right on the old offset, not re-based.
    assert got.clock_offset_s == pytest.approx(900.0 - LATENCY)
    assert "clock_corrected" in got.quality and "clock_rebased" not in got.quality


def test_timestamps_standing_in_for_missing_ones_are_not_evidence() -> None:
    # ts == recv: the decoder used the receive time (no timestamp sent).
    index = ConnectorIndex()
    items = _one("AHEAD", 7_200.0, start_min=10, stop_min=70)
    t, ev, s, ch = items[1]
    items[1] = (t, [replace(e, ts=e.recv) for e in ev], s, ch)  # Preparing without a timestamp
    eng, _ = _replay(index, items[:2])
    assert eng._book.clock.offsets() == {}


def test_offsets_survive_a_checkpoint_and_move_with_their_charger() -> None:
    index = ConnectorIndex()
    items = _one("AHEAD", 7_200.0, start_min=10, stop_min=70)
    eng, _ = _replay(index, items[:20])
    state = eng.snapshot()
    assert state["clock_offsets"] == [["AHEAD", pytest.approx(7_200.0 - LATENCY)]]
    mine, rest = split_state(state, lambda c: c == "AHEAD")
    assert mine is not None and mine["clock_offsets"] == state["clock_offsets"]
    assert rest is None or "clock_offsets" not in rest
    assert merge_states(mine, rest or {})["clock_offsets"] == state["clock_offsets"]
    again = SessionEngine(index)
    again.restore(state)
    _, recs = _replay(index, items[20:], engine=again)
    got = _session(recs, "AHEAD")
    assert got.start == pytest.approx(T0 + 600.0, abs=1.0)
    assert got.stop == pytest.approx(T0 + 70 * 60.0, abs=1.0)
    # A right clock writes no such key: older checkpoints stay as they were.
    plain, _ = _replay(ConnectorIndex(), _one("RIGHT", 0.0, start_min=5, stop_min=65)[:20])
    assert "clock_offsets" not in plain.snapshot()
    assert all("clock_offset" not in s for s in plain.snapshot()["sessions"])


def test_the_rollups_read_the_offsets_the_engine_applies_across_restore() -> None:
    """``clock_offsets`` (what storage/rollups.py moves rows by) is the engine's
    own figure per connector, None while every clock is right, and follows a
    restore from a checkpoint and a hand-over of the charger."""
    index = ConnectorIndex()
    items = _one("AHEAD", 7_200.0, start_min=10, stop_min=70) + _one(
        "RIGHT", 0.0, start_min=5, stop_min=65
    )
    eng, _ = _replay(index, sorted(items, key=lambda x: x[0])[:40])
    got = eng.clock_offsets()
    assert got is not None and not got.flags.writeable
    assert got[index.id("AHEAD", 1)] == pytest.approx(7_200.0 - LATENCY)
    assert got[index.id("RIGHT", 1)] == 0.0
    read = eng.clock_offsets  # bound once, as the collector wires it
    state = eng.snapshot()
    eng.restore(state)
    after = read()
    assert after is not None and after[index.id("AHEAD", 1)] == pytest.approx(7_200.0 - LATENCY)
    # Handed over to another collector: this one applies no offset any more.
    kept, _ = split_state(state, lambda c: c == "RIGHT")
    assert kept is not None
    eng.restore(kept)
    assert read() is None
    plain, _ = _replay(ConnectorIndex(), _one("RIGHT", 0.0, start_min=5, stop_min=65)[:20])
    assert plain.clock_offsets() is None


def test_a_new_connector_of_a_corrected_charger_takes_its_offset() -> None:
    index = ConnectorIndex()
    items = _one("AHEAD", 7_200.0, start_min=10, stop_min=70)
    eng, _ = _replay(index, items[:20])
    # Connector 2 appears only now; its samples are moved like connector 1's.
    now = items[19][0] + STEP
    b = _batch([(index.id("AHEAD", 2), now + 7_200.0 - 1.0, now - 1.0 + LATENCY, 1_000.0)])
    eng.update(b, [], now)
    assert eng._book.clock._conn_offset[index.id("AHEAD", 2)] == pytest.approx(7_200.0 - LATENCY)


def test_config_refuses_offsets_that_cannot_be_told_apart() -> None:
    with pytest.raises(ValueError, match="clock_agree_s"):
        SessionConfig(clock_agree_s=400.0)
    with pytest.raises(ValueError, match="clock_confirm_n"):
        SessionConfig(clock_confirm_n=1)
