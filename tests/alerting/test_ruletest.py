"""The promtool-style rule test runner must be able to fail."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from chargewatch.alerting.ruletest import expand_values, run_test_file
from chargewatch.alerting.testing import assert_rule_tests_pass

DATA = Path(__file__).parent / "testdata" / "ruletests"


def test_expand_values_follows_promtool_notation() -> None:
    assert expand_values("1+2x3", "number") == [1.0, 3.0, 5.0, 7.0]
    assert expand_values("10-1x2 5x2", "number") == [10.0, 9.0, 8.0, 5.0, 5.0, 5.0]
    assert expand_values("_x3 1", "number") == [None, None, None, 1.0]
    assert expand_values("Available Faultedx2", "string") == [
        "Available",
        "Faulted",
        "Faulted",
        "Faulted",
    ]
    assert expand_values("true 0 1x1", "bool") == [1.0, 0.0, 1.0, 1.0]
    with pytest.raises(ValueError):
        expand_values("1+x3", "number")


def test_wrong_expectation_fails_with_both_problems() -> None:
    res = run_test_file(DATA / "wrong_expectation.fail.yaml")
    assert not res.ok
    [case] = res.cases
    assert len(case.failures) == 2
    assert "alertname Hot at 2m: expected a firing alert with labels" in case.failures[0]
    assert "annotation 'summary' is 'CP1 at 90 C', expected 'CP1 at 91 C'" in case.failures[1]


def test_a_test_file_that_loads_no_rules_fails() -> None:
    res = run_test_file(DATA / "loads_no_rules.fail.yaml")
    assert not res.ok
    assert "a test that loads no rules tests nothing" in res.report()


def test_lookback_and_stale_semantics() -> None:
    assert assert_rule_tests_pass(DATA / "lookback_and_stale.pass.yaml") == 1


def test_cli_exit_code() -> None:
    def run(name: str) -> int:
        return subprocess.run(
            [sys.executable, "-m", "chargewatch", "rules", "test", str(DATA / name)],
            capture_output=True,
            check=False,
        ).returncode

    assert run("lookback_and_stale.pass.yaml") == 0
    assert run("wrong_expectation.fail.yaml") == 1
    assert run("loads_no_rules.fail.yaml") == 1
