"""The OpenAPI 3.0 description of ``/api/v1``, served at ``/api/v1/openapi.json``.

Every route the collector registers is described here, in :data:`OPERATIONS`
(one entry per path template and method); :func:`spec` builds the document
from the entries whose route is registered on the server, so a collector
without analytics, say, does not advertise them. ``tests/collector/test_openapi.py``
checks that every registered route has an entry and every entry a route, and
``tests/integration/test_api_schema.py`` runs schemathesis against a live
collector with this document.
"""

from __future__ import annotations

__all__ = ["OPERATIONS", "Operation", "spec"]

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from chargewatch import __version__
from chargewatch.analytics.ocpi_status import OCPI_STATUSES
from chargewatch.analytics.uptime import EXCLUDED_CAUSES
from chargewatch.api.analytics_api import ENDPOINTS as ANALYTICS
from chargewatch.api.http import Scope

if TYPE_CHECKING:
    from chargewatch.api.http import HttpServer

JSON = "application/json"
CSV = "text/csv"
HTML = "text/html"

_ERROR = {
    "type": "object",
    "required": ["error"],
    "properties": {"error": {"type": "string", "description": "what was wrong"}},
}
_NUM = {"type": "number"}
_NULLABLE_NUM = {"type": "number", "nullable": True}
_STR = {"type": "string"}

_TIME = {
    "type": "string",
    "description": "RFC 3339 (naive means UTC; `Z` allowed) or epoch seconds",
    "example": "2026-11-20T00:00:00Z",
}


def _query(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "schema": schema,
        "description": description,
    }


_FORMAT = _query("format", {"type": "string", "enum": ["json", "csv"]}, "response format")
_FILTERS = [
    _query("from", _TIME, "sessions starting at or after this time"),
    _query("to", _TIME, "sessions starting before this time"),
    _query("charger", _STR, "only this charger id"),
    _query("site", _STR, "only this site id"),
    _query(
        "limit",
        {"type": "integer", "minimum": 0, "maximum": 100_000, "default": 1000},
        "at most this many rows",
    ),
    _query(
        "offset",
        {"type": "integer", "minimum": 0, "maximum": 2**53, "default": 0},
        "skip this many rows",
    ),
    _FORMAT,
]

_SESSION = {
    "type": "object",
    "description": "a session (the sessions.jsonl object of the README)",
    "required": ["session_id", "charger_id", "connector_id", "start"],
    "properties": {
        "session_id": _STR,
        "charger_id": _STR,
        "connector_id": {"type": "integer"},
        "site": {"type": "string", "nullable": True},
        "transaction_id": {"type": "string", "nullable": True},
        "start": {"type": "string", "format": "date-time"},
        "stop": {"type": "string", "format": "date-time", "nullable": True},
        "energy_wh": _NULLABLE_NUM,
        "energy_source": {"type": "string", "nullable": True},
        "quality": {"type": "array", "items": _STR},
        "revision": {"type": "integer"},
        # How the session was closed (docs/sessions.md, "Session stop"), and,
        # where a stop event came, the reason the charger gave for it.
        "stop_reason": {
            "type": "string",
            "enum": ["transaction", "next_start", "available", "status", "timeout", ""],
        },
        "charger_stop_reason": _STR,
        # Present where the register is proven wrong (needs_review) or differs
        # from the best estimate (docs/sessions.md, "Energy").
        "register_energy_wh": _NULLABLE_NUM,
        "estimate_energy_wh": _NULLABLE_NUM,
        "review_reason": _STR,
        # Present where the charger's clock was off and its times were moved
        # (docs/sessions.md, "Charger clocks"): its time minus receipt, seconds.
        "clock_offset_s": _NULLABLE_NUM,
        # The meter's signed readings checked (docs/signatures.md).
        "signature_status": {
            "type": "string",
            "enum": ["verified", "invalid", "unsigned", "key_unknown", "incomplete"],
        },
        "signature_reason": _STR,
        "key_pinned": {"type": "boolean"},
        # Only for signed sessions; signed_readings only in GET /sessions/{id}.
        "public_key": _STR,
        "signed_energy_wh": _NULLABLE_NUM,
        "signed_resolution_wh": _NULLABLE_NUM,
        "signed_readings": {"type": "array", "items": {"type": "object"}},
    },
}
_CDR = {
    "type": "object",
    "description": "an OCPI 2.2.1 CDR",
    "required": ["id", "start_date_time", "end_date_time", "total_cost", "total_energy"],
    "properties": {
        "id": _STR,
        "start_date_time": _STR,
        "end_date_time": _STR,
        "total_cost": {"type": "object"},
        "total_energy": _NUM,
    },
}
_ALERT = {
    "type": "object",
    "required": ["labels", "annotations", "state", "active_at"],
    "properties": {
        "labels": {"type": "object", "additionalProperties": _STR},
        "annotations": {"type": "object", "additionalProperties": _STR},
        "value": _NULLABLE_NUM,
        "state": {"type": "string", "enum": ["pending", "firing"]},
        "active_at": _NUM,
        # The connector number of the `connector` label; null for an alert
        # about a whole charger.
        "connector": {"type": "integer", "nullable": True},
        "fired_at": _NULLABLE_NUM,
    },
}


_OUTAGE = {
    "type": "object",
    "required": ["start", "end", "cause", "evidence"],
    "properties": {"start": _NUM, "end": _NUM, "cause": _STR, "evidence": {"type": "object"}},
}
_PORT_UPTIME = {
    "type": "object",
    "required": [
        "charger_id",
        "connector_id",
        "window_start",
        "window_end",
        "uptime_pct",
        "outage_min",
        "excluded_min",
        "outages",
    ],
    "properties": {
        "charger_id": _STR,
        "connector_id": _STR,
        "site": _STR,
        "model": _STR,
        "window_start": _NUM,
        "window_end": _NUM,
        "t_min": _NUM,
        "uptime_pct": _NUM,
        "outage_min": _NUM,
        "excluded_min": _NUM,
        "failures_by_mrec": {"type": "object", "additionalProperties": {"type": "integer"}},
        "outages": {"type": "array", "items": _OUTAGE},
        "driver": {"type": "object"},
    },
}


_CAUSE = {"type": "string", "enum": list(EXCLUDED_CAUSES)}
_EXCLUSION = {
    "type": "object",
    "required": ["id", "charger", "connector", "start", "end", "cause", "tagged_by", "reason"],
    "properties": {
        "id": {"type": "integer"},
        "charger": _STR,
        "connector": _STR,
        "start": _NUM,
        "end": _NUM,
        "cause": _CAUSE,
        "tagged_by": _STR,
        "reason": _STR,
        "removed": {"type": "integer"},
    },
}
_EXCLUSION_LISTED = {
    "allOf": [
        _EXCLUSION,
        {
            "type": "object",
            "required": ["audit"],
            "properties": {"audit": {"type": "array", "items": {"type": "object"}}},
        },
    ]
}
_EXCLUSION_DOC = {
    "type": "object",
    "required": ["exclusion"],
    "properties": {"exclusion": _EXCLUSION},
}
_WHO = [
    _query("by", _STR, "who acts (required; kept in the audit trail)"),
    _query("reason", _STR, "why (required; kept in the audit trail)"),
]


@dataclass(frozen=True)
class Operation:
    """One method on one path template under /api/v1."""

    path: str  # the route's template, as registered: "sessions/{session_id}"
    method: str
    summary: str
    json_schema: dict[str, Any]
    parameters: list[dict[str, Any]] = field(default_factory=list)
    csv: bool = False  # also answers text/csv with format=csv
    html: bool = False  # also answers text/html (format=html or Accept)
    json: bool = True  # a 200 answers JSON (false: only the media types in other)
    other: tuple[str, ...] = ()  # further media types of a 200, as strings (XML)
    scope: Scope = "read"
    errors: dict[str, str] = field(default_factory=dict)  # extra status -> meaning


def _analytics(name: str) -> Operation:
    return Operation(
        f"analytics/{name}",
        "get",
        f"analytics: {name} (docs/analytics.md)",
        {
            "type": "object",
            "required": ["window", "level", name],
            "properties": {
                "window": {
                    "type": "object",
                    "required": ["from", "to"],
                    "properties": {"from": _NUM, "to": _NUM},
                },
                "level": {"type": "string", "enum": ["fleet", "site", "charger", "connector"]},
                name: {},
            },
        },
        [
            _query("from", _TIME, "window start (default: the ledger's first session start)"),
            _query("to", _TIME, "window end, exclusive (default: the last session stop)"),
            _query("site", _STR, "only this site"),
            _query("charger", _STR, "only this charger"),
            _query(
                "level",
                {"type": "string", "enum": ["fleet", "site", "charger", "connector"]},
                "grouping (default site; reliability: charger)",
            ),
            _FORMAT,
        ],
        csv=True,
        errors={"404": "no session matches and no from/to given"},
    )


_PAUSED = {
    "type": "object",
    "required": ["paused"],
    "properties": {"paused": {"type": "boolean"}},
}

#: Every /api/v1 operation. Add the entry when you register a route.
_SESSION_ID = {
    "name": "session_id",
    "in": "path",
    "required": True,
    "schema": _STR,
    "description": "the session's id",
}
_HTML_OR_JSON = _query(
    "format",
    {"type": "string", "enum": ["html", "json"]},
    "html (default) or json; without it the Accept header chooses",
)
_RECEIPTS = (
    Operation(
        "sessions/{session_id}/receipt",
        "get",
        "the driver's receipt: where, when, energy, price per tariff dimension with VAT, "
        "power curve, signed readings in plain words (docs/receipts.md)",
        {
            "type": "object",
            "required": ["session_id", "where", "when", "price", "signature"],
            "properties": {
                "session_id": _STR,
                "operator": {"type": "object"},
                "where": {"type": "object"},
                "when": {"type": "object"},
                "id_tag": _STR,
                "energy_kwh": {"type": "string", "nullable": True, "description": "decimal"},
                "duration": _STR,
                "price": {"type": "object", "nullable": True, "description": "amounts decimal"},
                "power_curve": {"type": "array", "items": {"type": "object"}},
                "signature": {"type": "object"},
            },
        },
        [_SESSION_ID, _HTML_OR_JSON],
        html=True,
        errors={"404": "no such session"},
    ),
    Operation(
        "sessions/{session_id}/receipt/bundle.xml",
        "get",
        "the session's OCMF records and public key in the S.A.F.E. transparency-software XML",
        {"type": "string"},
        [_SESSION_ID],
        json=False,
        other=("application/xml",),
        errors={"404": "no such session, or it has no signed OCMF readings"},
    ),
    Operation(
        "statements",
        "get",
        "a driver's monthly statement: every session of id_tag in month (the site's local "
        "time), cost and signature status each, totals per currency",
        {
            "type": "object",
            "required": ["id_tag", "month", "sessions", "totals"],
            "properties": {
                "id_tag": _STR,
                "month": _STR,
                "operator": {"type": "object"},
                "sessions": {"type": "array", "items": {"type": "object"}},
                "unpriced": {"type": "integer"},
                "totals": {"type": "array", "items": {"type": "object"}},
            },
        },
        [
            {
                "name": "id_tag",
                "in": "query",
                "required": True,
                "schema": {"type": "string", "minLength": 1},
                "description": "the driver's id tag (RFID uid, contract id)",
                "example": "04A1B2C3",
            },
            {
                "name": "month",
                "in": "query",
                "required": True,
                "schema": {"type": "string", "pattern": "^[0-9]{4}-(0[1-9]|1[0-2])$"},
                "description": "YYYY-MM",
                "example": "2026-09",
            },
            _HTML_OR_JSON,
        ],
        html=True,
    ),
)

OPERATIONS: tuple[Operation, ...] = (
    Operation(
        "alerts",
        "get",
        "pending and firing alerts",
        {
            "type": "object",
            "required": ["alerts"],
            "properties": {"alerts": {"type": "array", "items": _ALERT}},
        },
        [_query("state", {"type": "string", "enum": ["pending", "firing"]}, "only this state")],
    ),
    Operation(
        "fleet",
        "get",
        "current state of every connector (latest values, status, liveness)",
        {
            "type": "object",
            "required": ["connectors", "chargers_online"],
            "properties": {
                "connectors": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["charger", "connector", "site"],
                        "properties": {
                            "charger": _STR,
                            "connector": {"type": "integer"},
                            "site": _STR,
                        },
                    },
                },
                "chargers_online": {"type": "integer"},
            },
        },
    ),
    Operation(
        "ocpi/evses",
        "get",
        "each connector as an OCPI 2.2.1 EVSE with its status, for AFIR feeds "
        "(docs/analytics.md, OCPI EVSE status)",
        {
            "type": "object",
            "required": ["evses", "generated_at"],
            "properties": {
                "evses": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["uid", "location_id", "status", "last_updated"],
                        "properties": {
                            "uid": _STR,
                            "location_id": _STR,
                            "status": {"type": "string", "enum": list(OCPI_STATUSES)},
                            "last_updated": _STR,
                            "charger": _STR,
                            "connector": {"type": "integer"},
                            "ocpp_status": _STR,
                            "offline": {"type": "boolean"},
                        },
                    },
                },
                "generated_at": _STR,
            },
        },
    ),
    Operation(
        "sessions",
        "get",
        "sessions by start time (newest revision each); periods left out",
        {
            "type": "object",
            "required": ["sessions", "unpriced"],
            "properties": {
                "sessions": {"type": "array", "items": _SESSION},
                "unpriced": {"type": "array", "items": {"type": "object"}},
            },
        },
        _FILTERS,
        csv=True,
    ),
    Operation(
        "sessions/{session_id}",
        "get",
        "one session with its charging periods and its current CDR",
        {
            "allOf": [
                _SESSION,
                {
                    "type": "object",
                    "required": ["cdr"],
                    "properties": {"cdr": {**_CDR, "nullable": True}},
                },
            ]
        },
        [
            {
                "name": "session_id",
                "in": "path",
                "required": True,
                "schema": _STR,
                "description": "the session's id",
            }
        ],
        errors={"404": "no such session"},
    ),
    *_RECEIPTS,
    Operation(
        "cdrs",
        "get",
        "the current CDR of each session; history=1: every CDR issued and credited",
        {
            "type": "object",
            "required": ["cdrs"],
            "properties": {"cdrs": {"type": "array", "items": _CDR}},
        },
        [
            *_FILTERS,
            _query(
                "history",
                {"type": "string", "enum": ["0", "1", "true", "false"]},
                "every CDR issued, with credits, in issue order",
            ),
        ],
        csv=True,
    ),
    Operation(
        "billing",
        "get",
        "one billing row per session: charger, site, connector, id_tag, tariff, energy "
        "(register and estimate where they differ), every cost total excl./incl. VAT, "
        "currency, flags, or why it is unpriced",
        {
            "type": "object",
            "required": ["billing"],
            "properties": {
                "billing": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["session_id", "charger_id", "energy_wh"],
                        "properties": {
                            "session_id": _STR,
                            "charger_id": _STR,
                            "energy_wh": _NUM,
                            "total_cost_excl_vat": {**_NUM, "nullable": True},
                            "unpriced_reason": {**_STR, "nullable": True},
                        },
                    },
                }
            },
        },
        _FILTERS,
        csv=True,
    ),
    *(_analytics(name) for name in ANALYTICS),
    Operation(
        "uptime",
        "get",
        "per-port uptime as 23 CFR 680.116(b) counts it, with each outage's evidence "
        "(docs/analytics.md, Uptime)",
        {
            "type": "object",
            "required": ["window", "ports", "sites", "models", "fleet", "failures_by_mrec"],
            "properties": {
                "window": {
                    "type": "object",
                    "required": ["from", "to"],
                    "properties": {"from": _NUM, "to": _NUM},
                },
                "ports": {"type": "array", "items": _PORT_UPTIME},
                "sites": {"type": "array", "items": {"type": "object"}},
                "models": {"type": "array", "items": {"type": "object"}},
                "fleet": {"type": "array", "items": {"type": "object"}},
                "failures_by_mrec": {"type": "object", "additionalProperties": {"type": "integer"}},
            },
        },
        [
            _query("from", _TIME, "window start (default: the ledger's first session start)"),
            _query("to", _TIME, "window end, exclusive (default: the last session stop)"),
            _query("site", _STR, "only this site's ports"),
            _query("charger", _STR, "only this charger's ports"),
            _FORMAT,
        ],
        csv=True,
    ),
    Operation(
        "uptime/exclusions",
        "get",
        "uptime exclusions (removed ones too), each with its audit trail",
        {
            "type": "object",
            "required": ["exclusions"],
            "properties": {"exclusions": {"type": "array", "items": _EXCLUSION_LISTED}},
        },
    ),
    Operation(
        "uptime/exclusions",
        "post",
        "tag outage time with a cause 23 CFR 680.116(b)(3) lists (fields as query parameters)",
        _EXCLUSION_DOC,
        [
            _query("charger", _STR, "the charger (required)"),
            _query("connector", _STR, "the connector; empty or absent: every port"),
            _query("from", _TIME, "start of the excluded time (required)"),
            _query("to", _TIME, "end of the excluded time (required)"),
            _query("cause", _CAUSE, "the cause (required)"),
            *_WHO,
        ],
        scope="admin",
    ),
    Operation(
        "uptime/exclusions/{exclusion_id}",
        "post",
        "change an exclusion's connector, times or cause, or remove it (remove=1); audited",
        _EXCLUSION_DOC,
        [
            {
                "name": "exclusion_id",
                "in": "path",
                "required": True,
                "schema": _STR,
                "description": "the exclusion's id",
            },
            _query("connector", _STR, "new connector"),
            _query("from", _TIME, "new start"),
            _query("to", _TIME, "new end"),
            _query("cause", _CAUSE, "new cause"),
            _query("remove", {"type": "string", "enum": ["0", "1", "true", "false"]}, "remove it"),
            *_WHO,
        ],
        scope="admin",
        errors={"404": "no such exclusion"},
    ),
    Operation(
        "remediation/pause",
        "post",
        "stop sending remediation commands (kept across restarts); due ones are suppressed "
        "and their alerts escalated",
        _PAUSED,
        scope="admin",
    ),
    Operation(
        "remediation/resume",
        "post",
        "send remediation commands again",
        _PAUSED,
        scope="admin",
    ),
)


def _responses(op: Operation) -> dict[str, Any]:
    content: dict[str, Any] = {JSON: {"schema": op.json_schema}} if op.json else {}
    if op.html:
        content[HTML] = {"schema": {"type": "string", "description": "an HTML page"}}
    for media in op.other:
        content[media] = {"schema": {"type": "string"}}
    if op.csv:
        content[CSV] = {"schema": {"type": "string", "description": "CSV with a header row"}}
    error = {"content": {JSON: {"schema": {"$ref": "#/components/schemas/Error"}}}}
    out: dict[str, Any] = {
        "200": {"description": "OK", "content": content},
        "400": {"description": "a query parameter is malformed", **error},
        "401": {"description": "missing or wrong bearer token", **error},
        "403": {"description": "the token's scope does not allow this", **error},
    }
    for status, text in op.errors.items():
        out[status] = {"description": text, **error}
    return out


def spec(server: HttpServer | None = None) -> dict[str, Any]:
    """The OpenAPI 3.0.3 document; with ``server``, only the routes registered on it."""
    paths: dict[str, Any] = {}
    for op in OPERATIONS:
        if server is not None:
            table = server.routes if op.method == "get" else server.admin_routes
            if op.path not in table:
                continue
        paths.setdefault(f"/{op.path}", {})[op.method] = {
            "summary": op.summary,
            "operationId": re.sub(r"\W+", "_", f"{op.method}_{op.path}").strip("_"),
            "parameters": op.parameters,
            "responses": _responses(op),
            "security": [{"bearer": [op.scope]}],
            "x-scope": op.scope,
        }
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "chargewatch collector API",
            "version": __version__,
            "description": (
                "Sessions, CDRs, analytics, alerts and fleet state. Bearer tokens carry a "
                "scope: read (GET) or admin (also POST). /healthz, /readyz and this document "
                "need no token; /metrics needs one when http.metrics_auth is on."
            ),
        },
        "servers": [{"url": "/api/v1"}],
        "paths": paths,
        "components": {
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "description": "http.tokens"}
            },
            "schemas": {"Error": _ERROR},
        },
    }
