"""Register segments, power track and charging periods."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chargewatch.sessions.energy import (
    choose_energy,
    merge_register,
    register_energy,
    split_register,
)
from chargewatch.sessions.power_track import (
    PowerTrack,
    build_periods,
    pieces_from,
    pieces_from_many,
)

KW = {"tol_wh": 1.0, "reset_ratio": 0.5, "max_power_w": 400_000.0, "jump_slack_wh": 1000.0}


def arr(*x: float) -> np.ndarray:
    return np.array(x, dtype=np.float64)


def test_split_register_resets_jumps_and_bad_values() -> None:
    t = np.arange(8, dtype=np.float64) * 60
    e = arr(1000, 1100, -1, 1200, 1150, 20, 120, 5_000_000)
    runs = split_register(t, e, **KW)
    assert runs.stats.resets == 1  # 1200 -> 20
    assert runs.stats.jumps == 1  # 120 -> 5 GWh in a minute: a swapped meter
    assert runs.stats.bad == 2  # -1, and 1150 after 1200
    assert [r[3] - r[1] for r in runs.runs] == [200, 100, 0]


def test_merge_register_late_readings_place_a_reset_where_it_happened() -> None:
    segs: list[list[float]] = []
    merge_register(segs, arr(0, 60, 120), arr(1000, 1100, 1200))
    merge_register(segs, arr(600, 660), arr(150, 250))  # after a reboot, seen live
    assert register_energy(segs) == 300
    # Queued readings from the offline interval: growth before the reset, then from 0.
    stats, ignored = merge_register(segs, arr(180, 240, 300, 360), arr(1300, 1400, 10, 50))
    assert ignored == 0 and stats.resets == 1
    assert len(segs) == 2
    assert register_energy(segs) == pytest.approx((1400 - 1000) + (250 - 10))
    # Re-delivered readings inside known spans change nothing.
    before = [list(s) for s in segs]
    _, ignored = merge_register(segs, arr(60, 120, 640), arr(1100, 1200, 200))
    assert ignored == 3 and segs == before


def test_merge_register_late_readings_without_reset_join_segments() -> None:
    segs: list[list[float]] = []
    merge_register(segs, arr(0, 60), arr(1000, 1100))
    merge_register(segs, arr(600, 660), arr(1500, 1600))  # one segment already
    assert len(segs) == 1
    merge_register(segs, arr(-60), arr(990))  # before the first reading
    assert segs[0][:2] == [-60, 990]
    assert register_energy(segs) == 610


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.floats(0, 22_000), min_size=3, max_size=60),
    st.integers(1, 5),
    st.randoms(use_true_random=False),
)
def test_register_energy_independent_of_arrival_order(powers, nchunks, rnd) -> None:
    t = np.arange(len(powers), dtype=np.float64) * 60.0
    e = 5000 + np.cumsum(np.array(powers) * 60 / 3600)
    one: list[list[float]] = []
    merge_register(one, t, e)
    idx = list(range(len(t)))
    rnd.shuffle(idx)
    chunks = np.array_split(np.array(idx), nchunks)
    many: list[list[float]] = []
    for c in chunks:
        rows = np.sort(c)
        merge_register(many, t[rows], e[rows])
    assert register_energy(many) == pytest.approx(register_energy(one), abs=1e-6)


def test_power_track_gap_is_not_bridged_then_filled_late() -> None:
    t = np.arange(0, 3601, 60.0)
    p = np.full(t.size, 6000.0)
    c = np.full(t.size, np.nan)
    tr = PowerTrack()
    tr.merge(t[:10], p[:10], c[:10], threshold_w=50, gap_s=600)
    tr.merge(t[30:], p[30:], c[30:], threshold_w=50, gap_s=600)
    assert len(tr.gaps) == 1
    assert tr.integral_wh == pytest.approx(6000 * (3600 - 20 * 60 - 60) / 3600)
    late, ignored = tr.merge(t[5:31], p[5:31], c[5:31], threshold_w=50, gap_s=600)
    assert (late, ignored) == (20, 6)  # 20 fill the gap, 6 were already integrated
    assert tr.gaps == []
    assert tr.integral_wh == pytest.approx(6000.0)


def test_power_track_uses_real_sample_spacing() -> None:
    t = arr(0, 10, 70, 100, 400)
    p = arr(1000, 1000, 1000, 1000, 1000)
    tr = PowerTrack()
    tr.merge(t, p, np.full(5, np.nan), threshold_w=50, gap_s=600)
    assert tr.integral_wh == pytest.approx(1000 * 400 / 3600)


def test_periods_split_at_threshold_crossing_and_carry_current() -> None:
    t = arr(0, 60, 120, 180, 240)
    p = arr(0, 7000, 7000, 0, 0)
    cur = arr(0, 31.5, 32.0, 0, 0)
    tr = PowerTrack()
    tr.merge(t, p, cur, threshold_w=100, gap_s=600)
    periods = build_periods(tr, -60, 300, 1000.0, threshold_w=100)
    assert [x.kind for x in periods] == ["idle", "charging", "idle"]
    assert periods[0].start == -60 and periods[-1].end == 300
    assert periods[1].start == pytest.approx(60 * 100 / 7000)
    assert periods[1].max_current_a == 32.0
    assert periods[1].max_power_w == 7000.0
    assert sum(x.energy_wh for x in periods) == pytest.approx(1000.0)
    assert sum(x.duration_s for x in periods) == pytest.approx(360)


def test_periods_without_power_spread_energy_over_session() -> None:
    (only,) = build_periods(PowerTrack(), 0, 3600, 5000, threshold_w=50)
    assert only.kind == "charging" and only.energy_wh == 5000


def test_energy_in_unmeasured_time_is_charging_whatever_the_edges_say() -> None:
    """The real KEBA P30 2.0.1 transaction (tests/fixtures/real_ocpp/keba_p30_201_mhegele):
    its only meter values are the Begin and End registers, each sent twice a
    fraction of a second apart, so the track holds a 0 W point at each end and
    one unbridged 6.5 h gap between them, over which the register grew 19.7 kWh.
    The gap took the 0 W edges' kind: the whole session was idle, and an idle-fee
    tariff billed 3.5 h of parking on a session that delivered 19.7 kWh."""
    tr = PowerTrack()
    tr.merge(arr(3.0, 23_468.0), arr(0.0, 0.0), arr(np.nan, np.nan), threshold_w=50, gap_s=1800)
    periods = build_periods(tr, 0.0, 23_468.5, 19_718.7, threshold_w=50)
    assert {p.kind for p in periods} == {"charging"}
    assert sum(p.energy_wh for p in periods) == pytest.approx(19_718.7)
    # Unmeasured time whose energy idle power could hold (at most 50 W on
    # average) stays with its edges' kind: a creeping register is no charge.
    (idle,) = {p.kind for p in build_periods(tr, 0.0, 23_468.5, 300.0, threshold_w=50)}
    assert idle == "idle"


def test_choose_energy_rules() -> None:
    e, src, flags, mm, pct = choose_energy(
        register_wh=7000,
        integral_wh=6990,
        integral_complete=True,
        used_tx_meter=True,
        mismatch_pct=5,
        mismatch_min_wh=100,
    )
    assert (e, src, flags) == (7000, "transaction_meter", [])
    assert mm == pytest.approx(10) and pct == pytest.approx(10 / 70)
    e, src, flags, *_ = choose_energy(
        register_wh=9.4,
        integral_wh=9400,
        integral_complete=True,
        used_tx_meter=False,
        mismatch_pct=5,
        mismatch_min_wh=100,
    )
    assert (e, src, flags) == (pytest.approx(9400), "register", ["unit_corrected"])
    e, src, flags, *_ = choose_energy(
        register_wh=None,
        integral_wh=1234,
        integral_complete=False,
        used_tx_meter=False,
        mismatch_pct=5,
        mismatch_min_wh=100,
    )
    assert (e, src, flags) == (1234, "power_integral", ["estimated", "gap"])
    e, src, flags, *_ = choose_energy(
        register_wh=8000,
        integral_wh=5000,
        integral_complete=True,
        used_tx_meter=False,
        mismatch_pct=5,
        mismatch_min_wh=100,
    )
    assert (e, flags) == (8000, ["power_register_mismatch"])


def test_pieces_of_many_runs_at_once_are_those_of_each_run_bit_for_bit() -> None:
    """The general path integrates all sessions' runs in one pass (pieces_from_many)."""
    rng = np.random.default_rng(1)
    for _ in range(400):
        runs = []
        for _ in range(int(rng.integers(1, 8))):
            n = int(rng.integers(0, 40))
            t = np.sort(1.79e9 + rng.uniform(0, 5000, n)).round(int(rng.integers(0, 4)))
            t = t[np.concatenate(([True], np.diff(t) > 0))] if n else t
            p = rng.choice([0.0, 10.0, 49.0, 50.0, 51.0, 7000.0, 11000.0], t.size)
            p = p + rng.normal(0, 5, t.size) * (rng.random(t.size) < 0.5)
            c = np.where(rng.random(t.size) < 0.3, np.nan, rng.uniform(0, 32, t.size))
            runs.append((t, p, c, float(rng.choice([0.0, 2.5, 25.0, 150.0, np.inf]))))
        gap = float(rng.choice([60.0, 600.0, 1800.0]))
        many = pieces_from_many(runs, threshold_w=50.0, gap_s=gap)
        for (t, p, c, soft), got in zip(runs, many, strict=True):
            ref = pieces_from(t, p, c, threshold_w=50.0, gap_s=gap, soft_s=soft)
            assert [x.tobytes() for x in got[0]] == [x.tobytes() for x in ref[0]]
            assert repr(got[1:]) == repr(ref[1:])  # gaps, soft (NaN-safe comparison)
