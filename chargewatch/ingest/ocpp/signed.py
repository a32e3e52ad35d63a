"""Signed meter values (OCMF) decoded as what they are: the reading they sign.

A signed sampled value is not a plain register: KEBA's KC-P30 (OCPP 2.0.1,
Eichrecht) sends its ``signedMeterValue`` beside the Wh registers with no
measurand and no unit, and a ``value`` in kWh (2114.1356 for 2,114,135.6 Wh),
because the number is the OCMF reading, whose unit only the OCMF payload
states (RU). So the reading is taken from the payload:
``OCMF|{payload}|{signature}``, its readings ``RD`` with value ``RV`` and
unit ``RU``. The data may come plain, base64-encoded (OCPP 2.0.1
``signedMeterData`` is base64 by the spec, and KEBA sends it so) or hex.

Parsing is pyocmf's (MIT), which parses every real OCMF string of the team's
external captures (KEBA P30, SAFE e.V. and Chargy sets: 400 of 400)
leniently, as the Transparenzsoftware does. Nothing is verified here: the decoded
reading keeps the raw string, the OCMF text, the meter serial and the public
key for a verifier. Decoding never raises: what cannot be decoded is a
:class:`SignedReading` with ``error`` set.
"""

from __future__ import annotations

__all__ = ["decode_signed"]

import base64
import binascii
import warnings
from dataclasses import replace
from decimal import Decimal
from functools import lru_cache
from typing import TYPE_CHECKING, Final

from chargewatch.model.events import SignedReading

if TYPE_CHECKING:
    from pyocmf import Reading

_PREFIX: Final = "OCMF|"
_WH_PER: Final = {"Wh": Decimal(1), "kWh": Decimal(1000)}
#: The OCMF reading reason (TX) a transaction context's value signs.
_REASON: Final = {"Transaction.Begin": "B", "Transaction.End": "E"}
_MAX_LEN: Final = 64 * 1024  # an OCMF record is ~1 kB; more is not one


def decode_signed(
    raw: str,
    *,
    context: str,
    plain_value: float | None = None,
    encoding: str = "",
    signing_method: str = "",
    public_key: str = "",
) -> SignedReading:
    """The reading a signed value signs (see the module doc); never raises.

    Of several readings in one payload (KEBA signs Begin and End together
    and attaches the same record to both values), the one whose RV equals
    ``plain_value`` is taken, else the one of the context (B for
    Transaction.Begin, E for Transaction.End), else the last.
    """
    base = SignedReading(
        raw=raw, encoding=encoding, signing_method=signing_method, public_key=public_key
    )
    if encoding and encoding.upper() != "OCMF":
        return _failed(base, f"encodingMethod {encoding!r} is not OCMF")
    text = _ocmf_text(raw)
    if text is None:
        return _failed(base, "not OCMF (plain, base64 or hex)")
    parsed = _parse(text)
    if isinstance(parsed, str):
        return _failed(base, parsed, ocmf=text)
    serials, readings = parsed
    picked = _pick(readings, context, plain_value)
    if picked is None:
        return _failed(base, "no energy reading (RV with RU Wh or kWh)", ocmf=text)
    value, unit, tm, tx = picked
    return replace(
        base,
        ocmf=text,
        meter_serial=serials[0],
        gateway_serial=serials[1],
        reading_time=tm,
        reading_reason=tx,
        value=str(value),
        unit=unit,
        energy_wh=float(value * _WH_PER[unit]),
    )


def _ocmf_text(raw: str) -> str | None:
    """The ``OCMF|...`` text of plain, base64 or hex signed data, or None."""
    s = raw.strip()
    if not s or len(s) > _MAX_LEN:
        return None
    if s.startswith(_PREFIX):
        return s
    for decode in (_from_base64, _from_hex):
        got = decode(s)
        if got is not None and got.startswith(_PREFIX):
            return got
    return None


def _from_base64(s: str) -> str | None:
    try:
        return base64.b64decode(s, validate=True).decode("utf-8").strip()
    except (binascii.Error, ValueError):  # UnicodeDecodeError is a ValueError
        return None


def _from_hex(s: str) -> str | None:
    try:
        return bytes.fromhex(s).decode("utf-8").strip()
    except ValueError:
        return None


_Reading = tuple[Decimal, str, str, str]  # RV, RU, TM, TX
_Parsed = tuple[tuple[str, str], tuple[_Reading, ...]]


@lru_cache(maxsize=256)  # the same record comes with Begin and End, and on re-delivery
def _parse(text: str) -> _Parsed | str:
    """(meter serial, gateway serial) and energy readings; or why not."""
    # Imported on first use: pyocmf brings pydantic (~0.4 s), which a collector
    # whose chargers sign nothing should not pay at startup.
    from pyocmf import OCMF, SpecWarning  # noqa: PLC0415

    # Spec deviations real meters show are not ours to report (and a
    # catch_warnings block per call would not be thread-safe).
    warnings.filterwarnings("ignore", category=SpecWarning)
    try:
        ocmf = OCMF.from_string(text)
        p = ocmf.payload
        # Inside the try: the parsed model can still refuse to print itself (a TM
        # without a UTC offset raises when serialised).
        readings = tuple(r for r in (_energy(rd) for rd in p.RD) if r is not None)
    except Exception as bad:  # a third-party parser on untrusted input: anything goes
        msg = str(bad).strip()
        first = msg.splitlines()[0] if msg else type(bad).__name__
        return f"OCMF does not parse: {first[:200]}"
    return (p.MS or "", p.GS or ""), readings


def _energy(rd: Reading) -> _Reading | None:
    unit = str(rd.RU) if rd.RU is not None else ""
    if rd.RV is None or unit not in _WH_PER:
        return None
    try:
        value = Decimal(str(rd.RV).strip())
    except ArithmeticError:
        return None
    if not value.is_finite() or value < 0:
        return None
    tx = str(rd.TX) if rd.TX is not None else ""
    return value, unit, str(rd.TM), tx


def _pick(readings: tuple[_Reading, ...], context: str, plain: float | None) -> _Reading | None:
    if not readings:
        return None
    if plain is not None:
        for r in readings:
            if abs(float(r[0]) - plain) <= 1e-9 * max(1.0, abs(plain)):
                return r
    want = _REASON.get(context)
    for r in readings:
        if want and r[3] == want:
            return r
    return readings[-1]


def _failed(base: SignedReading, why: str, ocmf: str = "") -> SignedReading:
    return replace(base, ocmf=ocmf, error=why)
