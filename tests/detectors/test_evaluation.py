"""Every detector against the fleet simulator: precision and recall >= 0.95 and
every detection within its time budget. A modest fleet keeps this to seconds."""

from __future__ import annotations

import pytest

from chargewatch.detectors import DetectorConfig, Finding
from chargewatch.evaluation.detector_report import (
    FaultEpisode,
    evaluate,
    format_table,
    normal_scenario,
    normal_scenarios,
    reboot_outages,
    score,
    ttd_budget,
)
from chargewatch.simulator import SimConfig, Simulation


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


def test_every_detector_meets_its_targets_at_60s() -> None:
    # OCPP MeterValues every 60 s: the slowest cadence of issue 17's target. A
    # fault the sampling cannot carry passes as not detectable, with the reason.
    rows, _ = evaluate(chargers=60, hours=10, seed=1, per_fault=2, interval=60.0)
    failing = [r.fault for r in rows if not r.passed]
    assert not failing, f"{failing} below target:\n{format_table(rows)}"
    na = {r.fault: r.not_detectable for r in rows if r.not_detectable}
    assert set(na) == {"power_oscillation"}, na
    assert "same phase" in na["power_oscillation"]


def test_budget_is_minimum_plus_two_intervals() -> None:
    # The first bad sample comes up to one interval after the onset; at 60 s
    # a 10 s minimum (over_current) is only seen at the next sample, another
    # interval later: issue 17's target without the rule's `for`.
    p = DetectorConfig().params()
    for dt in (1.0, 10.0, 30.0, 60.0):
        minimum = float(p["over_current"].min_duration_s)  # type: ignore[attr-defined]
        assert ttd_budget("over_current", p["over_current"], dt) == minimum + 2 * dt + 1.0
        assert ttd_budget("meter_regression", p["meter_regression"], dt) == 2 * dt + 1.0
    # Four reversals of the injected 20 s swing take 40 s to happen, longer than
    # window_samples (10) samples at 1 s.
    osc = p["power_oscillation"]
    m, n, w = osc.min_duration_s, osc.min_reversals, osc.window_samples  # type: ignore[attr-defined]
    assert ttd_budget("power_oscillation", osc, 1.0) == m + n * 10.0 + 2 * 1.0 + 1.0
    assert ttd_budget("power_oscillation", osc, 10.0) == m + w * 10.0 + 2 * 10.0 + 1.0


def test_oscillation_aliased_by_the_sampling_is_not_detectable() -> None:
    # A 20 s swing sampled every 60 s: every sample at the same phase.
    truth = [FaultEpisode("power_oscillation", 0, 1000.0, 2800.0)]
    rows = {r.fault: r for r in score([], truth, DetectorConfig(), 60.0)}
    assert "same phase" in rows["power_oscillation"].not_detectable
    assert rows["power_oscillation"].passed
    at_30 = {r.fault: r for r in score([], truth, DetectorConfig(), 30.0)}
    assert at_30["power_oscillation"].not_detectable == ""
    assert not at_30["power_oscillation"].passed  # a miss where it shows


def test_hard_normal_cases_raise_nothing() -> None:
    # Each of the simulator's normal scenarios isolates one hard case (pauses,
    # taper, DC curves, single-phase cars, kW units, long idle, reboots, gaps).
    found = normal_scenarios(chargers=10, hours=4, seed=2)
    bad = {name: {f: n for f, n in c.items() if n} for name, c in found.items()}
    assert not any(bad.values()), bad


def test_a_reboot_silent_past_the_offline_timeout_is_an_expected_outage() -> None:
    # At a 60 s cadence and heartbeat one reboot (CP0009: 120 s down, 153 s
    # between its last message before and its first after) is over the 150 s
    # timeout: charger_offline by the contract on both its connectors, not a
    # false alarm. The others are shorter and give nothing.
    sim = Simulation(
        SimConfig(chargers=20, sites=4, seed=1, duration=6 * 3600.0, interval=60.0).with_scenario(
            "reboots"
        )
    )
    outages = reboot_outages(sim, DetectorConfig())
    assert [(ch, round(back - last)) for ch, last, back in outages] == [("CP0009", 153)]
    counts, expected = normal_scenario("reboots", 20, 6.0, 1, interval=60.0)
    assert expected == 2
    assert not {f: n for f, n in counts.items() if n}
