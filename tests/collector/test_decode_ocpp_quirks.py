"""Every quirk of reference/ocpp/field-quirks.md, decoded as decided (fixtures in testdata/ocpp)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.collector.ocpp_harness import FIXTURES, check, load

CASES = sorted(FIXTURES.glob("*.json"))


def test_every_fixture_says_where_it_comes_from() -> None:
    assert len(CASES) >= 15
    for path in CASES:
        fixture = load(path)
        assert fixture["description"] and fixture["decision"], path.name


@pytest.mark.parametrize("path", CASES, ids=[p.stem for p in CASES])
def test_fixture_decodes_as_expected(path: Path) -> None:
    check(load(path))
