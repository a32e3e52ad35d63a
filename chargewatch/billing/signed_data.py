"""OCPI 2.2.1 ``SignedData`` of a CDR, from a session's checked signed readings.

One ``SignedValue`` per signed record and the event it signs: ``Start`` (OCMF
TX ``B``), ``End`` (E, L, R, A, P) or ``Intermediate``; a record that signs
both (KEBA signs the begin and end readings in one) is listed as both.
``signed_data`` is the OCMF string base64-encoded, as OCPI asks;
``plain_data`` the readings it signs, readable (``B 2114.1356 kWh
2025-08-21T07:03:36,000+0000 I``), since the OCMF text itself often exceeds
plain_data's 512 characters. ``public_key`` is the key the signatures were
checked with (base64 DER), ``encoding_method_version`` the OCMF format
version's major number (FV 1.0 -> 1), and ``url`` the driver's receipt.
"""

from __future__ import annotations

__all__ = ["RECEIPT_PATH", "ocpi_signed_data"]

import base64
import binascii
import json
from typing import Any, Final

from chargewatch.sessions.session_engine import SessionRecord
from chargewatch.sessions.signatures import ReadingCheck

#: Where the driver's receipt of a session is served (the HTTP API), below the base URL.
RECEIPT_PATH: Final = "/api/v1/sessions/{session_id}/receipt"
_END: Final = frozenset("ELRAP")
_MAX_SIGNED: Final = 5000  # OCPI string(5000)
_MAX_PLAIN: Final = 512  # OCPI string(512)


def ocpi_signed_data(rec: SessionRecord, *, receipt_base_url: str = "") -> dict[str, Any] | None:
    """The CDR's ``signed_data``, or None when the session has no signed reading."""
    check = rec.signature
    if not check.readings:
        return None
    records: dict[int, list[ReadingCheck]] = {}
    for r in check.readings:
        records.setdefault(r.record, []).append(r)
    values = [v for group in records.values() for v in _values(group)]
    if not values:
        return None
    ocmf = any(r.ocmf for r in check.readings)
    doc: dict[str, Any] = {
        "encoding_method": "OCMF" if ocmf else _other_encoding(rec),
    }
    version = _ocmf_major(next((r.ocmf for r in check.readings if r.ocmf), ""))
    if version is not None:
        doc["encoding_method_version"] = version
    if check.public_key:
        doc["public_key"] = base64.b64encode(bytes.fromhex(check.public_key)).decode()
    doc["signed_values"] = values
    if receipt_base_url:
        path = RECEIPT_PATH.format(session_id=rec.session_id)
        doc["url"] = receipt_base_url.rstrip("/") + path
    return doc


def _values(group: list[ReadingCheck]) -> list[dict[str, str]]:
    first = group[0]
    signed = _base64(first.ocmf or first.raw)
    if len(signed) > _MAX_SIGNED:
        return []  # not a meter record (an OCMF record is ~1 kB); not for a CDR
    natures = []
    if any(r.reason == "B" for r in group):
        natures.append("Start")
    if any(r.reason in _END for r in group):
        natures.append("End")
    plain = "; ".join(" ".join(x for x in (r.reason, r.value, r.unit, r.time) if x) for r in group)
    return [
        {"nature": n, "plain_data": plain[:_MAX_PLAIN], "signed_data": signed}
        for n in natures or ["Intermediate"]
    ]


def _base64(text: str) -> str:
    """OCMF text base64-encoded; data that already is base64 passes as it is."""
    if text.startswith("OCMF|"):
        return base64.b64encode(text.encode()).decode()
    try:
        base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return base64.b64encode(text.encode()).decode()
    return text


def _ocmf_major(ocmf: str) -> int | None:
    parts = ocmf.split("|", 2)
    if len(parts) < 3:
        return None
    try:
        fv = json.loads(parts[1]).get("FV")
        return int(str(fv).split(".")[0])
    except (ValueError, AttributeError, TypeError):
        return None


def _other_encoding(rec: SessionRecord) -> str:
    # The charger's own name for the format (OCPP 2.0.1 encodingMethod), if it gave one.
    named = next((s.encoding for s in rec.signed if s.encoding), "")
    return named[:36] or "unknown"
