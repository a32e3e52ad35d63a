"""Remediation planner: command intents once per attempt, outcome recorded."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from chargewatch.alerting import AlertEngine
from chargewatch.alerting.remediation import load_allowlist, ocpp_payload
from chargewatch.alerting.testing import make_frame
from chargewatch.core.errors import ConfigError

RULES = """\
groups:
  - name: fix
    interval: 1m
    rules:
      - alert: OcppInternalError
        expr: error_code == "InternalError"
        labels: {severity: warning, error_code: InternalError}
        actions:
          - command: Reset
            params: {type: Soft}
            delay: 1m
            max_attempts: 2
            cooldown: 5m
"""


@pytest.fixture
def engine(tmp_path: Path) -> AlertEngine:
    (tmp_path / "fix.yaml").write_text(RULES)
    return AlertEngine(tmp_path, allowlist={"depot": ["Reset"]})


def frame(code: str, site: str = "depot", version: str = "1.6") -> dict[str, Any]:
    f = make_frame([("CP1", 2)], site=site, error_code=code)
    f["ocpp_version"][:] = version
    return f


Step = tuple[float, str, dict[str, str]]


def run(
    engine: AlertEngine, codes: list[str], start: int = 0, **kw: str
) -> tuple[list[Step], list[Any]]:
    """Evaluate once a minute from minute ``start`` with these error codes."""
    transitions: list[Step] = []
    commands: list[Any] = []
    for i, code in enumerate(codes, start):
        now = i * 60.0
        ts = engine.evaluate(now, frame(code, **kw))
        transitions += [(t.at, t.state, t.labels | t.annotations) for t in ts]
        commands += engine.commands(now)
    return transitions, commands


def test_unfixed_fault_gets_each_attempt_once_then_escalates(engine: AlertEngine) -> None:
    transitions, commands = run(engine, ["InternalError"] * 14)
    assert [(c.at, c.attempt, c.topic) for c in commands] == [
        (60.0, 1, "ocpp/1.6/CP1/command"),
        (360.0, 2, "ocpp/1.6/CP1/command"),
    ]
    frame0 = json.loads(commands[0].frame)
    assert frame0[0] == 2 and frame0[2:] == ["Reset", {"type": "Soft"}]
    assert frame0[1] != json.loads(commands[1].frame)[1]
    assert [
        (at, state, labels.get("severity"), labels.get("escalated"))
        for at, state, labels in transitions
    ] == [
        (0.0, "firing", "warning", None),
        (660.0, "resolved", "warning", None),
        (660.0, "firing", "critical", "true"),
    ]
    assert "remediation failed after 2 attempt(s)" in transitions[2][2]["remediation"]
    assert transitions[1][2]["remediation"] == "escalated after 2 failed attempt(s)"
    # The escalated alert keeps firing while the fault lasts, and resolves with it.
    more, _ = run(engine, ["InternalError", "NoError"], 14)
    assert [(s, lab.get("severity")) for _, s, lab in more] == [("resolved", "critical")]


def test_fault_cleared_after_the_action_resolves_as_auto_remediated(engine: AlertEngine) -> None:
    transitions, commands = run(
        engine, ["InternalError", "InternalError", "InternalError", "NoError"]
    )
    assert len(commands) == 1
    assert transitions[-1][1] == "resolved"
    assert transitions[-1][2]["remediation"] == "auto-remediated by Reset (attempt 1)"
    sent = [n for n in engine.notifications() if n.status == "resolved"]
    assert sent and sent[0].annotations["remediation"].startswith("auto-remediated")


def test_commands_not_allowlisted_for_the_site_are_never_sent(engine: AlertEngine) -> None:
    transitions, commands = run(engine, ["InternalError"] * 14, site="elsewhere")
    assert commands == []
    assert [s for _, s, _ in transitions] == ["firing"]  # nothing was tried, so nothing escalates


def test_ocpp_201_dialect(engine: AlertEngine) -> None:
    _, commands = run(engine, ["InternalError"] * 2, version="2.0.1")
    [cmd] = commands
    assert cmd.topic == "ocpp/2.0.1/CP1/command"
    assert json.loads(cmd.frame)[2:] == ["Reset", {"type": "OnIdle"}]
    assert ocpp_payload("UnlockConnector", {}, 2, "1.6") == {"connectorId": 2}
    assert ocpp_payload("ChangeAvailability", {}, 2, "2.0.1") == {
        "operationalStatus": "Inoperative",
        "evse": {"id": 2},
    }


def test_attempts_survive_a_restart(engine: AlertEngine, tmp_path: Path) -> None:
    _, commands = run(engine, ["InternalError"] * 3)
    assert len(commands) == 1
    saved = json.loads(json.dumps(engine.snapshot()))
    again = AlertEngine(tmp_path, allowlist={"depot": ["Reset"]})
    again.restore(saved)
    _, later = run(again, ["InternalError"] * 4, 3)
    assert [c.attempt for c in later] == [2]


def test_allowlist_file(tmp_path: Path) -> None:
    (tmp_path / "ok.yaml").write_text("sites:\n  depot: [Reset, UnlockConnector]\n  '*': [Reset]\n")
    assert load_allowlist(tmp_path / "ok.yaml") == {
        "depot": ["Reset", "UnlockConnector"],
        "*": ["Reset"],
    }
    (tmp_path / "bad.yaml").write_text("sites:\n  depot: [Reboot]\n")
    with pytest.raises(ConfigError, match="unknown command 'Reboot'"):
        load_allowlist(tmp_path / "bad.yaml")
