"""Each detector on synthetic streams: it fires on its fault, stays quiet on the
normal case next to it, and reports start/detection times that make sense."""

from __future__ import annotations

import numpy as np
import pytest

from chargewatch.detectors import FAULTS, DetectorSet
from chargewatch.model.batch import FIELD_INDEX, MeterBatch
from chargewatch.model.events import (
    Event,
    HeartbeatEvent,
    OnlineEvent,
    StatusEvent,
    TransactionEvent,
)

from .helpers import DT, T0, charging, fleet, of, run, session_start

E, P, TEMP = FIELD_INDEX["energy_wh"], FIELD_INDEX["power_w"], FIELD_INDEX["temperature_c"]


def test_healthy_session_raises_nothing() -> None:
    idx = fleet(1)
    ds = run(charging(360), session_start(idx), idx)
    assert ds.findings == []
    sig = ds.signals
    for fault in FAULTS:
        assert sig[fault].dtype == np.bool_ and not sig[fault].any(), fault
        assert f"{fault}_score" in sig


def test_meter_stuck_fires_after_min_duration_and_clears() -> None:
    idx = fleet(1)
    b = charging(120)
    b.values[30:60, E] = b.values[29, E]
    ds = run(b, session_start(idx), idx, faults=["meter_stuck"])
    (f,) = of(ds, "meter_stuck")
    # The register stands at its reading of row 29 from then on: the first still
    # step (row 30) says so, and the 120 s are counted from row 29.
    assert f.start == b.ts[29]
    assert f.detected == b.ts[29] + 120.0
    assert f.end == b.ts[60]


def test_meter_stuck_ignores_idle_register() -> None:
    idx = fleet(1)
    b = charging(120, power=0.0)
    b.values[:, E] = 5000.0
    assert of(run(b, [], idx, faults=["meter_stuck"]), "meter_stuck") == []


def test_meter_regression_and_unit_switch_is_not_a_regression() -> None:
    idx = fleet(2)
    a = charging(60)
    a.values[30:, E] -= 3000.0
    b = charging(60, conn=1)
    b.values[30:, E] /= 1000.0  # kWh labelled Wh: a unit error, not a regression
    ds = run(MeterBatch.concat([a, b]), [], idx, faults=["meter_regression", "meter_unit_error"])
    reg = of(ds, "meter_regression")
    assert [f.connector for f in reg] == [0]
    assert reg[0].evidence["drop_wh"] == pytest.approx(3000.0 - 11000 * DT / 3600, rel=1e-6)
    assert [f.connector for f in of(ds, "meter_unit_error")] == [1]


def test_meter_mismatch_needs_sustained_ratio_error() -> None:
    idx = fleet(2)
    a = charging(400)
    inc = np.diff(a.values[:, E], prepend=a.values[0, E])
    inc[100:] *= 0.7
    a.values[:, E] = a.values[0, E] + np.cumsum(inc)
    b = charging(400, conn=1)
    b.values[:, P] *= np.random.default_rng(0).normal(1, 0.02, 400)  # noise is not mismatch
    ds = run(MeterBatch.concat([a, b]), [], idx, faults=["meter_mismatch"])
    found = of(ds, "meter_mismatch")
    assert {f.connector for f in found} == {0}
    assert found[0].evidence["ratio"] == pytest.approx(0.7, abs=0.02)


def test_power_in_kw_labelled_w() -> None:
    idx = fleet(1)
    b = charging(60)
    b.values[20:, P] /= 1000.0
    ds = run(b, [], idx, faults=["meter_unit_error", "charging_interrupted"])
    assert len(of(ds, "meter_unit_error")) == 1
    assert of(ds, "charging_interrupted") == []


def test_over_temperature_level_with_hysteresis() -> None:
    idx = fleet(1)
    b = charging(100)
    b.values[20:60, TEMP] = 80.0
    b.values[60:70, TEMP] = 72.0  # between clear (70) and level (75): stays active
    b.values[70:, TEMP] = 60.0
    fs = of(run(b, [], idx, faults=["over_temperature"]), "over_temperature")
    (f,) = [f for f in fs if "level_c" in f.evidence]
    assert f.detected == b.ts[26] and f.end == b.ts[70]  # min_duration_s: 60 s
    # A 45 C jump within one 10 s sample is also a steep rise (20 s of it).
    (steep,) = [f for f in fs if "level_c" not in f.evidence]
    assert steep.detected == b.ts[22] and steep.evidence["rate_c_per_min"] > 10.0


def test_over_temperature_rate_of_rise() -> None:
    idx = fleet(1)
    b = charging(100)
    b.values[:, TEMP] = np.minimum(40 + np.maximum(np.arange(100) - 20, 0) * 0.8, 74)  # 4.8 C/min
    fs = of(run(b, [], idx, faults=["over_temperature"]), "over_temperature")
    assert len(fs) == 1 and fs[0].evidence["rate_c_per_min"] > 3.0


@pytest.mark.parametrize("cuts", [1, 4])
def test_over_temperature_ends_when_the_port_stops_charging(cuts: int) -> None:
    # Hot to the last sample, then Finishing: the last reading is no evidence
    # about an idle port, so the episode ends at the status change, not when
    # the next session's first (cool) sample comes.
    idx = fleet(1)
    b = charging(60)
    b.values[:, TEMP] = 90.0
    stop = float(b.recv[-1]) + 5
    ev = [StatusEvent("CP0", 1, stop, stop, "Finishing")]
    (f,) = of(run(b, ev, idx, cuts=cuts, faults=["over_temperature"]), "over_temperature")
    assert f.end == stop


def test_over_temperature_ends_when_the_reading_gets_old() -> None:
    idx = fleet(1)
    b = charging(60)
    b.values[:, TEMP] = 90.0
    ds = run(b, [], idx, faults=["over_temperature"], now=float(b.recv[-1]) + 2 * DT)
    assert ds.signals["over_temperature"].tolist() == [True]  # 2 intervals: not yet old
    ds.tick(float(b.recv[-1]) + 61)  # 3 intervals, and at least 60 s
    (f,) = of(ds, "over_temperature")
    assert f.end == b.ts[-1] and ds.signals["over_temperature"].tolist() == [False]
    # A later hot reading starts a new run: it must last min_duration_s again.
    later = charging(2, t0=T0 + 3600)
    later.values[:, TEMP] = 90.0
    ds.update(later, [], idx, float(later.recv[-1]))
    assert ds.signals["over_temperature"].tolist() == [False]


def test_over_current_against_offered_and_lowered_pilot() -> None:
    idx = fleet(2)
    a = charging(60)
    a.values[20:40, 2] = 40.0  # 40 A against 32 A offered
    b = charging(60, conn=1)
    b.values[20, FIELD_INDEX["offered_a"]] = 10.0  # pilot lowered; EV follows within 5 s
    b.values[21:, FIELD_INDEX["offered_a"]] = 10.0
    b.values[21:, 2:5] = 10.0
    ds = run(MeterBatch.concat([a, b]), [], idx, faults=["over_current"])
    assert [f.connector for f in of(ds, "over_current")] == [0]


def test_voltage_band_phase_loss_and_single_phase_car() -> None:
    idx = fleet(3)
    a = charging(60)
    a.values[10:, 5] = 260.0  # +13 %
    b = charging(60, conn=1)
    b.values[10:, 7] = 0.0  # L3 gone
    b.values[10:, 4] = 0.0
    c = charging(60, conn=2, power=7_000)
    c.values[:, 2] = 7000 / 230.0  # a single-phase car on a three-phase charger
    c.values[:, 3:5] = 0.0
    ds = run(
        MeterBatch.concat([a, b, c]),
        [],
        idx,
        faults=["voltage_out_of_band", "phase_loss", "phase_imbalance"],
    )
    assert [f.connector for f in of(ds, "voltage_out_of_band")] == [0]
    assert [f.connector for f in of(ds, "phase_loss")] == [1]
    assert of(ds, "phase_imbalance") == []


def test_phase_imbalance() -> None:
    idx = fleet(1)
    b = charging(60)
    b.values[10:, 4] *= 0.4
    (f,) = of(run(b, [], idx, faults=["phase_imbalance"]), "phase_imbalance")
    assert f.evidence["imbalance"] == pytest.approx(0.6)


def test_power_oscillation_but_not_a_single_pause() -> None:
    idx = fleet(2)
    a = charging(100)
    a.values[30:70:2, P] *= 0.3
    b = charging(100, conn=1)
    b.values[30:50, P] = 0.0  # SuspendedEV pause and resume
    ds = run(MeterBatch.concat([a, b]), [], idx, faults=["power_oscillation"])
    assert [f.connector for f in of(ds, "power_oscillation")] == [0]


def test_clock_skew_but_not_a_queued_burst() -> None:
    idx = fleet(2)
    a = charging(100)
    a = MeterBatch(a.conn, a.ts - 600.0, a.recv, a.values)  # meter clock 10 min behind
    b = charging(100, conn=1)
    recv = b.recv.copy()
    recv[:40] = b.ts[40] + np.linspace(0, 3, 40)  # 40 queued samples delivered at once
    b = MeterBatch(b.conn, b.ts, recv, b.values)
    ds = run(MeterBatch.concat([a, b]), [], idx, faults=["clock_skew"])
    (f,) = of(ds, "clock_skew")
    assert f.connector == 0 and f.evidence["offset_s"] == pytest.approx(600.5)


def test_charger_offline_by_silence_and_by_last_will_and_reboot_is_fine() -> None:
    idx = fleet(3)
    a = charging(30)
    ev = [
        OnlineEvent("CP1", False, T0 + 100),
        OnlineEvent("CP2", False, T0 + 100),
        OnlineEvent("CP2", True, T0 + 160),
    ]  # CP2 reboots within the grace
    ev += [HeartbeatEvent("CP2", T0 + h, T0 + h) for h in range(300, 2001, 300)]
    ds = run(a, ev, idx, faults=["charger_offline"], now=T0 + 2000)
    fs = sorted(of(ds, "charger_offline"), key=lambda f: f.connector)
    assert [f.connector for f in fs] == [0, 1]
    assert fs[0].start == a.recv[-1] and fs[0].detected == a.recv[-1] + 600
    assert fs[1].detected == T0 + 100 + 120
    assert ds.signals["charger_offline"].tolist() == [True, True, False]


def test_stale_telemetry_only_in_a_session() -> None:
    idx = fleet(2)
    a = charging(30)
    b = charging(30, conn=1)
    ev = session_start(idx, 0)  # connector 1 has no session: sampling may stop
    ev += [StatusEvent("CP0", 1, T0 + 1000, T0 + 1000, "Charging")]  # alive, still charging
    ds = run(MeterBatch.concat([a, b]), ev, idx, faults=["stale_telemetry"], now=T0 + 1200)
    (f,) = of(ds, "stale_telemetry")
    assert f.connector == 0 and f.detected == pytest.approx(a.recv[-1] + 300)


def test_idle_blocking_after_grace_and_pause_within_grace() -> None:
    idx = fleet(2)
    ev = [
        StatusEvent("CP0", 1, T0, T0, "SuspendedEV"),
        StatusEvent("CP1", 1, T0, T0, "SuspendedEV"),
        StatusEvent("CP1", 1, T0 + 600, T0 + 600, "Charging"),
    ]
    ds = run(MeterBatch.empty(), ev, idx, faults=["idle_blocking"], now=T0 + 20000)
    (f,) = of(ds, "idle_blocking")
    assert f.connector == 0 and f.detected == T0 + 12600 and f.end is None


def test_failed_start_and_scheduled_charging() -> None:
    idx = fleet(2)
    ev = [
        TransactionEvent("CP0", 1, T0, T0, "start", "a"),
        StatusEvent("CP0", 1, T0 + 1, T0 + 1, "Charging"),
        TransactionEvent("CP1", 1, T0, T0, "start", "b"),
        StatusEvent("CP1", 1, T0 + 1, T0 + 1, "SuspendedEV"),
    ]  # car waits for its timer
    b = MeterBatch.concat([charging(60, conn=0, power=0.0), charging(60, conn=1, power=0.0)])
    ds = run(b, ev, idx, faults=["failed_start"], now=T0 + 1000)
    (f,) = of(ds, "failed_start")
    assert f.connector == 0 and f.detected == T0 + 180
    # Without meter rows there is no evidence of "no energy": stale, not failed.
    quiet = run(MeterBatch.empty(), ev, idx, faults=["failed_start"], now=T0 + 1000)
    assert of(quiet, "failed_start") == []


def test_failed_start_counts_a_rising_register_when_no_power_is_reported() -> None:
    # CP0: register-only at 11 kW (OCPP 1.6's default measurand); CP1: register-only,
    # standing still: it did not start. Neither connector had a reading before.
    idx = fleet(2)
    ev = session_start(idx, 0) + session_start(idx, 1)
    b0, b1 = charging(60, conn=0), charging(60, conn=1)
    b0.values[:, P] = np.nan
    b1.values[:, P] = np.nan
    b1.values[:, E] = 10_000.0
    ds = run(MeterBatch.concat([b0, b1]), ev, idx, cuts=4, faults=["failed_start"], now=T0 + 1000)
    (f,) = of(ds, "failed_start")
    assert f.connector == 1


def test_failed_start_register_baseline_is_the_reading_before_the_wait() -> None:
    # The register before the transaction (a previous session's) is the baseline:
    # one rise after the start is delivery.
    idx = fleet(1)
    before = charging(3, t0=T0 - 400)
    after = charging(30, t0=T0 + 30)
    for b in (before, after):
        b.values[:, P] = np.nan
    after.values[:, E] = before.values[-1, E] + 10.0  # one small rise, then still
    ds = run(MeterBatch.concat([before, after]), session_start(idx), idx, faults=["failed_start"])
    assert of(ds, "failed_start") == []


@pytest.mark.parametrize("cuts", [1, 4])
def test_failed_start_register_restarting_per_transaction_delivers(cuts: int) -> None:
    # A register that restarts at 0 with every transaction (meterStart 0, seen
    # on real 1.6 chargers): the previous session's last reading, 13.75 kWh, is
    # no baseline for the new one's 0, 30, 61 ... Wh. Before, the new session
    # never "rose" past 13.75 kWh and paged FailedStart although it delivered.
    idx = fleet(1)
    before = charging(3, t0=T0 - 400)
    before.values[:, E] = 13_750.0
    after = charging(30, t0=T0 + 30)
    after.values[:, E] -= after.values[0, E]  # 0 Wh at the first reading
    for b in (before, after):
        b.values[:, P] = np.nan
    batch = MeterBatch.concat([before, after])
    ds = run(batch, session_start(idx), idx, cuts=cuts, faults=["failed_start"], now=T0 + 1000)
    assert of(ds, "failed_start") == []
    # A register standing at its restart value still did not deliver.
    after.values[:, E] = 0.0
    batch = MeterBatch.concat([before, after])
    ds = run(batch, session_start(idx), idx, cuts=cuts, faults=["failed_start"], now=T0 + 1000)
    assert len(of(ds, "failed_start")) == 1


def test_status_flapping() -> None:
    idx = fleet(2)
    ev = [
        StatusEvent("CP0", 1, T0 + 20 * i, T0 + 20 * i, ("Charging", "SuspendedEVSE")[i % 2])
        for i in range(20)
    ]
    ev += [
        StatusEvent("CP1", 1, T0 + 400 * i, T0 + 400 * i, ("Charging", "SuspendedEV")[i % 2])
        for i in range(8)
    ]
    ds = run(MeterBatch.empty(), ev, idx, faults=["status_flapping"], now=T0 + 5000)
    (f,) = of(ds, "status_flapping")
    assert f.connector == 0 and f.detected == T0 + 120 and f.end is not None


def test_charging_interrupted_stall_and_abnormal_stop_but_not_full() -> None:
    idx = fleet(3)
    a = charging(60)
    a.values[30:, P] = 0.0
    a.values[30:, 2:5] = 0.0
    b = charging(30, conn=1)
    c = charging(30, conn=2)
    c.values[:, FIELD_INDEX["soc_pct"]] = 99.0
    ev = session_start(idx, 0) + session_start(idx, 1) + session_start(idx, 2)
    t = float(b.recv[-1]) + 1
    ev += [
        TransactionEvent("CP1", 1, t, t, "stop", "tx1", reason="EmergencyStop"),
        TransactionEvent("CP2", 1, t, t, "stop", "tx2", reason="PowerLoss"),
    ]
    ds = run(MeterBatch.concat([a, b, c]), ev, idx, faults=["charging_interrupted"], now=t + 1000)
    fs = sorted(of(ds, "charging_interrupted"), key=lambda f: f.connector)
    assert [f.connector for f in fs] == [0, 1]
    assert fs[1].end == t + 300


def test_unknown_fault_name_is_rejected() -> None:
    with pytest.raises(ValueError, match="unknown"):
        DetectorSet(faults=["meter_stuk"])


def test_index_growth_between_batches_keeps_state() -> None:
    idx = fleet(1)
    ds = DetectorSet(faults=["meter_stuck", "over_temperature"])
    a = charging(30)
    a.values[8:, E] = a.values[7, E]
    ds.update(a.take(np.arange(10)), [], idx, float(a.recv[9]))
    new = idx.id("NEW", 1)  # an unknown charger appears: the index grows
    b = charging(20, conn=new)
    b.values[:, TEMP] = 90.0
    rest = MeterBatch.concat([a.take(np.arange(10, 30)), b])
    ds.update(rest, [], idx, float(rest.recv.max()))
    assert ds.signals["meter_stuck"].tolist() == [True, False]
    assert ds.signals["over_temperature"].tolist() == [False, True]


@pytest.mark.parametrize("cuts", [1, 9])
def test_stale_telemetry_quiet_on_an_idle_connector_after_a_faulted_session(cuts: int) -> None:
    # OCPP: clock-aligned values every 900 s while idle; a session sampled every
    # 10 s, Faulted for 15 min in its middle (still sampling, as the charger keeps
    # its transaction), ended; then 900 s clock-aligned values again, with
    # heartbeats every 60 s. The samples sent while Faulted are neither the idle
    # cadence nor a reason to expect one (issue 17: four StaleTelemetry pages on
    # such a connector, each ~10 min after one of its 900 s reports).
    idx = fleet(1)
    s0 = T0 + 7200.0  # session start, after 2 h of idle reports
    idle_before = charging(8, t0=T0)
    idle_before.ts[:] = T0 + 900.0 * np.arange(8)
    idle_before.recv[:] = idle_before.ts + 0.5
    idle_before.values[:, P] = 0.0
    sess = charging(360, t0=s0 + 10)  # 60 min at 10 s
    end = s0 + 10 + 3600.0
    idle_after = charging(12, t0=end + 300)
    idle_after.ts[:] = end + 300 + 900.0 * np.arange(12)
    idle_after.recv[:] = idle_after.ts + 0.5
    idle_after.values[:, P] = 0.0
    ev: list[Event] = [StatusEvent("CP0", 1, T0 - 10, T0 - 10, "Available")]
    ev += session_start(idx, 0, s0)
    ev += [
        StatusEvent("CP0", 1, s0 + 900, s0 + 900, "Faulted"),
        StatusEvent("CP0", 1, s0 + 1800, s0 + 1800, "Charging"),
        StatusEvent("CP0", 1, end + 5, end + 5, "Finishing"),
        TransactionEvent("CP0", 1, end + 6, end + 6, "stop", "tx0"),
        StatusEvent("CP0", 1, end + 7, end + 7, "Available"),
    ]
    last = float(idle_after.recv[-1]) + 60
    ev += [HeartbeatEvent("CP0", t, t) for t in np.arange(T0, last, 60.0).tolist()]
    b = MeterBatch.concat([idle_before, sess, idle_after])
    ds = run(b, ev, idx, cuts=cuts, faults=["stale_telemetry"], now=last)
    assert of(ds, "stale_telemetry") == []
