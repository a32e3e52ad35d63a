"""The learned meter interval follows the switch between a transaction's
sampling (10-60 s) and idle clock-aligned values (900 s): a supply fault on a
connector that just went idle is judged by its idle cadence."""

from __future__ import annotations

import numpy as np

from chargewatch.model.batch import FIELD_INDEX, MeterBatch
from chargewatch.model.events import Event, StatusEvent, TransactionEvent

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
