from __future__ import annotations

import math
from typing import Any

import numpy as np
import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from chargewatch.model.batch import FIELD_INDEX, MeterBatch
from chargewatch.model.events import OnlineEvent, StatusEvent, TransactionEvent
from chargewatch.model.fleet import ConnectorIndex
from chargewatch.state.fleet_state import FleetState

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


def test_a_field_missing_from_a_batch_keeps_its_last_value() -> None:
    index = ConnectorIndex()
    a, b = index.id("A", 1), index.id("B", 1)
    st = FleetState(index)
    st.on_batch(batch([a, b], [10, 10], [7, 8], [100, 200]), [], 20)
    # No energy anywhere in this batch; B's only in an earlier row of its own.
    st.on_batch(batch([a, b, b], [11, 11, 12], [5, 6, 4], [np.nan, 250, np.nan]), [], 21)
    assert st.values[a, P] == 5 and st.values[a, E] == 100
    assert st.values[b, P] == 4 and st.values[b, E] == 250
    st.on_batch(batch([a, a], [13, 14], [3, 2], [np.nan, np.nan]), [], 22)
    assert st.values[a, P] == 2 and st.values[a, E] == 100
    assert st.value_ts[a] == 14


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


def test_a_transaction_start_ends_the_error_of_a_finishing_status() -> None:
    # A QUENCH DC charger (tests/fixtures/real_ocpp/quench_dc060_fault_ocppparser):
    # a failed attempt ends Finishing with OtherError; 40 s later StartTransaction
    # is accepted and it charges at 180 kW without another StatusNotification.
    index = ConnectorIndex()
    st = FleetState(index)
    finishing = StatusEvent(
        "Q", 2, 10, 10, "Finishing", "OtherError", "BMSCommunicationTimeout", "1", source="ocpp1.6"
    )
    st.on_batch(MeterBatch.empty(), [finishing], 10)
    i = index.id("Q", 2)
    assert st.error_code[i] == "OtherError"
    start = TransactionEvent("Q", 2, 50, 50, "start", "77012", 3306340, source="ocpp1.6")
    st.on_batch(MeterBatch.empty(), [start], 50)
    assert (st.error_code[i], st.mrec[i], st.status_since[i]) == ("NoError", "", 50)
    assert i in st._changed


def test_a_transaction_start_keeps_a_faulted_error() -> None:
    # The QUENCH TS0064 emergency stop: Faulted, then a charge starts; the
    # charger says Faulted again later. Faulted is over only when a status says so.
    index = ConnectorIndex()
    st = FleetState(index)
    faulted = StatusEvent("Q", 2, 10, 10, "Faulted", "OtherError", "EmergencyPressed", "17")
    start = TransactionEvent("Q", 2, 50, 50, "start", "51613", 5121707)
    st.on_batch(MeterBatch.empty(), [faulted, start], 50)
    assert st.error_code[index.id("Q", 2)] == "OtherError"


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


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.lists(
            st.tuples(
                st.integers(0, 3),
                st.integers(0, 6),
                st.none() | st.floats(0, 100),
                st.none() | st.floats(0, 100),
            ),
            max_size=12,
        ),
        min_size=1,
        max_size=4,
    )
)
def test_latest_values_match_a_per_row_reference(batches: list[list[Any]]) -> None:
    index = ConnectorIndex()
    ids = [index.id(f"C{k}", 1) for k in range(4)]
    state = FleetState(index)
    ref_vals: dict[int, list[float]] = {c: [math.nan, math.nan] for c in ids}
    ref_ts: dict[int, float] = {}
    for rows in batches:
        if not rows:
            continue
        nan = lambda x: math.nan if x is None else x  # noqa: E731
        state.on_batch(
            batch(
                [ids[r[0]] for r in rows],
                [float(r[1]) for r in rows],
                [nan(r[2]) for r in rows],
                [nan(r[3]) for r in rows],
            ),
            [],
            100,
        )
        for c in {ids[r[0]] for r in rows}:
            mine = sorted(
                ((float(r[1]), k, r) for k, r in enumerate(rows) if ids[r[0]] == c),
                key=lambda x: (x[0], x[1]),
            )
            t_last = mine[-1][0]
            if c in ref_ts and t_last < ref_ts[c]:
                continue
            for f, j in ((0, 2), (1, 3)):
                seen = [r[j] for _, _, r in mine if r[j] is not None]
                if seen:
                    ref_vals[c][f] = seen[-1]
            ref_ts[c] = t_last
    for c in ids:
        got = [float(state.values[c, P]), float(state.values[c, E])]
        assert got == ref_vals[c] or all(
            (math.isnan(a) and math.isnan(b)) or a == b
            for a, b in zip(got, ref_vals[c], strict=True)
        )
        if c in ref_ts:
            assert state.value_ts[c] == ref_ts[c]
