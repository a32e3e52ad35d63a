"""``chargewatch ocmf verify FILE [--key KEY] [--json]``: check signed meter readings.

FILE is a raw OCMF string (one per line; plain, base64 or hex) or an XML file
in the S.A.F.E. transparency-software format (``<values><value
transactionId=".." context=".."><signedData>..</signedData><publicKey>..``).
Every record's signature is checked, and the records of one transaction
(one ``transactionId``; all lines of a raw file) are checked as one session
is (docs/signatures.md): same meter, pagination without gaps, meter and
time status OK. ``--key`` (hex or base64 DER) replaces the keys in the file.

Exit status: 0 every record verifies, 1 a signature or consistency check
fails (or a record has no key to check it with), 2 the input is not OCMF or
cannot be read (for example another signed-data format, such as EDL).
"""

from __future__ import annotations

__all__ = ["register"]

import argparse
import json
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from chargewatch.model.events import SignedReading
    from chargewatch.sessions.signatures import SignatureCheck

# The verifier (pyocmf, pydantic, cryptography) is imported when the command
# runs: building the parser (every ``chargewatch`` start) must not pay for it.

_MAX_BYTES = 16 * 1024 * 1024


class _UnreadableError(Exception):
    """The file cannot be read as signed data at all (exit 2)."""


def _groups(path: str) -> list[tuple[str, list[SignedReading]]]:
    """The file's signed records by transaction: (transaction id, records)."""
    from pathlib import Path  # noqa: PLC0415 - not for every CLI start

    from chargewatch.ingest.ocpp.signed import decode_signed  # noqa: PLC0415

    try:
        data = Path(path).read_bytes()[: _MAX_BYTES + 1]
    except OSError as exc:
        raise _UnreadableError(f"cannot read {path}: {exc.strerror or exc}") from exc
    if len(data) > _MAX_BYTES:
        raise _UnreadableError(f"{path}: larger than {_MAX_BYTES // (1024 * 1024)} MiB")
    text = data.decode("utf-8-sig", errors="replace").strip()
    if text.startswith("<"):
        return _xml_groups(path, text)
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if not lines:
        raise _UnreadableError(f"{path}: empty")
    return [("", [decode_signed(line, context="") for line in lines])]


def _xml_groups(path: str, text: str) -> list[tuple[str, list[SignedReading]]]:
    import xml.etree.ElementTree as ET  # noqa: PLC0415  (types; parsing is defusedxml's)

    from defusedxml import ElementTree as SafeET  # type: ignore[import-untyped]  # noqa: PLC0415

    from chargewatch.ingest.ocpp.signed import decode_signed  # noqa: PLC0415

    try:
        root: ET.Element = SafeET.fromstring(text)
    except Exception as exc:  # ParseError, or defusedxml refusing entities
        raise _UnreadableError(f"{path}: not well-formed XML: {exc}") from exc
    groups: dict[str, list[SignedReading]] = {}
    for value in root.iter("value"):
        data = value.find("signedData")
        if data is None:
            data = value.find("encodedData")
        if data is None or not (data.text or "").strip():
            continue
        key = value.find("publicKey")
        tx = value.get("transactionId") or data.get("transactionId") or ""
        groups.setdefault(tx, []).append(
            decode_signed(
                (data.text or "").strip(),
                context=value.get("context") or "",
                encoding=data.get("format") or "",
                public_key=(key.text or "") if key is not None else "",
            )
        )
    if not groups:
        raise _UnreadableError(f"{path}: no <value><signedData> element")
    return list(groups.items())


def _verify(args: argparse.Namespace) -> int:
    from chargewatch.sessions.signatures import check_records, key_hex  # noqa: PLC0415

    try:
        groups = _groups(args.file)
        if args.key and not key_hex(args.key):
            raise _UnreadableError(f"--key: not a hex or base64 public key: {args.key[:40]!r}")
    except _UnreadableError as exc:
        _report_unreadable(args, str(exc))
        return 2
    checks = [(tx, check_records(records, key=args.key or "")) for tx, records in groups]
    _print(args, checks)
    return _exit_code([c for _, c in checks])


def _exit_code(checks: list[SignatureCheck]) -> int:
    readings = [r for c in checks for r in c.readings]
    if any(r.status == "unreadable" for r in readings):
        return 2
    if any(c.status in ("invalid", "key_unknown") for c in checks):
        return 1
    # A lone start (or end) record verifies as a record: nothing to pair it with.
    return 0


def _report_unreadable(args: argparse.Namespace, reason: str) -> None:
    if args.json:
        print(json.dumps({"file": args.file, "status": "unreadable", "reason": reason}))
    else:
        print(f"{args.file}: unreadable: {reason}", file=sys.stderr)


def _records(tx: str, check: SignatureCheck) -> list[dict[str, Any]]:
    """One result per signed record: its readings, signature and status."""
    out: dict[int, dict[str, Any]] = {}
    for r in check.readings:
        rec = out.get(r.record)
        if rec is None:
            rec = out[r.record] = {
                "transaction": tx,
                "record": r.record,
                "signature_valid": r.signature_valid,
                "meter_serial": r.meter_serial,
                "pagination": r.pagination,
                "status": r.status if r.status != "unreadable" else "unreadable",
                "reason": r.detail,
                "key_pinned": r.key_pinned,
                "readings": [],
            }
        rec["readings"].append({"time": r.time, "value": r.value, "unit": r.unit, "tx": r.reason})
        # The last reading of the record (its end, for a record holding both).
        rec.update(time=r.time, value=r.value, unit=r.unit)
    for rec in out.values():
        if rec["status"] == "verified" and check.status == "invalid":
            # The record's own signature holds; the transaction's consistency does not.
            rec["status"], rec["reason"] = "inconsistent", check.reason
    return list(out.values())


def _print(args: argparse.Namespace, checks: list[tuple[str, SignatureCheck]]) -> None:
    for tx, check in checks:
        if args.json:
            for rec in _records(tx, check):
                print(json.dumps(rec, ensure_ascii=False))
            continue
        name = f"transaction {tx}" if tx else "records"
        line = f"{args.file}: {name}: {check.status}"
        if check.reason:
            line += f" ({check.reason})"
        print(line)
        for rec in _records(tx, check):
            values = ", ".join(
                f"{x['tx'] or '?'} {x['value']} {x['unit']} at {x['time']}" for x in rec["readings"]
            )
            mark = (
                "ok"
                if rec["signature_valid"]
                else ("FAILED" if rec["signature_valid"] is False else "unchecked")
            )
            why = f" [{rec['reason']}]" if rec["reason"] and rec["status"] != "verified" else ""
            page, meter = rec["pagination"] or "-", rec["meter_serial"] or "?"
            print(f"  {page} meter {meter}: signature {mark}; {values}{why}")


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``ocmf verify``."""
    ocmf = sub.add_parser("ocmf", help="verify signed meter readings (OCMF)")
    verbs = ocmf.add_subparsers(dest="ocmf_command", metavar="VERB", required=True)
    verify = verbs.add_parser(
        "verify",
        help="check every record's signature and the transaction's consistency; "
        "exit 0 verified, 1 failed, 2 not OCMF or unreadable",
    )
    verify.add_argument("file", metavar="FILE", help="raw OCMF string(s) or S.A.F.E. XML")
    verify.add_argument(
        "--key", metavar="KEY", help="public key (hex or base64 DER) for every record"
    )
    verify.add_argument("--json", action="store_true", help="one JSON result per record")
    verify.set_defaults(func=_verify)
