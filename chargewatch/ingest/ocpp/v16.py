"""OCPP 1.6 CALLs from the charge point into chargewatch's events.

Each handler gets the decoder's :class:`Context`, the frame and its payload,
already checked against the schema. A 1.6 StartTransaction emits nothing by
itself: its start event waits for the CSMS's answer (:mod:`.correlation`).
"""

from __future__ import annotations

__all__ = ["HANDLERS", "on_heartbeat"]

from typing import Any, Final

from chargewatch.ingest.ocpp import units
from chargewatch.ingest.ocpp.context import Context, Handler
from chargewatch.ingest.ocpp.framing import Frame, RejectError
from chargewatch.ingest.ocpp.meter import kwh_labelled_wh, meter_values
from chargewatch.ingest.ocpp.state import Side, StartInfo
from chargewatch.model.events import BootEvent, HeartbeatEvent, StatusEvent, TransactionEvent


def on_heartbeat(ctx: Context, f: Frame, payload: dict[str, Any]) -> None:
    f.sink.events.append(HeartbeatEvent(f.charger, f.recv, f.recv, f.source))


def on_boot(ctx: Context, f: Frame, p: dict[str, Any]) -> None:
    extra = {k: p[k] for k in ("iccid", "imsi", "meterType", "meterSerialNumber") if p.get(k)}
    serial = p.get("chargePointSerialNumber") or p.get("chargeBoxSerialNumber") or ""
    f.sink.events.append(
        BootEvent(
            f.charger,
            f.recv,  # BootNotification carries no timestamp
            f.recv,
            vendor=p["chargePointVendor"],
            model=p["chargePointModel"],
            firmware=p.get("firmwareVersion", ""),
            serial=serial,
            extra=extra,
            source=f.source,
        )
    )


def on_status(ctx: Context, f: Frame, p: dict[str, Any]) -> None:
    try:
        connector = ctx.connector(p["connectorId"], "connectorId")
        ts = ctx.ts(p["timestamp"], f.recv) if "timestamp" in p else f.recv
    except RejectError as bad:
        f.reject(bad.reason, bad.detail)
        return
    # An empty vendorErrorCode (Wallbox, lbbrhzn/ocpp PR #1925) is "no code".
    f.sink.events.append(
        StatusEvent(
            f.charger,
            connector,
            ts,
            f.recv,
            p["status"],
            error_code=p["errorCode"],
            info=p.get("info", ""),
            vendor_error_code=p.get("vendorErrorCode", ""),
            source=f.source,
        )
    )


def on_meter_values(ctx: Context, f: Frame, p: dict[str, Any]) -> None:
    try:
        connector = ctx.connector(p["connectorId"], "connectorId")
    except RejectError as bad:
        f.reject(bad.reason, bad.detail)
        return
    tx_id = str(p["transactionId"]) if "transactionId" in p else ""
    if tx_id and connector:
        f.state.learn_transaction(tx_id, connector, ctx.history)
    f.sink.events.extend(
        meter_values(ctx, f, connector, p["meterValue"], "meterValue", transaction_id=tx_id)
    )


def on_start(ctx: Context, f: Frame, p: dict[str, Any]) -> None:
    try:
        connector = ctx.connector(p["connectorId"], "connectorId")
        ts = ctx.ts(p["timestamp"], f.recv)
    except RejectError as bad:
        f.reject(bad.reason, bad.detail)
        return
    meter, flags = _register(f, p["meterStart"], "meterStart")
    key: tuple[Side, str] = ("cp", f.frame[1])
    pending = f.state.pending.get(key)
    if pending is not None:
        pending.start = StartInfo(connector, ts, meter, p["idTag"], flags)


def _register(f: Frame, value: int, what: str) -> tuple[float | None, tuple[str, ...]]:
    """meterStart/meterStop (integer Wh): an impossible one is rejected on its own."""
    if not 0 <= value <= units.FIELD_RANGE[units.ENERGY][1]:
        f.reject("out_of_range", f"$.{what}: {value} Wh is not a possible register value")
        return None, ("meter_rejected",)
    return float(value), ()


def on_stop(ctx: Context, f: Frame, p: dict[str, Any]) -> None:
    try:
        ts = ctx.ts(p["timestamp"], f.recv)
    except RejectError as bad:
        f.reject(bad.reason, f"$.timestamp: {bad.detail}")
        return
    tx_id = str(p["transactionId"])
    connector = f.state.tx_connector.pop(tx_id, None)
    flags: tuple[str, ...] = () if connector is not None else ("connector_unknown",)
    meter, meter_flags = _register(f, p["meterStop"], "meterStop")
    if "transactionData" in p:
        f.sink.events.extend(
            meter_values(
                ctx,
                f,
                connector,
                p["transactionData"],
                "transactionData",
                transaction_id=tx_id,
                flags=flags,
                kwh_below_wh=kwh_labelled_wh(p["transactionData"], meter),
                stop_wh=meter,
            )
        )
    f.sink.events.append(
        TransactionEvent(
            f.charger,
            connector if connector is not None else 0,
            ts,
            f.recv,
            "stop",
            tx_id,
            meter_wh=meter,
            id_tag=p.get("idTag", ""),
            reason=p.get("reason", "Local"),  # 1.6 StopTransaction.req: absent means Local
            source=f.source,
            flags=flags + meter_flags,
        )
    )


#: The 1.6 CALLs that carry telemetry, by action; any other valid CALL is ignored.
HANDLERS: Final[dict[str, Handler]] = {
    "BootNotification": on_boot,
    "Heartbeat": on_heartbeat,
    "StatusNotification": on_status,
    "MeterValues": on_meter_values,
    "StartTransaction": on_start,
    "StopTransaction": on_stop,
}
