"""The collector's HTTP endpoints: /metrics, /healthz, /readyz and /api/v1/...

Standard-library server (one thread per request): the endpoints are small
JSON/CSV reads; heavy lifting stays in the pipeline thread. Routes under
``/api/v1`` are registered by the areas that own the data.
"""

from __future__ import annotations

__all__ = ["ApiRoute", "HttpServer", "Response", "json_response"]

import hmac
import logging
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import orjson
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

log = logging.getLogger(__name__)

# (status, content type, body)
Response = tuple[int, str, bytes]
ApiRoute = Callable[[dict[str, str], list[str]], Response]


def json_response(doc: Any, status: int = 200) -> Response:
    return status, "application/json", orjson.dumps(doc, default=str)


class HttpServer:
    def __init__(
        self,
        listen: str,
        *,
        health: Callable[[], tuple[bool, dict[str, Any]]],
        ready: Callable[[], tuple[bool, dict[str, Any]]],
        token: str = "",
    ) -> None:
        host, _, port = listen.rpartition(":")
        self.routes: dict[str, ApiRoute] = {}
        self.token = token
        outer = self

        class Handler(BaseHTTPRequestHandler):
            server_version = "chargewatch"

            def log_message(self, fmt: str, *args: Any) -> None:
                log.debug("http: " + fmt, *args)

            def do_GET(self) -> None:
                url = urlsplit(self.path)
                try:
                    status, ctype, body = outer.dispatch(
                        url.path, url.query, self.headers.get("Authorization", "")
                    )
                except Exception:  # a handler bug must not kill the server thread
                    log.exception("HTTP handler failed for %s", url.path)
                    status, ctype, body = json_response({"error": "internal error"}, 500)
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self._health, self._ready = health, ready
        self.server = ThreadingHTTPServer((host or "127.0.0.1", int(port)), Handler)
        self.server.daemon_threads = True
        self.port = int(self.server.server_address[1])
        self._thread = threading.Thread(
            target=self.server.serve_forever, name="collector.http", daemon=True
        )

    def dispatch(self, path: str, query: str, auth: str) -> Response:
        if path == "/metrics":
            return 200, CONTENT_TYPE_LATEST, generate_latest()
        if path in ("/healthz", "/readyz"):
            ok, detail = (self._health if path == "/healthz" else self._ready)()
            return json_response({"ok": ok, **detail}, 200 if ok else 503)
        if path.startswith("/api/v1/"):
            if self.token and not hmac.compare_digest(auth, f"Bearer {self.token}"):
                return json_response({"error": "missing or wrong bearer token"}, 401)
            parts = [p for p in path[len("/api/v1/") :].split("/") if p]
            params = {k: v[-1] for k, v in parse_qs(query).items()}
            for n in range(len(parts), 0, -1):
                handler = self.routes.get("/".join(parts[:n]))
                if handler is not None:
                    return handler(params, parts[n:])
        return json_response({"error": f"no such endpoint: {path}"}, 404)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
