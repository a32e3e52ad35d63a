"""The liveness detectors' learned intervals across a collector restart and
between collectors (collector/liveness_store.py): the ledger row
``liveness[@<id>]`` and the ``handover`` table, as the fleet state moves."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from chargewatch.collector.liveness_store import (
    KIND,
    LivenessStore,
    merge_liveness,
    split_liveness,
)
from chargewatch.collector.service import Collector
from chargewatch.config.settings import Config, HttpConfig
from chargewatch.detectors import DetectorSet, Finding
from chargewatch.model.batch import MeterBatch
from chargewatch.model.events import Event, HeartbeatEvent, HeartbeatIntervalEvent
from chargewatch.model.fleet import ChargerSpec, ConnectorIndex, Fleet
from chargewatch.storage.ledger import Ledger

T0 = 1_800_000_000.0
FLEET = Fleet({}, {c: ChargerSpec(c, site="s", connectors=2) for c in ("X", "Y")})


def _frame(recv: float, charger: str, source: str, frame: list[Any]) -> tuple[str, bytes, float]:
    return f"ocpp/1.6/{charger}/{source}", json.dumps(frame).encode(), recv


def _boot(t: float, charger: str, interval: int) -> list[tuple[str, bytes, float]]:
    req = {"chargePointVendor": "V", "chargePointModel": "M"}
    res = {"status": "Accepted", "currentTime": "2027-01-15T08:00:00Z", "interval": interval}
    return [
        _frame(t, charger, "cp", [2, f"b{charger}", "BootNotification", req]),
        _frame(t + 0.2, charger, "csms", [3, f"b{charger}", res]),
    ]


def _collector(data: Path) -> Collector:
    return Collector(Config(data_dir=data, http=HttpConfig(listen="")), fleet=FLEET)


def _crash(c: Collector) -> None:
    """Gone without a word (its ledger lock freed): what it saved last is what stays."""
    c.ledger.close()
    c.fleet_store.close()
    c.deadletter.close()


def _offline(findings: list[Finding]) -> list[tuple[int, float, float]]:
    return [(f.connector, f.start, f.detected) for f in findings if f.fault == "charger_offline"]


def test_the_told_interval_is_known_after_a_collector_restart(tmp_path: Path) -> None:
    """Booted with a 60 s heartbeat before the restart; after it (the periodic
    save, then a crash) its first heartbeat starts the silence clock and 150 s
    of silence is an outage, not 1,830 s (the assumed 900 s)."""
    c = _collector(tmp_path)
    c.pipeline.process(_boot(T0, "X", 60), T0 + 1)
    c.pipeline.tick(T0 + 30)
    c._save_state()
    _crash(c)
    again = _collector(tmp_path)
    try:
        again.pipeline.process([_frame(T0 + 100, "X", "cp", [2, "h1", "Heartbeat", {}])], T0 + 100)
        for t in range(130, 400, 30):  # the collector's evaluations
            again.pipeline.tick(T0 + t)
        x1, x2 = again.index.id("X", 1), again.index.id("X", 2)
        assert _offline(again.detectors.findings) == [
            (x1, T0 + 100, T0 + 250),
            (x2, T0 + 100, T0 + 250),
        ]
        saved = again.ledger.load_state(KIND)
        assert saved is not None
        assert saved["chargers"]["X"]["charger_offline"]["heartbeat_s"] == 60.0
    finally:
        again.ledger.close()


def _learned(*chargers: str) -> DetectorSet:
    """Each charger told 60 s at boot, heard at T0."""
    index = ConnectorIndex(FLEET)
    ds = DetectorSet(index=index)
    ev: list[Event] = []
    for c in chargers:
        ev += [
            HeartbeatEvent(c, T0, T0, source="ocpp"),
            HeartbeatIntervalEvent(c, T0, T0 + 0.2, 60.0, "BootNotification", source="ocpp"),
        ]
    ds.update(MeterBatch.empty(), ev, index, T0 + 1)
    return ds


def _interval(ds: DetectorSet, charger: str) -> float:
    assert ds.index is not None
    d: Any = ds.detectors["charger_offline"]
    return float(d.interval[d.head[ds.index.id(charger, 1)]])


def test_split_and_merge_by_charger() -> None:
    snap = _learned("X", "Y").snapshot()
    mine, rest = split_liveness(snap, lambda c: c == "X")
    assert mine is not None and rest is not None
    assert list(mine["chargers"]) == ["X"] and list(rest["chargers"]) == ["Y"]
    assert mine["version"] == rest["version"] == 1
    assert split_liveness(snap, lambda c: True)[1] is None
    assert merge_liveness(mine, rest) == snap
    # Where both name a charger the part merged in (taken later) wins.
    other = _learned("X").snapshot()
    other["chargers"]["X"]["charger_offline"]["heartbeat_s"] = 3600.0
    merged = merge_liveness(snap, other)
    assert merged["chargers"]["X"]["charger_offline"]["heartbeat_s"] == 3600.0
    assert merged["chargers"]["Y"] == snap["chargers"]["Y"]


def test_a_moved_charger_takes_its_interval_to_its_new_owner(ledger_url: str) -> None:
    """Partitions changed across a restart: "a" now owns Y only, "b" X. Whichever
    starts first, X's interval ends at "b" and leaves "a"'s row."""
    old = _learned("X", "Y")
    with Ledger(ledger_url, collector_id="a") as la:
        LivenessStore(la, old, lambda c: True).save(T0 + 5)
    restarted_a = DetectorSet(index=ConnectorIndex(FLEET))
    new_b = DetectorSet(index=ConnectorIndex(FLEET))
    with Ledger(ledger_url, collector_id="a") as la, Ledger(ledger_url, collector_id="b") as lb:
        b = LivenessStore(lb, new_b, lambda c: c == "X")
        assert b.start(T0 + 10) == 0  # "b" first: nothing handed over yet
        assert LivenessStore(la, restarted_a, lambda c: c == "Y").start(T0 + 20) == 1
        assert _interval(restarted_a, "Y") == 60.0
        assert _interval(restarted_a, "X") != 60.0  # handed over, not restored
        a_row = la.load_state(KIND)
        assert a_row is not None and list(a_row["chargers"]) == ["Y"]
        assert b.adopt() == 1  # on its next tick
        assert _interval(new_b, "X") == 60.0
        assert b.adopt() == 0  # taken once
        assert lb.db.execute("SELECT COUNT(*) FROM handover").fetchone()[0] == 0


def test_a_dead_collectors_chargers_keep_their_interval(ledger_url: str) -> None:
    """Dynamic partitions: the taker merges the dead collector's row for the
    chargers it now owns (``ClusterMember._adopt``: ledger.adopt with the
    liveness split and merge), and the rest stays in the dead one's row."""
    with Ledger(ledger_url, collector_id="a") as la:
        LivenessStore(la, _learned("X", "Y"), lambda c: True).save(T0 + 5)
    taker = DetectorSet(index=ConnectorIndex(FLEET))
    owns = lambda c: c == "X"  # noqa: E731
    with Ledger(ledger_url, collector_id="b") as lb:
        store = LivenessStore(lb, taker, owns)
        taken = lb.adopt(owns, lambda s: split_liveness(s, owns), merge_liveness, name=KIND)
        assert taken == 1
        merged = lb.load_state(KIND)
        assert merged is not None
        mine, _ = split_liveness(merged, owns)
        assert mine is not None and store.restore(mine) == 1
        assert _interval(taker, "X") == 60.0
        left = lb.db.execute("SELECT state FROM engine_state WHERE name=?", ("liveness@a",))
        assert list(json.loads(left.fetchone()[0])["chargers"]) == ["Y"]


def test_an_unreadable_row_is_ignored(tmp_path: Path) -> None:
    """A row of another version: the intervals are learned again, the collector starts."""
    with Ledger(tmp_path / "ledger.sqlite") as led:
        led.save_state({"version": 99, "chargers": {"X": {}}}, name=KIND)
    c = _collector(tmp_path)
    try:
        assert c.detectors.snapshot()["chargers"] == {}
    finally:
        c.ledger.close()


@pytest.mark.parametrize("owner", ["a", "b"])
def test_a_given_back_charger_is_handed_over(ledger_url: str, owner: str) -> None:
    """Giving partitions back (``ClusterMember._give_back``): the leaving
    chargers' part goes to the handover table, the row keeps the others."""
    ds = _learned("X", "Y")
    keep = (lambda c: c == "Y") if owner == "a" else (lambda c: c == "X")
    with Ledger(ledger_url, collector_id="a") as la:
        store = LivenessStore(la, ds, keep)
        assert store.hand_over(lambda c: not keep(c), T0 + 5) == 1
        store.save(T0 + 5)
        row = la.load_state(KIND)
        assert row is not None and [c for c in row["chargers"]] == [c for c in "XY" if keep(c)]
        (part,) = la.db.execute("SELECT state FROM handover WHERE kind=?", (KIND,)).fetchall()
        assert [c for c in json.loads(part[0])["chargers"]] == [c for c in "XY" if not keep(c)]
