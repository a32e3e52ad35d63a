"""deploy/ and docker-compose.yml: schema, mounted files, secrets, and the real tools' checks.

No Docker engine runs here, so the stack is validated statically: the Compose
schema, every bind-mounted and secret file, and each service's own config
checker (promtool, amtool, the collector's config loader).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from chargewatch.config.settings import load_config
from tests.conftest import IN_CI

ROOT = Path(__file__).resolve().parents[2]
TESTDATA = Path(__file__).parent / "testdata"
DEPLOY = ROOT / "deploy"


def _tool(*names: str) -> str:
    for name in names:
        found = shutil.which(name) or shutil.which(f"/usr/bin/{name}")
        if found:
            return found
    if IN_CI:
        pytest.fail(f"none of {names} installed under CI=true")
    pytest.skip(f"none of {names} installed")


def _run(*cmd: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(cmd), check=False, capture_output=True, text=True, timeout=60)


def _interpolate(text: str) -> str:
    """Compose's ${VAR:-default} with an empty environment; $$ is a literal $."""
    text = re.sub(r"\$\{(\w+):?-([^}]*)\}", r"\2", text)
    assert not re.search(r"\$\{", text), "a variable without a default"
    return text


def _compose() -> dict[str, Any]:
    return dict(yaml.safe_load(_interpolate((ROOT / "docker-compose.yml").read_text())))


# -- compose ------------------------------------------------------------------------------


def test_compose_matches_the_compose_spec_schema() -> None:
    schema = json.loads((TESTDATA / "compose-spec.json").read_text())
    jsonschema.Draft7Validator(schema).validate(_compose())


def test_compose_schema_catches_mistakes() -> None:
    # The schema check above could pass vacuously; show that it bites.
    schema = json.loads((TESTDATA / "compose-spec.json").read_text())
    bad = _compose()
    bad["services"]["grafana"]["restart_policy"] = "always"  # not a service key
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft7Validator(schema).validate(bad)


def test_compose_services_and_profiles() -> None:
    services = _compose()["services"]
    assert set(services) == {
        "mosquitto",
        "influxdb",
        "collector",
        "simulator",
        "prometheus",
        "alertmanager",
        "grafana",
        "bridge",
    }
    assert services["influxdb"]["image"] == "influxdb:1.8"
    assert services["simulator"]["profiles"] == ["sim"]
    assert services["bridge"]["profiles"] == ["bridge"]  # needs the operator's CSMS URL
    optional = ("simulator", "bridge")
    assert all("profiles" not in s for n, s in services.items() if n not in optional)
    assert services["collector"]["build"] == "."


def test_env_example_names_every_compose_variable() -> None:
    used = set(re.findall(r"\$\{(\w+)", (ROOT / "docker-compose.yml").read_text()))
    example = dict(
        line.split("=", 1)
        for line in (ROOT / ".env.example").read_text().splitlines()
        if line and not line.startswith("#")
    )
    assert used == set(example)


def test_every_mounted_file_and_secret_exists() -> None:
    compose = _compose()
    for name, svc in compose["services"].items():
        for vol in svc.get("volumes", []):
            src = vol.split(":")[0]
            if src.startswith("."):
                assert (ROOT / src).exists(), f"{name}: {src} does not exist"
        for secret in svc.get("secrets", []):
            assert secret in compose["secrets"], f"{name}: undefined secret {secret}"
    for name, spec in compose["secrets"].items():
        assert (ROOT / spec["file"]).is_file(), f"secret {name}: {spec['file']} missing"
    assert (ROOT / "Dockerfile").is_file()


def _secret_paths(text: str) -> set[str]:
    return set(re.findall(r"/run/secrets/(\w+)", text))


def test_services_get_the_secrets_their_configs_read() -> None:
    services = _compose()["services"]

    def given(svc: str) -> set[str]:
        return set(services[svc].get("secrets", []))

    collector_cfg = (DEPLOY / "chargewatch.yaml").read_text()
    assert _secret_paths(collector_cfg) <= given("collector")
    grafana_ds = (DEPLOY / "grafana/provisioning/datasources/chargewatch.yaml").read_text()
    grafana_env = json.dumps(services["grafana"]["environment"])
    assert _secret_paths(grafana_ds + grafana_env) <= given("grafana")
    influx_init = "".join(p.read_text() for p in (DEPLOY / "influxdb/init").iterdir())
    assert _secret_paths(influx_init) <= given("influxdb")
    sim_cmd = json.dumps(services["simulator"]["command"])
    assert _secret_paths(sim_cmd) <= given("simulator")


def test_dockerfile_runs_the_collector_as_non_root_with_a_healthcheck() -> None:
    text = (ROOT / "Dockerfile").read_text()
    assert text.startswith("#") and "FROM python:3.11-slim" in text
    for src in re.findall(r"^COPY (\S+)", text, re.M):
        assert (ROOT / src).exists(), src
    users = re.findall(r"^USER (\S+)", text, re.M)
    assert users and users[-1] not in ("root", "0")
    assert "/healthz" in text.split("HEALTHCHECK", 1)[1]
    assert 'CMD ["run", "--config", "/etc/chargewatch/chargewatch.yaml"]' in text


def test_collector_config_loads(tmp_path: Path) -> None:
    # The example config as the container sees it, with the container paths
    # mapped onto the repository (what compose mounts there).
    text = (DEPLOY / "chargewatch.yaml").read_text()
    text = text.replace("/etc/chargewatch/fleet.yaml", str(DEPLOY / "fleet.yaml"))
    text = text.replace("/etc/chargewatch/rules", str(ROOT / "rules"))
    text = text.replace("/etc/chargewatch/tariffs", str(ROOT / "tariffs"))
    text = text.replace("/run/secrets/", str(DEPLOY / "secrets") + "/")
    text = text.replace("/var/lib/chargewatch", str(tmp_path / "data"))
    f = tmp_path / "chargewatch.yaml"
    f.write_text(text)
    cfg = load_config(f, env={})
    assert cfg.mqtt.host == "mosquitto" and cfg.mqtt.username == "chargewatch-collector"
    assert cfg.mqtt.password == (DEPLOY / "secrets/mqtt_collector_password").read_text().strip()
    assert cfg.influx is not None and cfg.influx.url == "http://influxdb:8086"
    assert cfg.influx.password == (DEPLOY / "secrets/influxdb_write_password").read_text().strip()
    assert cfg.http.listen == "0.0.0.0:9108"
    assert cfg.alerting.alertmanager == ("http://alertmanager:9093",)
    prom = yaml.safe_load((DEPLOY / "prometheus/prometheus.yml").read_text())
    targets = [
        t for job in prom["scrape_configs"] for sc in job["static_configs"] for t in sc["targets"]
    ]
    assert "collector:9108" in targets


def test_fleet_matches_the_simulator_in_compose() -> None:
    from chargewatch.config.fleet_file import load_fleet  # noqa: PLC0415
    from chargewatch.simulator.scenarios import SimConfig  # noqa: PLC0415
    from chargewatch.simulator.simulation import Simulation  # noqa: PLC0415

    cmd = " ".join(_compose()["services"]["simulator"]["command"])
    args = dict(re.findall(r"--(chargers|sites|seed) (\d+)", cmd))
    sim = Simulation(
        SimConfig(
            chargers=int(args["chargers"]),
            sites=int(args["sites"]),
            seed=int(args["seed"]),
            duration=60.0,
        )
    )
    assert load_fleet(DEPLOY / "fleet.yaml").chargers == sim.fleet().chargers


# -- Prometheus and Alertmanager ----------------------------------------------------------


def test_prometheus_rules_and_config(tmp_path: Path) -> None:
    promtool = _tool("promtool")
    rules = DEPLOY / "prometheus/rules/chargewatch-collector.yml"
    r = _run(promtool, "check", "rules", str(rules))
    assert r.returncode == 0, r.stdout + r.stderr
    # The config names the rules by their path in the container; point it at ours.
    cfg = (DEPLOY / "prometheus/prometheus.yml").read_text()
    assert "/etc/prometheus/rules/*.yml" in cfg
    conf = tmp_path / "prometheus.yml"
    conf.write_text(cfg.replace("/etc/prometheus/rules/*.yml", str(rules.parent / "*.yml")))
    r = _run(promtool, "check", "config", str(conf))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "SUCCESS: 10 rules found" in r.stdout + r.stderr


def test_prometheus_rules_unit_tests(tmp_path: Path) -> None:
    promtool = _tool("promtool")
    rules = DEPLOY / "prometheus/rules/chargewatch-collector.yml"
    spec = (TESTDATA / "collector-rules.test.yml").read_text().replace("RULES_FILE", str(rules))
    f = tmp_path / "rules.test.yml"
    f.write_text(spec)
    r = _run(promtool, "test", "rules", str(f))
    assert r.returncode == 0, r.stdout + r.stderr


def test_alertmanager_config() -> None:
    amtool = _tool("amtool")
    conf = DEPLOY / "alertmanager/alertmanager.yml"
    r = _run(amtool, "check-config", str(conf))
    assert r.returncode == 0, r.stdout + r.stderr
    # Routing: critical charger faults page on-call, info goes nowhere, the rest to the NOC.
    for labels, receiver in (
        ("severity=critical fault=over_temperature", "oncall-webhook"),
        ("severity=info fault=clock_skew", "null"),
        ("severity=warning error_code=GroundFailure", "noc-webhook"),
    ):
        r = _run(amtool, "config", "routes", "test", f"--config.file={conf}", *labels.split())
        assert r.returncode == 0, r.stdout + r.stderr
        assert r.stdout.strip() == receiver, (labels, r.stdout)


def test_alertmanager_receives_the_webhook_example_in_a_private_instance() -> None:
    # amtool validates the syntax; a real Alertmanager also resolves the config.
    from tests.services import Alertmanager, ServiceMissingError  # noqa: PLC0415

    try:
        am = Alertmanager(config=(DEPLOY / "alertmanager/alertmanager.yml").read_text())
    except ServiceMissingError as exc:
        if IN_CI:
            pytest.fail(str(exc))
        pytest.skip(str(exc))
    with am:
        import httpx  # noqa: PLC0415

        status = httpx.get(f"{am.url}/api/v2/status", timeout=10).json()
        assert "oncall-webhook" in status["config"]["original"]
