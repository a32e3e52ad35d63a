"""``chargewatch ledger migrate``: copy a whole ledger to another backend.

How an installation that outgrew the embedded SQLite file moves to PostgreSQL
(or back): stop the collectors, copy, point ``ledger.url`` at the target, start.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

# The ledger (sqlite3, psycopg) and rich are imported when the command runs.


def register(sub: Any) -> None:
    p = sub.add_parser("ledger", help="the session ledger: copy it between SQLite and PostgreSQL")
    lsub = p.add_subparsers(dest="ledger_command", metavar="ACTION")
    m = lsub.add_parser(
        "migrate",
        help="copy every table of a ledger (and its schema version) to another backend",
    )
    m.add_argument(
        "--from", dest="source", required=True, help="SQLite ledger file, or a postgresql:// URL"
    )
    m.add_argument(
        "--to", dest="target", required=True, help="postgresql:// URL, or a SQLite ledger file"
    )
    m.add_argument(
        "--force", action="store_true", help="replace the rows of a target that is not empty"
    )
    m.set_defaults(func=migrate)


def migrate(args: argparse.Namespace) -> int:
    from chargewatch.core.errors import ConfigError, ConfigProblem  # noqa: PLC0415
    from chargewatch.storage.health import storage_errno  # noqa: PLC0415
    from chargewatch.storage.ledger import Ledger  # noqa: PLC0415
    from chargewatch.storage.ledger_copy import (  # noqa: PLC0415
        LedgerNotEmptyError,
        SchemaMismatchError,
        copy_ledger,
    )
    from chargewatch.storage.sqldb import ledger_missing, redact  # noqa: PLC0415

    if ledger_missing(args.source):
        raise ConfigError([ConfigProblem(args.source, "", "ledger file not found")])
    if args.source == args.target:
        raise ConfigError([ConfigProblem(args.target, "", "--to is the --from ledger")])
    # Opening migrates the schema of either to this version's: both then match.
    try:
        with Ledger(args.source) as source, Ledger(args.target) as target, _Shown() as shown:
            report = copy_ledger(
                source, target, force=args.force, on_start=shown.start, on_rows=shown.rows
            )
    except (LedgerNotEmptyError, SchemaMismatchError) as exc:
        print(f"chargewatch ledger migrate: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:
        if storage_errno(exc) is None:
            raise
        # Unreachable server, wrong password, disk full: said plainly, no traceback.
        print(f"chargewatch ledger migrate: {redact(str(exc))}", file=sys.stderr)
        return 1
    summary = {
        "from": redact(args.source),
        "to": redact(args.target),
        "schema_version": report.version,
        "tables": {t: {"from": n, "to": report.target.get(t)} for t, n in report.source.items()},
        "verified": report.ok,
    }
    print(json.dumps(summary, indent=2))
    if not report.ok:
        print("chargewatch ledger migrate: row counts differ after the copy", file=sys.stderr)
        return 1
    return 0


class _Shown:
    """A bar per table on a terminal's stderr; nothing when piped."""

    def __init__(self) -> None:
        from chargewatch.cli.progress import progress_enabled  # noqa: PLC0415

        self.enabled = progress_enabled()
        self.bar: Any = None
        self.tasks: dict[str, Any] = {}

    def __enter__(self) -> _Shown:
        if self.enabled:
            from chargewatch.cli.progress import table_progress  # noqa: PLC0415

            self.bar = table_progress()
            self.bar.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.__exit__(*exc)

    def start(self, counts: dict[str, int]) -> None:
        if self.bar is None:
            return
        for table, n in counts.items():
            self.tasks[table] = self.bar.add_task(table, total=max(n, 1), status=f"{n:,} rows")
            if not n:
                self.bar.update(self.tasks[table], completed=1)

    def rows(self, table: str, n: int) -> None:
        if self.bar is not None:
            self.bar.advance(self.tasks[table], n)
