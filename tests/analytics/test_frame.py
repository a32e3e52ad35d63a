from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from chargewatch.analytics.session_frame import coverage_integral, hour_of_week, local_day
from tests.analytics.helpers import H, frame, session, ts


def test_hour_of_week_utc_monday_midnight_is_zero_and_sunday_last_is_167() -> None:
    t = np.array([ts("2024-01-01 00:30"), ts("2024-01-07 23:59"), ts("2024-01-03 13:00")])
    assert hour_of_week(t, "UTC").tolist() == [0, 167, 2 * 24 + 13]


def test_hour_of_week_follows_local_time_across_dst() -> None:
    # 16:00 UTC is 08:00 PST in January and 09:00 PDT in July (both Mondays).
    t = np.array([ts("2024-01-08 16:00"), ts("2024-07-01 16:00")])
    assert hour_of_week(t, "America/Los_Angeles").tolist() == [8, 9]


def test_local_day_in_a_zone_east_of_utc() -> None:
    # 23:30 UTC on 31 Dec is already 1 Jan in Oslo.
    d = local_day(np.array([ts("2023-12-31 23:30")]), "Europe/Oslo")
    assert str(d.astype("datetime64[D]")[0]) == "2024-01-01"


intervals = st.lists(
    st.tuples(st.floats(0, 100, allow_nan=False), st.floats(0, 50, allow_nan=False)),
    min_size=0,
    max_size=12,
)


@settings(max_examples=60, deadline=None)
@given(intervals, st.lists(st.floats(-10, 160, allow_nan=False), min_size=1, max_size=8))
def test_coverage_integral_matches_brute_force(
    spans: list[tuple[float, float]], at: list[float]
) -> None:
    a = np.array([s for s, _ in spans])
    b = np.array([s + d for s, d in spans])
    x = np.array(sorted(at))
    got = coverage_integral(a, b, x)
    want = [sum(max(0.0, min(bb, xi) - aa) for aa, bb in zip(a, b, strict=True)) for xi in x]
    assert np.allclose(got, want, atol=1e-6)


def test_select_reindexes_periods() -> None:
    f = frame(
        session("a", 0, 2 * H, charge=(0, H)),
        session("b", 0, 2 * H, charger="C2", charge=(0.5 * H, H)),
    )
    g = f.select(f.charger == "C2")
    assert g.session_id.tolist() == ["b"]
    assert g.p_session.tolist() == [0, 0, 0]
    assert g.charging_s().tolist() == [0.5 * H]
    assert g.last_charging_end().tolist() == [H]
