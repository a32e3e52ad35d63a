"""Fixtures for the alerting tests. The real Alertmanager comes from tests/conftest.py."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def rules_dir() -> Path:
    return REPO / "rules"
