"""One implausible sampled value is rejected alone; the rest of its message is stored.

Issue 17 (docs/evaluation.md, "Slower than at 76cac3c: meter_regression"): a
register that regresses below zero must not blind the detectors. A negative
register is a meter fault's evidence: it stays in the batch row (stored, handed
to the detectors) and is rejected for billing only (``negative_register``);
values that are garbage (NaN, inf, 1e9 V) are dropped alone.
"""

from __future__ import annotations

import math
from typing import Any

import pytest

from chargewatch.model.batch import MeterBatch
from chargewatch.sessions.session_engine import SessionEngine, SessionRecord
from tests.collector.ocpp_feed import T0, Feed, mv16, mv201


def _rejects(f: Feed) -> list[tuple[str, int | None, int | None]]:
    return [(r.reason, r.index, r.value_index) for r in f.sink.rejects]


def test_16_garbage_values_are_dropped_alone_and_the_rest_is_stored() -> None:
    f = Feed().call(
        "MeterValues",
        mv16(
            {"value": "5000"},
            {"value": "1e9", "measurand": "Voltage", "phase": "L1-N", "unit": "V"},
            {"value": "NaN", "measurand": "Current.Import", "phase": "L2", "unit": "A"},
            {"value": "inf", "measurand": "Power.Active.Import", "unit": "W"},
            {"value": "231", "measurand": "Voltage", "phase": "L2-N", "unit": "V"},
            {"value": "16", "measurand": "Current.Import", "phase": "L1", "unit": "A"},
            {"value": "40", "measurand": "Temperature", "unit": "Celsius"},
            transactionId=7,
        ),
    )
    (row,) = f.rows()
    assert row == {
        "energy_wh": 5000.0,
        "voltage_l2_v": 231.0,
        "current_l1_a": 16.0,
        "temperature_c": 40.0,
        "connector": 1,
        "ts": T0,
    }
    assert _rejects(f) == [("out_of_range", 0, 1), ("non_finite", 0, 2), ("non_finite", 0, 3)]
    assert "Voltage '1e9' V = 1e+09 outside 0..2000" in f.sink.rejects[0].detail
    (reading,) = f.events("MeterReading")
    assert reading.energy_wh == 5000.0 and reading.power_w is None and reading.flags == ()


def test_16_negative_register_is_kept_for_the_detectors_and_rejected_for_billing() -> None:
    f = Feed().call(
        "MeterValues",
        mv16(
            {"value": "-3730.21", "measurand": "Energy.Active.Import.Register", "unit": "Wh"},
            {"value": "11000", "measurand": "Power.Active.Import", "unit": "W"},
            {"value": "16", "measurand": "Current.Import", "phase": "L1", "unit": "A"},
            {"value": "230", "measurand": "Voltage", "phase": "L1-N", "unit": "V"},
            transactionId=7,
        ),
    )
    (row,) = f.rows()
    assert row["energy_wh"] == -3730.21  # what the meter said: the fault's evidence
    assert (row["power_w"], row["current_l1_a"], row["voltage_l1_v"]) == (11000.0, 16.0, 230.0)
    assert _rejects(f) == [("negative_register", 0, 0)]
    assert "-3730.21 Wh: a meter fault" in f.sink.rejects[0].detail
    (reading,) = f.events("MeterReading")
    assert reading.energy_wh is None and reading.power_w == 11000.0
    assert reading.flags == ("register_negative",)


@pytest.mark.parametrize(("raw", "reason"), [("-2e12", "out_of_range"), ("-inf", "non_finite")])
def test_16_register_beyond_any_meter_is_dropped(raw: str, reason: str) -> None:
    f = Feed().call("MeterValues", mv16({"value": raw}, {"value": "11", "measurand": "SoC"}))
    assert [{k: v for k, v in r.items() if k != "ts"} for r in f.rows()] == [
        {"soc_pct": 11.0, "connector": 1}
    ]
    assert _rejects(f) == [(reason, 0, 0)]


def _te(event: str, seq: int, values: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    return {
        "eventType": event,
        "timestamp": "2026-11-24T03:00:00Z",
        "triggerReason": "MeterValuePeriodic",
        "seqNo": seq,
        "transactionInfo": {"transactionId": "T1"},
        "meterValue": [{"timestamp": "2026-11-24T03:00:00Z", "sampledValue": values}],
        **extra,
    }


def _v(value: float, measurand: str, unit: str, **kw: Any) -> dict[str, Any]:
    return {"value": value, "measurand": measurand, "unitOfMeasure": {"unit": unit}, **kw}


def test_201_transaction_event_drops_the_bad_value_and_keeps_the_message() -> None:
    f = Feed("2.0.1").call(
        "TransactionEvent",
        _te(
            "Started",
            0,
            [
                _v(1200.0, "Energy.Active.Import.Register", "Wh", context="Transaction.Begin"),
                _v(1e9, "Voltage", "V", phase="L1-N"),
                _v(7400.0, "Power.Active.Import", "W"),
                _v(101.0, "SoC", "Percent"),
            ],
            evse={"id": 1, "connectorId": 1},
        ),
    )
    (row,) = f.rows()
    assert (row["energy_wh"], row["power_w"]) == (1200.0, 7400.0)
    assert "voltage_l1_v" not in row and "soc_pct" not in row
    assert _rejects(f) == [("out_of_range", 0, 1), ("out_of_range", 0, 3)]
    assert [e.kind for e in f.events("TransactionEvent")] == ["start"]
    (reading,) = f.events("MeterReading")
    assert reading.context == "Transaction.Begin" and reading.energy_wh == 1200.0


def test_201_negative_register_at_transaction_begin_is_not_a_meter_start() -> None:
    f = Feed("2.0.1").call(
        "TransactionEvent",
        _te(
            "Started",
            0,
            [
                _v(-3.73, "Energy.Active.Import.Register", "kWh", context="Transaction.Begin"),
                _v(7400.0, "Power.Active.Import", "W", context="Transaction.Begin"),
            ],
            evse={"id": 1, "connectorId": 1},
        ),
    )
    (row,) = f.rows()
    assert (row["energy_wh"], row["power_w"]) == (-3730.0, 7400.0)
    assert _rejects(f) == [("negative_register", 0, 0)]
    (reading,) = f.events("MeterReading")
    assert reading.energy_wh is None and reading.flags == ("register_negative",)


def test_201_meter_values_keep_good_values_beside_a_bad_one() -> None:
    f = Feed("2.0.1").call(
        "MeterValues",
        mv201(
            _v(-5.0, "Energy.Active.Import.Register", "Wh"),
            _v(3e6, "Current.Import", "A", phase="L1"),
            _v(229.0, "Voltage", "V", phase="L1-N"),
        ),
    )
    (row,) = f.rows()
    assert (row["energy_wh"], row["voltage_l1_v"]) == (-5.0, 229.0)
    assert "current_l1_a" not in row
    assert _rejects(f) == [("negative_register", 0, 0), ("out_of_range", 0, 1)]


# --------------------------------------------- the session engine bills no negative register


def _session(negatives: bool) -> SessionRecord:
    """A 1.6 session at 11 kW, one reading a minute, whose register falls below
    zero after 10 min (the evaluation's regression) and climbs back above."""
    f = Feed()
    start = T0
    f.call(
        "StartTransaction",
        {"connectorId": 1, "idTag": "TAG", "meterStart": 1000, "timestamp": _ts(start)},
        "s1",
        recv=start,
    )
    f.result("s1", {"transactionId": 7, "idTagInfo": {"status": "Accepted"}}, recv=start + 1)
    register = 1000.0
    for k in range(1, 41):
        t = start + 60.0 * k
        register += 11000.0 / 60.0
        if k == 10:
            register -= 5000.0 + register  # falls to -5 kWh
        samples = [{"value": "11000", "measurand": "Power.Active.Import", "unit": "W"}]
        if register >= 0 or negatives:
            samples.insert(0, {"value": f"{register:.1f}", "unit": "Wh"})
        f.call("MeterValues", mv16(*samples, ts=_ts(t), transactionId=7), f"m{k}", recv=t + 1)
    stop = start + 60.0 * 41
    f.call(
        "StopTransaction",
        {"transactionId": 7, "meterStop": round(register), "timestamp": _ts(stop)},
        "s2",
        recv=stop + 1,
    )
    engine = SessionEngine(f.index)
    out = engine.update(f.sink.meter.build(), list(f.sink.events), stop + 2)
    out += engine.update(MeterBatch.empty(), [], stop + 3600.0)
    (rec,) = out
    return rec


def _ts(t: float) -> str:
    from datetime import UTC, datetime  # noqa: PLC0415

    return datetime.fromtimestamp(t, UTC).isoformat().replace("+00:00", "Z")


def test_a_session_whose_register_went_negative_is_sent_to_review() -> None:
    """The engine discards negative registers (split_register: ``bad_value``) and
    bills none; the fall they show, with a complete power integral, is the
    register_regression review the engine has for it. Dropping them in the
    decoder (the behaviour before) hid the fall: the register's 2,150 Wh were
    billed as a plain reset, 5 kWh short of the power integral."""
    passed, dropped = _session(negatives=True), _session(negatives=False)
    assert passed.register_energy_wh == pytest.approx(2150.0)  # non-negative readings only
    assert passed.review_reason == "register_regression"
    assert {"bad_value", "needs_review"} <= set(passed.quality)
    assert passed.energy_source == "power_integral"
    assert passed.energy_wh == pytest.approx(passed.power_integral_wh)
    assert passed.energy_wh == pytest.approx(11000.0 * 39 / 60)
    assert math.isfinite(passed.meter_stop_wh or 0.0) and (passed.meter_stop_wh or 0.0) >= 0
    # Before: billed from the register with no review.
    assert (dropped.energy_wh, dropped.energy_source, dropped.review_reason) == (
        pytest.approx(2150.0),
        "register",
        "",
    )
