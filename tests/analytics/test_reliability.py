from __future__ import annotations

from typing import Any

import pytest

from chargewatch.analytics.reliability import fault_intervals, reliability
from chargewatch.analytics.session_frame import Window
from tests.analytics.helpers import H, frame, session, ts

T0 = ts("2024-03-04 00:00")
W = Window(T0, T0 + 100 * H)


def alert(at: float, state: str, charger: str = "C1", **labels: str) -> dict[str, Any]:
    base = {"charger": charger, "site": "S1", "severity": "critical", "fault": "charger_offline"}
    return {"at": at, "state": state, "alertname": "ChargerOffline", "labels": base | labels}


def test_availability_mttr_mtbf_from_two_outages() -> None:
    history = [
        alert(T0 + 10 * H, "firing"),
        alert(T0 + 12 * H, "resolved"),
        # Two alerts overlapping make one outage of 3 h.
        alert(T0 + 50 * H, "firing"),
        alert(T0 + 51 * H, "firing", fault="over_temperature"),
        alert(T0 + 52 * H, "resolved"),
        alert(T0 + 53 * H, "resolved", fault="over_temperature"),
    ]
    f = frame(session("a", T0, T0 + H, charge=(T0, T0 + H)))
    r = reliability(f, history, W)
    (c,) = r["chargers"]
    assert c["down_hours"] == pytest.approx(5.0)
    assert c["availability"] == pytest.approx(0.95)
    assert c["outages"] == 2
    assert c["mttr_hours"] == pytest.approx(2.5)
    assert c["mtbf_hours"] == pytest.approx(47.5)
    assert c["faults_by_kind"] == {"charger_offline": 2, "over_temperature": 1}


def test_warning_alerts_do_not_count_as_down_and_open_alerts_run_to_the_end() -> None:
    history = [
        alert(T0 + 10 * H, "firing", severity="warning", fault="phase_imbalance"),
        alert(T0 + 90 * H, "firing", charger="C2"),
        {"at": T0, "state": "firing", "alertname": "NoFaultLabel", "labels": {"charger": "C1"}},
    ]
    r = reliability(frame(), history, W)
    by = {c["charger"]: c for c in r["chargers"]}
    assert by["C1"]["availability"] == 1.0
    assert by["C1"]["faults"] == 1
    assert by["C2"]["down_hours"] == pytest.approx(10.0)
    assert by["C2"]["mttr_hours"] == pytest.approx(10.0)
    assert r["worst"][0]["charger"] == "C2"


def test_no_fault_history_is_unknown_not_perfect() -> None:
    f = frame(session("a", T0, T0 + H, charge=(T0, T0 + H)))
    r = reliability(f, None, W)
    assert r["fault_history"] is False
    assert r["chargers"] == []


def test_failed_sessions_no_energy_or_fault_while_plugged_in() -> None:
    f = frame(
        session("ok", T0, T0 + H, charge=(T0, T0 + H)),
        session("empty", T0 + 2 * H, T0 + 3 * H),
        session("faulted", T0 + 4 * H, T0 + 6 * H, charge=(T0 + 4 * H, T0 + 5 * H)),
        session(
            "other_connector", T0 + 4 * H, T0 + 6 * H, connector=2, charge=(T0 + 4 * H, T0 + 6 * H)
        ),
    )
    history = [
        alert(
            T0 + 5 * H, "firing", connector="1", fault="charging_interrupted", severity="warning"
        ),
        alert(
            T0 + 5.5 * H,
            "resolved",
            connector="1",
            fault="charging_interrupted",
            severity="warning",
        ),
    ]
    r = reliability(f, history, W, level="charger")
    (s,) = r["sessions"]
    assert (s["sessions"], s["failed"], s["no_energy"]) == (4, 2, 1)
    assert s["failed_rate"] == pytest.approx(0.5)


def test_intervals_clip_to_the_window() -> None:
    iv = fault_intervals([alert(T0 - 5 * H, "firing"), alert(T0 + H, "resolved")], W)
    assert [(i["start"], i["end"], i["began"]) for i in iv] == [(T0, T0 + H, T0 - 5 * H)]
