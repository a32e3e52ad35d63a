"""The driver's receipt and monthly statement over HTTP (read scope; docs/receipts.md).

* ``GET sessions/{session_id}/receipt``: HTML by default (or ``Accept:
  text/html``), the JSON document with ``format=json`` or ``Accept:
  application/json``;
* ``GET sessions/{session_id}/receipt/bundle.xml``: the verification bundle
  (S.A.F.E. transparency-software XML); 404 when the session has no OCMF record;
* ``GET statements?id_tag=...&month=YYYY-MM``: HTML or JSON, the same way.
"""

from __future__ import annotations

__all__ = ["FORMATS", "register_routes"]

import re
from collections.abc import Callable, Mapping
from typing import Any

import orjson

from chargewatch.api.http import HttpServer, Response, error_response
from chargewatch.api.receipt_html import render_receipt, render_statement
from chargewatch.model.fleet import Fleet
from chargewatch.storage.ledger import Ledger
from chargewatch.storage.receipt_source import load_receipt, load_statement

FORMATS = ("html", "json")
HTML = "text/html; charset=utf-8"
XML = "application/xml; charset=utf-8"
_MONTH = re.compile(r"[0-9]{4}-(0[1-9]|1[0-2])")  # ASCII digits: \d also takes other scripts'


def _json(doc: Any) -> Response:
    # Decimal amounts as strings: money keeps its digits (orjson has no Decimal).
    return 200, "application/json", orjson.dumps(doc, default=str)


def _format(params: Mapping[str, str]) -> str | Response:
    fmt = params.get("format", "html")
    return fmt if fmt in FORMATS else error_response(400, "format must be html or json")


def register_routes(
    server: HttpServer,
    ledger: Ledger,
    fleet: Callable[[], Fleet | None],
    operator: Mapping[str, str],
) -> None:
    """Add the receipt, bundle and statement routes; ``fleet`` gives the current inventory."""

    def receipt(params: dict[str, str], args: list[str]) -> Response:
        fmt = _format(params)
        if not isinstance(fmt, str):
            return fmt
        got = load_receipt(ledger, args[0], fleet(), operator)
        if got is None:
            return error_response(404, f"no session {args[0]}")
        doc, _ = got
        if fmt == "json":
            return _json(doc)
        return 200, HTML, render_receipt(doc).encode()

    def bundle(params: dict[str, str], args: list[str]) -> Response:
        got = load_receipt(ledger, args[0], fleet(), operator)
        if got is None:
            return error_response(404, f"no session {args[0]}")
        doc, xml = got
        if not doc["signature"]["bundle"] or "<value " not in xml:
            return error_response(404, f"session {args[0]} has no signed OCMF readings")
        return 200, XML, xml.encode()

    def statement(params: dict[str, str], args: list[str]) -> Response:
        fmt = _format(params)
        if not isinstance(fmt, str):
            return fmt
        id_tag, month = params.get("id_tag", ""), params.get("month", "")
        if not id_tag:
            return error_response(400, "id_tag is required")
        if not _MONTH.fullmatch(month):
            return error_response(400, "month must be YYYY-MM")
        try:
            doc = load_statement(ledger, id_tag, month, fleet(), operator)
        except (ValueError, OverflowError):  # year 0000, or beyond what datetime holds
            return error_response(400, f"month {month} is out of range")
        if fmt == "json":
            return _json(doc)
        return 200, HTML, render_statement(doc).encode()

    for template, route in (
        ("sessions/{session_id}/receipt", receipt),
        ("statements", statement),
    ):
        server.routes[template] = route
        server.negotiated.add(template)
    server.routes["sessions/{session_id}/receipt/bundle.xml"] = bundle
