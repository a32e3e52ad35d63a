"""The ``chargewatch`` command line.

Each area registers its own subcommands (``register(subparsers)`` in the module
named below), so the CLI grows with the packages instead of in this file.
"""

from __future__ import annotations

import argparse
import importlib
import io
import os
import select
import sys
from collections.abc import Sequence

from chargewatch import __version__

# logging and the error types (dataclasses) are imported once a command runs:
# `chargewatch --help` and every parser error exit before (bench/bench_startup.py).

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
    "chargewatch.cli.ocmf",
    "chargewatch.cli.receipt",
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
    try:
        try:
            return _main(argv)
        finally:
            # Output still buffered would meet a closed pipe at exit, where
            # nothing catches it; here it is caught below (argparse's --help too).
            sys.stdout.flush()
    except BrokenPipeError:
        # The reader went away (`chargewatch rules signals | head -1`): not an
        # error worth a traceback. Exit as a tool killed by SIGPIPE would. A
        # broken socket elsewhere (stdout still fine) stays an error.
        if not _stdout_gone():
            raise
        _silence_stdout()
        return SIGPIPE_EXIT


def _main(argv: Sequence[str] | None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    if getattr(args, "logs", True):
        _setup_logging(args.log_level)
    try:
        return int(args.func(args) or 0)
    except _config_error() as exc:  # evaluated only when the command raised
        print(f"chargewatch: configuration error:\n{exc}", file=sys.stderr)
        return 2
    except _capture_error() as exc:
        # A capture line that is no record: its file:line, not a traceback.
        print(f"chargewatch: capture error:\n{exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


def _setup_logging(level: str) -> None:
    """The log format, for commands that log (``set_defaults(logs=False)``: one
    whose modules never log skips importing logging; a stray warning would still
    reach stderr through logging's last-resort handler)."""
    import logging  # noqa: PLC0415 - see the imports

    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # httpx logs every request at INFO: one line per InfluxDB write and
    # Alertmanager post. Their failures are logged by chargewatch itself.
    for noisy in ("httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLogger().level))


def _config_error() -> type[Exception]:
    from chargewatch.core.errors import ConfigError  # noqa: PLC0415 - see the imports

    return ConfigError


def _capture_error() -> type[Exception]:
    from chargewatch.ingest.capture import CaptureError  # noqa: PLC0415 - see the imports

    return CaptureError


#: The shell's status for a process ended by SIGPIPE (128 + 13), as `yes | head` shows.
SIGPIPE_EXIT = 141


def _stdout_gone() -> bool:
    """Whether stdout is a pipe without a reader (poll reports an error on it)."""
    try:
        poller = select.poll()
        poller.register(sys.stdout.fileno(), select.POLLOUT)
        events = poller.poll(0)
    except (AttributeError, OSError, ValueError, io.UnsupportedOperation):
        return True  # cannot tell (no poll, no real file): the usual cause, then
    return any(ev & (select.POLLERR | select.POLLHUP) for _, ev in events)


def _silence_stdout() -> None:
    """Point stdout at /dev/null, so the interpreter's flush of what is still
    buffered at exit does not raise a second BrokenPipeError."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, io.UnsupportedOperation):
        pass  # not a real file (a test's capture): nothing will be flushed to a pipe
