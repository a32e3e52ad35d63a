"""ChargerOffline across a partition move (collector/cluster.py): two collectors
in one process, sharing a PostgreSQL ledger and its partition leases, with the
real pipeline, detectors and rules. The chargers heartbeat every 60 s (told at
boot) the whole time; whoever owns their partition hears them. No collector
may page ChargerOffline for a charger that was never silent: not the one that
gave the partition back (it stops hearing the charger because another
collector hears it now), nor the one it comes back to later.

Data time is the test's (``T0`` on), lease time is PostgreSQL's: the leases
are long enough that none runs out during the test; the moves are the
rebalancing of a join and a clean leave."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from chargewatch.analytics.uptime import outages
from chargewatch.collector.service import Collector
from chargewatch.config.sections import ClusterConfig
from chargewatch.config.settings import Config, HttpConfig
from chargewatch.ingest.cluster import partition_of
from chargewatch.ingest.mqtt import MqttConfig
from chargewatch.model.fleet import ChargerSpec, Fleet
from chargewatch.storage.uptime_source import load_uptime_inputs
from tests.collector.test_restart_stale import _meter as stale_meter
from tests.collector.test_restart_stale import _start as stale_start
from tests.services import PostgreSQL

pytestmark = pytest.mark.integration

T0 = 1_800_000_000.0
N = 2
MOVES, STAYS = "X", "CP4"  # partition 1 goes back first at a join (leases.py), 0 stays
FLEET = Fleet({}, {c: ChargerSpec(c, site="s", connectors=1) for c in (MOVES, STAYS)})
BEAT_S = 60


@pytest.fixture
def pg_url(postgresql: PostgreSQL) -> Iterator[str]:
    name = f"cluster_live_{uuid.uuid4().hex[:10]}"
    yield postgresql.create_db(name)
    postgresql.drop_db(name)


def _collector(url: str, data: Path, name: str) -> Collector:
    cfg = Config(
        data_dir=data / name,
        collector_id=name,
        ledger_url=url,
        http=HttpConfig(listen=""),
        # Nothing arrives through MQTT here (the test feeds the pipeline): an
        # unreachable broker, whose connects fail in the background.
        mqtt=MqttConfig(host="127.0.0.1", port=1),
        cluster=ClusterConfig(partitions=N, lease_s=600.0, session_prefix=f"cw-{name}"),
    )
    return Collector(cfg, fleet=FLEET)


def _msg(t: float, charger: str, frame: list[object]) -> tuple[str, bytes, float]:
    source = "csms" if frame[0] == 3 else "cp"
    return f"ocpp/1.6/{charger}/{source}", json.dumps(frame).encode(), t


def _boot(t: float, charger: str) -> list[tuple[str, bytes, float]]:
    req = {"chargePointVendor": "V", "chargePointModel": "M"}
    res = {"status": "Accepted", "currentTime": "2027-01-15T08:00:00Z", "interval": BEAT_S}
    return [
        _msg(t, charger, [2, f"b-{charger}", "BootNotification", req]),
        _msg(t + 0.2, charger, [3, f"b-{charger}", res]),
    ]


def _beat(t: float, charger: str) -> tuple[str, bytes, float]:
    return _msg(t, charger, [2, f"h-{charger}-{t:.0f}", "Heartbeat", {}])


def _pages(c: Collector) -> list[tuple[str, str]]:
    """ChargerOffline transitions of this collector: (charger, state)."""
    return [
        (t.labels.get("charger", ""), t.state)
        for t in c.recent_transitions
        if t.alertname == "ChargerOffline"
    ]


def test_a_charger_heartbeating_through_a_move_and_back_never_pages(
    tmp_path: Path, pg_url: str
) -> None:
    assert partition_of(MOVES, N) == 1 and partition_of(STAYS, N) == 0
    a = _collector(pg_url, tmp_path, "a")
    b: Collector | None = None
    try:
        assert a.cluster is not None
        a.cluster.tick(T0, force=True)
        assert a.cluster.active == {0, 1}  # alone: all of it
        a.pipeline.process([*_boot(T0, MOVES), *_boot(T0, STAYS)], T0 + 1)

        def minute(t: float, heard_by: dict[str, Collector]) -> None:
            """One heartbeat of each charger at ``t``, to its owner; then every
            collector evaluates, as their ticks do (every 10 s)."""
            for charger, owner in heard_by.items():
                owner.pipeline.process([_beat(t, charger)], t)
            for s in range(0, BEAT_S, 10):
                for c in {id(c): c for c in (a, b) if c is not None}.values():
                    c.pipeline.tick(t + s)

        t = T0 + BEAT_S
        for _ in range(5):  # a alone
            minute(t, {MOVES: a, STAYS: a})
            t += BEAT_S
        # b joins: a gives partition 1 (MOVES) back at its next renewal, b takes it.
        b = _collector(pg_url, tmp_path, "b")
        assert b.cluster is not None
        b.cluster.tick(t, force=True)
        a.cluster.tick(t, force=True)
        b.cluster.tick(t, force=True)
        assert (a.cluster.active, b.cluster.active) == ({0}, {1})
        for _ in range(15):  # 15 min at b: a hears nothing of MOVES now
            minute(t, {MOVES: b, STAYS: a})
            t += BEAT_S
        # b leaves cleanly; a takes partition 1 back.
        b.cluster.leave(t)
        a.cluster.tick(t, force=True)
        assert a.cluster.active == {0, 1}
        for _ in range(5):
            minute(t, {MOVES: a, STAYS: a})
            t += BEAT_S
        assert _pages(a) == [] and _pages(b) == []
        offline = [f for f in a.detectors.findings if f.fault == "charger_offline"]
        assert offline == []
    finally:
        for c in (a, b):
            if c is not None:
                c.ingest.stop()
                c.ledger.close()


def test_a_charger_gone_silent_just_before_a_move_is_paged_by_its_new_owner(
    tmp_path: Path, pg_url: str
) -> None:
    """The other side: MOVES stops at T0 + 300 s (its last heartbeat, heard by
    a); its partition goes to b a minute later, before the 150 s of silence
    are up. Its outage is still found (by b, which owns it now), once."""
    a = _collector(pg_url, tmp_path, "a")
    b: Collector | None = None
    try:
        assert a.cluster is not None
        a.cluster.tick(T0, force=True)
        a.pipeline.process([*_boot(T0, MOVES), *_boot(T0, STAYS)], T0 + 1)
        t = T0
        for t in range(int(T0) + BEAT_S, int(T0) + 6 * BEAT_S, BEAT_S):
            a.pipeline.process([_beat(t, MOVES), _beat(t, STAYS)], t)
            for s in range(0, BEAT_S, 10):
                a.pipeline.tick(t + s)
        t += BEAT_S  # T0 + 360: MOVES silent for a minute
        b = _collector(pg_url, tmp_path, "b")
        assert b.cluster is not None
        b.cluster.tick(t, force=True)
        a.cluster.tick(t, force=True)
        b.cluster.tick(t, force=True)
        assert (a.cluster.active, b.cluster.active) == ({0}, {1})
        for s in range(0, 600, 10):
            if s % BEAT_S == 0:
                a.pipeline.process([_beat(t + s, STAYS)], t + s)
            a.pipeline.tick(t + s)
            b.pipeline.tick(t + s)
        assert _pages(a) == [] and _pages(b) == [(MOVES, "firing")]
        # From its last heartbeat at a: 2 x 60 s + 30 s later (b's next evaluation).
        (found,) = [f for f in b.detectors.findings if f.fault == "charger_offline"]
        assert (found.start - T0, found.detected - T0) == (300.0, 450.0)
    finally:
        for c in (a, b):
            if c is not None:
                c.ingest.stop()
                c.ledger.close()


@pytest.mark.parametrize("back", [False, True], ids=["to-b", "to-b-and-back"])
def test_a_session_moved_mid_transaction_is_watched_by_its_new_owner(
    tmp_path: Path, pg_url: str, back: bool
) -> None:
    """MOVES charges (told 10 s meter values) when its partition goes to b (and,
    ``back``, returns to a when b leaves); its meter values stop two minutes
    after the last move, heartbeats go on. The owner then knows the connector
    is in a session (the status and the open session came with the partition,
    not what it knew before) and reports the silence at the last row +
    silence_s, as a collector that saw the whole session does
    (test_restart_stale.py)."""
    a = _collector(pg_url, tmp_path, "a")
    b: Collector | None = None
    try:
        assert a.cluster is not None
        a.cluster.tick(T0, force=True)
        a.pipeline.process(stale_start(), T0 + 5)

        def run(c: Collector, start: int, stop: int, meter_until: int) -> None:
            for s in range(start, stop, 10):
                t = T0 + s
                batch = [stale_meter(t, 30.0 * s)] if s < meter_until else []
                if s % BEAT_S == 0:
                    batch.append(_beat(t + 0.5, MOVES))
                if batch:
                    c.pipeline.process(batch, t + 0.5)
                for x in (a, b):
                    if x is not None:
                        x.pipeline.tick(t + 1)

        run(a, 10, 300, meter_until=1000)
        b = _collector(pg_url, tmp_path, "b")
        assert b.cluster is not None
        b.cluster.tick(T0 + 300, force=True)
        a.cluster.tick(T0 + 300, force=True)
        b.cluster.tick(T0 + 300, force=True)
        assert (a.cluster.active, b.cluster.active) == ({0}, {1})
        owner, other, moved = b, a, 300
        if back:
            run(b, 300, 600, meter_until=1000)
            b.cluster.leave(T0 + 600)
            a.cluster.tick(T0 + 600, force=True)
            assert a.cluster.active == {0, 1}
            owner, other, moved = a, b, 600
        run(owner, moved, moved + 700, meter_until=moved + 120)
        last = moved + 110 + 0.0
        found = [f for f in owner.detectors.findings if f.fault == "stale_telemetry"]
        assert [(f.start - T0, f.detected - T0) for f in found] == [(last, last + 300.0)]
        assert [f for f in other.detectors.findings if f.fault == "stale_telemetry"] == []
    finally:
        for c in (a, b):
            if c is not None:
                c.ingest.stop()
                c.ledger.close()


def _outages(c: Collector, charger: str, hi: float) -> list[tuple[float, float]]:
    """The charger's outages (from T0) as the uptime report reads them from the
    shared ledger: both collectors' alert transitions."""
    inputs = load_uptime_inputs(c.ledger, T0, hi, fleet=FLEET)
    port = next(p for p in inputs.ports if p.charger == charger)
    return [(o.start - T0, o.end - T0) for o in outages(port, inputs.signals, [], T0, hi)]


def test_a_charger_offline_when_its_partition_moves_stays_offline_at_its_new_owner(
    tmp_path: Path, pg_url: str
) -> None:
    """MOVES stops at T0 + 300 s and is paged by a (at 450 s); its partition
    goes to b at 600 s while it is still silent, and it is heard again at
    1,200 s, by b. The alert fires once (a's), keeps firing at b, and resolves
    there 2 min after the return; the uptime report has one outage, from its
    last heartbeat to its return. Before: b, which never heard it, resolved
    the alert 2 min after the move, and the outage ended at the move."""
    a = _collector(pg_url, tmp_path, "a")
    b: Collector | None = None
    try:
        assert a.cluster is not None
        a.cluster.tick(T0, force=True)
        a.pipeline.process([*_boot(T0, MOVES), *_boot(T0, STAYS)], T0 + 1)

        def run(start: int, stop: int, moves_heard_by: Collector | None) -> None:
            for s in range(start, stop, 10):
                t = T0 + s
                if s % BEAT_S == 0:
                    a.pipeline.process([_beat(t, STAYS)], t)
                    if moves_heard_by is not None:
                        moves_heard_by.pipeline.process([_beat(t, MOVES)], t)
                for c in (a, b):
                    if c is not None:
                        c.pipeline.tick(t)

        run(60, 360, a)  # last heartbeat of MOVES at 300
        run(360, 600, None)
        assert _pages(a) == [(MOVES, "firing")]
        b = _collector(pg_url, tmp_path, "b")
        assert b.cluster is not None
        for c in (b, a, b):
            assert c.cluster is not None
            c.cluster.tick(T0 + 600, force=True)
        assert (a.cluster.active, b.cluster.active) == ({0}, {1})
        run(600, 1200, None)  # 10 min at b, still silent
        assert _pages(b) == []
        assert [x.state.value for x in b.alert_engine.active()] == ["firing"]
        run(1200, 1500, b)  # back
        assert _pages(a) == [(MOVES, "firing")] and _pages(b) == [(MOVES, "resolved")]
        (found,) = [f for f in b.detectors.findings if f.fault == "charger_offline"]
        assert (found.start - T0, found.detected - T0, found.end) == (300.0, 450.0, T0 + 1200)
        assert _outages(a, MOVES, T0 + 1500) == [(300.0, 1200.0)]
    finally:
        for c in (a, b):
            if c is not None:
                c.ingest.stop()
                c.ledger.close()


def test_a_charger_offline_when_the_whole_cluster_stops_stays_offline_after_it(
    tmp_path: Path, pg_url: str
) -> None:
    """The whole cluster (one collector here) stops cleanly at 600 s while
    MOVES is offline (since 300 s, paged at 450 s) and comes back 2 h later:
    every partition's state went through the handover table. MOVES stays
    offline, its alert firing, until it is heard (5 min after the restart);
    STAYS, heard until the stop and heartbeating again from the restart, is
    not paged."""
    a = _collector(pg_url, tmp_path, "a")
    again: Collector | None = None
    try:
        assert a.cluster is not None
        a.cluster.tick(T0, force=True)
        a.pipeline.process([*_boot(T0, MOVES), *_boot(T0, STAYS)], T0 + 1)
        for s in range(60, 610, 10):
            heard = [STAYS] if s > 300 else [MOVES, STAYS]
            if s % BEAT_S == 0:
                a.pipeline.process([_beat(T0 + s, c) for c in heard], T0 + s)
            a.pipeline.tick(T0 + s)
        assert _pages(a) == [(MOVES, "firing")]
        a.cluster.leave(T0 + 600)
        a.ingest.stop()
        a.ledger.close()
        back = 600 + 7200
        again = _collector(pg_url, tmp_path, "a")
        assert again.cluster is not None
        again.cluster.tick(T0 + back, force=True)
        assert again.cluster.active == {0, 1}
        for s in range(back, back + 600, 10):
            heard = [STAYS] if s < back + 300 else [MOVES, STAYS]
            if s % BEAT_S == 0:
                again.pipeline.process([_beat(T0 + s, c) for c in heard], T0 + s)
            again.pipeline.tick(T0 + s)
        assert _pages(again) == [(MOVES, "resolved")]
        # keep_firing_for (2 min) after its return: before, 2 min after the restart.
        (gone,) = [t.at - T0 for t in again.recent_transitions if t.alertname == "ChargerOffline"]
        assert gone == back + 300 + 120
        (found,) = [f for f in again.detectors.findings if f.fault == "charger_offline"]
        assert (found.start - T0, found.detected - T0) == (300.0, 450.0)
        assert found.end == T0 + back + 300
        assert _outages(again, MOVES, T0 + back + 600) == [(300.0, back + 300.0)]
    finally:
        for c in (a, again):
            if c is not None:
                c.ingest.stop()
                c.ledger.close()
