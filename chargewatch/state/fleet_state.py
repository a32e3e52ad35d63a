"""Current state of every connector: latest meter values, status, liveness.

Pure (no I/O, the clock is handed in). The alert rules read their meter,
status and liveness signals from here; the demo and the fleet dashboards show
the same numbers.
"""

from __future__ import annotations

__all__ = ["FleetState"]

from typing import Any

import numpy as np
from numpy.typing import NDArray

from chargewatch.model.batch import METER_FIELDS, N_FIELDS, MeterBatch
from chargewatch.model.events import (
    CONNECTOR_STATUSES,
    BootEvent,
    Event,
    HeartbeatEvent,
    MeterReading,
    OnlineEvent,
    ProblemEvent,
    StatusEvent,
    TransactionEvent,
)
from chargewatch.model.fleet import ConnectorIndex
from chargewatch.model.mrec import mrec_of_vendor_code

_CANON = {s: s for s in (*CONNECTOR_STATUSES, "NoError")}


class FleetState:
    """Per-connector arrays indexed by the dense connector id, grown on demand."""

    def __init__(self, index: ConnectorIndex) -> None:
        self.index = index
        self._cap = 0
        self.values = np.empty((0, N_FIELDS))  # latest value of each field (NaN = never)
        self.value_ts = np.empty(0)  # meter ts of the latest sample
        self.last_seen = np.empty(0)  # receive time of anything from the connector
        self.status = np.empty(0, dtype=object)  # OCPP 1.6 status string ("" = unknown)
        self.error_code = np.empty(0, dtype=object)
        # The ChargeX MREC the charger stated with its current error (1.6
        # vendorErrorCode or info, 2.0.1 techCode), "" when none: it wins over the
        # pairing of the error code (alert label, status history).
        self.mrec = np.empty(0, dtype=object)
        self.status_since = np.empty(0)
        self.online: dict[str, bool] = {}  # charger -> retained online flag
        self.charger_seen: dict[str, float] = {}  # charger -> last receive time
        self.boot: dict[str, BootEvent] = {}
        # Bumped when a status, error code or online flag changes: those come
        # once, on change, so the collector persists them before it
        # acknowledges the message (take_changes, then snapshot now and then).
        self.changes = 0
        self._changed: set[int] = set()  # connectors whose status changed since take_changes
        self._changed_online: set[str] = set()
        # What chargers report on connector 0, the charger as a whole (OCPP 1.6
        # StatusNotification connectorId 0, 2.0.1 station-wide problems):
        # charger -> [status, error code, status since, stated MREC]. Not a row of
        # the index (it is no port: uptime and the fleet views count ports), but
        # its error is every port's error in the rules' frame.
        self.charger_status: dict[str, list[Any]] = {}
        self._changed_chargers: set[str] = set()
        self._grow()

    def _grow(self) -> None:
        n = len(self.index)
        if n <= self._cap:
            return
        # Exactly the index on the first growth (the inventory is known at start);
        # doubling after that, for chargers that appear one by one.
        cap = max(64, n, 2 * self._cap)

        def grown(a: NDArray[np.generic], fill: object) -> NDArray[np.generic]:
            out = np.full((cap, *a.shape[1:]), fill, dtype=a.dtype)
            out[: a.shape[0]] = a
            return out

        self.values = grown(self.values, np.nan)  # type: ignore[assignment]
        self.value_ts = grown(self.value_ts, np.nan)  # type: ignore[assignment]
        self.last_seen = grown(self.last_seen, np.nan)  # type: ignore[assignment]
        self.status = grown(self.status, "")
        self.error_code = grown(self.error_code, "NoError")
        self.mrec = grown(self.mrec, "")
        self.status_since = grown(self.status_since, np.nan)  # type: ignore[assignment]
        self._cap = cap

    def on_batch(self, batch: MeterBatch, events: list[Event], now: float) -> None:
        self._grow()
        if len(batch):
            self._meter(batch)
        for ev in events:
            if isinstance(ev, StatusEvent):
                self._charger_seen(ev.charger, ev.recv)
                if ev.connector == 0:
                    self._station_status(ev)
                    continue
                i = self.index.id(ev.charger, ev.connector)
                self._grow()
                was = str(self.error_code[i])
                code = _status_error_code(ev, was)
                mrec = _status_mrec(ev, was, str(self.mrec[i]))
                if (
                    self.status[i] != ev.status
                    or self.error_code[i] != code
                    or self.mrec[i] != mrec
                ):
                    self.status_since[i] = ev.ts
                    self.changes += 1
                    self._changed.add(i)
                # Canonical strings: not one decoded copy kept per connector.
                self.status[i] = _CANON.get(ev.status, ev.status)
                self.error_code[i] = _CANON.get(code, code)
                self.mrec[i] = mrec
                self.last_seen[i] = max(_nan0(self.last_seen[i]), ev.recv)
            elif isinstance(ev, ProblemEvent):
                self._charger_seen(ev.charger, ev.recv)
                self._problem(ev)
            elif isinstance(ev, OnlineEvent):
                if self.online.get(ev.charger) != ev.online:
                    self.changes += 1
                    self._changed_online.add(ev.charger)
                self.online[ev.charger] = ev.online
                if ev.online:
                    self._charger_seen(ev.charger, ev.recv)
            elif isinstance(ev, TransactionEvent):
                self._charger_seen(ev.charger, ev.recv)
                if ev.kind == "start" and ev.connector != 0:
                    self._start_ends_finishing(ev)
            elif isinstance(ev, HeartbeatEvent | MeterReading):
                self._charger_seen(ev.charger, ev.recv)
            elif isinstance(ev, BootEvent):
                self.boot[ev.charger] = ev
                self._charger_seen(ev.charger, ev.recv)

    def _start_ends_finishing(self, ev: TransactionEvent) -> None:
        """A transaction starting on a connector last reported Finishing with an error
        ends that error. Finishing is a session's end: no transaction starts from it,
        so the status is stale, and the error it carried (a failed attempt's, e.g. a
        QUENCH DC charger's OtherError BMSCommunicationTimeout) is no longer the
        connector's. Some chargers send no Charging status after StartTransaction,
        and without this the old error pages while the connector charges. Faulted
        and other statuses keep their error: they are not over until a status says so."""
        i = self.index.id(ev.charger, ev.connector)
        self._grow()
        if self.status[i] != "Finishing" or self.error_code[i] == "NoError":
            return
        self.error_code[i] = "NoError"
        self.mrec[i] = ""
        self.status_since[i] = ev.ts
        self.changes += 1
        self._changed.add(i)

    def _station_status(self, ev: StatusEvent) -> None:
        """A status on connector 0: the charger's own (its controller, shared parts)."""
        was = self.charger_status.get(ev.charger) or ["", "NoError", None, ""]
        code = _status_error_code(ev, str(was[1]))
        mrec = _status_mrec(ev, str(was[1]), str(was[3]))
        if [was[0], was[1], was[3]] != [ev.status, code, mrec]:
            status = _CANON.get(ev.status, ev.status)
            self._set_station(ev.charger, [status, _CANON.get(code, code), ev.ts, mrec])

    def _set_station(self, charger: str, row: list[Any]) -> None:
        if row[0] in ("", "Available") and row[1] == "NoError":
            self.charger_status.pop(charger, None)  # nothing to keep for a healthy charger
        else:
            self.charger_status[charger] = row
        self.changes += 1
        self._changed_chargers.add(charger)

    def _problem(self, ev: ProblemEvent) -> None:
        """An OCPP 2.0.1 NotifyEvent problem on a connector becomes its error code, as
        a 1.6 StatusNotification's errorCode would (the rules and uptime read it);
        one on no connector is the charger's (connector 0)."""
        if not ev.error_code:
            return  # a monitor value
        if ev.connector == 0:
            was = self.charger_status.get(ev.charger) or ["", "NoError", None, ""]
            code = ev.error_code
            mrec = mrec_of_vendor_code(ev.tech_code) if code != "NoError" else ""
            if code == "NoError" and was[0] == "Faulted":
                code = "OtherError"  # as on a connector, below
            if [was[1], was[3]] != [code, mrec]:
                self._set_station(ev.charger, [was[0], _CANON.get(code, code), ev.ts, mrec])
            return
        i = self.index.id(ev.charger, ev.connector)
        self._grow()
        code = ev.error_code
        # A cleared problem takes its stated code with it.
        mrec = mrec_of_vendor_code(ev.tech_code) if code != "NoError" else ""
        if code == "NoError" and self.status[i] == "Faulted":
            code = "OtherError"  # the problem cleared, the connector is still Faulted
        if self.error_code[i] != code or self.mrec[i] != mrec:
            self.error_code[i] = _CANON.get(code, code)
            self.mrec[i] = mrec
            self.status_since[i] = ev.ts
            self.changes += 1
            self._changed.add(i)

    def tick(self, now: float) -> None:
        self._grow()

    def _charger_seen(self, charger: str, recv: float) -> None:
        if recv > self.charger_seen.get(charger, 0.0):
            self.charger_seen[charger] = recv
        # Anything heard from a charger proves it connected, whatever the retained flag says.
        self.online.setdefault(charger, True)

    def _meter(self, b: MeterBatch) -> None:
        # Latest sample per connector by meter time, then per field the latest
        # non-NaN value: order rows by (conn, ts) and take the last of each group.
        # Rows mostly arrive in meter-time order per connector, so a stable sort
        # by connector alone usually gives that order; lexsort when it does not.
        order = np.argsort(b.conn, kind="stable")
        conn, ts = b.conn[order], b.ts[order]
        boundary = conn[1:] != conn[:-1]
        if not (boundary | (ts[1:] >= ts[:-1])).all():
            order = np.lexsort((b.ts, b.conn))
            conn, ts = b.conn[order], b.ts[order]
            boundary = conn[1:] != conn[:-1]
        last = np.flatnonzero(np.r_[boundary, True])
        ids = conn[last]
        newer = ~(ts[last] < self.value_ts[ids])  # NaN (never) counts as older
        vals = b.values[order]
        present = ~np.isnan(vals)
        take = np.broadcast_to(last[:, None], (len(last), N_FIELDS))
        have = present[last]
        # Fields some connector reported, but not in its latest row: the latest
        # row of its group that has them (forward-filled row positions).
        gaps = np.flatnonzero(~have.all(axis=0) & present.any(axis=0))
        if gaps.size:
            pos = np.where(present[:, gaps], np.arange(len(vals))[:, None], -1)
            np.maximum.accumulate(pos, axis=0, out=pos)
            take = take.copy()
            take[:, gaps] = pos[last]
            have[:, gaps] = pos[last] >= np.r_[0, last[:-1] + 1][:, None]
        g, f = np.nonzero(have & newer[:, None])
        self.values[ids[g], f] = vals[take[g, f], f]
        self.value_ts[ids[newer]] = ts[last][newer]
        np.fmax.at(self.last_seen, b.conn, b.recv)
        for c in np.unique(b.conn).tolist():
            charger = self.index.keys[c][0]
            self._charger_seen(charger, float(self.last_seen[c]))

    # -- persistence ------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        """JSON-able state, keyed by (charger, connector) so it survives a new index.

        A charger sends its status once, when it changes: a restart that forgot
        it would resolve every fault alert and never raise it again.
        """
        n = len(self.index)
        seen, value_ts = _nums(self.last_seen[:n]), _nums(self.value_ts[:n])
        values = _nums(self.values[:n])
        # The stated MREC goes last: snapshots written before it still read.
        rows = [
            [*self._status_row(i), seen[i], value_ts[i], values[i], str(self.mrec[i])]
            for i in range(n)
        ]
        # The chargers' own statuses as rows of connector 0, in the same shape
        # (so handover splits and merges them by charger with the rest).
        rows += [self._station_row(c) for c in sorted(self.charger_status)]
        return {
            "version": 1,
            "connectors": rows,
            "online": dict(self.online),
            "charger_seen": dict(self.charger_seen),
        }

    def _station_row(self, charger: str) -> list[Any]:
        status, code, since, mrec = self.charger_status[charger]
        seen = self.charger_seen.get(charger)
        return [charger, 0, status, code, since, seen, None, [], mrec]

    def take_changes(self) -> dict[str, Any]:
        """The status, error code and online flags changed since the last call:
        what a restart must not lose, in O(changes) rather than O(fleet)."""
        rows = [[*self._status_row(i), str(self.mrec[i])] for i in sorted(self._changed)]
        for c in sorted(self._changed_chargers):
            got = self.charger_status.get(c) or ["Available", "NoError", None, ""]
            rows.append([c, 0, got[0], got[1], got[2], got[3]])
        online = {c: self.online[c] for c in sorted(self._changed_online) if c in self.online}
        self._changed.clear()
        self._changed_online.clear()
        self._changed_chargers.clear()
        return {"connectors": rows, "online": online}

    def apply_changes(self, data: dict[str, Any]) -> None:
        """Replay what take_changes returned (onto a restored snapshot)."""
        for row in data["connectors"]:
            if int(row[1]) == 0:
                self._restore_station(row, _stated(row, 5))
                continue
            i = self._set_status(row)
            self.mrec[i] = _stated(row, 5)
        self.online.update({str(k): bool(v) for k, v in data["online"].items()})

    def _status_row(self, i: int) -> list[Any]:
        """[charger, connector, status, error code, status since]: what a
        snapshot row starts with and a change is."""
        charger, connector = self.index.keys[i]
        return [
            charger,
            connector,
            str(self.status[i]),
            str(self.error_code[i]),
            _num(self.status_since[i]),
        ]

    def _set_status(self, row: list[Any]) -> int:
        """Read back what :meth:`_status_row` wrote; the connector's id."""
        charger, connector, status, error, since = row[:5]
        i = self.index.id(str(charger), int(connector))
        self._grow()
        self.status[i] = _CANON.get(str(status), str(status))
        self.error_code[i] = _CANON.get(str(error), str(error))
        self.status_since[i] = _nan(since)
        return i

    def _restore_station(self, row: list[Any], mrec: str) -> None:
        charger, _, status, error, since = row[:5]
        status, error = _CANON.get(str(status), str(status)), _CANON.get(str(error), str(error))
        if status in ("", "Available") and error == "NoError":
            self.charger_status.pop(str(charger), None)
        else:
            self.charger_status[str(charger)] = [status, error, since, mrec]

    def restore(self, data: dict[str, Any]) -> None:
        if data.get("version") != 1:
            raise ValueError(f"unknown fleet state version {data.get('version')!r}")
        for row in data["connectors"]:
            if int(row[1]) == 0:
                self._restore_station(row, _stated(row, 8))
                continue
            seen, vts, values = row[5:8]
            i = self._set_status(row)
            self.mrec[i] = _stated(row, 8)
            self.last_seen[i] = _nan(seen)
            self.value_ts[i] = _nan(vts)
            if len(values) == N_FIELDS:
                self.values[i] = [_nan(v) for v in values]
        self.online.update({str(k): bool(v) for k, v in data.get("online", {}).items()})
        self.charger_seen.update(
            {str(k): float(v) for k, v in data.get("charger_seen", {}).items()}
        )

    # -- views ------------------------------------------------------------------

    def chargers_online(self, now: float, stale_s: float = 300.0) -> int:
        """Chargers whose online flag is set and that were heard from recently."""
        return sum(
            1
            for c, on in self.online.items()
            if on and now - self.charger_seen.get(c, -np.inf) <= stale_s
        )

    def frame(self, now: float) -> dict[str, NDArray[Any]]:
        """Meter, status and liveness columns for the alert rules (see alerting.signals)."""
        self._grow()
        n = len(self.index)
        out: dict[str, NDArray[Any]] = {
            name: self.values[:n, i].copy() for i, name in enumerate(METER_FIELDS)
        }
        status = self.status[:n].copy()
        out["status"] = status
        out["error_code"] = self.error_code[:n].copy()
        out["mrec"] = self.mrec[:n].copy()
        # A charger's own error (connector 0) is each of its ports' while the
        # port reports none itself; error_connector "0" makes its alerts the
        # charger's: one per charger, labelled connector "0" (alerting.signals).
        out["error_connector"] = np.full(n, "", dtype=object)
        out["status_age_s"] = now - self.status_since[:n]
        out["last_seen_age_s"] = now - self.last_seen[:n]
        chargers = [k[0] for k in self.index.keys]
        online = self.online
        out["online"] = np.fromiter((online.get(c, False) for c in chargers), np.bool_, n)
        if self.charger_status:
            self._station_errors(out, chargers)
        return out

    def _station_errors(self, out: dict[str, NDArray[Any]], chargers: list[str]) -> None:
        """Each port's charger's own error where the port reports none (``chargers``:
        each port's charger, as frame() lists them for ``online``)."""
        faulty = {c: v for c, v in self.charger_status.items() if v[1] != "NoError"}
        if not faulty:
            return
        code, mrec, where = out["error_code"], out["mrec"], out["error_connector"]
        for i, charger in enumerate(chargers[: len(code)]):
            got = faulty.get(charger)
            if got is not None and code[i] == "NoError":
                code[i], mrec[i], where[i] = got[1], got[3], "0"

    def power_w(self) -> NDArray[np.float64]:
        n = len(self.index)
        return self.values[:n, 1]


def _status_error_code(ev: StatusEvent, current: str) -> str:
    """The error code after a status. OCPP 2.0.1 statuses carry none (the decoder
    gives a Faulted one OtherError): a Faulted status keeps the code a NotifyEvent
    problem set; any other status clears it, as a 1.6 status with NoError would. A
    status derived from a transaction's chargingState is no connector status: it
    keeps the code too (an RCD trip mid-session sends the problem, SuspendedEVSE
    and Faulted; the derived status cleared GroundFailure to OtherError)."""
    keeps = ev.status == "Faulted" or ev.derived
    if ev.source == "ocpp2.0.1" and keeps and current not in ("", "NoError"):
        return current
    return ev.error_code


def _status_mrec(ev: StatusEvent, was: str, current: str) -> str:
    """The stated MREC after a status: the one a 1.6 status carries (vendorErrorCode,
    else ``info``) while it reports an error; a 2.0.1 Faulted status that kept a
    problem's code keeps that problem's MREC; any other status clears it."""
    if ev.source == "ocpp2.0.1":  # as _status_error_code keeps the problem's code
        keeps = ev.status == "Faulted" or ev.derived
        return current if keeps and was not in ("", "NoError") else ""
    if ev.error_code == "NoError" and ev.status != "Faulted":
        return ""
    return mrec_of_vendor_code(ev.vendor_error_code) or mrec_of_vendor_code(ev.info)


def _stated(row: list[Any], at: int) -> str:
    """A stored row's stated MREC (absent in rows written before it existed)."""
    return mrec_of_vendor_code(str(row[at])) if len(row) > at else ""


def _nan0(x: float) -> float:
    return 0.0 if x != x else x  # noqa: PLR0124 - NaN check without numpy overhead


def _num(x: float) -> float | None:
    return None if x != x else float(x)  # noqa: PLR0124 - NaN as JSON null


def _nums(a: NDArray[np.float64]) -> list[Any]:
    """``a.tolist()`` with NaN as None, whole arrays at once (half the time of
    :func:`_num` per value at 100k connectors)."""
    out = a.astype(object)
    out[np.isnan(a)] = None
    got: list[Any] = out.tolist()
    return got


def _nan(x: float | None) -> float:
    return np.nan if x is None else float(x)
