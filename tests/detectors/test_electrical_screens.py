"""The electrical detectors' screens (a quiet connector skips the per-row path)
change nothing but the cost: with them and with every connector forced through
the per-row path, the same findings and the same state, bit for bit."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from chargewatch.detectors import DetectorSet
from chargewatch.detectors import electrical as el
from chargewatch.detectors.sequencer import linear_scan
from chargewatch.model.batch import FIELD_INDEX, N_FIELDS, MeterBatch
from chargewatch.model.fleet import ChargerSpec, ConnectorIndex, Fleet

from .helpers import T0

FAULTS = (
    "over_temperature",
    "over_current",
    "voltage_out_of_band",
    "phase_loss",
    "phase_imbalance",
    "power_oscillation",
)
N = 120  # above the connector count under which the rates take the whole scan


def _index() -> ConnectorIndex:
    kinds = ((22_000.0, 3, 230.0), (7_400.0, 1, 230.0), (150_000.0, 0, 400.0))
    specs = {}
    for i in range(N):
        p, ph, v = kinds[i % 3]
        specs[f"CP{i:03d}"] = ChargerSpec(
            f"CP{i:03d}", site="s", max_power_w=p, phases=ph, nominal_voltage_v=v
        )
    return ConnectorIndex(Fleet({}, specs))


def _telemetry(index: ConnectorIndex, seconds: int, seed: int) -> MeterBatch:
    """1 Hz, time-major, healthy; then faults on a few connectors for a while."""
    rng = np.random.default_rng(seed)
    conn = np.tile(np.arange(N, dtype=np.int32), seconds)
    ts = T0 + np.repeat(np.arange(seconds, dtype=np.float64), N)
    ph = np.asarray(index.phases[:N])
    nominal = np.asarray(index.nominal_voltage_v[:N])
    v = np.full((seconds * N, N_FIELDS), np.nan)
    power = 7_000.0 * rng.normal(1.0, 0.01, conn.shape[0])
    v[:, FIELD_INDEX["power_w"]] = power
    v[:, FIELD_INDEX["energy_wh"]] = 1e6 + np.arange(conn.shape[0]) // N * 2.0
    lines = np.where(ph == 0, 1, ph)[conn]
    for j in range(3):
        on = (ph[conn] == 3) | (j == 0)
        v[:, 2 + j] = np.where(on, power / (lines * nominal[conn]), np.nan)
        v[:, 5 + j] = np.where(on, nominal[conn] * rng.normal(1.0, 0.01, conn.shape[0]), np.nan)
    v[:, FIELD_INDEX["temperature_c"]] = 35.0 + rng.normal(0, 0.3, conn.shape[0])
    v[:, FIELD_INDEX["offered_a"]] = np.where(ph[conn] > 0, 32.0, np.nan)
    for _ in range(40):
        c, t0 = int(rng.integers(N)), T0 + int(rng.integers(0, seconds - 20))
        rows = (conn == c) & (ts >= t0) & (ts < t0 + int(rng.integers(5, 170)))
        kind = int(rng.integers(7))
        if kind == 0:
            v[rows, 3] *= rng.uniform(0.0, 0.6)  # imbalance, lost phase current
        elif kind == 1:
            v[rows, 5] *= rng.uniform(0.3, 1.2)  # a sagging or lost phase
        elif kind == 2:
            v[rows, 2:5] *= rng.uniform(1.0, 2.5)  # over current
        elif kind == 3:
            v[rows, FIELD_INDEX["temperature_c"]] += np.linspace(0, 70, int(rows.sum()))
        elif kind == 4:
            v[rows, 2 + int(rng.integers(3))] = np.nan
        elif kind == 5:
            v[rows, 5 + int(rng.integers(3))] = np.nan
        else:
            v[rows, FIELD_INDEX["offered_a"]] = rng.choice([6.0, 16.0, np.nan])
    return MeterBatch(conn, ts, ts + 0.2, v)


def _run(
    batch: MeterBatch, index: ConnectorIndex, per: int, full: bool, mp: pytest.MonkeyPatch
) -> DetectorSet:
    with mp.context() as m:
        if full:
            m.setattr(el.OverTemperature, "_quiet", lambda self, t: False)
            for cls in (el.OverCurrent, el.VoltageOutOfBand, el.PhaseLoss, el.PhaseImbalance):
                m.setattr(cls, "_screen", lambda self, f: np.zeros(f.touched.shape[0], np.bool_))
        ds = DetectorSet(faults=FAULTS)
        for lo in range(0, batch.conn.shape[0], per):
            hi = lo + per
            b = MeterBatch(
                batch.conn[lo:hi], batch.ts[lo:hi], batch.recv[lo:hi], batch.values[lo:hi]
            )
            ds.update(b, [], index, float(b.recv.max()))
    return ds


def _counted(fn: Callable[..., None], calls: list[str]) -> Callable[..., None]:
    def wrapped(self: object, *args: object) -> None:
        calls.append(type(self).__name__)
        fn(self, *args)

    return wrapped


def _same(a: DetectorSet, b: DetectorSet) -> None:
    assert [f.as_dict() for f in a.findings] == [f.as_dict() for f in b.findings]
    for name in FAULTS:
        da, db = a.detectors[name], b.detectors[name]
        for attr in ("score", "_three", "_r", "_rf", "_t", "_ts", "_recv"):
            if hasattr(da, attr):
                assert getattr(da, attr).tobytes() == getattr(db, attr).tobytes(), (name, attr)
        paths = ("episodes", "_rate", "_steep", "_limit")
        for ea, eb in ((getattr(da, p), getattr(db, p)) for p in paths if hasattr(da, p)):
            for attr in ("active", "since", "setting", "rank0"):
                assert getattr(ea, attr).tobytes() == getattr(eb, attr).tobytes(), (name, attr)


@pytest.mark.parametrize("seed", [1, 2])
@pytest.mark.parametrize("shape", ["uniform", "dropped", "jittered"])
def test_screens_change_nothing(seed: int, shape: str, monkeypatch: pytest.MonkeyPatch) -> None:
    index = _index()
    batch = _telemetry(index, 240, seed)
    if shape != "uniform":
        # Lost rows: connectors with different row counts in a batch (and, with
        # jitter, no common sampling step).
        rng = np.random.default_rng(seed)
        keep = np.greater(rng.random(batch.conn.shape[0]), 0.15)
        jitter = np.round(rng.uniform(0, 0.3, int(np.count_nonzero(keep))), 3)
        ts = batch.ts[keep] + (jitter if shape == "jittered" else 0.0)
        batch = MeterBatch(batch.conn[keep], ts, ts + 0.2, batch.values[keep])
    calm: list[str] = []
    with monkeypatch.context() as m:
        for cls in (el.OverCurrent, el.VoltageOutOfBand, el.PhaseLoss, el.PhaseImbalance):
            m.setattr(cls, "_calm", _counted(cls._calm, calm))
        m.setattr(
            el.OverTemperature, "_advance_quiet", _counted(el.OverTemperature._advance_quiet, calm)
        )
        screened = _run(batch, index, N * 10, False, monkeypatch)
    full = _run(batch, index, N * 10, True, monkeypatch)
    # Both paths were taken: quiet connectors skipped, faults found.
    assert len(set(calm)) == 5
    assert {f.fault for f in screened.findings} >= {
        "over_current",
        "phase_loss",
        "over_temperature",
    }
    _same(screened, full)


def test_mixed_row_counts_at_one_step(monkeypatch: pytest.MonkeyPatch) -> None:
    """Connectors with 5 and 10 rows per batch, all at 1 s: the rates' grouped
    layout with one weight per time constant."""
    index = _index()
    batch = _telemetry(index, 120, 3)
    odd = np.equal(batch.conn % 2, 1) & np.equal((batch.ts - T0) // 5 % 2, 1)
    keep = ~odd  # odd connectors skip every other 5 s: gaps of 6 s between batches
    batch = MeterBatch(batch.conn[keep], batch.ts[keep], batch.recv[keep], batch.values[keep])
    _same(
        _run(batch, index, N * 10, False, monkeypatch),
        _run(batch, index, N * 10, True, monkeypatch),
    )


def _positions(b: np.ndarray) -> Callable[[int], np.ndarray]:
    return lambda p: b[:, p]


def test_scan_last_is_linear_scan_at_the_last_row() -> None:
    rng = np.random.default_rng(0)
    for n in (1, 2, 3, 5, 8, 9, 10, 17, 33):
        a, b = rng.random((2, n, 50)), rng.normal(size=(2, n, 50))
        a[rng.random(a.shape) < 0.05] = 0.0
        y0 = rng.normal(size=(2, 50))
        got = el._scan_last(a, _positions(b), y0, n)
        for k in range(2):
            first = np.arange(50) * n
            want = linear_scan(a[k].T.ravel(), b[k].T.ravel(), first, y0[k])[first + n - 1]
            assert got[k].tobytes() == want.tobytes()


def test_connectors_first_seen_among_known_ones(monkeypatch: pytest.MonkeyPatch) -> None:
    """A third of the connectors report from the second batch on: their first
    rows (no earlier temperature, no rise) in a batch of connectors with one."""
    index = _index()
    batch = _telemetry(index, 60, 4)
    keep = ~(np.equal(batch.conn % 3, 2) & (batch.ts < T0 + 10))
    batch = MeterBatch(batch.conn[keep], batch.ts[keep], batch.recv[keep], batch.values[keep])
    _same(
        _run(batch, index, N * 10, False, monkeypatch),
        _run(batch, index, N * 10, True, monkeypatch),
    )


def test_one_row_per_connector(monkeypatch: pytest.MonkeyPatch) -> None:
    """Batches of one row per connector (a pipeline's 0.5-1 s coalescing): each
    connector's last row is its only one, and the screens read the phase
    blocks themselves instead of a gather."""
    index = _index()
    batch = _telemetry(index, 240, 5)
    _same(
        _run(batch, index, N, False, monkeypatch),
        _run(batch, index, N, True, monkeypatch),
    )
