"""The pieces of the bridge tests: a CSMS and chargers built with the ``ocpp`` package
over real WebSockets, an MQTT recorder, and a bridge running in the test's event loop.

Every socket and frame is real: the CSMS is a websockets server running the
``ocpp`` package's ChargePoint per connection, the chargers are websockets
clients running it too. ``Tap`` wraps a connection to record every frame each
end sent and received, exactly as text, in order.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import ssl
import subprocess
import threading
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from ocpp.routing import on
from ocpp.v16 import ChargePoint as Cp16
from ocpp.v16 import call_result as res16
from ocpp.v16.enums import Action as Action16
from ocpp.v16.enums import RegistrationStatus
from ocpp.v201 import ChargePoint as Cp201
from ocpp.v201 import call_result as res201
from ocpp.v201.enums import Action as Action201
from paho.mqtt.enums import CallbackAPIVersion
from websockets.asyncio.client import ClientConnection, connect
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.http11 import Request, Response

from chargewatch.bridge.service import Bridge
from chargewatch.bridge.settings import BridgeConfig, CommandConfig, MirrorConfig
from chargewatch.ingest.mqtt import MqttConfig


def now_iso() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


class Tap:
    """A connection that records ("out"/"in", frame) for everything passing it."""

    def __init__(self, ws: Any, log: list[tuple[str, str]]) -> None:
        self.ws, self.log = ws, log

    async def recv(self) -> str:
        msg = await self.ws.recv()
        self.log.append(("in", msg))
        return str(msg)

    async def send(self, msg: str) -> None:
        self.log.append(("out", msg))
        await self.ws.send(msg)

    def sent(self) -> list[str]:
        return [m for d, m in self.log if d == "out"]


# -- the CSMS --------------------------------------------------------------------------


class CsmsCp16(Cp16):
    tx = 0

    @on(Action16.boot_notification)
    def boot(self, **kw: Any) -> Any:
        return res16.BootNotification(now_iso(), 300, RegistrationStatus.accepted)

    @on(Action16.heartbeat)
    def heartbeat(self, **kw: Any) -> Any:
        return res16.Heartbeat(now_iso())

    @on(Action16.status_notification)
    def status(self, **kw: Any) -> Any:
        return res16.StatusNotification()

    @on(Action16.authorize)
    def authorize(self, **kw: Any) -> Any:
        return res16.Authorize({"status": "Accepted"})

    @on(Action16.start_transaction)
    def start_tx(self, **kw: Any) -> Any:
        CsmsCp16.tx += 1
        return res16.StartTransaction(CsmsCp16.tx, {"status": "Accepted"})

    @on(Action16.meter_values)
    def meter(self, **kw: Any) -> Any:
        return res16.MeterValues()

    @on(Action16.stop_transaction)
    def stop_tx(self, **kw: Any) -> Any:
        return res16.StopTransaction()


class CsmsCp201(Cp201):
    @on(Action201.boot_notification)
    def boot(self, **kw: Any) -> Any:
        return res201.BootNotification(now_iso(), 300, "Accepted")

    @on(Action201.heartbeat)
    def heartbeat(self, **kw: Any) -> Any:
        return res201.Heartbeat(now_iso())

    @on(Action201.status_notification)
    def status(self, **kw: Any) -> Any:
        return res201.StatusNotification()

    @on(Action201.transaction_event)
    def tx(self, **kw: Any) -> Any:
        return res201.TransactionEvent()

    @on(Action201.meter_values)
    def meter(self, **kw: Any) -> Any:
        return res201.MeterValues()


class Csms:
    """An OCPP CSMS on a loopback port; optionally requires HTTP Basic auth."""

    def __init__(
        self, basic: tuple[str, str] | None = None, tls: ssl.SSLContext | None = None
    ) -> None:
        self.basic = basic
        self.tls = tls
        self.port = 0
        self.server: Server | None = None
        self.logs: dict[str, list[tuple[str, str]]] = {}
        self.cps: dict[str, Any] = {}
        self.connections = 0
        self.auth_seen: list[str] = []

    @property
    def url(self) -> str:
        scheme = "wss" if self.tls else "ws"
        return f"{scheme}://127.0.0.1:{self.port}/steve/websocket/CentralSystemService"

    async def start(self) -> None:
        self.server = await serve(
            self._handle,
            "127.0.0.1",
            self.port,
            subprotocols=["ocpp1.6", "ocpp2.0.1"],
            process_request=self._check,
            ssl=self.tls,
        )
        self.port = int(next(iter(self.server.sockets)).getsockname()[1])

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()
            self.server = None

    def _check(self, conn: ServerConnection, request: Request) -> Response | None:
        auth = request.headers.get("Authorization", "")
        self.auth_seen.append(auth)
        if self.basic is None:
            return None
        want = "Basic " + base64.b64encode(f"{self.basic[0]}:{self.basic[1]}".encode()).decode()
        if auth != want:
            resp = conn.respond(401, "bad credentials\n")
            resp.headers["WWW-Authenticate"] = 'Basic realm="csms"'
            return resp
        return None

    async def _handle(self, ws: ServerConnection) -> None:
        self.connections += 1
        assert ws.request is not None
        charger = ws.request.path.rsplit("/", 1)[-1]
        log = self.logs.setdefault(charger, [])
        cls = CsmsCp16 if ws.subprotocol == "ocpp1.6" else CsmsCp201
        cp = cls(charger, Tap(ws, log))
        self.cps[charger] = cp
        with contextlib.suppress(Exception):
            await cp.start()

    def frames(self, charger: str, direction: str) -> list[str]:
        return [m for d, m in self.logs.get(charger, []) if d == direction]


# -- chargers --------------------------------------------------------------------------


class Charger16(Cp16):
    answer_delay_s = 0.0

    def __init__(self, *a: Any, **kw: Any) -> None:
        super().__init__(*a, **kw)
        self.resets: list[dict[str, Any]] = []

    @on(Action16.reset)
    async def reset(self, **kw: Any) -> Any:
        self.resets.append(kw)
        await asyncio.sleep(self.answer_delay_s)
        return res16.Reset("Accepted")

    @on(Action16.change_configuration)
    async def change_configuration(self, **kw: Any) -> Any:
        await asyncio.sleep(self.answer_delay_s)
        return res16.ChangeConfiguration("Accepted")


class Charger201(Cp201):
    def __init__(self, *a: Any, **kw: Any) -> None:
        super().__init__(*a, **kw)
        self.resets: list[dict[str, Any]] = []

    @on(Action201.reset)
    def reset(self, **kw: Any) -> Any:
        self.resets.append(kw)
        return res201.Reset("Accepted")


@dataclass
class Station:
    cp: Any
    ws: ClientConnection
    log: list[tuple[str, str]]
    task: asyncio.Task[None]

    def sent(self) -> list[str]:
        return [m for d, m in self.log if d == "out"]

    async def close(self) -> None:
        await self.ws.close()
        with contextlib.suppress(Exception, asyncio.CancelledError):
            await self.task


async def charger(
    url: str,
    charger_id: str,
    version: str = "ocpp1.6",
    auth: tuple[str, str] | None = None,
    tls: ssl.SSLContext | None = None,
) -> Station:
    headers = {}
    if auth:
        headers["Authorization"] = (
            "Basic " + base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
        )
    ws = await connect(
        f"{url}/{charger_id}",
        subprotocols=[version],
        additional_headers=headers,
        proxy=None,
        ssl=tls,
    )
    log: list[tuple[str, str]] = []
    cls = Charger16 if version == "ocpp1.6" else Charger201
    cp = cls(charger_id, Tap(ws, log))
    task = asyncio.create_task(cp.start())
    return Station(cp, ws, log, task)


# -- MQTT ------------------------------------------------------------------------------


@dataclass
class Recorder:
    """Everything published under ocpp/# and ev/#: (recv, topic, payload, retain)."""

    port: int
    client_id: str = "bridge-test-recorder"
    persistent: bool = False
    messages: list[tuple[float, str, bytes, bool]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.lock = threading.Lock()
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=self.client_id,
            clean_session=not self.persistent,
        )  # fmt: skip
        self.client.reconnect_delay_set(1, 2)
        self.subscribed = threading.Event()
        self.client.on_connect = lambda c, *_: c.subscribe([("ocpp/#", 1), ("ev/#", 1)])
        self.client.on_subscribe = lambda *_: self.subscribed.set()
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", self.port)
        self.client.loop_start()
        assert self.subscribed.wait(10), "recorder did not subscribe"

    def _on_message(self, client: Any, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        with self.lock:
            self.messages.append((time.time(), msg.topic, bytes(msg.payload), bool(msg.retain)))

    def payloads(self, topic: str) -> list[str]:
        with self.lock:
            return [p.decode() for _, t, p, _ in self.messages if t == topic]

    async def wait(self, topic: str, n: int, timeout: float = 10.0) -> list[str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            got = self.payloads(topic)
            if len(got) >= n:
                return got
            await asyncio.sleep(0.02)
        return self.payloads(topic)

    def publish(self, topic: str, payload: str) -> None:
        self.client.publish(topic, payload, qos=1).wait_for_publish(5)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def bridge_config(csms_url: str, broker_port: int, spool: Path, **kw: Any) -> BridgeConfig:
    cfg = BridgeConfig(
        listen="127.0.0.1:0",
        csms_url=csms_url,
        mqtt=MqttConfig(port=broker_port, client_id=f"bridge-{spool.name}", subscriptions=()),
        mirror=MirrorConfig(spool_dir=spool),
        commands=CommandConfig(timeout_s=5.0),
        http_listen="",
    )
    return replace(cfg, **kw)


@contextlib.asynccontextmanager
async def running(cfg: BridgeConfig) -> AsyncIterator[Bridge]:
    bridge = Bridge(cfg)
    await bridge.start()
    try:
        assert await asyncio.to_thread(bridge.mirror.connected.wait, 10), "bridge: no broker"
        yield bridge
    finally:
        await bridge.stop()


def url_of(bridge: Bridge) -> str:
    return f"ws://127.0.0.1:{bridge.port}/ocpp"


def make_pki(d: Path) -> None:
    """A test CA, a server certificate for 127.0.0.1 and a client certificate, with openssl."""

    def run(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True, cwd=d)

    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=test-ca",
        "-keyout", "ca.key", "-out", "ca.crt")  # fmt: skip
    (d / "server.ext").write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    (d / "client.ext").write_text("extendedKeyUsage=clientAuth\n")
    for name in ("server", "client"):
        cn = "localhost" if name == "server" else "chargewatch-bridge"
        run("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={cn}",
            "-keyout", f"{name}.key", "-out", f"{name}.csr")  # fmt: skip
        run("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
            "-CAcreateserial", "-days", "2", "-out", f"{name}.crt",
            "-extfile", f"{name}.ext")  # fmt: skip
