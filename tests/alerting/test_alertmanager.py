"""Integration: the engine's notifications, delivered to a real Alertmanager."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from chargewatch.alerting import AlertEngine
from chargewatch.alerting.state import Notification
from chargewatch.alerting.testing import make_frame
from chargewatch.notify.notifiers import AlertmanagerNotifier
from tests.services import Alertmanager

pytestmark = pytest.mark.integration

RULE = """\
groups:
  - name: am-it
    interval: 1s
    rules:
      - alert: OverTemperatureIT
        expr: temperature_c > 80
        labels: {severity: critical, fault: over_temperature}
        annotations:
          summary: "{{ $labels.charger }}/{{ $labels.connector }} is at {{ $value }} C"
"""


def _alerts(am: Alertmanager) -> list[dict[str, object]]:
    return am.alerts(filter='alertname="OverTemperatureIT"')


def test_firing_alert_appears_with_labels_then_resolves(
    alertmanager: Alertmanager, tmp_path: Path
) -> None:
    (tmp_path / "it.yaml").write_text(RULE)
    engine = AlertEngine(tmp_path, resend_delay_s=60)
    notifier = AlertmanagerNotifier(alertmanager.url, retries=1, backoff_s=0.1)
    # Alertmanager judges endsAt by its own clock, so the engine runs on real time here.
    t0 = time.time() - 10
    hot = make_frame([("CP-IT", 2)], site="depot", temperature_c=95.0)
    fired = engine.evaluate(t0, hot)
    assert [t.state for t in fired] == ["firing"]
    assert notifier.send(engine.notifications())

    alerts = _alerts(alertmanager)
    assert len(alerts) == 1
    assert alerts[0]["labels"] == {
        "alertname": "OverTemperatureIT",
        "charger": "CP-IT",
        "connector": "2",
        "site": "depot",
        "severity": "critical",
        "fault": "over_temperature",
    }
    assert alerts[0]["annotations"] == {"summary": "CP-IT/2 is at 95 C"}
    assert alerts[0]["status"] == {"state": "active", "silencedBy": [], "inhibitedBy": []}

    cool = make_frame([("CP-IT", 2)], site="depot", temperature_c=40.0)
    resolved = engine.evaluate(t0 + 5, cool)  # endsAt = t0 + 5, already past for Alertmanager
    assert [t.state for t in resolved] == ["resolved"]
    sent = engine.notifications()
    assert [n.status for n in sent] == ["resolved"]
    assert notifier.send(sent)
    assert _alerts(alertmanager) == []


def test_unreachable_alertmanager_is_reported_not_raised() -> None:
    slept: list[float] = []
    notifier = AlertmanagerNotifier(
        "http://127.0.0.1:9", retries=2, backoff_s=0.5, sleep=slept.append
    )
    assert not notifier.send([Notification({"alertname": "X"}, {}, 0.0, 60.0)])
    assert slept == [0.5, 1.0]
