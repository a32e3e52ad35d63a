"""Register-only chargers (OCPP 1.6's default measurand, no Power): the power
track is fed with the average power of each register interval, so their
sessions get charging periods like a charger that reports power."""

from __future__ import annotations

import math

import numpy as np
import pytest

from chargewatch.model.batch import MeterBatch
from chargewatch.model.fleet import ConnectorIndex
from chargewatch.sessions.session_engine import SessionConfig
from chargewatch.sessions.session_types import SessionRecord
from tests.billing.sessionkit import T0, batch, charge, run, start, status, stop

EMPTY = MeterBatch.empty()


def _session(power: bool, ts: list[float], e: list[float], p: list[float]) -> SessionRecord:
    index = ConnectorIndex()
    end = ts[-1] + 30
    steps = [
        (T0 + 10, EMPTY, [status("CP", "Preparing", T0), start("CP", "1", T0, e[0])]),
        (ts[-1] + 5, batch(index, "CP", 1, ts, e, p if power else None), []),
        (end + 5, EMPTY, [stop("CP", "1", end, e[-1]), status("CP", "Available", end)]),
    ]
    _, recs = run(steps, index, SessionConfig())
    (r,) = recs
    return r


def test_register_only_session_charges_like_its_power_reporting_twin() -> None:
    ts, e, p = charge(T0, 60, 7.0, 10_000.0, idle_after=30)
    twin = _session(True, ts, e, p)
    reg = _session(False, ts, e, p)
    assert reg.energy_wh == pytest.approx(twin.energy_wh) == pytest.approx(7000.0)
    assert [x.kind for x in reg.periods] == [x.kind for x in twin.periods] == ["charging", "idle"]
    assert "gap" not in reg.quality
    ch = reg.periods[0]
    assert ch.energy_wh == pytest.approx(7000.0, abs=0.01)
    # The derived power sits at each interval's middle: the end is off by at most one interval.
    assert abs(ch.end - twin.periods[0].end) <= 60.0
    # Every derived power inside the charging period is 7 kW, none inside the
    # idle one above 0: the threshold crossing between them lends neither its power.
    assert ch.min_power_w == pytest.approx(7000.0) and ch.max_power_w == pytest.approx(7000.0)
    assert ch.max_current_a is None  # nothing measured it
    assert reg.periods[1].energy_wh == pytest.approx(0.0, abs=0.01)
    assert reg.periods[1].min_power_w == 0.0 and reg.periods[1].max_power_w == 0.0


def test_a_long_gap_stays_a_gap_not_a_low_average_charging_span() -> None:
    # 30 min at 7 kW, then no reading for 1 h (gap_s is 30 min) over which the
    # register rose 1 kWh, then 30 min at 7 kW.
    ts1, e1, _ = charge(T0, 30, 7.0, 10_000.0)
    ts2, e2, _ = charge(ts1[-1] + 3600, 30, 7.0, e1[-1] + 1000.0)
    ts, e = ts1 + ts2, e1 + e2
    r = _session(False, ts, e, [math.nan] * len(ts))
    assert "gap" in r.quality
    assert r.energy_wh == pytest.approx(8000.0)
    for x in r.periods:
        # Every sampled power is a 7 kW interval average or 0: none is 1 kWh / 1 h.
        assert x.max_power_w is None or x.max_power_w in (0.0, pytest.approx(7000.0))
        assert x.min_power_w is None or x.min_power_w in (0.0, pytest.approx(7000.0))


def test_register_restart_is_not_read_as_power() -> None:
    ts, e, _ = charge(T0, 60, 6.0, 50_000.0)
    ea = np.array(e)
    ea[30:] -= ea[29]  # the meter restarts from 0 right after sample 29
    r = _session(False, ts, ea.tolist(), [math.nan] * len(ts))
    assert "register_reset" in r.quality
    assert r.energy_wh == pytest.approx(6000.0, abs=1.0)
    assert [x.kind for x in r.periods] == ["charging"]
    assert r.periods[0].max_power_w == pytest.approx(6000.0)
    assert r.periods[0].min_power_w == pytest.approx(6000.0)


def test_measured_power_is_kept_where_there_is_some() -> None:
    # Power reported at 5 kW while the register says 7 kW (a meter mismatch):
    # the track holds what was measured, not the register's average.
    ts, e, p = charge(T0, 60, 7.0, 10_000.0)
    r = _session(True, ts, e, [5000.0 if x > 0 else 0.0 for x in p])
    assert r.periods[0].min_power_w == r.periods[0].max_power_w == 5000.0
