"""The ``bridge:`` config section: values, environment overrides, errors at load."""

from __future__ import annotations

from pathlib import Path

import pytest

from chargewatch.bridge.settings import DEFAULT_ALLOWLIST, BridgeConfig
from chargewatch.config.bridge_settings import load_bridge_config
from chargewatch.config.settings import load_config
from chargewatch.core.errors import ConfigError


def test_defaults_without_a_bridge_section(tmp_path: Path) -> None:
    f = tmp_path / "c.yaml"
    f.write_text("mqtt:\n  host: broker\n")  # the collector's section is not the bridge's
    cfg = load_bridge_config(f, env={})
    d = BridgeConfig()
    assert (cfg.listen, cfg.path_prefix, cfg.subprotocols) == (
        d.listen, d.path_prefix, ("ocpp1.6", "ocpp2.0.1", "ocpp2.1"),
    )  # fmt: skip
    assert cfg.commands.allowlist == DEFAULT_ALLOWLIST
    assert cfg.server_tls is None and cfg.mqtt.host == "127.0.0.1"


def test_a_whole_section_with_files_secrets_and_env(tmp_path: Path) -> None:
    for name in ("server.pem", "server.key", "chargers-ca.pem", "csms-ca.pem", "bridge.pem"):
        (tmp_path / name).write_text("x")
    (tmp_path / "mqtt.pw").write_text("hunter2\n")
    f = tmp_path / "c.yaml"
    f.write_text(
        "bridge:\n"
        "  listen: 0.0.0.0:9443\n"
        "  path_prefix: /cs/\n"
        "  csms_url: wss://csms.example:443/ocpp\n"
        "  subprotocols: [ocpp2.0.1, ocpp1.6]\n"
        "  tls: {cert_file: server.pem, key_file: server.key, client_ca_file: chargers-ca.pem}\n"
        "  csms_tls: {ca_file: csms-ca.pem, cert_file: bridge.pem}\n"
        "  max_frame_bytes: 65536\n"
        "  ping_interval_s: 0\n"
        "  mqtt: {host: mq, port: 8883, tls: true, username: bridge, password_file: mqtt.pw}\n"
        "  mirror: {queue_max: 1000, spool_dir: spool, spool_max_bytes: 1048576}\n"
        "  commands: {allowlist: [Reset], timeout_s: 10}\n"
        "  http: {listen: ''}\n"
    )
    cfg = load_bridge_config(f, env={"CHARGEWATCH__BRIDGE__CSMS_URL": "ws://other:9000/ocpp"})
    assert cfg.csms_url == "ws://other:9000/ocpp"  # the environment wins
    assert (cfg.listen, cfg.path_prefix) == ("0.0.0.0:9443", "/cs/")
    assert cfg.subprotocols == ("ocpp2.0.1", "ocpp1.6")
    assert cfg.server_tls is not None
    assert cfg.server_tls.ca_file == str(tmp_path / "chargers-ca.pem")
    assert cfg.csms_tls.cert_file == str(tmp_path / "bridge.pem")
    assert (cfg.max_frame_bytes, cfg.ping_interval_s, cfg.http_listen) == (65536, None, "")
    assert (cfg.mqtt.host, cfg.mqtt.port, cfg.mqtt.password) == ("mq", 8883, "hunter2")
    assert cfg.mirror.spool_dir == tmp_path / "spool"
    assert (cfg.commands.allowlist, cfg.commands.timeout_s) == (("Reset",), 10.0)


def test_every_problem_reported_with_file_line_and_key_path(tmp_path: Path) -> None:
    f = tmp_path / "c.yaml"
    f.write_text(
        "bridge:\n"
        "  csms_url: http://csms\n"
        "  subprotocols: [ocpp1.6, ocpp1.5]\n"
        "  max_frame_bytes: 10\n"
        "  lisen: 0.0.0.0:9000\n"
        "  mqtt: {port: 0}\n"
        "  tls: {key_file: nowhere.key}\n"
    )
    with pytest.raises(ConfigError) as err:
        load_bridge_config(f, env={})
    text = str(err.value)
    assert f"{f}:2:13: bridge.csms_url: expected a ws:// or wss:// URL, got 'http://csms'" in text
    assert f"{f}:3:27: bridge.subprotocols[1]: expected one of ocpp1.6, ocpp2.0.1, ocpp2.1" in text
    assert f"{f}:4:20: bridge.max_frame_bytes: expected bytes in 1024..67108864, got 10" in text
    assert f"{f}:5:3: bridge.lisen: unknown key; expected one of:" in text
    assert f"{f}:6:16: bridge.mqtt.port: expected a TCP port 1..65535, got 0" in text
    assert "bridge.tls: missing required key 'cert_file'" in text
    assert "bridge.tls.key_file: expected a readable file, got 'nowhere.key'" in text


def test_wrong_env_value_names_the_key(tmp_path: Path) -> None:
    f = tmp_path / "c.yaml"
    f.write_text("bridge: {}\n")
    with pytest.raises(ConfigError) as err:
        load_bridge_config(f, env={"CHARGEWATCH__BRIDGE__MQTT__PORT": "many"})
    assert "bridge.mqtt.port: expected a TCP port 1..65535, got 'many'" in str(err.value)


def test_the_collector_accepts_a_file_with_a_bridge_section(tmp_path: Path) -> None:
    f = tmp_path / "c.yaml"
    f.write_text("mqtt:\n  host: broker\nbridge:\n  csms_url: ws://csms/ocpp\n")
    assert load_config(f, env={}).mqtt.host == "broker"
    assert load_bridge_config(f, env={}).csms_url == "ws://csms/ocpp"
