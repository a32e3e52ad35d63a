"""``chargewatch tariff check FILE...`` and ``chargewatch tariff price``."""

from __future__ import annotations

__all__ = ["register"]

import argparse
import sys
from datetime import UTC, tzinfo

# Each handler imports the billing modules (and zoneinfo, and the error types:
# dataclasses) it uses when it runs: building the parser (every ``chargewatch``
# start) must not pay for them.


def _check(args: argparse.Namespace) -> int:
    from chargewatch.billing.tariff_files import load_tariff  # noqa: PLC0415 - see above
    from chargewatch.core.errors import ConfigError  # noqa: PLC0415

    failed = 0
    for file in args.files:
        try:
            tariff = load_tariff(file)
        except ConfigError as exc:
            failed += 1
            for problem in exc.problems:
                print(problem, file=sys.stderr)
            continue
        for warning in tariff.warnings:
            print(f"warning: {warning}", file=sys.stderr)
        print(f"{file}: ok (tariff {tariff.id}, {len(tariff.elements)} elements)")
    return 1 if failed else 0


def _zone(name: str) -> tzinfo:
    import zoneinfo  # noqa: PLC0415 - see above

    from chargewatch.core.errors import ConfigError, ConfigProblem  # noqa: PLC0415

    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
        raise ConfigError([ConfigProblem("--timezone", "", f"unknown time zone {name!r}")]) from exc


def _price(args: argparse.Namespace) -> int:
    # Only what pricing needs (see above): tariffs, the CDR reader and the CDR.
    from chargewatch.billing.cdr import PricedCdr, build_cdr  # noqa: PLC0415
    from chargewatch.billing.cdr_reader import periods_from_cdr  # noqa: PLC0415
    from chargewatch.billing.ocpi_json import json_text  # noqa: PLC0415
    from chargewatch.billing.tariff_files import load_json, load_tariff  # noqa: PLC0415
    from chargewatch.core.errors import ConfigError, ConfigProblem  # noqa: PLC0415

    tariff = load_tariff(args.tariff)
    for warning in tariff.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    start, end, periods = periods_from_cdr(load_json(args.cdr), file=args.cdr)
    # Without --timezone, wall time is read in the offset the CDR's timestamps carry.
    zone: tzinfo = _zone(args.timezone) if args.timezone else (start.tzinfo or UTC)
    try:
        cdr = build_cdr(
            tariff, start=start, end=end, timezone=zone, periods=periods, cdr_volumes=True
        )
    except ValueError as exc:
        raise ConfigError([ConfigProblem(args.cdr, "charging_periods", str(exc))]) from exc
    assert isinstance(cdr, PricedCdr)
    print(json_text(cdr.totals()))
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``tariff check`` and ``tariff price``."""
    tariff = sub.add_parser("tariff", help="validate OCPI 2.2.1 tariffs and price CDRs with them")
    verbs = tariff.add_subparsers(dest="tariff_command", metavar="VERB", required=True)

    check = verbs.add_parser("check", help="validate tariff files; report every problem")
    check.add_argument("files", nargs="+", metavar="FILE")
    # Both print what they find; nothing they import logs (no logging set-up: ~14 ms a start).
    check.set_defaults(func=_check, logs=False)

    price = verbs.add_parser("price", help="price a CDR's charging periods with a tariff")
    price.add_argument("--tariff", required=True, metavar="TARIFF.json")
    price.add_argument("--cdr", required=True, metavar="CDR.json")
    price.add_argument(
        "--timezone",
        metavar="ZONE",
        help="IANA zone for restriction times (default: the offset in the CDR's timestamps)",
    )
    price.set_defaults(func=_price, logs=False)
