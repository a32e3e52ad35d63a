"""Fuzzing the file loaders (issue 19): random and nasty YAML, rule expressions,
templates and tariffs either load or raise the loader's own error, never any
other exception. Inputs are small by construction, so every example is quick;
the bounds themselves keep the nasty ones (alias bombs, deep nesting, huge
numbers) quick too.
"""

from __future__ import annotations

import contextlib
import json
import tempfile
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chargewatch.alerting.expr import ExprError, compile_expr
from chargewatch.alerting.rulefmt import check_files
from chargewatch.alerting.templates import MAX_RENDERED_CHARS, Template, TemplateError
from chargewatch.billing.cdr import build_cdr
from chargewatch.billing.tariff import parse_tariff
from chargewatch.billing.tariff_files import load_json
from chargewatch.config.fleet_file import parse_fleet
from chargewatch.config.settings import parse_config
from chargewatch.core.errors import ConfigError
from chargewatch.core.yamlsrc import load_yaml
from tests.billing.helpers import C, P, Span, session

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# ---------------------------------------------------------------- YAML

huge_numbers = st.sampled_from(
    ["1e308", "1e99999", "-1e400", "9" * 5001, "0." + "1" * 3000, ".inf", ".nan", "0x" + "f" * 200]
)
yaml_scalars = st.one_of(
    st.from_regex(r"[a-z_]{1,8}", fullmatch=True),
    st.integers().map(str),
    huge_numbers,
    st.sampled_from(
        [
            "~",
            "true",
            "''",
            '"\\x"',
            "2026-01-01",
            "2026-02-30",
            "!!binary aGk=",
            "!!binary %",
            "!!python/none",
            "? [a]",
            "{[x]: 1}",
        ]
    ),
)


@st.composite
def alias_documents(draw: st.DrawFn) -> str:
    """Anchors, each a list of aliases to earlier anchors: bombs, and ordinary sharing."""
    levels = draw(st.integers(1, 12))
    fan = draw(st.integers(1, 12))
    lines = [f"a0: &a0 [{draw(yaml_scalars)}]"]
    for i in range(1, levels):
        refs = [f"*a{draw(st.integers(0, i - 1))}" for _ in range(fan)]
        if draw(st.booleans()):
            refs.append(f"*a{i}")  # inside its own anchor: a cycle
        lines.append(f"a{i}: &a{i} [{', '.join(refs)}]")
    return "\n".join(lines) + "\n"


@st.composite
def nested_documents(draw: st.DrawFn) -> str:
    depth = draw(st.integers(1, 1200))
    opener, closer = draw(st.sampled_from([("[", "]"), ("{a: ", "}")]))
    inner = draw(yaml_scalars)
    return "k: " + opener * depth + inner + closer * draw(st.integers(0, depth))


yaml_texts = st.one_of(
    alias_documents(),
    nested_documents(),
    st.text(alphabet="ab:&*[]{},-!|>'\"\\#?\n 0123456789.e", max_size=200),
    st.lists(st.tuples(st.from_regex(r"[a-z]{1,6}", fullmatch=True), yaml_scalars), max_size=8).map(
        lambda kv: "".join(f"{k}: {v}\n" for k, v in kv)
    ),
)


def _loads_or_config_error(load: Any, *args: Any) -> None:
    with contextlib.suppress(ConfigError):
        load(*args)


@FUZZ
@given(yaml_texts)
def test_yaml_loaders_load_or_raise_config_error(text: str) -> None:
    try:
        src = load_yaml("f.yaml", text=text)
    except ConfigError:
        return
    _loads_or_config_error(parse_config, src, {})
    _loads_or_config_error(parse_fleet, src)


@FUZZ
@given(yaml_texts)
def test_an_environment_override_is_never_an_exception(text: str) -> None:
    src = load_yaml("cw.yaml", text="{}")
    _loads_or_config_error(parse_config, src, {"CHARGEWATCH__MQTT__HOST": text})


# ---------------------------------------------------------------- rules

expr_tokens = st.sampled_from(
    [
        "(", ")", "not", "-", "+", "*", "/", "%", "and", "or", "==", "<", ">=", "in",
        ",", "power_w", "status", "temperature_c", '"Faulted"', "'x'", "1", "1e999",
        "9" * 400, "5m", "9" * 300 + "s", "1h30m", "avg_over", "rate", "abs", "present",
        "true", "!", "&&", '"\\', "\n",
    ]
)  # fmt: skip


@st.composite
def expressions(draw: st.DrawFn) -> str:
    tokens = draw(st.lists(expr_tokens, max_size=40))
    # Deep prefixes: what the parser's recursion met first.
    prefix = draw(st.sampled_from(["", "(", "not ", "-", "abs("])) * draw(st.integers(0, 3000))
    return prefix + " ".join(tokens)


@FUZZ
@given(expressions())
def test_expressions_compile_or_raise_expr_error(text: str) -> None:
    with contextlib.suppress(ExprError):
        compile_expr(text)


template_parts = st.sampled_from(
    [
        "{{", "}}", "$value", "$labels.charger", "printf", '"%d"', '"%999999999d"', '"%.1f"',
        '"\\x"', '"\\u00e9"', '"\\', '"%' + "9" * 50 + 'f"', "|", "humanize", "toUpper",
        "exec", " ", "text", '"%100d%100d%100d%100d%100d%100d%100d%100d%100d%100d"',
    ]
)  # fmt: skip


@FUZZ
@given(st.lists(template_parts, max_size=30).map("".join), st.floats() | st.just(1e308))
def test_templates_load_or_raise_template_error_and_render_bounded(text: str, value: float) -> None:
    try:
        t = Template(text)
    except TemplateError:
        return
    assert len(t.render({"charger": "C" * 5000}, value)) <= MAX_RENDERED_CHARS


@FUZZ
@given(expressions(), st.lists(template_parts, max_size=12).map("".join), yaml_scalars)
def test_rule_files_check_without_exceptions(expr: str, template: str, duration: str) -> None:
    doc = {
        "groups": [
            {
                "name": "g",
                "rules": [
                    {
                        "alert": "A",
                        "expr": expr,
                        "for": duration,
                        "annotations": {"summary": template},
                    }
                ],
            }
        ]
    }
    with tempfile.TemporaryDirectory() as d:
        f = Path(d) / "r.yaml"
        f.write_text(json.dumps(doc))  # JSON is YAML
        _, problems = check_files([f])
        assert all(p.file == str(f) for p in problems)


# ---------------------------------------------------------------- tariffs

json_numbers = st.one_of(
    st.sampled_from(["1e308", "-1e308", "1e99999999999999999999", "9" * 5001, "1." + "1" * 5001]),
    st.integers(-(10**12), 10**12).map(str),
    st.decimals(allow_nan=False, allow_infinity=False, places=None).map(str),
    st.floats(0, 1e12, allow_nan=False).map(repr),
)


@FUZZ
@given(json_numbers, json_numbers, json_numbers)
def test_any_tariff_that_loads_also_prices(price: str, step: str, cap: str) -> None:
    text = (
        '{"country_code": "NL", "party_id": "CWT", "id": "t", "currency": "EUR",'
        f' "max_price": {{"excl_vat": {cap}}},'
        ' "elements": [{"price_components": ['
        f'{{"type": "ENERGY", "price": {price}, "step_size": {step}}},'
        f'{{"type": "PARKING_TIME", "price": {price}, "vat": 21, "step_size": {step}}}'
        ']}], "last_updated": "2026-01-01T00:00:00Z"}'
    )
    with tempfile.TemporaryDirectory() as d:
        f = Path(d) / "t.json"
        f.write_text(text)
        try:
            tariff = parse_tariff(load_json(f), file=str(f))
        except ConfigError:
            return
    # Accepted: a long, heavy session prices (no decimal.InvalidOperation).
    s, e, periods = session(datetime(2026, 1, 1, tzinfo=UTC), Span(C, 20_000, 50_000), Span(P, 600))
    cdr = build_cdr(tariff, start=s, end=e, timezone=UTC, periods=periods)
    assert isinstance(cdr.total_cost.excl_vat, Decimal)  # type: ignore[union-attr]
