"""The bridge's own Prometheus metrics (no charger labels: bounded cardinality)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

CONNECTIONS = Gauge("chargewatch_bridge_connections", "Chargers connected through the bridge")
FRAMES = Counter(
    "chargewatch_bridge_frames_total", "OCPP-J frames passed through, by sender", ["direction"]
)
FRAMES_CP = FRAMES.labels(direction="cp")
FRAMES_CSMS = FRAMES.labels(direction="csms")
HANDSHAKES_REFUSED = Counter(
    "chargewatch_bridge_handshakes_refused_total",
    "Charger connections refused at the handshake, by reason",
    ["reason"],
)
UPSTREAM_ERRORS = Counter(
    "chargewatch_bridge_upstream_errors_total",
    "CSMS connections that failed or closed, by reason",
    ["reason"],
)
OVERSIZED = Counter(
    "chargewatch_bridge_oversized_frames_total",
    "Connections closed with 1009 for a frame over max_frame_bytes, by sender",
    ["direction"],
)
MIRROR_QUEUE = Gauge("chargewatch_bridge_mirror_queue_depth", "Frames waiting to be mirrored")
MIRROR_SPOOL_BYTES = Gauge(
    "chargewatch_bridge_mirror_spool_bytes", "Bytes of mirrored frames spooled on disk"
)
MIRROR_PUBLISHED = Counter(
    "chargewatch_bridge_mirror_published_total", "Frames acknowledged by the broker (QoS 1)"
)
MIRROR_LOST = Counter(
    "chargewatch_bridge_mirror_lost_total",
    "Mirrored messages that could not be kept, by reason "
    "(queue_full: frames; spool_full: spool chunks; shutdown: frames unacknowledged at exit)",
    ["reason"],
)
BROKER_CONNECTED = Gauge("chargewatch_bridge_broker_connected", "1 while connected to the broker")
COMMANDS = Counter(
    "chargewatch_bridge_commands_total", "Injected commands, by outcome", ["outcome"]
)
COMMAND_OUTCOMES = (
    "answered",
    "timeout",
    "refused_not_connected",
    "refused_not_allowed",
    "refused_malformed",
)
for _o in COMMAND_OUTCOMES:
    COMMANDS.labels(outcome=_o)
for _r in ("queue_full", "spool_full", "shutdown"):
    MIRROR_LOST.labels(reason=_r)
for _r in ("unreachable", "refused", "closed"):
    UPSTREAM_ERRORS.labels(reason=_r)
for _r in ("path", "subprotocol", "upstream"):
    HANDSHAKES_REFUSED.labels(reason=_r)
for _d in ("cp", "csms"):
    OVERSIZED.labels(direction=_d)
