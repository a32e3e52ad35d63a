"""The ``mqtt`` and ``influx`` sections: where the collector reads from and writes to.

Each reader checks its section's keys in the order the file documents them, so
problems are reported in that order.
"""

from __future__ import annotations

__all__ = ["read_influx", "read_mqtt"]

import re
from pathlib import Path
from typing import Any

from chargewatch.config.reading import Section, positive
from chargewatch.ingest.mqtt import MqttConfig
from chargewatch.ingest.partition import Partition
from chargewatch.storage.influx import InfluxConfig

_MQTT = (
    "host", "port", "client_id", "username", "password", "password_file", "tls", "ca_file",
    "cert_file", "key_file", "tls_insecure", "keepalive_s", "qos", "clean_session",
    "subscriptions", "max_inbox", "protocol", "receive_maximum", "session_expiry_s",
    "partition",
)  # fmt: skip
_PARTITION = ("chargers", "index", "count")
# Charger ids (topics.py) plus glob characters.
_CHARGER_PATTERN = re.compile(r"[A-Za-z0-9._:\-*?\[\]!]{1,64}")  # fullmatch, not `$`
_INFLUX = (
    "url", "api", "database", "retention_policy", "username", "password", "password_file",
    "org", "bucket", "token", "token_file", "batch_lines", "flush_interval_s", "gzip",
    "timeout_s", "spool_max_bytes", "file", "rollup_retention_policy",
    "rollup_retention_duration",
)  # fmt: skip


def read_mqtt(top: Section, collector_id: str) -> MqttConfig:
    s = top.child("mqtt", allowed=_MQTT)
    subs = s.get("subscriptions", list, list(MqttConfig.subscriptions))
    return MqttConfig(
        **_mqtt_connection(s, collector_id),
        subscriptions=tuple(str(x) for x in subs or ()),
        **_mqtt_session(s),
    )


def _mqtt_connection(s: Section, collector_id: str) -> dict[str, Any]:
    """Broker address, identity and TLS, as MqttConfig keyword arguments."""
    # Two collectors with one client id would take each other's session over,
    # back and forth: a named collector gets its own by default.
    default_client = "chargewatch-collector" + (
        "" if collector_id == "default" else f"-{collector_id}"
    )
    port = "a TCP port 1..65535"
    return {
        "host": s.get("host", str, "127.0.0.1"),
        "port": s.get("port", int, 1883, check=lambda v: 0 < v < 65536, expected=port),
        "client_id": s.get("client_id", str, default_client),
        "username": s.get("username", str, ""),
        "password": s.secret("password"),
        "tls": s.get("tls", bool, False),
        "ca_file": s.get("ca_file", str, ""),
        "cert_file": s.get("cert_file", str, ""),
        "key_file": s.get("key_file", str, ""),
        "tls_insecure": s.get("tls_insecure", bool, False),
    }


def _mqtt_session(s: Section) -> dict[str, Any]:
    """Keep-alive, QoS, flow control and partition, as MqttConfig keyword arguments."""
    return {
        "keepalive_s": s.get(
            "keepalive_s", int, 30, check=lambda v: 5 <= v <= 3600, expected="seconds, 5..3600"
        ),
        "qos": s.get("qos", int, 1, check=lambda v: v in (0, 1), expected="0 or 1"),
        "clean_session": s.get("clean_session", bool, False),
        "max_inbox": s.get(
            "max_inbox", int, 200_000, check=positive, expected="a positive integer"
        ),
        "partition": _partition(s.child("partition", allowed=_PARTITION)),
        # YAML reads `protocol: 5` as a number: either spelling is accepted.
        "protocol": str(
            s.get(
                "protocol",
                (str, int, float),
                "5",
                check=lambda v: str(v) in ("5", "3.1.1"),
                expected='"5" or "3.1.1"',
            )
        ),
        "receive_maximum": s.get(
            "receive_maximum",
            int,
            1000,
            check=lambda v: 1 <= v <= 65535,
            expected="1..65535 messages",
        ),
        "session_expiry_s": s.get(
            "session_expiry_s",
            int,
            7 * 86400,
            check=lambda v: 0 <= v <= 0xFFFFFFFF,
            expected="seconds, 0..4294967295",
        ),
    }


def _partition(s: Section) -> Partition:
    """``mqtt.partition``: ``{chargers: [ids or globs]}`` or ``{index: i, count: n}``."""
    if not s.m:
        return Partition()
    r, p, px = s.r, s.path, s.m
    chargers = s.get("chargers", list, [], expected="a list of charger ids or patterns")
    for i, c in enumerate(chargers or []):
        if not isinstance(c, str) or not _CHARGER_PATTERN.fullmatch(c):
            r.fail(
                (*p, "chargers", i),
                f"expected a charger id or glob pattern (A-Z a-z 0-9 . _ : - * ? [ ]), got {c!r}",
            )
    count = s.get("count", int, 1, check=lambda v: v >= 1, expected="an integer >= 1")
    index = s.get(
        "index",
        int,
        0,
        check=lambda v: 0 <= v < max(count, 1),
        expected=f"an integer 0..{max(count, 1) - 1} (below count)",
    )
    if chargers and ("index" in px or "count" in px):
        r.fail(p, "give either chargers or index/count, not both")
        return Partition()
    if "chargers" in px and not chargers:
        r.fail((*p, "chargers"), "expected at least one charger id or pattern")
    if ("index" in px) != ("count" in px):
        r.fail(p, "index and count go together (this collector is partition index of count)")
    try:
        return Partition(tuple(str(c) for c in chargers or ()), index or 0, count or 1)
    except ValueError:
        return Partition()  # already reported above


def read_influx(top: Section) -> tuple[InfluxConfig | None, Path | None]:
    """The InfluxDB writer's settings, or the local line-protocol file that replaces it."""
    if top.m.get("influx") is None:
        return None, None
    s = top.child("influx", allowed=_INFLUX)
    influx_file = s.file("file")
    if influx_file is not None:
        return None, influx_file
    api = s.get(
        "api",
        str,
        "v1",
        check=lambda v: v in ("v1", "v2"),
        expected="v1 (/write) or v2 (/api/v2/write)",
    )
    url = s.get(
        "url",
        str,
        expected="the server URL, e.g. http://influxdb:8086",
        check=lambda v: v.startswith(("http://", "https://")),
    )
    return InfluxConfig(url=url or "http://invalid", api=api or "v1", **_influx_writer(s)), None


def _influx_writer(s: Section) -> dict[str, Any]:
    """Database, credentials and batching, as InfluxConfig keyword arguments."""
    seconds = "seconds > 0"
    return {
        "database": s.get("database", str, "chargewatch"),
        "retention_policy": s.get("retention_policy", str, ""),
        "rollup_retention_policy": s.get("rollup_retention_policy", str, ""),
        "rollup_retention_duration": s.get(
            "rollup_retention_duration",
            str,
            "730d",
            check=lambda v: re.fullmatch(r"(\d+(ns|u|µ|ms|s|m|h|d|w))+|INF", v) is not None,
            expected="an InfluxQL duration such as 730d, 104w or INF",
        ),
        "username": s.get("username", str, ""),
        "password": s.secret("password"),
        "org": s.get("org", str, ""),
        "bucket": s.get("bucket", str, "chargewatch"),
        "token": s.secret("token"),
        "batch_lines": s.get(
            "batch_lines", int, 5000, check=lambda v: 1 <= v <= 1_000_000, expected="1..1000000"
        ),
        "flush_interval_s": s.get("flush_interval_s", float, 1.0, check=positive, expected=seconds),
        "gzip": s.get("gzip", bool, True),
        "timeout_s": s.get("timeout_s", float, 10.0, check=positive, expected=seconds),
        "spool_max_bytes": s.get(
            "spool_max_bytes",
            int,
            1 << 30,
            check=lambda v: v >= 1 << 16,
            expected=">= 65536 bytes",
        ),
    }
