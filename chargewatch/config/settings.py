"""Service configuration (``chargewatch run --config FILE``).

YAML, every key optional except where noted; environment variables override
any key: ``CHARGEWATCH__INFLUX__URL=http://...`` sets ``influx.url`` (double
underscores separate the path; values are parsed as YAML scalars). Secrets can
also come from files: ``password_file``, ``token_file``. A wrong file fails at
start with the file, the key path and what was expected.
"""

from __future__ import annotations

__all__ = [
    "AlertingConfig",
    "Config",
    "HttpConfig",
    "LimitsConfig",
    "load_config",
    "parse_config",
]

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chargewatch.alerting.remediation import BucketSpec, RateLimits
from chargewatch.api.http import SCOPES, ApiToken
from chargewatch.core.errors import ConfigError, ConfigProblem
from chargewatch.core.yamlsrc import Path as KeyPath
from chargewatch.core.yamlsrc import Reader, Source, load_yaml
from chargewatch.detectors import DetectorConfig
from chargewatch.ingest.mqtt import MqttConfig
from chargewatch.ingest.partition import Partition
from chargewatch.storage.influx import InfluxConfig

ENV_PREFIX = "CHARGEWATCH__"


@dataclass(frozen=True)
class HttpConfig:
    listen: str = "127.0.0.1:9108"  # "" disables the HTTP server
    token: str = field(default="", repr=False)  # a read-scope token for /api/v1
    tokens: tuple[ApiToken, ...] = field(default=(), repr=False)  # scoped tokens
    metrics_auth: bool = False  # /metrics needs a token too


@dataclass(frozen=True)
class LimitsConfig:
    max_payload_bytes: int = 1 << 20
    max_samples_per_message: int = 10_000
    max_future_s: float = 86_400.0
    deadletter_max_bytes: int = 64 << 20
    deadletter_keep: int = 5


@dataclass(frozen=True)
class AlertingConfig:
    alertmanager: tuple[str, ...] = ()  # Alertmanager base URLs (every one gets every alert)
    webhook: str = ""  # Alertmanager-compatible webhook receiver (payload version 4)
    log: bool = True  # also log every notification
    resend_delay_s: float = 60.0
    external_url: str = ""  # generatorURL base in alerts
    remediation_allowlist: Path | None = None  # YAML {sites: {site: [Reset, ...]}}
    remediation_limits: RateLimits = field(default_factory=RateLimits)


@dataclass(frozen=True)
class Config:
    file: str = ""
    data_dir: Path = Path("chargewatch-data")
    # Names this collector's rows in a ledger that several collectors share
    # (resume checkpoint, session journal). "default" is what a single
    # collector always used, so an upgraded one resumes its old checkpoint.
    collector_id: str = "default"
    ledger_path: Path | None = None  # default: DATA_DIR/ledger.sqlite
    mqtt: MqttConfig = field(default_factory=MqttConfig)
    influx: InfluxConfig | None = None
    influx_file: Path | None = None  # write line protocol to a local file instead
    http: HttpConfig = field(default_factory=HttpConfig)
    limits: LimitsConfig = field(default_factory=LimitsConfig)
    fleet: Path | None = None
    rules: Path | None = None
    tariffs: Path | None = None
    alerting: AlertingConfig = field(default_factory=AlertingConfig)
    detectors: DetectorConfig = field(default_factory=DetectorConfig)
    batch_max_messages: int = 20_000
    tick_interval_s: float = 1.0
    # A batch smaller than batch_min_messages waits batch_linger_s to fill.
    batch_min_messages: int = 1000
    batch_linger_s: float = 0.005
    # Detectors and sessions run on the batches of this long at once (rules
    # still see every sample: they flush the detectors before evaluating).
    stage_interval_s: float = 0.5
    # CPUs the collector's threads may run on (None: any). Its threads share
    # one GIL; spread over cores, every hand-off between them is a cross-core
    # wake-up (see README, pipeline.cpus).
    cpus: tuple[int, ...] | None = None


_TOP = (
    "data_dir", "mqtt", "influx", "http", "limits", "fleet", "rules", "tariffs", "alerting",
    "pipeline", "detectors", "collector_id", "ledger", "bridge",  # bridge_settings.py reads it
)  # fmt: skip
_ALERTING = (
    "alertmanager", "webhook", "log", "resend_delay_s", "external_url", "remediation_allowlist",
    "remediation_limits",
)  # fmt: skip
_MQTT = (
    "host", "port", "client_id", "username", "password", "password_file", "tls", "ca_file",
    "cert_file", "key_file", "tls_insecure", "keepalive_s", "qos", "clean_session",
    "subscriptions", "max_inbox", "protocol", "receive_maximum", "session_expiry_s",
    "partition",
)  # fmt: skip
_PARTITION = ("chargers", "index", "count")
_LEDGER = ("path",)
# A collector id ends up in the MQTT client id and in ledger rows.
_COLLECTOR_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
# Charger ids (topics.py) plus glob characters.
_CHARGER_PATTERN = re.compile(r"^[A-Za-z0-9._:\-*?\[\]!]{1,64}$")
_INFLUX = (
    "url", "api", "database", "retention_policy", "username", "password", "password_file",
    "org", "bucket", "token", "token_file", "batch_lines", "flush_interval_s", "gzip",
    "timeout_s", "spool_max_bytes", "file", "rollup_retention_policy",
)  # fmt: skip
_HTTP = ("listen", "token", "token_file", "tokens", "metrics_auth")
_TOKEN = ("scope", "token", "token_file")
_BUCKET = ("per_minute", "burst")
_LIMITS = tuple(LimitsConfig.__dataclass_fields__)
_PIPELINE = (
    "batch_max_messages", "tick_interval_s", "batch_min_messages", "batch_linger_s",
    "stage_interval_s", "cpus",
)  # fmt: skip


def _apply_env(data: dict[str, Any], env: dict[str, str], src: Source) -> None:
    for key, raw in env.items():
        if not key.startswith(ENV_PREFIX):
            continue
        parts = [p.lower() for p in key[len(ENV_PREFIX) :].split("__") if p]
        if not parts:
            continue
        # Parsed through load_yaml, bounds included (an alias bomb in a
        # variable is refused, not expanded); what is not YAML stays text.
        try:
            value = load_yaml(key, text=raw).data if raw else ""
        except ConfigError:
            value = raw
        node = data
        for p in parts[:-1]:
            child = node.get(p)
            if not isinstance(child, dict):
                child = node[p] = {}
            node = child
        node[parts[-1]] = value
        src.marks.setdefault(tuple(parts), (0, 0))


def _secret(r: Reader, m: dict[str, Any], path: KeyPath, key: str, base: Path) -> str:
    value: str = r.get(m, path, key, str, "", secret=True)
    file_key = f"{key}_file"
    file_value = r.get(m, path, file_key, str, "")
    if file_value:
        p = Path(file_value)
        if not p.is_absolute():
            p = base / p
        try:
            value = p.read_text(encoding="utf-8").strip()
        except OSError as exc:
            r.fail((*path, file_key), f"cannot read secret file: {exc.strerror}")
    return value


def _positive(v: float) -> bool:
    return v > 0


def _pipeline(r: Reader, px: dict[str, Any]) -> dict[str, Any]:
    """The ``pipeline`` section as Config keyword arguments (defaults: Config's)."""
    d, p = Config(), ("pipeline",)
    seconds = "seconds > 0"
    return {
        "batch_max_messages": r.get(
            px, p, "batch_max_messages", int, d.batch_max_messages, check=_positive, expected="> 0"
        ),
        "batch_min_messages": r.get(
            px, p, "batch_min_messages", int, d.batch_min_messages, check=_positive, expected="> 0"
        ),
        "batch_linger_s": r.get(
            px,
            p,
            "batch_linger_s",
            float,
            d.batch_linger_s,
            check=lambda v: 0 <= v <= 1,
            expected="seconds in [0, 1]",
        ),
        "tick_interval_s": r.get(
            px, p, "tick_interval_s", float, d.tick_interval_s, check=_positive, expected=seconds
        ),
        "stage_interval_s": r.get(
            px,
            p,
            "stage_interval_s",
            float,
            d.stage_interval_s,
            check=lambda v: v >= 0,
            expected="seconds >= 0",
        ),
        "cpus": _cpus(r, px),
    }


def _cpus(r: Reader, px: dict[str, Any]) -> tuple[int, ...] | None:
    """``pipeline.cpus``: CPU numbers this process may use now (checked here, at load)."""
    usable = sorted(os.sched_getaffinity(0))
    got = r.get(
        px,
        ("pipeline",),
        "cpus",
        list,
        None,
        check=lambda v: (
            bool(v)
            and all(isinstance(c, int) and not isinstance(c, bool) and c in usable for c in v)
        ),
        expected=f"a non-empty list of CPU numbers this process may use ({usable})",
    )
    return None if got is None else tuple(sorted(set(got)))


def _tokens(r: Reader, hx: dict[str, Any], base: Path) -> tuple[ApiToken, ...]:
    items = r.get(hx, ("http",), "tokens", list, [], expected="a list of {scope, token_file}")
    out: list[ApiToken] = []
    for i, item in enumerate(items or []):
        p: KeyPath = ("http", "tokens", i)
        m = r.mapping(item, p, allowed=_TOKEN, required=("scope",))
        scope = r.get(
            m, p, "scope", str, "read", check=lambda v: v in SCOPES, expected=" or ".join(SCOPES)
        )
        token = _secret(r, m, p, "token", base)
        if not token and m and "token" not in m and "token_file" not in m:
            r.fail(p, "expected token or token_file (a non-empty secret)")
            continue
        if token:
            out.append(ApiToken(scope, token))
    return tuple(out)


def _limits(r: Reader, ax: dict[str, Any]) -> RateLimits:
    lx = r.mapping(
        ax.get("remediation_limits"),
        ("alerting", "remediation_limits"),
        allowed=("charger", "site", "fleet"),
    )
    default = RateLimits()
    specs: dict[str, BucketSpec] = {}
    for kind in ("charger", "site", "fleet"):
        p: KeyPath = ("alerting", "remediation_limits", kind)
        m = r.mapping(lx.get(kind), p, allowed=_BUCKET)
        d: BucketSpec = getattr(default, kind)
        specs[kind] = BucketSpec(
            r.get(
                m, p, "per_minute", float, d.per_minute, check=_positive,
                expected="commands per minute > 0",
            ),
            r.get(
                m, p, "burst", float, d.burst, check=lambda v: v >= 1,
                expected="commands >= 1",
            ),
        )  # fmt: skip
    return RateLimits(**specs)


def parse_config(src: Source, env: dict[str, str] | None = None) -> Config:
    if src.data is None:
        src.data = {}
    if not isinstance(src.data, dict):
        raise ConfigError([ConfigProblem(src.file, "", "expected a mapping at the top level")])
    _apply_env(src.data, dict(os.environ) if env is None else env, src)
    base = Path(src.file).parent if src.file else Path()
    r = Reader(src)
    top = r.mapping(src.data, (), allowed=_TOP)

    def path_of(m: dict[str, Any], p: KeyPath, key: str) -> Path | None:
        v = r.get(m, p, key, str, "")
        if not v:
            return None
        out = Path(v)
        return out if out.is_absolute() else base / out

    collector_id = r.get(
        top,
        (),
        "collector_id",
        str,
        "default",
        check=lambda v: bool(_COLLECTOR_ID.match(v)),
        expected="1-64 characters of A-Z a-z 0-9 . _ -",
    )
    mq = r.mapping(top.get("mqtt"), ("mqtt",), allowed=_MQTT)
    p: KeyPath = ("mqtt",)
    subs = r.get(mq, p, "subscriptions", list, list(MqttConfig.subscriptions))
    # Two collectors with one client id would take each other's session over,
    # back and forth: a named collector gets its own by default.
    default_client = "chargewatch-collector" + (
        "" if collector_id == "default" else f"-{collector_id}"
    )
    mqtt_cfg = MqttConfig(
        host=r.get(mq, p, "host", str, "127.0.0.1"),
        port=r.get(
            mq, p, "port", int, 1883, check=lambda v: 0 < v < 65536, expected="a TCP port 1..65535"
        ),
        client_id=r.get(mq, p, "client_id", str, default_client),
        username=r.get(mq, p, "username", str, ""),
        password=_secret(r, mq, p, "password", base),
        tls=r.get(mq, p, "tls", bool, False),
        ca_file=r.get(mq, p, "ca_file", str, ""),
        cert_file=r.get(mq, p, "cert_file", str, ""),
        key_file=r.get(mq, p, "key_file", str, ""),
        tls_insecure=r.get(mq, p, "tls_insecure", bool, False),
        keepalive_s=r.get(
            mq,
            p,
            "keepalive_s",
            int,
            30,
            check=lambda v: 5 <= v <= 3600,
            expected="seconds, 5..3600",
        ),
        qos=r.get(mq, p, "qos", int, 1, check=lambda v: v in (0, 1), expected="0 or 1"),
        clean_session=r.get(mq, p, "clean_session", bool, False),
        subscriptions=tuple(str(s) for s in subs or ()),
        max_inbox=r.get(
            mq, p, "max_inbox", int, 200_000, check=_positive, expected="a positive integer"
        ),
        partition=_partition(r, mq.get("partition")),
        # YAML reads `protocol: 5` as a number: either spelling is accepted.
        protocol=str(
            r.get(
                mq,
                p,
                "protocol",
                (str, int, float),
                "5",
                check=lambda v: str(v) in ("5", "3.1.1"),
                expected='"5" or "3.1.1"',
            )
        ),
        receive_maximum=r.get(
            mq,
            p,
            "receive_maximum",
            int,
            1000,
            check=lambda v: 1 <= v <= 65535,
            expected="1..65535 messages",
        ),
        session_expiry_s=r.get(
            mq,
            p,
            "session_expiry_s",
            int,
            7 * 86400,
            check=lambda v: 0 <= v <= 0xFFFFFFFF,
            expected="seconds, 0..4294967295",
        ),
    )

    influx_cfg: InfluxConfig | None = None
    influx_file: Path | None = None
    if top.get("influx") is not None:
        ix = r.mapping(top.get("influx"), ("influx",), allowed=_INFLUX)
        p = ("influx",)
        influx_file = path_of(ix, p, "file")
        if influx_file is None:
            api = r.get(
                ix,
                p,
                "api",
                str,
                "v1",
                check=lambda v: v in ("v1", "v2"),
                expected="v1 (/write) or v2 (/api/v2/write)",
            )
            url = r.get(
                ix,
                p,
                "url",
                str,
                expected="the server URL, e.g. http://influxdb:8086",
                check=lambda v: v.startswith(("http://", "https://")),
            )
            influx_cfg = InfluxConfig(
                url=url or "http://invalid",
                api=api or "v1",
                database=r.get(ix, p, "database", str, "chargewatch"),
                retention_policy=r.get(ix, p, "retention_policy", str, ""),
                rollup_retention_policy=r.get(ix, p, "rollup_retention_policy", str, ""),
                username=r.get(ix, p, "username", str, ""),
                password=_secret(r, ix, p, "password", base),
                org=r.get(ix, p, "org", str, ""),
                bucket=r.get(ix, p, "bucket", str, "chargewatch"),
                token=_secret(r, ix, p, "token", base),
                batch_lines=r.get(
                    ix,
                    p,
                    "batch_lines",
                    int,
                    5000,
                    check=lambda v: 1 <= v <= 1_000_000,
                    expected="1..1000000",
                ),
                flush_interval_s=r.get(
                    ix, p, "flush_interval_s", float, 1.0, check=_positive, expected="seconds > 0"
                ),
                gzip=r.get(ix, p, "gzip", bool, True),
                timeout_s=r.get(
                    ix, p, "timeout_s", float, 10.0, check=_positive, expected="seconds > 0"
                ),
                spool_max_bytes=r.get(
                    ix,
                    p,
                    "spool_max_bytes",
                    int,
                    1 << 30,
                    check=lambda v: v >= 1 << 16,
                    expected=">= 65536 bytes",
                ),
            )

    hx = r.mapping(top.get("http"), ("http",), allowed=_HTTP)
    http_cfg = HttpConfig(
        listen=r.get(hx, ("http",), "listen", str, "127.0.0.1:9108"),
        token=_secret(r, hx, ("http",), "token", base),
        tokens=_tokens(r, hx, base),
        metrics_auth=r.get(hx, ("http",), "metrics_auth", bool, False),
    )
    lx = r.mapping(top.get("limits"), ("limits",), allowed=_LIMITS)
    p = ("limits",)
    limits = LimitsConfig(
        max_payload_bytes=r.get(
            lx, p, "max_payload_bytes", int, 1 << 20, check=_positive, expected="bytes > 0"
        ),
        max_samples_per_message=r.get(
            lx, p, "max_samples_per_message", int, 10_000, check=_positive, expected="> 0"
        ),
        max_future_s=r.get(
            lx, p, "max_future_s", float, 86_400.0, check=_positive, expected="seconds > 0"
        ),
        deadletter_max_bytes=r.get(
            lx,
            p,
            "deadletter_max_bytes",
            int,
            64 << 20,
            check=lambda v: v >= 4096,
            expected=">= 4096 bytes",
        ),
        deadletter_keep=r.get(
            lx, p, "deadletter_keep", int, 5, check=_positive, expected="> 0 files"
        ),
    )
    ax = r.mapping(top.get("alerting"), ("alerting",), allowed=_ALERTING)
    p = ("alerting",)
    am = r.get(ax, p, "alertmanager", (list, str), [])
    alerting = AlertingConfig(
        alertmanager=tuple(str(u) for u in ([am] if isinstance(am, str) else am or [])),
        webhook=r.get(ax, p, "webhook", str, ""),
        log=r.get(ax, p, "log", bool, True),
        resend_delay_s=r.get(
            ax, p, "resend_delay_s", float, 60.0, check=_positive, expected="seconds > 0"
        ),
        external_url=r.get(ax, p, "external_url", str, ""),
        remediation_allowlist=path_of(ax, p, "remediation_allowlist"),
        remediation_limits=_limits(r, ax),
    )
    detectors = DetectorConfig()
    if top.get("detectors") is not None:
        # The detectors' own reader checks their section; hand it the section's marks.
        sub = Source(
            src.file,
            top["detectors"],
            {k[1:]: v for k, v in src.marks.items() if k[:1] == ("detectors",)},
            {k[1:]: v for k, v in src.key_marks.items() if k[:1] == ("detectors",)},
        )
        try:
            detectors = DetectorConfig.from_mapping(top["detectors"], src.file, sub)
        except ConfigError as exc:
            r.problems += [
                ConfigProblem(p.file, f"detectors.{p.path}", p.message, p.line, p.column)
                for p in exc.problems
            ]
    px = r.mapping(top.get("pipeline"), ("pipeline",), allowed=_PIPELINE)
    data_dir = path_of(top, (), "data_dir") or base / "chargewatch-data"
    lg = r.mapping(top.get("ledger"), ("ledger",), allowed=_LEDGER)
    cfg = Config(
        file=src.file,
        data_dir=data_dir,
        collector_id=collector_id,
        ledger_path=path_of(lg, ("ledger",), "path"),
        mqtt=mqtt_cfg,
        influx=influx_cfg,
        influx_file=influx_file,
        http=http_cfg,
        limits=limits,
        fleet=path_of(top, (), "fleet"),
        rules=path_of(top, (), "rules"),
        tariffs=path_of(top, (), "tariffs"),
        alerting=alerting,
        detectors=detectors,
        **_pipeline(r, px),
    )
    for key, value in (("fleet", cfg.fleet), ("rules", cfg.rules), ("tariffs", cfg.tariffs)):
        if value is not None and not value.exists():
            r.fail((key,), f"{value} does not exist")
    r.raise_if_failed()
    return cfg


def _partition(r: Reader, value: Any) -> Partition:
    """``mqtt.partition``: ``{chargers: [ids or globs]}`` or ``{index: i, count: n}``."""
    p: KeyPath = ("mqtt", "partition")
    px = r.mapping(value, p, allowed=_PARTITION)
    if not px:
        return Partition()
    chargers = r.get(px, p, "chargers", list, [], expected="a list of charger ids or patterns")
    for i, c in enumerate(chargers or []):
        if not isinstance(c, str) or not _CHARGER_PATTERN.match(c):
            r.fail(
                (*p, "chargers", i),
                f"expected a charger id or glob pattern (A-Z a-z 0-9 . _ : - * ? [ ]), got {c!r}",
            )
    count = r.get(px, p, "count", int, 1, check=lambda v: v >= 1, expected="an integer >= 1")
    index = r.get(
        px,
        p,
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


def load_config(path: str | Path, env: dict[str, str] | None = None) -> Config:
    return parse_config(load_yaml(path), env)
