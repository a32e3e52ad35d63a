from __future__ import annotations

from pathlib import Path

import pytest

from chargewatch.cli import main
from chargewatch.config import load_config, parse_config
from chargewatch.errors import ConfigError
from chargewatch.yamlsrc import load_yaml


def test_every_problem_is_reported_with_file_line_and_key_path(tmp_path: Path) -> None:
    f = tmp_path / "cw.yaml"
    f.write_text(
        "mqtt:\n"
        "  port: 99999\n"
        "  qos: 2\n"
        "  hots: broker\n"
        "influx:\n"
        "  api: v3\n"
        "  url: influxdb:8086\n"
        "limits:\n"
        "  max_payload_bytes: -1\n"
    )
    with pytest.raises(ConfigError) as info:
        load_config(f, env={})
    text = str(info.value)
    assert f"{f}:2:9: mqtt.port: expected a TCP port 1..65535, got 99999" in text
    assert f"{f}:3:8: mqtt.qos: expected 0 or 1, got 2" in text
    assert f"{f}:4:3: mqtt.hots: unknown key; expected one of:" in text
    assert "influx.api: expected v1 (/write) or v2 (/api/v2/write), got 'v3'" in text
    assert "influx.url: expected the server URL, e.g. http://influxdb:8086" in text
    assert "limits.max_payload_bytes: expected bytes > 0, got -1" in text
    assert len(info.value.problems) == 6


def test_environment_overrides_and_secret_files(tmp_path: Path) -> None:
    secret = tmp_path / "pw"
    secret.write_text("hunter2\n")
    f = tmp_path / "cw.yaml"
    f.write_text("mqtt:\n  host: a\n  password_file: pw\ninflux:\n  url: http://x:8086\n")
    cfg = load_config(
        f,
        env={
            "CHARGEWATCH__MQTT__HOST": "broker",
            "CHARGEWATCH__MQTT__PORT": "8883",
            "CHARGEWATCH__INFLUX__API": "v2",
            "CHARGEWATCH__INFLUX__TOKEN": "tok",
        },
    )
    assert (cfg.mqtt.host, cfg.mqtt.port, cfg.mqtt.password) == ("broker", 8883, "hunter2")
    assert cfg.influx is not None and cfg.influx.api == "v2" and cfg.influx.token == "tok"
    assert "hunter2" not in repr(cfg) and "tok" not in repr(cfg.influx)
    assert cfg.data_dir == tmp_path / "chargewatch-data"


def test_wrong_env_value_names_the_key() -> None:
    src = load_yaml("cw.yaml", text="{}")
    with pytest.raises(ConfigError) as info:
        parse_config(src, env={"CHARGEWATCH__MQTT__KEEPALIVE_S": "soon"})
    assert "mqtt.keepalive_s: expected seconds, 5..3600, got 'soon'" in str(info.value)


def test_run_fails_at_start_on_a_wrong_config(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    f = tmp_path / "cw.yaml"
    f.write_text("fleet: missing.yaml\n")
    assert main(["run", "--config", str(f)]) == 2
    err = capsys.readouterr().err
    assert f"{f}:1:8: fleet: {tmp_path / 'missing.yaml'} does not exist" in err
