"""The benchmark's per-sample reference (bench/reference_detectors.py) is a real
implementation of the detectors' sample path: on one small scenario with
injected faults it finds the same faults on the same connectors as the
vectorised DetectorSet, starting within a sample of each other, and counts the
same bad input. Otherwise bench_detectors' ratio would compare unlike work."""

from __future__ import annotations

import numpy as np
import pytest

from bench.reference_detectors import ReferenceDetectors
from chargewatch.detectors import DetectorSet
from chargewatch.detectors.sequencer import STATUS_CODE
from chargewatch.model.batch import FIELD_INDEX, N_FIELDS, MeterBatch
from chargewatch.model.events import Event, StatusEvent, TransactionEvent
from chargewatch.model.fleet import ConnectorIndex

from .helpers import fleet

T0 = 1_800_000_000.0
SECONDS = 900
N = 8
E, P, TEMP = FIELD_INDEX["energy_wh"], FIELD_INDEX["power_w"], FIELD_INDEX["temperature_c"]
# Connector -> the fault injected into it (the others are healthy).
PHASE_LOSS, HOT, REGRESSION, STUCK, SAG = 0, 1, 2, 3, 4
EXPECTED = {
    ("phase_loss", PHASE_LOSS),
    ("over_temperature", HOT),
    ("meter_regression", REGRESSION),
    ("meter_stuck", STUCK),
    ("voltage_out_of_band", SAG),
}
# What the reference leaves out (status events only, or found by a tick).
NOT_IN_REFERENCE = {"idle_blocking", "status_flapping", "failed_start", "stale_telemetry"}


def _index() -> ConnectorIndex:
    return fleet(N)  # N three-phase 22 kW connectors at 230 V


def _scenario(dt: float) -> MeterBatch:
    """Three-phase sessions sampled every ``dt`` s, ~11 kW, time-major, with
    faults injected (their times in samples)."""
    rng = np.random.default_rng(17)
    k = np.arange(SECONDS, dtype=np.float64)
    power = 11_000.0 * rng.normal(1.0, 0.01, (SECONDS, N))
    v = np.full((SECONDS, N, N_FIELDS), np.nan)
    v[:, :, 2:5] = (power / (3 * 230.0))[:, :, None]
    v[:, :, 5:8] = 230.0 * rng.normal(1.0, 0.005, (SECONDS, N, 3))
    v[:, :, TEMP] = 35.0 + rng.normal(0.0, 0.3, (SECONDS, N))
    v[:, :, FIELD_INDEX["offered_a"]] = 32.0
    lost = (k >= 200) & (k < 420)  # L2 gone: no voltage, no current
    v[lost, PHASE_LOSS, 6] = 0.0
    v[lost, PHASE_LOSS, 3] = 0.0
    power[lost, PHASE_LOSS] *= 2.0 / 3.0
    ramp = np.clip((k - 300.0) / 180.0, 0.0, 1.0) * (k < 650)  # 35 -> 95 C in 3 min
    v[:, HOT, TEMP] += 60.0 * ramp
    v[(k >= 250) & (k < 560), SAG, 5] = 190.0  # L1-N sags to 0.83 p.u.
    v[:, :, P] = power
    energy = 1e6 + np.cumsum(power * (dt / 3600.0), axis=0)
    energy[300:, REGRESSION] -= 5_000.0  # falls and stays fallen
    frozen = (k >= 300) & (k < 600)
    held = energy[:, STUCK].copy()
    held[frozen] = held[299]
    held[600:] -= held[599] - held[299]  # resumes from where it stood
    energy[:, STUCK] = held
    v[:, :, E] = energy
    # Bad input both sides must clean alike: an inf, a negative current, one
    # negative register the next register undoes (no finding).
    v[100, 5, P] = np.inf
    v[120, 6, 2] = -3.0
    v[140, 7, E] = -5.0
    conn = np.tile(np.arange(N, dtype=np.int32), SECONDS)
    ts = T0 + np.repeat(k * dt, N)
    recv = ts + rng.uniform(0.05, 0.5, ts.shape[0])
    rows = v.reshape(-1, N_FIELDS)
    # A resent row (duplicate ts) for connector 5.
    dup = 5 + 50 * N
    conn = np.insert(conn, dup + 1, conn[dup])
    ts, recv = np.insert(ts, dup + 1, ts[dup]), np.insert(recv, dup + 1, recv[dup] + 0.01)
    rows = np.insert(rows, dup + 1, rows[dup], axis=0)
    # 25 samples lost just after the phase is lost: the run then lasts its
    # duration before it spans the rows that duration needs (the learned cadence).
    gap = (conn == PHASE_LOSS) & (ts >= T0 + 201 * dt) & (ts <= T0 + 225 * dt)
    keep = np.flatnonzero(~gap)
    return MeterBatch(conn[keep], ts[keep], recv[keep], rows[keep])


def _events(index: ConnectorIndex) -> list[Event]:
    out: list[Event] = []
    for i in range(N):
        ch, c = index.keys[i]
        out.append(TransactionEvent(ch, c, T0 - 2, T0 - 2, "start", f"t{i}"))
        out.append(StatusEvent(ch, c, T0 - 1, T0 - 1, "Charging"))
    return out


Times = list[tuple[float, float]]
Both = tuple[
    dict[tuple[str, int], Times],
    dict[tuple[str, int], Times],
    DetectorSet,
    ReferenceDetectors,
    float,
]


def _by_fault(findings: list[tuple[str, int, float, float]]) -> dict[tuple[str, int], Times]:
    """(fault, connector) -> its findings' (start, detected), in order."""
    out: dict[tuple[str, int], Times] = {}
    for fault, c, start, detected in findings:
        out.setdefault((fault, c), []).append((start, detected))
    return {k: sorted(v) for k, v in out.items()}


@pytest.fixture(scope="module", params=[1.0, 10.0], ids=["1s", "10s"])
def both(
    request: pytest.FixtureRequest,
) -> Both:
    dt = float(request.param)
    index = _index()
    batch = _scenario(dt)
    ds = DetectorSet(index=index)
    ds.update(MeterBatch.empty(), _events(index), index, T0)
    per = 10 * N  # 10 s updates
    for lo in range(0, len(batch), per):
        b = MeterBatch(
            batch.conn[lo : lo + per],
            batch.ts[lo : lo + per],
            batch.recv[lo : lo + per],
            batch.values[lo : lo + per],
        )
        ds.update(b, [], index, float(b.recv.max()))
    ref = ReferenceDetectors()
    for i in range(N):
        ref.transaction_start(i, T0 - 2)
        ref.status(i, T0 - 1, STATUS_CODE["Charging"])
    rows = batch.values.tolist()
    conn, ts, recv = batch.conn.tolist(), batch.ts.tolist(), batch.recv.tolist()
    for i, c in enumerate(conn):
        ref.sample(c, ts[i], recv[i], rows[i], STATUS_CODE["Charging"], 32.0, 230.0, 3)
    vec = _by_fault(
        [
            (f.fault, f.connector, f.start, f.detected)
            for f in ds.findings
            if f.fault not in NOT_IN_REFERENCE
        ]
    )
    got = _by_fault([(f.fault, f.connector, f.start, f.detected) for f in ref.found])
    return vec, got, ds, ref, dt


def test_both_find_the_injected_faults(both: Both) -> None:
    vec, got, _, _, _ = both
    assert set(vec) == EXPECTED
    assert set(got) == EXPECTED


def test_same_findings_within_a_sample(both: Both) -> None:
    vec, got, _, _, dt = both
    for key, times in vec.items():
        assert len(got[key]) == len(times), (key, times, got[key])
        for (start, detected), (r_start, r_detected) in zip(times, got[key], strict=True):
            assert abs(start - r_start) <= dt, (key, start, r_start)
            assert abs(detected - r_detected) <= dt, (key, detected, r_detected)


def test_same_cleaning_counts(both: Both) -> None:
    _, _, ds, ref, _ = both
    counters = ds.counters
    for key in ("nonfinite_values", "negative_values", "negative_registers", "duplicate_ts"):
        assert counters.get(key, 0) == ref.counters.get(key, 0) == 1, key
