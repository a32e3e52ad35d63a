"""The bridge's settings (read from YAML by chargewatch/config/bridge_settings.py)."""

from __future__ import annotations

__all__ = ["SUBPROTOCOLS", "BridgeConfig", "CommandConfig", "MirrorConfig", "TlsFiles"]

from dataclasses import dataclass, field
from pathlib import Path

from chargewatch.ingest.mqtt import MqttConfig

#: WebSocket subprotocol -> the version segment of the MQTT topics.
SUBPROTOCOLS: dict[str, str] = {"ocpp1.6": "1.6", "ocpp2.0.1": "2.0.1", "ocpp2.1": "2.1"}

#: What chargewatch's remediation planner sends (alerting/remediation.py COMMANDS).
DEFAULT_ALLOWLIST = ("Reset", "UnlockConnector", "ChangeAvailability", "TriggerMessage")


@dataclass(frozen=True)
class TlsFiles:
    """PEM files of one TLS side ("" = not used)."""

    cert_file: str = ""
    key_file: str = ""
    ca_file: str = ""  # server side: chargers' CA (client certificates required); client: CSMS CA


@dataclass(frozen=True)
class MirrorConfig:
    queue_max: int = 100_000  # frames waiting in memory for the mirror thread
    inflight_max: int = 1000  # QoS 1 publishes handed to the client and not yet acknowledged
    spool_dir: Path = Path("chargewatch-bridge-spool")
    spool_max_bytes: int = 256 << 20


@dataclass(frozen=True)
class CommandConfig:
    allowlist: tuple[str, ...] = DEFAULT_ALLOWLIST
    timeout_s: float = 30.0  # an injected CALL unanswered this long frees the charger's slot


@dataclass(frozen=True)
class BridgeConfig:
    listen: str = "127.0.0.1:9000"
    path_prefix: str = "/ocpp/"
    csms_url: str = ""
    subprotocols: tuple[str, ...] = tuple(SUBPROTOCOLS)
    server_tls: TlsFiles | None = None  # wss:// towards the chargers
    csms_tls: TlsFiles = field(default_factory=TlsFiles)  # for a wss:// CSMS URL
    max_frame_bytes: int = 256 << 10
    open_timeout_s: float = 10.0
    ping_interval_s: float | None = 20.0
    mqtt: MqttConfig = field(
        default_factory=lambda: MqttConfig(client_id="chargewatch-bridge", subscriptions=())
    )
    mirror: MirrorConfig = field(default_factory=MirrorConfig)
    commands: CommandConfig = field(default_factory=CommandConfig)
    http_listen: str = "127.0.0.1:9109"  # /metrics and /healthz; "" disables
