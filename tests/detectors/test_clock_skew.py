"""ClockSkew on sparse evidence: an idle OCPP connector's clock-aligned rows
every 900 s, and the charger's stamped statuses and transactions
(docs/detectors.md, clock_skew)."""

from __future__ import annotations

import numpy as np

from chargewatch.model.batch import N_FIELDS, MeterBatch
from chargewatch.model.events import Event, StatusEvent, TransactionEvent
from chargewatch.model.fleet import ConnectorIndex

from .helpers import T0, fleet, of, run


def _idle_rows(recv: list[float], ahead: float, conn: int = 0) -> MeterBatch:
    """Clock-aligned idle readings received at ``recv``, stamped ``ahead`` s early."""
    r = np.array(recv)
    v = np.full((r.shape[0], N_FIELDS), np.nan)
    v[:, 0] = 10_000.0
    return MeterBatch(np.full(r.shape[0], conn, np.int32), r + ahead, r, v)


def _index() -> ConnectorIndex:
    idx = fleet(1)
    idx.id("CP0", 1)
    return idx


def test_one_aligned_reading_ahead_is_found_after_the_minimum() -> None:
    # One reading 900 s ahead; the next is 900 s away. A stamp from the future
    # is no late delivery: the clock is ahead from it on.
    idx = _index()
    ds = run(_idle_rows([T0], 900.0), [], idx, faults=["clock_skew"], now=T0 + 299)
    assert of(ds, "clock_skew") == []
    ds.tick(T0 + 300)
    (f,) = of(ds, "clock_skew")
    assert (f.start, f.detected, f.end) == (T0, T0 + 300, None)
    assert f.evidence["offset_s"] == -900.0
    # The next aligned reading, right again, ends it.
    ds.update(_idle_rows([T0 + 900], 0.0), [], idx, T0 + 900)
    assert f.end == T0 + 900


def test_stamped_statuses_and_transactions_are_evidence() -> None:
    idx = _index()
    ev: list[Event] = [
        StatusEvent("CP0", 1, T0 + 900, T0, "Preparing", source="ocpp1.6"),
        TransactionEvent("CP0", 1, T0 + 905, T0 + 5, "start", "t1", source="ocpp1.6"),
    ]
    ds = run(MeterBatch.empty(), ev, idx, faults=["clock_skew"], now=T0 + 400)
    (f,) = of(ds, "clock_skew")
    assert (f.start, f.detected) == (T0, T0 + 300)


def test_unstamped_messages_are_no_evidence() -> None:
    # A 1.6 status without its optional timestamp (the decoder stands recv in)
    # neither clears an ahead clock nor shows one right.
    idx = _index()
    ev: list[Event] = [StatusEvent("CP0", 1, T0 + 100, T0 + 100, "Available", source="ocpp1.6")]
    ds = run(_idle_rows([T0], 900.0), ev, idx, faults=["clock_skew"], now=T0 + 400)
    (f,) = of(ds, "clock_skew")
    assert f.start == T0 and f.end is None


def test_queued_stop_and_a_right_message_before_the_minimum_are_nothing() -> None:
    idx = _index()
    # A StopTransaction replayed from the charger's offline queue: 2 h old, not skewed.
    ev: list[Event] = [
        TransactionEvent("CP0", 1, T0 - 7200, T0, "stop", "t1", source="ocpp1.6"),
        StatusEvent("CP0", 1, T0 + 1000, T0 + 100, "Available", source="ocpp1.6"),
        StatusEvent("CP0", 1, T0 + 200, T0 + 200, "Available", source="ocpp1.6"),
    ]
    ds = run(_idle_rows([T0 + 150], 0.0), ev, idx, faults=["clock_skew"], now=T0 + 5000)
    assert of(ds, "clock_skew") == []
