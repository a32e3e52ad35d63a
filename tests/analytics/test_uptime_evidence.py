"""Ledger migration 12 for uptime (issue 22): an offline outage starts at the
charger's last sign of life (``alert_transitions.evidence_start``), and the MREC
code a charger stated has its own ``port_status.mrec`` column. Worked out by hand."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

from chargewatch.alerting import Transition
from chargewatch.analytics.uptime import Port, alert_signals, port_uptime
from chargewatch.collector.alert_stage import EVIDENCE_START, note_evidence_start, transition_row
from chargewatch.storage import ledger as ledger_module
from chargewatch.storage.ledger import MIGRATIONS, Ledger
from chargewatch.storage.ledger_copy import columns
from chargewatch.storage.uptime_source import load_status_changes, load_uptime_inputs
from tests.analytics.helpers import H, ts

T0 = ts("2024-03-04 00:00")
OFF = {"charger": "C1", "site": "S1", "severity": "critical", "fault": "charger_offline"}
OFF0 = {**OFF, "connector": "0"}


def _offline(at: float, state: str, evidence: float | None = None) -> dict[str, Any]:
    return {
        "at": at,
        "state": state,
        "alertname": "ChargerOffline",
        "labels": OFF0,
        "evidence_start": evidence,
    }


def test_an_offline_outage_runs_from_the_last_sign_of_life_to_the_return() -> None:
    # Last message 02:00; silent for the 150 s timeout, so the alert fires at
    # 02:02:30; back at 03:00, resolved 2 min later (keep_firing_for). Down
    # 02:00-03:00, 60 min of the 10 h window: 90 %.
    port = Port("C1", "1")
    fired = [
        _offline(T0 + 2 * H + 150, "firing", T0 + 2 * H),
        _offline(T0 + 3 * H + 120, "resolved", T0 + 3 * H),
    ]
    row = port_uptime(port, alert_signals(fired, T0 + 10 * H), (), T0, T0 + 10 * H)
    assert row["outage_min"] == pytest.approx(60.0)
    assert row["uptime_pct"] == pytest.approx(90.0)
    ev = row["outages"][0]["evidence"]
    assert (ev["first_signal"], ev["last_signal"]) == (T0 + 2 * H, T0 + 3 * H)
    # Unknown (NULL, recorded before migration 12): firing to resolution, 59.5 min.
    fired[0]["evidence_start"] = fired[1]["evidence_start"] = None
    row = port_uptime(port, alert_signals(fired, T0 + 10 * H), (), T0, T0 + 10 * H)
    assert row["outage_min"] == pytest.approx(59.5)


def test_only_offline_outages_move_to_their_evidence() -> None:
    # An error-code alert's `for:` debounces a condition under which the port
    # may still have delivered: it keeps its firing time.
    labels = {"charger": "C1", "connector": "1", "severity": "critical", "error_code": "X"}
    t = [
        {"at": T0 + H, "state": "firing", "alertname": "E", "labels": labels,
         "evidence_start": T0},
        {"at": T0 + 2 * H, "state": "resolved", "alertname": "E", "labels": labels},
    ]  # fmt: skip
    (sig,) = alert_signals(t, T0 + 3 * H)
    assert (sig.start, sig.end) == (T0 + H, T0 + 2 * H)


def test_evidence_start_round_trips_through_the_ledger(ledger_url: str) -> None:
    with Ledger(ledger_url) as ledger:
        ledger.write_alert_transitions(
            [_offline(T0 + 2 * H + 150, "firing", T0 + 2 * H), _offline(T0 + 3 * H, "resolved")]
        )
        inputs = load_uptime_inputs(ledger, T0, T0 + 10 * H)
    assert [(p.charger, p.connector) for p in inputs.ports] == [("C1", "1")]
    (sig,) = inputs.signals
    assert (sig.start, sig.end, sig.kind) == (T0 + 2 * H, T0 + 3 * H, "offline")


def _before_12(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ledger_module, "MIGRATIONS", [m for m in MIGRATIONS if m[0] < 12])


def test_migration_12_splits_the_stated_mrec_into_its_column(
    ledger_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with monkeypatch.context() as m:
        _before_12(m)
        with Ledger(ledger_url) as old:
            assert old.version == 11
            assert "mrec" not in columns(old, "port_status")
            # What write_port_status stored before migration 12.
            for row in (
                ("C1", "1", 1000.0, "Faulted", "OtherError,CX005"),
                ("C1", "1", 1100.0, "Available", "NoError"),
                ("C1", "2", 1200.0, "Faulted", "GroundFailure"),
            ):
                old.db.execute("INSERT INTO port_status VALUES (?,?,?,?,?)", row)
            old.db.execute(
                "INSERT INTO alert_transitions VALUES (?,?,?,?,?,?)",
                (5.0, "firing", "ChargerOffline", "{}", "C1", "S1"),
            )
            # A reader of the old ledger still gets the stated code.
            _, codes = load_status_changes(old, 0.0, 2000.0)
            assert codes[(1000.0, "C1", "1")] == ("OtherError", "CX005")
    with Ledger(ledger_url) as new:
        assert new.version >= 12
        got = new.db.execute("SELECT at, error_code, mrec FROM port_status ORDER BY at").fetchall()
        assert [tuple(r) for r in got] == [
            (1000.0, "OtherError", "CX005"),
            (1100.0, "NoError", ""),
            (1200.0, "GroundFailure", ""),
        ]
        row = new.db.execute("SELECT evidence_start FROM alert_transitions").fetchone()
        assert row[0] is None  # old firings: not known, the firing time stands
        _, codes = load_status_changes(new, 0.0, 2000.0)
        assert codes[(1000.0, "C1", "1")] == ("OtherError", "CX005")
        assert codes[(1200.0, "C1", "2")] == ("GroundFailure", "")


def _transition(state: str, connector: int, fault: str = "charger_offline") -> Transition:
    labels = {"charger": "C1", "connector": "0", "fault": fault}
    return Transition(100.0, state, "ChargerOffline", labels, {"summary": "s"}, 1.0, connector)  # type: ignore[arg-type]


def test_the_alert_stage_notes_when_the_episode_began() -> None:
    own = {"summary": "s"}
    fired = _transition("firing", 1)
    fired.annotations = own
    gone = _transition("resolved", 1)
    no_episode = _transition("firing", 0)
    no_column = _transition("firing", 1, fault="meter_stuck")
    frame = {"charger_offline_for_s": np.array([math.nan, 150.0])}
    note_evidence_start([fired, gone, no_episode, no_column], frame, 1000.0)
    assert fired.annotations[EVIDENCE_START] == repr(850.0)
    assert own == {"summary": "s"}  # the alert's own annotations are not touched
    assert EVIDENCE_START not in gone.annotations
    assert EVIDENCE_START not in no_episode.annotations
    assert EVIDENCE_START not in no_column.annotations
    assert transition_row(fired)["evidence_start"] == repr(850.0)
    assert transition_row(gone)["evidence_start"] is None
    with Ledger(":memory:") as ledger:
        ledger.write_alert_transitions([transition_row(fired), transition_row(gone)])
        rows = ledger.db.execute(
            "SELECT state, evidence_start FROM alert_transitions ORDER BY state"
        ).fetchall()
    assert [tuple(r) for r in rows] == [("firing", 850.0), ("resolved", None)]


def test_a_silent_charger_fires_offline_with_its_last_sign_of_life() -> None:
    # The shipped rules and the liveness detector, end to end: a 1.6 charger sends a
    # status and a heartbeat at T0 + 1, then nothing; ChargerOffline fires a timeout
    # later (1,830 s: no heartbeat interval known, 900 s assumed for an OCPP
    # charger) and the firing carries T0 + 1, the last message's receive time.
    from chargewatch.alerting.engine import AlertEngine, default_rules_dir  # noqa: PLC0415
    from chargewatch.collector.alert_stage import AlertStage, detector_signals  # noqa: PLC0415
    from chargewatch.detectors import DetectorSet  # noqa: PLC0415
    from chargewatch.model.batch import MeterBatch  # noqa: PLC0415
    from chargewatch.state.fleet_state import FleetState  # noqa: PLC0415
    from tests.collector.ocpp_feed import T0 as F0  # noqa: PLC0415
    from tests.collector.ocpp_feed import Feed  # noqa: PLC0415

    feed = Feed("1.6").call(
        "StatusNotification",
        {"connectorId": 1, "status": "Available", "errorCode": "NoError"},
    )
    feed.call("Heartbeat", {}, msg_id="2")
    feed.index.id("CP1", 1)  # the collector's pipeline registers the connector
    detectors = DetectorSet(index=feed.index, faults=["charger_offline"])
    state = FleetState(feed.index)
    seen: list[Transition] = []
    stage = AlertStage(
        AlertEngine(default_rules_dir(), feed.index),
        state,
        providers=[detector_signals(detectors, feed.index)],
        on_transitions=seen.extend,
    )
    events = feed.events()
    detectors.on_batch(MeterBatch.empty(), events, F0 + 1)
    state.on_batch(MeterBatch.empty(), events, F0 + 1)
    for t in range(0, 2400, 10):
        detectors.tick(F0 + 1 + t)
        stage.tick(F0 + 1 + t)
    # Back at F0 + 2405 (a heartbeat); the rule keeps firing 2 min more.
    feed.sink.events.clear()
    feed.call("Heartbeat", {}, msg_id="3", recv=F0 + 2405)
    back = feed.events()
    detectors.on_batch(MeterBatch.empty(), back, F0 + 2405)
    state.on_batch(MeterBatch.empty(), back, F0 + 2405)
    for t in range(2410, 3000, 10):
        detectors.tick(F0 + t)
        stage.tick(F0 + t)
    mine = [t for t in seen if t.alertname == "ChargerOffline"]
    assert [t.state for t in mine] == ["firing", "resolved"]
    fired, gone = mine
    assert fired.at >= F0 + 1 + 1830  # fired a timeout after the silence began
    assert float(transition_row(fired)["evidence_start"]) == pytest.approx(F0 + 1, abs=1e-6)
    assert gone.at >= F0 + 2405 + 120
    # The condition cleared at the first evaluation after the return (10 s apart).
    assert F0 + 2405 <= float(transition_row(gone)["evidence_start"]) <= F0 + 2415
