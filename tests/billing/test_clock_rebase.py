"""Sessions opened while a clock behind was not yet confirmed
(sessions/clock_rebase.py): once its offset is, they move to the receive
clock, so the record and its price are those of a right clock."""

from __future__ import annotations

import math
import zoneinfo
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import numpy as np
import pytest

from chargewatch.billing.cdr import PricedCdr, build_cdr
from chargewatch.billing.tariff_files import load_tariff
from chargewatch.model.batch import FIELD_INDEX, N_FIELDS, MeterBatch
from chargewatch.model.events import Event, TransactionEvent
from chargewatch.model.fleet import ConnectorIndex
from chargewatch.sessions.outputs import session_periods
from chargewatch.sessions.session_engine import (
    SessionConfig,
    SessionEngine,
    SessionRecord,
    session_id,
)
from tests.billing.sessionkit import T0, final
from tests.billing.test_session_clock import LATENCY, STEP, Item, _one, _replay, _session

BEHIND = -5 * 3_600.0  # local time sent as UTC at UTC-5
TARIFFS = Path(__file__).resolve().parents[2] / "tariffs"


def _price(rec: SessionRecord) -> Decimal:
    # Weekdays 07:00-23:00 0.42 EUR/kWh, nights 0.28, Amsterdam time: T0 is
    # 23:13 local, five hours earlier is 18:13, the day rate.
    got = build_cdr(
        load_tariff(TARIFFS / "time_of_use.json"),
        start=datetime.fromtimestamp(rec.start, UTC),
        end=datetime.fromtimestamp(rec.stop, UTC),
        timezone=zoneinfo.ZoneInfo("Europe/Amsterdam"),
        periods=session_periods(rec),
    )
    assert isinstance(got, PricedCdr)
    return Decimal(str(got.to_ocpi()["total_cost"]["excl_vat"]))


@pytest.mark.parametrize("start_min", [1, 5, 8])
def test_a_session_opened_before_a_clock_behind_is_confirmed_is_rebased(start_min: int) -> None:
    # Confirming an offset behind takes 10 min: before, this session started
    # five hours early (flags gap and late_data) and was priced at the day rate.
    _, right = _replay(ConnectorIndex(), _one("B", 0.0, start_min=start_min, stop_min=70))
    _, behind = _replay(ConnectorIndex(), _one("B", BEHIND, start_min=start_min, stop_min=70))
    want, got = _session(right, "B"), _session(behind, "B")
    assert got.start == pytest.approx(want.start + LATENCY, abs=1e-3)
    assert got.stop == pytest.approx(want.stop + LATENCY, abs=1e-3)
    assert got.energy_wh == pytest.approx(want.energy_wh)
    assert [(p.kind, p.start, p.end) for p in got.periods] == [
        (p.kind, pytest.approx(p.start + LATENCY), pytest.approx(p.end + LATENCY))
        for p in want.periods
    ]
    assert got.quality == ("clock_corrected", "clock_rebased")
    assert got.clock_offset_s == pytest.approx(BEHIND - LATENCY)
    assert _price(got) == _price(want)
    # Its id is that of its corrected start (a start delivered again finds it).
    assert got.session_id == session_id("B", 1, "tx1", got.start)


@pytest.mark.parametrize("offset", [3_600.0, 7_200.0])
def test_a_session_opened_after_confirmation_is_not_rebased(offset: float) -> None:
    # Ahead, two messages confirm: the status before Preparing and Preparing.
    _, recs = _replay(ConnectorIndex(), _one("A", offset, start_min=10, stop_min=70))
    assert _session(recs, "A").quality == ("clock_corrected",)


def _reset_at(items: list[Item], minute: float) -> list[Item]:
    """The register restarts from 0 at ``minute`` (a reboot): segments, bridges."""
    cut = T0 + minute * 60.0
    out: list[Item] = []
    for t, ev, s, ch in items:
        if t < cut:
            out.append((t, ev, s, ch))
            continue
        moved = [
            replace(e, meter_wh=e.meter_wh - 49_000.0)
            if isinstance(e, TransactionEvent) and e.meter_wh is not None
            else e
            for e in ev
        ]
        out.append((t, moved, None if s is None else (s[0], s[1], s[2] - 49_000.0), ch))
    return out


def test_a_rebased_session_keeps_its_register_reset() -> None:
    # The reset's segments and bridge move with the rest.
    items = _reset_at(_one("B", 0.0, start_min=1, stop_min=70), 6)
    _, right = _replay(ConnectorIndex(), items)
    behind_items = _reset_at(_one("B", BEHIND, start_min=1, stop_min=70), 6)
    _, behind = _replay(ConnectorIndex(), behind_items)
    want, got = _session(right, "B"), _session(behind, "B")
    assert "register_reset" in want.quality
    assert got.energy_wh == pytest.approx(want.energy_wh)
    assert got.start == pytest.approx(want.start + LATENCY, abs=1e-3)
    assert set(got.quality) == {*want.quality, "clock_corrected", "clock_rebased"}
    assert _price(got) == _price(want)


def test_a_start_delivered_again_after_the_rebase_finds_its_session() -> None:
    items = _one("B", BEHIND, start_min=5, stop_min=70)
    (first,) = [it for it in items if any(isinstance(e, TransactionEvent) for e in it[1])][:1]
    again = (first[0] + 20 * 60.0, first[1], None, first[3])  # redelivered at minute 25
    _, recs = _replay(ConnectorIndex(), [*items, again])
    (got,) = final(recs).values()
    assert got.start == pytest.approx(T0 + 300.0 + LATENCY, abs=1e-3)


# --- a charger that sends power only (native meter messages) -------------------------
# (receipt, meter time, power W, register Wh or NaN)
Row = tuple[float, float, float, float]


def _power_only(
    offset: float,
    *,
    every: float,
    start_s: float,
    deliver: Callable[[float], float] = lambda t: t + LATENCY,
    register: bool = False,
) -> list[Row]:
    """A sample every ``every`` s for 100 min: 11 kW from ``start_s`` to 60 min,
    0 W around it; the charger's clock ``offset`` s off."""
    rows, wh = [], 1_000.0
    for k in range(int(6_000 / every)):
        t = T0 + k * every
        p = 11_000.0 if start_s <= k * every < 3_600.0 else 0.0
        wh += p * every / 3_600.0
        rows.append((deliver(t), t + offset, p, wh if register else math.nan))
    return rows


def _replay_rows(
    rows: list[Row], events: list[Event] = (), config: SessionConfig | None = None
) -> list[SessionRecord]:
    """Engine steps of STEP s of receive time, as a live collector's flushes."""
    index = ConnectorIndex()
    eng = SessionEngine(index, config)
    rows, events = sorted(rows), sorted(events, key=lambda e: e.recv)
    out: list[SessionRecord] = []
    now, k, j = T0, 0, 0
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
        vals = np.full((len(got), N_FIELDS), np.nan)
        vals[:, FIELD_INDEX["power_w"]] = [r[2] for r in got]
        vals[:, FIELD_INDEX["energy_wh"]] = [r[3] for r in got]
        conn = np.full(len(got), index.id("P", 1), np.int32)
        ts, recv = np.array([r[1] for r in got]), np.array([r[0] for r in got])
        out += eng.update(MeterBatch(conn, ts, recv, vals), evs, now)
    return out + eng.update(MeterBatch.empty(), [], now + 3 * 86_400)


def _same_but_latency(got: SessionRecord, want: SessionRecord) -> None:
    assert got.start == pytest.approx(want.start + LATENCY, abs=0.25)
    assert got.stop == pytest.approx(want.stop + LATENCY, abs=0.25)
    assert got.energy_wh == pytest.approx(want.energy_wh)
    assert [(p.kind, p.start, p.end) for p in got.periods] == [
        (
            p.kind,
            pytest.approx(p.start + LATENCY, abs=0.25),
            pytest.approx(p.end + LATENCY, abs=0.25),
        )
        for p in want.periods
    ]


@pytest.mark.parametrize(
    ("every", "start_s", "register"), [(20.0, 0.0, False), (20.0, 240.0, False), (60.0, 0.0, True)]
)
def test_a_power_only_charger_behind_gets_one_session_not_one_per_sample(
    every: float, start_s: float, register: bool
) -> None:
    # Each sample in the ten minutes before the offset was confirmed looked
    # five hours late: it opened a power-inferred session that timed out in
    # its own step (flags late_data, inferred_start, inferred_stop) -- one
    # per step of the doubt, never re-based, the charge's first ten minutes
    # billed nowhere (sessions/session_book.py, doubt_lag).
    want = _replay_rows(_power_only(0.0, every=every, start_s=start_s, register=register))
    got = _replay_rows(_power_only(BEHIND, every=every, start_s=start_s, register=register))
    (w,), (g,) = final(want).values(), final(got).values()
    _same_but_latency(g, w)
    assert g.quality == (*w.quality, "clock_corrected", "clock_rebased")
    assert g.clock_offset_s == pytest.approx(BEHIND - LATENCY)
    assert _price(g) == _price(w)


def _tx16(offset: float, rows: list[Row]) -> list[Event]:
    """StartTransaction at minute 3 and StopTransaction at minute 60 (OCPP 1.6,
    no StatusNotification), stamped by the charger's clock."""
    t0, t1 = T0 + 180.0, T0 + 3_600.0
    wh1 = max(r[3] for r in rows if r[1] - offset <= t1)
    return [
        TransactionEvent(
            "P", 1, t0 + offset, t0 + LATENCY, "start", "t1", meter_wh=1_000.0, source="ocpp1.6"
        ),
        TransactionEvent(
            "P", 1, t1 + offset, t1 + LATENCY, "stop", "t1", meter_wh=wh1, source="ocpp1.6"
        ),
    ]


def test_a_16_transaction_behind_started_in_the_doubt_is_one_rebased_session() -> None:
    # StartTransaction, MeterValues and StopTransaction only: the transaction
    # session is not closed by power timeouts; it waits and is re-based.
    rows_r = _power_only(0.0, every=60.0, start_s=180.0, register=True)
    rows_b = _power_only(BEHIND, every=60.0, start_s=180.0, register=True)
    want = _replay_rows(rows_r, _tx16(0.0, rows_r))
    got = _replay_rows(rows_b, _tx16(BEHIND, rows_b))
    (w,), (g,) = final(want).values(), final(got).values()
    _same_but_latency(g, w)
    assert g.energy_source == w.energy_source
    assert g.quality == (*w.quality, "clock_corrected", "clock_rebased")


def _queued(start: float, end: float, at: float) -> Callable[[float], float]:
    """Samples of [start, end) min queued by a right clock during an outage and
    delivered at minute ``at`` within a few seconds; the rest on time."""

    def deliver(t: float) -> float:
        if T0 + start * 60.0 <= t < T0 + end * 60.0:
            return T0 + at * 60.0 + (t - T0) / 1_000.0
        return t + LATENCY

    return deliver


NO_CLOCKS = SessionConfig(clock_min_offset_s=math.inf)  # the engine before clock offsets


@pytest.mark.parametrize(
    ("start", "end", "at", "silent_after"),
    [
        (10, 50, 50, False),  # outage longer than power_idle_timeout_s, live after
        (10, 50, 50, True),  # the same, nothing after the queue
        (0, 60, 90, True),  # the whole charge queued, delivered 30 min after it
        (10, 25, 25, False),  # outage shorter than the timeout: one session
    ],
)
def test_a_right_clocks_queued_backlog_is_late_data_as_before(
    start: float, end: float, at: float, silent_after: bool
) -> None:
    # While the backlog's d is a candidate, sessions it opens wait on it; the
    # queue drained and live data dropped the candidate, they are judged on
    # the receive clock again: the same records as without clock handling.
    rows = _power_only(0.0, every=20.0, start_s=0.0, deliver=_queued(start, end, at))
    if silent_after:
        rows = [r for r in rows if r[0] < T0 + at * 60.0 + 100.0]
    got = _replay_rows(rows)
    want = _replay_rows(rows, config=NO_CLOCKS)
    assert got and [r.to_dict() for r in _by_start(got)] == [r.to_dict() for r in _by_start(want)]


def _by_start(records: list[SessionRecord]) -> list[SessionRecord]:
    return sorted(final(records).values(), key=lambda r: r.start)
