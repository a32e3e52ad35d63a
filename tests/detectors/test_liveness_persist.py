"""What the liveness detectors learned survives a restart: DetectorSet.snapshot()
through JSON into a fresh set with another index, then the same input as a
set that never stopped.

A charger is told its heartbeat interval once (BootNotification answer,
ChangeConfiguration) and an operator's meter interval once; without them a
restarted collector judges every OCPP charger by ``assumed_interval_s``."""

from __future__ import annotations

from typing import Any

import numpy as np
import orjson
import pytest

from chargewatch.detectors import DetectorSet, Finding
from chargewatch.model.batch import FIELD_INDEX, N_FIELDS, MeterBatch
from chargewatch.model.events import (
    Event,
    HeartbeatEvent,
    HeartbeatIntervalEvent,
    MeterIntervalEvent,
    StatusEvent,
    TransactionEvent,
)
from chargewatch.model.fleet import ChargerSpec, ConnectorIndex, Fleet

T0 = 1_800_000_000.0
EVAL_S = 30.0  # the collector's evaluation cadence
CP = "CP1"


def _index(*, other_first: bool = False) -> ConnectorIndex:
    """CP1 with two connectors; ``other_first``: another charger took the first
    ids (a restart with another fleet file: the ids differ)."""
    specs = {CP: ChargerSpec(CP, site="s", max_power_w=22_000.0, connectors=2)}
    if other_first:
        specs = {"CP0": ChargerSpec("CP0", site="s", connectors=3), **specs}
    return ConnectorIndex(Fleet({}, specs))


def _beats(start: float, stop: float, every: float) -> list[Event]:
    times = np.arange(start, stop, every)
    times += np.random.default_rng(int(every)).uniform(0.0, 0.4, times.size)
    return [HeartbeatEvent(CP, float(t), float(t), source="ocpp") for t in times]


def _told(t: float, interval: float) -> Event:
    return HeartbeatIntervalEvent(CP, t, t, interval, "BootNotification", source="ocpp")


def _feed(
    ds: DetectorSet,
    index: ConnectorIndex,
    start: float,
    end: float,
    events: list[Event],
    rows: MeterBatch | None = None,
) -> None:
    """Every EVAL_S from ``start`` to ``end``: that slice's rows and events, as live."""
    now = start
    while now < end:
        a, now = now, now + EVAL_S
        evs = [e for e in events if a < e.recv <= now]
        b = MeterBatch.empty()
        if rows is not None:
            b = rows.take(np.flatnonzero((rows.recv > a) & (rows.recv <= now)))
        ds.update(b, evs, index, now)


def _restarted(ds: DetectorSet, *, restore: bool = True) -> tuple[DetectorSet, ConnectorIndex]:
    index = _index(other_first=True)
    fresh = DetectorSet(index=index)
    if restore:
        # Through the bytes the ledger keeps.
        fresh.restore(orjson.loads(orjson.dumps(ds.snapshot())))
    return fresh, index


def _offline(ds: DetectorSet) -> list[Finding]:
    return [f for f in ds.findings if f.fault == "charger_offline"]


def _stale(ds: DetectorSet) -> list[Finding]:
    return [f for f in ds.findings if f.fault == "stale_telemetry"]


@pytest.mark.parametrize("how", ["told", "seen"])
def test_a_60_s_heartbeat_is_known_after_a_restart(how: str) -> None:
    """Told (boot answer) or seen (median of its gaps): restored, the charger is
    found offline 150 s (2 x 60 s + 30 s) after its last message, as by a set
    that never stopped; not after the assumed 900 s's 1,830 s."""
    index = _index()
    before = DetectorSet(index=index)
    pre = _beats(T0 + 60, T0 + 900, 60.0) + ([_told(T0, 60.0)] if how == "told" else [])
    _feed(before, index, T0 - EVAL_S, T0 + 900, pre)
    # The collector stops at T0 + 900 and is back within the minute; the charger
    # heartbeats on, then goes silent after its heartbeat at about T0 + 1,080.
    post = _beats(T0 + 960, T0 + 1100, 60.0)
    last = max(e.recv for e in post)
    end = last + 2_000
    restored, index2 = _restarted(before)
    cold, index3 = _restarted(before, restore=False)
    # The restore made the same state (another index, other ids).
    assert restored.snapshot() == before.snapshot()
    _feed(before, index, T0 + 900, end, post)
    for ds, ix in ((restored, index2), (cold, index3)):
        _feed(ds, ix, T0 + 900, end, post)

    for ds in (before, restored):
        fs = _offline(ds)
        assert len(fs) == 2  # one per connector, one silence
        for f in fs:
            assert f.start == pytest.approx(last)
            assert f.detected == pytest.approx(last + 150.0, abs=1.0)
            assert f.evidence["interval_s"] == pytest.approx(60.0, abs=0.5)
    # Without the snapshot: the assumed 900 s (2 x 900 + 30).
    assert [f.detected - last for f in _offline(cold)] == pytest.approx([1830.0, 1830.0])


def test_an_hourly_heartbeat_is_no_outage_after_a_restart() -> None:
    """Told 3,600 s at boot, before the restart: no page at its first hour of
    silence after it (the assumed 900 s paged at 1,830 s)."""
    index = _index()
    before = DetectorSet(index=index)
    pre = [_told(T0, 3600.0), *_beats(T0 + 3600, T0 + 7300, 3600.0)]
    _feed(before, index, T0 - EVAL_S, T0 + 7300, pre)
    post = _beats(T0 + 3 * 3600, T0 + 6 * 3600, 3600.0)
    restored, index2 = _restarted(before)
    cold, index3 = _restarted(before, restore=False)
    for ds, ix in ((restored, index2), (cold, index3)):
        _feed(ds, ix, T0 + 7300, T0 + 6 * 3600 + 60, post)
    assert _offline(restored) == []
    off = _offline(cold)
    assert off and off[0].detected - off[0].start == pytest.approx(1830.0)
    assert off[0].start == pytest.approx(post[0].recv)


def _session_rows(start: float, n: int, every: float, conn: int) -> MeterBatch:
    """A session sampled every ``every`` s, delivered 0.1-1.4 s late."""
    ts = start + every * np.arange(n)
    recv = ts + np.random.default_rng(n).uniform(0.1, 1.4, n)
    v = np.full((n, N_FIELDS), np.nan)
    v[:, FIELD_INDEX["power_w"]] = 7_000.0
    v[:, FIELD_INDEX["energy_wh"]] = 1_000.0 + 7_000.0 * (ts - start) / 3600
    return MeterBatch(np.full(n, conn, np.int32), ts, recv, v)


def _session_events(t: float, tx: str) -> list[Event]:
    return [
        StatusEvent(CP, 1, t, t, "Preparing", source="ocpp"),
        TransactionEvent(CP, 1, t + 1, t + 1, "start", tx, source="ocpp"),
        StatusEvent(CP, 1, t + 2, t + 2, "Charging", source="ocpp"),
    ]


def _session_end(t: float, tx: str) -> list[Event]:
    return [
        TransactionEvent(CP, 1, t, t, "stop", tx, source="ocpp"),
        StatusEvent(CP, 1, t + 1, t + 1, "Available", source="ocpp"),
    ]


def test_a_told_meter_interval_is_known_after_a_restart() -> None:
    """An operator throttled the charger's MeterValueSampleInterval to 300 s
    before the restart. A session after it is judged by 2 x 300 + 30 s, not by
    ``silence_s`` (300 s), which its gaps of 300 s and a little exceed."""
    index = _index()
    before = DetectorSet(index=index)
    told = MeterIntervalEvent(CP, T0, T0, "sampled", 300.0, "ChangeConfiguration", source="ocpp")
    c1 = index.id(CP, 1)
    first = _session_rows(T0 + 100, 8, 300.0, c1)
    pre = [told, *_session_events(T0 + 95, "a"), *_session_end(T0 + 2500, "a")]
    pre += _beats(T0 + 60, T0 + 3000, 60.0)
    _feed(before, index, T0 - EVAL_S, T0 + 3000, pre, first)
    assert _stale(before) == []
    restored, index2 = _restarted(before)
    cold, index3 = _restarted(before, restore=False)
    start = T0 + 3600
    post = [*_session_events(start - 5, "b"), *_beats(start - 60, start + 3000, 60.0)]
    for ds, ix in ((restored, index2), (cold, index3)):
        _feed(ds, ix, T0 + 3000, start + 3000, post, _session_rows(start, 9, 300.0, ix.id(CP, 1)))
    assert _stale(restored) == []
    assert _stale(cold), "the unrestored set pages a session for its told cadence"
    sess = restored.detectors["stale_telemetry"]
    c = index2.id(CP, 1)
    assert sess.told[c].tolist() == [300.0, pytest.approx(np.nan, nan_ok=True)]  # type: ignore[attr-defined]


def test_the_snapshot_is_keyed_by_charger_and_small() -> None:
    index = _index()
    ds = DetectorSet(index=index)
    _feed(ds, index, T0 - EVAL_S, T0 + 600, [_told(T0, 60.0), *_beats(T0 + 60, T0 + 600, 60.0)])
    snap: dict[str, Any] = orjson.loads(orjson.dumps(ds.snapshot()))
    assert snap["version"] == 1 and list(snap["chargers"]) == [CP]
    entry = snap["chargers"][CP]
    assert entry["connectors"] == [1, 2]
    assert entry["charger_offline"]["heartbeat_s"] == 60.0
    assert entry["charger_offline"]["ocpp"] is True
    assert len(entry["charger_offline"]["heartbeat_gaps"]) == 5  # the last five
    assert set(entry["stale_telemetry"]) == {"1", "2"}
    # No times: a restart's own gap is never judged a silence.
    assert "last_seen" not in str(snap)
    with pytest.raises(ValueError, match="version"):
        DetectorSet(index=_index()).restore({"version": 99, "chargers": {}})


def test_a_restored_charger_is_not_offline_for_the_restarts_own_gap() -> None:
    """The silence clock starts at the first message after the restart: the
    collector was away 10 min (four 60 s heartbeats' worth), no finding."""
    index = _index()
    before = DetectorSet(index=index)
    _feed(before, index, T0 - EVAL_S, T0 + 600, [_told(T0, 60.0), *_beats(T0 + 60, T0 + 600, 60.0)])
    restored, index2 = _restarted(before)
    restored.tick(T0 + 1200)
    assert _offline(restored) == []
    _feed(restored, index2, T0 + 1200, T0 + 1500, _beats(T0 + 1230, T0 + 1500, 60.0))
    assert _offline(restored) == []
    assert restored.detectors["charger_offline"].interval[index2.id(CP, 1)] == 60.0  # type: ignore[attr-defined]


def _offline_findings(ds: DetectorSet) -> list[tuple[float, float, float | None]]:
    return [
        (f.start - T0, f.detected - T0, None if f.end is None else f.end - T0)
        for f in ds.findings
        if f.fault == "charger_offline" and f.connector == ds._by_charger[CP][0]
    ]


@pytest.mark.parametrize("heard_back", [None, 1150.0], ids=["silent", "back-before-stop"])
def test_an_outage_open_at_the_snapshot_goes_on_unless_the_charger_was_heard_since(
    heard_back: float | None,
) -> None:
    """CP1 (told 60 s) stops at ~300 s and is found offline 150 s later; the
    snapshot is taken at 600 s, the restarted set runs from 1,160 s. Restored,
    the outage goes on from its own start until CP1 is heard (at 1,200 s).
    When the fleet state says CP1 was heard after the outage began (at
    1,150 s, after the snapshot), the outage ends there instead."""
    index = _index()
    ds = DetectorSet(index=index)
    _feed(ds, index, T0 - EVAL_S, T0 + 600, [_told(T0, 60.0), *_beats(T0, T0 + 301, 60.0)])
    ((start, detected, end),) = _offline_findings(ds)
    assert (detected - start, end) == (150.0, None)
    fresh, index2 = _restarted(ds)
    if heard_back is not None:
        fresh.heard({CP: T0 + heard_back}, T0 + 1160)
    back = [HeartbeatEvent(CP, T0 + 1200, T0 + 1200, source="ocpp")]
    _feed(fresh, index2, T0 + 1160, T0 + 1250, back)
    ended = 1200.0 if heard_back is None else heard_back
    assert _offline_findings(fresh) == [(start, detected, ended)]
    assert not fresh.signals["charger_offline"][fresh._by_charger[CP][0]]
