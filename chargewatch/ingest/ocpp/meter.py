"""OCPP meterValues (1.6 and 2.0.1) into meter rows and billing readings.

One meterValue is one instant: its sampledValues fill one batch row (where each
goes, and in which unit, is decided by :func:`.units.plan`). A sample that
cannot be used is rejected on its own; the others are independent readings of
the same instant and are kept, except that a total power summed from per-phase
values is left out when any phase was rejected (a partial sum would look like
phase loss). A meterValue in a transaction context, of a known transaction, or
with signed data also becomes a :class:`MeterReading` for the sessions.
"""

from __future__ import annotations

__all__ = ["TX_CONTEXTS", "meter_values"]

import math
from typing import Any, Final

from chargewatch.ingest.ocpp import units
from chargewatch.ingest.ocpp.context import Context
from chargewatch.ingest.ocpp.framing import Frame, RejectError
from chargewatch.ingest.ocpp.units import Plan, plan
from chargewatch.model.batch import FIELD_INDEX, N_FIELDS
from chargewatch.model.events import MeterReading

TX_CONTEXTS: Final = frozenset({"Transaction.Begin", "Transaction.End"})
_NAN: Final = math.nan
_TEMPERATURE: Final = FIELD_INDEX["temperature_c"]


def meter_values(
    ctx: Context,
    f: Frame,
    connector: int | None,
    items: list[dict[str, Any]],
    container: str,
    *,
    transaction_id: str,
    flags: tuple[str, ...] = (),
) -> list[MeterReading]:
    """Add one batch row per meterValue; return the billing readings among them.

    ``connector`` None: the row's connector is not known (a 1.6 stop of a
    transaction whose start was not seen), so no batch row, only readings.
    """
    v16 = f.version == "1.6"
    main_meter = connector == 0
    conn_id = ctx.index.id(f.charger, connector) if connector is not None else -1
    readings: list[MeterReading] = []
    for i, mv in enumerate(items):
        try:
            ts = ctx.ts(mv["timestamp"], f.recv)
        except RejectError as bad:
            f.reject(bad.reason, f"$.{container}[{i}].timestamp: {bad.detail}", i)
            continue
        row, tx_context, tx_energy, signed = _row(
            ctx, f, mv["sampledValue"], container, i, v16, main_meter
        )
        if conn_id >= 0 and not all(math.isnan(x) for x in row):
            f.sink.meter.add(conn_id, ts, f.recv, tuple(row))
        if tx_context or transaction_id or signed:
            energy = row[units.ENERGY]
            if tx_energy is not None:
                energy = tx_energy
            power = row[units.POWER]
            readings.append(
                MeterReading(
                    f.charger,
                    connector if connector is not None else 0,
                    ts,
                    f.recv,
                    None if math.isnan(energy) else energy,
                    None if math.isnan(power) else power,
                    context=tx_context or "Sample.Periodic",
                    transaction_id=transaction_id,
                    signed_data=signed,
                    source=f.source,
                    flags=flags,
                )
            )
    return readings


def _row(
    ctx: Context,
    f: Frame,
    samples: list[dict[str, Any]],
    container: str,
    i: int,
    v16: bool,
    main_meter: bool,
) -> tuple[list[float], str, float | None, str]:
    """One meterValue's batch row, its transaction context and energy, its signed data."""
    row = [_NAN] * N_FIELDS
    phase_power = [_NAN, _NAN, _NAN]
    phase_power_bad = False
    tx_context = ""
    tx_energy: float | None = None
    signed = ""
    for j, sv in enumerate(samples):
        context = sv.get("context", "Sample.Periodic")
        if context in TX_CONTEXTS and not tx_context:
            tx_context = context
        if v16:
            if sv.get("format") == "SignedData":
                # Signed data (OCMF, ...) is passed through for the CDR,
                # never read as a number (OCPP 1.6 ValueFormat SignedData).
                if signed:
                    ctx.quirks["signed_value_extra"] += 1
                else:
                    signed = sv["value"]
                continue
            unit = sv.get("unit")
            multiplier = 0
        else:
            smv = sv.get("signedMeterValue")
            if smv is not None and not signed:
                signed = smv["signedMeterData"]
            uom = sv.get("unitOfMeasure")
            unit = uom.get("unit") if uom is not None else None
            multiplier = uom.get("multiplier", 0) if uom is not None else 0
        measurand = sv.get("measurand", "Energy.Active.Import.Register")
        location = sv.get("location", "Outlet")
        if location == "Inlet" and main_meter:
            location = "Outlet"  # connector 0's meter is the grid connection's
        pl = plan(measurand, sv.get("phase"), location, unit, v16)
        if pl is None:
            continue
        raw = sv["value"]
        try:
            value = _value(pl, raw, multiplier, v16, measurand)
        except RejectError as bad:
            if pl.field == units.POWER_PHASE:
                phase_power_bad = True
            f.reject(bad.reason, f"$.{container}[{i}].sampledValue[{j}]: {bad.detail}", i)
            continue
        if pl.quirk:
            ctx.quirks[pl.quirk] += 1
        field = pl.field
        if field == units.POWER_PHASE:
            phase_power[pl.line] = value
        elif field == _TEMPERATURE:
            old = row[field]
            row[field] = value if math.isnan(old) else max(old, value)
        elif math.isnan(row[field]):
            row[field] = value
        if field == units.ENERGY and context in TX_CONTEXTS and tx_energy is None:
            tx_energy = value
    if math.isnan(row[units.POWER]) and not phase_power_bad:
        _sum_phases(ctx, row, phase_power)
    return row, tx_context, tx_energy, signed


def _sum_phases(ctx: Context, row: list[float], phase_power: list[float]) -> None:
    """Per-phase power only (Growatt THOR, lbbrhzn/ocpp#1709): the total is their sum."""
    seen = [p for p in phase_power if not math.isnan(p)]
    if seen:
        row[units.POWER] = sum(seen)
        ctx.quirks["power_summed_from_phases"] += 1


def _value(pl: Plan, raw: Any, multiplier: int, v16: bool, measurand: str) -> float:
    """A sample's value in the row's unit, or RejectError saying why it is unusable."""
    if pl.error:
        raise RejectError("unknown_unit", pl.error)
    value = _number(raw) if v16 else float(raw)
    if multiplier:
        if not -9 <= multiplier <= 9:
            raise RejectError(
                "out_of_range", f"unitOfMeasure.multiplier {multiplier} outside -9..9"
            )
        value *= 10.0**multiplier
    value = value * pl.scale + pl.offset
    if not pl.low <= value <= pl.high:
        if not math.isfinite(value):
            raise RejectError("non_finite", f"value {raw!r} is not finite")
        raise RejectError(
            "out_of_range",
            f"{measurand} {raw!r} {pl.unit} = {value:g} outside {pl.low:g}..{pl.high:g}",
        )
    return value


def _number(raw: str) -> float:
    """A 1.6 sampledValue.value: a decimal string (float() alone also takes "1_000")."""
    try:
        if "_" in raw:
            raise ValueError
        return float(raw)
    except ValueError:
        raise RejectError("bad_number", f"value {raw!r} is not a number") from None
