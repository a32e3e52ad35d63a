"""OCPP 1.6-J frames validate against the official schemas and carry the sessions."""

from __future__ import annotations

import json
import re
from datetime import datetime
from pathlib import Path
from typing import Any

import jsonschema
import ocpp
import orjson
import pytest

from chargewatch.simulator import DEFAULT_START, FaultSpec, SimConfig, Simulation

SCHEMAS = Path(ocpp.__file__).parent / "v16" / "schemas"


def _validator(name: str) -> jsonschema.Draft4Validator:
    schema = json.loads((SCHEMAS / f"{name}.json").read_text())
    return jsonschema.Draft4Validator(schema, format_checker=jsonschema.FormatChecker())


@pytest.fixture(scope="module")
def frames() -> list[tuple[float, str, Any]]:
    cfg = SimConfig(
        chargers=8, sites=2, seed=4, start=DEFAULT_START + 7 * 3600, duration=5 * 3600,
        interval=30.0, protocol="ocpp1.6", batch=3, random_faults=6, arrival_rate=3.0,
        kw_power_fraction=0.5,
        faults=(FaultSpec("GroundFailure", "CP0002", 1, 3600, 600),),
    )  # fmt: skip
    return [(r, t, orjson.loads(p)) for r, t, p in Simulation(cfg).messages()]


_RFC3339 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


def _check_date_times(doc: Any) -> None:
    """The schemas' ``format: date-time``, which jsonschema checks only with an
    optional package installed."""
    if isinstance(doc, dict):
        for k, v in doc.items():
            if k in ("timestamp", "currentTime"):
                assert isinstance(v, str) and _RFC3339.match(v), v
                datetime.fromisoformat(v.replace("Z", "+00:00"))
            else:
                _check_date_times(v)
    elif isinstance(doc, list):
        for v in doc:
            _check_date_times(v)


def test_every_frame_validates_against_the_official_schemas(frames: list[Any]) -> None:
    validators: dict[str, jsonschema.Draft4Validator] = {}
    actions: dict[tuple[str, str], str] = {}
    seen: set[str] = set()
    for _, topic, frame in frames:
        _, version, charger, source = topic.split("/")
        assert version == "1.6"
        if source == "cp":
            assert frame[0] == 2 and isinstance(frame[1], str)
            action = frame[2]
            actions[(charger, frame[1])] = action
            name = action
        else:
            assert source == "csms" and frame[0] == 3
            name = actions[(charger, frame[1])] + "Response"
        v = validators.get(name) or validators.setdefault(name, _validator(name))
        body = frame[-1] if source == "cp" else frame[2]
        v.validate(body)
        _check_date_times(body)
        seen.add(name)
    assert {
        "BootNotification", "BootNotificationResponse", "Heartbeat", "HeartbeatResponse",
        "StatusNotification", "MeterValues", "StartTransaction", "StartTransactionResponse",
        "StopTransaction", "StopTransactionResponse",
    } <= seen  # fmt: skip


def test_transactions_and_meter_values_agree(frames: list[Any]) -> None:
    starts: dict[str, tuple[str, int]] = {}
    tx_ids: set[int] = set()
    stops = 0
    for _, topic, frame in frames:
        charger = topic.split("/")[2]
        if frame[0] == 2 and frame[2] == "StartTransaction":
            starts[frame[1]] = (charger, frame[3]["meterStart"])
        elif frame[0] == 3 and frame[1] in starts and "transactionId" in frame[2]:
            tx_ids.add(frame[2]["transactionId"])
        elif frame[0] == 2 and frame[2] == "StopTransaction":
            body = frame[3]
            assert body["transactionId"] in tx_ids  # learnt from the CSMS result first
            begin, end = body["transactionData"]
            assert begin["sampledValue"][0]["context"] == "Transaction.Begin"
            assert end["sampledValue"][0]["context"] == "Transaction.End"
            assert body["meterStop"] >= round(float(begin["sampledValue"][0]["value"])) - 1
            stops += 1
    assert stops >= 3
    mv = [f[3] for _, _, f in frames if f[0] == 2 and f[2] == "MeterValues"]
    in_tx = [b for b in mv if "transactionId" in b]
    assert in_tx and all(b["transactionId"] in tx_ids for b in in_tx)
    assert max(len(b["meterValue"]) for b in mv) == 3
    units = {sv["unit"] for b in mv for v in b["meterValue"] for sv in v["sampledValue"]
             if sv["measurand"] == "Power.Active.Import"}  # fmt: skip
    assert units == {"W", "kW"}
    phases = {sv.get("phase") for b in mv for v in b["meterValue"] for sv in v["sampledValue"]
              if sv["measurand"] == "Voltage"}  # fmt: skip
    assert {"L1-N", "L2-N", "L3-N"} <= phases


def test_error_code_fault_is_a_faulted_status_notification(frames: list[Any]) -> None:
    faulted = [
        f[3] for _, t, f in frames
        if t == "ocpp/1.6/CP0002/cp" and f[0] == 2 and f[2] == "StatusNotification"
        and f[3]["status"] == "Faulted"
    ]  # fmt: skip
    assert [b["errorCode"] for b in faulted] == ["GroundFailure"]


def test_stop_transaction_energy_matches_the_truth_also_for_sessions_begun_before_the_start() -> (
    None
):
    cfg = SimConfig(
        chargers=16, sites=2, seed=4, start=DEFAULT_START + 9 * 3600, duration=4 * 3600,
        interval=30.0, protocol="ocpp1.6", arrival_rate=3.0, reboot_prob=0, gap_rate_per_hour=0,
    )  # fmt: skip
    sim = Simulation(cfg)
    truth = {s.transaction_id: s for s in sim.truth().sessions}
    checked = warm = 0
    for _, _, payload in sim.messages():
        frame = orjson.loads(payload)
        if frame[0] != 2 or frame[2] != "StopTransaction":
            continue
        begin, end = frame[3]["transactionData"]
        delta = float(end["sampledValue"][0]["value"]) - float(begin["sampledValue"][0]["value"])
        s = truth[str(frame[3]["transactionId"])]
        assert delta == pytest.approx(s.energy_wh, abs=2e-3)
        checked += 1
        warm += s.plug_in < cfg.start
    assert checked >= 5 and warm >= 1
