"""Per-charger memory of the OCPP decoder: pending CALLs, early results, transactions.

OCPP-J correlates a CALLRESULT with its CALL only by message id, and the bridge
forwards the two directions on different MQTT topics (``cp`` and ``csms``), so a
result can overtake its CALL. Each charger therefore keeps, per direction:

* ``pending``: CALLs waiting for their answer, oldest first, bounded and expiring;
* ``early``: answers that arrived before their CALL, held until the CALL comes
  or they expire (then they are rejected as ``orphan_result``);
* ``recent``: ids seen lately with a digest of their frames, so a retransmitted
  CALL or a repeated answer (same id, same bytes) is recognised as a duplicate
  instead of being decoded twice. The same id with *different* content is a new
  message: ids need only be unique per WebSocket connection (OCPP-J RPC framework),
  and chargers that count from 1 again after reconnecting are common.

Message ids are unique per sender only (OCPP-J RPC framework), so the direction is part
of every key. Nothing here is shared between chargers.

Each map is bounded per charger; the number of chargers is bounded by the
decoder (:meth:`~chargewatch.ingest.ocpp.decoder.OcppDecoder.expire`): a
charger silent for long is pruned, or *parked* (:meth:`ChargerState.park`)
when it has an open transaction, whose id and connector outlive any silence.
"""

from __future__ import annotations

__all__ = ["ChargerState", "Early", "Evse", "Pending", "Seen", "Side", "StartInfo"]

from dataclasses import dataclass
from typing import Any, Literal

from chargewatch.model.events import Source

#: Who sent the CALL: the charge point ("cp"; answered on the csms topic) or the
#: central side ("csms"; the CSMS itself or chargewatch's own commands,
#: answered on the cp topic).
Side = Literal["cp", "csms"]


@dataclass(slots=True)
class StartInfo:
    """What a 1.6 StartTransaction.req said, kept until the CSMS assigns the id."""

    connector: int
    ts: float
    meter_wh: float | None
    id_tag: str
    flags: tuple[str, ...] = ()


@dataclass(slots=True)
class Pending:
    action: str
    recv: float
    source: Source
    command: bool = False  # sent by chargewatch (command topic): report the answer
    start: StartInfo | None = None  # set for a valid StartTransaction
    heartbeat_s: float | None = None  # the heartbeat interval a central-side CALL asks for
    meter_s: tuple[tuple[Any, float], ...] = ()  # the meter intervals it asks for (kind, s)
    reads: bool = False  # a central-side GetConfiguration/GetVariables: its answer reports


@dataclass(slots=True)
class Early:
    """A CALLRESULT/CALLERROR that arrived before its CALL."""

    topic: str
    frame: list[Any]
    recv: float
    digest: int


@dataclass(slots=True)
class Seen:
    """Digests (``hash`` of the raw bytes) of a recent CALL and of its answer."""

    call: int
    answer: int | None = None


@dataclass(slots=True)
class Evse:
    """OCPP 2.0.1 state of one EVSE, for mapping ConnectorStatus Occupied."""

    status: str = ""  # last raw ConnectorStatus
    transaction_id: str = ""
    charging_state: str = ""
    active: bool = False  # a transaction is running
    finished: bool = False  # a transaction ended and the connector is still Occupied


class ChargerState:
    __slots__ = ("early", "evse", "last_seen", "parked", "pending", "recent", "tx_connector")

    def __init__(self, last_seen: float = 0.0) -> None:
        #: Receive time of the charger's latest frame (the decoder's clock, not the wall's).
        self.last_seen = last_seen
        #: Compacted after a long silence: only open transactions are left.
        self.parked = False
        self.pending: dict[tuple[Side, str], Pending] = {}
        self.early: dict[tuple[Side, str], Early] = {}
        # Insertion-ordered, trimmed from the oldest end.
        self.recent: dict[tuple[Side, str], Seen] = {}
        # transaction id -> connector (1.6 StopTransaction names no connector;
        # 2.0.1 TransactionEvent names its EVSE only in the first message).
        self.tx_connector: dict[str, int] = {}
        self.evse: dict[int, Evse] = {}

    def remember(self, key: tuple[Side, str], digest: int, limit: int) -> None:
        self.recent.pop(key, None)  # move to the young end
        self.recent[key] = Seen(digest)
        _trim(self.recent, limit)

    def learn_transaction(self, transaction_id: str, connector: int, limit: int) -> None:
        self.tx_connector.pop(transaction_id, None)  # move to the young end
        self.tx_connector[transaction_id] = connector
        _trim(self.tx_connector, limit)

    def open_transactions(self) -> dict[str, int]:
        """The transactions that may still be open, by id: their stops need the connector.

        1.6: every id known (StopTransaction forgets its own); 2.0.1 (EVSEs
        tracked): the ids of the EVSEs whose transaction is active, since an
        EVSE has one transaction at a time and 2.0.1 ids are kept after their end.
        """
        if not self.evse:
            return self.tx_connector
        active = {e.transaction_id for e in self.evse.values() if e.active}
        return {t: c for t, c in self.tx_connector.items() if t in active}

    def park(self) -> None:
        """Forget all but the open transactions (the caller expired the pending CALLs).

        A 1.6 StopTransaction names no connector and a 2.0.1 TransactionEvent
        names its EVSE only in its first message, so a transaction's id and
        connector must survive the silence (a charger offline for days
        reports the stop when it is back); duplicates and answers of that long
        ago cannot come any more.
        """
        self.pending.clear()
        self.early.clear()
        self.recent.clear()
        self.tx_connector = dict(self.open_transactions())
        self.evse = {k: e for k, e in self.evse.items() if e.active}
        self.parked = True

    def evse_state(self, evse: int) -> Evse:
        found = self.evse.get(evse)
        if found is None:
            found = self.evse[evse] = Evse()
        return found


def _trim(d: dict[Any, Any], limit: int) -> None:
    while len(d) > limit:
        del d[next(iter(d))]
