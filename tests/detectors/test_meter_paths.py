"""The meter detectors' fast paths change nothing but the cost: meter_mismatch's
window sums taken position by position (connectors with equal, short segments)
against ``np.add.reduceat``, bit for bit, on data with mismatches, gaps and
lost rows."""

from __future__ import annotations

import numpy as np
import pytest

from chargewatch.detectors import DetectorConfig, DetectorSet, meter
from chargewatch.model.batch import FIELD_INDEX, N_FIELDS, MeterBatch
from chargewatch.model.fleet import ConnectorIndex

from .helpers import T0, fleet

N = 60


def test_sums_by_position_is_reduceat_bit_for_bit() -> None:
    rng = np.random.default_rng(0)
    for k in range(1, 34):
        x = rng.normal(0.0, 1e6, (400, k)) * 10.0 ** rng.integers(-9, 9, (400, k))
        x[rng.random(x.shape) < 0.05] = np.nan
        x[rng.random(x.shape) < 0.03] = -0.0
        x[rng.random(x.shape) < 0.03] = 0.0
        x[rng.random(x.shape) < 0.01] = np.inf
        want = np.add.reduceat(x.ravel(), np.arange(0, x.size, k))
        got = meter._sums_by_position(x)
        assert got.tobytes() == want.tobytes(), k


def _index() -> ConnectorIndex:
    return fleet(N)  # N three-phase 22 kW connectors at 230 V


def _telemetry(seconds: int, seed: int) -> MeterBatch:
    """1 Hz, time-major; some meters count 8-40 % off, some for a while only,
    one with a register frozen, one with power steps."""
    rng = np.random.default_rng(seed)
    conn = np.tile(np.arange(N, dtype=np.int32), seconds)
    ts = T0 + np.repeat(np.arange(seconds, dtype=np.float64), N)
    power = np.repeat(rng.uniform(7_000.0, 11_000.0, N)[None, :], seconds, axis=0)
    power *= rng.normal(1.0, 0.01, power.shape)
    gain = np.ones((seconds, N))
    for c in rng.choice(N, 12, replace=False).tolist():
        lo = int(rng.integers(0, seconds // 2))
        gain[lo : lo + int(rng.integers(200, seconds)), c] = rng.uniform(1.06, 1.4)
    power[:, 3] = np.where(np.arange(seconds) % 40 < 20, 2_000.0, 9_000.0)  # steps
    step = power * gain / 3600.0
    step[100:160, 5] = 0.0  # a frozen register
    energy = 1e6 + np.cumsum(step, axis=0)
    v = np.full((seconds, N, N_FIELDS), np.nan)
    v[:, :, FIELD_INDEX["energy_wh"]] = energy
    v[:, :, FIELD_INDEX["power_w"]] = power
    for j in range(3):
        v[:, :, 2 + j] = power / (3 * 230.0)
        v[:, :, 5 + j] = 230.0
    return MeterBatch(conn, ts, ts + 0.2, v.reshape(-1, N_FIELDS))


def _run(batch: MeterBatch, per: int, loop_max: int, mp: pytest.MonkeyPatch) -> DetectorSet:
    with mp.context() as m:
        m.setattr(meter, "_SUM_LOOP_MAX", loop_max)
        # 180 s windows: several, and at 25 s batches cut across batches.
        cfg = DetectorConfig(defaults={"meter_mismatch": {"window_s": 180.0}})
        ds = DetectorSet(cfg, faults=("meter_mismatch",))
        for lo in range(0, batch.conn.shape[0], per):
            hi = lo + per
            b = MeterBatch(
                batch.conn[lo:hi], batch.ts[lo:hi], batch.recv[lo:hi], batch.values[lo:hi]
            )
            ds.update(b, [], _index(), float(b.recv.max()))
    return ds


@pytest.mark.parametrize("seed", [1])
@pytest.mark.parametrize("shape", ["uniform", "dropped"])
@pytest.mark.parametrize("seconds_per_batch", [2, 10, 25])
def test_window_sums_by_position_change_nothing(
    seed: int, shape: str, seconds_per_batch: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    batch = _telemetry(900, seed)
    if shape == "dropped":  # connectors with different row counts in a batch
        keep = np.random.default_rng(seed).random(batch.conn.shape[0]) > 0.1
        batch = MeterBatch(batch.conn[keep], batch.ts[keep], batch.recv[keep], batch.values[keep])
    per = N * seconds_per_batch
    calls: list[int] = []
    by_position = meter._sums_by_position

    def counted(v: np.ndarray) -> np.ndarray:
        calls.append(v.shape[1])
        return by_position(v)

    with monkeypatch.context() as m:
        m.setattr(meter, "_sums_by_position", counted)
        fast = _run(batch, per, meter._SUM_LOOP_MAX, monkeypatch)
    slow = _run(batch, per, 0, monkeypatch)
    if shape == "uniform":
        assert calls  # the fast path was taken
    assert {f.fault for f in fast.findings} == {"meter_mismatch"}
    assert [f.as_dict() for f in fast.findings] == [f.as_dict() for f in slow.findings]
    a, b = fast.detectors["meter_mismatch"], slow.detectors["meter_mismatch"]
    for x, y in ((a._w.sums, b._w.sums), (a._w.w, b._w.w), (a._up, b._up), (a._down, b._down)):
        assert x.tobytes() == y.tobytes()
    assert a.score.tobytes() == b.score.tobytes()
