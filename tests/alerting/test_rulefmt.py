"""Rule file validation: every problem, with file:line:col and rule context."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from chargewatch.alerting.rulefmt import check_files, load_groups
from chargewatch.core.errors import ConfigError

DATA = Path(__file__).parent / "testdata"
CTX = 'group "g", rule 1'

BAD = [
    ("for_without_expr.bad.yaml", [f"4:9: {CTX}, \"NoExpr\": missing 'expr'"]),
    ("unknown_rule_key.bad.yaml", [f"6:9: {CTX}, \"Hot\": unknown key 'summary'"]),
    (
        "unknown_signal.bad.yaml",
        [
            f"5:15: {CTX}, \"Hot\": expr: unknown signal 'temprature_c'; "
            "did you mean 'temperature_c'?"
        ],
    ),
    ("parse_error_column.bad.yaml", [f"5:43: {CTX}, \"Hot\": expr: unexpected ')'"]),
    ("block_expr_error.bad.yaml", [f'8:37: {CTX}, "Stuck": expr: unexpected end of expression']),
    (
        "unsafe_template.bad.yaml",
        [f"7:23: {CTX}, \"Hot\": annotations.summary: unknown template function 'exec'"],
    ),
    ("bad_for_duration.bad.yaml", [f"6:14: {CTX}, \"Hot\": not a duration: '5 minutes'"]),
    (
        "bad_severity.bad.yaml",
        [f"7:21: {CTX}, \"Hot\": severity 'page'; expected one of: critical, warning, info"],
    ),
    (
        "recording_rule.bad.yaml",
        [f"4:9: {CTX}: unknown key 'record'; recording rules are not supported"],
    ),
    (
        "unknown_status.bad.yaml",
        [f"5:25: {CTX}, \"Broken\": expr: 'Faulty' is not a known status; did you mean 'Faulted'?"],
    ),
    ("number_condition.bad.yaml", [f'5:23: {CTX}, "Power": expr: the expression is a number']),
    (
        "unknown_action.bad.yaml",
        [
            f"7:22: {CTX}, \"Lock\": command 'Reboot'",
            f'8:27: {CTX}, "Lock": expected an integer 1..10, got 0',
        ],
    ),
    (
        "every_problem_reported.bad.yaml",
        [
            "3:15: group \"g\": not a duration: 'soon'",
            'group "g", rule 1, "A": expr: unexpected end of expression',
            '9:9: group "g", rule 2, "B": unknown key \'colour\'',
            '13:20: group "g", rule 3, "C": label \'charger\' is set from the alert itself',
        ],
    ),
]


@pytest.mark.parametrize(("name", "expected"), BAD, ids=[b[0] for b in BAD])
def test_bad_rule_file_reports_every_problem_with_position(name: str, expected: list[str]) -> None:
    path = DATA / name
    _, problems = check_files([path])
    lines = [str(p) for p in problems]
    assert len(lines) == len(expected), lines
    for line, want in zip(lines, expected, strict=True):
        assert line.startswith(f"{path}:"), line
        assert want in line, (want, line)


def test_every_bad_fixture_is_in_the_table() -> None:
    assert {p.name for p in DATA.glob("*.bad.yaml")} == {b[0] for b in BAD}


def test_good_file_loads_with_windows_and_templated_labels() -> None:
    [group] = load_groups([DATA / "defaults_and_windows.good.yaml"])
    [rule] = group.rules
    assert (group.name, group.interval_s) == ("good", 15.0)
    assert (rule.hold_s, rule.keep_firing_for_s) == (60.0, 30.0)
    assert rule.expr.windows == {"temperature_c": 120.0}
    assert rule.history is not None and rule.history.capacity >= 8


def test_load_groups_raises_config_error_with_all_problems() -> None:
    with pytest.raises(ConfigError) as err:
        load_groups([DATA / "every_problem_reported.bad.yaml"])
    assert len(err.value.problems) == 4


def test_cli_check_exit_codes(rules_dir: Path) -> None:
    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "chargewatch", "rules", "check", *args],
            capture_output=True,
            text=True,
            check=False,
        )

    ok = run(str(rules_dir))
    assert ok.returncode == 0, ok.stderr
    assert "34 rules" in ok.stdout  # 32 + the two of rules/signatures.yaml
    bad = run(str(DATA / "every_problem_reported.bad.yaml"), str(DATA / "unknown_signal.bad.yaml"))
    assert bad.returncode == 1
    assert bad.stderr.count("bad.yaml:") == 6
    # State is keyed by group name, so the same name in two files is an error too.
    assert 'group "g": group name also used in' in bad.stderr
