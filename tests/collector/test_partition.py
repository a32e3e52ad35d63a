"""Partitioning the fleet between collectors: ownership, topic filters, config errors."""

from __future__ import annotations

import subprocess
import sys
import zlib
from pathlib import Path

import pytest

from chargewatch.config.settings import load_config
from chargewatch.core.errors import ConfigError
from chargewatch.ingest.mqtt import MqttConfig
from chargewatch.ingest.partition import Partition, charger_of, stable_hash
from chargewatch.ingest.topics import NATIVE_SUBSCRIPTIONS, OCPP_SUBSCRIPTIONS

BASE = NATIVE_SUBSCRIPTIONS + OCPP_SUBSCRIPTIONS


@pytest.mark.parametrize(
    ("topic", "charger"),
    [
        ("ev/CP-1/1/meter", "CP-1"),
        ("ev/CP-1/online", "CP-1"),
        ("ocpp/1.6/CP-1/cp", "CP-1"),
        ("ocpp/2.0.1/CP-1/csms", "CP-1"),
        ("ocpp/1.6", None),
        ("other/CP-1/x", None),
        ("ev", None),
    ],
)
def test_charger_of_topic(topic: str, charger: str | None) -> None:
    assert charger_of(topic) == charger


def test_exact_ids_become_per_charger_filters_at_the_charger_level() -> None:
    part = Partition(chargers=("CP-1", "CP-2"))
    assert part.exact
    subs = part.subscriptions(BASE)
    assert "ev/CP-1/+/meter" in subs and "ev/CP-2/online" in subs
    # `+` is a whole level: the OCPP version stays a wildcard, the charger is named.
    assert "ocpp/+/CP-1/cp" in subs and "ocpp/+/CP-2/csms" in subs
    assert not any("ocpp/+/+/" in s or s.startswith("ev/+/") for s in subs)
    assert len(subs) == 2 * len(BASE)
    # The collector's own commands (ocpp/<v>/<id>/command) are not subscribed.
    assert not any(s.endswith("/command") or s.endswith("/#") for s in subs)


def test_patterns_and_hashes_subscribe_to_everything_and_filter_here() -> None:
    assert Partition(chargers=("CP-0*",)).subscriptions(BASE) == BASE
    assert Partition(index=1, count=3).subscriptions(BASE) == BASE
    assert Partition().whole and Partition().subscriptions(BASE) == BASE
    glob = Partition(chargers=("site-a-*", "CP-7"))
    assert glob.owns("site-a-12") and glob.owns("CP-7")
    assert not glob.owns("site-b-1") and not glob.owns("CP-70")


def test_hash_partitions_cover_every_charger_exactly_once() -> None:
    parts = [Partition(index=i, count=3) for i in range(3)]
    chargers = [f"CP-{n:04d}" for n in range(3000)]
    owners = [[p.owns(c) for p in parts].count(True) for c in chargers]
    assert owners == [1] * len(chargers)
    shares = [sum(p.owns(c) for c in chargers) for p in parts]
    assert all(900 < s < 1100 for s in shares), shares  # CRC-32 spreads ids evenly


def test_the_hash_is_stable_across_processes() -> None:
    # Python's str hash is salted per process; CRC-32 is not.
    code = "from chargewatch.ingest.partition import stable_hash; print(stable_hash('CP-42'))"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert int(out) == stable_hash("CP-42") == zlib.crc32(b"CP-42")


def test_topics_without_a_charger_are_left_to_the_pipeline() -> None:
    part = Partition(index=0, count=2)
    assert part.owns_topic("nonsense/topic")  # rejected by the pipeline, with its reason


def test_partition_config(tmp_path: Path) -> None:
    f = tmp_path / "cw.yaml"
    f.write_text(
        "collector_id: east\nledger:\n  path: shared/ledger.sqlite\n"
        "mqtt:\n  partition:\n    chargers: [CP-1, 'site-a-*']\n"
    )
    cfg = load_config(f, env={})
    assert cfg.collector_id == "east"
    assert cfg.ledger_path == tmp_path / "shared/ledger.sqlite"
    assert cfg.mqtt.partition == Partition(chargers=("CP-1", "site-a-*"))
    assert cfg.mqtt.client_id == "chargewatch-collector-east"  # distinct per collector
    f.write_text("mqtt:\n  partition: {index: 1, count: 4}\n")
    cfg = load_config(f, env={"CHARGEWATCH__COLLECTOR_ID": "c1"})
    assert cfg.mqtt.partition == Partition(index=1, count=4) and cfg.collector_id == "c1"
    assert isinstance(cfg.mqtt, MqttConfig) and cfg.mqtt.topic_filters() == BASE
    f.write_text("{}\n")
    cfg = load_config(f, env={})
    assert (cfg.collector_id, cfg.ledger_path, cfg.mqtt.client_id) == (
        "default",
        None,
        "chargewatch-collector",
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "mqtt:\n  partition: {index: 2, count: 2}\n",
            "2:22: mqtt.partition.index: expected an integer 0..1 (below count), got 2",
        ),
        (
            "mqtt:\n  partition: {count: 0, index: 0}\n",
            "mqtt.partition.count: expected an integer >= 1, got 0",
        ),
        (
            "mqtt:\n  partition: {chargers: [CP-1], count: 2, index: 0}\n",
            "mqtt.partition: give either chargers or index/count, not both",
        ),
        (
            "mqtt:\n  partition: {count: 2}\n",
            "mqtt.partition: index and count go together",
        ),
        (
            "mqtt:\n  partition:\n    chargers: [CP-1, 'ev/#']\n",
            "3:22: mqtt.partition.chargers[1]: expected a charger id or glob pattern",
        ),
        ("mqtt:\n  partition: {chargers: []}\n", "mqtt.partition.chargers: expected at least one"),
        ("mqtt:\n  partition: {shard: 1}\n", "mqtt.partition.shard: unknown key"),
        ("collector_id: 'a b'\n", "1:15: collector_id: expected 1-64 characters"),
        (
            "ledger: {file: x}\n",
            "ledger.file: unknown key; expected one of: password, password_file, path",
        ),
    ],
)
def test_partition_config_errors(tmp_path: Path, text: str, message: str) -> None:
    f = tmp_path / "cw.yaml"
    f.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_config(f, env={})
    assert message in str(info.value), str(info.value)


def test_mqtt_protocol_keys_are_read(tmp_path: Path) -> None:
    # Documented keys that the loader used to accept and then ignore.
    f = tmp_path / "cw.yaml"
    f.write_text("mqtt:\n  protocol: '3.1.1'\n  receive_maximum: 200\n  session_expiry_s: 60\n")
    cfg = load_config(f, env={})
    assert (cfg.mqtt.protocol, cfg.mqtt.receive_maximum, cfg.mqtt.session_expiry_s) == (
        "3.1.1",
        200,
        60,
    )
    f.write_text("mqtt:\n  protocol: 5\n")
    assert load_config(f, env={}).mqtt.protocol == "5"
    f.write_text("mqtt:\n  protocol: 4\n  receive_maximum: 0\n")
    with pytest.raises(ConfigError) as info:
        load_config(f, env={})
    assert 'mqtt.protocol: expected "5" or "3.1.1", got 4' in str(info.value)
    assert "mqtt.receive_maximum: expected 1..65535 messages, got 0" in str(info.value)
