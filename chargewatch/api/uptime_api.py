"""``GET /api/v1/uptime``: per-port uptime (23 CFR 680.116(b)) from the ledger.

Query parameters: ``from``, ``to`` (RFC 3339 or epoch seconds; default the
ledger's session span), ``site``, ``charger`` (only those ports) and
``format=csv``. The document is :func:`chargewatch.analytics.uptime.report`'s.
Exclusions are not stored yet, so nothing is excluded here (docs/analytics.md).
"""

from __future__ import annotations

__all__ = ["register_routes"]

from collections.abc import Callable

from chargewatch.analytics.session_frame import Window
from chargewatch.analytics.uptime import Port, port_table, report
from chargewatch.api.analytics_api import MAX_WINDOW_S, ledger_span, parse_time
from chargewatch.api.http import HttpServer, Response, json_response
from chargewatch.core.spreadsheet import csv_text
from chargewatch.model.fleet import Fleet
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
        finally:
            if own:
                ledger.close()
        ports = [p for p in inputs.ports if _wanted(p, params)]
        doc = report(
            ports, inputs.signals, (), inputs.sessions, inputs.failed_starts, window.lo, window.hi
        )
        if fmt == "csv":
            return 200, "text/csv; charset=utf-8", csv_text(*port_table(doc)).encode()
        return json_response(doc)

    return handle


def _wanted(port: Port, params: dict[str, str]) -> bool:
    site, charger = params.get("site"), params.get("charger")
    return (not site or port.site == site) and (not charger or port.charger == charger)


def register_routes(server: HttpServer, ledger: Ledger, *, fleet: Fleet | None = None) -> None:
    """Mount ``uptime`` on ``server``; ``fleet`` lists the ports (else those the ledger saw)."""

    def open_ledger() -> tuple[Ledger, bool]:
        if ledger.path == ":memory:":
            return ledger, False
        return Ledger(ledger.path), True

    server.routes["uptime"] = _handler(open_ledger, fleet)
