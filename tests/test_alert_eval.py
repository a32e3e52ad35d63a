"""The whole-path evaluation, small: a few chargers per cadence through
``chargewatch replay``'s path, alerts scored against the simulator's truth
(chargewatch.evaluation.alert_eval, docs/evaluation.md).

A fault below the issue's target (precision and recall >= 0.95) fails; the ones
below it today are strict xfails carrying the measured figures, so a detector or
rule fix turns them into XPASS (and the marker must go)."""

from __future__ import annotations

import pytest

from chargewatch.evaluation.alert_eval import (
    FAULT_CASES,
    TARGET,
    AlertRow,
    CadenceResult,
    FaultCase,
    detectability,
    run_cadence,
)

pytestmark = pytest.mark.slow

CADENCES = ("native-1s", "ocpp-10s", "ocpp-60s")
CHARGERS, HOURS, SEED = 26, 6.0, 1  # 23 faulty chargers, 3 clean; ~45 s of CPU in all

#: Faults below target on this configuration (seed 1), as strict xfails carrying
#: the measured figures (docs/evaluation.md has the large run). None today.
BELOW_TARGET: dict[tuple[str, str], str] = {}
FALSE_PAGES: dict[str, str] = {}


@pytest.fixture(scope="module")
def results() -> dict[str, CadenceResult]:
    return {c: run_cadence(c, CHARGERS, HOURS, SEED) for c in CADENCES}


def _label(case: FaultCase) -> str:
    return case.label or case.fault


def _cases() -> list[object]:
    out: list[object] = []
    for cadence in CADENCES:
        for case in FAULT_CASES:
            why = BELOW_TARGET.get((cadence, _label(case)))
            marks = [pytest.mark.xfail(strict=True, reason=why)] if why else []
            out.append(
                pytest.param(cadence, _label(case), id=f"{cadence}-{_label(case)}", marks=marks)
            )
    return out


def _row(res: CadenceResult, label: str) -> AlertRow:
    return next(r for r in res.rows if r.fault == label)


@pytest.mark.parametrize(("cadence", "label"), _cases())
def test_fault_meets_target(results: dict[str, CadenceResult], cadence: str, label: str) -> None:
    r = _row(results[cadence], label)
    if r.not_detectable:
        pytest.skip(f"not detectable at {cadence}: {r.not_detectable}")
    assert r.truths > 0
    assert r.recall >= TARGET, r
    assert r.alerts > 0 and r.precision >= TARGET, r


def _pages_params() -> list[object]:
    out: list[object] = []
    for c in CADENCES:
        why = FALSE_PAGES.get(c)
        marks = [pytest.mark.xfail(strict=True, reason=why)] if why else []
        out.append(pytest.param(c, id=c, marks=marks))
    return out


@pytest.mark.parametrize("cadence", _pages_params())
def test_no_false_pages_on_clean_chargers(results: dict[str, CadenceResult], cadence: str) -> None:
    res = results[cadence]
    assert res.clean_chargers >= 3
    assert res.false_pages == []


@pytest.mark.parametrize("cadence", CADENCES)
def test_pipeline_decoded_the_capture(results: dict[str, CadenceResult], cadence: str) -> None:
    # A decoder that breaks (internal_error) would pass as "no alerts, no pages".
    assert "internal_error" not in results[cadence].rejected_by_reason


def test_detectability_is_from_sampling() -> None:
    osc = next(c for c in FAULT_CASES if c.fault == "power_oscillation")
    assert detectability(osc, 1800.0, 1.0) == ""
    assert "same phase" in detectability(osc, 1800.0, 60.0)  # 60 s = 3 periods of 20 s
    assert detectability(osc, 1800.0, 30.0) == ""  # aliased to 60 s, still a swing
    stuck = next(c for c in FAULT_CASES if c.fault == "meter_stuck")
    assert "samples" in detectability(stuck, 480.0, 300.0)
    # A supply fault on an idle connector: 2 clock-aligned readings in 30 min.
    band = next(c for c in FAULT_CASES if c.fault == "voltage_out_of_band")
    assert "3 samples of 900 s" in detectability(band, 1800.0, 10.0, idle_report_s=900.0)
    assert detectability(band, 1800.0, 10.0) == ""  # in a session: 10 s samples
    offline = next(c for c in FAULT_CASES if c.fault == "charger_offline")
    assert detectability(offline, 60.0, 300.0) == ""  # heartbeats, not meter samples


def test_cli_path_alerts_json(capsys: pytest.CaptureFixture[str]) -> None:
    import json  # noqa: PLC0415

    from chargewatch.cli import main  # noqa: PLC0415

    argv = ["detectors", "report", "--path", "alerts", "--cadence", "ocpp-300s"]
    code = main([*argv, "--chargers", "24", "--hours", "1", "--json"])
    out = json.loads(capsys.readouterr().out)
    assert code == (0 if out["passed"] else 1)
    (cad,) = out["cadences"]
    assert cad["cadence"] == "ocpp-300s"
    assert {r["fault"] for r in cad["rows"]} >= {"charger_offline", "GroundFailure"}
    assert main([*argv[:-1], "ocpp-1s"]) == 2
