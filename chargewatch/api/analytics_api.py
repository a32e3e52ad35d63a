"""``GET /api/v1/analytics/{utilisation,daily,distributions,reliability,revenue,peers,peak_power}``.

Query parameters (all optional): ``from``, ``to`` (RFC 3339 or epoch seconds;
default: the ledger's first start / last stop), ``site``, ``charger``,
``level`` (fleet|site|charger|connector where it applies) and
``format=csv`` (default JSON). Each request opens its own ledger
connection: SQLite connections belong to one thread, and the pipeline
writes through its own.
"""

from __future__ import annotations

__all__ = [
    "ENDPOINTS",
    "AnalyticsQuery",
    "compute",
    "ledger_span",
    "parse_time",
    "register_routes",
    "to_csv",
]

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, cast

from chargewatch.analytics import (
    daily,
    distributions,
    peak_power,
    peers,
    reliability,
    revenue,
    utilisation,
)
from chargewatch.analytics.session_frame import GROUP_LEVELS, Level, Window
from chargewatch.analytics.tables import rows
from chargewatch.api.http import HttpServer, Response, json_response
from chargewatch.core.spreadsheet import csv_text
from chargewatch.storage.analytics_source import (
    has_alert_history,
    load_cdrs,
    load_frame,
    load_transitions,
)
from chargewatch.storage.ledger import Ledger

ENDPOINTS: tuple[str, ...] = (
    "utilisation",
    "daily",
    "distributions",
    "reliability",
    "revenue",
    "peers",
    "peak_power",
)
_DEFAULT_LEVEL: dict[str, Level] = {"reliability": "charger"}
MAX_TIME = 253_402_300_800.0  # 10000-01-01T00:00:00Z
#: Longest window a request may ask for: utilisation walks it hour by hour
#: (ten years ~ 1 s; a thousand years ran a minute and then failed).
MAX_WINDOW_S = 3660 * 86_400.0


@dataclass(frozen=True, slots=True)
class AnalyticsQuery:
    window: Window
    site: str | None = None
    charger: str | None = None
    level: Level = "site"
    zones: Mapping[str, str] = field(default_factory=dict)
    connectors: Mapping[str, int] | None = None


def parse_time(text: str) -> float:
    """RFC 3339 (``Z`` allowed; naive means UTC) or epoch seconds; ValueError otherwise."""
    try:
        value = float(text)
    except ValueError:
        try:
            dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            raise ValueError(f"expected RFC 3339 or epoch seconds, got {text!r}") from None
        if dt.tzinfo is None:
            dt = dt.replace(tzinfo=UTC)
        value = dt.timestamp()
    # NaN or infinity would make an unbounded or empty window deep in the
    # analytics, and datetime cannot hold years beyond 9999.
    if not (math.isfinite(value) and 0 <= value < MAX_TIME):
        raise ValueError(f"expected a time between 1970 and 9999, got {text!r}")
    return value


def ledger_span(
    ledger: Ledger, site: str | None = None, charger: str | None = None
) -> Window | None:
    sql = "SELECT MIN(start), MAX(stop) FROM sessions WHERE 1=1"
    args: list[Any] = []
    if site:
        sql += " AND site = ?"
        args.append(site)
    if charger:
        sql += " AND charger_id = ?"
        args.append(charger)
    lo, hi = ledger.db.execute(sql, args).fetchone()
    if lo is None:
        return None
    return Window(float(lo), float(hi) if hi > lo else float(lo) + 1.0)


def compute(name: str, ledger: Ledger, q: AnalyticsQuery) -> Any:
    """Run analytics ``name`` for the query against the ledger."""
    frame = load_frame(ledger, q.window, site=q.site, charger=q.charger)
    w, lvl = q.window, q.level
    if name == "utilisation":
        return utilisation(frame, w, level=lvl, zones=q.zones, connectors=q.connectors)
    if name == "daily":
        return daily(frame, w, level=lvl, zones=q.zones)
    if name == "distributions":
        return distributions(frame, w, level=lvl)
    if name == "reliability":
        history = (
            load_transitions(ledger, until=w.hi, site=q.site, charger=q.charger)
            if has_alert_history(ledger)
            else None
        )
        return reliability(frame, history, w, level=lvl)
    if name == "revenue":
        return revenue(frame, load_cdrs(ledger, w, site=q.site, charger=q.charger), w, level=lvl)
    if name == "peers":
        return peers(frame, w)
    if name == "peak_power":
        return peak_power(frame, w)
    raise KeyError(name)


def to_csv(table: list[dict[str, Any]]) -> str:
    columns: list[str] = []
    for r in table:
        columns.extend(k for k in r if k not in columns)
    return csv_text(
        columns, (["" if r.get(c) is None else r.get(c) for c in columns] for r in table)
    )


def _handler(
    name: str,
    open_ledger: Callable[[], tuple[Ledger, bool]],
    zones: Mapping[str, str],
    connectors: Mapping[str, int] | None,
) -> Callable[[dict[str, str], list[str]], Response]:
    def handle(params: dict[str, str], rest: list[str]) -> Response:
        if rest:
            return json_response(
                {"error": f"no such endpoint: analytics/{name}/{'/'.join(rest)}"}, 404
            )
        level = params.get("level", _DEFAULT_LEVEL.get(name, "site"))
        if level not in GROUP_LEVELS:
            return json_response({"error": f"level must be one of {', '.join(GROUP_LEVELS)}"}, 400)
        fmt = params.get("format", "json")
        if fmt not in ("json", "csv"):
            return json_response({"error": "format must be json or csv"}, 400)
        site, charger = params.get("site") or None, params.get("charger") or None
        ledger, own = open_ledger()
        try:
            try:
                lo = parse_time(params["from"]) if "from" in params else None
                hi = parse_time(params["to"]) if "to" in params else None
            except ValueError as exc:
                return json_response({"error": f"bad time: {exc}"}, 400)
            span = ledger_span(ledger, site, charger)
            if span is None and (lo is None or hi is None):
                return json_response({"error": "no sessions match; give from and to"}, 404)
            try:
                window = Window(
                    lo if lo is not None else cast(Window, span).lo,
                    hi if hi is not None else cast(Window, span).hi,
                )
            except ValueError as exc:
                return json_response({"error": str(exc)}, 400)
            if window.seconds > MAX_WINDOW_S:
                return json_response(
                    {"error": f"window longer than {MAX_WINDOW_S / 86_400:.0f} days"}, 400
                )
            q = AnalyticsQuery(window, site, charger, level, zones, connectors)
            doc = compute(name, ledger, q)
        finally:
            if own:
                ledger.close()
        if fmt == "csv":
            return 200, "text/csv; charset=utf-8", to_csv(rows(name, doc)).encode()
        return json_response(
            {"window": {"from": window.lo, "to": window.hi}, "level": level, name: doc}
        )

    return handle


def register_routes(
    server: HttpServer,
    ledger: Ledger,
    *,
    zones: Mapping[str, str] | None = None,
    connectors: Mapping[str, int] | None = None,
) -> None:
    """Mount the analytics endpoints on ``server``.

    ``zones``: site → IANA zone (from the fleet inventory) for hours of week
    and days; ``connectors``: charger → connector count, so idle chargers
    count in utilisation. An in-memory ledger is shared (tests, datasets).
    """

    def open_ledger() -> tuple[Ledger, bool]:
        if ledger.path == ":memory:":
            return ledger, False
        return ledger.sibling(), True

    for name in ENDPOINTS:
        server.routes[f"analytics/{name}"] = _handler(name, open_ledger, zones or {}, connectors)
