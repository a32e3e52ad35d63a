"""``chargewatch sessions|cdrs|billing export``: sessions, CDRs and the billing rows
from the ledger as CSV or JSON."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the commands import their modules lazily (fast CLI start)
    from chargewatch.storage.ledger import Ledger

# The ledger and the output writers (sqlite3, numpy) are imported by the
# handlers when they run: building the parser at every start stays cheap.


def _when(text: str) -> float:
    """RFC 3339 or a date (UTC midnight)."""
    try:
        dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not an RFC 3339 time or date: {text!r}") from exc
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.timestamp()


def register(sub: Any) -> None:
    p = sub.add_parser("sessions", help="billed charging sessions")
    ssub = p.add_subparsers(dest="sessions_command", metavar="ACTION")
    e = ssub.add_parser("export", help="export sessions from the ledger (start in [from, to))")
    e.add_argument("--ledger", required=True, help="SQLite ledger file, or a postgresql:// URL")
    e.add_argument("--from", dest="start_from", type=_when, default=None)
    e.add_argument("--to", dest="start_to", type=_when, default=None)
    e.add_argument("--format", choices=("csv", "json"), default="csv")
    e.add_argument("--charger", default=None)
    e.add_argument("--site", default=None)
    e.add_argument("--out", default="-", help="file to write (default: stdout)")
    e.set_defaults(func=export)

    p = sub.add_parser("cdrs", help="OCPI 2.2.1 CDRs of priced sessions")
    csub = p.add_subparsers(dest="cdrs_command", metavar="ACTION")
    c = csub.add_parser("export", help="export CDRs from the ledger (session start in [from, to))")
    c.add_argument("--ledger", required=True, help="SQLite ledger file, or a postgresql:// URL")
    c.add_argument("--from", dest="start_from", type=_when, default=None)
    c.add_argument("--to", dest="start_to", type=_when, default=None)
    c.add_argument("--format", choices=("csv", "json", "jsonl"), default="jsonl")
    c.add_argument("--charger", default=None)
    c.add_argument("--site", default=None)
    c.add_argument(
        "--history",
        action="store_true",
        help="every CDR issued and credited, in issue order, not just the current one",
    )
    c.add_argument("--out", default="-", help="file to write (default: stdout)")
    c.set_defaults(func=export_cdrs)

    p = sub.add_parser("billing", help="one billing row per session: energy, costs, flags")
    bsub = p.add_subparsers(dest="billing_command", metavar="ACTION")
    b = bsub.add_parser(
        "export", help="a row per session with its CDR's totals or why it is unpriced"
    )
    b.add_argument("--ledger", required=True, help="SQLite ledger file, or a postgresql:// URL")
    b.add_argument("--from", dest="start_from", type=_when, default=None)
    b.add_argument("--to", dest="start_to", type=_when, default=None)
    b.add_argument("--format", choices=("csv", "json"), default="csv")
    b.add_argument("--charger", default=None)
    b.add_argument("--site", default=None)
    b.add_argument("--out", default="-", help="file to write (default: stdout)")
    b.set_defaults(func=export_billing)


def export(args: argparse.Namespace) -> int:
    from chargewatch.sessions.outputs import to_csv, to_json  # noqa: PLC0415 - see the imports
    from chargewatch.storage.ledger import query_sessions, with_costs  # noqa: PLC0415

    with _open_ledger(args.ledger) as ledger:
        rows = query_sessions(
            ledger,
            start_from=args.start_from,
            start_to=args.start_to,
            charger=args.charger,
            site=args.site,
            limit=10**9,
            periods=args.format == "json",
        )
        if args.format == "csv":
            rows = with_costs(ledger, rows)
    text = to_csv(rows) if args.format == "csv" else to_json(rows) + "\n"
    _write(text, args.out)
    return 0


def _write(text: str, out: str) -> None:
    if out == "-":
        sys.stdout.write(text)
    else:
        with open(out, "w", encoding="utf-8") as fh:
            fh.write(text)


def _open_ledger(location: str) -> Ledger:
    """The ledger read-only (a file or a postgresql:// URL); a missing file is a
    ConfigError, one readable line, not a new empty ledger."""
    from chargewatch.core.errors import ConfigError, ConfigProblem  # noqa: PLC0415
    from chargewatch.storage.ledger import Ledger  # noqa: PLC0415 - see the imports
    from chargewatch.storage.sqldb import ledger_missing  # noqa: PLC0415

    if ledger_missing(location):
        raise ConfigError([ConfigProblem(location, "", "ledger file not found")])
    return Ledger(location, read_only=True)


def export_billing(args: argparse.Namespace) -> int:
    from chargewatch.billing.export import billing_csv  # noqa: PLC0415 - see the imports
    from chargewatch.storage.ledger import query_billing  # noqa: PLC0415

    with _open_ledger(args.ledger) as ledger:
        rows = query_billing(
            ledger,
            start_from=args.start_from,
            start_to=args.start_to,
            charger=args.charger,
            site=args.site,
            limit=10**9,
        )
    text = billing_csv(rows) if args.format == "csv" else json.dumps(rows, indent=1) + "\n"
    _write(text, args.out)
    return 0


def export_cdrs(args: argparse.Namespace) -> int:
    from chargewatch.collector.cdr_issuer import cdrs_csv  # noqa: PLC0415 - see the imports
    from chargewatch.storage.ledger import query_cdrs, session_owners  # noqa: PLC0415

    with _open_ledger(args.ledger) as ledger:
        rows = query_cdrs(
            ledger,
            start_from=args.start_from,
            start_to=args.start_to,
            charger=args.charger,
            site=args.site,
            history=args.history,
            limit=10**9,
        )
        owners = (
            session_owners(ledger, (r["session_id"] for r in rows)) if args.format == "csv" else {}
        )
    if args.format == "csv":
        text = cdrs_csv(rows, owners)
    elif args.format == "json":
        text = json.dumps(rows, indent=2) + "\n"
    else:
        text = "".join(json.dumps(r) + "\n" for r in rows)
    _write(text, args.out)
    return 0
