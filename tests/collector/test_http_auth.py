"""Bearer tokens with scopes on /api/v1, open probes, optional /metrics protection."""

from __future__ import annotations

from collections.abc import Iterator

import orjson
import pytest

from chargewatch.api.http import ApiToken, HttpServer, json_response

READ, ADMIN = "r-token-1", "a-token-2"


def _server(**kw: object) -> HttpServer:
    srv = HttpServer(
        "127.0.0.1:0",
        health=lambda: (True, {}),
        ready=lambda: (True, {}),
        **kw,  # type: ignore[arg-type]
    )
    srv.routes["fleet"] = lambda p, r: json_response({"ok": True})
    srv.routes["sessions/{session_id}"] = lambda p, r: json_response({"id": r[0]})
    srv.admin_routes["remediation/pause"] = lambda p, r: json_response({"paused": True})
    return srv


@pytest.fixture
def srv() -> Iterator[HttpServer]:
    s = _server(tokens=[ApiToken("read", READ), ApiToken("admin", ADMIN)])
    yield s
    s.server.server_close()


def call(srv: HttpServer, path: str, token: str = "", method: str = "GET") -> int:
    auth = f"Bearer {token}" if token else ""
    return srv.dispatch(path, "", auth, method=method)[0]


def test_scopes(srv: HttpServer) -> None:
    assert call(srv, "/api/v1/fleet") == 401
    assert call(srv, "/api/v1/fleet", "nope") == 401
    assert call(srv, "/api/v1/fleet", READ) == 200
    assert call(srv, "/api/v1/fleet", ADMIN) == 200  # admin includes read
    assert call(srv, "/api/v1/remediation/pause", method="POST") == 401
    assert call(srv, "/api/v1/remediation/pause", READ, method="POST") == 403
    assert call(srv, "/api/v1/remediation/pause", ADMIN, method="POST") == 200
    body = srv.dispatch("/api/v1/remediation/pause", "", f"Bearer {READ}", method="POST")[2]
    assert orjson.loads(body) == {"error": "this token's scope is read; needs admin"}
    assert READ not in body.decode() and ADMIN not in body.decode()


def test_wrong_method_and_unknown_paths(srv: HttpServer) -> None:
    assert call(srv, "/api/v1/remediation/pause", ADMIN) == 405  # GET on a POST route
    assert call(srv, "/api/v1/fleet", ADMIN, method="POST") == 405
    assert call(srv, "/api/v1/fleet", ADMIN, method="DELETE") == 405
    assert call(srv, "/api/v1/fleet/extra", ADMIN) == 404
    assert call(srv, "/api/v1/nothing", ADMIN) == 404
    status, _, body = srv.dispatch("/api/v1/sessions/a%20b", "", f"Bearer {READ}")
    assert status == 200 and orjson.loads(body) == {"id": "a b"}
    assert srv.allowed("/api/v1/fleet") == ["GET"]
    assert srv.allowed("/api/v1/remediation/pause") == ["POST"]


def test_probes_and_document_are_open_metrics_optionally_protected(srv: HttpServer) -> None:
    assert call(srv, "/healthz") == 200
    assert call(srv, "/readyz") == 200
    assert call(srv, "/api/v1/openapi.json") == 200
    assert call(srv, "/metrics") == 200
    guarded = _server(tokens=[ApiToken("read", READ)], metrics_auth=True)
    try:
        assert call(guarded, "/metrics") == 401
        assert call(guarded, "/metrics", READ) == 200
        assert call(guarded, "/healthz") == 200
    finally:
        guarded.server.server_close()


def test_no_tokens_opens_reads_but_never_admin() -> None:
    srv = _server()
    try:
        assert call(srv, "/api/v1/fleet") == 200
        assert call(srv, "/api/v1/remediation/pause", method="POST") == 403
    finally:
        srv.server.server_close()


def test_legacy_single_token_is_read_scope() -> None:
    srv = _server(token="legacy")
    try:
        assert call(srv, "/api/v1/fleet", "legacy") == 200
        assert call(srv, "/api/v1/remediation/pause", "legacy", method="POST") == 403
    finally:
        srv.server.server_close()


def test_tokens_are_not_in_reprs() -> None:
    assert READ not in repr(ApiToken("read", READ))
