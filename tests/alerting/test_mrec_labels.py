"""Every alert raised from an OCPP error code carries its ChargeX MREC code."""

from __future__ import annotations

from pathlib import Path

from chargewatch.alerting.rulefmt import load_groups
from chargewatch.analytics.uptime import alert_signals
from chargewatch.model.mrec import MREC_OF_ERROR_CODE, UNMAPPED, mrec_of


def test_error_code_rules_carry_the_mrec_of_their_code(rules_dir: Path) -> None:
    rules = [r for g in load_groups([rules_dir]) for r in g.rules if "error_code" in r.labels]
    assert rules
    for r in rules:
        assert r.labels["mrec"].text == mrec_of(r.labels["error_code"].text), r.name
    labelled = {r.labels["mrec"].text for r in rules}
    assert labelled - {UNMAPPED} == set(MREC_OF_ERROR_CODE.values())


def test_the_six_chargex_pairs() -> None:
    # inl.gov/chargex/mrec, table "Minimum Required Error Codes", rows 1-6.
    assert [mrec_of(c) for c in ("ConnectorLockFailure", "GroundFailure", "HighTemperature")] == [
        "CX001",
        "CX002",
        "CX003",
    ]
    assert [mrec_of(c) for c in ("OverCurrentFailure", "OverVoltage", "UnderVoltage")] == [
        "CX004",
        "CX005",
        "CX006",
    ]
    assert mrec_of("InternalError") == UNMAPPED


def test_an_alert_recorded_before_the_label_existed_gets_its_mrec_from_the_code() -> None:
    labels = {
        "charger": "C1",
        "connector": "1",
        "error_code": "HighTemperature",
        "severity": "critical",
    }
    tr = [
        {"at": 0.0, "state": "firing", "alertname": "OcppHighTemperature", "labels": labels},
        {"at": 60.0, "state": "resolved", "alertname": "OcppHighTemperature", "labels": labels},
    ]
    (sig,) = alert_signals(tr, until=100.0)
    assert sig.mrec == "CX003"
