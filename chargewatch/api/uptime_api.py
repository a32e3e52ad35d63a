"""``GET /api/v1/uptime``: per-port uptime (23 CFR 680.116(b)) from the ledger.

Query parameters: ``from``, ``to`` (RFC 3339 or epoch seconds; default the
ledger's session span), ``site``, ``charger`` (only those ports) and
``format=csv``. The document is :func:`chargewatch.analytics.uptime.report`'s.
Outages the operator tagged (the ledger's ``uptime_exclusions``) are excluded.

Exclusions: ``GET uptime/exclusions`` lists them with their audit trail;
``POST uptime/exclusions`` (admin) tags one from query parameters ``charger``,
``connector`` ("" = every port), ``from``, ``to``, ``cause``, ``by``, ``reason``;
``POST uptime/exclusions/{exclusion_id}`` (admin) changes ``connector``,
``from``, ``to`` or ``cause``, or with ``remove=1`` removes it; ``by`` and
``reason`` are required every time. The HTTP server reads no request bodies,
so the fields travel as query parameters.
"""

from __future__ import annotations

__all__ = ["register_routes"]

import time
from collections.abc import Callable
from typing import Any

from chargewatch.analytics.session_frame import Window
from chargewatch.analytics.uptime import Port, port_table, report
from chargewatch.api.analytics_api import MAX_WINDOW_S, ledger_span, parse_time
from chargewatch.api.http import HttpServer, Response, json_response
from chargewatch.core.spreadsheet import csv_text
from chargewatch.model.fleet import Fleet
from chargewatch.storage.exclusions import (
    active_exclusions,
    change_exclusion,
    list_exclusions,
    tag_exclusion,
)
from chargewatch.storage.ledger import Ledger
from chargewatch.storage.uptime_source import load_uptime_inputs


def _window(ledger: Ledger, params: dict[str, str]) -> Window | str:
    """The requested window, or what is wrong with the request."""
    try:
        lo = parse_time(params["from"]) if "from" in params else None
        hi = parse_time(params["to"]) if "to" in params else None
    except ValueError as exc:
        return f"bad time: {exc}"
    span = ledger_span(ledger)
    if span is None and (lo is None or hi is None):
        return "no sessions in the ledger; give from and to"
    try:
        window = Window(
            lo if lo is not None else span.lo if span else 0.0,
            hi if hi is not None else span.hi if span else 0.0,
        )
    except ValueError as exc:
        return str(exc)
    if window.seconds > MAX_WINDOW_S:
        return f"window longer than {MAX_WINDOW_S / 86_400:.0f} days"
    return window


def _handler(
    open_ledger: Callable[[], tuple[Ledger, bool]], fleet: Fleet | None
) -> Callable[[dict[str, str], list[str]], Response]:
    def handle(params: dict[str, str], rest: list[str]) -> Response:
        if rest:
            return json_response({"error": f"no such endpoint: uptime/{'/'.join(rest)}"}, 404)
        fmt = params.get("format", "json")
        if fmt not in ("json", "csv"):
            return json_response({"error": "format must be json or csv"}, 400)
        ledger, own = open_ledger()
        try:
            window = _window(ledger, params)
            if isinstance(window, str):
                return json_response({"error": window}, 400)
            inputs = load_uptime_inputs(ledger, window.lo, window.hi, fleet=fleet)
            exclusions = active_exclusions(ledger) + inputs.exclusions
        finally:
            if own:
                ledger.close()
        ports = [p for p in inputs.ports if _wanted(p, params)]
        doc = report(
            ports,
            inputs.signals,
            exclusions,
            inputs.sessions,
            inputs.failed_starts,
            window.lo,
            window.hi,
        )
        if fmt == "csv":
            return 200, "text/csv; charset=utf-8", csv_text(*port_table(doc)).encode()
        return json_response(doc)

    return handle


def _wanted(port: Port, params: dict[str, str]) -> bool:
    site, charger = params.get("site"), params.get("charger")
    return (not site or port.site == site) and (not charger or port.charger == charger)


Opener = Callable[[], tuple[Ledger, bool]]
Route = Callable[[dict[str, str], list[str]], Response]


def _who(params: dict[str, str]) -> tuple[str, str] | None:
    """Who acts and why; None when either is missing."""
    by, why = params.get("by", "").strip(), params.get("reason", "").strip()
    return (by, why) if by and why else None


_NO_WHO = json_response({"error": "by and reason are required"}, 400)


def _fields(params: dict[str, str]) -> dict[str, Any] | Response:
    """The exclusion fields given (times parsed); a 400 when one is malformed."""
    out: dict[str, Any] = {}
    try:
        for key, col in (("from", "start"), ("to", "end")):
            if key in params:
                out[col] = parse_time(params[key])
    except ValueError as exc:
        return json_response({"error": f"bad time: {exc}"}, 400)
    for key in ("charger", "connector", "cause"):
        if key in params:
            out[key] = params[key]
    return out


def _with_ledger(open_ledger: Opener, act: Callable[[Ledger], Response]) -> Response:
    ledger, own = open_ledger()
    try:
        return act(ledger)
    except ValueError as exc:  # an unlisted cause, end before start, no charger
        return json_response({"error": str(exc)}, 400)
    finally:
        if own:
            ledger.close()


def _tag(open_ledger: Opener, clock: Callable[[], float]) -> Route:
    def handle(params: dict[str, str], rest: list[str]) -> Response:
        who, fields = _who(params), _fields(params)
        if who is None:
            return _NO_WHO
        if not isinstance(fields, dict):
            return fields
        missing = [k for k in ("charger", "start", "end", "cause") if k not in fields]
        if missing:
            return json_response({"error": f"missing: {', '.join(missing)}"}, 400)
        return _with_ledger(
            open_ledger,
            lambda led: json_response(
                {
                    "exclusion": tag_exclusion(
                        led,
                        connector=fields.pop("connector", ""),
                        **fields,
                        by=who[0],
                        reason=who[1],
                        at=clock(),
                    )
                }
            ),
        )

    return handle


def _change(open_ledger: Opener, clock: Callable[[], float]) -> Route:
    def handle(params: dict[str, str], rest: list[str]) -> Response:
        if not rest[0].isdigit() or len(rest[0]) > 18:
            return json_response({"error": "exclusion_id must be a number"}, 400)
        who, fields = _who(params), _fields(params)
        if who is None:
            return _NO_WHO
        if not isinstance(fields, dict):
            return fields
        fields.pop("charger", None)  # a tag stays on its charger: tag anew instead
        if params.get("remove") in ("1", "true"):
            fields = {"removed": 1}

        def act(led: Ledger) -> Response:
            row = change_exclusion(led, int(rest[0]), fields, by=who[0], reason=who[1], at=clock())
            if row is None:
                return json_response({"error": f"no exclusion {rest[0]}"}, 404)
            return json_response({"exclusion": row})

        return _with_ledger(open_ledger, act)

    return handle


def _list(open_ledger: Opener) -> Route:
    def handle(params: dict[str, str], rest: list[str]) -> Response:
        return _with_ledger(
            open_ledger, lambda led: json_response({"exclusions": list_exclusions(led)})
        )

    return handle


def register_routes(
    server: HttpServer,
    ledger: Ledger,
    *,
    fleet: Fleet | None = None,
    clock: Callable[[], float] = time.time,
) -> None:
    """Mount ``uptime`` and its exclusions on ``server``; ``fleet`` lists the ports (else
    those the ledger saw); ``clock`` stamps the audit trail."""

    def open_ledger() -> tuple[Ledger, bool]:
        if ledger.path == ":memory:":
            return ledger, False
        return ledger.sibling(), True

    server.routes["uptime"] = _handler(open_ledger, fleet)
    server.routes["uptime/exclusions"] = _list(open_ledger)
    server.admin_routes["uptime/exclusions"] = _tag(open_ledger, clock)
    server.admin_routes["uptime/exclusions/{exclusion_id}"] = _change(open_ledger, clock)
