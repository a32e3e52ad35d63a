"""Rule files fail at load with file:line:col, never a traceback (issue 19):
deep expressions, huge durations, bad printf escapes and width bombs; and a
rendered template is bounded."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from chargewatch.alerting.expr import (
    MAX_DURATION_S,
    MAX_NESTING,
    ExprError,
    compile_expr,
    parse_duration,
)
from chargewatch.alerting.rulefmt import check_files
from chargewatch.alerting.templates import (
    MAX_FORMAT_WIDTH,
    MAX_RENDERED_CHARS,
    MAX_TEMPLATE_CHARS,
    TRUNCATED,
    Template,
    TemplateError,
)
from chargewatch.cli import main

DEEP_EXPRS = [
    ("(" * 500 + "power_w > 1" + ")" * 500, MAX_NESTING),  # where level 101 starts
    ("not " * 5000 + "present(power_w)", 4 * MAX_NESTING),  # the 101st 'not'
    ("-" * 5000 + "power_w > 0", MAX_NESTING),
    ("abs(" * 300 + "power_w" + ")" * 300 + " > 1", 4 * MAX_NESTING),
]


@pytest.mark.parametrize(("text", "pos"), DEEP_EXPRS)
def test_deep_expressions_are_a_nesting_error(text: str, pos: int) -> None:
    with pytest.raises(ExprError) as info:
        compile_expr(text)
    assert info.value.message == f"nested more than {MAX_NESTING} levels deep"
    assert info.value.pos == pos


def test_a_long_operator_chain_is_deep_too() -> None:
    # Parsed in a loop, but the tree (and compiling it) is 5,000 levels deep.
    with pytest.raises(ExprError) as info:
        compile_expr(" + ".join(["power_w"] * 5000) + " > 0")
    assert info.value.message == f"nested more than {MAX_NESTING} levels deep"


def test_nesting_up_to_the_bound_compiles_and_evaluates() -> None:
    depth = MAX_NESTING - 2  # the comparison and the signal are two levels
    expr = compile_expr("-" * depth + "power_w > 0")
    cond, value = expr.evaluate(0.0, {"power_w": np.array([5.0, -5.0])})
    assert cond.tolist() == [depth % 2 == 0, depth % 2 == 1]
    assert expr.kind == "bool" and value.shape == (2,)


@pytest.mark.parametrize("text", ["9" * 300 + "s", "1" * 5000 + "ms", "3651d", "521w4d"])
def test_huge_durations_are_a_value_error(text: str) -> None:
    with pytest.raises(ValueError, match="duration longer than the maximum of 3650d"):
        parse_duration(text)


def test_durations_up_to_the_bound_parse() -> None:
    assert parse_duration("3650d") == MAX_DURATION_S
    assert parse_duration("0" * 5000 + "5m") == 300.0


def _rules(tmp_path: Path, rules: str) -> Path:
    d = tmp_path / "rules"
    d.mkdir()
    (d / "r.yaml").write_text("groups:\n- name: g\n  rules:\n" + rules)
    return d


def test_rule_file_reports_each_bound_at_file_line_col(tmp_path: Path) -> None:
    d = _rules(
        tmp_path,
        "  - alert: Deep\n"
        f"    expr: {'(' * 500}power_w > 1{')' * 500}\n"
        "  - alert: Long\n"
        f"    expr: avg_over(power_w, {'9' * 300}s) > 1\n"
        f"    for: {'9' * 300}s\n"
        "  - alert: T\n"
        "    expr: power_w > 1\n"
        "    annotations:\n"
        '      a: "{{ printf \\"\\\\x\\" $value }}"\n'
        "      b: '{{ printf \"%999999999d\" $value }}'\n",
    )
    groups, problems = check_files([d])
    f = d / "r.yaml"
    assert [str(p) for p in problems] == [
        f'{f}:5:111: group "g", rule 1, "Deep": expr: nested more than 100 levels deep',
        f'{f}:7:29: group "g", rule 2, "Long": expr: duration longer than the maximum of 3650d',
        f'{f}:8:10: group "g", rule 2, "Long": duration longer than the maximum of 3650d',
        f'{f}:12:21: group "g", rule 3, "T": annotations.a: bad escape \\x in a string; '
        'use \\n, \\t, \\\\, \\", \\xHH or \\uHHHH',
        f'{f}:13:21: group "g", rule 3, "T": annotations.b: printf width or precision '
        "999999999 in '%999999999d'; at most 100",
    ]
    assert groups == [] or all(not g.rules for g in groups)


def test_run_with_such_a_rule_fails_at_start_with_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    d = _rules(tmp_path, "  - alert: Deep\n    expr: " + "not " * 5000 + "present(power_w)\n")
    cfg = tmp_path / "cw.yaml"
    cfg.write_text(f"rules: {d}\ndata_dir: {tmp_path / 'data'}\n")
    assert main(["run", "--config", str(cfg)]) == 2
    err = capsys.readouterr().err
    assert f"{d / 'r.yaml'}:5:411: " in err
    assert "nested more than 100 levels deep" in err
    assert "Traceback" not in err


@pytest.mark.parametrize(
    ("text", "message", "pos"),
    [
        ('{{ printf "\\x" $value }}', "bad escape \\x in a string", 11),
        ('{{ printf "ok \\xZZ" $value }}', "bad escape \\x in a string", 14),
        ('{{ printf "\\uD800" $value }}', "bad escape \\u in a string", 11),
        ('{{ printf "\\400" $value }}', "bad escape \\4 in a string", 11),
        ('{{ printf "%999999999d" $value }}', "printf width or precision 999999999", 11),
        ('{{ printf "v=%.1f %1.200f" $value }}', "printf width or precision 200", 18),
        (
            '{{ printf "%' + "9" * 4000 + 'd" $value }}',
            "printf width or precision 999999999999...",
            11,
        ),
        ("x" * (MAX_TEMPLATE_CHARS + 1), f"template longer than {MAX_TEMPLATE_CHARS}", 0),
    ],
)
def test_bad_templates_are_load_errors(text: str, message: str, pos: int) -> None:
    with pytest.raises(TemplateError) as info:
        Template(text)
    assert info.value.message.startswith(message)
    assert info.value.pos == pos


def test_go_escapes_and_non_ascii_format_text() -> None:
    t = Template('{{ printf "%.1f °C\\n\\t\\u00e9\\x41\\101\\\\ \\"q\\"" $value }}')
    assert t.render({}, 21.25) == '21.2 °C\n\téAA\\ "q"'  # "°" was mangled to "Â°"
    w = MAX_FORMAT_WIDTH
    assert Template(f'{{{{ printf "%{w}.{w}f" $value }}}}').render({}, 1.0) == f"{1.0:{w}.{w}f}"


def test_rendering_is_capped_with_a_marker() -> None:
    fmt = "%100d" * 60  # 6,000 characters from a 300-character template
    t = Template(f'{{{{ printf "{fmt}" $value }}}}')
    out = t.render({}, 1e308)
    assert len(out) == MAX_RENDERED_CHARS
    assert out.endswith(TRUNCATED)
    long_label = Template("charger $labels.charger").render({"charger": "C" * 10_000}, 0.0)
    assert len(long_label) == MAX_RENDERED_CHARS and long_label.endswith(TRUNCATED)
    assert Template("short $value").render({}, 2.0) == "short 2"


@pytest.mark.parametrize(
    "text", ["temperature_c > ²5", "avg_over(temperature_c, ٣m) > 80", "power_w > ５"]
)
def test_digits_of_other_scripts_are_refused_not_read(text: str) -> None:
    # "٣".isdigit() and float("٣") == 3.0: read leniently, a rule would mean
    # something its author cannot see.
    with pytest.raises(ExprError):
        compile_expr(text)


def test_durations_are_ascii() -> None:
    assert parse_duration("5m") == 300
    with pytest.raises(ValueError, match="not a duration"):
        parse_duration("٥m")
