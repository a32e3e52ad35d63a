from __future__ import annotations

import pytest

from chargewatch.analytics.frame import Window
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
