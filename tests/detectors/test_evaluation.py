"""Every detector against the fleet simulator: precision and recall >= 0.95 and
every detection within its time budget. A modest fleet keeps this to seconds."""

from __future__ import annotations

import pytest

from chargewatch.detectors import DetectorConfig, Finding
from chargewatch.evaluation.detector_report import (
    FaultEpisode,
    evaluate,
    format_table,
    normal_scenarios,
    score,
)


@pytest.fixture(scope="module")
def report() -> tuple[list, dict]:
    return evaluate(chargers=60, hours=10, seed=1, per_fault=2, interval=10.0)


def test_every_fault_is_exercised(report: tuple[list, dict]) -> None:
    rows, _ = report
    assert all(r.truths >= 2 for r in rows), format_table(rows)


def test_every_detector_meets_its_targets(report: tuple[list, dict]) -> None:
    rows, _ = report
    failing = [r.fault for r in rows if not r.passed]
    assert not failing, f"{failing} below target:\n{format_table(rows)}"


def test_score_counts_misses_false_alarms_and_late_detections() -> None:
    truth = [
        FaultEpisode("meter_stuck", 0, 1000.0, 2000.0),
        FaultEpisode("meter_stuck", 1, 1000.0, 2000.0),
    ]
    findings = [
        Finding("meter_stuck", 0, 1000.0, 1300.0, 1900.0),  # found, but late (budget 130 s)
        Finding("meter_stuck", 2, 5000.0, 5120.0, None),  # false alarm
    ]
    (row,) = [r for r in score(findings, truth, DetectorConfig(), 10.0) if r.fault == "meter_stuck"]
    assert (row.recall, row.precision, row.late) == (0.5, 0.5, 1)
    assert not row.passed


def test_hard_normal_cases_raise_nothing() -> None:
    # Each of the simulator's normal scenarios isolates one hard case (pauses,
    # taper, DC curves, single-phase cars, kW units, long idle, reboots, gaps).
    found = normal_scenarios(chargers=10, hours=4, seed=2)
    bad = {name: {f: n for f, n in c.items() if n} for name, c in found.items()}
    assert not any(bad.values()), bad
