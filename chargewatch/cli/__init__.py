"""The ``chargewatch`` command line.

Each area registers its own subcommands (``register(subparsers)`` in the module
named below), so the CLI grows with the packages instead of in this file.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

from chargewatch import __version__
from chargewatch.core.errors import ConfigError

# Modules that contribute subcommands, in help order.
_COMMAND_MODULES: tuple[str, ...] = (
    "chargewatch.cli.run",
    "chargewatch.cli.simulate",
    "chargewatch.cli.detectors",
    "chargewatch.cli.rules",
    "chargewatch.cli.tariff",
    "chargewatch.cli.exports",
    "chargewatch.cli.report",
    "chargewatch.cli.uptime",
    "chargewatch.cli.ledger",
    "chargewatch.cli.dashboards",
    "chargewatch.cli.demo",
    "chargewatch.cli.bridge",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="chargewatch",
        description="Monitoring, alerting and per-session billing data for fleets of EV chargers.",
    )
    parser.add_argument("--version", action="version", version=f"chargewatch {__version__}")
    parser.add_argument(
        "--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"]
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in _COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    logging.basicConfig(
        level=args.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    # httpx logs every request at INFO: one line per InfluxDB write and
    # Alertmanager post. Their failures are logged by chargewatch itself.
    for noisy in ("httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLogger().level))
    try:
        return int(args.func(args) or 0)
    except ConfigError as exc:
        print(f"chargewatch: configuration error:\n{exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
