"""Every alert raised from an OCPP error code carries its ChargeX MREC code."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from chargewatch.alerting.rule import Rule
from chargewatch.alerting.rulefmt import load_groups
from chargewatch.alerting.signals import empty_frame
from chargewatch.analytics.uptime import alert_signals, status_signals
from chargewatch.model.events import ERROR_CODES
from chargewatch.model.mrec import (
    MREC,
    MREC_CODES,
    MREC_OF_ERROR_CODE,
    UNMAPPED,
    mrec_of,
    mrec_of_report,
    mrec_of_vendor_code,
)


def test_error_code_rules_carry_the_mrec_of_their_code(rules_dir: Path) -> None:
    rules = [r for g in load_groups([rules_dir]) for r in g.rules if "error_code" in r.labels]
    assert rules
    for r in rules:
        assert r.labels["mrec"].text == mrec_of(r.labels["error_code"].text), r.name
    labelled = {r.labels["mrec"].text for r in rules}
    assert labelled - {UNMAPPED} == set(MREC_OF_ERROR_CODE.values())


def test_the_chargex_pairs() -> None:
    # inl.gov/chargex/mrec, table "Minimum Required Error Codes", rows 1-6 (7: WeakSignal).
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


def test_the_chargex_table_is_complete() -> None:
    # ChargeX MREC Rev. 5: CX001-CX026, one name each.
    assert [m.code for m in MREC] == [f"CX{n:03d}" for n in range(1, 27)]
    assert len({m.name for m in MREC}) == 26
    assert (MREC_CODES["CX014"].name, MREC_CODES["CX026"].name) == ("PilotFault", "CutCable")
    # The OCPP 1.6 codes the table pairs: CX001-CX007, by the same name.
    pairs = [
        "ConnectorLockFailure",
        "GroundFailure",
        "HighTemperature",
        "OverCurrentFailure",
        "OverVoltage",
        "UnderVoltage",
        "WeakSignal",
    ]
    assert {c: mrec_of(c) for c in pairs} == {c: f"CX{n:03d}" for n, c in enumerate(pairs, 1)}
    assert set(MREC_OF_ERROR_CODE) == set(pairs)
    assert mrec_of("WeakSignal") == "CX007"


def test_codes_without_a_chargex_pair_are_unmapped_not_guessed() -> None:
    for code in ERROR_CODES:
        if code not in MREC_OF_ERROR_CODE:
            assert mrec_of(code) == UNMAPPED, code
    assert mrec_of("PowerSwitchFailure") == UNMAPPED  # resembles CX017, is not it


@pytest.mark.parametrize(
    ("vendor", "expected"),
    [
        ("CX014", "CX014"),  # EVerest: vendorId https://chargex.inl.gov, code as is
        ("cx020", "CX020"),
        ("CX014,CX023", "CX014"),  # concurrent errors, comma separated: the first
        ("evse_board_support/MREC15PowerLoss", "CX015"),  # EVerest error type
        ("MREC11CableCheckFault", "CX011"),  # EVerest's spelling of CX011
        ("CX027", ""),  # not in the table
        ("0x0000", ""),  # ABB Terra AC, tests/fixtures/real_ocpp: no error
        ("none", ""),  # Etrel INCH, tests/fixtures/real_ocpp
        ("", ""),
    ],
)
def test_vendor_codes_that_state_an_mrec(vendor: str, expected: str) -> None:
    assert mrec_of_vendor_code(vendor) == expected


def test_a_stated_code_wins_over_the_pairing() -> None:
    # 1.6: errorCode OtherError with vendorErrorCode CX008 (emergency stop).
    assert mrec_of_report("OtherError", vendor_error_code="CX008") == "CX008"
    # 2.0.1: a NotifyEvent problem decoded to OverCurrentFailure with techCode CX004.
    assert mrec_of_report("OverCurrentFailure", tech_code="CX004") == "CX004"
    assert mrec_of_report("GroundFailure", vendor_error_code="E-17") == "CX002"
    assert mrec_of_report("InternalError") == UNMAPPED


def test_status_history_signals_carry_the_mrec() -> None:
    changes = [(0.0, "C1", "1", "Faulted"), (60.0, "C1", "1", "Available")]
    (sig,) = status_signals(changes, 100.0, {(0.0, "C1", "1"): "GroundFailure"})
    assert (sig.error_code, sig.mrec) == ("GroundFailure", "CX002")
    (sig,) = status_signals(changes, 100.0, {(0.0, "C1", "1"): "CX019"})
    assert sig.mrec == "CX019"


def _ground_failure_rule(rules_dir: Path) -> Rule:
    (rule,) = [
        r for g in load_groups([rules_dir]) for r in g.rules if r.name == "OcppGroundFailure"
    ]
    rule.alerts.hold_s = 0.0  # fire at once: the labels are what is checked here
    return rule


def _frame(mrec: list[str]) -> dict[str, Any]:
    n = len(mrec)
    frame = empty_frame(n)
    frame["charger"] = np.array([f"C{i}" for i in range(n)], dtype=object)
    frame["connector"] = np.full(n, "1", dtype=object)
    frame["error_code"] = np.full(n, "GroundFailure", dtype=object)
    frame["mrec"] = np.array(mrec, dtype=object)
    return frame


def test_a_stated_mrec_replaces_the_rules_label_and_only_a_table_code(rules_dir: Path) -> None:
    rule = _ground_failure_rule(rules_dir)
    stated = ["CX019", "", "=cmd|' /C calc'!A0", "CX027", "cx019", "CX0\u0661\u0669", "Z" * 500]
    got = {t.labels["charger"]: t.labels["mrec"] for t in rule.evaluate(0.0, _frame(stated))}
    # Only a code of the ChargeX table, as FleetState keeps it, replaces the fallback.
    assert got == {"C0": "CX019", **{f"C{i}": "CX002" for i in range(1, len(stated))}}


def test_the_stated_mrec_is_part_of_the_alerts_identity(rules_dir: Path) -> None:
    # The cached label set per connector must not keep an old stated code.
    rule = _ground_failure_rule(rules_dir)
    first = rule.evaluate(0.0, _frame(["CX019"]))
    later = rule.evaluate(10.0, _frame(["CX021"]))
    assert [(t.state, t.labels["mrec"]) for t in first] == [("firing", "CX019")]
    assert sorted((t.state, t.labels["mrec"]) for t in later) == [
        ("firing", "CX021"),
        ("resolved", "CX019"),
    ]


def test_a_rule_without_an_mrec_label_gets_none_from_the_data(tmp_path: Path) -> None:
    (tmp_path / "r.yaml").write_text(
        "groups:\n- name: g\n  rules:\n  - alert: Ground\n"
        "    expr: 'error_code == \"GroundFailure\"'\n    labels: {severity: critical}\n"
    )
    (rule,) = [r for g in load_groups([tmp_path]) for r in g.rules]
    (t,) = rule.evaluate(0.0, _frame(["CX019"]))
    assert "mrec" not in t.labels
