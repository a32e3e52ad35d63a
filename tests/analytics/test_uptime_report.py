"""The uptime section of ``chargewatch report``, figures worked out by hand."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from chargewatch.analytics.session_frame import Window
from chargewatch.cli import main
from chargewatch.reports.dataset_ledger import record_from_dict
from chargewatch.reports.html import fleet_report
from chargewatch.reports.uptime_section import uptime_summary
from chargewatch.storage.ledger import Ledger
from tests.analytics.helpers import H, session, ts

T0 = ts("2024-03-04 00:00")
OFF = {"charger": "C1", "site": "S1", "severity": "critical", "fault": "charger_offline"}
GF = {
    "charger": "C1",
    "connector": "1",
    "site": "S1",
    "severity": "critical",
    "error_code": "GroundFailure",
    "mrec": "CX002",
}


def _t(at: float, state: str, name: str, labels: dict[str, str]) -> dict[str, Any]:
    return {"at": at, "state": state, "alertname": name, "labels": labels}


@pytest.fixture
def ledger(tmp_path: Path) -> Any:
    with Ledger(tmp_path / "ledger.sqlite") as ledger:
        ledger.write(
            [
                record_from_dict(session("s1", T0 + 8 * H, T0 + 9 * H, energy_wh=9_000)),
                record_from_dict(session("s2", T0 + 10 * H, T0 + 11 * H, connector=2)),
            ]
        )
        ledger.write_alert_transitions(
            [
                # Offline 2h-4h (both ports) while port 1 has a ground fault 3h-5h.
                _t(T0 + 2 * H, "firing", "ChargerOffline", OFF),
                _t(T0 + 4 * H, "resolved", "ChargerOffline", OFF),
                _t(T0 + 3 * H, "firing", "OcppGroundFailure", GF),
                _t(T0 + 5 * H, "resolved", "OcppGroundFailure", GF),
            ]
        )
        # Port 2 Unavailable (not scheduled) 20h-21h, from the status history.
        ledger.write_port_status(
            [["C1", 2, "Unavailable", "NoError", T0 + 20 * H]], now=T0 + 20 * H
        )
        ledger.write_port_status([["C1", 2, "Available", "NoError", T0 + 21 * H]], now=0.0)
        yield ledger


def test_summary(ledger: Ledger) -> None:
    u = uptime_summary(ledger, T0, T0 + 24 * H)
    (site,) = u["sites"]
    # Port 1: 2h-5h = 180 min; port 2: 2h-4h + 20h-21h = 180 min; T = 2 x 1440 min.
    assert (site["site"], site["ports"], site["outage_min"]) == ("S1", 2, 360.0)
    assert site["uptime_pct"] == pytest.approx((2880 - 360) / 2880 * 100)
    # No month starts inside 4-5 March: NEVI's 12 months end at the window's end.
    assert u["nevi_end"] == T0 + 24 * H
    assert site["nevi_12m_pct"] == pytest.approx((2 * 525_600 - 360) / (2 * 525_600) * 100)
    assert site["ports_at_or_below_97"] == 0
    top = [(o["port"], o["down_min"], o["cause"]) for o in u["top_outages"]]
    assert top == [
        ("C1/1", 180.0, "offline"),
        ("C1/2", 120.0, "offline"),
        ("C1/2", 60.0, "unavailable"),
    ]
    assert u["top_outages"][0]["mrec"] == ["CX002"]
    assert u["failures_by_mrec"] == {"CX002": 1}


def test_nevi_figure_ends_at_the_last_month_start_in_the_window(ledger: Ledger) -> None:
    u = uptime_summary(ledger, ts("2024-02-20 00:00"), ts("2024-03-10 00:00"))
    assert u["nevi_end"] == ts("2024-03-01 00:00")  # before the outages: none in its year
    assert u["sites"][0]["nevi_12m_pct"] == pytest.approx(100.0)


def test_report_has_the_section(ledger: Ledger) -> None:
    report = fleet_report(ledger, Window(T0, T0 + 24 * H), title="t")
    assert "<h2>Uptime (23 CFR 680.116(b))</h2>" in report.html
    assert "C1/1" in report.html and "CX002" in report.html and "GroundFailure" in report.html
    assert "87.500 %" in report.html  # (2880 - 360) / 2880


_OPEN_6_TO_22 = (
    "sites:\n  - id: S1\n    timezone: UTC\n    operating_hours:\n"
    "      twentyfourseven: false\n      regular_hours:\n"
    + "".join(
        f'        - {{weekday: {d}, period_begin: "06:00", period_end: "22:00"}}\n'
        for d in range(1, 8)
    )
    + "chargers:\n  - {id: C1, site: S1, connectors: 1}\n"
)


def _outage_row(html: str) -> list[str]:
    """The cells of the one row of the top-outages table (it names the port C1/1)."""
    (row,) = re.findall(r"<tr><td class='l'>C1/1</td>.*?</tr>", html)
    return re.findall(r"<td[^>]*>(.*?)</td>", row)


def test_cli_report_excludes_a_fleets_closed_hours(tmp_path: Path) -> None:
    # Offline 20:00-06:00 at a site open 06:00-22:00: 8 of its 10 hours are
    # closed hours, excluded only when the report is given the fleet.
    led = tmp_path / "l.db"
    off = {"charger": "C1", "connector": "0", "site": "S1", "fault": "charger_offline"}
    with Ledger(led) as ledger:
        ledger.write([record_from_dict(session("s1", T0 + 8 * H, T0 + 9 * H))])
        ledger.write_alert_transitions(
            [_t(T0 + 20 * H, "firing", "O", off), _t(T0 + 30 * H, "resolved", "O", off)]
        )
    fleet = tmp_path / "fleet.yaml"
    fleet.write_text(_OPEN_6_TO_22)
    args = ["report", "--ledger", str(led), "--from", "2024-03-04T00:00:00Z"]
    args += ["--to", "2024-03-06T00:00:00Z"]
    assert main([*args, "--out", str(tmp_path / "plain")]) == 0
    assert main([*args, "--fleet", str(fleet), "--out", str(tmp_path / "fleet")]) == 0
    plain = _outage_row((tmp_path / "plain/report.html").read_text())
    with_fleet = _outage_row((tmp_path / "fleet/report.html").read_text())
    # port, site, start, end, down min, excluded min, cause, ...
    assert plain[4:6] == ["600.0", "0.000"]
    assert with_fleet[4:6] == ["120.0", "480.0"]
