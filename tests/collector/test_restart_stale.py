"""StaleTelemetry across a collector restart in the middle of a transaction.

The detector watches a connector for missing meter values only while it knows
the connector is in a session (or reports while idle), which it learns from
StatusNotification and transaction messages. A charger sends those once, at
the change: a collector restarted mid-transaction must take the connector's
state from what it persisted (the fleet state's status, the open sessions of
the ledger), or a meter that stops after the restart is never reported."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from chargewatch.collector.service import Collector
from chargewatch.config.settings import Config, HttpConfig
from chargewatch.detectors import Finding
from chargewatch.model.fleet import ChargerSpec, Fleet

T0 = 1_800_000_000.0
FLEET = Fleet({}, {"X": ChargerSpec("X", site="s", connectors=1)})
METER_S = 10  # told at boot: MeterValueSampleInterval
BEAT_S = 60
Message = tuple[str, bytes, float]


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat().replace("+00:00", "Z")


def _cp(t: float, msg_id: str, action: str, payload: dict[str, Any]) -> Message:
    return "ocpp/1.6/X/cp", json.dumps([2, msg_id, action, payload]).encode(), t


def _csms(t: float, msg_id: str, payload: dict[str, Any]) -> Message:
    return "ocpp/1.6/X/csms", json.dumps([3, msg_id, payload]).encode(), t


def _meter(t: float, wh: float) -> Message:
    sampled = [
        {"measurand": "Energy.Active.Import.Register", "unit": "Wh", "value": f"{wh:.0f}"},
        {"measurand": "Power.Active.Import", "unit": "W", "value": "11000"},
    ]
    mv = {"connectorId": 1, "transactionId": 7, "meterValue": [
        {"timestamp": _iso(t), "sampledValue": sampled}
    ]}  # fmt: skip
    return _cp(t, f"m{t:.0f}", "MeterValues", mv)


def _start() -> list[Message]:
    """Boot (heartbeat 60 s), told 10 s meter values, a transaction charging."""
    boot = {"chargePointVendor": "V", "chargePointModel": "M"}
    accepted = {"status": "Accepted", "currentTime": _iso(T0), "interval": BEAT_S}
    conf = {"key": "MeterValueSampleInterval", "value": str(METER_S)}
    start = {"connectorId": 1, "idTag": "T", "meterStart": 0, "timestamp": _iso(T0 + 3)}
    status = {"connectorId": 1, "status": "Charging", "errorCode": "NoError"}
    return [
        _cp(T0, "b", "BootNotification", boot),
        _csms(T0 + 0.2, "b", accepted),
        ("ocpp/1.6/X/csms", json.dumps([2, "c", "ChangeConfiguration", conf]).encode(), T0 + 1),
        ("ocpp/1.6/X/cp", json.dumps([3, "c", {"status": "Accepted"}]).encode(), T0 + 1.2),
        _cp(T0 + 3, "s", "StartTransaction", start),
        _csms(T0 + 3.2, "s", {"transactionId": 7, "idTagInfo": {"status": "Accepted"}}),
        _cp(T0 + 4, "n", "StatusNotification", status),
    ]


def _run(c: Collector, start: int, stop: int, meter_until: int) -> None:
    """Heartbeats every 60 s and meter values every 10 s (until ``meter_until``)
    from T0 + ``start`` to T0 + ``stop``, the collector's evaluations every 10 s."""
    for s in range(start, stop, METER_S):
        t = T0 + s
        batch = [_meter(t, 30.0 * s)] if s < meter_until else []
        if s % BEAT_S == 0:
            batch.append(_cp(t + 0.5, f"h{s}", "Heartbeat", {}))
        if batch:
            c.pipeline.process(batch, t + 0.5)
        c.pipeline.tick(t + 1)


def _collector(data: Path) -> Collector:
    return Collector(Config(data_dir=data, http=HttpConfig(listen="")), fleet=FLEET)


def _stale(findings: list[Finding]) -> list[tuple[float, float]]:
    return [(f.start - T0, f.detected - T0) for f in findings if f.fault == "stale_telemetry"]


def _firing(c: Collector, name: str) -> list[float]:
    return [t.at - T0 for t in c.recent_transitions if t.alertname == name and t.state == "firing"]


def _reference(data: Path) -> tuple[list[tuple[float, float]], list[float]]:
    """The same charger and the same stop without a restart: (findings, pages)."""
    c = _collector(data)
    try:
        c.pipeline.process(_start(), T0 + 5)
        _run(c, 10, 1200, meter_until=400)
        return _stale(c.detectors.findings), _firing(c, "StaleTelemetry")
    finally:
        c.ledger.close()


def test_a_meter_that_stops_after_a_restart_mid_transaction_is_reported(tmp_path: Path) -> None:
    found, paged = _reference(tmp_path / "ref")
    # Last row at 390; silence_s (300 s) is longer than 2 x 10 s + 30 s; the rule's for: 5m.
    assert found == [(390.0, 690.0)] and paged == [991.0]
    c = _collector(tmp_path / "run")
    c.pipeline.process(_start(), T0 + 5)
    _run(c, 10, 300, meter_until=300)
    c._save_state()
    # Stopped cleanly (a crash after the last save keeps the same rows).
    c.ledger.close()
    c.fleet_store.close()
    c.deadletter.close()
    again = _collector(tmp_path / "run")
    try:
        # Back after a minute; no StatusNotification comes: the connector is
        # still Charging. The meter values go on to 390, then stop.
        _run(again, 360, 1200, meter_until=400)
        assert _stale(again.detectors.findings) == found
        assert _firing(again, "StaleTelemetry") == paged
        assert _firing(again, "ChargerOffline") == []
    finally:
        again.ledger.close()
