"""A period's power and current statistics are those of the samples inside it
(issue #18): where power crosses ``charging_threshold_w`` between two samples
the crossing is a period boundary, not a sample, so neither side reports the
threshold power or the other side's current. Tariff restrictions on
MIN_POWER/MAX_POWER/MIN_CURRENT/MAX_CURRENT read these figures, so they decide
money; the live fast path (fast_tail) and a session resumed from a checkpoint
must give the same figures as the general path."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from itertools import pairwise

import numpy as np
import pytest

import chargewatch.sessions.batch_routing as routing
from chargewatch.billing.cdr import PricedCdr, build_cdr
from chargewatch.model.batch import FIELD_INDEX, N_FIELDS, MeterBatch
from chargewatch.model.events import Event
from chargewatch.model.fleet import ConnectorIndex
from chargewatch.sessions.outputs import session_periods
from chargewatch.sessions.power_track import Period
from chargewatch.sessions.session_engine import SessionConfig, SessionEngine
from chargewatch.sessions.session_types import SessionRecord
from tests.billing.helpers import tariff
from tests.billing.sessionkit import T0, start, status, stop

EMPTY = MeterBatch.empty()
PHASES = ("current_l1_a", "current_l2_a", "current_l3_a")


class Trace:
    """One connector's samples: time, register (Wh, the trapezoid of the power,
    so the register and the power integral agree), power and phase currents."""

    def __init__(self, step: float, rows: list[tuple[float, tuple[float, float, float]]]) -> None:
        self.t = [T0 + k * step for k in range(len(rows))]
        self.p = [w for w, _ in rows]
        self.amps = [a for _, a in rows]
        self.e = [10_000.0]
        for k in range(1, len(rows)):
            self.e.append(self.e[-1] + (self.p[k - 1] + self.p[k]) / 2 * step / 3600.0)

    def batch(self, index: ConnectorIndex, a: int, b: int) -> MeterBatch:
        vals = np.full((b - a, N_FIELDS), np.nan)
        vals[:, FIELD_INDEX["energy_wh"]] = self.e[a:b]
        vals[:, FIELD_INDEX["power_w"]] = self.p[a:b]
        for j, name in enumerate(PHASES):
            vals[:, FIELD_INDEX[name]] = [x[j] for x in self.amps[a:b]]
        t = np.asarray(self.t[a:b])
        return MeterBatch(np.full(b - a, index.id("CP", 1), np.int32), t, t + 1.0, vals)


def charge_then_idle(step: float, n_charge: int, n_idle: int) -> Trace:
    """11 kW (a little ripple, three unequal phases) then idle at 0-2 W, 0.2 A."""
    rows = []
    for k in range(n_charge):
        w = 11_000.0 - 40.0 * (k % 3)  # 11,000 / 10,960 / 10,920 W
        rows.append((w, (16.2 - 0.1 * (k % 3), 15.8, 15.9)))
    rows += [(float(k % 3), (0.2, 0.1, 0.0)) for k in range(n_idle)]
    return Trace(step, rows)


Step = tuple[float, MeterBatch, list[Event]]


def steps(tr: Trace, index: ConnectorIndex, cuts: list[int]) -> list[Step]:
    """The trace in batches ending at each cut (a sample index), then the stop."""
    end = tr.t[-1] + 30
    out: list[Step] = [
        (T0 + 0.5, EMPTY, [status("CP", "Preparing", T0), start("CP", "1", T0, tr.e[0])])
    ]
    bounds = [0, *cuts, len(tr.t)]
    for a, b in pairwise(bounds):
        if b > a:
            out.append((tr.t[b - 1] + 2, tr.batch(index, a, b), []))
    out.append((end + 5, EMPTY, [stop("CP", "1", end, tr.e[-1]), status("CP", "Available", end)]))
    return out


def run(
    steps_: list[Step], config: SessionConfig, restore_after: int | None = None
) -> list[SessionRecord]:
    """Records of the steps; with ``restore_after``, the engine is checkpointed after
    that many steps and a fresh engine restored from the JSON goes on."""
    index = ConnectorIndex()
    index.id("CP", 1)
    eng = SessionEngine(index, config)
    out: list[SessionRecord] = []
    for k, (now, b, ev) in enumerate(steps_):
        if k == restore_after:
            fresh = SessionEngine(index, config)
            fresh.restore(json.loads(json.dumps(eng.snapshot())))
            eng = fresh
        out += eng.update(b, ev, now)
    return out


def one(records: list[SessionRecord]) -> SessionRecord:
    (r,) = {r.session_id: r for r in records}.values()
    return r


def _kinds(r: SessionRecord) -> list[str]:
    return [p.kind for p in r.periods]


@pytest.mark.parametrize("step", [1.0, 60.0])
def test_a_crossing_lends_neither_side_the_threshold_nor_the_other_sides_current(
    step: float,
) -> None:
    n_charge = 1800 if step == 1.0 else 30
    tr = charge_then_idle(step, n_charge, n_charge // 3)
    index = ConnectorIndex()
    r = one(run(steps(tr, index, []), SessionConfig()))
    assert _kinds(r) == ["charging", "idle"]
    ch, idle = r.periods
    # The smallest and largest sampled power inside each period.
    assert ch.min_power_w == 10_920.0 and ch.max_power_w == 11_000.0
    assert idle.min_power_w == 0.0 and idle.max_power_w == 2.0
    # Current: the largest phase (not the sum), each side its own samples'.
    assert ch.max_current_a == pytest.approx(16.2)
    assert idle.max_current_a == pytest.approx(0.2)
    # The boundary is still the interpolated crossing of 50 W, not a sample time.
    last_charging = tr.t[n_charge - 1]
    frac = (tr.p[n_charge - 1] - 50.0) / tr.p[n_charge - 1]
    assert ch.end == pytest.approx(last_charging + frac * step)


def test_a_single_sample_above_the_threshold_is_its_periods_only_figure() -> None:
    # Idle, one 7 kW sample between two crossings, idle again (60 s sampling).
    rows = (
        [(0.0, (0.0, 0.0, 0.0))] * 5 + [(7000.0, (10.0, 10.0, 10.0))] + [(1.0, (0.1, 0.1, 0.1))] * 5
    )
    tr = Trace(60.0, rows)
    r = one(run(steps(tr, ConnectorIndex(), []), SessionConfig()))
    assert _kinds(r) == ["idle", "charging", "idle"]
    before, ch, after = r.periods
    assert (ch.min_power_w, ch.max_power_w, ch.max_current_a) == (7000.0, 7000.0, 10.0)
    assert (before.max_power_w, before.max_current_a) == (0.0, 0.0)
    assert (after.min_power_w, after.max_power_w) == (1.0, 1.0)
    assert after.max_current_a == pytest.approx(0.1)


def _stats(periods: tuple[Period, ...] | list[Period]) -> list[tuple[object, ...]]:
    return [(p.kind, p.min_power_w, p.max_power_w, p.max_current_a) for p in periods]


def test_the_fast_tail_and_the_general_path_give_the_same_statistics(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """One batch goes through the general path; 5-sample batches mostly through
    fast_tail (counted). The statistics are equal; so are the boundaries."""
    tr = charge_then_idle(60.0, 30, 20)
    calls: list[int] = []
    real = routing.fast_tail

    def counted(*args, **kwargs):  # type: ignore[no-untyped-def]
        done = real(*args, **kwargs)
        calls.append(int(done.sum()))
        return done

    monkeypatch.setattr(routing, "fast_tail", counted)
    whole = one(run(steps(tr, ConnectorIndex(), []), SessionConfig()))
    assert sum(calls) == 0
    chunked = one(run(steps(tr, ConnectorIndex(), list(range(5, 50, 5))), SessionConfig()))
    assert sum(calls) >= 5  # the live path did most of the work
    assert _stats(chunked.periods) == _stats(whole.periods)
    for a, b in zip(chunked.periods, whole.periods, strict=True):
        assert a.end == pytest.approx(b.end, abs=1e-6)


@pytest.mark.parametrize("cut", [3, 10, 28, 29, 30, 31, 40])
def test_a_session_restored_at_any_cut_goes_on_as_it_would_have(cut: int) -> None:
    """Checkpoint after the batch ending at sample ``cut`` (the crossing lies
    between samples 29 and 30: cuts just before, at and after it), batches of
    3 samples after it: the records are identical to the run without restart."""
    tr = charge_then_idle(60.0, 30, 20)
    cuts = sorted({cut, *range(cut + 3, len(tr.t), 3)})
    st = steps(tr, ConnectorIndex(), cuts)
    straight = run(st, SessionConfig())
    resumed = run(st, SessionConfig(), restore_after=2)  # after the start and the first batch
    assert resumed == straight
    r = one(straight)
    assert _stats(r.periods) == [("charging", 10_920.0, 11_000.0, 16.2), ("idle", 0.0, 2.0, 0.2)]


def _priced(r: SessionRecord, doc: dict[str, object]) -> PricedCdr:
    periods = session_periods(r)
    cdr = build_cdr(
        tariff(doc),
        start=datetime.fromtimestamp(r.start, UTC),
        end=periods[-1].end,
        timezone=UTC,
        periods=periods,
    )
    assert isinstance(cdr, PricedCdr)
    return cdr


def test_min_power_and_max_current_restrictions_price_each_side_of_a_crossing() -> None:
    """A premium for fast charging (MIN_POWER 11 kW) and a parking fee once the
    car draws under 6 A a phase (MAX_CURRENT 6 A), priced by hand.

    60 s samples, threshold 5.5 kW so the crossing falls half-way: 10 samples
    at 11 kW (t = 0..540 s), then 0 W from t = 600 s to 1200 s, stop at 1230 s.
    The crossing is at 570 s. Energy (trapezoid = register): charging
    9 × 183.333 + (11 + 5.5) / 2 kW × 30 s = 1650 + 68.75 = 1718.75 Wh; idle
    5.5 / 2 kW × 30 s = 22.916 Wh. Charging 0-570 s, parking 570-1230 s = 660 s.
    """
    rows = [(11_000.0, (16.0, 16.0, 16.0))] * 10 + [(0.0, (0.3, 0.3, 0.3))] * 11
    tr = Trace(60.0, rows)
    cfg = SessionConfig(charging_threshold_w=5500.0)
    r = one(run(steps(tr, ConnectorIndex(), []), cfg))
    assert _stats(r.periods) == [("charging", 11_000.0, 11_000.0, 16.0), ("idle", 0.0, 0.0, 0.3)]
    assert r.periods[0].end == T0 + 570.0
    doc: dict[str, object] = {
        "elements": [
            {
                "price_components": [{"type": "ENERGY", "price": 0.60, "step_size": 1}],
                "restrictions": {"min_power": 11.0},
            },
            {
                "price_components": [{"type": "PARKING_TIME", "price": 3.00, "step_size": 1}],
                "restrictions": {"max_current": 6.0},
            },
            {"price_components": [{"type": "ENERGY", "price": 0.40, "step_size": 1}]},
        ]
    }
    cdr = _priced(r, doc)
    # Charging: 1.71875 kWh at 0.60 (min power 11 kW holds: 11 >= 11). Idle:
    # 0.022917 kWh at 0.40 (0 W fails min_power); the session's 1741.667 Wh go
    # up to the 1 Wh step, 1742 Wh, the extra 0.333 Wh at the last element's
    # 0.40: 1.71875 x 0.60 + (1.742 - 1.71875) x 0.40 = 1.03125 + 0.0093 =
    # 1.04055, rounded half-up to 4 decimals. Parking: 660 s at 3.00/h = 0.55
    # (0.3 A < 6 A). With the threshold lent to the periods, the charging
    # side's min power would be 5.5 kW (all energy at 0.40) and the idle side's
    # current 16 A (no parking fee).
    assert cdr.total_energy_cost.excl_vat == Decimal("1.0406")
    assert cdr.total_parking_cost.excl_vat == Decimal("0.5500")
    assert cdr.total_cost.excl_vat == Decimal("1.5906")  # 1.04055 + 0.55
    assert cdr.total_parking_time == Decimal("0.1833")  # 660 s in h, 4 decimals
