from __future__ import annotations

import math

import numpy as np
import orjson

from chargewatch.collector.batch import FIELD_INDEX, MeterBatch
from chargewatch.collector.events import OnlineEvent, StatusEvent
from chargewatch.fleet import ConnectorIndex
from chargewatch.fleetstate import FleetState

P, E = FIELD_INDEX["power_w"], FIELD_INDEX["energy_wh"]


def batch(conn: list[int], ts: list[float], power: list[float], energy: list[float]) -> MeterBatch:
    n = len(conn)
    v = np.full((n, 11), np.nan)
    v[:, P] = power
    v[:, E] = energy
    return MeterBatch(np.array(conn, np.int32), np.array(ts), np.array(ts) + 0.5, v)


def test_latest_value_per_field_in_meter_time_order() -> None:
    index = ConnectorIndex()
    a, b = index.id("A", 1), index.id("B", 1)
    st = FleetState(index)
    # Rows arrive out of order; energy missing in B's newest sample.
    st.on_batch(batch([a, b, a, b], [12, 20, 10, 21], [7, 8, 6, 9], [100, 200, 90, np.nan]), [], 30)
    assert st.values[a, P] == 7 and st.values[a, E] == 100
    assert st.values[b, P] == 9 and st.values[b, E] == 200
    # An older (late) sample never overwrites a newer one.
    st.on_batch(batch([a], [5], [1], [1]), [], 31)
    assert st.values[a, P] == 7
    assert st.value_ts[a] == 12


def test_status_and_online() -> None:
    index = ConnectorIndex()
    st = FleetState(index)
    st.on_batch(
        MeterBatch.empty(),
        [
            StatusEvent("A", 1, 10, 10, "Charging"),
            OnlineEvent("B", False, 11),
            OnlineEvent("A", True, 12),
        ],
        12,
    )
    i = index.id("A", 1)
    assert st.status[i] == "Charging" and st.status_since[i] == 10
    assert st.chargers_online(now=20) == 1
    assert math.isnan(st.values[i, P])


def test_snapshot_restores_status_into_a_new_index() -> None:
    index = ConnectorIndex()
    st = FleetState(index)
    st.on_batch(batch([index.id("A", 1)], [5], [7], [100]), [], 6)
    before = st.changes
    st.on_batch(
        MeterBatch.empty(),
        [StatusEvent("B", 2, 10, 10, "Faulted", "GroundFailure"), OnlineEvent("B", False, 11)],
        12,
    )
    assert st.changes == before + 2
    # A restart: another process, connectors in another order.
    index2 = ConnectorIndex()
    index2.id("C", 1)
    st2 = FleetState(index2)
    st2.restore(orjson.loads(orjson.dumps(st.snapshot())))
    b, a = index2.id("B", 2), index2.id("A", 1)
    assert st2.status[b] == "Faulted" and st2.error_code[b] == "GroundFailure"
    assert st2.status_since[b] == 10 and st2.online["B"] is False
    assert st2.values[a, P] == 7 and st2.value_ts[a] == 5
    assert math.isnan(st2.values[b, P])
    assert st2.frame(20)["error_code"][b] == "GroundFailure"
