"""Reports a planner can trust: the inventory sets what is counted, info alerts are
not failures, every day bar has a readable date, DC chargers are compared with DC
chargers, and a fleet over several time zones gets its daily figures."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import matplotlib.dates as mdates
import pytest
from matplotlib.figure import Figure

from chargewatch.analytics import daily, peers, reliability, utilisation
from chargewatch.analytics.session_frame import Window
from chargewatch.cli import main
from chargewatch.reports.dataset_ledger import record_from_dict
from chargewatch.reports.plots import day_axis
from chargewatch.storage.ledger import Ledger
from tests.analytics.helpers import H, frame, session, ts

T0 = ts("2024-03-04 00:00")  # a Monday
WEEK = Window(T0, T0 + 7 * 24 * H)


def _fleet_yaml(path: Path, chargers: int) -> Path:
    rows = "".join(
        f"  - {{id: C{i}, site: {'S1' if i % 2 else 'S2'}, connectors: 2}}\n"
        for i in range(1, chargers + 1)
    )
    path.write_text(
        "sites:\n  - {id: S1, timezone: America/Los_Angeles}\n"
        "  - {id: S2, timezone: Asia/Tokyo}\n"
        f"chargers:\n{rows}"
    )
    return path


def _sessions(chargers: int) -> list[dict[str, Any]]:
    # Sessions on chargers 1..n only; they start late in the UTC day so that Tokyo
    # (UTC+9) and Los Angeles (UTC-8) put them on different local dates.
    return [
        session(
            f"s{i}-{d}",
            T0 + d * 24 * H + 20 * H,
            T0 + d * 24 * H + 22 * H,
            charger=f"C{i}",
            site="S1" if i % 2 else "S2",
            charge=(T0 + d * 24 * H + 20 * H, T0 + d * 24 * H + 21 * H),
            energy_wh=7_000.0,
        )
        for i in range(1, chargers + 1)
        for d in range(7)
    ]


def test_inventory_sets_chargers_connectors_and_utilisation() -> None:
    f = frame(*_sessions(18))
    seen_only = utilisation(f, WEEK, level="fleet", connectors={f"C{i}": 2 for i in range(1, 21)})
    inventory = {f"C{i}": "S1" if i % 2 else "S2" for i in range(1, 21)}
    fleet = utilisation(
        f,
        WEEK,
        level="fleet",
        connectors={f"C{i}": 2 for i in range(1, 21)},
        charger_sites=inventory,
    )[0]
    assert seen_only[0]["chargers"] == 18 and seen_only[0]["connectors"] == 36
    assert fleet["chargers"] == 20 and fleet["connectors"] == 40
    # The same occupied hours over more connector time.
    assert fleet["occupied_hours"] == seen_only[0]["occupied_hours"]
    assert fleet["occupied_share"] * 40 == pytest.approx(seen_only[0]["occupied_share"] * 36)


def test_a_site_without_sessions_gets_its_group() -> None:
    f = frame(*_sessions(1))  # only C1, at S1
    sites = utilisation(f, WEEK, level="site", charger_sites={"C1": "S1", "C2": "S2"})
    by = {u["group"]: u for u in sites}
    assert by["S2"]["connectors"] == 1 and by["S2"]["occupied_share"] == 0.0


def test_daily_over_sites_in_several_time_zones() -> None:
    f = frame(*_sessions(4))
    zones = {"S1": "America/Los_Angeles", "S2": "Asia/Tokyo"}
    (fleet,) = daily(f, WEEK, level="fleet", zones=zones)
    dates = [d["date"] for d in fleet["days"]]
    # Los Angeles starts the window on 3 March, Tokyo ends it on 11 March.
    assert dates[0] == "2024-03-03" and dates[-1] == "2024-03-11"
    assert sum(d["sessions"] for d in fleet["days"]) == 28
    assert fleet["timezones"] == ["America/Los_Angeles", "Asia/Tokyo"]
    # 20:00 UTC: 12:00 the same day in Los Angeles, 05:00 the next day in Tokyo.
    first = {d["date"]: d["sessions"] for d in fleet["days"]}
    assert first["2024-03-04"] == 2  # the two Los Angeles chargers' Monday sessions
    assert first["2024-03-05"] == 4  # Los Angeles' Tuesday and Tokyo's Tuesday (Monday UTC)


def _transition(at: float, state: str, severity: str, charger: str = "C1") -> dict[str, Any]:
    labels = {"charger": charger, "site": "S1", "severity": severity, "fault": "idle_blocking"}
    return {"at": at, "state": state, "alertname": "IdleBlocking", "labels": labels}


def test_info_alerts_never_count_as_failures() -> None:
    f = frame(
        session("a", T0 + 1 * H, T0 + 5 * H, charge=(T0 + 1 * H, T0 + 2 * H)),
        session("b", T0 + 30 * H, T0 + 35 * H, charge=(T0 + 30 * H, T0 + 31 * H)),
    )
    info = [_transition(T0 + 3 * H, "firing", "info"), _transition(T0 + 4 * H, "resolved", "info")]
    warn = [
        _transition(T0 + 32 * H, "firing", "warning"),
        _transition(T0 + 33 * H, "resolved", "warning"),
    ]
    rel = reliability(f, info + warn, WEEK, level="charger")
    assert rel["sessions"][0]["failed"] == 1  # b, under the warning; a's info alert is not
    (c1,) = rel["chargers"]
    assert c1["faults"] == 1 and c1["info_alerts"] == 1
    only_info = reliability(f, info, WEEK, level="charger")
    assert only_info["sessions"][0]["failed"] == 0
    assert only_info["chargers"][0]["faults"] == 0


def test_day_labels_name_every_day_of_a_week_and_mondays_of_a_quarter() -> None:
    for n_days, expect in ((7, 7), (90, 13)):
        fig = Figure()
        ax = fig.subplots()
        x0 = mdates.date2num(datetime(2024, 3, 4))
        ax.bar([x0 + i for i in range(n_days)], [1] * n_days, width=1.0)
        day_axis(ax, n_days)
        fig.canvas.draw()
        inside = [t.get_text() for t in ax.get_xticklabels() if t.get_text()]
        assert len(inside) >= expect, inside
        if n_days == 7:
            assert inside[:7] == [
                "Mon 04 Mar", "Tue 05 Mar", "Wed 06 Mar", "Thu 07 Mar", "Fri 08 Mar",
                "Sat 09 Mar", "Sun 10 Mar",
            ]  # fmt: skip
        else:
            assert inside[0] == "Mon 04 Mar"
            assert all(lab.startswith("Mon ") for lab in inside), inside


def test_peers_are_compared_within_their_kind() -> None:
    # Five 11 kW AC chargers and one 150 kW DC charger at one site.
    rows = []
    for i in range(6):
        dc = i == 5
        for k in range(6):
            a = T0 + (k * 24 + i) * H
            rows.append(
                session(
                    f"p{i}-{k}",
                    a,
                    a + 2 * H,
                    charger=f"P{i}",
                    charge=(a, a + (0.4 if dc else 1.0 + 0.05 * i) * H),
                    energy_wh=(40_000.0 if dc else 10_000.0 + 100 * i),
                    max_power_w=150_000.0 if dc else 11_000.0,
                )
            )
    f = frame(*rows)
    result = {r["charger"]: r for r in peers(f, WEEK)}
    assert result["P5"]["kind"] == "DC" and result["P5"]["peers"] == 1
    assert result["P5"]["deviates"] == []  # no DC peer to differ from
    assert {result[f"P{i}"]["kind"] for i in range(5)} == {"AC"}
    assert all(result[f"P{i}"]["peers"] == 5 for i in range(5))
    # The inventory's word wins over the inferred kind.
    inv = peers(f, WEEK, dc={"P5": False})
    assert {r["charger"]: r["kind"] for r in inv}["P5"] == "AC"


def test_report_with_a_fleet_over_two_time_zones(tmp_path: Path) -> None:
    ledger_path = tmp_path / "ledger.sqlite"
    with Ledger(ledger_path) as ledger:
        ledger.write([record_from_dict(s) for s in _sessions(18)])
        ledger.write_alert_transitions(
            [
                _transition(T0 + 21 * H, "firing", "info"),
                _transition(T0 + 22 * H, "resolved", "info"),
            ]
        )
    fleet = _fleet_yaml(tmp_path / "fleet.yaml", 20)
    out = tmp_path / "rep"
    argv = [
        "report", "--ledger", str(ledger_path), "--fleet", str(fleet),
        "--from", "2024-03-04T00:00:00Z", "--to", "2024-03-11T00:00:00Z", "--out", str(out),
    ]  # fmt: skip
    assert main(argv) == 0
    html = (out / "report.html").read_text()
    assert "2 / 20 / 40" in html  # sites / chargers / connectors from the inventory
    assert "No failed sessions." in html  # the info alert failed nothing
    assert (out / "daily.png").read_bytes()[:4] == b"\x89PNG"
