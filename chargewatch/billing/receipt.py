"""The driver's receipt of one session, as a document (docs/receipts.md).

Pure: built from the session's ``sessions.jsonl`` object, its current CDR (which
holds the tariff as it was at the session), the site from the fleet inventory
and the operator's details. The HTML page and the JSON answer of
``GET /api/v1/sessions/{id}/receipt`` are both this document. Amounts are
Decimal (as strings in JSON); the CDR's own figures are kept exactly and only
the page rounds them for reading.
"""

from __future__ import annotations

__all__ = [
    "DIMENSIONS",
    "SIGNATURE_WORDS",
    "Place",
    "build_receipt",
    "local_time",
    "meter_time",
    "money",
    "power_curve",
    "round_cents",
]

import zoneinfo
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any, Final

#: The CDR's cost dimensions in the order a receipt lists them:
#: (CDR total field, OCPI price component type, the driver's word, volume field, unit).
DIMENSIONS: Final = (
    ("total_energy_cost", "ENERGY", "Energy", "total_energy", "kWh"),
    ("total_time_cost", "TIME", "Charging time", "total_time", "h"),
    ("total_parking_cost", "PARKING_TIME", "Parking (idle) time", "total_parking_time", "h"),
    ("total_fixed_cost", "FLAT", "Session fee", None, ""),
)

#: signature_status in the driver's words: (tone, headline, what it means).
SIGNATURE_WORDS: Final[Mapping[str, tuple[str, str, str]]] = {
    "verified": (
        "ok",
        "The meter's signed readings check out.",
        "The energy you are billed for was signed by the charger's calibrated meter, "
        "and the signatures are genuine.",
    ),
    "invalid": (
        "bad",
        "Warning: the meter's signed readings do NOT check out.",
        "The billed energy cannot be confirmed by the meter's signatures. "
        "Please contact the operator and keep this receipt.",
    ),
    "key_unknown": (
        "warn",
        "The readings are signed, but the meter's key is not known.",
        "The signatures could not be checked, because no public key of this meter "
        "is registered or was sent.",
    ),
    "incomplete": (
        "warn",
        "The signed start or end reading is missing.",
        "The energy cannot be checked against the meter from start to end.",
    ),
    "unsigned": (
        "none",
        "This charger sent no signed meter readings.",
        "The energy of this session cannot be checked independently of the operator.",
    ),
}
_READING_WORDS: Final = {
    "verified": "signature genuine",
    "invalid": "signature NOT genuine",
    "key_unknown": "not checked: key unknown",
    "unreadable": "unreadable",
}
_EVENT: Final = {"B": "Start", "E": "End", "L": "End", "R": "End", "A": "End", "P": "End"}
_CENT: Final = Decimal("0.01")


@dataclass(frozen=True, slots=True)
class Place:
    """Where the session was, from the fleet inventory (empty strings: unknown)."""

    site_id: str = ""
    site_name: str = ""
    address: str = ""
    timezone: str = "UTC"


def money(value: Any) -> Decimal:
    """A CDR amount as Decimal (the CDR's JSON numbers are read through str)."""
    try:
        return Decimal(str(value)) if value is not None else Decimal(0)
    except InvalidOperation:
        return Decimal(0)


def local_time(iso: str | None, timezone: str) -> dict[str, str] | None:
    """An RFC 3339 time at the site: ``{"iso", "date", "time", "zone"}``; None when absent."""
    if not iso:
        return None
    try:
        t = datetime.fromisoformat(iso.replace("Z", "+00:00"))
        zone = zoneinfo.ZoneInfo(timezone or "UTC")
    except (ValueError, zoneinfo.ZoneInfoNotFoundError):
        return {"iso": iso, "date": iso[:10], "time": iso[11:19], "zone": "UTC"}
    if t.tzinfo is None:
        t = t.replace(tzinfo=UTC)
    at = t.astimezone(zone)
    return {
        "iso": at.isoformat(),
        "date": at.strftime("%d %b %Y"),
        "time": at.strftime("%H:%M"),
        "zone": at.tzname() or timezone,
    }


def build_receipt(
    session: Mapping[str, Any],
    cdr: Mapping[str, Any] | None,
    place: Place,
    operator: Mapping[str, str],
) -> dict[str, Any]:
    """The receipt document of one session (JSON-ready; amounts as Decimal)."""
    energy_wh = session.get("energy_wh")
    return {
        "session_id": str(session.get("session_id", "")),
        "operator": {k: operator.get(k, "") for k in ("name", "address", "vat_id", "logo")},
        "where": {
            "site_id": place.site_id or str(session.get("site") or ""),
            "site_name": place.site_name,
            "address": place.address,
            "charger": str(session.get("charger_id", "")),
            "connector": session.get("connector_id"),
        },
        "when": {
            "timezone": place.timezone,
            "start": local_time(session.get("start"), place.timezone),
            "stop": local_time(session.get("stop"), place.timezone),
            "clock_note": _clock_note(session.get("clock_offset_s")),
        },
        "id_tag": str(session.get("id_tag") or ""),
        "energy_kwh": None if energy_wh is None else money(energy_wh) / 1000,
        "duration_s": session.get("duration_s"),
        "duration": _duration(session.get("duration_s")),
        "price": _price(cdr) if cdr else None,
        "power_curve": power_curve(session.get("periods") or []),
        "signature": _signature(session, place.timezone),
    }


def _clock_note(offset_s: Any) -> str:
    """Why the times may differ from the charger's display and its signed readings.

    Set when the engine moved the session by the charger's clock offset
    (docs/sessions.md, "Charger clocks that are off")."""
    if not isinstance(offset_s, int | float) or not offset_s:
        return ""
    minutes = round(abs(offset_s) / 60)
    size = f"{minutes // 60} h {minutes % 60:02d} min" if minutes >= 60 else f"{minutes} min"
    way = "ahead" if offset_s > 0 else "behind"
    return (
        f"The charger's clock was {size} {way}. The times above are corrected; the "
        "charger's own records, and any signed meter readings below, show its clock."
    )


def _duration(seconds: Any) -> str:
    if not isinstance(seconds, int | float) or seconds < 0:
        return ""
    minutes = round(seconds / 60)
    return f"{minutes // 60} h {minutes % 60:02d} min" if minutes >= 60 else f"{minutes} min"


def _price(cdr: Mapping[str, Any]) -> dict[str, Any]:
    tariffs = list(cdr.get("tariffs") or [])
    lines = []
    for total_field, ptype, label, volume_field, unit in DIMENSIONS:
        cost = cdr.get(total_field) or {}
        excl, incl = money(cost.get("excl_vat")), money(cost.get("incl_vat", cost.get("excl_vat")))
        prices = _unit_prices(tariffs, ptype)
        if excl == 0 and incl == 0 and not prices:
            continue
        lines.append(
            {
                "dimension": ptype,
                "label": label,
                "volume": money(cdr.get(volume_field)) if volume_field else None,
                "unit": unit,
                "unit_prices": [str(p) for p, _ in prices],
                "vat_pct": sorted({v for _, v in prices if v is not None}),
                "excl_vat": excl,
                "incl_vat": incl,
            }
        )
    total = cdr.get("total_cost") or {}
    excl = money(total.get("excl_vat"))
    incl = money(total.get("incl_vat", total.get("excl_vat")))
    return {
        "currency": str(cdr.get("currency", "")),
        "lines": lines,
        "total_excl_vat": excl,
        "vat": incl - excl,
        "total_incl_vat": incl,
        "tariffs": [_tariff_words(t) for t in tariffs],
        "cdr_id": str(cdr.get("id", "")),
    }


def _unit_prices(tariffs: list[Any], ptype: str) -> list[tuple[Decimal, Decimal | None]]:
    """Each distinct (price, VAT %) of one dimension over the tariffs' elements."""
    seen: list[tuple[Decimal, Decimal | None]] = []
    for tariff in tariffs:
        for element in tariff.get("elements") or []:
            for pc in element.get("price_components") or []:
                if pc.get("type") != ptype:
                    continue
                vat = pc.get("vat")
                item = (money(pc.get("price")), None if vat is None else money(vat))
                if item not in seen:
                    seen.append(item)
    return seen


def _tariff_words(tariff: Mapping[str, Any]) -> dict[str, str]:
    texts = tariff.get("tariff_alt_text") or []
    text = next((str(t.get("text", "")) for t in texts if t.get("language") == "en"), "")
    if not text and texts:
        text = str(texts[0].get("text", ""))
    return {"id": str(tariff.get("id", "")), "text": text}


def power_curve(periods: list[Any]) -> list[dict[str, Any]]:
    """Average power of each period (kW), from its energy and duration, in order."""
    out = []
    for p in periods:
        seconds = p.get("duration_s") or 0
        if not p.get("start") or not p.get("end") or seconds <= 0:
            continue
        kw = float(p.get("energy_wh") or 0.0) / seconds * 3.6
        out.append(
            {"start": p["start"], "end": p["end"], "kw": round(kw, 3), "kind": p.get("kind", "")}
        )
    return out


def meter_time(tm: str, timezone: str) -> str:
    """An OCMF reading time (``2026-09-21T14:13:20,000+0000 S``) at the site, in words;
    as written when it does not parse."""
    try:
        t = datetime.strptime(
            tm.split(" ", maxsplit=1)[0].replace(",", "."), "%Y-%m-%dT%H:%M:%S.%f%z"
        )
        at = t.astimezone(zoneinfo.ZoneInfo(timezone or "UTC"))
    except (ValueError, zoneinfo.ZoneInfoNotFoundError):
        return tm
    return at.strftime("%d %b %Y, %H:%M:%S")


def _signature(session: Mapping[str, Any], timezone: str) -> dict[str, Any]:
    status = str(session.get("signature_status") or "unsigned")
    tone, headline, meaning = SIGNATURE_WORDS.get(status, SIGNATURE_WORDS["incomplete"])
    signed_wh = session.get("signed_energy_wh")
    readings = [
        {
            "event": _EVENT.get(str(r.get("reason", "")), "Reading"),
            "value": str(r.get("value", "")),
            "unit": str(r.get("unit", "")),
            "time": str(r.get("time", "")),
            "time_local": meter_time(str(r.get("time", "")), timezone),
            "meter_serial": str(r.get("meter_serial", "")),
            "pagination": str(r.get("pagination", "")),
            "status": str(r.get("status", "")),
            "words": _READING_WORDS.get(str(r.get("status", "")), str(r.get("status", ""))),
        }
        for r in session.get("signed_readings") or []
    ]
    return {
        "status": status,
        "tone": tone,
        "headline": headline,
        "meaning": meaning,
        "reason": str(session.get("signature_reason") or ""),
        "key_pinned": bool(session.get("key_pinned")),
        "key_words": (
            "checked with the meter key the operator registered"
            if session.get("key_pinned")
            else "checked with the key the charger sent (not registered by the operator)"
        )
        if status == "verified"
        else "",
        "signed_energy_kwh": None if signed_wh is None else money(signed_wh) / 1000,
        "energy_mismatch": "signed_energy_mismatch" in (session.get("quality") or []),
        "readings": readings,
        "bundle": bool(readings),
    }


def round_cents(value: Decimal) -> Decimal:
    """An amount as the page shows it (half up to the cent)."""
    return value.quantize(_CENT, rounding=ROUND_HALF_UP)
