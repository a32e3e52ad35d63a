"""deploy/multi/ and docker-compose.multi.yml: two collectors on one host, one ledger.

Validated as the single-collector stack is (tests/deploy/test_deploy_configs.py):
the override merged onto docker-compose.yml the way Compose merges it, the
result against the Compose schema, mounted files, and the collectors' own
config loader; then what makes two collectors correct together.
"""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from chargewatch.config.fleet_file import load_fleet
from chargewatch.config.settings import Config, load_config
from tests.deploy.test_deploy_configs import _interpolate, _run, _tool

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
MULTI = DEPLOY / "multi"
TESTDATA = Path(__file__).parent / "testdata"


def _load(name: str) -> dict[str, Any]:
    return dict(yaml.safe_load(_interpolate((ROOT / name).read_text())))


def _target(volume: str) -> str:
    return volume.split(":")[1]


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """Compose's merge of an override file: mappings merge key by key, ``volumes``
    merge by container path (the override wins), other sequences and scalars are
    replaced."""
    out = copy.deepcopy(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        elif key == "volumes" and isinstance(value, list) and isinstance(out.get(key), list):
            merged = {_target(v): v for v in out[key]}
            merged.update({_target(v): v for v in value})
            out[key] = list(merged.values())
        else:
            out[key] = copy.deepcopy(value)
    return out


def _stack() -> dict[str, Any]:
    return _merge(_load("docker-compose.yml"), _load("docker-compose.multi.yml"))


def _collector_config(name: str, tmp_path: Path) -> Config:
    # As the container sees it, container paths mapped onto the repository.
    text = (MULTI / name).read_text()
    for container, here in (
        ("/etc/chargewatch/fleet.yaml", DEPLOY / "fleet.yaml"),
        ("/etc/chargewatch/rules", ROOT / "rules"),
        ("/etc/chargewatch/tariffs", ROOT / "tariffs"),
        ("/run/secrets/", f"{DEPLOY / 'secrets'}/"),
        ("/var/lib/chargewatch-ledger", tmp_path / "ledger"),
        ("/var/lib/chargewatch", tmp_path / name / "data"),
    ):
        text = text.replace(container, str(here))
    f = tmp_path / name
    f.write_text(text)
    return load_config(f, env={})


def test_merged_stack_matches_the_compose_schema() -> None:
    schema = json.loads((TESTDATA / "compose-spec.json").read_text())
    jsonschema.Draft7Validator(schema).validate(_load("docker-compose.multi.yml"))
    jsonschema.Draft7Validator(schema).validate(_stack())


def test_two_collectors_own_data_volumes_and_share_the_ledger_volume() -> None:
    stack = _stack()
    services = stack["services"]
    assert {"collector", "collector-b"} <= set(services)
    vols = {
        name: {_target(v): v.split(":")[0] for v in services[name]["volumes"]}
        for name in ("collector", "collector-b")
    }
    for name in vols:
        assert vols[name]["/etc/chargewatch/chargewatch.yaml"].startswith("./deploy/multi/")
        assert vols[name]["/var/lib/chargewatch-ledger"] == "ledger-data"
    assert vols["collector"]["/var/lib/chargewatch"] != vols["collector-b"]["/var/lib/chargewatch"]
    # The same inventory, rules and tariffs, so either prices any session alike.
    for path in (
        "/etc/chargewatch/fleet.yaml",
        "/etc/chargewatch/rules",
        "/etc/chargewatch/tariffs",
    ):
        assert vols["collector"][path] == vols["collector-b"][path]
    for name, svc in services.items():
        for vol in svc.get("volumes", []):
            src = vol.split(":")[0]
            if src.startswith("."):
                assert (ROOT / src).exists(), f"{name}: {src} does not exist"
            else:
                assert src in stack["volumes"], f"{name}: undeclared volume {src}"
        for secret in svc.get("secrets", []):
            assert secret in stack["secrets"], f"{name}: undefined secret {secret}"
    ports = [p.split(":")[0] for s in services.values() for p in s.get("ports", [])]
    assert len(ports) == len(set(ports)), ports
    # The image creates the ledger's mount point owned by its user: a fresh named
    # volume takes that owner, so the non-root collectors can write it.
    assert "/var/lib/chargewatch-ledger" in (ROOT / "Dockerfile").read_text()


def test_collector_configs_load_and_split_the_fleet(tmp_path: Path) -> None:
    a = _collector_config("collector-a.yaml", tmp_path)
    b = _collector_config("collector-b.yaml", tmp_path)
    assert a.collector_id != b.collector_id
    assert a.mqtt.client_id != b.mqtt.client_id  # one persistent MQTT session each
    assert a.ledger_path == b.ledger_path == tmp_path / "ledger" / "ledger.sqlite"
    assert a.fleet == b.fleet
    # Every charger of the inventory (and any other id) has exactly one owner.
    ids = [*load_fleet(DEPLOY / "fleet.yaml").chargers, "CP-NOT-IN-INVENTORY"]
    for charger in ids:
        assert [a.mqtt.partition.owns(charger), b.mqtt.partition.owns(charger)].count(True) == 1
    shares = [sum(p.mqtt.partition.owns(c) for c in ids) for p in (a, b)]
    assert min(shares) >= len(ids) // 4, shares
    # Apart from the keys that make them two, the files are the same.
    differ = {"collector_id", "client_id", "index", "count"}

    def strip(name: str) -> list[str]:
        lines = (MULTI / name).read_text().splitlines()
        return [
            ln
            for ln in lines
            if ln.strip()
            and not ln.lstrip().startswith("#")
            and ln.split(":")[0].strip() not in differ
        ]

    assert strip("collector-a.yaml") == strip("collector-b.yaml")
    # ... and the same as the single collector's, for everything they share.
    single = yaml.safe_load((DEPLOY / "chargewatch.yaml").read_text())
    multi = yaml.safe_load((MULTI / "collector-a.yaml").read_text())
    for key in ("influx", "http", "alerting", "fleet", "rules", "tariffs", "data_dir"):
        assert multi[key] == single[key], key
    assert {k: v for k, v in multi["mqtt"].items() if k not in ("client_id", "partition")} == {
        k: v for k, v in single["mqtt"].items() if k != "client_id"
    }


def test_prometheus_scrapes_both_collectors(tmp_path: Path) -> None:
    prom = yaml.safe_load((MULTI / "prometheus.yml").read_text())
    targets = [
        t for job in prom["scrape_configs"] for sc in job["static_configs"] for t in sc["targets"]
    ]
    assert {"collector:9108", "collector-b:9108"} <= set(targets)
    promtool = _tool("promtool")
    rules = DEPLOY / "prometheus/rules/chargewatch-collector.yml"
    conf = tmp_path / "prometheus.yml"
    conf.write_text(
        (MULTI / "prometheus.yml")
        .read_text()
        .replace("/etc/prometheus/rules/*.yml", str(rules.parent / "*.yml"))
    )
    r = _run(promtool, "check", "config", str(conf))
    assert r.returncode == 0, r.stdout + r.stderr
    assert re.search(r"SUCCESS: \d+ rules found", r.stdout + r.stderr)
