"""`chargewatch replay` over a simulated capture: alerts, rejections, capture time as the clock."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml

from chargewatch.cli import main
from chargewatch.collector.pipeline import Stats
from chargewatch.simulator import FaultSpec, SimConfig, Simulation
from chargewatch.storage.ledger import Ledger


def test_replay_writes_alerts_and_rejections(tmp_path: Path) -> None:
    sim = Simulation(
        SimConfig(
            chargers=6,
            duration=3 * 3600,
            interval=10.0,
            protocol="ocpp1.6",
            seed=3,
            faults=(FaultSpec("GroundFailure", "CP0002", 1, start=1800, duration=1200),),
        )
    )
    capture = tmp_path / "capture.jsonl"
    sim.write_capture(str(capture))
    sim.write_fleet(str(tmp_path / "fleet.yaml"))
    # Bad lines interleaved in the capture: each must be rejected with a reason.
    lines = capture.read_bytes().splitlines()
    at = orjson.loads(lines[100])["ts"]
    bad = [
        {"ts": at, "topic": "ocpp/1.6/CP0001/cp", "payload": "[2, broken"},
        {"ts": at, "topic": "ev/CP0001/1/meter", "payload": {"ts": 1.0, "power_w": 5}},
        {"ts": at, "topic": "ocpp/1.6/CP0001/cp", "payload": [2, "x1", "MeterValues", {}]},
    ]
    lines[101:101] = [orjson.dumps(b) for b in bad]
    capture.write_bytes(b"\n".join(lines) + b"\n")
    out = tmp_path / "out"
    assert (
        main(["replay", str(capture), "--out", str(out), "--fleet", str(tmp_path / "fleet.yaml")])
        == 0
    )

    rejected = [orjson.loads(x) for x in (out / "rejected.jsonl").read_bytes().splitlines()]
    decoded = [r for r in rejected if not r["topic"].startswith("sessions/")]
    assert sorted(r["reason"] for r in decoded) == [
        "malformed_json",
        "schema_violation",
        "timestamp_before_2010",  # ts 1.0: the OCPP decoder's code for the same
    ]
    # Sessions running when the capture starts end without a start the engine saw.
    assert {r["reason"] for r in rejected if r not in decoded} <= {"stop_without_session"}
    alerts = [orjson.loads(x) for x in (out / "alerts.jsonl").read_bytes().splitlines()]
    ground = [a for a in alerts if a["alertname"] == "OcppGroundFailure"]
    assert [a["state"] for a in ground] == ["firing", "resolved"]
    assert ground[0]["labels"]["charger"] == "CP0002"
    # Capture time is the clock: the alert fires after the fault starts (plus the
    # rule's `for:`) and resolves after it ends, in capture time.
    start = sim.config.start
    fired = ground[0]["at"]
    resolved = ground[1]["at"]
    t_fire = datetime.fromisoformat(fired).timestamp() - start
    t_res = datetime.fromisoformat(resolved).timestamp() - start
    assert 1800 < t_fire < 1800 + 300
    assert 3000 <= t_res < 3000 + 300
    # uptime.jsonl: one line per port; the ground fault is CP0002/1's one outage.
    uptime = [orjson.loads(x) for x in (out / "uptime.jsonl").read_bytes().splitlines()]
    fleet = yaml.safe_load((tmp_path / "fleet.yaml").read_text())
    ports = sum(int(c.get("connectors", 1)) for c in fleet["chargers"])
    assert len(uptime) == ports
    line = next(u for u in uptime if (u["charger_id"], u["connector_id"]) == ("CP0002", "1"))
    assert set(line) == {
        "charger_id",
        "connector_id",
        "window_start",
        "window_end",
        "uptime_pct",
        "outage_min",
        "excluded_min",
        "outages",
    }
    (outage,) = line["outages"]
    assert outage["evidence"]["error_codes"] == ["GroundFailure"]
    assert outage["evidence"]["mrec"] == ["CX002"]  # the label rules/error_codes.yaml adds
    # The outage runs from the first signal (the Faulted status, kept in the ledger's
    # status history) to the status that cleared it (the alert resolves at the
    # evaluation after it, which carries that time), counted once.
    with Ledger(out / "ledger.sqlite", read_only=True) as ledger:
        history = ledger.db.execute(
            "SELECT at, status, error_code FROM port_status"
            " WHERE charger = 'CP0002' AND connector = '1' ORDER BY at"
        ).fetchall()
    faulted = next(at for at, status, code in history if status == "Faulted")
    assert [code for at, status, code in history if at == faulted] == ["GroundFailure"]
    assert 1800 <= faulted - start < 1800 + 60  # the fault's start, not the alert's
    assert outage["evidence"]["alerts"] == ["OcppGroundFailure", "status"]
    assert outage["start"] == pytest.approx(faulted)
    cleared = next(at for at, status, code in history if at > faulted and status != "Faulted")
    assert faulted < cleared <= start + t_res  # the resolution comes at or after it
    assert line["outage_min"] == pytest.approx((cleared - faulted) / 60.0)
    window_min = (line["window_end"] - line["window_start"]) / 60.0
    assert line["uptime_pct"] == pytest.approx((window_min - line["outage_min"]) / window_min * 100)


def test_replay_writes_sessions_and_priced_cdrs_idempotently(tmp_path: Path) -> None:
    sim = Simulation(
        SimConfig(
            chargers=8,
            duration=24 * 3600,
            interval=60.0,
            seed=5,
            protocol="ocpp1.6",
            arrival_rate=3.0,
        )
    )
    capture = tmp_path / "capture.jsonl"
    sim.write_capture(str(capture))
    fleet = tmp_path / "fleet.yaml"
    sim.write_fleet(str(fleet))
    # every site on the flat tariff, but the first site has none: its sessions are unpriced
    doc = yaml.safe_load(fleet.read_text())
    for k, site in enumerate(doc["sites"]):
        if k:
            site["tariff"] = "flat-energy"
    fleet.write_text(yaml.safe_dump(doc))
    tariffs = Path(__file__).resolve().parents[2] / "tariffs"
    out = tmp_path / "out"
    args = [
        "replay",
        str(capture),
        "--out",
        str(out),
        "--fleet",
        str(fleet),
        "--tariffs",
        str(tariffs),
    ]
    assert main(args) == 0
    sessions = [orjson.loads(x) for x in (out / "sessions.jsonl").read_bytes().splitlines()]
    cdrs = [orjson.loads(x) for x in (out / "cdrs.jsonl").read_bytes().splitlines()]
    truth = [s for s in sim.truth().sessions if s.start >= sim.config.start]
    assert sessions and cdrs
    unpriced_site = doc["sites"][0]["id"]
    priced = [s for s in sessions if s["site"] != unpriced_site]
    assert len(cdrs) == len(priced)
    by_session = {c["session_id"]: c for c in cdrs}
    for s in priced:
        c = by_session[s["session_id"]]
        # flat-energy: energy priced at the tariff's price, totals consistent
        assert float(c["total_energy"]) == pytest.approx(s["energy_wh"] / 1000, abs=1e-4)
        assert float(c["total_cost"]["excl_vat"]) > 0 or s["energy_wh"] < 1
    assert len(sessions) >= len(truth) - 2
    first = (out / "sessions.jsonl").read_bytes(), (out / "cdrs.jsonl").read_bytes()
    assert main(args) == 0  # again, into the same ledger: the same files, no new CDRs
    assert ((out / "sessions.jsonl").read_bytes(), (out / "cdrs.jsonl").read_bytes()) == first


def test_replay_takes_the_billing_policy_and_files_from_the_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue #18: replay built its session engine without billing.energy_policy."""
    import chargewatch.collector.replay as replay_module  # noqa: PLC0415 - patched below

    seen: dict[str, Any] = {}

    def fake_replay(capture: Any, out: Path, **kwargs: Any) -> Any:
        list(capture)  # the progress wrapper reads the file
        seen.update(kwargs)
        return replay_module.ReplayResult(Stats(), 1.0, 0.0)

    monkeypatch.setattr(replay_module, "replay", fake_replay)
    capture = tmp_path / "capture.jsonl"
    capture.write_text("")
    (tmp_path / "tariffs").mkdir()
    config = tmp_path / "config.yaml"
    config.write_text("billing:\n  energy_policy: register\ntariffs: tariffs\n")
    out = str(tmp_path / "o")
    assert main(["replay", str(capture), "--out", out, "--config", str(config)]) == 0
    assert seen["session_config"].energy_policy == "register"
    assert seen["tariffs"] == tmp_path / "tariffs"


def _small_sim(tmp_path: Path) -> tuple[Path, dict[str, Any]]:
    sim = Simulation(
        SimConfig(chargers=3, duration=6 * 3600, interval=60.0, seed=1, arrival_rate=12.0)
    )
    capture = tmp_path / "capture.jsonl"
    sim.write_capture(str(capture))
    fleet = tmp_path / "fleet.yaml"
    sim.write_fleet(str(fleet))
    return capture, yaml.safe_load(fleet.read_text())


def test_replay_fails_at_load_on_an_unknown_tariff_id(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Issue #18: a typo in fleet.yaml's tariff ids gave no warning and no CDRs."""
    capture, doc = _small_sim(tmp_path)
    doc["chargers"][1]["tariff"] = "flat-enrgy"  # CP0002: sessions finish in the capture
    fleet = tmp_path / "fleet.yaml"
    fleet.write_text(yaml.safe_dump(doc))
    tariffs = Path(__file__).resolve().parents[2] / "tariffs"
    out = tmp_path / "out"
    args = ["replay", str(capture), "--out", str(out), "--fleet", str(fleet)]
    assert main([*args, "--tariffs", str(tariffs)]) == 2
    err = capsys.readouterr().err
    assert f"{fleet}:" in err and "chargers[1].tariff: unknown tariff 'flat-enrgy'" in err
    assert not out.exists()  # refused before anything was written

    # billing.unknown_tariffs: warn (a tariff not yet published): replayed, and
    # the sessions without a CDR are counted in the summary.
    config = tmp_path / "config.yaml"
    config.write_text(f"billing:\n  unknown_tariffs: warn\ntariffs: {tariffs}\n")
    assert main([*args, "--config", str(config)]) == 0
    summary = json.loads(capsys.readouterr().out)
    sessions = [orjson.loads(x) for x in (out / "sessions.jsonl").read_bytes().splitlines()]
    unpriced = [s for s in sessions if s["charger_id"] == doc["chargers"][1]["id"]]
    assert unpriced and summary["unpriced_sessions"] >= len(unpriced)
    assert summary["unpriced_by_reason"]["no_tariff"] == summary["unpriced_sessions"]
    assert any("unknown tariff 'flat-enrgy'" in w for w in summary["tariff_warnings"])


def _hourly_heartbeats(path: Path, hours: int) -> None:
    """A 1.6 charger that booted before the capture: only its hourly heartbeat,
    and a StatusNotification for connector 3 (over a lowered max_connector)."""
    lines = []
    for k in range(1, hours + 1):
        t = f"2026-03-02T{8 + k:02d}:00:00.000Z"
        lines.append(
            {"ts": t, "topic": "ocpp/1.6/CPH/cp", "payload": [2, f"h{k}", "Heartbeat", {}]}
        )
        lines.append(
            {"ts": t, "topic": "ocpp/1.6/CPH/csms", "payload": [3, f"h{k}", {"currentTime": t}]}
        )
    status = {"connectorId": 3, "status": "Available", "errorCode": "NoError"}
    lines.insert(1, {"ts": "2026-03-02T09:00:01.000Z", "topic": "ocpp/1.6/CPH/cp",
                     "payload": [2, "s1", "StatusNotification", status]})  # fmt: skip
    path.write_text("".join(json.dumps(x) + "\n" for x in lines))


def test_replay_takes_detector_parameters_and_ocpp_limits_from_the_config(tmp_path: Path) -> None:
    # Replay judged with the default detector parameters and decoder limits
    # whatever the config said: a fleet whose CSMS sets an hourly heartbeat got
    # the ChargerOffline page live would not give, and the other way round.
    capture = tmp_path / "hb.jsonl"
    _hourly_heartbeats(capture, 5)

    def fired(out: Path) -> list[str]:
        rows = [json.loads(x) for x in (out / "alerts.jsonl").read_text().splitlines()]
        return [r["alertname"] for r in rows if r["state"] == "firing"]

    def rejected(out: Path) -> list[str]:
        rows = [json.loads(x) for x in (out / "rejected.jsonl").read_text().splitlines()]
        return [r["reason"] for r in rows]

    assert main(["replay", str(capture), "--out", str(tmp_path / "a")]) == 0
    assert fired(tmp_path / "a") == ["ChargerOffline"]  # the first hour's gap: 2 x 900 s + 30 s
    assert rejected(tmp_path / "a") == []
    config = tmp_path / "cw.yaml"
    config.write_text(
        "detectors:\n  defaults:\n    charger_offline:\n      assumed_interval_s: 3600\n"
        "ocpp:\n  max_connector: 2\n"
    )
    out = tmp_path / "b"
    assert main(["replay", str(capture), "--out", str(out), "--config", str(config)]) == 0
    assert fired(out) == []
    assert len(rejected(out)) == 1
