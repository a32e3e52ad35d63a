"""The expression language: parsing, types, NaN semantics, windows."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from chargewatch.alerting.expr import (
    ExprError,
    History,
    compile_expr,
    format_duration,
    parse_duration,
)
from chargewatch.alerting.testing import make_frame

CONN = [("CP1", 1), ("CP1", 2), ("CP2", 1)]


def ev(text: str, **cols: Any) -> list[bool]:
    cond, _ = compile_expr(text).evaluate(0.0, make_frame(CONN, **cols))
    return [bool(x) for x in cond]


def test_precedence_and_arithmetic() -> None:
    assert ev("power_w / 1000 + 1 > 2 * 2", power_w=[2000.0, 3500.0, 3000.0]) == [
        False,
        True,
        False,
    ]
    assert ev(
        "not online or power_w > 0 and session_active", online=[True, False, True], power_w=1.0
    ) == [
        False,
        True,
        False,
    ]
    assert ev("-power_w < -5", power_w=[1.0, 6.0, 10.0]) == [False, True, True]
    assert ev("status_age_s >= 5m", status_age_s=[299.0, 300.0, 301.0]) == [False, True, True]


def test_strings_and_in() -> None:
    st_ = ["Faulted", "Charging", "Unavailable"]
    assert ev('status == "Faulted"', status=st_) == [True, False, False]
    assert ev('status in ("Faulted", "Unavailable")', status=st_) == [True, False, True]
    assert ev('site != "depot"', site=["depot", "x", "depot"]) == [False, True, False]


def test_missing_values_neither_fire_nor_clear() -> None:
    nan = float("nan")
    assert ev("power_w > 5", power_w=[nan, 6.0, nan]) == [False, True, False]
    assert ev("power_w != 5", power_w=[nan, 6.0, 5.0]) == [False, True, False]
    assert ev('error_code != "NoError"', error_code=["", "GroundFailure", "NoError"]) == [
        False,
        True,
        False,
    ]
    assert ev("present(power_w)", power_w=[nan, 1.0, 0.0]) == [False, True, True]


def test_value_is_the_compared_signal() -> None:
    f = make_frame(CONN, temperature_c=[90.0, 50.0, 85.0])
    cond, value = compile_expr("temperature_c > 80").evaluate(0.0, f)
    assert cond.tolist() == [True, False, True]
    assert value.tolist() == [90.0, 50.0, 85.0]
    f["meter_stuck"][:] = True
    f["meter_stuck_score"][:] = [0.9, 0.5, np.nan]
    _, value = compile_expr("meter_stuck").evaluate(0.0, f)
    assert value[:2].tolist() == [0.9, 0.5]


@pytest.mark.parametrize(
    ("text", "col", "message"),
    [
        ("power_w >", 10, "unexpected end of expression"),
        ("power_w > 5 5", 13, "after a complete expression"),
        ("power_w && online", 9, "write 'and'"),
        ("a < b < c", 7, "comparisons do not chain"),
        ("powr_w > 5", 1, "did you mean 'power_w'"),
        ('status > "Faulted"', 8, "compare only with == or !="),
        ("power_w > 5 and 3", 13, "needs conditions on both sides"),
        ("avg_over(power_w, 300) > 1", 19, "needs a duration"),
        ("rate(power_w + 1, 5m) > 1", 6, "give a signal name"),
        ("avg_over(status, 5m) > 1", 10, "needs a number signal"),
        ("frobnicate(power_w)", 1, "unknown function"),
        ('status == "Faulty"', 11, "did you mean 'Faulted'"),
        ('"unterminated', 1, "unterminated string"),
        ("power_w > 5x", 11, "bad number or duration"),
        ("", 1, "empty expression"),
    ],
)
def test_errors_point_at_the_column(text: str, col: int, message: str) -> None:
    with pytest.raises(ExprError) as err:
        compile_expr(text)
    assert message in err.value.message
    assert err.value.pos + 1 == col


def test_durations_round_trip() -> None:
    assert parse_duration("1h30m") == 5400.0
    assert parse_duration("500ms") == 0.5
    assert format_duration(5400) == "1h30m"
    with pytest.raises(ValueError):
        parse_duration("5 minutes")


def _run_window(text: str, series: list[float], interval: float = 60.0) -> list[float]:
    c = compile_expr(text, want=None)
    kinds = {name: "number" for name in c.windows}
    h = History(kinds, capacity=int(max(c.windows.values()) / interval) + 2)  # type: ignore[arg-type]
    out = []
    for i, v in enumerate(series):
        f = make_frame([("CP1", 1)], energy_wh=v, power_w=v)
        h.push(i * interval, f, 1)
        _, value = c.evaluate(i * interval, f, h)
        out.append(float(value[0]))
    return out


def test_window_functions() -> None:
    nan = float("nan")
    s = [0.0, 60.0, 120.0, 180.0, 240.0, 300.0]
    assert _run_window("delta(energy_wh, 3m)", s)[-1] == 120.0  # samples at 3m, 4m, 5m
    assert _run_window("rate(energy_wh, 3m)", s)[-1] == 1.0
    assert _run_window("avg_over(power_w, 2m)", s)[-1] == 270.0
    assert _run_window("max_over(power_w, 10m)", [5.0, 9.0, nan, 1.0])[-1] == 9.0
    assert _run_window("min_over(power_w, 10m)", [5.0, 9.0, nan, 1.0])[-1] == 1.0
    assert _run_window("changes(power_w, 10m)", [1.0, 1.0, 2.0, 2.0, 1.0])[-1] == 2.0
    assert np.isnan(_run_window("delta(energy_wh, 5m)", [1.0])[-1])


def test_absent_and_stale_need_the_whole_window() -> None:
    nan = float("nan")
    absent = _run_window("absent_for(power_w, 3m)", [nan] * 5)
    assert absent == [0.0, 0.0, 0.0, 1.0, 1.0]  # not before 3m of history exist
    stale = _run_window("stale_for(energy_wh, 2m)", [1.0, 2.0, 2.0, 2.0, 3.0])
    assert stale == [0.0, 0.0, 0.0, 1.0, 0.0]


@given(
    st.lists(st.one_of(st.floats(-1e6, 1e6), st.just(float("nan"))), min_size=1, max_size=20),
    st.floats(-1e6, 1e6),
)
def test_comparison_matches_python_and_nan_never_matches(values: list[float], k: float) -> None:
    n = len(values)
    f = make_frame([("C", i) for i in range(n)], power_w=values)
    for op, py in ((">", float.__gt__), ("<=", float.__le__), ("!=", float.__ne__)):
        cond, _ = compile_expr(f"power_w {op} {k!r}").evaluate(0.0, f)
        assert cond.tolist() == [v == v and py(v, k) for v in values]
