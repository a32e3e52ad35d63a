"""The shipped rules: valid, covering the whole vocabulary, and all unit-tested."""

from __future__ import annotations

from pathlib import Path

import yaml

from chargewatch.alerting.rule import Rule
from chargewatch.alerting.rulefmt import load_groups
from chargewatch.alerting.signals import FAULTS
from chargewatch.alerting.testing import assert_rule_tests_pass, assert_rules_valid
from chargewatch.detectors.params import DetectorConfig
from chargewatch.model.events import ERROR_CODES


def test_default_rules_are_valid(rules_dir: Path) -> None:
    assert_rules_valid(rules_dir)


def test_every_fault_and_error_code_has_a_rule_with_the_label_contract(rules_dir: Path) -> None:
    rules = [r for g in load_groups([rules_dir]) for r in g.rules]
    faults = {r.labels["fault"].text for r in rules if "fault" in r.labels}
    codes = {r.labels["error_code"].text for r in rules if "error_code" in r.labels}
    assert faults == set(FAULTS)
    assert codes == set(ERROR_CODES) - {"NoError"}
    for r in rules:
        assert r.labels["severity"].text in ("critical", "warning", "info"), r.name
        assert {"summary", "description", "runbook_url"} <= set(r.annotations), r.name
        # Boot and reconnect blips must not page: every default rule waits 60 s
        # from onset, in the detector's minimum duration and the rule's `for`
        # together (docs/alerting.md, "Time to detect").
        assert _debounce_s(r) + r.hold_s >= 60, r.name


def _debounce_s(rule: Rule) -> float:
    """How long the rule's detector needs its condition before it turns on."""
    fault = rule.labels["fault"].text if "fault" in rule.labels else ""
    params = DetectorConfig().params()
    if fault not in params:
        return 0.0  # an OCPP error code: on as soon as the charger reports it
    return float(getattr(params[fault], "min_duration_s", 0.0))


def test_every_default_rule_has_unit_tests(rules_dir: Path) -> None:
    names = {r.name for g in load_groups([rules_dir]) for r in g.rules}
    tested = set()
    for f in (rules_dir / "tests").glob("*.yaml"):
        for t in yaml.safe_load(f.read_text())["tests"]:
            tested |= {c["alertname"] for c in t["alert_rule_test"] if c.get("exp_alerts")}
    assert names <= tested, sorted(names - tested)


def test_default_rule_unit_tests_pass(rules_dir: Path) -> None:
    assert assert_rule_tests_pass(rules_dir / "tests") >= 32
