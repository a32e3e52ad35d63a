"""Fixtures for the real services (see tests/services.py).

A missing service binary skips the integration tests on a developer's machine
but FAILS them under CI=true, so CI can never pass without having run them.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest

from tests.services import (
    Alertmanager,
    InfluxDB,
    Mosquitto,
    PostgreSQL,
    Prometheus,
    Service,
    ServiceMissingError,
    VictoriaMetrics,
)

S = TypeVar("S", bound=Service)

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def _start(factory: Callable[[], S]) -> S:
    try:
        svc = factory()
    except ServiceMissingError as exc:
        if IN_CI:
            pytest.fail(f"service missing under CI=true: {exc}")
        pytest.skip(str(exc))
    svc.start()
    return svc


@pytest.fixture(scope="session")
def mosquitto() -> Iterator[Mosquitto]:
    svc = _start(Mosquitto)
    yield svc
    svc.cleanup()


@pytest.fixture(scope="session")
def influxdb() -> Iterator[InfluxDB]:
    svc = _start(InfluxDB)
    yield svc
    svc.cleanup()


@pytest.fixture(scope="session")
def victoriametrics() -> Iterator[VictoriaMetrics]:
    svc = _start(VictoriaMetrics)
    yield svc
    svc.cleanup()


@pytest.fixture(scope="session")
def alertmanager() -> Iterator[Alertmanager]:
    svc = _start(Alertmanager)
    yield svc
    svc.cleanup()


@pytest.fixture
def prometheus_binary() -> None:
    """Skips (fails under CI=true) when Prometheus is not installed; each test
    starts its own, with its own config."""
    _start_checked(Prometheus)


def _start_checked(factory: Callable[[], S]) -> None:
    try:
        factory().cleanup()
    except ServiceMissingError as exc:
        if IN_CI:
            pytest.fail(f"service missing under CI=true: {exc}")
        pytest.skip(str(exc))


@pytest.fixture(scope="session")
def postgresql() -> Iterator[PostgreSQL]:
    svc = _start(PostgreSQL)
    yield svc
    svc.cleanup()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.integration)])
def ledger_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Where a test's ledger lives: a SQLite file, or a fresh database on the
    session's PostgreSQL (the same test runs on both engines)."""
    if request.param == "sqlite":
        return str(tmp_path / "l.db")
    pg: PostgreSQL = request.getfixturevalue("postgresql")
    name = f"ledger_{uuid.uuid4().hex[:12]}"
    url = pg.create_db(name)
    request.addfinalizer(lambda: pg.drop_db(name))
    return url


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Under CI=true the shared datasets must be there: a dataset test may not skip."""
    if not IN_CI:
        return
    from chargewatch.core.resources import shared_data_dir  # noqa: PLC0415

    names = ("acn-jpl-sessions-2021.json", "norway-residential-sessions.csv")
    if all((shared_data_dir() / name).exists() for name in names):
        return
    for item in items:
        for m in item.iter_markers("skipif"):
            if "shared datasets" in str(m.kwargs.get("reason", "")):
                pytest.exit(f"shared datasets missing under CI=true ({shared_data_dir()})", 1)
