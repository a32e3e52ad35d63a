from __future__ import annotations

import math
from itertools import pairwise

import numpy as np
import orjson
import pytest

from chargewatch.cli import main
from chargewatch.config.fleet_file import load_fleet
from chargewatch.model.batch import MeterBatch
from chargewatch.model.fleet import ConnectorIndex
from chargewatch.simulator import DEFAULT_START, FaultSpec, SimConfig, Simulation, parse_fault
from chargewatch.simulator.fault_models import FAULTS, TELEMETRY_FAULTS, parse_duration
from chargewatch.simulator.timeseries import Engine
from tests.simulator.helpers import by_topic_kind, meter_samples

QUIET = SimConfig(
    chargers=6,
    sites=2,
    seed=11,
    start=DEFAULT_START + 6 * 3600,
    duration=12 * 3600,
    interval=15.0,
    arrival_rate=3.0,
)


def test_same_seed_same_output_and_other_seed_differs() -> None:
    cfg = SimConfig(chargers=4, sites=2, seed=5, duration=4 * 3600, interval=20.0, random_faults=3)
    a = list(Simulation(cfg).messages())
    b = list(Simulation(cfg).messages())
    assert a == b
    c = list(Simulation(cfg.replace(seed=6)).messages())
    assert a != c


def test_register_delta_equals_integral_of_power() -> None:
    sim = Simulation(QUIET.with_scenario("quiet"))
    samples = meter_samples(sim.messages())
    charged = 0
    for key, c in samples.items():
        ts, e, p = c["ts"], c["energy_wh"], c["power_w"]
        assert np.all(np.diff(ts) > 0), key
        assert np.allclose(np.diff(ts), QUIET.interval), "no gaps in the quiet scenario"
        delta = e[-1] - e[0]
        integral = p[1:].sum() * QUIET.interval / 3600.0
        if delta > 0:
            charged += 1
        assert delta == pytest.approx(integral, rel=1e-6, abs=1e-6), key
    assert charged >= 3, "the scenario should have charged on several connectors"


def test_truth_energy_matches_transaction_meter_values() -> None:
    sim = Simulation(QUIET.with_scenario("quiet"))
    tx = by_topic_kind(sim.messages(), "transaction")
    updates = [d for _, _, d in tx if d["event"] == "update"]
    assert updates and all(d["transaction_id"] and d["meter_wh"] > 0 for d in updates)
    starts = {d["transaction_id"]: d["meter_wh"] for _, _, d in tx if d["event"] == "start"}
    stops = {d["transaction_id"]: d["meter_wh"] for _, _, d in tx if d["event"] == "stop"}
    sessions = [s for s in sim.truth().sessions if s.complete and s.start >= QUIET.start]
    assert len(sessions) >= 5
    for s in sessions:
        delta = stops[s.transaction_id] - starts[s.transaction_id]
        assert delta == pytest.approx(s.energy_wh, abs=2e-3), s
        assert s.plug_in < s.start < s.stop <= s.unplug
        assert s.energy_wh > 0


def test_messages_are_in_receive_order_and_capture_round_trips(tmp_path) -> None:
    cfg = SimConfig(chargers=5, sites=2, seed=2, duration=3 * 3600, interval=10.0, batch=6)
    sim = Simulation(cfg.replace(random_faults=4))
    msgs = list(sim.messages())
    assert all(a[0] <= b[0] for a, b in pairwise(msgs))
    path = tmp_path / "cap.jsonl"
    n = sim.write_capture(path)
    lines = path.read_bytes().splitlines()
    assert n == len(lines) == len(msgs)
    first = orjson.loads(lines[0])
    assert set(first) == {"ts", "topic", "payload"}
    assert first["ts"].endswith("Z") and first["ts"][10] == "T"
    assert first["topic"] == msgs[0][1] and first["payload"] == orjson.loads(msgs[0][2])


def test_columnar_batches_carry_the_same_samples_as_single_messages() -> None:
    cfg = SimConfig(chargers=4, sites=2, seed=9, duration=4 * 3600, interval=10.0, random_faults=2)
    single = meter_samples(Simulation(cfg).messages())
    batched = meter_samples(Simulation(cfg.replace(batch=16)).messages())
    assert single.keys() == batched.keys()
    for key in single:
        # a batch completing after the range's end is not sent; the rest is identical
        n = len(batched[key]["ts"])
        assert 0 <= len(single[key]["ts"]) - n < 16
        for name in ("ts", "energy_wh", "power_w", "current_a", "voltage_v", "soc_pct"):
            np.testing.assert_array_equal(single[key][name][:n], batched[key][name], err_msg=name)
        # a batch is received when its last sample is
        assert np.all(batched[key]["recv"] >= single[key]["recv"][:n])


def test_meter_batches_match_the_messages() -> None:
    cfg = SimConfig(chargers=4, sites=2, seed=4, duration=2 * 3600, interval=10.0, random_faults=2)
    sim = Simulation(cfg)
    mb = MeterBatch.concat(list(sim.meter_batches()))
    wire = meter_samples(sim.messages())
    index = ConnectorIndex(sim.fleet())
    assert len(mb) == sum(len(c["ts"]) for c in wire.values())
    for (charger, connector), c in wire.items():
        rows = mb.conn == index.id(charger, connector)
        np.testing.assert_array_equal(mb.ts[rows], c["ts"])
        np.testing.assert_array_equal(mb.col("energy_wh")[rows], c["energy_wh"])
        np.testing.assert_array_equal(mb.col("current_l1_a")[rows], c["current_a"][:, 0])


def test_fleet_round_trips_through_fleet_yaml(tmp_path) -> None:
    sim = Simulation(SimConfig(chargers=12, sites=3, seed=1))
    sim.write_fleet(tmp_path / "fleet.yaml")
    loaded = load_fleet(tmp_path / "fleet.yaml")
    assert loaded.chargers == sim.fleet().chargers
    assert {s.id for s in loaded.sites.values()} == set(sim.fleet().sites)
    kinds = {c.phases for c in loaded.chargers.values()}
    assert len(kinds) >= 2


def test_parse_fault_syntax() -> None:
    f = parse_fault("meter_stuck@CP0003:2@2h+30m")
    assert (f.name, f.charger, f.connector, f.start, f.duration) == (
        "meter_stuck", "CP0003", 2, 7200.0, 1800.0,
    )  # fmt: skip
    assert parse_fault("meter_mismatch@CP0001@1h+5m,factor=0.3").params == {"factor": 0.3}
    with pytest.raises(ValueError, match="bad fault parameter"):
        parse_fault("meter_mismatch@CP0001,factor")
    g = parse_fault("GroundFailure@4")
    assert (g.charger, g.connector, g.start, g.duration) == ("4", None, None, None)
    assert parse_duration("90") == 90.0
    with pytest.raises(ValueError, match="unknown fault"):
        parse_fault("meter_sticky@CP0001")
    with pytest.raises(ValueError, match="expected NAME@CHARGER"):
        parse_fault("meter_stuck")
    assert len(FAULTS) == len(TELEMETRY_FAULTS) + 15


def test_config_is_validated() -> None:
    with pytest.raises(ValueError, match=r"reboot_prob must be within 0\.\.1"):
        SimConfig(reboot_prob=1.5)
    with pytest.raises(ValueError, match="sites must be"):
        SimConfig(chargers=2, sites=3)
    with pytest.raises(ValueError, match="unknown scenario"):
        SimConfig().with_scenario("sunny")


def test_bad_fault_placements_are_reported() -> None:
    with pytest.raises(ValueError, match="unknown charger"):
        Simulation(SimConfig(chargers=3, faults=(FaultSpec("meter_stuck", "CP9999"),)))
    late = Simulation(
        SimConfig(chargers=3, duration=600, faults=(parse_fault("meter_stuck@0@1h"),))
    )
    assert late.truth().faults == []  # never shows, so not in the truth (and logged)
    clash = (parse_fault("meter_stuck@0:1@1h+30m"), parse_fault("phase_loss@0:1@80m+30m"))
    with pytest.raises(ValueError, match="overlap"):
        Simulation(SimConfig(chargers=3, single_phase_charger_fraction=0, dc_fraction=0,
                             faults=clash))  # fmt: skip


@pytest.mark.parametrize(
    ("scenario", "tag"),
    [
        ("suspended_ev", "suspended_ev"),
        ("suspended_evse", "suspended_evse"),
        ("high_soc_taper", "high_soc"),
        ("dc_curves", "dc"),
        ("single_phase_cars", "single_phase_car_on_three_phase"),
        ("idle_after_charging", "long_idle"),
    ],
)
def test_scenarios_label_their_sessions(scenario: str, tag: str) -> None:
    cfg = SimConfig(chargers=6, sites=2, seed=3, duration=24 * 3600, interval=60.0)
    truth = Simulation(cfg.with_scenario(scenario)).truth()
    tagged = [s for s in truth.sessions if tag in s.tags]
    assert len(tagged) >= max(2, len(truth.sessions) // 3), (scenario, len(truth.sessions))
    assert not truth.faults


def test_session_shapes_are_physical() -> None:
    cfg = SimConfig(chargers=8, sites=4, seed=21, duration=24 * 3600, interval=30.0)
    sim = Simulation(cfg.with_scenario("quiet").replace(full_charge_fraction=0.5))
    mb = MeterBatch.concat(list(sim.meter_batches()))
    p = mb.col("power_w")
    assert np.all(p >= 0)
    fleet = sim.fleet()
    index = ConnectorIndex(fleet)
    assert np.all(p <= index.max_power_w[mb.conn] * 1.01)
    soc = mb.col("soc_pct")
    dc_rows = index.phases[mb.conn] == 0
    assert np.all(np.isnan(soc[~dc_rows]))  # AC chargers do not know the SoC
    assert np.all((soc[np.isfinite(soc)] >= 0) & (soc[np.isfinite(soc)] <= 100))
    # the SoC only rises within a session, and AC 3-phase voltages stay near nominal
    v = mb.col("voltage_l1_v")[~dc_rows]
    assert np.all(np.abs(v - 230.0) < 15.0)
    t = mb.col("temperature_c")
    assert np.all((t > -15) & (t < 70))
    for s in sim.truth().sessions:
        if s.full is not None:
            assert s.full <= s.unplug
            assert math.isclose(s.idle_s, s.unplug - s.full)


def test_warm_start_opens_mid_session_with_the_right_status() -> None:
    cfg = SimConfig(chargers=30, sites=3, seed=2, start=DEFAULT_START + 14 * 3600, duration=600)
    sim = Simulation(cfg.replace(interval=10.0))
    ongoing = [s for s in sim.truth().sessions if s.plug_in < cfg.start < s.unplug]
    assert ongoing and all(not s.complete for s in ongoing)
    first: dict[str, str] = {}
    for _, topic, payload in sim.messages():
        if topic.endswith("/status"):
            first.setdefault(topic, orjson.loads(payload)["status"])
    for s in ongoing:
        assert first[f"ev/{s.charger}/{s.connector}/status"] != "Available"


def test_a_time_slice_equals_the_same_slice_of_the_whole_run() -> None:
    cfg = SimConfig(chargers=5, sites=2, seed=13, duration=3 * 3600, interval=10.0, batch=6)
    cfg = cfg.replace(random_faults=3)
    lo, hi = cfg.start + 3600, cfg.start + 7200
    whole = [m for m in Simulation(cfg).messages() if lo <= m[0] < hi]
    assert list(Simulation(cfg).messages(lo, hi)) == whole


def test_cli_writes_capture_truth_and_fleet(tmp_path, capsys) -> None:
    cap, truth, fleet = tmp_path / "c.jsonl", tmp_path / "t.jsonl", tmp_path / "f.yaml"
    rc = main([
        "simulate", "--chargers", "3", "--duration", "30m", "--interval", "30", "--batch", "4",
        "--fault", "meter_stuck@CP0002:1@5m+10m", "--faults", "1", "--capture", str(cap),
        "--truth", str(truth), "--fleet-out", str(fleet), "--protocol", "ocpp1.6",
    ])  # fmt: skip
    assert rc == 0
    lines = [orjson.loads(x) for x in cap.read_bytes().splitlines()]
    assert lines and all(x["topic"].startswith("ocpp/1.6/") for x in lines)
    faults = [r for r in map(orjson.loads, truth.read_bytes().splitlines()) if r["type"] == "fault"]
    assert {f["fault"] for f in faults} >= {"meter_stuck"} and len(faults) == 2
    assert len(load_fleet(fleet).chargers) == 3
    assert main(["simulate", "--chargers", "3", "--fault", "meter_stuck@CP0009", "--capture",
                 str(cap)]) == 2  # fmt: skip
    assert "unknown charger" in capsys.readouterr().err
    assert main(["simulate", "--duration", "10m", "--fault", "meter_stuck@0@1h", "--capture",
                 str(cap)]) == 2  # fmt: skip
    assert "after the simulation's end" in capsys.readouterr().err


def test_cli_bad_start_names_the_option_once(tmp_path, capsys) -> None:
    rc = main(["simulate", "--start", "bogus", "--capture", str(tmp_path / "c.jsonl")])
    assert rc == 2
    assert capsys.readouterr().err.splitlines() == [
        "chargewatch: configuration error:",
        "command line: --start: expected RFC 3339, epoch seconds or 'now', got 'bogus'",
    ]


def test_reboot_scenario_reboots_between_sessions_with_boot_blips() -> None:
    cfg = SimConfig(chargers=6, sites=2, seed=3, duration=24 * 3600, interval=60.0)
    sim = Simulation(cfg.with_scenario("reboots"))
    truth = sim.truth()
    reboots = [n for n in truth.normals if n.name == "reboot"]
    blips = [n for n in truth.normals if n.name == "boot_faulted_blip"]
    assert len(reboots) >= 6 and blips
    for n in reboots:  # never during a session
        assert not [
            s
            for s in truth.sessions
            if s.charger == n.charger and s.plug_in < n.end and n.start < s.unplug
        ]
    msgs = list(sim.messages())
    b = blips[0]
    st = [
        orjson.loads(p) for r, t, p in msgs
        if t.startswith(f"ev/{b.charger}/") and t.endswith("/status") and b.start <= r < b.end + 1
    ]  # fmt: skip
    assert [d["status"] for d in st][:1] == ["Faulted"] and st[0]["error_code"] == "NoError"
    rb = reboots[0]
    flags = [
        orjson.loads(p)["online"] for r, t, p in msgs
        if t == f"ev/{rb.charger}/online" and rb.start - 1 <= r <= rb.end + 1
    ]  # fmt: skip
    assert flags == [False, True]


def test_output_does_not_depend_on_chunking() -> None:
    cfg = SimConfig(chargers=4, sites=2, seed=6, duration=3 * 3600, interval=10.0, random_faults=4)
    a = Simulation(cfg)
    b = Simulation(cfg)
    b.engine = Engine(b.plan, target_chunk_samples=7 * len(b.plan.conns))  # 7-sample chunks
    assert b.engine.chunk_len == 7 != a.engine.chunk_len
    ma = MeterBatch.concat(list(a.meter_batches()))
    mb = MeterBatch.concat(list(b.meter_batches()))
    oa, ob = np.lexsort((ma.ts, ma.conn)), np.lexsort((mb.ts, mb.conn))
    np.testing.assert_array_equal(ma.values[oa], mb.values[ob])
    assert list(a.messages()) == list(b.messages())
