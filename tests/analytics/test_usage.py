from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chargewatch.analytics.session_frame import Window
from chargewatch.analytics.usage import daily, distributions, peak_power, utilisation
from tests.analytics.helpers import H, frame, session, ts

MON = ts("2024-01-01 00:00")  # a Monday


def test_utilisation_shares_and_hours_of_week() -> None:
    # Two connectors of one charger over one day; connector 1 occupied 08-12 (charging 08-10),
    # connector 2 occupied 09-10 without charging.
    f = frame(
        session("a", MON + 8 * H, MON + 12 * H, charge=(MON + 8 * H, MON + 10 * H)),
        session("b", MON + 9 * H, MON + 10 * H, connector=2),
    )
    (u,) = utilisation(f, Window(MON, MON + 24 * H), level="site")
    assert u["connectors"] == 2
    assert u["occupied_share"] == pytest.approx(5 / 48)
    assert u["charging_share"] == pytest.approx(2 / 48)
    occ = u["hour_of_week"]["occupied_share"]
    assert occ[8] == pytest.approx(0.5)
    assert occ[9] == pytest.approx(1.0)
    assert occ[12] == pytest.approx(0.0)
    # Tuesday is outside the window: unknown, not zero.
    assert occ[24 + 9] is None


def test_utilisation_counts_only_the_part_inside_the_window_and_uses_inventory() -> None:
    f = frame(session("a", MON - 2 * H, MON + 2 * H, charge=(MON - 2 * H, MON + H)))
    w = Window(MON, MON + 10 * H)
    (u,) = utilisation(f, w, level="charger", connectors={"C1": 2})
    assert u["connectors"] == 2
    assert u["occupied_hours"] == pytest.approx(2.0)
    assert u["charging_hours"] == pytest.approx(1.0)
    assert u["occupied_share"] == pytest.approx(2 / 20)


def test_utilisation_hour_of_week_is_in_site_local_time() -> None:
    # 16:00-17:00 UTC on a January Monday is 08:00-09:00 in Los Angeles.
    f = frame(session("a", MON + 16 * H, MON + 17 * H))
    (u,) = utilisation(f, Window(MON, MON + 48 * H), zones={"S1": "America/Los_Angeles"})
    occ = u["hour_of_week"]["occupied_share"]
    assert occ[8] == pytest.approx(1.0)
    assert sum(x or 0.0 for x in occ) == pytest.approx(1.0)


def test_daily_keeps_empty_days_and_uses_the_start_day() -> None:
    f = frame(
        session(
            "a", MON + 23 * H, MON + 26 * H, charge=(MON + 23 * H, MON + 25 * H), energy_wh=7000
        ),
        session(
            "b", MON + 49 * H, MON + 50 * H, charge=(MON + 49 * H, MON + 50 * H), energy_wh=3000
        ),
    )
    (d,) = daily(f, Window(MON, MON + 3 * 24 * H), level="fleet")
    assert [x["date"] for x in d["days"]] == ["2024-01-01", "2024-01-02", "2024-01-03"]
    assert [x["sessions"] for x in d["days"]] == [1, 0, 1]
    assert [x["energy_kwh"] for x in d["days"]] == [7.0, 0.0, 3.0]


def test_distributions_blocking_idle_is_after_the_last_charging_period() -> None:
    f = frame(
        session("a", MON, MON + 5 * H, charge=(MON + H, MON + 2 * H)),  # 3 h blocking
        session("b", MON, MON + H),  # never charged: no blocking figure
    )
    (d,) = distributions(f, Window(MON, MON + 24 * H), level="fleet")
    assert d["duration_h"]["summary"]["n"] == 2
    assert d["blocking_idle_h"]["summary"]["n"] == 1
    assert d["blocking_idle_h"]["total_h"] == pytest.approx(3.0)
    assert sum(b["count"] for b in d["energy_kwh"]["histogram"]) == 2


def test_peak_power_sums_concurrent_period_averages_and_not_back_to_back_ones() -> None:
    f = frame(
        session("a", MON, MON + 2 * H, charge=(MON, MON + 2 * H), energy_wh=14_000),  # 7 kW
        session(
            "b", MON + H, MON + 3 * H, connector=2, charge=(MON + H, MON + 2 * H), energy_wh=11_000
        ),  # 11 kW 01-02
        session(
            "c",
            MON + 2 * H,
            MON + 3 * H,
            connector=3,
            charge=(MON + 2 * H, MON + 3 * H),
            energy_wh=11_000,
        ),  # starts when a and b end
    )
    (p,) = peak_power(f, Window(MON, MON + 24 * H))
    assert p["peak_power_w"] == pytest.approx(18_000)
    assert p["at"] == MON + H


def test_connector_level_and_a_fleet_across_zones() -> None:
    f = frame(
        session("a", MON + 16 * H, MON + 17 * H, site="LA"),  # 08:00 Monday in Los Angeles
        session("b", MON + 7 * H, MON + 8 * H, charger="C2", site="OSL"),  # 08:00 in Oslo
        session("c", MON + 20 * H, MON + 19 * H, charger="C3", site="OSL"),  # stop before start
    )
    w = Window(MON, MON + 7 * 24 * H)
    zones = {"LA": "America/Los_Angeles", "OSL": "Europe/Oslo"}
    (fleet,) = utilisation(f, w, level="fleet", zones=zones)
    assert fleet["connectors"] == 3
    assert fleet["occupied_hours"] == pytest.approx(2.0)
    # Both sessions fall in local Monday 08:00-09:00; the LA site's window starts at
    # 16:00 local on Sunday, so that hour of week has one full week for all three.
    assert fleet["hour_of_week"]["occupied_share"][8] == pytest.approx(2 / 3)
    conns = utilisation(f, w, level="connector", zones=zones)
    assert [g["group"] for g in conns] == ["C1/1", "C2/1", "C3/1"]
    assert [g["connectors"] for g in conns] == [1, 1, 1]


spans = st.lists(
    st.tuples(st.floats(-20, 200, allow_nan=False), st.floats(0, 60, allow_nan=False)),
    min_size=1,
    max_size=10,
)


@settings(max_examples=40, deadline=None)
@given(spans)
def test_hour_of_week_seconds_add_up_to_the_clipped_occupied_time(
    hours: list[tuple[float, float]],
) -> None:
    f = frame(
        *[
            session(str(i), MON + a * H, MON + (a + d) * H, connector=i + 1)
            for i, (a, d) in enumerate(hours)
        ]
    )
    w = Window(MON, MON + 168 * H)
    got = utilisation(f, w, level="site", zones={"S1": "Asia/Kolkata"})
    want = sum(max(0.0, min(a + d, 168) - max(a, 0)) for a, d in hours)
    if not got:  # no session overlaps the window
        assert want == pytest.approx(0.0, abs=1e-6)
        return
    (u,) = got
    assert u["occupied_hours"] == pytest.approx(want, abs=1e-6)
    # Each hour of week appears exactly once in a one-week window (+05:30 zone: shifted bins).
    occ = u["hour_of_week"]["occupied_share"]
    total = sum(x for x in occ if x is not None) * u["connectors"]
    assert total == pytest.approx(want, abs=1e-6)


def test_peak_power_p99_ignores_a_short_spike() -> None:
    f = frame(
        session("a", MON, MON + 10 * H, charge=(MON, MON + 10 * H), energy_wh=70_000),  # 7 kW
        session(
            "spike",
            MON + H,
            MON + H + 60,
            connector=2,
            charge=(MON + H, MON + H + 60),
            energy_wh=5_000,
        ),  # 300 kW for a minute
    )
    (p,) = peak_power(f, Window(MON, MON + 24 * H))
    assert p["peak_power_w"] == pytest.approx(307_000)
    assert p["p99_power_w"] == pytest.approx(7_000)
