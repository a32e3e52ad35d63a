"""Uptime per 23 CFR 680.116(b): timelines worked out by hand, checked against the code."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from chargewatch.analytics.uptime import (
    NEVI_T_MIN,
    Exclusion,
    Port,
    Signal,
    alert_signals,
    driver_uptime,
    month_starts,
    nevi_monthly,
    port_uptime,
    rollup,
    status_signals,
    timeline,
    year_before,
)
from tests.analytics.helpers import H, ts

P1 = Port("C1", "1", site="north", model="X")
P2 = Port("C1", "2", site="north", model="X")


def fault(a: float, b: float, connector: str = "1", code: str = "GroundFailure") -> Signal:
    return Signal("C1", connector, a, b, "error_code", f"Ocpp{code}", code, "CX002")


def test_outage_overlapping_an_exclusion() -> None:
    # Down 1h–3h; maintenance tagged 2h–4h: 120 min out, 60 of them excluded.
    # μ = (600 − (120 − 60)) / 600 × 100 = 90.
    sig = [fault(1 * H, 3 * H)]
    exc = [Exclusion("C1", "1", 2 * H, 4 * H, "scheduled_maintenance", by="ops", reason="PM")]
    row = port_uptime(P1, sig, exc, 0.0, 10 * H)
    assert row["outage_min"] == 120.0
    assert row["excluded_min"] == 60.0
    assert row["uptime_pct"] == pytest.approx(90.0)
    (outage,) = row["outages"]
    assert outage["cause"] == "error_code"  # only half of it is excluded
    ev = outage["evidence"]
    assert ev["error_codes"] == ["GroundFailure"] and ev["mrec"] == ["CX002"]
    assert ev["exclusions"][0]["by"] == "ops" and ev["exclusions"][0]["reason"] == "PM"
    assert timeline(P1, sig, exc, 0.0, 10 * H) == [
        (0.0, 1 * H, "up"),
        (1 * H, 2 * H, "down"),
        (2 * H, 3 * H, "excluded"),
        (3 * H, 10 * H, "up"),
    ]


def test_wholly_excluded_outage_takes_the_tagged_cause() -> None:
    row = port_uptime(
        P1, [fault(1 * H, 2 * H)], [Exclusion("C1", "", 0.0, 5 * H, "vandalism")], 0.0, 10 * H
    )
    assert row["uptime_pct"] == 100.0
    assert row["outages"][0]["cause"] == "vandalism"


def test_unlisted_cause_is_refused() -> None:
    with pytest.raises(ValueError, match=r"680\.116"):
        Exclusion("C1", "1", 0.0, 1.0, "network_outage")


def test_offline_while_a_connector_is_faulted_counts_once() -> None:
    # Charger offline 1h–2h (all ports); connector 1 faulted 1.5h–2.5h.
    # Port 1: one outage 1h–2.5h = 90 min (not 60 + 60). Port 2: 60 min.
    sig = [
        Signal("C1", "", 1 * H, 2 * H, "offline", "ChargerOffline"),
        fault(1.5 * H, 2.5 * H),
    ]
    r1 = port_uptime(P1, sig, [], 0.0, 10 * H)
    r2 = port_uptime(P2, sig, [], 0.0, 10 * H)
    assert r1["outage_min"] == 90.0 and len(r1["outages"]) == 1
    assert r1["outages"][0]["evidence"]["alerts"] == ["ChargerOffline", "OcppGroundFailure"]
    assert r2["outage_min"] == 60.0


def test_outage_across_a_month_edge_splits_between_months() -> None:
    sig = [fault(ts("2024-01-31 23:00"), ts("2024-02-01 02:00"))]
    jan = port_uptime(P1, sig, [], ts("2024-01-01 00:00"), ts("2024-02-01 00:00"))
    feb = port_uptime(P1, sig, [], ts("2024-02-01 00:00"), ts("2024-03-01 00:00"))
    assert (jan["outage_min"], feb["outage_min"]) == (60.0, 120.0)
    assert jan["t_min"] == 31 * 24 * 60
    assert jan["uptime_pct"] == pytest.approx((44_640 - 60) / 44_640 * 100)


def test_outage_across_dst_counts_real_minutes() -> None:
    # Oslo, 31 March 2024: clocks jump 02:00 → 03:00. Down 01:30 → 03:30 local
    # is one real hour, and March is 31 days less one hour long there.
    oslo = ZoneInfo("Europe/Oslo")
    a = datetime(2024, 3, 31, 1, 30, tzinfo=oslo).timestamp()
    b = datetime(2024, 3, 31, 3, 30, tzinfo=oslo).timestamp()
    starts = month_starts(ts("2024-03-10 00:00"), ts("2024-04-10 00:00"), "Europe/Oslo")
    assert starts == [ts("2024-02-29 23:00"), ts("2024-03-31 22:00")]
    march = port_uptime(P1, [fault(a, b)], [], starts[0], starts[1])
    assert march["outage_min"] == 60.0
    assert march["t_min"] == 31 * 24 * 60 - 60


def test_alert_transitions_become_signals() -> None:
    lab = {"charger": "C1", "connector": "1", "error_code": "GroundFailure", "severity": "critical"}
    info = {
        "charger": "C1",
        "connector": "1",
        "error_code": "EVCommunicationError",
        "severity": "info",
    }
    off = {"charger": "C1", "fault": "charger_offline", "severity": "critical"}
    meter = {"charger": "C1", "fault": "meter_stuck", "severity": "warning"}
    tr = [
        {"at": 1 * H, "state": "firing", "alertname": "OcppGroundFailure", "labels": lab},
        {"at": 2 * H, "state": "resolved", "alertname": "OcppGroundFailure", "labels": lab},
        {"at": 1 * H, "state": "firing", "alertname": "OcppEVCommunicationError", "labels": info},
        {"at": 1 * H, "state": "firing", "alertname": "MeterStuck", "labels": meter},
        {"at": 5 * H, "state": "firing", "alertname": "ChargerOffline", "labels": off},
    ]
    sig = alert_signals(tr, until=8 * H)
    assert sorted((s.kind, s.start, s.end) for s in sig) == [
        ("error_code", 1 * H, 2 * H),
        ("offline", 5 * H, 8 * H),  # still firing: runs to the end
    ]
    assert port_uptime(P2, sig, [], 0.0, 8 * H)["outage_min"] == 180.0


def test_status_changes_become_signals() -> None:
    ch = [(0.0, "C1", "1", "Available"), (H, "C1", "1", "Faulted"), (3 * H, "C1", "1", "Available")]
    ch.append((4 * H, "C1", "2", "Unavailable"))
    sig = status_signals(ch, until=6 * H, error_codes={(H, "C1", "1"): "HighTemperature"})
    assert port_uptime(P1, sig, [], 0.0, 6 * H)["outage_min"] == 120.0
    assert port_uptime(P2, sig, [], 0.0, 6 * H)["outage_min"] == 120.0
    assert sig[0].error_code == "HighTemperature"


def test_driver_experienced_uptime_counts_a_failed_start() -> None:
    sessions = [{"energy_wh": 12_000.0}, {"energy_wh": 10.0}, {"energy_wh": 8_000.0}]
    d = driver_uptime(sessions, [{"at": 5.0}])
    assert d == {
        "attempts": 4,
        "sessions": 3,
        "failed_starts": 1,
        "no_energy": 1,
        "success_pct": 50.0,
    }


def test_a_simulated_year_through_the_monthly_12_month_formula() -> None:
    # One site, two ports, 2023-01 .. 2024-12: port 1 down 2 h on the 15th of
    # every month, port 2 down 4 h; in 2024-03 port 1 is also down 10 h for a
    # utility interruption the operator tagged.
    sig: list[Signal] = []
    for year in (2023, 2024):
        for month in range(1, 13):
            day = ts(f"{year}-{month:02d}-15 10:00")
            sig.append(fault(day, day + 2 * H, connector="1"))
            sig.append(fault(day, day + 4 * H, connector="2"))
    grid = ts("2024-03-20 00:00")
    sig.append(Signal("C1", "1", grid, grid + 10 * H, "offline", "ChargerOffline"))
    exc = [Exclusion("C1", "1", grid, grid + 10 * H, "utility_interruption")]
    ends = month_starts(ts("2024-01-01 00:00"), ts("2025-01-01 00:00"))[1:]
    assert len(ends) == 12
    rows = nevi_monthly([P1, P2], sig, exc, ends)
    assert len(rows) == 24
    by_end = {(r["window_end"], r["connector_id"]): r for r in rows}
    # Month ending 2024-07-01: 12 monthly outages in the year before, plus the tagged one.
    p1 = by_end[(ts("2024-07-01 00:00"), "1")]
    assert p1["window_start"] == ts("2023-07-01 00:00")
    assert p1["t_min"] == NEVI_T_MIN
    assert (p1["outage_min"], p1["excluded_min"]) == (12 * 120 + 600, 600)
    assert p1["uptime_pct"] == pytest.approx((525_600 - 1_440) / 525_600 * 100)
    p2 = by_end[(ts("2024-07-01 00:00"), "2")]
    assert p2["uptime_pct"] == pytest.approx((525_600 - 2_880) / 525_600 * 100)
    # Month ending 2024-03-01: the utility outage lies after the window.
    assert by_end[(ts("2024-03-01 00:00"), "1")]["excluded_min"] == 0.0
    site = rollup([p1, p2], "site")
    assert site == [
        {
            "site": "north",
            "ports": 2,
            "uptime_pct": pytest.approx((2 * 525_600 - 1_440 - 2_880) / (2 * 525_600) * 100),
            "outage_min": 2040.0 + 2880.0,
            "excluded_min": 600.0,
        }
    ]
    assert rollup([p1, p2], "fleet")[0]["fleet"] == "fleet"
    assert rollup([p1, p2], "model")[0]["model"] == "X"


def test_the_year_before_29_february_ends_on_28_february() -> None:
    assert year_before(ts("2024-02-29 12:00")) == ts("2023-02-28 12:00")
    assert year_before(ts("2024-03-01 00:00")) == ts("2023-03-01 00:00")
