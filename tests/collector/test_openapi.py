"""The OpenAPI document describes exactly the routes the collector registers."""

from __future__ import annotations

import re
from pathlib import Path

import orjson
import pytest

from chargewatch.api.http import ApiToken, HttpServer
from chargewatch.api.openapi import OPERATIONS, spec
from chargewatch.collector.service import Collector
from chargewatch.config.settings import Config, HttpConfig


@pytest.fixture
def server(tmp_path: Path) -> HttpServer:
    c = Collector(Config(data_dir=tmp_path, http=HttpConfig(listen="127.0.0.1:0")))
    assert c.http is not None
    c.http.server.server_close()
    return c.http


def test_every_registered_route_is_described_and_every_description_is_registered(
    server: HttpServer,
) -> None:
    registered = {("get", t) for t in server.routes} | {("post", t) for t in server.admin_routes}
    described = {(op.method, op.path) for op in OPERATIONS}
    assert registered - described == set(), "routes without an OpenAPI description"
    assert described - registered == set(), "OpenAPI paths the collector does not serve"
    doc = spec(server)
    served = {(m, p) for p, ops in doc["paths"].items() for m in ops}
    assert served == {(m, f"/{t}") for m, t in registered}


def test_document_shape(server: HttpServer) -> None:
    doc = spec(server)
    assert doc["openapi"].startswith("3.0")
    assert doc["servers"] == [{"url": "/api/v1"}]
    assert doc["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    ids = [op["operationId"] for ops in doc["paths"].values() for op in ops.values()]
    assert len(ids) == len(set(ids))
    for path, ops in doc["paths"].items():
        declared = set(re.findall(r"{(\w+)}", path))
        for op in ops.values():
            assert {"200", "400", "401", "403"} <= set(op["responses"])
            in_path = {p["name"] for p in op["parameters"] if p["in"] == "path"}
            assert in_path == declared, path
            if op["x-scope"] == "admin":
                assert path.startswith(("/remediation/", "/uptime/exclusions"))
    # the mutating routes are admin-only
    assert doc["paths"]["/remediation/pause"]["post"]["security"] == [{"bearer": ["admin"]}]


def test_served_without_a_token_and_matches(server: HttpServer) -> None:
    server.tokens = [ApiToken("read", "secret")]
    status, ctype, body = server.dispatch("/api/v1/openapi.json", "", "")
    assert (status, ctype) == (200, "application/json")
    assert orjson.loads(body) == orjson.loads(orjson.dumps(spec(server)))


def test_document_is_valid_openapi_30(server: HttpServer) -> None:
    # The OpenAPI 3.0 meta-schema, as schemathesis ships it (a dev dependency:
    # imported plainly, so a missing or moved module fails instead of skipping).
    import jsonschema  # noqa: PLC0415
    from schemathesis.specs.openapi import definitions  # noqa: PLC0415

    jsonschema.Draft4Validator(definitions.OPENAPI_30).validate(
        orjson.loads(orjson.dumps(spec(server)))
    )
