"""``chargewatch uptime``: per-port uptime as 23 CFR 680.116(b) counts it, from a ledger."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from typing import Any

# The ledger, the fleet file and the computation are imported by the handler:
# building the parser at every start stays cheap.


def _when(text: str) -> float:
    """RFC 3339, a date (UTC midnight) or epoch seconds."""
    try:
        return float(text)
    except ValueError:
        pass
    try:
        dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not an RFC 3339 time, date or epoch: {text!r}") from exc
    return (dt if dt.tzinfo else dt.replace(tzinfo=UTC)).timestamp()


def register(sub: Any) -> None:
    p = sub.add_parser(
        "uptime", help="per-port uptime (NEVI 23 CFR 680.116(b)) with the evidence of each outage"
    )
    p.add_argument("--ledger", required=True, help="SQLite ledger file, or a postgresql:// URL")
    p.add_argument("--from", dest="frm", required=True, type=_when, help="window start")
    p.add_argument("--to", required=True, type=_when, help="window end (exclusive)")
    p.add_argument("--fleet", help="fleet.yaml: the ports (chargers × connectors), sites, models")
    p.add_argument(
        "--exclusions",
        help="JSON list of tagged outages (charger, connector, start, end, cause, by, reason),"
        " besides those tagged through the API",
    )
    p.add_argument(
        "--format",
        choices=("json", "csv", "nevi"),
        default="json",
        help="nevi: 23 CFR 680.112(a) quarterly data for the months in the window (CSV)",
    )
    p.add_argument("--timezone", default="UTC", help="zone of the month boundaries (nevi)")
    p.add_argument("--output", "-o", help="file to write (default: stdout)")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from chargewatch.analytics.uptime import report  # noqa: PLC0415
    from chargewatch.core.errors import ConfigError, ConfigProblem  # noqa: PLC0415
    from chargewatch.storage.exclusions import active_exclusions  # noqa: PLC0415
    from chargewatch.storage.ledger import Ledger  # noqa: PLC0415
    from chargewatch.storage.sqldb import ledger_missing  # noqa: PLC0415
    from chargewatch.storage.uptime_source import (  # noqa: PLC0415
        exclusions_from_json,
        load_uptime_inputs,
    )

    if not args.to > args.frm:
        raise ConfigError([ConfigProblem("", "--to", "the window end is not after --from")])
    if ledger_missing(args.ledger):
        raise ConfigError([ConfigProblem(args.ledger, "", "ledger file not found")])
    fleet = None
    if args.fleet:
        from chargewatch.config.fleet_file import load_fleet  # noqa: PLC0415

        fleet = load_fleet(args.fleet)
    exclusions = []
    if args.exclusions:
        with open(args.exclusions, encoding="utf-8") as f:
            try:
                exclusions = exclusions_from_json(json.load(f))
            except (ValueError, KeyError, TypeError) as exc:
                raise ConfigError([ConfigProblem(args.exclusions, "", str(exc))]) from exc
    with Ledger(args.ledger, read_only=True) as ledger:
        inputs = load_uptime_inputs(ledger, args.frm, args.to, fleet=fleet)
        # Tags stored through the API, those of --exclusions, then the fleet's
        # operating hours.
        exclusions = active_exclusions(ledger) + exclusions + inputs.exclusions
    if args.format == "nevi":
        _write(args, _nevi(args, inputs, exclusions))
        return 0
    result = report(
        inputs.ports,
        inputs.signals,
        exclusions,
        inputs.sessions,
        inputs.failed_starts,
        args.frm,
        args.to,
    )
    _write(args, _csv(result) if args.format == "csv" else json.dumps(result, indent=2) + "\n")
    return 0


def _write(args: argparse.Namespace, text: str) -> None:
    if args.output:
        with open(args.output, "w", encoding="utf-8") as f:
            f.write(text)
    else:
        sys.stdout.write(text)


def _nevi(args: argparse.Namespace, inputs: Any, exclusions: list[Any]) -> str:
    """Whole local months inside [--from, --to) (a quarter: three)."""
    from chargewatch.analytics.nevi_export import NEVI_COLUMNS, nevi_quarterly  # noqa: PLC0415
    from chargewatch.analytics.uptime import month_starts  # noqa: PLC0415
    from chargewatch.core.spreadsheet import csv_text  # noqa: PLC0415

    months = [m for m in month_starts(args.frm, args.to, args.timezone) if args.frm <= m <= args.to]
    if len(months) < 2:
        raise _no_month()
    rows = nevi_quarterly(
        inputs.ports, inputs.signals, exclusions, inputs.sessions, months, args.timezone
    )
    return csv_text(NEVI_COLUMNS, ([r.get(c, "") for c in NEVI_COLUMNS] for r in rows))


def _no_month() -> Exception:
    from chargewatch.core.errors import ConfigError, ConfigProblem  # noqa: PLC0415

    return ConfigError([ConfigProblem("", "--from", "the window holds no whole month")])


def _csv(result: dict[str, Any]) -> str:
    from chargewatch.analytics.uptime import port_table  # noqa: PLC0415
    from chargewatch.core.spreadsheet import csv_text  # noqa: PLC0415

    return csv_text(*port_table(result))
