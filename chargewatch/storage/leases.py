"""Partition leases in PostgreSQL: which collector owns which part of the fleet
(docs/scaling.md, "dynamic partitions").

The fleet is cut into ``N`` partitions, charger ``c`` in ``crc32(c) % N`` (as
the static ``index/count`` form). One row per partition in
``partition_leases`` says who owns it, until when, and under which fencing
token. Everything is decided by PostgreSQL, not here:

* time is the database's (``clock_timestamp()``), so the hosts' clocks never
  have to agree;
* a claim takes free or expired rows with ``SELECT … FOR UPDATE SKIP LOCKED``
  in one transaction, so two collectors claiming at once never get the same
  partition, and neither waits for the other;
* every claim adds one to the row's token. A ledger write for a partition's
  chargers checks, in its own transaction, that the row still names this
  collector *with the token it was given* and has not expired
  (:meth:`LeaseTable.fence`), locking the row ``FOR SHARE`` so a takeover
  waits for that transaction to end. A collector paused past its lease (GC,
  SIGSTOP, a lost network) and then resumed finds a new token there and
  cannot write: :class:`FencedError`.

The live collectors are the rows of ``cluster_members`` whose heartbeat has
not expired; each aims for a fair share, ``ceil(N / live)`` partitions. One
that holds more gives the extra back (:meth:`LeaseTable.release`, after its
caller handed that partition's state over); one that holds fewer claims what
is free or expired. Nothing waits for a dead collector but its lease: its
partitions are claimable ``lease_s`` after its last renewal.

The tables come with the ledger's schema (migration 13 in storage/ledger.py);
they are used on PostgreSQL only (SQLite collectors share one host and use
the static partitions). The first collector of a cluster fills in one row per
partition.
"""

from __future__ import annotations

__all__ = [
    "DEFAULT_LEASE_S",
    "LEASE_TABLES",
    "FencedError",
    "LeaseTable",
    "Renewal",
    "partition_of",
]

import logging
import math
import zlib
from collections.abc import Iterable
from dataclasses import dataclass, field

from chargewatch.storage.health import StorageUnavailableError
from chargewatch.storage.sqldb import PgDatabase

#: A lease outlives its last renewal by this much. Renewed every third of it,
#: a dead collector's partitions are claimable at most ``lease_s`` after its
#: last renewal and claimed by the next renewal of another: ≤ 4/3 · 15 = 20 s.
DEFAULT_LEASE_S = 15.0

#: The tables of a cluster's coordination (not ledger data: ``ledger migrate`` skips them).
LEASE_TABLES = frozenset({"partition_leases", "cluster_members"})
log = logging.getLogger(__name__)

# The database's clock, in epoch seconds (the clock of every decision).
_NOW = "extract(epoch FROM clock_timestamp())"
# (partition, token) pairs from two array parameters.
_PAIRS = "(SELECT * FROM unnest(?::integer[], ?::bigint[]))"


class FencedError(StorageUnavailableError):
    """A write for a partition whose lease this collector no longer holds.

    A StorageUnavailableError: the pipeline stops on it before anything is
    acknowledged, as on a full disk (no stage swallows it as a bug)."""

    def __init__(self, collector: str, partitions: Iterable[int]) -> None:
        self.partitions = sorted(set(partitions))
        super().__init__(
            f"collector {collector!r} no longer holds the lease of partition(s) "
            f"{self.partitions}: another collector took them over; this write is refused"
        )


def partition_of(charger: str, count: int) -> int:
    """The partition of a charger: ``crc32(id) % count``, the same in every process
    (and the same cut as ``ingest.partition.stable_hash``, which storage may not import)."""
    return zlib.crc32(charger.encode()) % count


@dataclass
class Renewal:
    """What one :meth:`LeaseTable.renew` found: partitions (with their tokens)
    held now, newly claimed, lost, and those to give back for a fair share."""

    held: dict[int, int] = field(default_factory=dict)
    claimed: list[int] = field(default_factory=list)
    lost: list[int] = field(default_factory=list)
    surplus: list[int] = field(default_factory=list)
    live: int = 1


class LeaseTable:
    """One collector's view of the partition leases of one PostgreSQL ledger.

    Not thread-safe: one thread renews (the collector's lease loop); the
    pipeline reads :attr:`held` (replaced whole, never mutated) and calls
    :meth:`fence` inside its ledger transactions.
    """

    def __init__(
        self,
        db: PgDatabase,
        collector: str,
        *,
        partitions: int,
        lease_s: float = DEFAULT_LEASE_S,
    ) -> None:
        if partitions < 1:
            raise ValueError("cluster.partitions must be at least 1")
        if lease_s <= 0:
            raise ValueError("cluster.lease_s must be positive")
        self.db = db
        self.collector = collector
        self.count = partitions
        self.lease_s = lease_s
        #: partition -> fencing token, for the partitions this collector holds.
        self.held: dict[int, int] = {}
        #: Set once a write was refused or a renewal found a lease lost (and why).
        self.fenced = False
        self.fenced_reason = ""
        if not set(db.tables()) >= LEASE_TABLES:
            raise ValueError(
                "the ledger has no partition lease tables: open it with this version"
                " (any chargewatch command that opens the ledger applies migration 13)"
            )
        # One collector at a time fills the rows in (the advisory lock of migrations).
        with db.transaction("migrate"):
            existing = int(db.execute("SELECT count(*) FROM partition_leases").rows[0][0])
            if not existing:
                db.execute(
                    "INSERT INTO partition_leases (partition) SELECT generate_series(0, ? - 1)",
                    (partitions,),
                )
        if existing and existing != partitions:
            # The cluster was started with another N: the cut would differ.
            raise ValueError(
                f"the ledger's cluster has {existing} partitions, this collector "
                f"{partitions}: every collector of a cluster needs the same cluster.partitions"
            )

    def owns(self, charger: str) -> bool:
        """Whether this collector holds the lease of the charger's partition."""
        return partition_of(charger, self.count) in self.held

    def renew(self, *, claim: bool = True) -> Renewal:
        """Heartbeat, renew the held leases, claim up to a fair share (``claim``),
        and name the surplus partitions to give back; one transaction."""
        out = Renewal()
        with self.db.transaction():
            self.db.execute(
                f"INSERT INTO cluster_members VALUES (?, {_NOW} + ?)"
                " ON CONFLICT (collector) DO UPDATE SET seen_until = excluded.seen_until",
                (self.collector, self.lease_s),
            )
            kept = self._renew_held()
            out.lost = sorted(set(self.held) - set(kept))
            out.live = int(
                self.db.execute(
                    f"SELECT count(*) FROM cluster_members WHERE seen_until > {_NOW}"
                ).rows[0][0]
            )
            share = math.ceil(self.count / max(1, out.live))
            if claim and len(kept) < share:
                got = self._claim(share - len(kept))
                out.claimed = sorted(got)
                kept.update(got)
            # The highest partitions go back first: every collector agrees on
            # which are extra without talking, so they move once.
            out.surplus = sorted(kept)[share:] if len(kept) > share else []
        out.held = kept
        self.held = dict(kept)
        return out

    def _renew_held(self) -> dict[int, int]:
        if not self.held:
            return {}
        rows = self.db.execute(
            f"UPDATE partition_leases SET expires_at = {_NOW} + ?"
            f" WHERE owner = ? AND expires_at > {_NOW}"
            " AND partition = ANY(?) RETURNING partition, token",
            (self.lease_s, self.collector, list(self.held)),
        ).rows
        # A row whose token moved on was claimed by someone else meanwhile.
        return {int(p): int(t) for p, t in rows if self.held.get(int(p)) == int(t)}

    def _claim(self, want: int) -> dict[int, int]:
        free = self.db.execute(
            "SELECT partition FROM partition_leases"
            f" WHERE partition < ? AND (owner = '' OR expires_at <= {_NOW})"
            " ORDER BY partition LIMIT ? FOR UPDATE SKIP LOCKED",
            (self.count, want),
        ).rows
        if not free:
            return {}
        rows = self.db.execute(
            f"UPDATE partition_leases SET owner = ?, token = token + 1, expires_at = {_NOW} + ?"
            " WHERE partition = ANY(?) RETURNING partition, token",
            (self.collector, self.lease_s, [int(r[0]) for r in free]),
        ).rows
        return {int(p): int(t) for p, t in rows}

    def release(self, partitions: Iterable[int]) -> list[int]:
        """Give leases back at once (their state handed over first); which were held."""
        parts = [p for p in partitions if p in self.held]
        if not parts:
            return []
        with self.db.transaction():
            self.db.execute(
                "UPDATE partition_leases SET owner = '', expires_at = 0"
                f" WHERE owner = ? AND (partition, token) IN {_PAIRS}",
                (self.collector, parts, [self.held[p] for p in parts]),
            )
        self.held = {p: t for p, t in self.held.items() if p not in parts}
        return parts

    def leave(self) -> None:
        """A clean stop: every lease and the membership given back at once, so the
        others rebalance on their next renewal instead of after ``lease_s``."""
        self.release(list(self.held))
        self.db.execute("DELETE FROM cluster_members WHERE collector = ?", (self.collector,))

    def fence(self, chargers: Iterable[str] = (), *, partitions: Iterable[int] = ()) -> None:
        """Inside a ledger write transaction: raise :class:`FencedError` unless this
        collector still holds, unexpired and under its token, the lease of every
        partition named (directly or by charger). The rows are locked ``FOR SHARE``
        until the transaction ends, so a takeover cannot commit in between."""
        held = self.held
        wanted = {partition_of(c, self.count) for c in chargers} | set(partitions)
        if not wanted:
            return
        missing = wanted - set(held)
        if missing:
            raise self.refuse(missing, f"not held (held: {sorted(held)})")
        parts = sorted(wanted)
        rows = self.db.execute(
            "SELECT partition FROM partition_leases"
            f" WHERE owner = ? AND expires_at > {_NOW} AND (partition, token) IN {_PAIRS}"
            " FOR SHARE",
            (self.collector, parts, [held[p] for p in parts]),
        ).rows
        ok = {int(r[0]) for r in rows}
        if ok != set(parts):
            raise self.refuse(set(parts) - ok, "taken over or expired")

    def refuse(self, partitions: Iterable[int], why: str) -> FencedError:
        """The error for writes to lost ``partitions``; from now on this table is fenced."""
        err = FencedError(self.collector, partitions)
        self.fenced, self.fenced_reason = True, f"{err} ({why})"
        log.error("fenced: %s", self.fenced_reason, stack_info=True)
        return err

    def owners(self) -> dict[int, str]:
        """Every partition's current owner ('' when free or expired), for status pages."""
        rows = self.db.execute(
            f"SELECT partition, CASE WHEN expires_at > {_NOW} THEN owner ELSE '' END"
            " FROM partition_leases WHERE partition < ? ORDER BY partition",
            (self.count,),
        ).rows
        return {int(p): str(o) for p, o in rows}
