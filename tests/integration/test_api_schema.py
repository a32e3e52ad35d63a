"""schemathesis against a live collector: every /api/v1 operation, generated queries.

The collector runs against a real Mosquitto with a fleet, tariffs and a few
finished (priced) sessions and an open fault, so responses have content.
Checks: no 5xx, responses match the schema, status codes and content types
are documented. Positive and negative (schema-violating) queries, a bounded
number of examples per operation so the run stays well under a minute.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson
import paho.mqtt.client as mqtt
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from paho.mqtt.enums import CallbackAPIVersion
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from chargewatch.api.http import ApiToken
from chargewatch.api.openapi import spec
from chargewatch.collector.service import Collector
from chargewatch.config.fleet_file import load_fleet
from chargewatch.config.settings import Config, HttpConfig
from chargewatch.ingest.mqtt import MqttConfig
from tests.services import Mosquitto

pytestmark = pytest.mark.integration

TARIFFS = Path(__file__).resolve().parents[2] / "tariffs"
ADMIN = "admin-tok"
READ = "read-tok"
EXAMPLES = 20  # per operation and mode; 15 operations: ~30 s with the setup on 2 cores
CHECKS = [
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
    content_type_conformance,
]


def _populate(port: int) -> None:
    """Three finished sessions on two chargers and a charger reporting a fault."""
    pub = mqtt.Client(CallbackAPIVersion.VERSION2)
    pub.connect("127.0.0.1", port)
    pub.loop_start()

    def send(topic: str, doc: dict[str, object]) -> None:
        pub.publish(topic, orjson.dumps(doc), qos=1).wait_for_publish(5)

    t0 = time.time() - 4 * 3600
    for n, (charger, start) in enumerate((("API-1", t0), ("API-2", t0), ("API-1", t0 + 7200))):
        tx, base = f"T{n}", 1000.0 * n
        tx_topic = f"ev/{charger}/1/transaction"
        send(tx_topic, {"ts": start, "event": "start", "transaction_id": tx, "meter_wh": base})
        for k in range(31):
            doc = {"ts": start + 60 * k, "energy_wh": base + 100.0 * k, "power_w": 6000.0}
            send(f"ev/{charger}/1/meter", doc)
        stop = {"ts": start + 1800, "event": "stop", "transaction_id": tx, "meter_wh": base + 3000}
        send(tx_topic, stop)
    fault = {"ts": time.time(), "status": "Faulted", "error_code": "GroundFailure"}
    send("ev/API-2/1/status", fault)
    pub.disconnect()
    pub.loop_stop()


@pytest.fixture(scope="module")
def collector(tmp_path_factory: pytest.TempPathFactory, mosquitto: Mosquitto) -> Iterator[str]:
    tmp = tmp_path_factory.mktemp("api")
    fleet = tmp / "fleet.yaml"
    fleet.write_text(
        "sites: [{id: depot, timezone: Europe/Amsterdam, tariff: flat-energy}]\n"
        "chargers:\n"
        "  - {id: API-1, site: depot, connectors: 1, max_power_w: 11000}\n"
        "  - {id: API-2, site: depot, connectors: 1, max_power_w: 11000}\n"
    )
    cfg = Config(
        data_dir=tmp / "data",
        mqtt=MqttConfig(port=mosquitto.port, client_id=f"cw-{uuid.uuid4().hex[:6]}"),
        http=HttpConfig(
            listen="127.0.0.1:0", tokens=(ApiToken("admin", ADMIN), ApiToken("read", READ))
        ),
        fleet=fleet,
        tariffs=TARIFFS,
        tick_interval_s=0.2,
    )
    c = Collector(cfg, fleet=load_fleet(fleet))
    c.start()
    assert c.http is not None
    base = f"http://127.0.0.1:{c.http.port}"
    try:
        assert c.ingest.wait_connected(10)
        time.sleep(0.3)
        _populate(mosquitto.port)
        deadline = time.monotonic() + 30
        cdrs: list[object] = []
        while time.monotonic() < deadline and len(cdrs) < 3:
            r = httpx.get(f"{base}/api/v1/cdrs", headers={"Authorization": f"Bearer {ADMIN}"})
            cdrs = r.json()["cdrs"]
            time.sleep(0.2)
        assert len(cdrs) == 3, "the ledger was not populated"
        yield base
    finally:
        c.stop()


# Built from the same module the collector serves (the live document is
# compared with it below): schemathesis' lazy fixture loader does not work
# with pytest 9, and parametrising needs the operations at collection time.
schema = schemathesis.openapi.from_dict(spec())
schema.config.generation.update(
    modes=[GenerationMode.POSITIVE, GenerationMode.NEGATIVE], max_examples=EXAMPLES
)


def test_served_document_is_the_tested_one(collector: str) -> None:
    served = httpx.get(f"{collector}/api/v1/openapi.json").json()
    assert served == orjson.loads(orjson.dumps(spec()))


def test_every_operation_needs_a_token_of_its_scope(collector: str) -> None:
    for path, ops in spec()["paths"].items():
        url = f"{collector}/api/v1{path}".replace("{session_id}", "S-1")
        for method, op in ops.items():
            # Required query parameters (statements: id_tag, month) get their examples.
            query = {
                p["name"]: p["example"]
                for p in op["parameters"]
                if p["in"] == "query" and p["required"]
            }
            assert httpx.request(method, url, params=query).status_code == 401, (method, path)
            wrong = {"Authorization": "Bearer not-a-token"}
            assert httpx.request(method, url, params=query, headers=wrong).status_code == 401
            auth = {"Authorization": f"Bearer {READ}"}
            read = httpx.request(method, url, params=query, headers=auth)
            if op["x-scope"] == "admin":
                assert read.status_code == 403, (method, path)
            else:
                assert read.status_code in (200, 404), (method, path, read.text)


@schema.parametrize()
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)
def test_api_conforms_to_its_openapi_document(collector: str, case: schemathesis.Case) -> None:
    # Sent with httpx: schemathesis' requests transport breaks when urllib3-future
    # (pulled in by niquests) has replaced urllib3, as in this venv.
    kw = case.as_transport_kwargs(
        base_url=f"{collector}/api/v1", headers={"Authorization": f"Bearer {ADMIN}"}
    )
    response = httpx.request(
        kw["method"],
        kw["url"],
        params=kw.get("params"),
        headers=kw.get("headers"),
        cookies=kw.get("cookies"),
        content=kw.get("data"),
        json=kw.get("json"),
        timeout=30,
    )
    case.validate_response(response, checks=CHECKS)
