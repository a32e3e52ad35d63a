"""Downsampler: bucket contents, batch-cut independence, late and future rows."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from chargewatch.model.batch import FIELD_INDEX, N_FIELDS, MeterBatch
from chargewatch.model.fleet import ChargerSpec, ConnectorIndex, Fleet, SiteSpec
from chargewatch.storage.rollups import Downsampler

T0 = 1_795_000_020.0  # a minute boundary (divisible by 60)


class Sink:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def write(self, lines: list[str]) -> None:
        self.lines.extend(lines)


def _index() -> ConnectorIndex:
    fleet = Fleet(
        {"s1": SiteSpec("s1"), "s2": SiteSpec("s2")},
        {
            "CP1": ChargerSpec("CP1", site="s1", connectors=2),
            "CP2": ChargerSpec("CP2", site="s2", connectors=1),
        },
    )
    return ConnectorIndex(fleet)


def _batch(rows: list[tuple[int, float, dict[str, float]]]) -> MeterBatch:
    values = np.full((len(rows), N_FIELDS), np.nan)
    for i, (_, _, fields) in enumerate(rows):
        for k, v in fields.items():
            values[i, FIELD_INDEX[k]] = v
    ts = np.array([r[1] for r in rows])
    return MeterBatch(np.array([r[0] for r in rows], np.int32), ts, ts.copy(), values)


def _parse(lines: list[str]) -> dict[tuple[str, str, int], dict[str, str]]:
    """(measurement, tagset, ts_ms) -> fields; enough for these lines (no escapes)."""
    out = {}
    for line in lines:
        series, fields, ts = line.split(" ")
        meas, _, tags = series.partition(",")
        out[(meas, tags, int(ts))] = dict(f.split("=") for f in fields.split(","))
    return out


def _rows() -> list[tuple[int, float, dict[str, float]]]:
    return [
        (0, T0 + 1, {"power_w": 1000.0, "energy_wh": 10.0, "temperature_c": 30.0}),
        (0, T0 + 30, {"power_w": 3000.0, "energy_wh": 30.0, "temperature_c": 35.0}),
        (0, T0 + 20, {"power_w": 2000.0, "energy_wh": 20.0}),  # out of order
        (1, T0 + 5, {"power_w": 50.0}),  # reporting, not charging
        (2, T0 + 10, {"energy_wh": 5.0}),  # no power at all
        (0, T0 + 61, {"power_w": 7000.0, "energy_wh": 40.0}),  # next bucket
    ]


def test_bucket_contents() -> None:
    sink = Sink()
    ds = Downsampler(_index(), sink, grace_s=10)
    ds.on_batch(_batch(_rows()), [], T0 + 61)
    ds.tick(T0 + 65)  # first bucket ends at T0+60, grace until T0+70: nothing yet
    assert sink.lines == []
    ds.tick(T0 + 70)
    got = _parse(sink.lines)
    ms = int(T0 * 1000)
    c1 = got[("meter_1m", "charger=CP1,connector=1,site=s1", ms)]
    assert float(c1["power_w_mean"]) == pytest.approx(2000.0)
    assert float(c1["power_w_max"]) == 3000.0
    assert float(c1["energy_wh_last"]) == 30.0  # latest meter time, not last arrival
    assert float(c1["temperature_c_max"]) == 35.0
    assert c1["samples"] == "3i"
    c3 = got[("meter_1m", "charger=CP2,connector=1,site=s2", ms)]
    assert "power_w_mean" not in c3 and c3["energy_wh_last"] == "5.0"
    s1 = got[("site_1m", "site=s1", ms)]
    assert float(s1["power_w_sum"]) == pytest.approx(2050.0)
    assert s1["connectors_reporting"] == "2i"
    assert s1["connectors_charging"] == "1i"
    assert s1["connectors_total"] == "2i"
    s2 = got[("site_1m", "site=s2", ms)]
    assert s2["connectors_charging"] == "0i" and s2["power_w_sum"] == "0.0"
    # The second bucket is still open.
    assert not any(k[2] == ms + 60_000 for k in got)
    ds.tick(T0 + 130)
    got = _parse(sink.lines)
    assert (
        float(got[("meter_1m", "charger=CP1,connector=1,site=s1", ms + 60_000)]["power_w_mean"])
        == 7000.0
    )


def test_independent_of_batch_cuts() -> None:
    rng = np.random.default_rng(7)
    n = 2000
    conn = rng.integers(0, 3, n)
    ts = T0 + rng.uniform(0, 300, n)
    rows = [
        (int(c), float(t), {"power_w": float(p), "energy_wh": float(e)})
        for c, t, p, e in zip(
            conn, ts, rng.uniform(0, 11000, n), rng.uniform(0, 1e5, n), strict=True
        )
    ]
    batch = _batch(rows)

    def run(cuts: list[int]) -> list[str]:
        sink = Sink()
        ds = Downsampler(_index(), sink)
        bounds = [0, *cuts, n]
        for a, b in itertools.pairwise(bounds):
            ds.on_batch(batch.take(np.arange(a, b)), [], T0 + 300)
        ds.tick(T0 + 400)
        return sorted(sink.lines)

    whole = run([])
    # 5 buckets with data x 3 connectors; 6 closed minutes x 2 sites (the last empty).
    assert len(whole) == 5 * 3 + 6 * 2
    assert run([1, 500, 501, 1999]) == whole
    assert run(sorted(rng.choice(np.arange(1, n), 40, replace=False).tolist())) == whole


def test_late_and_future_rows_are_dropped_and_counted() -> None:
    sink = Sink()
    ds = Downsampler(_index(), sink, grace_s=0, max_ahead_s=60)
    ds.on_batch(_batch([(0, T0 + 1, {"power_w": 1000.0})]), [], T0 + 1)
    ds.tick(T0 + 60)  # closes [T0, T0+60)
    n = len(sink.lines)
    ds.on_batch(
        _batch([(0, T0 + 59, {"power_w": 9e9}), (0, T0 + 3600, {"power_w": 1.0})]), [], T0 + 61
    )
    assert (ds.late, ds.future) == (1, 1)
    ds.tick(T0 + 7200)
    assert "9000000000.0" not in "".join(sink.lines)
    assert not any(" power_w_mean=1.0," in line for line in sink.lines)
    # Empty minutes after the first sample still get site rows (a dark site shows 0).
    assert sum(line.startswith("site_1m,site=s1 ") for line in sink.lines[n:]) == 119


def test_rows_from_a_reset_clock_do_not_start_the_series_in_2000() -> None:
    sink = Sink()
    ds = Downsampler(_index(), sink, grace_s=0)
    ds.on_batch(
        _batch([(0, 946_684_800.0, {"power_w": 1.0}), (0, T0 + 1, {"power_w": 2.0})]), [], T0 + 1
    )
    assert ds.late == 1
    ds.tick(T0 + 60)
    assert len(sink.lines) == 1 + 2  # one connector, two sites, one minute


def test_connector_first_seen_after_bucket_opened() -> None:
    index = _index()
    sink = Sink()
    ds = Downsampler(index, sink, grace_s=0)
    ds.on_batch(_batch([(0, T0 + 1, {"power_w": 1.0})]), [], T0 + 1)
    new = index.id("CP9", 1)  # an unknown charger turns up mid-bucket
    ds.on_batch(_batch([(new, T0 + 2, {"power_w": 500.0})]), [], T0 + 2)
    ds.tick(T0 + 60)
    got = _parse(sink.lines)
    assert (
        got[("meter_1m", "charger=CP9,connector=1,site=unknown", int(T0 * 1000))]["power_w_mean"]
        == "500.0"
    )
    assert got[("site_1m", "site=unknown", int(T0 * 1000))]["connectors_charging"] == "1i"


def test_rejects_bad_parameters() -> None:
    with pytest.raises(ValueError, match="interval_s"):
        Downsampler(_index(), Sink(), interval_s=0)


# --- charger clocks that are off (docs/sessions.md) ------------------------------

HOURS2 = 7_200.0


def _skewed(rows: list[tuple[int, float, float, float]]) -> MeterBatch:
    """Rows (connector, meter ts, recv, power W)."""
    values = np.full((len(rows), N_FIELDS), np.nan)
    values[:, FIELD_INDEX["power_w"]] = [r[3] for r in rows]
    return MeterBatch(
        np.array([r[0] for r in rows], np.int32),
        np.array([r[1] for r in rows]),
        np.array([r[2] for r in rows]),
        values,
    )


def _site_power(lines: list[str], site: str, t: float) -> tuple[float, str]:
    got = _parse(lines)[("site_1m", f"site={site}", int(t * 1000))]
    return float(got["power_w_sum"]), got["connectors_reporting"]


def test_a_charger_with_an_applied_offset_counts_at_its_receive_minute() -> None:
    # CP2 (s2) sends local time as UTC, two hours ahead; the engine has
    # confirmed it. Its rows belong to the minute they were received in.
    offsets = np.array([0.0, 0.0, HOURS2])
    sink = Sink()
    ds = Downsampler(_index(), sink, grace_s=0, clock_offsets=lambda: offsets)
    rows = [(2, T0 + 10 + HOURS2 - 0.2, T0 + 10, 7000.0), (0, T0 + 11, T0 + 11.2, 3000.0)]
    ds.on_batch(_skewed(rows), [], T0 + 12)
    ds.tick(T0 + 60)
    assert (ds.future, ds.late, ds.redated) == (0, 0, 0)
    assert _site_power(sink.lines, "s2", T0) == (7000.0, "1i")
    assert _site_power(sink.lines, "s1", T0) == (3000.0, "1i")
    got = _parse(sink.lines)[("meter_1m", "charger=CP2,connector=1,site=s2", int(T0 * 1000))]
    assert got["power_w_mean"] == "7000.0"


def test_a_charger_behind_with_an_applied_offset_is_not_late() -> None:
    # Five hours behind (the Americas, local time as UTC), confirmed.
    offsets = np.array([0.0, 0.0, -5 * 3600.0])
    sink = Sink()
    ds = Downsampler(_index(), sink, grace_s=0, clock_offsets=lambda: offsets)
    ds.on_batch(_skewed([(0, T0 + 1, T0 + 1, 10.0)]), [], T0 + 1)
    ds.tick(T0 + 60)  # closes [T0, T0 + 60): the charger's own minutes are long closed
    ds.on_batch(_skewed([(2, T0 + 70 - 5 * 3600.0, T0 + 70.2, 4000.0)]), [], T0 + 71)
    ds.tick(T0 + 120)
    assert ds.late == 0
    assert _site_power(sink.lines, "s2", T0 + 60) == (4000.0, "1i")


def test_rows_ahead_before_their_offset_is_confirmed_count_at_receipt() -> None:
    # The first message of a charger two hours ahead: the engine has no offset
    # for it yet. A row dated after its own receipt can never be right; its
    # receipt is.
    sink = Sink()
    ds = Downsampler(_index(), sink, grace_s=0)
    ds.on_batch(_skewed([(2, T0 + 5 + HOURS2, T0 + 5, 6000.0)]), [], T0 + 6)
    ds.tick(T0 + 60)
    assert (ds.future, ds.redated) == (0, 1)
    assert _site_power(sink.lines, "s2", T0) == (6000.0, "1i")
    # No bucket two hours ahead was opened (it would be written in two hours).
    ds.tick(T0 + HOURS2 + 120)
    assert not any(
        line.startswith("meter_1m,") and f" {int((T0 + HOURS2) * 1000)}" in line
        for line in sink.lines
    )


def test_a_late_backlog_of_a_right_clock_stays_in_its_own_minutes() -> None:
    # A right clock's queue, emptied 20 min after an outage: its rows are dated
    # in the past like those of a clock behind, but without an offset the
    # engine confirmed they are late data, not moved to the receive minute.
    sink = Sink()
    ds = Downsampler(_index(), sink, grace_s=0)
    ds.on_batch(_skewed([(0, T0 + 1, T0 + 1, 10.0)]), [], T0 + 1)
    ds.tick(T0 + 1200)
    backlog = [(2, T0 + 30 + 60 * k, T0 + 1230, 5000.0) for k in range(10)]
    ds.on_batch(_skewed(backlog), [], T0 + 1231)
    ds.tick(T0 + 1260)
    assert (ds.late, ds.redated) == (10, 0)
    assert _site_power(sink.lines, "s2", T0 + 1200) == (0.0, "0i")


def test_offsets_keep_the_rollups_independent_of_batch_cuts() -> None:
    rng = np.random.default_rng(11)
    n = 1500
    conn = rng.integers(0, 3, n)
    true = T0 + rng.uniform(0, 300, n)
    offsets = np.array([0.0, -3600.0, HOURS2])
    batch = _skewed(
        [
            (int(c), float(t + offsets[c]), float(t + 0.1), float(p))
            for c, t, p in zip(conn, true, rng.uniform(0, 11000, n), strict=True)
        ]
    )

    def run(cuts: list[int]) -> list[str]:
        sink = Sink()
        ds = Downsampler(_index(), sink, clock_offsets=lambda: offsets)
        for a, b in itertools.pairwise([0, *cuts, n]):
            ds.on_batch(batch.take(np.arange(a, b)), [], T0 + 300)
        ds.tick(T0 + 400)
        assert (ds.late, ds.future, ds.redated) == (0, 0, 0)
        return sorted(sink.lines)

    whole = run([])
    assert len(whole) == 5 * 3 + 6 * 2  # every connector in every minute it sent
    assert run([1, 700, 701, 1499]) == whole
