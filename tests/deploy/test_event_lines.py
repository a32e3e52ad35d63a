"""status and alert lines: tags, field types, escaping, duration on resolve."""

from __future__ import annotations

import math

from chargewatch.alerting.state import Transition
from chargewatch.model.events import CONNECTOR_STATUSES, HeartbeatEvent, StatusEvent
from chargewatch.model.fleet import ChargerSpec, ConnectorIndex, Fleet, SiteSpec
from chargewatch.storage.event_lines import STATUS_CODES, AlertLines, alert_lines, status_lines


def _index() -> ConnectorIndex:
    return ConnectorIndex(
        Fleet({"depot a": SiteSpec("depot a")}, {"CP1": ChargerSpec("CP1", site="depot a")})
    )


def test_status_lines() -> None:
    events = [
        StatusEvent(
            "CP1",
            1,
            1795000000.5,
            1795000001.0,
            "Faulted",
            "GroundFailure",
            vendor_error_code='E"42',
        ),
        HeartbeatEvent("CP1", 1795000002.0, 1795000002.0),
        StatusEvent("CPX", 0, 0.0, 1795000003.0, "Weird"),
    ]
    lines = status_lines(events, _index())
    assert lines == [
        r"status,charger=CP1,connector=1,site=depot\ a "
        r'status="Faulted",error_code="GroundFailure",status_code=9i,vendor_error_code="E\"42" '
        "1795000000500",
        # Unknown charger: site "unknown"; no charger clock: the receive time.
        "status,charger=CPX,connector=0,site=unknown "
        'status="Weird",error_code="NoError",status_code=0i,vendor_error_code="" 1795000003000',
    ]


def test_status_codes_are_fixed() -> None:
    # Dashboards' value mappings hard-code these numbers.
    assert STATUS_CODES == {
        "Available": 1, "Preparing": 2, "Charging": 3, "SuspendedEVSE": 4, "SuspendedEV": 5,
        "Finishing": 6, "Reserved": 7, "Unavailable": 8, "Faulted": 9,
    }  # fmt: skip
    assert set(STATUS_CODES) == set(CONNECTOR_STATUSES)


def _tr(at: float, state: str, value: float = 80.0, **labels: str) -> Transition:
    base = {"alertname": "OverTemperature", "severity": "critical", "charger": "CP1",
            "connector": "1", "site": "s1", "fault": "over_temperature"}  # fmt: skip
    base.update(labels)
    return Transition(at, state, base["alertname"], base, {"summary": "hot, very"}, value)  # type: ignore[arg-type]


def test_alert_lines_duration_and_tags() -> None:
    al = AlertLines()
    fire = al.lines([_tr(100.0, "firing")])
    other = al.lines([_tr(110.0, "firing", charger="CP2")])
    resolve = al.lines([_tr(400.25, "resolved", value=math.nan)])
    assert fire == [
        "alert,alertname=OverTemperature,charger=CP1,connector=1,fault=over_temperature,"
        'severity=critical,site=s1 state="firing",firing=1i,value=80.0,duration_s=0.0 100000'
    ]
    assert "charger=CP2" in other[0]
    assert resolve == [
        "alert,alertname=OverTemperature,charger=CP1,connector=1,fault=over_temperature,"
        'severity=critical,site=s1 state="resolved",firing=0i,duration_s=300.25 400250'
    ]
    assert list(al.fired_at) and all(("charger", "CP2") in k for k in al.fired_at)


def test_alert_lines_error_code_label_and_unknown_start() -> None:
    tr = _tr(5.0, "resolved", alertname="ConnectorError", fault="", error_code="GroundFailure",
             runbook="http://x")  # fmt: skip
    (line,) = alert_lines([tr])
    tags, fields, _ = line.split(" ")
    assert "error_code=GroundFailure" in tags and "fault" not in tags and "runbook" not in tags
    assert "duration_s" not in fields  # never saw it fire: no made-up duration


def test_alert_lines_model_from_fleet() -> None:
    fleet = Fleet({}, {"CP1": ChargerSpec("CP1", site="s1", model="Easee Charge")})
    (line,) = AlertLines(fleet).lines([_tr(1.0, "firing")])
    assert r"model=Easee\ Charge," in line
