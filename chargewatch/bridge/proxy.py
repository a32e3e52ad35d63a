"""The WebSocket pair per charger: charger ↔ bridge ↔ CSMS, frames unchanged and in order.

A charger connects to ``ws(s)://LISTEN/<prefix><chargerId>`` offering OCPP
subprotocols. During its handshake the bridge picks the first subprotocol
the charger offers that it supports, opens ``<csms_url>/<chargerId>`` with
exactly that one and the charger's ``Authorization`` header (HTTP Basic:
security profiles 1 and 2, checked by the CSMS, not by the bridge), and only
then accepts the charger, so a CSMS refusal (401, 404, ...) reaches the
charger as the same HTTP status. Each charger has its own two coroutines:
one connection never waits on another's.

When either side closes, the other is closed too: a CSMS that goes away
closes the charger's socket, so the charger queues its transaction messages
(as OCPP intends) and reconnects to a fresh upstream.
"""

from __future__ import annotations

__all__ = ["Proxy"]

import asyncio
import logging
import re
import ssl
from dataclasses import dataclass
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus, InvalidURI
from websockets.http11 import Request, Response
from websockets.typing import Subprotocol

from chargewatch.bridge import metrics
from chargewatch.bridge.commands import CallGate, Commands
from chargewatch.bridge.frames import CALL, CALLERROR, CALLRESULT, frame_id, frame_type
from chargewatch.bridge.liveness import Liveness
from chargewatch.bridge.settings import SUBPROTOCOLS, BridgeConfig, TlsFiles
from chargewatch.bridge.wslog import ws_logger

log = logging.getLogger(__name__)

# The alphabet chargewatch accepts in topics (ingest/topics.py).
_CHARGER_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,64}$")
# Close codes a peer may be sent as received; anything else becomes 1001 (going away).
_FORWARDABLE = frozenset({1000, 1001, 1008, 1011, 1012, 1013}) | frozenset(range(3000, 5000))


@dataclass(slots=True)
class _Pending:
    charger: str
    subprotocol: str
    upstream: ClientConnection


def server_ssl(files: TlsFiles) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(files.cert_file, files.key_file or None)
    if files.ca_file:  # security profile 3 on the charger side: its certificate is checked
        ctx.load_verify_locations(files.ca_file)
        ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx


def client_ssl(files: TlsFiles) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=files.ca_file or None)
    if files.cert_file:  # security profile 3 towards the CSMS: the bridge's own certificate
        ctx.load_cert_chain(files.cert_file, files.key_file or None)
    return ctx


def _offered(request: Request) -> list[str]:
    return [
        p.strip()
        for value in request.headers.get_all("Sec-WebSocket-Protocol")
        for p in value.split(",")
        if p.strip()
    ]


def _forwardable(code: int | None) -> int:
    return code if code in _FORWARDABLE else 1001


class Proxy:
    def __init__(self, cfg: BridgeConfig, put: Any, liveness: Liveness, commands: Commands) -> None:
        self.cfg = cfg
        self.put = put  # Mirror.put
        self.liveness = liveness
        self.commands = commands
        self._pending: dict[ServerConnection, _Pending] = {}
        self._sockets: dict[str, ServerConnection] = {}  # the current socket of each charger
        self._closing: set[asyncio.Task[None]] = set()
        self._csms_ssl = client_ssl(cfg.csms_tls) if cfg.csms_url.startswith("wss:") else None
        self._logger = ws_logger()
        self.server: Server | None = None
        self.port = 0

    async def start(self) -> None:
        host, _, port = self.cfg.listen.rpartition(":")
        tls = self.cfg.server_tls
        self.server = await serve(
            self._handle,
            host or "127.0.0.1",
            int(port),
            process_request=self._process_request,
            process_response=self._process_response,
            select_subprotocol=self._select,
            max_size=self.cfg.max_frame_bytes,
            compression=None,  # frames exactly as sent; deflate would cost ~300 KB a socket
            ssl=server_ssl(tls) if tls else None,
            ping_interval=self.cfg.ping_interval_s,
            # The handshake includes opening the CSMS connection.
            open_timeout=self.cfg.open_timeout_s + 5,
            logger=self._logger,
        )
        self.port = int(next(iter(self.server.sockets)).getsockname()[1])

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()  # closes every charger socket (1001); handlers clean up
            await self.server.wait_closed()

    # -- the handshake ---------------------------------------------------------------

    async def _process_request(
        self, connection: ServerConnection, request: Request
    ) -> Response | None:
        path = request.path.partition("?")[0]
        prefix = self.cfg.path_prefix
        charger = path[len(prefix) :] if path.startswith(prefix) else ""
        if not _CHARGER_ID.match(charger):
            metrics.HANDSHAKES_REFUSED.labels(reason="path").inc()
            return connection.respond(404, f"expected {prefix}<chargerId>\n")
        if request.headers.get("Upgrade", "").lower() != "websocket":
            return None  # not a WebSocket request: websockets answers 426
        offered = _offered(request)
        chosen = next((p for p in offered if p in self.cfg.subprotocols), None)
        if chosen is None:
            metrics.HANDSHAKES_REFUSED.labels(reason="subprotocol").inc()
            expected = ", ".join(self.cfg.subprotocols)
            return connection.respond(400, f"unsupported subprotocol; expected one of {expected}\n")
        upstream, refused = await self._open_upstream(charger, chosen, request.headers)
        if upstream is None:
            metrics.HANDSHAKES_REFUSED.labels(reason="upstream").inc()
            assert refused is not None
            response = connection.respond(refused[0], refused[1])
            if refused[2]:
                response.headers["WWW-Authenticate"] = refused[2]
            return response
        self._pending[connection] = _Pending(charger, chosen, upstream)
        # A charger gone before its handshake completed leaves no upstream behind.
        connection.connection_lost_waiter.add_done_callback(lambda _: self._abandon(connection))
        return None

    def _abandon(self, connection: ServerConnection) -> None:
        pending = self._pending.pop(connection, None)
        if pending is not None:
            task = asyncio.get_running_loop().create_task(pending.upstream.close(1001))
            self._closing.add(task)
            task.add_done_callback(self._closing.discard)

    async def _open_upstream(
        self, charger: str, subprotocol: str, headers: Headers
    ) -> tuple[ClientConnection | None, tuple[int, str, str] | None]:
        url = f"{self.cfg.csms_url.rstrip('/')}/{charger}"
        extra = {"Authorization": headers["Authorization"]} if "Authorization" in headers else {}
        try:
            upstream = await connect(
                url,
                subprotocols=[Subprotocol(subprotocol)],
                additional_headers=extra,
                ssl=self._csms_ssl,
                max_size=self.cfg.max_frame_bytes,
                compression=None,
                open_timeout=self.cfg.open_timeout_s,
                ping_interval=self.cfg.ping_interval_s,
                proxy=None,  # the bridge stands beside the CSMS
                logger=self._logger,
            )
        except InvalidStatus as exc:
            status = exc.response.status_code
            metrics.UPSTREAM_ERRORS.labels(reason="refused").inc()
            log.warning("charger %s: CSMS refused the connection (HTTP %d)", charger, status)
            auth = exc.response.headers.get("WWW-Authenticate", "")
            return None, (status, f"CSMS answered {status}\n", auth)
        except (OSError, TimeoutError, InvalidHandshake, InvalidURI) as exc:
            metrics.UPSTREAM_ERRORS.labels(reason="unreachable").inc()
            log.warning("charger %s: CSMS unreachable: %s", charger, type(exc).__name__)
            return None, (502, "CSMS unreachable\n", "")
        if upstream.subprotocol != subprotocol:
            metrics.UPSTREAM_ERRORS.labels(reason="refused").inc()
            log.warning(
                "charger %s: CSMS chose subprotocol %r, not %r", charger, upstream.subprotocol,
                subprotocol,
            )  # fmt: skip
            await upstream.close(1002)
            return None, (502, "CSMS did not accept the subprotocol\n", "")
        return upstream, None

    def _select(self, connection: ServerConnection, offered: Any) -> Subprotocol | None:
        pending = self._pending.get(connection)
        return Subprotocol(pending.subprotocol) if pending else None

    async def _process_response(
        self, connection: ServerConnection, request: Request, response: Response
    ) -> None:
        if response.status_code != 101:  # the handshake failed after the CSMS accepted
            pending = self._pending.pop(connection, None)
            if pending is not None:
                await pending.upstream.close(1001)

    # -- a connected charger -----------------------------------------------------------

    async def _handle(self, ws: ServerConnection) -> None:
        pending = self._pending.pop(ws, None)
        if pending is None:
            await ws.close(1011)
            return
        charger, up = pending.charger, pending.upstream
        version = SUBPROTOCOLS[pending.subprotocol]
        gate = CallGate(charger, version, ws.send, self.put, self.cfg.commands.timeout_s)
        self.commands.attach(gate)
        old = self._sockets.get(charger)
        self._sockets[charger] = ws
        if old is not None:
            # A charger that reconnects before its old socket timed out: one
            # connection per charger id, the newest (as CSMSs do).
            log.info("charger %s reconnected; closing its previous connection", charger)
            task = asyncio.create_task(old.close(1001, "replaced by a new connection"))
            self._closing.add(task)
            task.add_done_callback(self._closing.discard)
        self.liveness.online(charger)
        metrics.CONNECTIONS.inc()
        log.info("charger %s connected (%s)", charger, pending.subprotocol)
        from_csms = asyncio.create_task(self._from_csms(ws, up, gate))
        try:
            await self._from_charger(ws, up, gate)
        finally:
            await up.close(_forwardable(ws.close_code))
            await from_csms
            metrics.CONNECTIONS.dec()
            replaced = self.commands.gates.get(charger) is not gate
            if self._sockets.get(charger) is ws:
                del self._sockets[charger]
            self.commands.detach(gate)
            if not replaced:  # a newer connection of this charger already said online
                self.liveness.offline(charger)
            log.info(
                "charger %s disconnected (charger %s, CSMS %s)", charger, ws.close_code,
                up.close_code,
            )  # fmt: skip

    async def _from_charger(
        self, ws: ServerConnection, up: ClientConnection, gate: CallGate
    ) -> None:
        put, topic, count = self.put, gate.cp_topic, metrics.FRAMES_CP.inc
        try:
            async for msg in ws:
                count()
                if gate.watching and frame_type(msg) in (CALLRESULT, CALLERROR):
                    _, message_id = frame_id(msg)  # type: ignore[arg-type]
                    if not gate.charger_answer(message_id, msg):  # type: ignore[arg-type]
                        continue  # an injected CALL's answer: MQTT only
                put(topic, msg, False)
                await up.send(msg)
        except ConnectionClosed:
            pass  # the upstream closed under our send: _from_csms saw why
        sent = ws.protocol.close_sent
        if sent is not None and sent.code == 1009:
            metrics.OVERSIZED.labels(direction="cp").inc()

    async def _from_csms(self, ws: ServerConnection, up: ClientConnection, gate: CallGate) -> None:
        put, topic, count = (
            self.put,
            f"ocpp/{gate.version}/{gate.charger}/csms",
            (metrics.FRAMES_CSMS.inc),
        )
        try:
            async for msg in up:
                count()
                put(topic, msg, False)
                if frame_type(msg) == CALL:
                    _, message_id = frame_id(msg)  # type: ignore[arg-type]
                    if not gate.csms_call(message_id, msg):  # type: ignore[arg-type]
                        continue  # held while an injected CALL is outstanding
                await ws.send(msg)
        except ConnectionClosed:
            pass
        if ws.close_code is not None or ws.protocol.close_sent is not None:
            return  # the charger side closed first
        sent = up.protocol.close_sent
        if sent is not None and sent.code == 1009:
            metrics.OVERSIZED.labels(direction="csms").inc()
        metrics.UPSTREAM_ERRORS.labels(reason="closed").inc()
        log.warning("charger %s: CSMS closed the connection (%s)", gate.charger, up.close_code)
        await ws.close(1011 if sent is not None and sent.code == 1009 else
                       _forwardable(up.close_code), "CSMS connection closed")  # fmt: skip
