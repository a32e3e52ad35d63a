"""Service configuration (``chargewatch run --config FILE``).

YAML, every key optional except where noted; environment variables override
any key: ``CHARGEWATCH__INFLUX__URL=http://...`` sets ``influx.url`` (double
underscores separate the path; values are parsed as YAML scalars). Secrets can
also come from files: ``password_file``, ``token_file``. A wrong file fails at
start with the file, the key path and what was expected.

:func:`parse_config` reads the top level and hands each section to its reader:
``mqtt`` and ``influx`` in connections.py; ``http``, ``limits``, ``alerting`` and
``detectors`` (with their dataclasses, re-exported here) in sections.py;
``pipeline`` here, since its defaults are :class:`Config`'s.
"""

from __future__ import annotations

__all__ = [
    "AlertingConfig",
    "BillingConfig",
    "ClusterConfig",
    "Config",
    "HttpConfig",
    "LimitsConfig",
    "OcppConfig",
    "load_config",
    "parse_config",
]

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chargewatch.config.connections import read_influx, read_mqtt
from chargewatch.config.reading import Section, positive
from chargewatch.config.sections import (
    AlertingConfig,
    BillingConfig,
    ClusterConfig,
    HttpConfig,
    LimitsConfig,
    OcppConfig,
    read_alerting,
    read_billing,
    read_cluster,
    read_detectors,
    read_http,
    read_limits,
    read_ocpp,
)
from chargewatch.core.errors import ConfigError, ConfigProblem
from chargewatch.core.yamlsrc import Reader, Source, load_yaml
from chargewatch.detectors import DetectorConfig
from chargewatch.ingest.mqtt import MqttConfig
from chargewatch.storage.influx import InfluxConfig
from chargewatch.storage.sqldb import PG_TLS_KEYS, PgOptions, is_postgres, sqlite_path

ENV_PREFIX = "CHARGEWATCH__"


@dataclass(frozen=True)
class Config:
    file: str = ""
    data_dir: Path = Path("chargewatch-data")
    # Names this collector's rows in a ledger that several collectors share
    # (resume checkpoint, session journal). "default" is what a single
    # collector always used, so an upgraded one resumes its old checkpoint.
    collector_id: str = "default"
    ledger_path: Path | None = None  # default: DATA_DIR/ledger.sqlite
    # ``ledger.url``: a SQLite location or postgresql://… (wins over ledger_path).
    ledger_url: str | None = None
    ledger_pg: PgOptions | None = None  # password file, TLS: PostgreSQL only
    mqtt: MqttConfig = field(default_factory=MqttConfig)
    influx: InfluxConfig | None = None
    influx_file: Path | None = None  # write line protocol to a local file instead
    http: HttpConfig = field(default_factory=HttpConfig)
    limits: LimitsConfig = field(default_factory=LimitsConfig)
    ocpp: OcppConfig = field(default_factory=OcppConfig)
    fleet: Path | None = None
    rules: Path | None = None
    tariffs: Path | None = None
    alerting: AlertingConfig = field(default_factory=AlertingConfig)
    billing: BillingConfig = field(default_factory=BillingConfig)
    detectors: DetectorConfig = field(default_factory=DetectorConfig)
    cluster: ClusterConfig = field(default_factory=ClusterConfig)
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
    "data_dir", "mqtt", "influx", "http", "limits", "ocpp", "fleet", "rules", "tariffs",
    "alerting", "pipeline", "detectors", "collector_id", "ledger", "billing",
    "cluster", "bridge",  # bridge_settings.py reads it
)  # fmt: skip
_LEDGER = ("path", "url", "password", "password_file", "pool_max", *PG_TLS_KEYS)
# A collector id ends up in the MQTT client id and in ledger rows.
_COLLECTOR_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")  # fullmatch: `$` passes a trailing \n
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


def _ledger(ledger: Section) -> tuple[str | None, PgOptions | None]:
    """``ledger.url`` (a relative SQLite file is read from the config's folder)
    and, for PostgreSQL, the password and libpq's TLS settings."""
    url: str = ledger.get("url", str, "")
    if url and ledger.get("path", str, ""):
        ledger.r.fail((*ledger.path, "url"), "give ledger.url or ledger.path, not both")
    if not url:
        return None, None
    if not is_postgres(url):
        try:
            file = Path(sqlite_path(url))
        except ValueError as exc:
            ledger.r.fail((*ledger.path, "url"), str(exc))
            return None, None
        keep = file.is_absolute() or str(file) == ":memory:"
        return str(file if keep else ledger.base / file), None
    params = {k: str(v) for k in PG_TLS_KEYS if (v := ledger.get(k, str, ""))}
    password = ledger.secret("password")
    if password:
        params["password"] = password
    pool_max = ledger.get("pool_max", int, 4, check=positive, expected="a positive integer")
    return url, PgOptions(params=params, pool_max=pool_max)


def parse_config(src: Source, env: dict[str, str] | None = None) -> Config:
    if src.data is None:
        src.data = {}
    if not isinstance(src.data, dict):
        raise ConfigError([ConfigProblem(src.file, "", "expected a mapping at the top level")])
    _apply_env(src.data, dict(os.environ) if env is None else env, src)
    base = Path(src.file).parent if src.file else Path()
    r = Reader(src)
    top = Section.open(r, src.data, (), base, allowed=_TOP)
    collector_id = top.get(
        "collector_id",
        str,
        "default",
        check=lambda v: bool(_COLLECTOR_ID.fullmatch(v)),
        expected="1-64 characters of A-Z a-z 0-9 . _ -",
    )
    # The sections are read in this order, which is the order problems are listed in.
    mqtt = read_mqtt(top, collector_id)
    influx, influx_file = read_influx(top)
    http, limits, alerting = read_http(top), read_limits(top), read_alerting(top)
    ocpp = read_ocpp(top)
    billing = read_billing(top)
    detectors = read_detectors(top)
    pipeline = top.child("pipeline", allowed=_PIPELINE)
    data_dir = top.file("data_dir") or base / "chargewatch-data"
    ledger = top.child("ledger", allowed=_LEDGER)
    ledger_url, ledger_pg = _ledger(ledger)
    cluster = read_cluster(top)
    if cluster.enabled and not (ledger_url and is_postgres(ledger_url)):
        r.fail(("cluster", "partitions"), "dynamic partitions need ledger.url: postgresql://…")
    if cluster.enabled and not mqtt.partition.whole:
        r.fail(("cluster", "partitions"), "give cluster.partitions or mqtt.partition, not both")
    cfg = Config(
        file=src.file,
        data_dir=data_dir,
        collector_id=collector_id,
        ledger_path=ledger.file("path"),
        ledger_url=ledger_url,
        ledger_pg=ledger_pg,
        mqtt=mqtt,
        influx=influx,
        influx_file=influx_file,
        http=http,
        limits=limits,
        ocpp=ocpp,
        fleet=top.file("fleet"),
        rules=top.file("rules"),
        tariffs=top.file("tariffs"),
        alerting=alerting,
        billing=billing,
        detectors=detectors,
        cluster=cluster,
        **_pipeline(pipeline),
    )
    for key, value in (("fleet", cfg.fleet), ("rules", cfg.rules), ("tariffs", cfg.tariffs)):
        if value is not None and not value.exists():
            r.fail((key,), f"{value} does not exist")
    r.raise_if_failed()
    return cfg


def _pipeline(s: Section) -> dict[str, Any]:
    """The ``pipeline`` section as Config keyword arguments (defaults: Config's)."""
    d = Config()
    seconds = "seconds > 0"
    return {
        "batch_max_messages": s.get(
            "batch_max_messages", int, d.batch_max_messages, check=positive, expected="> 0"
        ),
        "batch_min_messages": s.get(
            "batch_min_messages", int, d.batch_min_messages, check=positive, expected="> 0"
        ),
        "batch_linger_s": s.get(
            "batch_linger_s",
            float,
            d.batch_linger_s,
            check=lambda v: 0 <= v <= 1,
            expected="seconds in [0, 1]",
        ),
        "tick_interval_s": s.get(
            "tick_interval_s", float, d.tick_interval_s, check=positive, expected=seconds
        ),
        "stage_interval_s": s.get(
            "stage_interval_s",
            float,
            d.stage_interval_s,
            check=lambda v: v >= 0,
            expected="seconds >= 0",
        ),
        "cpus": _cpus(s),
    }


def _cpus(s: Section) -> tuple[int, ...] | None:
    """``pipeline.cpus``: CPU numbers this process may use now (checked here, at load)."""
    usable = sorted(os.sched_getaffinity(0))
    got = s.get(
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


def load_config(path: str | Path, env: dict[str, str] | None = None) -> Config:
    return parse_config(load_yaml(path), env)
