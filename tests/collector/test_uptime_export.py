"""The uptime gauges the faults-reliability dashboard reads, worked out by hand."""

from __future__ import annotations

from pathlib import Path

import pytest
from prometheus_client import REGISTRY

from chargewatch.collector.uptime_export import UptimeExporter
from chargewatch.storage.ledger import Ledger
from chargewatch.storage.uptime_source import uptime_gauges
from tests.analytics.helpers import H, ts

NOW = ts("2024-06-01 00:00")


@pytest.fixture
def ledger_path(tmp_path: Path) -> Path:
    path = tmp_path / "ledger.sqlite"
    with Ledger(path) as ledger:
        ledger.write_port_status(
            [
                # S-less ports (no fleet, no sessions): site "". C1/1 Faulted 10 h in May,
                # C2/1 Faulted 60 h in January (only in the 12-month window).
                ["C1", 1, "Faulted", "GroundFailure", NOW - 20 * 86_400],
                ["C2", 1, "Faulted", "OtherError", ts("2024-01-10 00:00")],
            ],
            now=0.0,
        )
        ledger.write_port_status(
            [
                ["C1", 1, "Available", "NoError", NOW - 20 * 86_400 + 10 * H],
                ["C2", 1, "Available", "NoError", ts("2024-01-12 12:00")],
            ],
            now=0.0,
        )
    return path


def test_gauges(ledger_path: Path) -> None:
    with Ledger(ledger_path, read_only=True) as ledger:
        g = uptime_gauges(ledger, NOW, None)
    month_min = 30 * 1440
    # 30 days: C1/1 down 600 min, C2/1 up.
    assert g["30d"][""] == pytest.approx((2 * month_min - 600) / (2 * month_min) * 100)
    # 12 months, T = 525,600 per port: 600 + 3,600 min down.
    assert g["12m"][""] == pytest.approx((2 * 525_600 - 4_200) / (2 * 525_600) * 100)
    assert g["below"][""] == 0


def test_export_sets_the_gauges(ledger_path: Path) -> None:
    UptimeExporter(str(ledger_path), None, clock=lambda: NOW).export_once()
    got = REGISTRY.get_sample_value(
        "chargewatch_port_uptime_percent", {"site": "", "window": "12m"}
    )
    assert got == pytest.approx((2 * 525_600 - 4_200) / (2 * 525_600) * 100)


def test_a_missing_ledger_leaves_the_gauges(tmp_path: Path) -> None:
    # Logged, not raised: the thread keeps running.
    UptimeExporter(str(tmp_path / "none.sqlite"), None, clock=lambda: NOW).export_once()
