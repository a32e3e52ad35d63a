"""AlertEngine: group intervals, hot reload, persistence across a restart."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest

from chargewatch.alerting import AlertEngine
from chargewatch.alerting.testing import make_frame, step
from chargewatch.core.errors import ConfigError
from chargewatch.model.fleet import ChargerSpec, ConnectorIndex, Fleet, SiteSpec

RULES = """\
groups:
  - name: g
    interval: 1m
    rules:
      - alert: Hot
        expr: temperature_c > {limit}
        for: 3m
        labels: {{severity: warning}}
        annotations: {{summary: "{{{{ $labels.charger }}}} hot"}}
"""


def write(d: Path, limit: int = 80) -> None:
    (d / "hot.yaml").write_text(RULES.format(limit=limit))


HOT = make_frame([("CP1", 1)], site="depot", temperature_c=90.0)


def test_groups_run_on_their_interval_however_often_evaluate_is_called(tmp_path: Path) -> None:
    write(tmp_path)
    engine = AlertEngine(tmp_path)
    # Called every 10s; the 1m group and its 3m `for` still fire at 3m.
    fired = step(engine, HOT, start=0, interval=10, steps=25)
    assert [(t.at, t.state) for t in fired] == [(180.0, "firing")]


def test_a_group_keeps_its_grid_when_its_evaluations_run_late(tmp_path: Path) -> None:
    # The shipped shape: a 10 s group, `for: 1m`; evaluate called every 5 s,
    # each call up to 4.9 s late (replay's 5 s chunks; live, a tick). The group
    # is due on its grid (0, 10, 20, ...) and `for:` counts grid time: hot from
    # 12 s, pending at the 20 s evaluation (run at 20.2), firing at the 80 s one
    # (run at 80.0). Scheduled from the late times themselves, the group ran at
    # 0, 10.3, 29.7 (20.x came 0.1 s too early), ... so it went pending at 29.7
    # and fired at 89.9: one interval late.
    (tmp_path / "hot.yaml").write_text(
        RULES.replace("1m", "10s").replace("3m", "1m").format(limit=80)
    )
    engine = AlertEngine(tmp_path)
    cold = make_frame([("CP1", 1)], site="depot", temperature_c=40.0)
    late = [0.0, 4.9, 0.3, 4.8, 0.2, 4.7, 0.1, 4.9]
    fired = []
    for k in range(40):
        now = 5.0 * k + late[k % len(late)]
        fired += engine.evaluate(now, HOT if now >= 12.0 else cold)
    assert [(t.at, t.state) for t in fired] == [(80.0, "firing")]
    (alert,) = engine.active()
    assert alert.active_at == 20.2  # shown: when it happened, not the grid


def test_broken_reload_keeps_previous_rules_and_says_so(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    write(tmp_path)
    engine = AlertEngine(tmp_path)
    assert engine.ruleset.reload_ok
    assert engine.maybe_reload(0.0) is None  # nothing changed
    (tmp_path / "hot.yaml").write_text(RULES.format(limit="") + "      - alert: Bad\n")
    with caplog.at_level(logging.ERROR, "chargewatch.alerting"):
        assert engine.maybe_reload(1.0) is False
    assert not engine.ruleset.reload_ok
    assert "keeping the previous rules" in caplog.text and "hot.yaml:" in caplog.text
    assert engine.maybe_reload(2.0) is None  # logged once, not on every poll
    assert [t.state for t in step(engine, HOT, start=0, interval=60, steps=4)] == ["firing"]
    write(tmp_path, limit=85)
    assert engine.maybe_reload(300.0) is True
    assert engine.ruleset.reload_ok and engine.ruleset.reload_success_at == 300.0
    assert engine.rules[0].expr.text == "temperature_c > 85"


def test_reload_carries_alert_state_so_nothing_re_pages(tmp_path: Path) -> None:
    write(tmp_path)
    engine = AlertEngine(tmp_path)
    step(engine, HOT, start=0, interval=60, steps=4)  # firing at 3m
    write(tmp_path, limit=85)
    (tmp_path / "hot.yaml").touch()
    assert engine.reload(240.0)
    assert (
        step(engine, HOT, start=240, interval=60, steps=3) == []
    )  # still firing, no new transition
    assert len(engine.active()) == 1


def test_bad_rules_at_startup_raise(tmp_path: Path) -> None:
    (tmp_path / "x.yaml").write_text("groups: [{name: g, rules: [{alert: X, expr: 'nope >'}]}]\n")
    with pytest.raises(ConfigError):
        AlertEngine(tmp_path)


def test_snapshot_restore_survives_a_restart_mid_for(tmp_path: Path) -> None:
    write(tmp_path)
    before = AlertEngine(tmp_path)
    step(before, HOT, start=0, interval=60, steps=2)  # pending since 0
    saved = json.loads(json.dumps(before.snapshot()))  # the ledger stores JSON
    after = AlertEngine(tmp_path)
    after.restore(saved)
    fired = step(after, HOT, start=120, interval=60, steps=2)
    assert [(t.at, t.state) for t in fired] == [(180.0, "firing")]  # not 120 + 3m


def test_inventory_and_labels_come_from_the_connector_index(tmp_path: Path) -> None:
    write(tmp_path)
    fleet = Fleet(
        {"north": SiteSpec("north")}, {"CP9": ChargerSpec("CP9", site="north", connectors=2)}
    )
    index = ConnectorIndex(fleet)
    engine = AlertEngine(tmp_path, index)
    frame = {"temperature_c": np.array([20.0, 95.0])}
    fired = step(engine, frame, start=0, interval=60, steps=4)
    assert [t.labels for t in fired] == [
        {
            "charger": "CP9",
            "connector": "2",
            "site": "north",
            "severity": "warning",
            "alertname": "Hot",
        }
    ]
    assert fired[0].to_json()["at"] == "1970-01-01T00:03:00Z"
    assert fired[0].annotations == {"summary": "CP9 hot"}


def test_a_deadline_signal_is_judged_at_once_off_the_grid(tmp_path: Path) -> None:
    # A 10 s group evaluated at 0, 10, 20, ...; charger_offline turns true at
    # 13.7 (the detector's deadline). Told so (changed=...), the `for: 0s` rule
    # that reads it fires at 13.7, not at 20; the `for: 30s` one on the same
    # signal and the other rule of the group wait for the grid, which stays
    # where it was (the next evaluation at 20, its `for` counted from there).
    (tmp_path / "r.yaml").write_text(
        "groups:\n"
        "  - name: g\n"
        "    interval: 10s\n"
        "    rules:\n"
        "      - alert: Offline\n"
        "        expr: charger_offline\n"
        "      - alert: OfflineLong\n"
        "        expr: charger_offline\n"
        "        for: 30s\n"
        "      - alert: Hot\n"
        "        expr: temperature_c > 80\n"
    )
    engine = AlertEngine(tmp_path)

    def frame(offline: bool) -> dict[str, np.ndarray]:
        f = make_frame([("CP1", 1)], site="depot", temperature_c=90.0)
        return {**f, "charger_offline": np.array([offline])}

    fired: list[tuple[float, str]] = []
    for now, offline, changed in [
        (0.0, False, ()),
        (10.0, False, ()),
        (13.7, True, ("charger_offline",)),
        (20.0, True, ()),
        (50.0, True, ()),
    ]:
        ts = engine.evaluate(now, frame(offline), changed)
        fired += [(t.at, t.alertname) for t in ts if t.state == "firing"]
    assert fired == [(0.0, "Hot"), (13.7, "Offline"), (50.0, "OfflineLong")]
    (g,) = engine.groups
    assert g.last_eval == 50.0
    (note,) = [n for n in engine.notifications() if n.labels["alertname"] == "Offline"]
    assert note.starts_at == 13.7
