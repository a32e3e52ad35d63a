"""A collector in a cluster with dynamic partitions (docs/scaling.md).

Between batches, every third of ``cluster.lease_s`` (at most 5 s), the pipeline thread renews
this collector's leases (storage/leases.py) and acts on what changed:

* a partition claimed (free, or its owner's lease ran out): its state is taken
  over from the ledger (open sessions from the checkpoint and journal of the
  collector that held it, the rules' fleet state, firing alerts with their
  ``for`` clocks and ``startsAt``), and only then is its MQTT session
  (ingest/cluster.py) connected: the broker hands over what it kept, the
  unacknowledged first. A takeover refused because the old owner still runs
  (a paused collector whose lease expired keeps its ledger lock) is retried at
  the next renewal; the partition's messages wait at the broker meanwhile.
* a partition over the fair share: the batch is finished and acknowledged
  (this runs between batches), its sessions, fleet state and alerts are
  handed over through the ledger, its MQTT session disconnected, and only
  then the lease released, so the next owner finds everything in place.
* a lease lost (this collector was paused past it, or cut off from
  PostgreSQL): :class:`~chargewatch.storage.leases.FencedError`; the service
  exits at once, acknowledging and writing nothing more (its ledger writes
  would be refused anyway), and its supervisor restarts it.

So that a collector that dies without a word can be taken over from another
host, its fleet state and alert state are kept in the ledger too
(``engine_state`` rows ``fleet_state@<id>`` and ``alerts@<id>``), written
before the acknowledgement of a batch that changed them. The heartbeat and
meter intervals the liveness detectors learned (``liveness@<id>``,
collector/liveness_store.py) move the same way, saved every minute.
"""

from __future__ import annotations

__all__ = ["ClusterMember", "merge_alert_states", "merge_fleet_states", "split_alert_state"]

import logging
import math
from collections.abc import Callable, Iterable
from typing import Any

from chargewatch.alerting.engine import AlertEngine
from chargewatch.collector.liveness_store import KIND as LIVENESS
from chargewatch.collector.liveness_store import (
    LivenessStore,
    connector_states,
    merge_liveness,
    split_liveness,
)
from chargewatch.collector.session_stage import SessionStage
from chargewatch.ingest.cluster import PartitionSessions, partition_of
from chargewatch.state.fleet_state import FleetState
from chargewatch.storage.handover import FleetStateHandover, split_fleet_state
from chargewatch.storage.leases import LeaseTable
from chargewatch.storage.ledger import Ledger, OwnershipConflictError

log = logging.getLogger(__name__)

FLEET, ALERTS = "fleet_state", "alerts"
RENEW_MAX_S = 5.0
_NO_FLEET: dict[str, Any] = {"version": 1, "connectors": [], "online": {}, "charger_seen": {}}


def split_alert_state(
    snap: dict[str, Any], owns: Callable[[str], bool]
) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """Cut an ``AlertEngine.snapshot()``'s alerts by their ``charger`` label: (the
    owned chargers' alerts, the rest's), each None when it has none. Alerts
    without a charger label, windows, overrides and remediation stay with the
    collector (they are not in either part)."""

    def part(keep: Callable[[str], bool]) -> dict[str, Any] | None:
        rules = {}
        for ident, r in snap.get("rules", {}).items():
            alerts = [a for a in r.get("alerts", []) if (c := _charger(a)) is not None and keep(c)]
            if alerts:
                rules[ident] = {"alerts": alerts}
        return {"version": snap.get("version"), "rules": rules} if rules else None

    return part(owns), part(lambda c: not owns(c))


def merge_alert_states(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    """``a`` with ``b``'s alerts added (they are of other chargers)."""
    rules = {k: dict(v) for k, v in a.get("rules", {}).items()}
    for ident, r in b.get("rules", {}).items():
        mine = rules.setdefault(ident, {})
        mine["alerts"] = [*mine.get("alerts", []), *r.get("alerts", [])]
    return {**a, "rules": rules}


def merge_fleet_states(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    """``a`` and ``b`` (FleetState snapshot parts) joined. Where both name a
    connector or a charger, the one heard from last wins: a part from a collector
    that never heard a charger holds an empty row for it, and in ledger order
    that row could otherwise come after the real one and erase its status (a
    firing fault would then resolve at the new owner)."""
    rows: dict[tuple[str, str], list[Any]] = {}
    for row in [*a.get("connectors", []), *b.get("connectors", [])]:
        key = (str(row[0]), str(row[1]))
        if key not in rows or _not_older(row[5], rows[key][5]):
            rows[key] = row
    seen = dict(a.get("charger_seen", {}))
    online = dict(a.get("online", {}))
    b_online = b.get("online", {})
    for c, t in b.get("charger_seen", {}).items():
        if c not in seen or _not_older(t, seen[c]):
            seen[c] = t
            if c in b_online:
                online[c] = b_online[c]
    for c, on in b_online.items():
        online.setdefault(c, on)
    return {
        "version": a.get("version", 1),
        "connectors": list(rows.values()),
        "online": online,
        "charger_seen": seen,
    }


def _heard(t: Any) -> bool:
    return t is not None and not math.isnan(float(t))


def _not_older(theirs: Any, ours: Any) -> bool:
    """Whether time ``theirs`` is at least ``ours`` (None or NaN: never heard)."""
    if not _heard(theirs):
        return not _heard(ours)
    return not _heard(ours) or float(theirs) >= float(ours)


def _charger(alert: dict[str, Any]) -> str | None:
    labels = alert.get("labels") or {}
    charger = labels.get("charger")
    return None if charger is None else str(charger)


class ClusterMember:
    """This collector's partitions: leases, MQTT sessions and the state that moves."""

    def __init__(
        self,
        *,
        leases: LeaseTable,
        ingest: PartitionSessions,
        ledger: Ledger,
        sessions: SessionStage,
        state: FleetState,
        alerts: AlertEngine,
        liveness: LivenessStore | None = None,
    ) -> None:
        self.leases = leases
        self.ingest = ingest
        self.ledger = ledger
        self.sessions = sessions
        self.state = state
        self.alerts = alerts
        self.liveness = liveness
        #: Partitions taken over and connected: their messages are processed.
        self.active: frozenset[int] = frozenset()
        # A third of the lease, at most 5 s: how soon a join or a free partition
        # is noticed does not have to wait for a long lease.
        self.renew_every_s = min(leases.lease_s / 3, RENEW_MAX_S)
        self._renewed_at = -math.inf
        self.takeovers = 0
        self.handovers = 0

    def owns(self, charger: str) -> bool:
        return partition_of(charger, self.leases.count) in self.active

    def _owning(self, parts: Iterable[int]) -> Callable[[str], bool]:
        keep = frozenset(parts)
        count = self.leases.count
        return lambda c: partition_of(c, count) in keep

    def tick(self, now: float, *, force: bool = False) -> None:
        """Renew when due and act on what changed (the pipeline thread, between batches)."""
        if not force and now - self._renewed_at < self.renew_every_s:
            return
        r = self.leases.renew()
        self._renewed_at = now
        lost = set(r.lost) & self.active
        if lost:
            raise self.leases.refuse(lost, "found lost at renewal")
        if r.surplus:
            self._give_back(r.surplus, now)
        pending = set(self.leases.held) - self.active
        if pending:
            self._take_over(pending, now)
        self.save(now)

    def _take_over(self, parts: set[int], now: float) -> None:
        after = self._owning(self.active | parts)
        try:
            taken = self.sessions.take_over(after, now)
            self.save(now)  # our rows are then what the merge below starts from
            new = self._owning(parts)
            taken += self._adopt(FLEET, after, new, split_fleet_state, merge_fleet_states)
            taken += self._adopt(ALERTS, after, new, split_alert_state, merge_alert_states)
            if self.liveness is not None:
                taken += self._adopt(LIVENESS, after, new, split_liveness, merge_liveness)
                # Their sessions as the last owner left them (statuses come once).
                open_now = self.sessions.engine.open_sessions()
                states = connector_states(self.state, open_now, new)
                self.liveness.detectors.resume(states, now)
                # And when they were last heard: a silence begun before the move counts.
                seen = {c: t for c, t in self.state.charger_seen.items() if new(c)}
                self.liveness.detectors.heard(seen, now)
        except OwnershipConflictError as exc:
            log.warning(
                "partitions %s: waiting for their old owner to stop: %s", sorted(parts), exc
            )
            return
        self.active = self.active | parts
        for k in sorted(parts):
            self.ingest.open(k)
        self.takeovers += len(parts)
        log.info(
            "took over partitions %s (%d state parts from the ledger); now %s",
            sorted(parts), taken, sorted(self.active),
        )  # fmt: skip

    def _adopt(
        self,
        name: str,
        owns: Callable[[str], bool],
        new: Callable[[str], bool],
        split: Callable[..., Any],
        merge: Callable[[dict[str, Any], dict[str, Any]], dict[str, Any]],
    ) -> int:
        """Take ``name`` state of ``owns``'s chargers into our ledger row, then apply
        the part of the newly owned chargers (``new``) to the running state."""
        taken = self.ledger.adopt(owns, lambda st: split(st, owns), merge, name=name)
        if not taken:
            return 0
        merged = self.ledger.load_state(name) or {}
        mine, _ = split(merged, new)
        if mine is None:
            return taken
        if name == FLEET:
            self.state.restore(mine)
            self.state.changes += 1
        elif name == LIVENESS:
            if self.liveness is not None:
                self.liveness.restore(mine)
        else:
            for rule in self.alerts.rules:
                got = mine["rules"].get(rule.ident)
                if got:
                    rule.alerts.restore(got["alerts"])
        return taken

    def _give_back(self, surplus: Iterable[int], now: float) -> None:
        parts = set(surplus) & self.active
        if parts:
            after = self._owning(self.active - parts)
            given = self.sessions.give_back(after, now)
            # Only the given partitions' chargers: the rest of the fleet's rows
            # here are empty, and are their owners' business.
            leaving = self._owning(parts)
            kept = FleetStateHandover(self.ledger, self.state, lambda c: not leaving(c))
            given += kept.release(now)
            self._hand_alerts_over(after, now)
            if self.liveness is not None:
                self.liveness.hand_over(leaving, now)
            for k in sorted(parts):
                self.ingest.close(k)  # acks of processed messages go first
            self.active = self.active - parts
            if self.liveness is not None:  # at once: its row must not name them
                self.liveness.save(now)
            self.handovers += len(parts)
            log.info("handed partitions %s over (%d chargers' state)", sorted(parts), given)
        self.leases.release(surplus)
        self.save(now)

    def release_at_start(self, now: float) -> None:
        """At start this collector owns nothing yet: the alerts it restored from its
        own file go to whoever takes their partitions (the sessions and the
        fleet state were handed over by the service's resume)."""
        self._hand_alerts_over(lambda c: False, now)
        self.save(now)

    def _hand_alerts_over(self, owns: Callable[[str], bool], now: float) -> None:
        _, rest = split_alert_state(self.alerts.snapshot(), owns)
        if rest is not None:
            self.ledger.handover_put(ALERTS, rest, at=now)
            self._forget_alerts(owns)

    def _forget_alerts(self, owns: Callable[[str], bool]) -> None:
        for rule in self.alerts.rules:
            table = rule.alerts.alerts
            for key, alert in list(table.items()):
                charger = alert.labels.get("charger")
                if charger is not None and not owns(str(charger)):
                    del table[key]

    def save(self, now: float) -> None:
        """This collector's fleet, alert and liveness state in the ledger (a dead
        one is taken over from there)."""
        self.save_fleet(now)
        self.save_alerts(now)
        if self.liveness is not None:
            self.liveness.save_due(now)

    def save_fleet(self, now: float) -> None:
        # Only the owned chargers' rows: the others' are empty here, and would
        # overwrite their owner's state if taken over from this row.
        mine, _ = split_fleet_state(self.state.snapshot(), self.owns)
        self.ledger.save_state(mine or dict(_NO_FLEET), name=FLEET, at=now)

    def save_alerts(self, now: float) -> None:
        mine, _ = split_alert_state(self.alerts.snapshot(), self.owns)
        self.ledger.save_state(mine or {"rules": {}}, name=ALERTS, at=now)

    def leave(self, now: float) -> None:
        """A clean stop: everything handed over, every lease given back at once."""
        self._give_back(sorted(self.active), now)
        self.leases.leave()
