"""The alert stage exports the rule set's reload health as metrics."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prometheus_client import REGISTRY

from chargewatch.alerting import AlertEngine
from chargewatch.alerting.remediation import Command
from chargewatch.alerting.testing import make_frame
from chargewatch.collector.alert_stage import AlertStage
from chargewatch.model.fleet import ConnectorIndex, Fleet
from chargewatch.state.fleet_state import FleetState

RULES = """groups:
  - name: g
    rules:
      - alert: Hot
        expr: temperature_c > {limit}
        labels: {{severity: warning}}
"""


def gauge(name: str) -> float | None:
    return REGISTRY.get_sample_value(name)


def test_reload_success_and_time_follow_the_rule_set(tmp_path: Path) -> None:
    (tmp_path / "hot.yaml").write_text(RULES.format(limit=80))
    index = ConnectorIndex(Fleet.empty())
    stage = AlertStage(AlertEngine(tmp_path, index), FleetState(index), reload_interval_s=1.0)
    assert gauge("chargewatch_rules_last_reload_success") == 1.0
    (tmp_path / "hot.yaml").write_text(RULES.format(limit="") + "      - alert: Bad\n")
    stage.tick(10.0)
    assert gauge("chargewatch_rules_last_reload_success") == 0.0
    (tmp_path / "hot.yaml").write_text(RULES.format(limit=85))
    stage.tick(20.0)
    assert gauge("chargewatch_rules_last_reload_success") == 1.0
    assert gauge("chargewatch_rules_last_reload_success_timestamp_seconds") == 20.0


FIX = """groups:
  - name: fix
    interval: 1m
    rules:
      - alert: OcppInternalError
        expr: error_code == "InternalError"
        labels: {severity: warning, error_code: InternalError}
        actions:
          - {command: Reset, params: {type: Soft}, delay: 1m, max_attempts: 2, cooldown: 5m}
"""


def test_one_command_that_cannot_be_published_does_not_block_the_others(tmp_path: Path) -> None:
    (tmp_path / "fix.yaml").write_text(FIX)
    index = ConnectorIndex(Fleet.empty())
    engine = AlertEngine(tmp_path, index, allowlist={"*": ["Reset"]})
    state = FleetState(index)
    index.id("CP1", 1), index.id("CP2", 1)
    sent: list[str] = []

    def publish(cmd: Command) -> None:
        if cmd.charger == "CP1":
            raise ValueError("Invalid topic")  # what paho raises for a topic it refuses
        sent.append(cmd.charger)

    def faulted(now: float) -> dict[str, Any]:
        f = make_frame([("CP1", 1), ("CP2", 1)], site="depot", error_code="InternalError")
        f["ocpp_version"][:] = "1.6"
        return f

    errors = gauge("chargewatch_remediation_publish_errors_total") or 0.0
    stage = AlertStage(engine, state, providers=[faulted], publish=publish)
    for minute in range(4):
        stage.tick(minute * 60.0)
    assert sent == ["CP2"]
    assert gauge("chargewatch_remediation_publish_errors_total") == errors + 1
