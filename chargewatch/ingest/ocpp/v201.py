"""OCPP 2.0.1 CALLs from the charging station into chargewatch's events.

Mapping choices: a 2.0.1 EVSE is chargewatch's connector (``evseId`` /
``evse.id``; 0 = the station); ConnectorStatus Occupied becomes Preparing,
Charging, SuspendedEV/EVSE or Finishing from the EVSE's transaction, and a
chargingState change while Occupied emits a derived StatusEvent. NotifyEvent
problems are in :mod:`.problems`.
"""

from __future__ import annotations

__all__ = ["HANDLERS"]

from typing import Any, Final

from chargewatch.ingest.ocpp.context import Context, Handler
from chargewatch.ingest.ocpp.framing import Frame, RejectError
from chargewatch.ingest.ocpp.meter import TX_CONTEXTS, meter_values
from chargewatch.ingest.ocpp.problems import on_notify_event
from chargewatch.ingest.ocpp.state import Evse
from chargewatch.ingest.ocpp.v16 import on_heartbeat
from chargewatch.model.events import BootEvent, MeterReading, StatusEvent, TransactionEvent

# OCPP 2.0.1 ConnectorStatus Occupied -> 1.6 ChargePointStatus from the EVSE's
# transaction chargingState (2.0.1 ConnectorStatus Occupied covers 1.6's
# Preparing, Charging, SuspendedEV(SE) and Finishing).
_OCCUPIED_BY_STATE: Final = {
    "Charging": "Charging",
    "SuspendedEV": "SuspendedEV",
    "SuspendedEVSE": "SuspendedEVSE",
    "EVConnected": "Preparing",
    "Idle": "Preparing",
}
_KIND: Final = {"Started": "start", "Updated": "update", "Ended": "stop"}


def on_boot(ctx: Context, f: Frame, p: dict[str, Any]) -> None:
    station = p["chargingStation"]
    modem = station.get("modem", {})
    extra = {k: modem[k] for k in ("iccid", "imsi") if modem.get(k)}
    f.sink.events.append(
        BootEvent(
            f.charger,
            f.recv,
            f.recv,
            vendor=station["vendorName"],
            model=station["model"],
            firmware=station.get("firmwareVersion", ""),
            serial=station.get("serialNumber", ""),
            reason=p["reason"],
            extra=extra,
            source=f.source,
        )
    )


def on_status(ctx: Context, f: Frame, p: dict[str, Any]) -> None:
    try:
        # chargewatch's connector of a 2.0.1 station is the EVSE: the unit
        # that has one transaction and one meter (OCPP 2.0.1 device model).
        evse = ctx.connector(p["evseId"], "evseId")
        ts = ctx.ts(p["timestamp"], f.recv)
    except RejectError as bad:
        f.reject(bad.reason, bad.detail)
        return
    raw = p["connectorStatus"]
    state = f.state.evse_state(evse)
    if raw != "Occupied":
        state.finished = False  # unplugged (or out of order): the next plug-in starts afresh
    state.status = raw
    f.sink.events.append(
        StatusEvent(
            f.charger,
            evse,
            ts,
            f.recv,
            _status_of(state),
            # 2.0.1 says why through NotifyEvent (a ProblemEvent); the status
            # itself only says that something is wrong.
            error_code="OtherError" if raw == "Faulted" else "NoError",
            info=f"connectorId {p['connectorId']}",
            raw_status=raw,
            source=f.source,
        )
    )


def on_meter_values(ctx: Context, f: Frame, p: dict[str, Any]) -> None:
    try:
        evse = ctx.connector(p["evseId"], "evseId")  # 0 = the station's main meter
    except RejectError as bad:
        f.reject(bad.reason, bad.detail)
        return
    tx = f.state.evse.get(evse)
    tx_id = tx.transaction_id if tx is not None and tx.active else ""
    readings = meter_values(ctx, f, evse, p["meterValue"], "meterValue", transaction_id="")
    # A MeterValuesRequest is outside any transaction message; only the
    # Transaction.* contexts make it a billing reading (kept with the EVSE's
    # running transaction id, if one is known).
    f.sink.events.extend(
        r if not tx_id else _with_tx(r, tx_id)
        for r in readings
        if r.context in TX_CONTEXTS or r.signed_data
    )


def on_transaction_event(ctx: Context, f: Frame, p: dict[str, Any]) -> None:
    try:
        ts = ctx.ts(p["timestamp"], f.recv)
        evse_id = ctx.connector(p["evse"]["id"], "evse.id") if "evse" in p else None
    except RejectError as bad:
        f.reject(bad.reason, bad.detail)
        return
    info = p["transactionInfo"]
    tx_id: str = info["transactionId"]
    state = f.state
    if evse_id is not None:
        state.learn_transaction(tx_id, evse_id, ctx.history)
        connector: int | None = evse_id
    else:  # evse is sent only with the first message of a transaction (2.0.1 use case E01)
        connector = state.tx_connector.get(tx_id)
    flags: tuple[str, ...] = () if connector is not None else ("connector_unknown",)
    kind = _KIND[p["eventType"]]
    readings = (
        meter_values(
            ctx, f, connector, p["meterValue"], "meterValue", transaction_id=tx_id, flags=flags
        )
        if "meterValue" in p
        else []
    )
    event = _transaction(f, p, connector, ts, kind, readings, flags)
    # Sessions open before their readings and close after them.
    if kind == "stop":
        f.sink.events.extend(readings)
        f.sink.events.append(event)
    else:
        f.sink.events.append(event)
        f.sink.events.extend(readings)
    if connector is not None:
        _follow_evse(f, p, connector, ts, kind, tx_id)


def _transaction(
    f: Frame,
    p: dict[str, Any],
    connector: int | None,
    ts: float,
    kind: str,
    readings: list[MeterReading],
    flags: tuple[str, ...],
) -> TransactionEvent:
    """The TransactionEvent of a TransactionEventRequest, with its meterValues' register."""
    info = p["transactionInfo"]
    want = "Transaction.Begin" if kind == "start" else "Transaction.End"
    meter = next((r.energy_wh for r in readings if r.context == want), None)
    signed = next((r for r in readings if r.signed_data and r.context == want), None) or next(
        (r for r in readings if r.signed_data), None
    )
    reason = info.get("stoppedReason", "") if kind == "stop" else ""
    return TransactionEvent(
        f.charger,
        connector if connector is not None else 0,
        ts,
        f.recv,
        kind,  # type: ignore[arg-type]  # a value of the literal map _KIND
        info["transactionId"],
        meter_wh=meter if kind != "update" else None,
        id_tag=p.get("idToken", {}).get("idToken", ""),
        reason=reason or p["triggerReason"],
        seq_no=p["seqNo"],
        offline=p.get("offline", False),
        charging_state=info.get("chargingState", ""),
        signed_data=signed.signed_data if signed is not None else "",
        source=f.source,
        flags=flags,
        signed=signed.signed if signed is not None else None,
    )


def _follow_evse(
    f: Frame, p: dict[str, Any], connector: int, ts: float, kind: str, tx_id: str
) -> None:
    """Update the EVSE's transaction; emit the status it implies if that changed."""
    charging_state: str = p["transactionInfo"].get("chargingState", "")
    evse = f.state.evse_state(connector)
    before = _status_of(evse)
    evse.transaction_id = tx_id
    evse.active = kind != "stop"
    evse.finished = kind == "stop"
    if charging_state:
        evse.charging_state = charging_state
    elif kind == "stop":
        evse.charging_state = ""
    after = _status_of(evse)
    if evse.status == "Occupied" and after != before:
        # 2.0.1 reports charging/suspended/finishing only in TransactionEvent;
        # the status the detectors watch (as in 1.6) is derived here.
        f.sink.events.append(
            StatusEvent(
                f.charger,
                connector,
                ts,
                f.recv,
                after,
                info=f"derived from TransactionEvent {p['triggerReason']}",
                raw_status="Occupied",
                source=f.source,
                derived=True,
            )
        )


def _status_of(evse: Evse) -> str:
    if evse.status != "Occupied":
        return evse.status
    if not evse.active:
        # Plugged in with no transaction: before one (Preparing) or after one
        # ended while the cable is still in (Finishing).
        return "Finishing" if evse.finished else "Preparing"
    return _OCCUPIED_BY_STATE.get(evse.charging_state, "Preparing")


def _with_tx(r: MeterReading, tx_id: str) -> MeterReading:
    return MeterReading(
        r.charger,
        r.connector,
        r.ts,
        r.recv,
        r.energy_wh,
        r.power_w,
        context=r.context,
        transaction_id=tx_id,
        signed_data=r.signed_data,
        source=r.source,
        flags=r.flags,
        signed=r.signed,
    )


#: The 2.0.1 CALLs that carry telemetry, by action; any other valid CALL is ignored.
HANDLERS: Final[dict[str, Handler]] = {
    "BootNotification": on_boot,
    "Heartbeat": on_heartbeat,
    "StatusNotification": on_status,
    "MeterValues": on_meter_values,
    "TransactionEvent": on_transaction_event,
    "NotifyEvent": on_notify_event,
}
