"""The ``bridge:`` section of the YAML config (``chargewatch bridge --config FILE``).

Read with the same line-aware reader and the same environment overrides as
``chargewatch run`` (``CHARGEWATCH__BRIDGE__CSMS_URL=wss://...`` sets
``bridge.csms_url``); every problem is reported at load as
``file:line:col: bridge.key: expected ...``. Only the ``bridge`` section is
read here, so one file can configure the collector and the bridge.

    bridge:
      listen: 0.0.0.0:9000          # chargers connect to ws://HOST:PORT<path_prefix><id>
      path_prefix: /ocpp/
      csms_url: wss://csms.example.com/ocpp   # the bridge opens <csms_url>/<id>
      subprotocols: [ocpp1.6, ocpp2.0.1, ocpp2.1]
      tls: {cert_file, key_file, client_ca_file}   # wss:// towards the chargers
      csms_tls: {ca_file, cert_file, key_file}     # towards a wss:// CSMS (profile 3)
      max_frame_bytes: 262144
      open_timeout_s: 10
      ping_interval_s: 20           # 0: no WebSocket pings from the bridge
      mqtt: {host, port, client_id, username, password, password_file, tls, ca_file,
             cert_file, key_file, tls_insecure, keepalive_s, protocol}
      mirror: {queue_max, inflight_max, spool_dir, spool_max_bytes}
      commands: {allowlist: [Reset, ...], timeout_s}
      http: {listen}                # /metrics and /healthz; "" disables
"""

from __future__ import annotations

__all__ = ["load_bridge_config", "parse_bridge_config"]

import os
from pathlib import Path
from typing import Any

from chargewatch.bridge.settings import (
    DEFAULT_ALLOWLIST,
    SUBPROTOCOLS,
    BridgeConfig,
    CommandConfig,
    MirrorConfig,
    TlsFiles,
)
from chargewatch.config.settings import _apply_env
from chargewatch.core.errors import ConfigError, ConfigProblem
from chargewatch.core.yamlsrc import Path as KeyPath
from chargewatch.core.yamlsrc import Reader, Source, load_yaml
from chargewatch.ingest.mqtt import MqttConfig

_BRIDGE = (
    "listen", "path_prefix", "csms_url", "subprotocols", "tls", "csms_tls", "max_frame_bytes",
    "open_timeout_s", "ping_interval_s", "mqtt", "mirror", "commands", "http",
)  # fmt: skip
_TLS = ("cert_file", "key_file", "client_ca_file")
_CSMS_TLS = ("ca_file", "cert_file", "key_file")
_MQTT = (
    "host", "port", "client_id", "username", "password", "password_file", "tls", "ca_file",
    "cert_file", "key_file", "tls_insecure", "keepalive_s", "protocol",
)  # fmt: skip
_MIRROR = ("queue_max", "inflight_max", "spool_dir", "spool_max_bytes")
_COMMANDS = ("allowlist", "timeout_s")
_HTTP = ("listen",)


def _host_port(v: str) -> bool:
    host, _, port = v.rpartition(":")
    return bool(host) and port.isdigit() and 0 <= int(port) < 65536


class _Section:
    """The reader, the ``bridge`` mapping's base directory, and small typed getters."""

    def __init__(self, r: Reader, base: Path) -> None:
        self.r, self.base = r, base

    def file(self, m: dict[str, Any], p: KeyPath, key: str) -> str:
        v: str = self.r.get(m, p, key, str, "")
        if not v:
            return ""
        path = Path(v) if Path(v).is_absolute() else self.base / v
        if not path.is_file():
            self.r.fail((*p, key), f"expected a readable file, got {v!r} (no such file)")
        return str(path)

    def positive(self, m: dict[str, Any], p: KeyPath, key: str, kind: type, default: Any) -> Any:
        return self.r.get(m, p, key, kind, default, check=lambda v: v > 0, expected="> 0")

    def secret(self, m: dict[str, Any], p: KeyPath, key: str) -> str:
        value: str = self.r.get(m, p, key, str, "", secret=True)
        name = self.r.get(m, p, f"{key}_file", str, "")
        if name:
            path = Path(name) if Path(name).is_absolute() else self.base / name
            try:
                value = path.read_text(encoding="utf-8").strip()
            except OSError as exc:
                self.r.fail((*p, f"{key}_file"), f"cannot read secret file: {exc.strerror}")
        return value


def parse_bridge_config(src: Source, env: dict[str, str] | None = None) -> BridgeConfig:
    if src.data is None:
        src.data = {}
    if not isinstance(src.data, dict):
        raise ConfigError([ConfigProblem(src.file, "", "expected a mapping at the top level")])
    _apply_env(src.data, dict(os.environ) if env is None else env, src)
    r = Reader(src)
    s = _Section(r, Path(src.file).parent if src.file else Path())
    p: KeyPath = ("bridge",)
    bx = r.mapping(src.data.get("bridge"), p, allowed=_BRIDGE)
    d = BridgeConfig()
    protos = r.get(bx, p, "subprotocols", list, list(d.subprotocols))
    for i, proto in enumerate(protos or ()):
        if proto not in SUBPROTOCOLS:
            r.fail(
                (*p, "subprotocols", i), f"expected one of {', '.join(SUBPROTOCOLS)}, got {proto!r}"
            )
    csms_url = r.get(
        bx,
        p,
        "csms_url",
        str,
        "",
        check=lambda v: v.startswith(("ws://", "wss://")),
        expected="a ws:// or wss:// URL",
    )
    prefix = r.get(
        bx,
        p,
        "path_prefix",
        str,
        d.path_prefix,
        check=lambda v: v.startswith("/") and v.endswith("/"),
        expected="a path starting and ending with /",
    )
    ping = r.get(
        bx, p, "ping_interval_s", float, 20.0, check=lambda v: v >= 0, expected="seconds >= 0"
    )
    cfg = BridgeConfig(
        listen=r.get(bx, p, "listen", str, d.listen, check=_host_port, expected="HOST:PORT"),
        path_prefix=prefix,
        csms_url=csms_url,
        subprotocols=tuple(str(x) for x in protos or ()) or d.subprotocols,
        server_tls=_server_tls(s, bx),
        csms_tls=_csms_tls(s, bx),
        max_frame_bytes=r.get(
            bx,
            p,
            "max_frame_bytes",
            int,
            d.max_frame_bytes,
            check=lambda v: 1024 <= v <= 64 << 20,
            expected="bytes in 1024..67108864",
        ),
        open_timeout_s=s.positive(bx, p, "open_timeout_s", float, d.open_timeout_s),
        ping_interval_s=ping or None,
        mqtt=_mqtt(s, bx),
        mirror=_mirror(s, bx),
        commands=_commands(s, bx),
        http_listen=_http(s, bx),
    )
    r.raise_if_failed()
    return cfg


def _server_tls(s: _Section, bx: dict[str, Any]) -> TlsFiles | None:
    p: KeyPath = ("bridge", "tls")
    if bx.get("tls") is None:
        return None
    tx = s.r.mapping(bx.get("tls"), p, allowed=_TLS, required=("cert_file",))
    return TlsFiles(
        s.file(tx, p, "cert_file"), s.file(tx, p, "key_file"), s.file(tx, p, "client_ca_file")
    )


def _csms_tls(s: _Section, bx: dict[str, Any]) -> TlsFiles:
    p: KeyPath = ("bridge", "csms_tls")
    cx = s.r.mapping(bx.get("csms_tls"), p, allowed=_CSMS_TLS)
    files = TlsFiles(
        s.file(cx, p, "cert_file"), s.file(cx, p, "key_file"), s.file(cx, p, "ca_file")
    )
    if files.key_file and not files.cert_file:
        s.r.fail(p, "key_file needs cert_file (the bridge's client certificate)")
    return files


def _mqtt(s: _Section, bx: dict[str, Any]) -> MqttConfig:
    r, p = s.r, ("bridge", "mqtt")
    mx = r.mapping(bx.get("mqtt"), p, allowed=_MQTT)
    d = BridgeConfig().mqtt
    return MqttConfig(
        host=r.get(mx, p, "host", str, d.host),
        port=r.get(
            mx,
            p,
            "port",
            int,
            d.port,
            check=lambda v: 0 < v < 65536,
            expected="a TCP port 1..65535",
        ),
        client_id=r.get(
            mx, p, "client_id", str, d.client_id, check=bool, expected="a non-empty client id"
        ),
        username=r.get(mx, p, "username", str, ""),
        password=s.secret(mx, p, "password"),
        tls=r.get(mx, p, "tls", bool, False),
        ca_file=s.file(mx, p, "ca_file"),
        cert_file=s.file(mx, p, "cert_file"),
        key_file=s.file(mx, p, "key_file"),
        tls_insecure=r.get(mx, p, "tls_insecure", bool, False),
        keepalive_s=r.get(
            mx,
            p,
            "keepalive_s",
            int,
            d.keepalive_s,
            check=lambda v: 5 <= v <= 3600,
            expected="seconds, 5..3600",
        ),
        protocol=str(
            r.get(
                mx,
                p,
                "protocol",
                (str, int, float),
                "5",
                check=lambda v: str(v) in ("5", "3.1.1"),
                expected='"5" or "3.1.1"',
            )
        ),
        subscriptions=(),
    )


def _mirror(s: _Section, bx: dict[str, Any]) -> MirrorConfig:
    r, p = s.r, ("bridge", "mirror")
    mx = r.mapping(bx.get("mirror"), p, allowed=_MIRROR)
    d = MirrorConfig()
    spool = r.get(mx, p, "spool_dir", str, str(d.spool_dir))
    return MirrorConfig(
        queue_max=s.positive(mx, p, "queue_max", int, d.queue_max),
        inflight_max=r.get(
            mx,
            p,
            "inflight_max",
            int,
            d.inflight_max,
            check=lambda v: 1 <= v <= 65535,
            expected="1..65535 messages",
        ),
        spool_dir=Path(spool) if Path(spool).is_absolute() else s.base / spool,
        spool_max_bytes=r.get(
            mx,
            p,
            "spool_max_bytes",
            int,
            d.spool_max_bytes,
            check=lambda v: v >= 1 << 16,
            expected=">= 65536 bytes",
        ),
    )


def _commands(s: _Section, bx: dict[str, Any]) -> CommandConfig:
    r, p = s.r, ("bridge", "commands")
    cx = r.mapping(bx.get("commands"), p, allowed=_COMMANDS)
    allow = r.get(cx, p, "allowlist", list, list(DEFAULT_ALLOWLIST))
    for i, action in enumerate(allow or ()):
        if not isinstance(action, str) or not action.isalnum():
            r.fail((*p, "allowlist", i), f"expected an OCPP action name, got {action!r}")
    return CommandConfig(
        allowlist=tuple(str(a) for a in allow or ()),
        timeout_s=s.positive(cx, p, "timeout_s", float, CommandConfig().timeout_s),
    )


def _http(s: _Section, bx: dict[str, Any]) -> str:
    p: KeyPath = ("bridge", "http")
    hx = s.r.mapping(bx.get("http"), p, allowed=_HTTP)
    listen: str = s.r.get(
        hx,
        p,
        "listen",
        str,
        BridgeConfig().http_listen,
        check=lambda v: v == "" or _host_port(v),
        expected='HOST:PORT or "" (off)',
    )
    return listen


def load_bridge_config(path: str | Path, env: dict[str, str] | None = None) -> BridgeConfig:
    return parse_bridge_config(load_yaml(path), env)
