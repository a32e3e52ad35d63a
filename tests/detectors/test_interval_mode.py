"""The learned meter interval follows the switch between a transaction's
sampling (10-60 s) and idle clock-aligned values (900 s): a supply fault on a
connector that just went idle is judged by its idle cadence."""

from __future__ import annotations

import numpy as np
import orjson
import pytest

from chargewatch.detectors import DetectorSet
from chargewatch.model.batch import FIELD_INDEX, MeterBatch
from chargewatch.model.events import Event, StatusEvent, TransactionEvent
from chargewatch.model.fleet import ConnectorIndex

from .helpers import T0, charging, fleet, of, run, session_start


def _idle(recv: list[float], volts: float) -> MeterBatch:
    """Idle clock-aligned readings (no current) at ``recv``."""
    b = charging(len(recv), power=0.0)
    ts = np.array(recv)
    b.values[:, 5:8] = volts
    b.values[:, FIELD_INDEX["energy_wh"]] = 20_000.0
    return MeterBatch(b.conn, ts, ts + 0.5, b.values)


def _session_then_idle(volts: float) -> tuple[MeterBatch, list[Event]]:
    busy = charging(60)  # 10 s samples for 10 min
    end = T0 + 600.0
    ev: list[Event] = [
        *session_start(fleet(1)),
        TransactionEvent("CP0", 1, end, end, "stop", "tx0"),
        StatusEvent("CP0", 1, end + 1, end + 1, "Finishing"),
        StatusEvent("CP0", 1, end + 60, end + 60, "Available"),
    ]
    idle = _idle([T0 + 900.0, T0 + 1800.0, T0 + 2700.0, T0 + 3600.0], volts)
    return MeterBatch.concat([busy, idle]), ev


def test_overvoltage_on_a_newly_idle_connector_is_found_at_its_second_reading() -> None:
    idx = fleet(1)
    batch, ev = _session_then_idle(262.0)
    ds = run(batch, ev, idx, cuts=8, faults=["voltage_out_of_band"])
    (f,) = of(ds, "voltage_out_of_band")
    assert (f.start, f.detected) == (T0 + 900.0, T0 + 1800.0)


def test_interval_is_the_modes_own_and_comes_back_with_the_next_session() -> None:
    idx = fleet(1)
    batch, ev = _session_then_idle(230.0)
    ds = run(batch, ev, idx, cuts=8, faults=["voltage_out_of_band"])
    assert of(ds, "voltage_out_of_band") == []
    assert ds._seq.interval[0] == 900.0
    t1 = T0 + 4000.0
    again = session_start(idx, t=t1 - 5)
    rows = charging(3, t0=t1)
    ds.update(MeterBatch.empty(), again, idx, t1)
    ds.update(rows, [], idx, t1 + 30)
    # The 10 s learned in the last session, not 900 s nor a fresh guess.
    assert ds._seq.interval[0] == 10.0


def _idle_session_stop(idx: ConnectorIndex) -> tuple[MeterBatch, list[Event]]:
    """An idle reporter (900 s aligned values), a 10 min session at 10 s, its stop."""
    ev: list[Event] = [StatusEvent("CP0", 1, T0 - 5000, T0 - 5000, "Available")]
    before = _idle([T0 - 4500.0 + 900.0 * k for k in range(5)], 230.0)
    _, tail = _session_then_idle(230.0)
    return MeterBatch.concat([before, charging(60)]), ev + tail


# Receive-time slices of under 90 s: the session's 10 s rows come a few per
# update, as the collector's coalesced batches bring them, so the interval the
# connector had while idle is known when the session begins.
@pytest.mark.parametrize("cuts", [70, 400])
def test_a_restart_after_the_stop_still_switches_to_the_idle_interval(cuts: int) -> None:
    """The mode and the interval per mode are in the snapshot: the first idle
    reading after a restart is a mode change (not the first mode seen), so
    the interval is the idle one at once and a supply fault on the newly idle
    connector is found at its second reading, as without the restart."""
    idx = fleet(1)
    batch, ev = _idle_session_stop(idx)
    ds = run(batch, ev, idx, cuts=cuts, faults=["voltage_out_of_band"])
    assert ds._seq.interval[0] == 10.0
    snap = orjson.loads(orjson.dumps(DetectorSet(index=idx).snapshot()))  # (nothing yet)
    assert snap["chargers"] == {}
    ds.index = idx
    snap = orjson.loads(orjson.dumps(ds.snapshot()))
    assert snap["chargers"]["CP0"]["sequencer"] == {"1": [1, 900.0, 10.0]}

    # The restarted collector: a new index and detector set, the snapshot, the
    # status the fleet state kept (``resume``), then the idle readings.
    idx2 = fleet(1)
    after = DetectorSet(faults=["voltage_out_of_band"], index=idx2)
    after.restore(snap)
    after.resume({("CP0", 1): ("Available", False)}, T0 + 700.0)
    idle = _idle([T0 + 900.0, T0 + 1800.0, T0 + 2700.0, T0 + 3600.0], 262.0)
    after.update(idle.take(np.arange(1)), [], idx2, T0 + 901.0)
    assert after._seq.interval[0] == 900.0
    after.update(idle.take(np.arange(1, 4)), [], idx2, T0 + 3601.0)
    (f,) = of(after, "voltage_out_of_band")
    assert (f.start, f.detected) == (T0 + 900.0, T0 + 1800.0)


def test_a_long_frame_after_the_change_still_keeps_the_old_modes_interval() -> None:
    """Nine rows or more after a mode change in one update (a replay or harness
    chunk): the old mode's deltas have left the window by then, so its interval
    is taken from the frame's rows before the change. The next session is then
    judged at its 10 s at once."""
    idx = fleet(1)
    _, ev = _session_then_idle(230.0)
    idle = _idle([T0 + 900.0 * k for k in range(1, 12)], 230.0)  # 11 idle readings
    ds = DetectorSet(faults=["voltage_out_of_band"])
    ds.update(MeterBatch.concat([charging(60), idle]), ev, idx, T0 + 11_000.0)
    seq = ds._seq
    assert seq.interval[0] == 900.0
    assert seq.mode_interval[0, 1] == 10.0  # kept for the next transaction
    t1 = T0 + 11_000.0
    ds.update(MeterBatch.empty(), session_start(idx, t=t1 - 5), idx, t1)
    ds.update(charging(2, t0=t1), [], idx, t1 + 20)
    # The window is seeded with the 10 s (without it: one delta among NaNs).
    assert np.isfinite(seq._deltas.buf[0]).all() and seq.interval[0] == 10.0
