"""A 1.6 StopTransaction's transactionData registers read against its meterStop.

The shape is a real charger's: a Sungrow IDC180E DC charger with a LEM DCBM
meter (firmware MU-2.3.0.1_SU-0.0.8.0), StopTransaction of transaction 601 as
logged on 2024-04-27 and posted in the operator's analysis notebook
(github.com/msm216/ticket-reporter, demo/log_analysis.ipynb at cd42c91): a
periodic register "10747.8" kWh, Transaction.Begin and Transaction.End
registers "10747.8" labelled "Wh", and meterStop 10747765 (Wh by the spec).
Its signed OCMF records say 10747.296 -> 10747.765 kWh: 469 Wh were charged.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from chargewatch.collector.replay import replay
from tests.collector.ocpp_feed import Feed

STOP_TS = "2024-04-27T12:38:32Z"


def _register(value: str, unit: str | None, context: str | None = None) -> dict[str, Any]:
    sv: dict[str, Any] = {"value": value, "format": "Raw"}
    sv["measurand"] = "Energy.Active.Import.Register"
    if context:
        sv["context"] = context
    if unit:
        sv["unit"] = unit
    return {"timestamp": STOP_TS, "sampledValue": [sv]}


def _stop(meter_stop: int, *items: dict[str, Any]) -> dict[str, Any]:
    return {
        "idTag": "046679FA246C80",
        "meterStop": meter_stop,
        "timestamp": STOP_TS,
        "transactionId": 601,
        "reason": "Local",
        "transactionData": list(items),
    }


def _energies(meter_stop: int, *items: dict[str, Any]) -> tuple[list[float | None], Feed]:
    f = Feed().call("StopTransaction", _stop(meter_stop, *items))
    readings = [e for e in f.events("MeterReading")]
    return [r.energy_wh for r in readings], f


def test_sungrow_stop_registers_labelled_wh_are_kwh_and_meter_stop_is_the_finer() -> None:
    energies, f = _energies(
        10747765,
        _register("10747.8", "kWh"),
        _register("10747.8", "Wh", "Transaction.Begin"),
        _register("10747.8", "Wh", "Transaction.End"),
    )
    # Read as labelled: 10.7478 Wh, a "reset" and no energy billed. Read as kWh
    # they are 10,747,800 Wh: meterStop within their 100 Wh rounding, so meterStop.
    assert energies == [10747765.0, 10747765.0, 10747765.0]
    assert f.decoder.quirks["stop_register_kwh_labelled_wh"] == 2
    assert f.reasons() == []


@pytest.mark.parametrize(
    ("meter_stop", "value", "unit", "want"),
    [
        (10747765, "10747765", "Wh", 10747765.0),  # right as labelled: untouched
        (10747765, "10747765.4", "Wh", 10747765.4),  # finer than meterStop: kept
        (10747765, "10748", "kWh", 10747765.0),  # whole kWh, within 500 Wh: meterStop
        (10747765, "10746", "kWh", 10746000.0),  # 1.8 kWh off: a reading of its own
        (10747765, "10747.8", None, 10747765.0),  # unlabelled: the spec's Wh, kWh in fact
        (5000, "5.0", "Wh", 5000.0),  # a per-transaction register, kWh labelled Wh
        (800, "0.8", "Wh", 0.8),  # under 1 kWh: no evidence either way
        (10747765, "9000.5", "Wh", 9000.5),  # labelled Wh, not meterStop / 1000: as read
    ],
)
def test_stop_register_against_meter_stop(
    meter_stop: int, value: str, unit: str | None, want: float
) -> None:
    energies, _ = _energies(meter_stop, _register(value, unit, "Transaction.End"))
    assert energies == [pytest.approx(want, abs=1e-6)]


def test_meter_values_outside_a_stop_are_not_read_against_anything() -> None:
    # The same "10747.8" Wh in a MeterValues: no meterStop to prove the unit
    # wrong (the sessions' power integral and meter_unit_error judge it there).
    f = Feed().call(
        "MeterValues",
        {"connectorId": 1, "transactionId": 601, "meterValue": [_register("10747.8", "Wh")]},
    )
    assert [r["energy_wh"] for r in f.rows()] == [10747.8]
    assert f.decoder.quirks["stop_register_kwh_labelled_wh"] == 0


def _periodic(k: int) -> dict[str, Any]:
    """The charger's periodic MeterValues, k-th of five (kWh to 0.1, power in kW)."""
    e = 10747.296 + 0.469 * k / 6
    register = {"value": f"{e:.1f}", "format": "Raw", "unit": "kWh"}
    register["measurand"] = "Energy.Active.Import.Register"
    power = {"value": "20.1", "format": "Raw", "measurand": "Power.Active.Import", "unit": "kW"}
    stamp = f"2024-04-27T12:37:{8 + 14 * k:02d}Z"
    value = [{"timestamp": stamp, "sampledValue": [register, power]}]
    return {"connectorId": 1, "transactionId": 601, "meterValue": value}


def test_whole_path_bills_the_sungrow_session_by_its_meter_stop(tmp_path: Path) -> None:
    # The real stop above after a start and periodic values shaped as the same
    # charger sends them (values emulated around the real meterStart/meterStop
    # of its signed records).
    t0 = datetime(2024, 4, 27, 12, 37, 8, tzinfo=UTC)
    lines: list[dict[str, Any]] = []

    def exchange(s: float, msg: str, action: str, req: dict[str, Any], conf: Any) -> None:
        for dt, topic, frame in (
            (s, "cp", [2, msg, action, req]),
            (s + 0.4, "csms", [3, msg, conf]),
        ):
            stamp = (t0 + timedelta(seconds=dt)).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
            lines.append({"ts": stamp, "topic": f"ocpp/1.6/SG1/{topic}", "payload": frame})

    accepted = {"idTagInfo": {"status": "Accepted"}}
    start = {"connectorId": 1, "idTag": "046679FA246C80", "meterStart": 10747296}
    start["timestamp"] = "2024-04-27T12:37:08Z"
    exchange(0, "s", "StartTransaction", start, {"transactionId": 601, **accepted})
    for k in range(1, 6):
        exchange(14 * k, f"m{k}", "MeterValues", _periodic(k), {})
    stop = _stop(
        10747765,
        _register("10747.8", "kWh"),
        _register("10747.8", "Wh", "Transaction.Begin"),
        _register("10747.8", "Wh", "Transaction.End"),
    )
    exchange(85, "e", "StopTransaction", stop, accepted)
    capture = tmp_path / "sungrow.jsonl"
    capture.write_text("".join(json.dumps(x) + "\n" for x in lines))
    replay(capture, tmp_path / "out")
    rows = (tmp_path / "out" / "sessions.jsonl").read_text().splitlines()
    (session,) = [json.loads(x) for x in rows]
    # Before: 380 Wh by the power integral, needs_review (register_reset, register_jump).
    assert session["energy_wh"] == 469.0
    assert session["energy_source"] == "transaction_meter"
    assert "needs_review" not in session["quality"]
