"""Operating hours (fleet.yaml, OCPI 2.2.1 Hours): time outside them is excluded with
cause ``outside_operating_hours`` (23 CFR 680.116(b)(3)); across DST in
Europe/Berlin and America/New_York. Timelines worked out by hand."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from chargewatch.analytics.operating_hours import BY, closed_spans, hours_exclusions
from chargewatch.analytics.uptime import Port, alert_signals, port_uptime, status_signals
from chargewatch.cli import main
from chargewatch.config.fleet_file import parse_fleet
from chargewatch.core.errors import ConfigError
from chargewatch.core.yamlsrc import load_yaml
from chargewatch.model.fleet import Fleet
from chargewatch.model.hours import ExceptionalPeriod, OperatingHours, RegularHours
from chargewatch.storage.ledger import Ledger
from tests.analytics.helpers import H, ts

DAILY = "\n".join(
    f'          - {{weekday: {d}, period_begin: "06:00", period_end: "22:00"}}' for d in range(1, 8)
)


def _fleet(zone: str, hours: str = DAILY) -> Fleet:
    text = f"""\
sites:
  - id: S1
    timezone: {zone}
    operating_hours:
        twentyfourseven: false
        regular_hours:
{hours}
chargers:
  - {{id: C1, site: S1, connectors: 1}}
"""
    return parse_fleet(load_yaml("fleet.yaml", text=text))


def test_a_night_closed_across_berlins_spring_forward_is_seven_hours() -> None:
    # Open 06:00-22:00 local. 30 March 2024 22:00 CET = 21:00 UTC; 31 March (clocks
    # 02:00 -> 03:00) 06:00 CEST = 04:00 UTC: closed 7 real hours.
    fleet = _fleet("Europe/Berlin")
    lo, hi = ts("2024-03-30 12:00"), ts("2024-03-31 12:00")
    tags = hours_exclusions(fleet, lo, hi)
    assert [(e.start, e.end) for e in tags] == [(ts("2024-03-30 21:00"), ts("2024-03-31 04:00"))]
    assert {(e.charger, e.connector, e.cause, e.by) for e in tags} == {
        ("C1", "", "outside_operating_hours", BY)
    }
    # Offline from 20:00 UTC to 06:00 UTC: 600 min, 420 of them outside the hours.
    off = {"charger": "C1", "connector": "0", "fault": "charger_offline"}
    t = [
        {"at": ts("2024-03-30 20:00"), "state": "firing", "alertname": "O", "labels": off},
        {"at": ts("2024-03-31 06:00"), "state": "resolved", "alertname": "O", "labels": off},
    ]
    row = port_uptime(Port("C1", "1"), alert_signals(t, hi), tags, lo, hi)
    assert (row["outage_min"], row["excluded_min"]) == pytest.approx((600.0, 420.0))
    assert row["uptime_pct"] == pytest.approx((1440 - 180) / 1440 * 100)  # 87.5 %
    assert row["outages"][0]["evidence"]["exclusions"][0]["by"] == BY


def test_a_night_closed_across_new_yorks_fall_back_is_nine_hours() -> None:
    # 2 November 2024 22:00 EDT = 3 November 02:00 UTC; clocks 02:00 EDT -> 01:00 EST;
    # 3 November 06:00 EST = 11:00 UTC: closed 9 real hours.
    fleet = _fleet("America/New_York")
    lo, hi = ts("2024-11-03 00:00"), ts("2024-11-04 00:00")
    tags = hours_exclusions(fleet, lo, hi)
    # (The window ends at 19:00 EST, before the next closing at 22:00 EST.)
    assert [(e.start, e.end) for e in tags] == [(ts("2024-11-03 02:00"), ts("2024-11-03 11:00"))]
    # Faulted from 01:00 UTC (21:00 EDT) to 12:00 UTC (07:00 EST): 660 min, 540 closed.
    changes = [
        (ts("2024-11-03 01:00"), "C1", "1", "Faulted"),
        (ts("2024-11-03 12:00"), "C1", "1", "Available"),
    ]
    row = port_uptime(Port("C1", "1"), status_signals(changes, hi), tags, lo, hi)
    assert (row["outage_min"], row["excluded_min"]) == pytest.approx((660.0, 540.0))
    assert row["uptime_pct"] == pytest.approx((1440 - 120) / 1440 * 100)


def test_exceptional_openings_and_closings() -> None:
    # Regular: Mondays 08:00-18:00 (UTC). Monday 4 March 2024 closed 12:00-13:00;
    # Tuesday opened 10:00-12:00 by exception.
    hours = OperatingHours(
        twentyfourseven=False,
        regular_hours=(RegularHours(1, "08:00", "18:00"),),
        exceptional_openings=(ExceptionalPeriod(ts("2024-03-05 10:00"), ts("2024-03-05 12:00")),),
        exceptional_closings=(ExceptionalPeriod(ts("2024-03-04 12:00"), ts("2024-03-04 13:00")),),
    )
    mon = ts("2024-03-04 00:00")
    assert closed_spans(hours, "UTC", mon, mon + 48 * H) == [
        (mon, mon + 8 * H),
        (mon + 12 * H, mon + 13 * H),
        (mon + 18 * H, mon + 34 * H),
        (mon + 36 * H, mon + 48 * H),
    ]
    # A closing overrules twentyfourseven too; "24:00" ends a day.
    always = OperatingHours(exceptional_closings=hours.exceptional_closings)
    assert closed_spans(always, "UTC", mon, mon + 24 * H) == [(mon + 12 * H, mon + 13 * H)]
    late = OperatingHours(False, (RegularHours(1, "20:00", "24:00"),))
    assert closed_spans(late, "UTC", mon, mon + 24 * H) == [(mon, mon + 20 * H)]


BAD = """\
sites:
  - id: S1
    operating_hours:
      twentyfourseven: false
      regular_hours:
        - {weekday: 8, period_begin: "06:00", period_end: "22:00"}
        - {weekday: 1, period_begin: "22:00", period_end: "06:00"}
        - {weekday: 2, period_begin: "6:00", period_end: "25:00"}
      exceptional_closings:
        - {period_begin: 2024-12-24T18:00:00, period_end: "2024-12-26T00:00:00+01:00"}
  - id: S2
    operating_hours: {twentyfourseven: false}
  - id: S3
    operating_hours:
      twentyfourseven: true
      regular_hours: [{weekday: 1, period_begin: "06:00", period_end: "22:00"}]
uptime:
  min_power_w: -5
  sites: {S9: {grace_s: 60}}
"""


def test_bad_hours_are_reported_with_file_line_and_key_path() -> None:
    with pytest.raises(ConfigError) as err:
        parse_fleet(load_yaml("fleet.yaml", text=BAD))
    got = {(p.path, p.line): p.message for p in err.value.problems}
    hours = "sites[0].operating_hours"
    assert "1 (Monday) .. 7 (Sunday)" in got[(f"{hours}.regular_hours[0].weekday", 6)]
    assert "must be after period_begin" in got[(f"{hours}.regular_hours[1].period_end", 7)]
    assert '"HH:MM"' in got[(f"{hours}.regular_hours[2].period_begin", 8)]
    assert '"HH:MM"' in got[(f"{hours}.regular_hours[2].period_end", 8)]
    assert "UTC offset" in got[(f"{hours}.exceptional_closings[0].period_begin", 10)]
    assert "at least one regular_hours" in got[("sites[1].operating_hours", 12)]
    assert "twentyfourseven: false" in got[("sites[2].operating_hours.regular_hours", 16)]
    assert "0 <= P" in got[("uptime.min_power_w", 18)]
    assert "unknown site 'S9'" in got[("uptime.sites.S9", 19)]
    assert all(p.column > 0 and p.file == "fleet.yaml" for p in err.value.problems)


def test_the_cli_excludes_the_closed_hours_of_a_fleet(tmp_path: Path, capsys: Any) -> None:
    fleet = tmp_path / "fleet.yaml"
    fleet.write_text(
        "sites:\n  - id: S1\n    timezone: Europe/Berlin\n    operating_hours:\n"
        "      twentyfourseven: false\n      regular_hours:\n"
        + "".join(
            f'        - {{weekday: {d}, period_begin: "06:00", period_end: "22:00"}}\n'
            for d in range(1, 8)
        )
        + "chargers:\n  - {id: C1, site: S1, connectors: 1}\n"
    )
    ledger = tmp_path / "l.db"
    off = {"charger": "C1", "connector": "0", "fault": "charger_offline"}
    with Ledger(ledger) as led:
        led.write_alert_transitions(
            [
                {"at": ts("2024-03-30 20:00"), "state": "firing", "alertname": "O", "labels": off},
                {
                    "at": ts("2024-03-31 06:00"),
                    "state": "resolved",
                    "alertname": "O",
                    "labels": off,
                },
            ]
        )
    args = ["uptime", "--ledger", str(ledger), "--fleet", str(fleet)]
    args += ["--from", "2024-03-30T12:00:00Z", "--to", "2024-03-31T12:00:00Z"]
    assert main(args) == 0
    (port,) = json.loads(capsys.readouterr().out)["ports"]
    assert port["uptime_pct"] == pytest.approx(87.5)
    (tag,) = port["outages"][0]["evidence"]["exclusions"]
    assert (tag["cause"], tag["by"]) == ("outside_operating_hours", BY)
