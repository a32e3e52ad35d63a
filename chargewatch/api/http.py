"""The collector's HTTP endpoints: /metrics, /healthz, /readyz and /api/v1/...

Standard-library server (one thread per connection): the endpoints are small
JSON/CSV reads; heavy lifting stays in the pipeline thread. It is hardened for
a network it does not control: a connection that sends nothing for
``request_timeout_s`` is closed, at most ``max_connections`` are served at once
(the next get a 503 at once, not a thread), and a request with a body that is
not a plain non-negative ``Content-Length`` of at most 1 MiB is refused (400,
413) instead of blocking the handler. Routes under
``/api/v1`` are registered by the areas that own the data, as path templates
(``sessions/{session_id}``); every one is described in
:mod:`chargewatch.api.openapi`, served at ``/api/v1/openapi.json``.

Access: bearer tokens with a scope. ``read`` opens the GET routes (billing,
alerts, fleet); ``admin`` opens those and the POST routes (operations that
change what the collector does). With no token configured the GET routes
are open, as before scopes existed; POST routes never are. ``/healthz`` and
``/readyz`` are always open (probes), ``/metrics`` when ``metrics_auth`` is off.
"""

from __future__ import annotations

__all__ = [
    "SCOPES",
    "ApiRoute",
    "ApiToken",
    "HttpServer",
    "Response",
    "Scope",
    "error_response",
    "json_response",
]

import hmac
import logging
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal
from urllib.parse import parse_qs, unquote, urlsplit

import orjson
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

log = logging.getLogger(__name__)

# (status, content type, body)
Response = tuple[int, str, bytes]
#: A handler gets the query parameters (last value of each) and the path
#: template's parameters in order (``["S-1"]`` for ``sessions/{session_id}``).
ApiRoute = Callable[[dict[str, str], list[str]], Response]
Scope = Literal["read", "admin"]
SCOPES: tuple[Scope, ...] = ("read", "admin")
PREFIX = "/api/v1/"
OPENAPI_PATH = "/api/v1/openapi.json"


@dataclass(frozen=True)
class ApiToken:
    """One bearer token. ``admin`` includes ``read``."""

    scope: Scope
    token: str = field(repr=False)

    def allows(self, scope: Scope) -> bool:
        return self.scope == "admin" or scope == "read"


def json_response(doc: Any, status: int = 200) -> Response:
    return status, "application/json", orjson.dumps(doc, default=str)


def error_response(status: int, message: str) -> Response:
    """The one error shape of /api/v1: ``{"error": "<what was wrong>"}``."""
    return json_response({"error": message}, status)


def _match(template: str, parts: list[str]) -> list[str] | None:
    segs = template.split("/")
    if len(segs) != len(parts):
        return None
    values = []
    for seg, part in zip(segs, parts, strict=True):
        if seg.startswith("{") and seg.endswith("}"):
            values.append(part)
        elif seg != part:
            return None
    return values


def _negotiate(accept: str) -> str:
    """``json`` when the client asks for JSON rather than HTML, else ``html``."""
    q = {"text/html": -1.0, "application/json": -1.0}
    for item in accept.split(","):
        media, *opts = (x.strip() for x in item.split(";"))
        if media.lower() in q:
            weight = next((o[2:] for o in opts if o.startswith("q=")), "1")
            try:
                q[media.lower()] = float(weight)
            except ValueError:
                q[media.lower()] = 0.0
    return "json" if q["application/json"] > q["text/html"] else "html"


_MAX_BODY = 1 << 20  # no route reads a body; a larger one is refused, not drained


def _read_body(handler: BaseHTTPRequestHandler) -> Response | None:
    """Drain the request body; an error response when its length is unusable."""
    raw = handler.headers.get("Content-Length")
    if raw is None:
        return None
    if not raw.strip().isascii() or not raw.strip().isdigit():
        return error_response(400, f"bad Content-Length {raw[:40]!r}")
    length = int(raw)
    if length > _MAX_BODY:
        return error_response(413, f"request body over {_MAX_BODY} bytes")
    if length:
        handler.rfile.read(length)
    return None


class _BoundedServer(ThreadingHTTPServer):
    """A thread per connection, at most ``limit`` at once; beyond that a quick 503."""

    daemon_threads = True

    def __init__(
        self,
        address: tuple[str, int],
        handler: type[BaseHTTPRequestHandler],
        limit: int,
    ) -> None:
        super().__init__(address, handler)
        self._slots = threading.BoundedSemaphore(limit)

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self._slots.acquire(blocking=False):
            _refuse_busy(request)
            self.shutdown_request(request)
            return
        super().process_request(request, client_address)

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()


def _refuse_busy(sock: Any) -> None:
    body = b'{"error": "too many connections"}'
    head = (
        "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nRetry-After: 1\r\nConnection: close\r\n\r\n"
    )
    try:
        sock.settimeout(1.0)
        sock.sendall(head.encode() + body)
    except OSError:
        pass  # the client is gone or not reading: nothing more to do


class HttpServer:
    def __init__(
        self,
        listen: str,
        *,
        health: Callable[[], tuple[bool, dict[str, Any]]],
        ready: Callable[[], tuple[bool, dict[str, Any]]],
        token: str = "",
        tokens: Iterable[ApiToken] = (),
        metrics_auth: bool = False,
        request_timeout_s: float = 10.0,
        max_connections: int = 64,
    ) -> None:
        host, _, port = listen.rpartition(":")
        #: GET routes (scope read), by path template under /api/v1/.
        self.routes: dict[str, ApiRoute] = {}
        #: POST routes (scope admin), by path template under /api/v1/.
        self.admin_routes: dict[str, ApiRoute] = {}
        #: GET routes that answer HTML or JSON: with no ``format`` parameter, the
        #: Accept header chooses (``format`` is set to json or html for them).
        self.negotiated: set[str] = set()
        self.tokens = [*([ApiToken("read", token)] if token else []), *tokens]
        self.metrics_auth = metrics_auth
        outer = self

        class Handler(BaseHTTPRequestHandler):
            server_version = "chargewatch"
            # Socket timeout of every read and write: a slow or silent client
            # loses its connection instead of holding a thread.
            timeout = request_timeout_s

            def log_message(self, fmt: str, *args: Any) -> None:
                log.debug("http: " + fmt, *args)

            def _serve(self, method: str) -> None:
                url = urlsplit(self.path)
                refused: Response | None = None
                try:
                    refused = _read_body(self)
                    status, ctype, body = refused or outer.dispatch(
                        url.path,
                        url.query,
                        self.headers.get("Authorization", ""),
                        method=method,
                        accept=self.headers.get("Accept", ""),
                    )
                except Exception:  # a handler bug must not kill the server thread
                    log.exception("HTTP handler failed for %s %s", method, url.path)
                    status, ctype, body = error_response(500, "internal error")
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                if status == 401:
                    self.send_header("WWW-Authenticate", 'Bearer realm="chargewatch"')
                if status == 405:
                    self.send_header("Allow", ", ".join(outer.allowed(url.path)))
                if refused:
                    self.send_header("Connection", "close")
                    self.close_connection = True
                self.end_headers()
                if method != "HEAD":
                    self.wfile.write(body)

            def __getattr__(self, name: str) -> Callable[[], None]:
                # Every other method (HEAD, PUT, TRACE, ...) gets a JSON 405 or
                # 404 like the rest of the API, not the standard library's HTML 501.
                if name.startswith("do_") and name[3:].isalpha() and name[3:].isupper():
                    return lambda: self._serve(name[3:])
                raise AttributeError(name)

        self._health, self._ready = health, ready
        self.server = _BoundedServer((host or "127.0.0.1", int(port)), Handler, max_connections)
        self.port = int(self.server.server_address[1])
        self._thread = threading.Thread(
            target=self.server.serve_forever, name="collector.http", daemon=True
        )

    def _authorise(self, auth: str, scope: Scope) -> Response | None:
        """None when ``auth`` grants ``scope``; otherwise the 401/403 to answer."""
        if not self.tokens:
            if scope == "read":
                return None
            return error_response(403, "admin endpoints need an admin token (http.tokens)")
        scheme, _, given = auth.partition(" ")
        if scheme.lower() != "bearer" or not given:
            return error_response(401, "missing bearer token")
        # Compare against every token (constant time each) so timing says nothing
        # about which one nearly matched.
        found: ApiToken | None = None
        for t in self.tokens:
            if hmac.compare_digest(given.strip().encode(), t.token.encode()):
                found = t
        if found is None:
            return error_response(401, "wrong bearer token")
        if not found.allows(scope):
            return error_response(403, f"this token's scope is {found.scope}; needs {scope}")
        return None

    def allowed(self, path: str) -> list[str]:
        """The methods ``path`` answers to."""
        if path in ("/metrics", "/healthz", "/readyz", OPENAPI_PATH):
            return ["GET"]
        if not path.startswith(PREFIX):
            return []
        parts = [unquote(p) for p in path[len(PREFIX) :].split("/") if p]
        out = []
        if any(_match(t, parts) is not None for t in self.routes):
            out.append("GET")
        if any(_match(t, parts) is not None for t in self.admin_routes):
            out.append("POST")
        return out

    def dispatch(
        self, path: str, query: str, auth: str, *, method: str = "GET", accept: str = ""
    ) -> Response:
        if method not in ("GET", "POST"):
            if self.allowed(path):
                return error_response(405, f"{method} not allowed on {path}")
            return error_response(404, f"no such endpoint: {path}")
        if path == "/metrics" and method == "GET":
            if self.metrics_auth and (denied := self._authorise(auth, "read")):
                return denied
            return 200, CONTENT_TYPE_LATEST, generate_latest()
        if path in ("/healthz", "/readyz") and method == "GET":
            ok, detail = (self._health if path == "/healthz" else self._ready)()
            return json_response({"ok": ok, **detail}, 200 if ok else 503)
        if path == OPENAPI_PATH and method == "GET":
            from chargewatch.api.openapi import spec  # noqa: PLC0415 - cycle

            return json_response(spec(self))
        if not path.startswith(PREFIX):
            return error_response(405 if self.allowed(path) else 404, f"{method} {path}: not here")
        parts = [unquote(p) for p in path[len(PREFIX) :].split("/") if p]
        scope: Scope = "read" if method == "GET" else "admin"
        table = self.routes if scope == "read" else self.admin_routes
        for template, handler in table.items():
            values = _match(template, parts)
            if values is not None:
                if denied := self._authorise(auth, scope):
                    return denied
                try:
                    params = {
                        k: v[-1]
                        for k, v in parse_qs(
                            query, keep_blank_values=True, strict_parsing=False, errors="strict"
                        ).items()
                    }
                except UnicodeDecodeError:
                    return error_response(400, "query string is not UTF-8")
                if template in self.negotiated and "format" not in params:
                    params["format"] = _negotiate(accept)
                return handler(params, values)
        if self.allowed(path):
            return error_response(405, f"{method} not allowed on {path}")
        return error_response(404, f"no such endpoint: {path}")

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
