from __future__ import annotations

import os
from pathlib import Path

import pytest

from chargewatch.cli import main
from chargewatch.config import sections
from chargewatch.config.settings import Config, load_config, parse_config
from chargewatch.core.errors import ConfigError
from chargewatch.core.yamlsrc import load_yaml
from chargewatch.sessions import session_types


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


def test_scoped_tokens_from_files_and_environment(tmp_path: Path) -> None:
    (tmp_path / "read.tok").write_text("read-secret\n")
    f = tmp_path / "cw.yaml"
    f.write_text(
        "http:\n  metrics_auth: true\n  tokens:\n    - {scope: read, token_file: read.tok}\n"
    )
    cfg = load_config(f, env={"CHARGEWATCH__HTTP__TOKENS": "[{scope: admin, token: adm-secret}]"})
    # the environment replaces the whole list, as for any key
    assert [(t.scope, t.token) for t in cfg.http.tokens] == [("admin", "adm-secret")]
    cfg = load_config(f, env={})
    assert [(t.scope, t.token) for t in cfg.http.tokens] == [("read", "read-secret")]
    assert cfg.http.metrics_auth is True
    assert "read-secret" not in repr(cfg)


def test_token_and_limit_errors_in_the_usual_style(tmp_path: Path) -> None:
    f = tmp_path / "cw.yaml"
    f.write_text(
        "http:\n"
        "  tokens:\n"
        "    - {scope: root, token: x}\n"
        "    - {scope: read}\n"
        "    - {scope: admin, token_file: missing.tok}\n"
        "alerting:\n"
        "  remediation_limits:\n"
        "    site: {per_minute: 0, burst: 5}\n"
        "    planet: {}\n"
    )
    with pytest.raises(ConfigError) as info:
        load_config(f, env={})
    text = str(info.value)
    assert f"{f}:3:15: http.tokens[0].scope: expected read or admin, got 'root'" in text
    assert "http.tokens[1]: expected token or token_file (a non-empty secret)" in text
    assert "http.tokens[2].token_file: cannot read secret file" in text
    assert "alerting.remediation_limits.site.per_minute: expected commands per minute > 0" in text
    assert "alerting.remediation_limits.planet: unknown key" in text


def test_remediation_limits(tmp_path: Path) -> None:
    f = tmp_path / "cw.yaml"
    f.write_text("alerting:\n  remediation_limits:\n    charger: {per_minute: 0.5}\n")
    lim = load_config(f, env={}).alerting.remediation_limits
    assert (lim.charger.per_minute, lim.charger.burst) == (0.5, 2)
    assert (lim.site.per_minute, lim.fleet.burst) == (2.0, 20)


def test_a_mistyped_secret_is_never_echoed(tmp_path: Path) -> None:
    f = tmp_path / "cw.yaml"
    f.write_text(
        "mqtt:\n  password: 73519426\n"
        "influx:\n  url: http://x:8086\n  api: v2\n  token: [s3cr3t-influx]\n"
        "http:\n  tokens: [{scope: read, token: 88442211}]\n"
    )
    with pytest.raises(ConfigError) as info:
        load_config(f, env={"CHARGEWATCH__HTTP__TOKEN": "123987"})
    text = str(info.value)
    assert f"{f}:2:13: mqtt.password: expected a string, got a value of type int" in text
    for secret in ("73519426", "s3cr3t-influx", "88442211", "123987"):
        assert secret not in text
    assert len(info.value.problems) == 4


def test_pipeline_keys_are_read_and_cpus_must_be_usable(tmp_path: Path) -> None:
    usable = sorted(os.sched_getaffinity(0))
    f = tmp_path / "cw.yaml"
    f.write_text(
        f"pipeline:\n  batch_min_messages: 50\n  batch_linger_s: 0.02\n  cpus: [{usable[-1]}]\n"
    )
    cfg = load_config(f, env={})
    assert (cfg.batch_min_messages, cfg.batch_linger_s, cfg.cpus) == (50, 0.02, (usable[-1],))
    (tmp_path / "plain.yaml").write_text("pipeline:\n  tick_interval_s: 1\n")
    assert load_config(tmp_path / "plain.yaml", env={}).cpus is None
    f.write_text(f"pipeline:\n  batch_linger_s: 5\n  cpus: [{usable[-1] + 1}, true]\n")
    with pytest.raises(ConfigError) as info:
        load_config(f, env={})
    text = str(info.value)
    assert f"{f}:2:19: pipeline.batch_linger_s: expected seconds in [0, 1], got 5" in text
    assert (
        f"pipeline.cpus: expected a non-empty list of CPU numbers this process may use ({usable})"
        in text
    )
    assert len(info.value.problems) == 2


def test_billing_energy_policy(tmp_path: Path) -> None:
    assert sections.ENERGY_POLICIES == session_types.ENERGY_POLICIES
    f = tmp_path / "cw.yaml"
    assert load_config_text(f, "").billing.energy_policy == "best_estimate"
    assert load_config_text(f, "billing:\n  energy_policy: register\n").billing.energy_policy == (
        "register"
    )
    f.write_text("billing:\n  energy_policy: cheapest\n  policy: x\n")
    with pytest.raises(ConfigError) as info:
        load_config(f, env={})
    text = str(info.value)
    assert (
        f"{f}:2:18: billing.energy_policy: expected best_estimate or register, got 'cheapest'"
        in text
    )
    assert f"{f}:3:3: billing.policy: unknown key" in text


def test_billing_receipt_base_url(tmp_path: Path) -> None:
    f = tmp_path / "cw.yaml"
    assert load_config_text(f, "").billing.receipt_base_url == ""
    text = "billing:\n  receipt_base_url: https://charge.example.com/cw\n"
    assert load_config_text(f, text).billing.receipt_base_url == "https://charge.example.com/cw"
    f.write_text("billing:\n  receipt_base_url: ftp://x?y=1\n")
    with pytest.raises(ConfigError) as info:
        load_config(f, env={})
    assert f"{f}:2:21: billing.receipt_base_url: expected an http(s) URL" in str(info.value)


def test_billing_receipt_base_url_explicit_empty_is_the_default(tmp_path: Path) -> None:
    # Writing out the default ("" = no receipt URL in CDRs) must not be an error.
    f = tmp_path / "cw.yaml"
    text = 'billing:\n  receipt_base_url: ""\n'
    assert load_config_text(f, text).billing.receipt_base_url == ""


def test_billing_operator_for_receipts(tmp_path: Path) -> None:
    f = tmp_path / "cw.yaml"
    assert load_config_text(f, "").billing.operator.receipt_fields() == {
        "name": "", "address": "", "vat_id": "", "logo": "",
    }  # fmt: skip
    (tmp_path / "logo.svg").write_text("<svg xmlns='http://www.w3.org/2000/svg'/>")
    text = (
        "billing:\n  operator:\n    name: Stadtwerk\n    address: |\n      Hauptstr. 1\n"
        "      12345 Musterstadt\n    vat_id: DE123456789\n    logo: logo.svg\n"
    )
    op = load_config_text(f, text).billing.operator
    assert (op.name, op.address, op.vat_id) == ("Stadtwerk", "Hauptstr. 1\n12345 Musterstadt\n",
                                                "DE123456789")  # fmt: skip
    assert op.logo == tmp_path / "logo.svg"  # relative to the config file
    f.write_text("billing:\n  operator:\n    logo: logo.gif\n    town: x\n")
    with pytest.raises(ConfigError) as info:
        load_config(f, env={})
    assert "billing.operator.logo: expected a PNG, JPEG or SVG file" in str(info.value)
    assert "billing.operator.town: unknown key" in str(info.value)


def load_config_text(f: Path, text: str) -> Config:
    f.write_text(text)
    return load_config(f, env={})


def test_ocpp_decoder_limits(tmp_path: Path) -> None:
    f = tmp_path / "cw.yaml"
    f.write_text("ocpp:\n  idle_prune_s: 3600\n  max_chargers: 50000\n  max_connector: 8\n")
    o = load_config(f, env={}).ocpp
    assert (o.idle_prune_s, o.max_chargers, o.max_connector) == (3600.0, 50_000, 8)
    assert (o.pending_timeout_s, o.max_pending) == (120.0, 64)  # defaults
    f.write_text(
        "ocpp:\n  pending_timeout_s: 600\n  idle_prune_s: 300\n  max_chargers: 0\n  maxpending: 3\n"
    )
    with pytest.raises(ConfigError) as info:
        load_config(f, env={})
    text = str(info.value)
    assert (
        f"{f}:3:17: ocpp.idle_prune_s: expected seconds >= pending_timeout_s (600), got 300" in text
    )
    assert f"{f}:4:17: ocpp.max_chargers: expected > 0, got 0" in text
    assert f"{f}:5:3: ocpp.maxpending: unknown key; expected one of:" in text


def test_the_service_decoder_takes_the_ocpp_section(tmp_path: Path) -> None:
    from chargewatch.collector.service import _ocpp_decoder  # noqa: PLC0415
    from chargewatch.model.fleet import ConnectorIndex  # noqa: PLC0415

    f = tmp_path / "cw.yaml"
    f.write_text("ocpp: {idle_prune_s: 7200, max_chargers: 10}\nlimits: {max_future_s: 60}\n")
    cfg = load_config(f, env={})
    d = _ocpp_decoder(ConnectorIndex(), cfg.ocpp, cfg.limits.max_future_s)
    assert (d.idle_prune_s, d.max_chargers, d.future_tolerance) == (7200.0, 10, 60.0)
