from __future__ import annotations

import numpy as np
import pytest

from chargewatch.analytics.peers import peers, robust_z
from chargewatch.analytics.revenue import revenue, revenue_per_day
from chargewatch.analytics.session_frame import Window
from tests.analytics.helpers import H, frame, session, ts

T0 = ts("2024-03-04 00:00")
W = Window(T0, T0 + 30 * 24 * H)


def cdr(sid: str, cost: float, kwh: float, tariff: str = "T1", currency: str = "EUR") -> dict:
    return {
        "session_id": sid,
        "tariff_id": tariff,
        "currency": currency,
        "total_cost_excl_vat": cost,
        "total_cost_incl_vat": cost * 1.2,
        "total_energy_kwh": kwh,
    }


def test_revenue_without_cdrs_is_unpriced_not_zero() -> None:
    f = frame(session("a", T0, T0 + H, charge=(T0, T0 + H)))
    (g,) = revenue(f, [], W)
    assert g["status"] == "unpriced"
    assert g["currencies"] == []
    assert g["unpriced_sessions"] == 1


def test_revenue_average_price_ignores_unpriced_sessions_and_keeps_currencies_apart() -> None:
    f = frame(
        session("a", T0, T0 + H, charge=(T0, T0 + H)),
        session("b", T0 + 2 * H, T0 + 3 * H, charge=(T0 + 2 * H, T0 + 3 * H)),
        session("c", T0 + 4 * H, T0 + 5 * H, charge=(T0 + 4 * H, T0 + 5 * H)),
        session("d", T0 + 6 * H, T0 + 7 * H, charge=(T0 + 6 * H, T0 + 7 * H)),
    )
    rows = [
        cdr("a", 3.0, 10.0),
        cdr("b", 1.0, 10.0, tariff="T2"),
        cdr("c", 50.0, 10.0, currency="NOK"),
    ]
    (g,) = revenue(f, rows, W)
    assert (g["priced_sessions"], g["unpriced_sessions"]) == (3, 1)
    cur = {c["currency"]: c for c in g["currencies"]}
    assert cur["EUR"]["revenue_excl_vat"] == pytest.approx(4.0)
    assert cur["EUR"]["avg_price_per_kwh_excl_vat"] == pytest.approx(0.2)
    assert cur["EUR"]["revenue_incl_vat"] == pytest.approx(4.8)
    assert [t["tariff_id"] for t in cur["EUR"]["tariffs"]] == ["T1", "T2"]
    assert cur["NOK"]["revenue_excl_vat"] == pytest.approx(50.0)


def test_robust_z_ignores_one_outlier_and_handles_equal_values() -> None:
    z = robust_z(np.array([10.0, 10.5, 9.5, 10.2, 9.8, 2.0]))
    assert abs(z[:5]).max() < 2.0
    assert z[5] < -10
    assert robust_z(np.array([1.0, 1.0, 1.0])).tolist() == [0.0, 0.0, 0.0]
    assert np.isnan(robust_z(np.array([np.nan, 1.0]))[0])


def test_peers_flags_a_charger_that_delivers_far_less_per_hour() -> None:
    sessions = []
    # Five chargers deliver about 7 kWh per plugged-in hour; C5 only 1.
    for c, kwh in enumerate([7.0, 7.2, 6.8, 7.1, 6.9, 1.0]):
        for k in range(6):
            t = T0 + (k * 24 + c) * H
            sessions.append(
                session(
                    f"{c}-{k}", t, t + H, charger=f"C{c}", charge=(t, t + H), energy_wh=kwh * 1000
                )
            )
    out = peers(frame(*sessions), W)
    flagged = {r["charger"]: r["deviates"] for r in out if r["deviates"]}
    assert list(flagged) == ["C5"]
    assert "kwh_per_connected_hour" in flagged["C5"]
    assert out[0]["charger"] == "C5"
    assert out[0]["z"]["kwh_per_connected_hour"] < -3.5


def test_peers_need_enough_chargers() -> None:
    sessions = [
        session(
            f"{c}-{k}",
            T0 + k * H,
            T0 + k * H + 600,
            charger=f"C{c}",
            charge=(T0 + k * H, T0 + k * H + 600),
            energy_wh=1000 * (c + 1) ** 3,
        )
        for c in range(3)
        for k in range(5)
    ]
    out = peers(frame(*sessions), W)
    assert all(r["deviates"] == [] and r["z"]["kwh_per_session"] is None for r in out)


def test_revenue_per_day_by_local_start_day() -> None:
    f = frame(
        session("a", T0 + 23.5 * H, T0 + 25 * H, charge=(T0 + 23.5 * H, T0 + 24 * H)),
        session("b", T0 + 2 * H, T0 + 3 * H, charge=(T0 + 2 * H, T0 + 3 * H)),
    )
    rows = revenue_per_day(
        f, [cdr("a", 2.0, 5.0), cdr("b", 1.0, 3.0)], W, zones={"S1": "Europe/Oslo"}
    )
    # 23:30 UTC on 4 March is 00:30 on 5 March in Oslo.
    assert [(r["date"], r["revenue_excl_vat"]) for r in rows] == [
        ("2024-03-04", 1.0),
        ("2024-03-05", 2.0),
    ]
