"""The robust statistics: each catches what a fixed threshold missed, and stays
quiet on noise that a fixed threshold would have flagged."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chargewatch.detectors import DetectorConfig
from chargewatch.detectors.sequencer import linear_scan
from chargewatch.model.batch import FIELD_INDEX, MeterBatch

from .helpers import T0, charging, fleet, of, run

TEMP = FIELD_INDEX["temperature_c"]


def _at_1hz(n: int, temp: np.ndarray) -> MeterBatch:
    """A healthy session sampled every second with the given temperatures."""
    b = charging(n)
    ts = T0 + np.arange(n, dtype=np.float64)
    b.values[:, TEMP] = temp
    return MeterBatch(b.conn, ts, ts + 0.5, b.values)


def _lag_rate(temp: np.ndarray, ts: np.ndarray, k: int = 6) -> np.ndarray:
    """The slope over the last k samples (the rate this detector used before)."""
    return (temp[k:] - temp[:-k]) / (ts[k:] - ts[:-k]) * 60.0


def test_over_temperature_rate_ignores_sensor_noise_at_1hz() -> None:
    # 60 C and steady, 0.3 C of sensor noise, sampled at 1 Hz: the time-weighted
    # EWMA of the slope stays far below 3 C/min, whatever the batch cuts.
    rng = np.random.default_rng(5)
    n = 1800
    temp = 60.0 + rng.normal(0, 0.3, n)
    b = _at_1hz(n, temp)
    for cuts in (1, 13):
        ds = run(b, [], fleet(1), cuts=cuts, faults=["over_temperature"])
        assert of(ds, "over_temperature") == []
        assert ds.signals["over_temperature_score"][0] < 0.9  # 60 / 75 C: the level


def test_over_temperature_rate_catches_a_noisy_rise_at_1hz() -> None:
    # 5 C/min from 55 C with the same noise. A slope over six samples (the rate
    # used before) dips below 3 C/min every few seconds, so a rise never holds for
    # rate_min_duration_s and nothing was found; the EWMA holds above it.
    rng = np.random.default_rng(6)
    n = 900
    rise = 5.0 / 60.0
    temp = 55.0 + np.arange(n) * rise + rng.normal(0, 0.3, n)
    temp = np.minimum(temp, 74.0)  # below the level: only the rate can tell
    b = _at_1hz(n, temp)
    rising = slice(60, 200)  # while the rise lasts (74 C is reached at ~230 s)
    assert (_lag_rate(temp, b.ts)[rising] <= 3.0).mean() > 0.1
    (f,) = of(run(b, [], fleet(1), cuts=7, faults=["over_temperature"]), "over_temperature")
    # The EWMA reaches 3 of 5 C/min after ~tau * ln(2.5) = 55 s, then the rise
    # must last rate_min_duration_s (90 s: it holds the 30 s the rule's `for` had).
    assert f.detected - T0 <= 55.0 + 90.0 + 15.0
    assert 3.0 < f.evidence["rate_c_per_min"] < 7.0


def test_over_temperature_rate_ignores_a_single_spike() -> None:
    temp = np.full(600, 60.0)
    temp[300] = 90.0  # one corrupt reading
    b = _at_1hz(600, temp)
    found = of(run(b, [], fleet(1), faults=["over_temperature"]), "over_temperature")
    assert found == []


def test_over_temperature_rate_survives_a_garbage_reading() -> None:
    # 1e308 is finite: it passes the sequencer. Its slope must not overflow
    # the EWMA into inf/NaN and silence the rate of rise for good.
    temp = np.full(900, 55.0)
    temp[100] = 1e308
    temp[400:] = 55.0 + np.arange(500) * (5.0 / 60.0)  # then a genuine rise
    temp = np.minimum(temp, 74.0)
    temp[100] = 1e308
    b = _at_1hz(900, temp)
    ds = run(b, [], fleet(1), faults=["over_temperature"])
    rate = [f for f in of(ds, "over_temperature") if "rate_c_per_min" in f.evidence]
    assert rate and rate[-1].detected > T0 + 400


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(1, 12), min_size=1, max_size=8), st.integers(0, 2**31))
def test_linear_scan_equals_the_recurrence(lengths: list[int], seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = sum(lengths)
    a, b = rng.uniform(0, 1, n), rng.normal(0, 5, n)
    y0_seg = rng.normal(0, 5, len(lengths))
    first_idx = np.cumsum([0, *lengths[:-1]])
    want = np.empty(n)
    i = 0
    for s, k in enumerate(lengths):
        y = y0_seg[s]
        for _ in range(k):
            y = a[i] * y + b[i]
            want[i] = y
            i += 1
    np.testing.assert_allclose(linear_scan(a, b, first_idx, y0_seg), want, rtol=1e-12, atol=1e-12)


E = FIELD_INDEX["energy_wh"]


def _register_off_by(b: MeterBatch, factor: np.ndarray) -> None:
    """Scale each interval's register increment by ``factor`` (one per row)."""
    inc = np.diff(b.values[:, E], prepend=b.values[0, E]) * factor
    b.values[:, E] = b.values[0, E] + np.cumsum(inc)


def test_meter_mismatch_cusum_catches_a_small_persistent_drift() -> None:
    # A register 10 % fast for three hours, then right again: below the 15 %
    # window tolerance, so the window rule alone never fired.
    idx = fleet(1)
    n = 6 * 360  # 6 h at 10 s
    b = charging(n)
    factor = np.ones(n)
    factor[360:1440] = 1.10
    _register_off_by(b, factor)
    for cuts in (1, 9):
        (f,) = of(run(b, [], idx, cuts=cuts, faults=["meter_mismatch"]), "meter_mismatch")
        # (0.10 - 0.05) per 600 s window: 0.3 after 6 windows, plus the window
        # the drift starts in.
        assert b.ts[360] <= f.detected <= b.ts[360] + 7 * 600 + 1
        assert f.evidence["ratio"] == pytest.approx(1.10, abs=0.01)
        assert f.evidence["drift"] >= 0.3
        # Drained to half the limit within ~3 windows of the drift ending.
        assert f.end is not None and f.end <= b.ts[1440] + 4 * 600


def test_meter_mismatch_cusum_ignores_zero_mean_error_below_tolerance() -> None:
    # Every window off by up to 12 % either way (below the 15 % tolerance), with
    # no bias: the allowance drains it. Without the allowance (a plain sum of
    # errors) the same stream crosses the limit.
    idx = fleet(1)
    n = 12 * 360
    b = charging(n)
    rng = np.random.default_rng(11)
    per_window = rng.uniform(-0.12, 0.12, n // 60 + 1)
    wid = np.floor(b.ts / 600.0).astype(np.int64)
    factor = 1.0 + per_window[wid - wid[0]]
    _register_off_by(b, factor)
    walk = np.maximum.accumulate(np.abs(np.cumsum(per_window)))
    assert walk.max() > 0.3  # a CUSUM without allowance would fire
    ds = run(b, [], idx, cuts=5, faults=["meter_mismatch"])
    assert of(ds, "meter_mismatch") == []


def test_meter_mismatch_drift_parameters_are_validated() -> None:
    with pytest.raises(ValueError, match="drift_allowance"):
        DetectorConfig(defaults={"meter_mismatch": {"drift_allowance": 0.2}})
