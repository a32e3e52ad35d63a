"""A session over MQTT (native events) → ledger → priced CDR → HTTP API (JSON and CSV)."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import httpx
import orjson
import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from chargewatch.collector.service import Collector
from chargewatch.config.fleet_file import load_fleet
from chargewatch.config.settings import Config, HttpConfig
from chargewatch.ingest.mqtt import MqttConfig
from tests.services import Mosquitto

pytestmark = pytest.mark.integration

TARIFFS = Path(__file__).resolve().parents[2] / "tariffs"


def test_session_priced_and_served(tmp_path: Path, mosquitto: Mosquitto) -> None:
    fleet = tmp_path / "fleet.yaml"
    fleet.write_text(
        "sites: [{id: depot, timezone: Europe/Amsterdam, tariff: flat-energy}]\n"
        "chargers: [{id: LIVE-1, site: depot, connectors: 1, max_power_w: 11000}]\n"
    )
    cfg = Config(
        data_dir=tmp_path / "data",
        mqtt=MqttConfig(port=mosquitto.port, client_id=f"cw-{uuid.uuid4().hex[:6]}"),
        http=HttpConfig(listen="127.0.0.1:0", token="tok"),
        fleet=fleet,
        tariffs=TARIFFS,
        tick_interval_s=0.2,
    )
    c = Collector(cfg, fleet=load_fleet(fleet))
    c.start()
    assert c.http is not None
    api = httpx.Client(
        base_url=f"http://127.0.0.1:{c.http.port}/api/v1", headers={"Authorization": "Bearer tok"}
    )
    pub = mqtt.Client(CallbackAPIVersion.VERSION2)
    pub.connect("127.0.0.1", mosquitto.port)
    pub.loop_start()
    t0 = time.time() - 3600  # a one-hour session that just ended
    try:
        assert c.ingest.wait_connected(10)
        time.sleep(0.3)

        def send(topic: str, doc: dict[str, object]) -> None:
            pub.publish(topic, orjson.dumps(doc), qos=1).wait_for_publish(5)

        send(
            "ev/LIVE-1/1/transaction",
            {"ts": t0, "event": "start", "transaction_id": "T1", "meter_wh": 100_000.0},
        )
        for k in range(61):  # 7.2 kW for an hour, a register reading every minute
            send(
                "ev/LIVE-1/1/meter",
                {"ts": t0 + 60 * k, "energy_wh": 100_000.0 + 120.0 * k, "power_w": 7200.0},
            )
        send(
            "ev/LIVE-1/1/transaction",
            {"ts": t0 + 3600, "event": "stop", "transaction_id": "T1", "meter_wh": 107_200.0},
        )

        deadline = time.monotonic() + 20
        sessions: list[dict[str, object]] = []
        while time.monotonic() < deadline and not sessions:
            sessions = api.get("/sessions").json()["sessions"]
            time.sleep(0.2)
        assert len(sessions) == 1
        s = sessions[0]
        assert s["charger_id"] == "LIVE-1" and s["transaction_id"] == "T1"
        assert s["energy_wh"] == pytest.approx(7200.0, abs=0.001)
        cdrs: list[dict[str, object]] = []
        while time.monotonic() < deadline and not cdrs:
            cdrs = api.get("/cdrs").json()["cdrs"]
            time.sleep(0.2)
        (cdr,) = cdrs
        assert cdr["session_id"] == s["session_id"]
        assert float(cdr["total_energy"]) == pytest.approx(7.2)  # type: ignore[arg-type]
        one = api.get(f"/sessions/{s['session_id']}").json()
        assert one["cdr"]["id"] == cdr["id"]
        csv_text = api.get("/sessions", params={"format": "csv"}).text
        assert csv_text.splitlines()[0].startswith("session_id") or "session_id" in csv_text
        assert s["session_id"] in api.get("/cdrs", params={"format": "csv"}).text
        assert api.get("/sessions/unknown").status_code == 404
        assert api.get("/sessions", params={"from": "yesterday"}).status_code == 400
    finally:
        pub.disconnect()
        pub.loop_stop()
        c.stop()
