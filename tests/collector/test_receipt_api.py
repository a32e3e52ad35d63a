"""``/api/v1/sessions/{id}/receipt[/bundle.xml]`` and ``/api/v1/statements``:
read scope, HTML or JSON by ``format`` or Accept, errors as the API's JSON."""

from __future__ import annotations

import sqlite3

import orjson
import pytest

from chargewatch.api.http import ApiToken, HttpServer
from chargewatch.api.receipt_api import register_routes
from chargewatch.storage.ledger import Ledger
from tests.billing.ocmf_kit import Meter
from tests.collector import test_replay_signed as replay

READ, ADMIN = "Bearer r-token", "Bearer a-token"


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> tuple[HttpServer, str]:
    tmp = tmp_path_factory.mktemp("api")
    m = Meter()
    replay._v16(tmp, m, *replay._records(m))
    path = tmp / "out" / "ledger.sqlite"
    db = sqlite3.connect(path)
    (sid,) = db.execute("SELECT session_id FROM sessions").fetchone()
    db.close()
    server = HttpServer("127.0.0.1:0", health=lambda: (True, {}), ready=lambda: (True, {}))
    server.server.server_close()  # dispatch only: no socket needed
    server.tokens = [ApiToken("read", "r-token"), ApiToken("admin", "a-token")]
    register_routes(server, Ledger(str(path), read_only=True), lambda: None, {"name": "Op"})
    return server, str(sid)


def test_receipt_html_by_default_json_by_format_or_accept(served: tuple[HttpServer, str]) -> None:
    server, sid = served
    path = f"/api/v1/sessions/{sid}/receipt"
    status, ctype, body = server.dispatch(path, "", READ)
    assert (status, ctype) == (200, "text/html; charset=utf-8") and b"<!doctype html>" in body
    status, ctype, body = server.dispatch(path, "", READ, accept="text/html,*/*;q=0.8")
    assert ctype.startswith("text/html")
    for query, accept in (("format=json", ""), ("", "application/json")):
        status, ctype, body = server.dispatch(path, query, READ, accept=accept)
        assert (status, ctype) == (200, "application/json")
        doc = orjson.loads(body)
        assert doc["signature"]["status"] == "verified"
        assert doc["price"]["total_incl_vat"] == "0.6353"  # Decimal, as a string
    # An explicit format wins over Accept; a wrong one is a 400.
    assert server.dispatch(path, "format=html", READ, accept="application/json")[1].startswith(
        "text/html"
    )
    assert server.dispatch(path, "format=pdf", READ)[0] == 400


def test_bundle_and_missing_sessions(served: tuple[HttpServer, str]) -> None:
    server, sid = served
    status, ctype, body = server.dispatch(f"/api/v1/sessions/{sid}/receipt/bundle.xml", "", READ)
    assert (status, ctype) == (200, "application/xml; charset=utf-8")
    assert body.count(b"<value ") == 2
    for path in ("/api/v1/sessions/nope/receipt", "/api/v1/sessions/nope/receipt/bundle.xml"):
        status, ctype, body = server.dispatch(path, "", READ)
        assert (status, ctype) == (404, "application/json") and b"no session" in body


def test_statement(served: tuple[HttpServer, str]) -> None:
    server, _ = served
    q = "id_tag=04A1B2C3&month=2026-09&format=json"
    status, _, body = server.dispatch("/api/v1/statements", q, READ)
    doc = orjson.loads(body)
    assert status == 200 and doc["totals"][0]["incl_vat"] == "0.6353"
    status, ctype, body = server.dispatch("/api/v1/statements", q.replace("&format=json", ""), READ)
    assert (status, ctype) == (200, "text/html; charset=utf-8") and b"0.64 EUR" in body
    arabic_digits = "\u0662\u0660\u0662\u0666-09"  # \d takes them; strptime does not
    for bad in ("month=2026-09", "id_tag=x&month=2026-13", "id_tag=x&month=09-2026",
                f"id_tag=x&month={arabic_digits}"):  # fmt: skip
        assert server.dispatch("/api/v1/statements", bad, READ)[0] == 400


def test_read_scope_enforced(served: tuple[HttpServer, str]) -> None:
    server, sid = served
    for path in (f"/api/v1/sessions/{sid}/receipt", f"/api/v1/sessions/{sid}/receipt/bundle.xml",
                 "/api/v1/statements"):  # fmt: skip
        assert server.dispatch(path, "id_tag=a&month=2026-09", "")[0] == 401
        assert server.dispatch(path, "id_tag=a&month=2026-09", "Bearer wrong")[0] == 401
        assert server.dispatch(path, "id_tag=a&month=2026-09", ADMIN)[0] == 200
        assert server.dispatch(path, "", READ, method="POST")[0] == 405
