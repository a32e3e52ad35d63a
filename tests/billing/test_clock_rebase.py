"""Sessions opened while a clock behind was not yet confirmed
(sessions/clock_rebase.py): once its offset is, they move to the receive
clock, so the record and its price are those of a right clock."""

from __future__ import annotations

import zoneinfo
from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from chargewatch.billing.cdr import PricedCdr, build_cdr
from chargewatch.billing.tariff_files import load_tariff
from chargewatch.model.events import TransactionEvent
from chargewatch.model.fleet import ConnectorIndex
from chargewatch.sessions.outputs import session_periods
from chargewatch.sessions.session_engine import SessionRecord, session_id
from tests.billing.sessionkit import T0, final
from tests.billing.test_session_clock import LATENCY, Item, _one, _replay, _session

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
