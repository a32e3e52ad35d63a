"""Partition leases on a real PostgreSQL (storage/leases.py): fair shares, takeover
of an expired lease, rebalance on join, and fencing of a paused-then-resumed
collector's ledger writes."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from chargewatch.alerting import AlertEngine
from chargewatch.alerting.testing import make_frame
from chargewatch.collector.alert_stage import AlertStage
from chargewatch.model.fleet import ConnectorIndex, Fleet
from chargewatch.state.fleet_state import FleetState
from chargewatch.storage.leases import FencedError, LeaseTable, partition_of
from chargewatch.storage.ledger import Ledger, query_sessions
from chargewatch.storage.ledger_copy import copy_ledger
from chargewatch.storage.sqldb import PgDatabase
from tests.billing.test_ledger import records
from tests.services import PostgreSQL

pytestmark = pytest.mark.integration

N = 8


@pytest.fixture
def url(postgresql: PostgreSQL) -> Iterator[str]:
    name = f"leases_{uuid.uuid4().hex[:12]}"
    url = postgresql.create_db(name)
    Ledger(url).close()  # the lease tables come with the ledger's schema (migration 13)
    yield url
    postgresql.drop_db(name)


@pytest.fixture
def dbs(url: str) -> Iterator[list[PgDatabase]]:
    opened: list[PgDatabase] = []
    yield opened
    for db in opened:
        db.close()


def table(url: str, dbs: list[PgDatabase], who: str, lease_s: float = 30.0) -> LeaseTable:
    db = PgDatabase(url)
    dbs.append(db)
    return LeaseTable(db, who, partitions=N, lease_s=lease_s)


def settle(tables: list[LeaseTable], rounds: int = 4) -> None:
    """Renew every collector a few times, handing back surplus as a collector would."""
    for _ in range(rounds):
        for t in tables:
            r = t.renew()
            t.release(r.surplus)


def test_partition_of_is_the_static_cut() -> None:
    from chargewatch.ingest.partition import Partition  # noqa: PLC0415

    for charger in ("CP-1", "CP-2", "DE*ABC*E123", "x"):
        k = partition_of(charger, 5)
        assert Partition(index=k, count=5).owns(charger)


def test_one_collector_claims_everything(url: str, dbs: list[PgDatabase]) -> None:
    a = table(url, dbs, "a")
    r = a.renew()
    assert sorted(r.held) == list(range(N)) and r.claimed == list(range(N))
    assert r.live == 1 and not r.lost and not r.surplus
    assert set(a.owners().values()) == {"a"}
    assert all(t == 1 for t in r.held.values())  # first claim: token 1


def test_fair_share_and_rebalance_on_join(url: str, dbs: list[PgDatabase]) -> None:
    a, b = table(url, dbs, "a"), table(url, dbs, "b")
    settle([a, b])
    assert len(a.held) == len(b.held) == N // 2
    assert set(a.held).isdisjoint(b.held)
    c = table(url, dbs, "c")
    settle([a, b, c])
    sizes = sorted(len(t.held) for t in (a, b, c))
    assert sizes == [2, 3, 3]  # ceil(8 / 3) = 3 each at most, nothing left unowned
    owners = a.owners()
    assert "" not in owners.values()
    for t in (a, b, c):
        assert {p for p, o in owners.items() if o == t.collector} == set(t.held)


def test_a_dead_collectors_partitions_are_taken_after_its_lease(
    url: str, dbs: list[PgDatabase]
) -> None:
    a, b = table(url, dbs, "a", lease_s=2.0), table(url, dbs, "b", lease_s=2.0)
    settle([a, b])
    dead = dict(b.held)
    assert dead
    # b stops renewing (SIGKILL): before its lease ends, a may not take its share;
    # a keeps renewing its own, as its lease loop does.
    r = a.renew()
    assert set(r.held).isdisjoint(dead)
    claimed: list[int] = []
    for _ in range(6):
        time.sleep(0.5)
        r = a.renew()
        claimed += r.claimed
    assert sorted(claimed) == sorted(dead) and sorted(r.held) == list(range(N))
    assert r.live == 1
    for p, token in dead.items():  # a new token for every partition taken over
        assert r.held[p] == token + 1


def test_a_clean_leave_frees_partitions_at_once(url: str, dbs: list[PgDatabase]) -> None:
    a, b = table(url, dbs, "a"), table(url, dbs, "b")
    settle([a, b])
    b.leave()
    assert sorted(a.renew().held) == list(range(N))


def test_a_zombie_cannot_write_after_takeover(url: str, dbs: list[PgDatabase]) -> None:
    recs = records(2)
    chargers = {r.charger_id for r in recs}
    with Ledger(url, collector_id="a") as la, Ledger(url, collector_id="b") as lb:
        a = LeaseTable(la.db, "a", partitions=N, lease_s=1.0)
        b = LeaseTable(lb.db, "b", partitions=N, lease_s=1.0)
        la.fencing, lb.fencing = a, b
        a.renew()
        la.write(recs[:1])  # a holds every lease: its writes go through
        la.journal_append([("event", json.dumps({"charger": recs[0].charger_id}))])
        la.save_state({"sessions": []}, at=1.0)
        # a pauses (SIGSTOP, a GC, a lost network) past its lease; b takes over.
        time.sleep(1.2)
        b.renew()
        assert all(b.owns(c) for c in chargers)
        # a resumes believing it still owns everything: every write is refused.
        assert all(a.owns(c) for c in chargers)
        with pytest.raises(FencedError):
            la.write(recs[1:])
        with pytest.raises(FencedError):
            la.journal_append([("event", json.dumps({"charger": recs[1].charger_id}))])
        with pytest.raises(FencedError):
            la.save_state({"sessions": []}, at=2.0)
        cdr = {"total_cost": {"excl_vat": "1"}, "currency": "EUR", "total_energy": 1}
        with pytest.raises(FencedError):
            la.write_cdr(session_id="s", charger_id=recs[1].charger_id, site="", start=0.0,
                         cdr=cdr)  # fmt: skip
        assert lb.write(recs[1:]) == 1  # the new owner writes
        # Renewing tells a it lost them; it then holds nothing to write for.
        r = a.renew(claim=False)
        assert sorted(r.lost) == list(range(N)) and not a.held
    with Ledger(url, read_only=True) as led:
        assert len(query_sessions(led)) == 2


HOT = """groups:
  - name: g
    rules:
      - alert: Hot
        expr: temperature_c > 80
        labels: {severity: warning}
"""


def test_a_collector_whose_lease_was_taken_writes_no_alert_or_status(
    url: str, tmp_path: Path
) -> None:
    """Alert transitions and port statuses are fenced as sessions are: once another
    collector took the lease over, the old owner records nothing and pages nobody."""
    (tmp_path / "hot.yaml").write_text(HOT)
    index = ConnectorIndex(Fleet.empty())
    index.id("CP1", 1)
    with Ledger(url, collector_id="a") as la, Ledger(url, collector_id="b") as lb:
        a = LeaseTable(la.db, "a", partitions=N, lease_s=1.0)
        b = LeaseTable(lb.db, "b", partitions=N, lease_s=1.0)
        la.fencing, lb.fencing = a, b
        a.renew()
        la.write_port_status([["CP1", 1, "Available", "NoError", 5.0]], now=5.0)
        paged: list[object] = []
        stage = AlertStage(
            AlertEngine(tmp_path, index),
            FleetState(index),
            providers=[lambda now: make_frame([("CP1", 1)], site="s", temperature_c=95.0)],
            deliver=paged.extend,
            on_transitions=lambda ts: la.write_alert_transitions(
                {"at": t.at, "state": t.state, "alertname": t.alertname, "labels": t.labels}
                for t in ts
            ),
        )
        time.sleep(1.2)  # a pauses past its lease; b takes everything over
        b.renew()
        with pytest.raises(FencedError):
            stage.tick(10.0)  # the alert fires at a, which may not record it ...
        assert paged == []  # ... nor page it
        with pytest.raises(FencedError):
            la.write_port_status([["CP1", 1, "Faulted", "GroundFailure", 11.0]], now=11.0)
        with pytest.raises(FencedError):  # a transition of a charger a never owned too
            la.write_alert_transitions([{"at": 12.0, "state": "firing", "alertname": "X"}])
        assert lb.write_port_status([["CP1", 1, "Faulted", "GroundFailure", 11.0]], now=11.0)
    with Ledger(url, read_only=True) as led:
        assert led.db.execute("SELECT COUNT(*) FROM alert_transitions").fetchone()[0] == 0
        statuses = led.db.execute("SELECT status FROM port_status ORDER BY at").fetchall()
        assert [r[0] for r in statuses] == ["Available", "Faulted"]


def test_a_ledger_without_the_lease_tables_is_refused(
    postgresql: PostgreSQL, dbs: list[PgDatabase]
) -> None:
    """The tables come from the ledger's migrations, not from a collector."""
    name = f"leases_bare_{uuid.uuid4().hex[:8]}"
    db = PgDatabase(postgresql.create_db(name))
    try:
        with pytest.raises(ValueError, match="no partition lease tables"):
            LeaseTable(db, "a", partitions=N)
    finally:
        db.close()
        postgresql.drop_db(name)


def test_every_collector_needs_the_same_partition_count(url: str, dbs: list[PgDatabase]) -> None:
    table(url, dbs, "a")
    db = PgDatabase(url)
    dbs.append(db)
    for other in (N // 2, N + 1):
        with pytest.raises(ValueError, match=r"same cluster\.partitions"):
            LeaseTable(db, "b", partitions=other)
    LeaseTable(db, "b", partitions=N)


def test_ledger_migrate_leaves_the_leases_behind(url: str, postgresql: PostgreSQL) -> None:
    """Who runs where is the source cluster's business, not ledger data."""
    name = f"leases_to_{uuid.uuid4().hex[:8]}"
    target = postgresql.create_db(name)
    try:
        with Ledger(url) as src, Ledger(target) as dst:
            leases = LeaseTable(src.db, "a", partitions=N)
            leases.renew()
            src.write(records(1))
            report = copy_ledger(src, dst)
            assert report.source["sessions"] == 1 == report.target["sessions"]
            assert "partition_leases" not in report.source
            # The target has the tables (its schema), but no lease of the source.
            leases_there = dst.db.execute("SELECT COUNT(*) FROM partition_leases").fetchone()
            assert leases_there is not None and leases_there[0] == 0
    finally:
        postgresql.drop_db(name)
