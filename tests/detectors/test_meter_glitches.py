"""meter_regression against one corrupt register reading, and against a real
regression that takes a per-transaction register below zero.

A fall must be confirmed by the next known register (still below the value
before the fall): one bad sample among good registers gives no finding of any
detector, at 1 s and at 60 s sampling, wherever the batches are cut; a real
regression is found within the detector's minimum duration (0) + 2 sample
intervals, its negative registers kept and counted."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest

from chargewatch.detectors import DetectorSet
from chargewatch.model.batch import MeterBatch
from chargewatch.model.events import Event
from chargewatch.model.fleet import ConnectorIndex

from .helpers import T0, fleet, of, run, session_start
from .test_cadence import (
    ONSET,
    SAMPLE_FAULTS,
    E,
    _second_start,
    _two_sessions,
    session,
)

# 0 and a low positive value (a register read as its low word, a lost digit)
# and a negative one (a sign error): each once, in a 1 MWh register.
GLITCHES = (-5.0, 0.0, 5.0)


def _glitched(dt: float, value: float) -> MeterBatch:
    b = session(dt).batch()
    b.values[np.searchsorted(b.ts, T0 + ONSET), E] = value
    return b


def _split_after(
    b: MeterBatch, i: int, events: Sequence[Event], idx: ConnectorIndex
) -> DetectorSet:
    """Two updates, the first ending at row ``i``: a fall there is confirmed
    (or not) by the next update's first register."""
    ds = DetectorSet(faults=SAMPLE_FAULTS)
    ds.update(b.take(np.arange(i + 1)), events, idx, float(b.recv[i]))
    ds.update(b.take(np.arange(i + 1, len(b))), [], idx, float(b.recv[-1]))
    return ds


@pytest.mark.parametrize("dt", [1.0, 60.0])
@pytest.mark.parametrize("value", GLITCHES)
def test_one_glitched_register_gives_no_finding(dt: float, value: float) -> None:
    idx = fleet(1)
    b = _glitched(dt, value)
    minutes = run(
        b, session_start(idx), idx, cuts=int(b.ts[-1] - b.ts[0]) // 60, faults=SAMPLE_FAULTS
    )
    # The glitch as the last row of an update: its confirmation waits for the next.
    split = _split_after(b, int(np.searchsorted(b.ts, T0 + ONSET)), session_start(idx), idx)
    for ds in (minutes, split):
        assert ds.findings == [], f"{value} at {dt:g} s: {ds.findings}"
        assert ds.counters.get("negative_registers", 0) == (1 if value < 0 else 0)


@pytest.mark.parametrize("dt", [10.0, 60.0])
def test_regression_below_zero_is_found_in_time(dt: float) -> None:
    # A register that restarts at 0 for the transaction (~5 kWh by the onset at
    # 20 kW) falls 8 kWh, below zero, and counts on from there.
    idx = fleet(1)
    s = session(dt)
    step = s.power * np.diff(s.t, prepend=s.t[0]) / 3600
    s.energy = np.cumsum(step) - np.where(s.t >= ONSET, 8000.0, 0.0)
    b, i = s.batch(), int(np.searchsorted(s.t, ONSET))
    minutes = run(b, session_start(idx), idx, cuts=int(s.t[-1]) // 60, faults=SAMPLE_FAULTS)
    for ds in (minutes, _split_after(b, i, session_start(idx), idx)):
        assert [f.fault for f in ds.findings] == ["meter_regression"], ds.findings
        (f,) = ds.findings
        ttd = f.detected - (T0 + ONSET)
        assert 0.0 <= ttd <= 2 * dt, f"at {dt:g} s: detected after {ttd:g} s"
        assert f.evidence["energy_wh"] < 0.0
        assert f.evidence["drop_wh"] == pytest.approx(8000.0 - step[s.t >= ONSET][0])
        assert ds.counters["negative_registers"] > 0


@pytest.mark.parametrize("dt", [1.0, 60.0])
def test_two_low_registers_in_a_row_are_a_regression(dt: float) -> None:
    # The rule's edge: a fall that the next register does not undo persists.
    idx = fleet(1)
    b = session(dt).batch()
    i = np.searchsorted(b.ts, T0 + ONSET)
    b.values[i : i + 2, E] = 5.0
    for ds in (
        run(b, session_start(idx), idx, faults=SAMPLE_FAULTS),
        _split_after(b, i, session_start(idx), idx),
    ):
        assert [f.fault for f in ds.findings] == ["meter_regression"], ds.findings
        (f,) = of(ds, "meter_regression")
        assert f.detected == pytest.approx(b.ts[i + 1])


@pytest.mark.parametrize("dt", [1.0, 60.0])
def test_negative_glitch_then_register_restart_is_no_regression(dt: float) -> None:
    # A last register of -5 Wh in the first transaction, then the register
    # restarting at 0 for the next: the restart confirms no fall.
    idx = fleet(1)
    s = _two_sessions(dt, 0.0)
    assert s.energy is not None
    first_len = int(np.count_nonzero(s.t < 1800.0))
    s.energy[first_len - 1] = -5.0
    events = session_start(idx) + _second_start(idx, 3000.0)
    ds = run(s.batch(), events, idx, cuts=max(2, int(s.t[-1]) // 60), faults=SAMPLE_FAULTS)
    assert ds.findings == [], ds.findings


# A single reading too high in a 1 MWh register: 5x, +10 %, +50 kWh.
HIGH_GLITCHES = (5.0e6, 1.1e6, 1.05e6)


@pytest.mark.parametrize("dt", [1.0, 10.0, 60.0])
@pytest.mark.parametrize("value", HIGH_GLITCHES)
def test_one_register_too_high_gives_no_finding(dt: float, value: float) -> None:
    # The fall after the high reading lands where the register was counting:
    # the glitch ending, not a regression (before: meter_regression at every dt).
    idx = fleet(1)
    b = _glitched(dt, value)
    i = int(np.searchsorted(b.ts, T0 + ONSET))
    minutes = run(
        b, session_start(idx), idx, cuts=int(b.ts[-1] - b.ts[0]) // 60, faults=SAMPLE_FAULTS
    )
    # Cut after the high reading, and after the fall: state carried across updates.
    for ds in (minutes, _split_after(b, i, session_start(idx), idx),
               _split_after(b, i + 1, session_start(idx), idx)):  # fmt: skip
        assert ds.findings == [], f"{value} at {dt:g} s: {ds.findings}"
        assert ds.counters.get("meter_regression.register_spikes", 0) == 1


@pytest.mark.parametrize("dt", [10.0, 60.0, 300.0])
def test_uint32_max_reading_gives_no_finding(dt: float) -> None:
    # 0xFFFFFFFF Wh, what a failed 32-bit meter read gives: 4,295x a 1 MWh
    # register, in the thousandfold band, so the fall back is no regression
    # and the pair of steps no unit change (before: meter_unit_error at 60 s).
    idx = fleet(1)
    b = _glitched(dt, float(2**32 - 1))
    i = int(np.searchsorted(b.ts, T0 + ONSET))
    minutes = run(
        b, session_start(idx), idx, cuts=int(b.ts[-1] - b.ts[0]) // 60, faults=SAMPLE_FAULTS
    )
    for ds in (minutes, _split_after(b, i, session_start(idx), idx)):
        assert ds.findings == [], f"at {dt:g} s: {ds.findings}"


@pytest.mark.parametrize("dt", [10.0, 60.0])
def test_fall_below_the_register_before_a_high_reading_is_a_regression(dt: float) -> None:
    # A high reading followed by a register 8 kWh below where it had been: the
    # meter lost counted energy, so the spike rule must not hide it.
    idx = fleet(1)
    s = session(dt)
    step = s.power * np.diff(s.t, prepend=s.t[0]) / 3600
    s.energy = 1.0e6 + np.cumsum(step) - np.where(s.t > ONSET, 8000.0, 0.0)
    i = int(np.searchsorted(s.t, ONSET))
    s.energy[i] = 5.0e6
    b = s.batch()
    ds = run(b, session_start(idx), idx, cuts=int(s.t[-1]) // 60, faults=SAMPLE_FAULTS)
    assert [f.fault for f in ds.findings] == ["meter_regression"], ds.findings
