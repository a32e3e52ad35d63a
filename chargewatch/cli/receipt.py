"""``chargewatch receipt`` and ``chargewatch statement``: the driver's documents
from a ledger, as the API serves them (docs/receipts.md).

``receipt --ledger L SESSION_ID [--out FILE] [--format html|json] [--bundle FILE]``
(``L``: a SQLite file or a ``postgresql://`` URL, as for the other commands)
writes the receipt (HTML by default) and, with ``--bundle``, the verification
bundle (S.A.F.E. XML). ``statement --ledger L --id-tag T --month YYYY-MM`` writes
the month's statement. ``--fleet`` gives sites' names, addresses and time
zones; ``--config`` the operator (``billing.operator``). Exit 1: no such session,
or no signed OCMF reading for ``--bundle``.
"""

from __future__ import annotations

__all__ = ["register"]

import argparse
import re
import sys
from typing import Any


def register(sub: Any) -> None:
    r = sub.add_parser("receipt", help="a session's receipt for the driver (HTML or JSON)")
    r.add_argument("session_id", help="the session's id")
    _common(r)
    r.add_argument("--bundle", help="also write the verification bundle (S.A.F.E. XML) here")
    r.set_defaults(func=_receipt)
    s = sub.add_parser("statement", help="a driver's monthly statement (HTML or JSON)")
    s.add_argument("--id-tag", required=True, help="the driver's id tag")
    s.add_argument("--month", required=True, type=_month, help="YYYY-MM")
    _common(s)
    s.set_defaults(func=_statement)


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--ledger", required=True, help="the ledger: a SQLite file or a postgresql:// URL"
    )
    p.add_argument("--out", "-o", help="file to write (default: stdout)")
    p.add_argument("--format", choices=("html", "json"), default="html")
    p.add_argument("--fleet", help="fleet.yaml: site names, addresses and time zones")
    p.add_argument("--config", help="chargewatch.yaml: the operator (billing.operator)")


def _month(v: str) -> str:
    if not re.fullmatch(r"[0-9]{4}-(0[1-9]|1[0-2])", v):
        raise argparse.ArgumentTypeError("expected YYYY-MM")
    return v


def _context(args: argparse.Namespace) -> tuple[Any, Any, dict[str, str]]:
    """(ledger, fleet or None, operator) from the command's options."""

    from chargewatch.config.fleet_file import load_fleet  # noqa: PLC0415
    from chargewatch.config.settings import Config, load_config  # noqa: PLC0415
    from chargewatch.core.errors import ConfigError, ConfigProblem  # noqa: PLC0415
    from chargewatch.storage.ledger import Ledger  # noqa: PLC0415
    from chargewatch.storage.sqldb import ledger_missing  # noqa: PLC0415

    # A URL is never "missing" here: connecting says what is wrong with it.
    if ledger_missing(args.ledger):
        raise ConfigError([ConfigProblem(args.ledger, "", "ledger file not found")])
    config = load_config(args.config) if args.config else Config()
    fleet = load_fleet(args.fleet) if args.fleet else None
    return Ledger(args.ledger, read_only=True), fleet, config.billing.operator.receipt_fields()


def _write(text: str, out: str | None) -> None:
    from pathlib import Path  # noqa: PLC0415 - not for every CLI start

    if out:
        Path(out).write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)


def _json(doc: Any) -> str:
    import orjson  # noqa: PLC0415

    return orjson.dumps(doc, default=str, option=orjson.OPT_INDENT_2).decode() + "\n"


def _receipt(args: argparse.Namespace) -> int:
    from pathlib import Path  # noqa: PLC0415 - not for every CLI start

    from chargewatch.api.receipt_html import render_receipt  # noqa: PLC0415
    from chargewatch.storage.receipt_source import load_receipt  # noqa: PLC0415

    ledger, fleet, operator = _context(args)
    try:
        got = load_receipt(ledger, args.session_id, fleet, operator)
    finally:
        ledger.close()
    if got is None:
        from chargewatch.storage.sqldb import redact  # noqa: PLC0415

        print(f"no session {args.session_id} in {redact(args.ledger)}", file=sys.stderr)
        return 1
    doc, xml = got
    href = Path(args.bundle).name if args.bundle else "receipt/bundle.xml"
    _write(_json(doc) if args.format == "json" else render_receipt(doc, bundle_href=href), args.out)
    if args.bundle:
        if "<value " not in xml:
            print(f"session {args.session_id} has no signed OCMF readings", file=sys.stderr)
            return 1
        Path(args.bundle).write_text(xml, encoding="utf-8")
    return 0


def _statement(args: argparse.Namespace) -> int:
    from chargewatch.api.receipt_html import render_statement  # noqa: PLC0415
    from chargewatch.storage.receipt_source import load_statement  # noqa: PLC0415

    ledger, fleet, operator = _context(args)
    try:
        doc = load_statement(ledger, args.id_tag, args.month, fleet, operator)
    finally:
        ledger.close()
    _write(_json(doc) if args.format == "json" else render_statement(doc), args.out)
    return 0
