"""YAML loading is bounded (issue 19): alias bombs, alias cycles, deep nesting
and huge files are refused fast with ``file:line:col: key.path: ...``."""

from __future__ import annotations

import time
import tracemalloc
from pathlib import Path

import pytest

from chargewatch.cli import main
from chargewatch.config.settings import load_config, parse_config
from chargewatch.core import yamlsrc
from chargewatch.core.errors import ConfigError
from chargewatch.core.yamlsrc import MAX_DEPTH, load_yaml


def bomb(levels: int) -> str:
    """The classic "billion laughs": each level is nine aliases to the one before."""
    names = "abcdefghijklmnop"
    lines = [f"a: &a [{','.join(['lol'] * 9)}]"]
    for i in range(1, levels + 1):
        prev, cur = names[i - 1], names[i]
        lines.append(f"{cur}: &{cur} [{','.join(['*' + prev] * 9)}]")
    return "\n".join(lines) + "\n"


def _problems(text: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_yaml("f.yaml", text=text)
    return [str(p) for p in info.value.problems]


def test_the_reported_330_byte_config_bomb_fails_fast_without_memory(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    f = tmp_path / "cw.yaml"
    f.write_text(bomb(8))
    assert f.stat().st_size <= 330
    assert main(["run", "--config", str(f)]) == 2
    err = capsys.readouterr().err
    # The first anchor whose expansion alone passes the budget (9**5 lists of 10).
    assert f"{f}:6:4: f: aliases expand this to more than 100,000 values" in err
    assert "Traceback" not in err
    # Again with the command's imports done: 26.7 s and a MemoryError before.
    t0 = time.perf_counter()
    assert main(["run", "--config", str(f)]) == 2
    assert time.perf_counter() - t0 < 1.0
    tracemalloc.start()
    try:
        with pytest.raises(ConfigError):
            load_config(f, env={})
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 1_000_000  # 3 GB before


def test_the_reported_9_level_rule_file_bomb(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    f = tmp_path / "rules.yaml"
    f.write_text(bomb(9) + "groups: []\n")
    t0 = time.perf_counter()
    assert main(["rules", "check", str(f)]) == 1
    assert time.perf_counter() - t0 < 1.0
    assert f"{f}:6:4: f: aliases expand this" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a: &a [*a]\n", "f.yaml:1:4: a[0]: an alias to a node that contains it (a cycle)"),
        ("a: &a\n  b: *a\n", "f.yaml:2:3: a.b: an alias to a node that contains it (a cycle)"),
        ("x: &x {y: [1, {z: *x}]}\n", "f.yaml:1:16: x.y[1].z: an alias to a node that"),
    ],
)
def test_a_self_referencing_alias_is_a_clear_error(text: str, expected: str) -> None:
    (problem,) = _problems(text)
    assert problem.startswith(expected)


def test_deep_nesting_is_refused_with_its_position() -> None:
    (problem,) = _problems("k: " + "[" * (MAX_DEPTH + 1) + "]" * (MAX_DEPTH + 1))
    assert problem.startswith(f"f.yaml:1:{4 + MAX_DEPTH}: k[0][0][0][0][0]...[0][0][0]: ")
    assert problem.endswith(f"nested more than {MAX_DEPTH} levels deep")
    load_yaml("ok.yaml", text="k: " + "[" * (MAX_DEPTH - 1) + "]" * (MAX_DEPTH - 1))
    # Far deeper than Python's recursion limit: libyaml's own limit, still a ConfigError.
    (problem,) = _problems("[" * 100_000)
    assert problem.startswith("f.yaml:1:")


def test_depth_through_an_alias_counts_where_it_is_used() -> None:
    deep = "[" * 60 + "1" + "]" * 60
    (problem,) = _problems(f"a: &a {deep}\nb: {'[' * 50}*a{']' * 50}\n")
    assert problem.startswith("f.yaml:2:53: b[0][0][0][0][0]...[0][0][0]: nested more than")


def test_ordinary_aliases_still_load() -> None:
    src = load_yaml(
        "f.yaml",
        text="base: &labels {severity: warning, team: ops}\n"
        "a: {labels: *labels}\nb: {labels: *labels}\nlist: [*labels, *labels]\n",
    )
    assert src.data["a"]["labels"] == {"severity": "warning", "team": "ops"}
    assert src.data["list"][1] == src.data["b"]["labels"]
    assert src.where(("b", "labels", "team")) == (1, 41)  # the anchor's position


def test_a_big_file_does_not_hide_a_bomb(monkeypatch: pytest.MonkeyPatch) -> None:
    # The budget is what aliases add on top of the file's own values, however
    # many values the file itself has.
    monkeypatch.setattr(yamlsrc, "MAX_ALIAS_NODES", 50)
    plain = "list: [" + ",".join(str(i) for i in range(2000)) + "]\n"
    assert len(load_yaml("f.yaml", text=plain).data["list"]) == 2000
    (problem,) = _problems(plain + bomb(2))
    assert "aliases expand this to more than 50 values" in problem


def test_a_file_over_the_size_bound_is_refused_before_reading(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(yamlsrc, "MAX_BYTES", 1000)
    f = tmp_path / "big.yaml"
    f.write_text("a: " + "x" * 2000 + "\n")
    with pytest.raises(ConfigError) as info:
        load_yaml(f)
    assert str(info.value) == f"{f}: larger than 1,000 bytes; refused"
    with pytest.raises(ConfigError):
        load_yaml("t.yaml", text="a: " + "x" * 2000)


def test_not_utf8_is_a_clear_error(tmp_path: Path) -> None:
    f = tmp_path / "latin1.yaml"
    f.write_bytes(b"a: caf\xe9\n")
    with pytest.raises(ConfigError) as info:
        load_yaml(f)
    assert str(info.value).startswith(f"{f}: not UTF-8 text")


def test_an_environment_variable_bomb_is_not_expanded() -> None:
    src = load_yaml("cw.yaml", text="{}")
    t0 = time.perf_counter()
    cfg = parse_config(src, env={"CHARGEWATCH__MQTT__HOST": bomb(9)})
    assert time.perf_counter() - t0 < 1.0
    # Refused as YAML, the value stays the text it was.
    assert cfg.mqtt.host == bomb(9)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # Found by tests/test_loader_fuzz.py: tracebacks from PyYAML's constructors.
        ("a:\n  b: !!python/none x\n", "f.yaml:2:6: a.b: could not determine a constructor"),
        ("a: [1, " + "9" * 5001 + "]\n", "f.yaml:1:8: a[1]: a number of 5,001 digits; too long"),
        ("d: 2026-02-30\n", "f.yaml:1:4: d: cannot read '2026-02-30'"),
        # A list as a key: no name to report it by, and its text could be a bomb's.
        (bomb(9) + "? *i\n: 1\n", "f.yaml:9:4: a key must be a plain name"),  # at its anchor
    ],
)
def test_values_pyyaml_cannot_build_are_clear_errors(text: str, expected: str) -> None:
    (problem,) = _problems(text)
    assert problem.startswith(expected)
