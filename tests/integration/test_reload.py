"""`chargewatch run` as a process: what it loaded is logged, SIGHUP reloads rules,
tariffs and fleet, and a broken file keeps the previous set with its file:line:col."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.services import Mosquitto, free_port

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]

RULE = """\
groups:
- name: reload-test
  interval: 1s
  rules:
  - alert: {name}
    expr: 'max_power_w > 0'
    labels:
      severity: warning
    annotations:
      summary: rule {name} is loaded
"""

FLEET = """\
sites:
- id: s1
  timezone: Europe/Amsterdam
chargers:
{chargers}"""


def _chargers(*ids: str) -> str:
    return "".join(f"- id: {c}\n  site: s1\n  max_power_w: 11000\n" for c in ids)


def _wait(check: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.HTTPError):
            if check():
                return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


class Running:
    def __init__(self, base: str, log: Path) -> None:
        self.base = base
        self.log = log

    def get(self, path: str) -> Any:
        r = httpx.get(f"{self.base}{path}", timeout=2)
        r.raise_for_status()
        return r.json() if path.startswith("/api") else r.text

    def alertnames(self) -> set[str]:
        return {a["labels"]["alertname"] for a in self.get("/api/v1/alerts")["alerts"]}

    def chargers(self) -> set[str]:
        return {c["charger"] for c in self.get("/api/v1/fleet")["connectors"]}

    def metric(self, name: str, config: str) -> float | None:
        m = re.search(rf'^{name}{{config="{config}"}} (\S+)$', self.get("/metrics"), re.M)
        return float(m.group(1)) if m else None


@pytest.fixture
def run(tmp_path: Path, mosquitto: Mosquitto) -> Iterator[tuple[Running, subprocess.Popen[bytes]]]:
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "test.yaml").write_text(RULE.format(name="RuleBefore"))
    (tmp_path / "tariffs").mkdir()
    shutil.copy(ROOT / "tariffs" / "flat_energy.json", tmp_path / "tariffs")
    (tmp_path / "fleet.yaml").write_text(FLEET.format(chargers=_chargers("RL-1")))
    port = free_port()
    (tmp_path / "chargewatch.yaml").write_text(
        f"data_dir: data\nrules: rules\ntariffs: tariffs\nfleet: fleet.yaml\n"
        f"mqtt:\n  host: 127.0.0.1\n  port: {mosquitto.port}\n  client_id: reload-{port}\n"
        f"http:\n  listen: 127.0.0.1:{port}\n"
    )
    log = tmp_path / "run.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "chargewatch", "run", "--config", "chargewatch.yaml"],
            cwd=tmp_path,
            env=dict(os.environ, PYTHONPATH=str(ROOT)),
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    svc = Running(f"http://127.0.0.1:{port}", log)
    try:
        _wait(lambda: "RuleBefore" in svc.alertnames(), "the first rule to fire")
        yield svc, proc
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
    assert proc.returncode == 0, log.read_text()


def test_start_logs_what_was_loaded(run: tuple[Running, subprocess.Popen[bytes]]) -> None:
    svc, _ = run
    text = svc.log.read_text()
    assert "loaded rules: 1 groups, 1 rules from 1 files" in text
    assert "reload-test (1)" in text
    assert re.search(r"loaded tariffs: 1 from \S*tariffs: \S+", text)
    assert "loaded fleet: 1 sites, 1 chargers, 1 connectors" in text
    assert "loaded sinks: " in text and "ledger " in text and "alert log" in text


def test_sighup_reloads_and_a_broken_file_keeps_the_previous_set(
    run: tuple[Running, subprocess.Popen[bytes]], tmp_path: Path
) -> None:
    svc, proc = run
    assert svc.metric("chargewatch_config_last_reload_success", "rules") == 1.0
    # Changed rules and fleet; the fleet is read again only on SIGHUP.
    (tmp_path / "rules" / "test.yaml").write_text(RULE.format(name="RuleAfter"))
    (tmp_path / "fleet.yaml").write_text(FLEET.format(chargers=_chargers("RL-1", "RL-2")))
    proc.send_signal(signal.SIGHUP)
    _wait(lambda: "RuleAfter" in svc.alertnames(), "the new rule to fire")
    _wait(lambda: svc.chargers() == {"RL-1", "RL-2"}, "the reloaded fleet")
    assert "RuleBefore" not in svc.alertnames()
    for config in ("rules", "tariffs", "fleet"):
        assert svc.metric("chargewatch_config_last_reload_success", config) == 1.0
        assert f'chargewatch_config_reloads_total{{config="{config}",result="ok"}} 1.0' in (
            svc.get("/metrics")
        )
    ok_at = svc.metric("chargewatch_config_last_reload_success_timestamp_seconds", "fleet")
    assert ok_at is not None and ok_at > time.time() - 60

    # Broken: a rule with a bad expression, a fleet with a bad time zone.
    (tmp_path / "rules" / "test.yaml").write_text(
        RULE.format(name="RuleBroken").replace("max_power_w > 0", "max_power_w >")
    )
    (tmp_path / "fleet.yaml").write_text(
        FLEET.format(chargers=_chargers("RL-1")).replace("Europe/Amsterdam", "Mars/Olympus")
    )
    proc.send_signal(signal.SIGHUP)
    _wait(
        lambda: svc.metric("chargewatch_config_last_reload_success", "fleet") == 0.0,
        "the failed reload",
    )
    _wait(lambda: svc.metric("chargewatch_config_last_reload_success", "rules") == 0.0, "rules")
    text = svc.log.read_text()
    assert "rule reload failed; keeping the previous rules" in text
    assert re.search(r"rules/test\.yaml:\d+:\d+:", text), text[-2000:]
    assert "fleet reload failed; keeping the previous fleet" in text
    assert re.search(r"fleet\.yaml:\d+:\d+: sites\[0\]\.timezone", text), text[-2000:]
    time.sleep(2.5)  # two evaluations of the 1 s group: the old rule still fires
    assert svc.alertnames() == {"RuleAfter"}
    assert svc.chargers() == {"RL-1", "RL-2"}
    assert svc.metric("chargewatch_config_last_reload_success", "tariffs") == 1.0
