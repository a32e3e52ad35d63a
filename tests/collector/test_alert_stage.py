"""The alert stage exports the rule set's reload health as metrics."""

from __future__ import annotations

from pathlib import Path

from prometheus_client import REGISTRY

from chargewatch.alerting import AlertEngine
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
