"""Helpers for operators' own CI and for Python tests of rules.

In a pytest suite::

    from chargewatch.alerting.testing import assert_rules_valid, assert_rule_tests_pass

    def test_our_rules():
        assert_rules_valid("rules/")
        assert_rule_tests_pass("rules/tests/")

Or step an engine by hand (time is always handed in, never read)::

    frame = make_frame([("CP1", 1)], site="depot", temperature_c=[95.0])
    engine = AlertEngine("rules/")
    fired = step(engine, frame, start=0, interval=30, steps=5)
"""

from __future__ import annotations

__all__ = ["assert_rule_tests_pass", "assert_rules_valid", "make_frame", "step"]

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from chargewatch.alerting.engine import AlertEngine
from chargewatch.alerting.rulefmt import check_files
from chargewatch.alerting.ruletest import run_test_files
from chargewatch.alerting.signals import SIGNALS, empty_frame
from chargewatch.alerting.state import Transition


def assert_rules_valid(*paths: str | Path) -> None:
    """Fail with every problem (``file:line:col: group ..., rule N, ...``) in the rule files."""
    groups, problems = check_files(paths)
    if problems:
        raise AssertionError("\n".join(str(p) for p in problems))
    if not any(g.rules for g in groups):
        raise AssertionError(f"no rules found in {', '.join(map(str, paths))}")


def assert_rule_tests_pass(*paths: str | Path) -> int:
    """Run rule unit test files (or directories of them); fail with every failure.

    Returns the number of tests run.
    """
    results = run_test_files(paths)
    if not results:
        raise AssertionError(f"no rule test files in {', '.join(map(str, paths))}")
    bad = [r.report() for r in results if not r.ok]
    if bad:
        raise AssertionError("\n".join(bad))
    return sum(len(r.cases) for r in results)


def make_frame(
    connectors: Sequence[tuple[str, int]], *, site: str | Sequence[str] = "unknown", **columns: Any
) -> dict[str, NDArray[Any]]:
    """A frame for ``connectors`` [(charger, connector)], "unknown" except for ``columns``.

    A scalar column value applies to every connector; a sequence gives one each.
    """
    n = len(connectors)
    frame = empty_frame(n)
    frame["charger"][:] = [c for c, _ in connectors]
    frame["connector"][:] = [str(k) for _, k in connectors]
    frame["site"][:] = [site] * n if isinstance(site, str) else list(site)
    for name, value in columns.items():
        if name not in SIGNALS:
            raise KeyError(f"unknown signal {name!r}")
        col = frame[name]
        col[:] = np.broadcast_to(np.asarray(value, dtype=col.dtype), (n,))
    return frame


def step(
    engine: AlertEngine,
    frame: dict[str, NDArray[Any]] | Callable[[float], dict[str, NDArray[Any]]],
    *,
    start: float,
    interval: float,
    steps: int,
) -> list[Transition]:
    """Evaluate ``engine`` ``steps`` times from ``start``; ``frame`` may be a function of time."""
    out: list[Transition] = []
    for i in range(steps):
        now = start + i * interval
        out += engine.evaluate(now, frame(now) if callable(frame) else frame)
    return out
