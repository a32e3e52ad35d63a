"""Zero-power anchors at Charging status changes, and statuses that overtake meter batches."""

from __future__ import annotations

import json

import pytest

from chargewatch.model.batch import MeterBatch
from chargewatch.model.events import Event
from chargewatch.model.fleet import ConnectorIndex
from chargewatch.sessions.session_engine import SessionConfig, SessionEngine, SessionRecord
from tests.billing.sessionkit import T0, batch, final, start, status, stop

EMPTY = MeterBatch.empty()
Step = tuple[float, MeterBatch, list[Event]]


def _one(records: list[SessionRecord]) -> SessionRecord:
    (r,) = final(records).values()
    return r


def _boundaries(r: SessionRecord) -> list[tuple[str, float, float]]:
    return [(p.kind, round(p.start - T0, 3), round(p.end - T0, 3)) for p in r.periods]


def _dense_race(index: ConnectorIndex, status_first: bool, recv_delay: float = 0.5) -> list[Step]:
    """Samples every second, charging from T0 + 1, published in 30 s batches; the
    Charging status (at T0 + 1) either before the batch holding the samples up to
    it or together with it."""
    ts = [T0 - 5 + i for i in range(60)]
    p = [0.0 if t < T0 + 1 else 7000.0 for t in ts]
    e = [1000.0 + 7000.0 / 3600 * max(0.0, t - (T0 + 1)) for t in ts]
    b1 = batch(index, "A", 1, ts[:30], e[:30], p[:30], recv=[ts[29] + recv_delay] * 30)
    b2 = batch(index, "A", 1, ts[30:], e[30:], p[30:], recv=[ts[-1] + recv_delay] * 30)
    ev: list[Event] = [
        status("A", "Preparing", T0 - 10),
        start("A", "t1", T0, 1000.0),
        status("A", "Charging", T0 + 1),
    ]
    steps: list[Step]
    if status_first:
        steps = [(T0 + 1.5, EMPTY, ev), (ts[29] + recv_delay + 0.1, b1, [])]
    else:
        steps = [(ts[29] + recv_delay + 0.1, b1, ev)]
    end: list[Event] = [stop("A", "t1", ts[-1] + 1, e[-1]), status("A", "Available", ts[-1] + 2)]
    return [*steps, (ts[-1] + recv_delay + 0.1, b2, []), (ts[-1] + recv_delay + 3, EMPTY, end)]


def _run(
    steps: list[Step], index: ConnectorIndex, cfg: SessionConfig | None = None
) -> list[SessionRecord]:
    eng = SessionEngine(index, cfg)
    out: list[SessionRecord] = []
    for now, b, ev in steps:
        out += eng.update(b, ev, now)
    return out


def test_a_status_ahead_of_its_meter_batch_gives_the_same_record_as_one_behind_it() -> None:
    index = ConnectorIndex()
    ahead = _one(_run(_dense_race(index, status_first=True), index))
    behind = _one(_run(_dense_race(index, status_first=False), index))
    assert ahead == behind
    # Every sample was received within a second: nothing is late.
    assert ahead.quality == ()
    # The real 7 kW sample at the status time is kept, not the synthetic 0 W
    # point: charging starts where power crosses 50 W between T0 and T0 + 1.
    assert _boundaries(ahead) == [("idle", 0.0, 0.007), ("charging", 0.007, 55.0)]
    assert ahead.energy_wh == pytest.approx(7000.0 / 3600 * 53, abs=1e-6)


def test_samples_received_late_are_flagged_even_behind_a_waiting_anchor() -> None:
    index = ConnectorIndex()
    r = _one(_run(_dense_race(index, status_first=True, recv_delay=400.0), index))
    assert "late_data" in r.quality


def test_samples_out_of_order_are_flagged_even_behind_a_waiting_anchor() -> None:
    """The second meter batch overtakes the first: the first one's samples come
    after real samples past them were merged, which is out of order."""
    index = ConnectorIndex()
    steps = _dense_race(index, status_first=True)
    (s_status, s_b1, s_b2, s_end) = steps
    swapped = [s_status, (s_b1[0], s_b2[1], []), (s_b2[0], s_b1[1], []), s_end]
    r = _one(_run(swapped, index))
    assert "late_data" in r.quality


def _sparse(index: ConnectorIndex, mode: str) -> list[Step]:
    """One sample every 15 minutes (one MeterValues each, sent at once); Charging
    from T0 + 600 to T0 + 3000. ``mode``: ``status_first`` (each status before the
    sample after it), ``together`` (a status with the sample after it),
    ``ticking`` (status first, and the engine stepping every minute in between)."""
    ts = [T0 + 900.0 * k for k in range(5)]  # T0 .. T0 + 3600
    p = [0.0, 7000.0, 7000.0, 7000.0, 0.0]
    e = [500.0, 500.0 + 7000.0 * 300 / 3600, 0.0, 0.0, 0.0]
    e[2] = e[1] + 7000.0 * 900 / 3600
    e[3] = e[2] + 7000.0 * 900 / 3600
    e[4] = e[3] + 7000.0 * 300 / 3600

    def one(k: int) -> MeterBatch:
        return batch(index, "S", 1, [ts[k]], [e[k]], [p[k]])

    on: list[Event] = [status("S", "Charging", T0 + 600)]
    off: list[Event] = [status("S", "SuspendedEV", T0 + 3000)]
    steps: list[Step] = [
        (T0 + 1, one(0), [status("S", "Preparing", T0 - 5), start("S", "s1", T0 - 5, 500.0)])
    ]
    if mode == "together":
        steps += [(ts[1] + 1, one(1), on), (ts[2] + 1, one(2), []), (ts[3] + 1, one(3), [])]
        steps += [(ts[4] + 1, one(4), off)]
    else:
        steps += [(T0 + 601, EMPTY, on), (ts[1] + 1, one(1), []), (ts[2] + 1, one(2), [])]
        steps += [(ts[3] + 1, one(3), []), (T0 + 3001, EMPTY, off), (ts[4] + 1, one(4), [])]
        if mode == "ticking":
            steps += [(T0 + 60.0 * k + 30, EMPTY, []) for k in range(1, 60)]
            steps.sort(key=lambda st: st[0])
    steps.append((ts[4] + 120, EMPTY, [stop("S", "s1", ts[4] + 60, e[4])]))
    return steps


@pytest.mark.parametrize("mode", ["status_first", "together", "ticking"])
def test_sparse_samples_still_put_the_charging_boundaries_at_the_status_changes(mode: str) -> None:
    index = ConnectorIndex()
    r = _one(_run(_sparse(index, mode), index))
    assert "late_data" not in r.quality
    # The 0 W anchors bound the integral: the ramps are between each status change
    # and the sample next to it, not smeared across the 15-minute interval.
    assert _boundaries(r) == [
        ("idle", -5.0, 602.143),
        ("charging", 602.143, 2997.857),
        ("idle", 2997.857, 3660.0),
    ]


def test_a_session_that_closes_while_its_anchor_waits_gets_the_anchor_in_one_record() -> None:
    """The connector goes from Charging to Available and no stop comes: the
    Available rule closes the session (after this step's samples went in) while
    the anchor still waits for a sample past it. The record has it at once,
    rather than a revision when the anchor would have been merged later."""
    index = ConnectorIndex()
    ts = [T0 + 900.0 * k for k in range(3)]
    e = [0.0, 7000.0 * 900 / 3600, 7000.0 * 1800 / 3600]
    p = [7000.0, 7000.0, 7000.0]
    plug: list[Event] = [
        status("G", "Preparing", T0 - 2),
        start("G", "g", T0 - 2, 0.0),
        status("G", "Charging", T0 - 1),
    ]
    steps: list[Step] = [
        (T0 - 1, EMPTY, plug),
        *[
            (t + 1, batch(index, "G", 1, [t], [x], [y]), [])
            for t, x, y in zip(ts, e, p, strict=True)
        ],
        (T0 + 2001, EMPTY, [status("G", "Available", T0 + 2000)]),
        (T0 + 2061, EMPTY, []),
        (T0 + 2500, EMPTY, []),
    ]
    (r,) = _run(steps, index, SessionConfig(available_grace_s=60.0))  # no revision
    assert r.stop_reason == "available"
    assert r.revision == 0 and "late_data" not in r.quality
    assert _boundaries(r)[-2:] == [("charging", -0.993, 1998.571), ("idle", 1998.571, 2000.0)]


def test_a_waiting_anchor_survives_a_checkpoint() -> None:
    index = ConnectorIndex()
    steps = _dense_race(index, status_first=True)
    straight = _run(steps, index)
    eng = SessionEngine(index)
    eng.update(*steps[0][1:], steps[0][0])
    state = json.loads(json.dumps(eng.snapshot()))
    (sess,) = state["sessions"]
    assert sess["anchors"] == [T0 + 1]
    resumed = SessionEngine(index)
    resumed.restore(state)
    out: list[SessionRecord] = []
    for now, b, ev in steps[1:]:
        out += resumed.update(b, ev, now)
    assert out == straight
    # Once merged, the key is gone again: version 1's shape.
    assert all("anchors" not in s for s in resumed.snapshot()["sessions"])
