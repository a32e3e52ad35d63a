"""Every fault shows in the data as its docstring says, and in the truth at its times."""

from __future__ import annotations

from typing import Any

import numpy as np
import orjson
import pytest

from chargewatch.simulator import DEFAULT_START, FaultSpec, SimConfig, Simulation
from chargewatch.simulator.fault_models import TELEMETRY_FAULTS
from tests.simulator.helpers import meter_samples

START = 2 * 3600.0
DUR = 1800.0
BASE = SimConfig(chargers=24, sites=3, seed=8, interval=10.0, duration=6 * 3600)


def _specs() -> list[FaultSpec]:
    fleet = Simulation(BASE).plan.chargers  # the fleet does not depend on the faults
    three = [c.id for c in fleet if c.phases == 3]
    others = [c.id for c in fleet if c.id not in three[:2]]
    names = [n for n in TELEMETRY_FAULTS if n not in ("phase_loss", "phase_imbalance")]
    params = {"meter_mismatch": {"factor": 0.3}}
    specs = [FaultSpec(n, others[i], 1, START, DUR, params.get(n, {})) for i, n in enumerate(names)]
    specs.append(FaultSpec("GroundFailure", others[len(names)], 1, START, 900.0))
    specs.append(FaultSpec("phase_loss", three[0], 1, START, DUR))
    specs.append(FaultSpec("phase_imbalance", three[1], 1, START, DUR))
    return specs


@pytest.fixture(scope="module")
def run() -> dict[str, Any]:
    specs = _specs()
    sim = Simulation(BASE.replace(faults=tuple(specs)).with_scenario("quiet"))
    msgs = list(sim.messages())
    return {"sim": sim, "msgs": msgs, "meter": meter_samples(msgs), "specs": specs}


def _where(run: dict[str, Any], name: str) -> tuple[str, float, float]:
    spec = next(s for s in run["specs"] if s.name == name)
    t0 = DEFAULT_START + START
    return spec.charger, t0, t0 + (spec.duration or 0)


def _window(run: dict[str, Any], name: str, field: str, pad: float = 15.0) -> np.ndarray:
    charger, t0, t1 = _where(run, name)
    c = run["meter"][(charger, 1)]
    m = (c["recv"] > t0 + pad) & (c["recv"] < t1 - pad)
    return c[field][m]


def _before(run: dict[str, Any], name: str, field: str) -> float:
    charger, t0, _ = _where(run, name)
    c = run["meter"][(charger, 1)]
    return float(c[field][c["recv"] < t0 - 1][-1])


def _topic_msgs(run: dict[str, Any], charger: str, kind: str) -> list[tuple[float, Any]]:
    return [
        (r, orjson.loads(p))
        for r, t, p in run["msgs"]
        if t.startswith(f"ev/{charger}/") and t.endswith(kind)
    ]


def test_every_injected_fault_is_in_the_truth_with_its_times(run: dict[str, Any]) -> None:
    truth = {f.fault: f for f in run["sim"].truth().faults}
    assert len(truth) == len(run["specs"])
    for s in run["specs"]:
        f = truth[s.name]
        assert f.charger == s.charger
        assert f.start == DEFAULT_START + START
        assert f.end == DEFAULT_START + START + s.duration
        assert f.kind == ("error_code" if s.name == "GroundFailure" else "telemetry")
        assert f.connector == (None if s.name in ("charger_offline", "clock_skew") else 1)
    assert truth["meter_mismatch"].params == {"factor": 0.3}  # given
    assert truth["phase_imbalance"].params == {"phase": 2.0, "ratio": 0.4}  # defaults


def test_meter_faults(run: dict[str, Any]) -> None:
    e = _window(run, "meter_stuck", "energy_wh")
    assert np.all(e == e[0]) and np.all(_window(run, "meter_stuck", "power_w") > 1000)
    e = _window(run, "meter_regression", "energy_wh")
    assert e.min() < _before(run, "meter_regression", "energy_wh") - 4000
    e = _window(run, "meter_mismatch", "energy_wh")
    p = _window(run, "meter_mismatch", "power_w")
    assert (p[1:].sum() * BASE.interval / 3600) / (e[-1] - e[0]) == pytest.approx(0.3, rel=0.01)
    e = _window(run, "meter_unit_error", "energy_wh")
    assert e.max() < _before(run, "meter_unit_error", "energy_wh") / 500


def test_electrical_faults(run: dict[str, Any]) -> None:
    assert _window(run, "over_temperature", "temperature_c", pad=400).min() > 60
    cur = _window(run, "over_current", "current_a")[:, 0]
    off = _window(run, "over_current", "offered_a")
    assert np.all(cur > off * 1.2)
    v = _window(run, "voltage_out_of_band", "voltage_v")
    assert np.nanmin(v) > 253.0  # above +10 % of 230 V
    cur = _window(run, "phase_loss", "current_a")
    v = _window(run, "phase_loss", "voltage_v")
    assert np.all(cur[:, 2] == 0) and np.all(cur[:, 0] > 5) and np.all(v[:, 2] < 15)
    assert np.all(v[:, :2] > 200)
    cur = _window(run, "phase_imbalance", "current_a")
    assert np.allclose(cur[:, 1] / cur[:, 0], 0.4, rtol=0.05)
    p = _window(run, "power_oscillation", "power_w")
    assert p.max() > 4 * p.min() > 0


def test_delivery_faults(run: dict[str, Any]) -> None:
    # charging_interrupted: no power, and no status saying why
    assert np.all(_window(run, "charging_interrupted", "power_w") == 0)
    charger, t0, t1 = _where(run, "charging_interrupted")
    st = _topic_msgs(run, charger, "status")
    assert [d["status"] for r, d in st if r < t0][-1] == "Charging"
    assert not [d for r, d in st if t0 < r < t1]
    # stale telemetry: heartbeats on, meter off
    charger, t0, t1 = _where(run, "stale_telemetry")
    assert not [r for r, _ in _topic_msgs(run, charger, "meter") if t0 + 1 < r < t1]
    assert [r for r, _ in _topic_msgs(run, charger, "heartbeat") if t0 < r < t1]
    # offline: silence, flag false then true
    charger, t0, t1 = _where(run, "charger_offline")
    quiet = [(r, t) for r, t, _ in run["msgs"] if t.startswith(f"ev/{charger}/")]
    assert not [t for r, t in quiet if t0 + 1 < r < t1 and not t.endswith("online")]
    flags = [(r, d["online"]) for r, d in _topic_msgs(run, charger, "online")]
    assert [f for r, f in flags if r >= t0 - 1][:2] == [False, True]
    # flapping: many status messages
    charger, t0, t1 = _where(run, "status_flapping")
    assert len([r for r, _ in _topic_msgs(run, charger, "status") if t0 <= r < t1]) >= 100


def test_clock_skew_moves_only_the_chargers_clock(run: dict[str, Any]) -> None:
    charger, t0, t1 = _where(run, "clock_skew")
    c = run["meter"][(charger, 1)]
    inside = (c["recv"] > t0 + 15) & (c["recv"] < t1 - 15)
    assert np.allclose(c["ts"][inside] - c["recv"][inside], 900.0, atol=BASE.interval + 1)
    assert np.all(
        np.abs(c["ts"][~inside & (c["recv"] < t0)] - c["recv"][~inside & (c["recv"] < t0)]) < 1
    )
    hb = [(r, d["ts"]) for r, d in _topic_msgs(run, charger, "heartbeat") if t0 + 1 < r < t1]
    assert hb and all(abs(ts - r - 900) < 1 for r, ts in hb)


def test_session_faults(run: dict[str, Any]) -> None:
    charger, t0, t1 = _where(run, "failed_start")
    assert np.all(_window(run, "failed_start", "power_w", pad=40) == 0)
    tx = [d for r, d in _topic_msgs(run, charger, "transaction") if t0 <= r <= t1 + 5]
    assert [d["event"] for d in tx] == ["start", "update", "stop"]
    assert tx[0]["meter_wh"] == tx[1]["meter_wh"] == tx[2]["meter_wh"]
    st = [d["status"] for r, d in _topic_msgs(run, charger, "status") if t0 <= r <= t1 + 5]
    assert st[:2] == ["Preparing", "Charging"] and st[-1] == "Available"
    # idle blocking: the car is full at the start and leaves at the end
    charger, t0, t1 = _where(run, "idle_blocking")
    assert np.all(_window(run, "idle_blocking", "power_w") == 0)
    assert _before(run, "idle_blocking", "power_w") > 0
    st = [(r, d["status"]) for r, d in _topic_msgs(run, charger, "status")]
    assert [s for r, s in st if t0 <= r < t1] == ["SuspendedEV"]
    (session,) = [
        s for s in run["sim"].truth().sessions if s.charger == charger and "fault_host" in s.tags
    ]
    assert session.full == pytest.approx(t0) and session.unplug == pytest.approx(t1)
    assert session.idle_s == pytest.approx(DUR)


def test_ocpp_error_code_fault_and_recovery(run: dict[str, Any]) -> None:
    charger, t0, t1 = _where(run, "GroundFailure")
    t1 = t0 + 900.0
    st = [(r, d) for r, d in _topic_msgs(run, charger, "status") if t0 <= r <= t1 + 1]
    assert st[0][1]["status"] == "Faulted" and st[0][1]["error_code"] == "GroundFailure"
    assert st[0][1]["vendor_error_code"]
    assert st[-1][1]["error_code"] == "NoError" and st[-1][1]["status"] != "Faulted"
    c = run["meter"][(charger, 1)]
    m = (c["recv"] > t0 + 15) & (c["recv"] < t1 - 15)
    assert np.all(c["power_w"][m] == 0) and np.all(c["offered_a"][m] == 0)


def test_unknown_fault_parameter_is_rejected() -> None:
    with pytest.raises(ValueError, match=r"unknown parameter\(s\) \['factr'\]"):
        FaultSpec("meter_mismatch", "CP0001", params={"factr": 0.3})
