"""A session's verification bundle: its OCMF records and public key in the XML
format of the S.A.F.E. transparency software, so a driver can check them there
(or with ``chargewatch ocmf verify``).

The format, as the reference samples (tests/fixtures/ocmf/reference) write it::

    <values>
      <value transactionId="77" context="Transaction.Begin">
        <signedData format="OCMF" encoding="plain">OCMF|{...}|{...}</signedData>
        <publicKey encoding="hex">3059...</publicKey>
      </value>
      ...
    </values>

One ``value`` per signed OCMF record (a record signing both the begin and the
end reading, as KEBA's do, appears once). Readings that are not OCMF are left
out: the transparency software reads only what its format names.
"""

from __future__ import annotations

__all__ = ["safe_bundle_xml"]

from collections.abc import Mapping
from typing import Any, Final
from xml.etree import ElementTree as ET

#: OCMF TX of a record's first reading -> the S.A.F.E. context.
_CONTEXT: Final = {"B": "Transaction.Begin", **dict.fromkeys("ELRAP", "Transaction.End")}


def safe_bundle_xml(session: Mapping[str, Any]) -> str:
    """The bundle of ``session`` (its sessions.jsonl object with signed_readings)."""
    root = ET.Element("values")
    seen: set[Any] = set()
    tx = str(session.get("transaction_id") or session.get("session_id") or "")
    for r in session.get("signed_readings") or []:
        ocmf = str(r.get("ocmf") or "")
        if not ocmf.startswith("OCMF|") or r.get("record") in seen:
            continue
        seen.add(r.get("record"))
        value = ET.SubElement(
            root,
            "value",
            transactionId=tx,
            context=_CONTEXT.get(str(r.get("reason", "")), "Sample.Periodic"),
        )
        data = ET.SubElement(value, "signedData", format="OCMF", encoding="plain")
        data.text = ocmf
        key = str(r.get("public_key") or session.get("public_key") or "")
        if key:
            ET.SubElement(value, "publicKey", encoding="hex").text = key
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, "unicode") + "\n"
