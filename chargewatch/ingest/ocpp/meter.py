"""OCPP meterValues (1.6 and 2.0.1) into meter rows and billing readings.

One meterValue is one instant: its sampledValues fill one batch row (where each
goes, and in which unit, is decided by :func:`.units.plan`). A sample that
cannot be used is rejected on its own; the others are independent readings of
the same instant and are kept, except that a total power summed from per-phase
values is left out when any phase was rejected (a partial sum would look like
phase loss). A meterValue in a transaction context, of a known transaction, or
with signed data also becomes a :class:`MeterReading` for the sessions.

A signed sampled value (1.6 ``format: "SignedData"``, 2.0.1
``signedMeterValue``) is read from its OCMF payload (:mod:`.signed`), never as
a plain register: its ``value`` is in the OCMF reading's unit, which the
sample itself may not state (KEBA KC-P30: kWh with no unit, beside the Wh
registers). Its energy fills the row only where no plain register did; one
that cannot be decoded is counted (``signed_value_undecodable``) and dropped
alone, the values beside it kept.

A negative ``Energy.Active.Import.Register`` is no garbage to drop but a meter
fault's evidence (a register that fell below zero): it stays in the batch row,
stored and handed to the detectors (whether MeterRegression judges it there is
the detectors' cleaning's call: docs/evaluation.md), and is recorded as a
per-value ``negative_register`` rejection: rejected for billing. Its
:class:`MeterReading` carries no energy and the flag ``register_negative``;
the session engine discards negative registers from the batch
(``sessions.energy.split_register``: ``bad_value``, ``register_regression``
review when the power integral proves energy lost).
"""

from __future__ import annotations

__all__ = ["NEGATIVE_FLAG", "TX_CONTEXTS", "meter_values"]

import math
from typing import Any, Final

import orjson

from chargewatch.ingest.ocpp import units
from chargewatch.ingest.ocpp.context import Context
from chargewatch.ingest.ocpp.framing import Frame, RejectError
from chargewatch.ingest.ocpp.signed import decode_signed
from chargewatch.ingest.ocpp.units import Plan, plan
from chargewatch.model.batch import FIELD_INDEX, N_FIELDS
from chargewatch.model.events import MeterReading, SignedReading

TX_CONTEXTS: Final = frozenset({"Transaction.Begin", "Transaction.End"})
_NAN: Final = math.nan
_TEMPERATURE: Final = FIELD_INDEX["temperature_c"]
#: The flag of a MeterReading whose register read below zero (its energy is None).
NEGATIVE_FLAG: Final = "register_negative"


def meter_values(
    ctx: Context,
    f: Frame,
    connector: int | None,
    items: list[dict[str, Any]],
    container: str,
    *,
    transaction_id: str,
    flags: tuple[str, ...] = (),
    kwh_below_wh: float = -1.0,
    stop_wh: float | None = None,
) -> list[MeterReading]:
    """Add one batch row per meterValue; return the billing readings among them.

    ``connector`` None: the row's connector is not known (a 1.6 stop of a
    transaction whose start was not seen), so no batch row, only readings.
    ``kwh_below_wh``: registers labelled Wh (or unlabelled) below this many Wh
    are kWh mislabelled (:func:`kwh_labelled_wh`), read x1000. ``stop_wh``:
    the stop's meterStop (integer Wh); a register coarser than it that agrees
    with it within its own rounding is read as meterStop (:func:`_finer_stop`).
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
            ctx, f, mv["sampledValue"], container, i, v16, main_meter, kwh_below_wh, stop_wh
        )
        energy = row[units.ENERGY]
        item_flags = flags
        if energy < 0.0:  # kept in the row for the detectors, never billed
            energy = _NAN
            item_flags = (*flags, NEGATIVE_FLAG)
        raw_signed = signed.raw if signed is not None else ""
        if conn_id >= 0 and not all(math.isnan(x) for x in row):
            f.sink.meter.add(conn_id, ts, f.recv, tuple(row))
        if tx_context or transaction_id or raw_signed:
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
                    signed_data=raw_signed,
                    source=f.source,
                    flags=item_flags,
                    signed=signed,
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
    kwh_below_wh: float = -1.0,
    stop_wh: float | None = None,
) -> tuple[list[float], str, float | None, SignedReading | None]:
    """One meterValue's batch row, its transaction context and energy, its signed reading."""
    row = [_NAN] * N_FIELDS
    phase_power = [_NAN, _NAN, _NAN]
    phase_power_bad = False
    tx_context = ""
    tx_energy: float | None = None
    signed: SignedReading | None = None
    for j, sv in enumerate(samples):
        context = sv.get("context", "Sample.Periodic")
        if context in TX_CONTEXTS and not tx_context:
            tx_context = context
        if v16:
            unit = sv.get("unit")
            multiplier = 0
        else:
            uom = sv.get("unitOfMeasure")
            unit = uom.get("unit") if uom is not None else None
            multiplier = uom.get("multiplier", 0) if uom is not None else 0
        if _is_signed(sv, v16):
            if signed is None:
                signed = _signed(ctx, sv, v16, context)
            else:
                ctx.quirks["signed_value_extra"] += 1
            if v16 or unit is None:
                # The number is the OCMF reading's, in a unit only the payload
                # states: not a plain register (see the module doc).
                continue
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
            f.reject(bad.reason, f"$.{container}[{i}].sampledValue[{j}]: {bad.detail}", i, j)
            continue
        if value < 0.0 and pl.field == units.ENERGY:
            f.reject(
                "negative_register",
                f"$.{container}[{i}].sampledValue[{j}]: {measurand} {raw!r} {pl.unit} = "
                f"{value:g} Wh: a meter fault, passed to the detectors, not billed",
                i,
                j,
            )
        if pl.quirk:
            ctx.quirks[pl.quirk] += 1
        if pl.field == units.ENERGY:
            step = pl.scale
            if pl.unit == "Wh" and 0.0 <= value < kwh_below_wh:
                value *= 1000.0
                step *= 1000.0
                ctx.quirks["stop_register_kwh_labelled_wh"] += 1
            if stop_wh is not None and v16:
                value = _finer_stop(value, raw, step, stop_wh)
        field = pl.field
        if field == units.POWER_PHASE:
            phase_power[pl.line] = value
        elif field == _TEMPERATURE:
            old = row[field]
            row[field] = value if math.isnan(old) else max(old, value)
        elif math.isnan(row[field]):
            row[field] = value
        if field == units.ENERGY and context in TX_CONTEXTS and tx_energy is None and value >= 0:
            tx_energy = value
    if math.isnan(row[units.POWER]) and not phase_power_bad:
        _sum_phases(ctx, row, phase_power)
    if signed is not None and signed.energy_wh is not None and math.isnan(row[units.ENERGY]):
        # No plain register beside it: the signed reading is the register.
        row[units.ENERGY] = signed.energy_wh
        if tx_context and tx_energy is None:
            tx_energy = signed.energy_wh
    return row, tx_context, tx_energy, signed


def _finer_stop(value: float, raw: Any, step: float, stop_wh: float) -> float:
    """meterStop for a register of the same stop that is coarser and agrees with
    it within its own rounding (a Transaction.End of "10747.8" kWh beside
    meterStop 10747765: one reading, 100 Wh against 1 Wh resolution);
    otherwise the register as read. ``step``: Wh per unit of ``raw``."""
    text = raw.strip() if isinstance(raw, str) else ""
    if not text or "e" in text.lower():
        return value
    decimals = len(text.partition(".")[2])
    resolution = step * 10.0**-decimals
    if resolution <= 1.0 or abs(value - stop_wh) > resolution / 2 + 1e-9 * stop_wh:
        return value
    return stop_wh


def kwh_labelled_wh(items: Any, meter_stop_wh: float | None) -> float:
    """For a 1.6 StopTransaction: below how many Wh its transactionData's
    registers labelled Wh (or unlabelled: the spec's default) are kWh
    mislabelled; -1 when they are not.

    meterStop is integer Wh by the spec. A Sungrow IDC180E (LEM DCBM) sends its
    Transaction.Begin/End registers as "10747.8" "Wh" beside meterStop
    10747765: read as Wh they bill nothing and look like a register reset. The
    evidence: a plain register labelled Wh equal to meterStop / 1000 within
    its rounding (0.1 %, at least 100 Wh), and nowhere near meterStop itself.
    Then every such register below meterStop / 100 (no reading of this
    transaction can be: that would be a session of 99 % of the register) is
    read as kWh; the others stay as they are."""
    if meter_stop_wh is None or meter_stop_wh < 1000.0 or not isinstance(items, list):
        return -1.0
    for mv in items:
        samples = mv.get("sampledValue") if isinstance(mv, dict) else None
        for sv in samples if isinstance(samples, list) else ():
            if not isinstance(sv, dict) or sv.get("format") == "SignedData":
                continue
            if (
                sv.get("measurand", "Energy.Active.Import.Register")
                != ("Energy.Active.Import.Register")
                or sv.get("unit", "Wh") != "Wh"
            ):
                continue
            try:
                v = _number(sv["value"]) if isinstance(sv.get("value"), str) else float("nan")
            except (RejectError, ValueError):
                continue
            near = abs(v * 1000.0 - meter_stop_wh) <= max(100.0, 1e-3 * meter_stop_wh)
            if near and abs(v - meter_stop_wh) > 0.5 * meter_stop_wh:
                return meter_stop_wh / 100.0
    return -1.0


def _envelope16(value: Any) -> dict[str, Any] | None:
    """The OCA's signed meter values for 1.6 (whitepaper v1.0, 3.2.1): the
    SignedData ``value`` is a JSON SignedMeterValueType, as 2.0.1's
    ``signedMeterValue`` (``signedMeterData`` base64, ``encodingMethod``,
    ``publicKey``), serialised into the string. Older firmware puts the OCMF
    text (or its base64/hex) there directly: None then."""
    if not isinstance(value, str) or not value.lstrip().startswith("{"):
        return None
    try:
        doc = orjson.loads(value)
    except orjson.JSONDecodeError:
        return None
    if isinstance(doc, dict) and isinstance(doc.get("signedMeterData"), str):
        return doc
    return None


def _is_signed(sv: dict[str, Any], v16: bool) -> bool:
    if v16:
        return sv.get("format") == "SignedData"
    return sv.get("signedMeterValue") is not None


def _signed(ctx: Context, sv: dict[str, Any], v16: bool, context: str) -> SignedReading:
    """Decode a signed sample (OCPP 1.6 SignedData value, 2.0.1 signedMeterValue)."""
    if v16:
        envelope = _envelope16(sv["value"])
        if envelope is None:
            got = decode_signed(str(sv["value"]), context=context)
        else:
            got = decode_signed(
                str(envelope["signedMeterData"]),
                context=context,
                encoding=str(envelope.get("encodingMethod", "")),
                signing_method=str(envelope.get("signingMethod", "")),
                public_key=str(envelope.get("publicKey", "")),
            )
    else:
        smv = sv["signedMeterValue"]
        plain = sv.get("value")
        got = decode_signed(
            str(smv["signedMeterData"]),
            context=context,
            plain_value=float(plain) if isinstance(plain, int | float) else None,
            encoding=str(smv.get("encodingMethod", "")),
            signing_method=str(smv.get("signingMethod", "")),
            public_key=str(smv.get("publicKey", "")),
        )
    if got.error:
        ctx.quirks["signed_value_undecodable"] += 1
    return got


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
        if pl.field == units.ENERGY and -pl.high <= value < 0.0:
            return value  # a register below zero: the caller flags it (module doc)
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
