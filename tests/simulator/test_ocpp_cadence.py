"""The simulator's OCPP-cadence mode (docs/simulator.md): what a real OCPP 1.6
charger sends at a configured MeterValueSampleInterval and HeartbeatInterval."""

from __future__ import annotations

import itertools

import orjson

from chargewatch.simulator import FaultSpec, SimConfig, Simulation

CFG = SimConfig(
    chargers=8,
    sites=4,
    seed=5,
    duration=4 * 3600.0,
    interval=30.0,
    protocol="ocpp1.6",
    heartbeat_intervals=(60.0, 300.0, 900.0),
    idle_meter_interval=900.0,
    register_restart_fraction=0.5,
)


def _frames(sim: Simulation) -> list[tuple[float, str, list[object]]]:
    return [(r, t, orjson.loads(p)) for r, t, p in sim.messages()]


def test_boot_interval_is_each_chargers_heartbeat() -> None:
    sim = Simulation(CFG)
    frames = _frames(sim)
    boots = {
        t.split("/")[2]: f[1] for _, t, f in frames if f[0] == 2 and f[2] == "BootNotification"
    }
    results = {t.split("/")[2]: f for _, t, f in frames if t.endswith("/csms") and f[0] == 3}
    for i, c in enumerate(sim.plan.chargers):
        beats = [
            r
            for r, t, f in frames
            if t.split("/")[2] == c.id and f[:1] == [2] and f[2] == "Heartbeat"
        ]
        h = float(sim.hb_interval[i])
        # Regular at the charger's own interval (a reboot leaves beats out).
        gaps = [(b - a) / h for a, b in itertools.pairwise(beats)]
        assert beats and all(abs(g - round(g)) < 1e-6 and g >= 1 - 1e-9 for g in gaps)
        boot_id = boots[c.id]
        interval = next(
            f[2]["interval"] for _, t, f in frames
            if t == f"ocpp/1.6/{c.id}/csms" and f[1] == boot_id and isinstance(f[2], dict)
        )  # fmt: skip
        assert interval == int(sim.hb_interval[i])
    assert results


def test_meter_values_in_transactions_clock_aligned_when_idle() -> None:
    frames = _frames(Simulation(CFG))
    periodic = clock = 0
    for _, _, f in frames:
        if f[0] != 2 or f[2] != "MeterValues":
            continue
        body = f[3]
        assert isinstance(body, dict)
        ctx = {sv["context"] for mv in body["meterValue"] for sv in mv["sampledValue"]}
        if "transactionId" in body:
            assert ctx == {"Sample.Periodic"}
            periodic += 1
        else:
            assert ctx == {"Sample.Clock"}
            clock += 1
    assert periodic > 0 and clock > 0


def test_register_restarts_per_transaction() -> None:
    sim = Simulation(CFG)
    restart = {c.charger for c in sim.plan.conns if c.tx_register}
    starts = [
        (t.split("/")[2], f[3]["meterStart"])
        for _, t, f in _frames(sim)
        if f[0] == 2 and f[2] == "StartTransaction" and isinstance(f[3], dict)
    ]
    assert restart and starts
    for charger, meter_start in starts:
        assert (meter_start == 0) == (charger in restart)


def test_single_phase_sag() -> None:
    sim = Simulation(CFG.replace(protocol="native", interval=10.0))
    three = next(c.id for c in sim.plan.chargers if c.phases == 3)
    spec = FaultSpec("voltage_out_of_band", three, 1, start=3600, duration=360,
                     params={"offset_pct": -17.4, "phase": 1.0})  # fmt: skip
    sag = Simulation(sim.config.replace(faults=(spec,)))
    row = next(c.idx for c in sag.plan.conns if c.charger == three)
    for ch in sag.chunks(sag.config.start + 3700, sag.config.start + 3900):
        inw = (ch.t[row] > sag.config.start + 3600) & (ch.t[row] <= sag.config.start + 3960)
        if inw.any():
            assert (ch.voltage[0, row, inw] < 200).all()
            assert (ch.voltage[1:, row, inw] > 215).all()
