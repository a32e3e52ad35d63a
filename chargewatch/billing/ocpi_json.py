"""OCPI JSON out: Decimal numbers digit for digit, DateTime text, Tariff objects."""

from __future__ import annotations

__all__ = ["datetime_text", "json_text", "tariff_to_ocpi"]

import json
from collections.abc import Mapping
from datetime import UTC, date, datetime, time
from decimal import Decimal
from enum import Enum
from typing import Any

from chargewatch.billing.tariff import RESTRICTION_FIELDS, Price, Tariff


def datetime_text(dt: datetime) -> str:
    """An OCPI DateTime: UTC with Z, milliseconds only when there are any."""
    text = dt.astimezone(UTC).isoformat(timespec="milliseconds")
    return text.replace("+00:00", "Z").replace(".000Z", "Z")


def tariff_to_ocpi(tariff: Tariff) -> dict[str, Any]:
    """The Tariff as OCPI JSON values (for the CDR's ``tariffs`` list)."""
    elements: list[dict[str, Any]] = []
    for el in tariff.elements:
        comps = []
        for pc in el.price_components:
            c: dict[str, Any] = {"type": pc.type.value, "price": pc.price}
            if pc.vat is not None:
                c["vat"] = pc.vat
            c["step_size"] = pc.step_size
            comps.append(c)
        entry: dict[str, Any] = {"price_components": comps}
        r = el.restrictions
        if r is not None:
            rd: dict[str, Any] = {}
            for name in RESTRICTION_FIELDS:
                v = getattr(r, name)
                if v is None or v == frozenset():
                    continue
                rd[name] = _restriction_value(v)
            entry["restrictions"] = rd
        elements.append(entry)
    out: dict[str, Any] = {}
    # Identity fields a tariff file lacked (a load warning) are not invented.
    for name in ("country_code", "party_id"):
        if getattr(tariff, name):
            out[name] = getattr(tariff, name)
    out |= {"id": tariff.id, "currency": tariff.currency}
    if tariff.type is not None:
        out["type"] = tariff.type
    if tariff.tariff_alt_text:
        out["tariff_alt_text"] = [{"language": la, "text": t} for la, t in tariff.tariff_alt_text]
    if tariff.tariff_alt_url is not None:
        out["tariff_alt_url"] = tariff.tariff_alt_url
    for name in ("min_price", "max_price"):
        p: Price | None = getattr(tariff, name)
        if p is not None:
            out[name] = {"excl_vat": p.excl_vat} | (
                {"incl_vat": p.incl_vat} if p.incl_vat is not None else {}
            )
    out["elements"] = elements
    for name in ("start_date_time", "end_date_time"):
        dt = getattr(tariff, name)
        if dt is not None:
            out[name] = datetime_text(dt)
    if tariff.last_updated is not None:
        out["last_updated"] = datetime_text(tariff.last_updated)
    return out


def _restriction_value(v: Any) -> Any:
    if isinstance(v, time):
        return v.strftime("%H:%M")
    if isinstance(v, date):
        return v.isoformat()
    if isinstance(v, frozenset):
        return [d.name for d in sorted(v, key=lambda d: d.value)]
    if isinstance(v, Enum):
        return v.value
    return v  # Decimal or int


def json_text(value: Any, *, indent: int | None = 2) -> str:
    """JSON text with Decimals written as numbers, digit for digit (json cannot).

    ``indent=None`` gives one line (for JSON Lines such as cdrs.jsonl).
    """
    return _json(value, indent, 0)


def _json(value: Any, indent: int | None, level: int) -> str:
    if isinstance(value, Mapping | list | tuple):
        pairs = isinstance(value, Mapping)
        items = (
            [f"{_string(str(k))}: {_json(v, indent, level + 1)}" for k, v in value.items()]
            if isinstance(value, Mapping)
            else [_json(v, indent, level + 1) for v in value]
        )
        left, right = ("{", "}") if pairs else ("[", "]")
        if not items:
            return left + right
        if indent is None:
            return left + ", ".join(items) + right
        pad, end_pad = " " * (indent * (level + 1)), " " * (indent * level)
        return f"{left}\n{pad}" + f",\n{pad}".join(items) + f"\n{end_pad}{right}"
    if isinstance(value, Decimal):
        return format(value, "f")
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return _string(value)
    raise TypeError(f"cannot write {type(value).__name__} as JSON")


def _string(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)
