"""Exclusions through the API: tag, change, remove with who and why; an audit trail."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from chargewatch.api.http import ApiToken, HttpServer
from chargewatch.api.uptime_api import register_routes
from chargewatch.cli import main
from chargewatch.storage.ledger import Ledger
from tests.analytics.helpers import H
from tests.analytics.test_uptime_cli import T0, ledger_path

__all__ = ["ledger_path"]  # the fixture, shared

ADMIN, READ = "Bearer adm", "Bearer rd"


@pytest.fixture
def server(ledger_path: Path) -> Iterator[HttpServer]:
    srv = HttpServer(
        "127.0.0.1:0",
        health=lambda: (True, {}),
        ready=lambda: (True, {}),
        tokens=[ApiToken("admin", "adm"), ApiToken("read", "rd")],
    )
    register_routes(srv, Ledger(ledger_path), clock=lambda: 1_700_000_000.0)
    yield srv
    srv.server.server_close()


def call(srv: HttpServer, path: str, query: str, auth: str, method: str) -> tuple[int, Any]:
    status, _, body = srv.dispatch(f"/api/v1/{path}", query, auth, method=method)
    return status, json.loads(body)


def uptime_of_port_1(srv: HttpServer) -> dict[str, Any]:
    _, doc = call(srv, "uptime", f"from={T0}&to={T0 + 24 * H}", READ, "GET")
    return next(p for p in doc["ports"] if p["connector_id"] == "1")


def test_tag_change_remove_with_an_audit_trail(server: HttpServer) -> None:
    tag = f"charger=C1&from={T0 + 2 * H}&to={T0 + 3 * H}&cause=utility_interruption"
    who = "&by=ops&reason=utility+ticket+123"
    # Tagging needs the admin scope, a listed cause, who and why.
    assert call(server, "uptime/exclusions", tag + who, READ, "POST")[0] == 403
    assert call(server, "uptime/exclusions", tag, ADMIN, "POST")[0] == 400
    bad = tag.replace("utility_interruption", "bad_luck")
    assert call(server, "uptime/exclusions", bad + who, ADMIN, "POST")[0] == 400
    status, doc = call(server, "uptime/exclusions", tag + who, ADMIN, "POST")
    assert status == 200
    ident = doc["exclusion"]["id"]
    # Port 1's outage 2h-5h (180 min): 60 min of it are now excluded.
    assert uptime_of_port_1(server)["excluded_min"] == 60.0
    change = f"uptime/exclusions/{ident}"
    status, doc = call(
        server, change, f"to={T0 + 4 * H}&by=ops&reason=ticket+closed+at+4h", ADMIN, "POST"
    )
    assert status == 200 and doc["exclusion"]["end"] == T0 + 4 * H
    assert uptime_of_port_1(server)["excluded_min"] == 120.0
    status, _ = call(server, change, "remove=1&by=lead&reason=not+the+utility", ADMIN, "POST")
    assert status == 200
    port = uptime_of_port_1(server)
    assert port["excluded_min"] == 0.0 and port["outage_min"] == 180.0  # the outage stays
    _, listed = call(server, "uptime/exclusions", "", READ, "GET")
    (row,) = listed["exclusions"]
    assert row["removed"] == 1
    assert [(a["action"], a["by"], a["reason"]) for a in row["audit"]] == [
        ("tag", "ops", "utility ticket 123"),
        ("change", "ops", "ticket closed at 4h"),
        ("remove", "lead", "not the utility"),
    ]
    assert call(server, "uptime/exclusions/999", "remove=1&by=a&reason=b", ADMIN, "POST")[0] == 404
    assert call(server, "uptime/exclusions/x", "remove=1&by=a&reason=b", ADMIN, "POST")[0] == 400


def test_the_cli_uses_the_tags_stored_in_the_ledger(
    server: HttpServer, ledger_path: Path, capsys: Any
) -> None:
    tag = (
        f"charger=C1&connector=1&from={T0}&to={T0 + 24 * H}&cause=vandalism&by=ops&reason=cut+cable"
    )
    assert call(server, "uptime/exclusions", tag, ADMIN, "POST")[0] == 200
    argv = ["uptime", "--ledger", str(ledger_path), "--from", str(T0), "--to", str(T0 + 24 * H)]
    assert main(argv) == 0
    ports = {p["connector_id"]: p for p in json.loads(capsys.readouterr().out)["ports"]}
    assert ports["1"]["uptime_pct"] == 100.0
    assert ports["1"]["outages"][0]["cause"] == "vandalism"
    assert ports["2"]["excluded_min"] == 0.0  # the tag named connector 1 only
