"""``chargewatch dashboards push``: upload the Grafana dashboards to a running Grafana.

For a Grafana that docker-compose.yml does not provision (an existing company
Grafana). The dashboards refer to their datasources by the fixed uids
``chargewatch-influxdb`` and ``chargewatch-prometheus``
(deploy/grafana/provisioning/datasources/chargewatch.yaml): create datasources
with those uids there first. Pushing again overwrites the dashboards by uid.
"""

from __future__ import annotations

__all__ = ["DEFAULT_FOLDER", "register"]

import argparse
import sys

# The push itself (dataclasses, the error types) is in dashboards_push, imported
# when the command runs, so `chargewatch --help` does not pay for it.
DEFAULT_FOLDER = "chargewatch"


def cmd_push(args: argparse.Namespace) -> int:
    from pathlib import Path  # noqa: PLC0415 - not for every CLI start

    from grafana_client.api import GrafanaApi  # noqa: PLC0415 - only this command needs it

    from chargewatch.cli.dashboards_push import (  # noqa: PLC0415 - see the module
        default_dashboard_dir,
        load_dashboards,
        push,
    )
    from chargewatch.core.errors import ConfigError, ConfigProblem  # noqa: PLC0415

    if args.token and (args.user or args.password):
        raise ConfigError([ConfigProblem("command line", "--token", "give a token or a user")])
    if bool(args.user) != bool(args.password):
        raise ConfigError(
            [ConfigProblem("command line", "--user", "--user and --password go together")]
        )
    credential: str | tuple[str, str] | None = None
    if args.token:
        credential = args.token
    elif args.user:
        credential = (args.user, args.password)
    dashboards = load_dashboards(Path(args.dir) if args.dir else default_dashboard_dir())
    api = GrafanaApi.from_url(args.url, credential=credential, timeout=args.timeout)
    try:
        result = push(api, dashboards, args.folder)
    except Exception as exc:  # grafana-client raises its own hierarchy per status
        print(f"chargewatch dashboards push: {_one_line(exc, args.url)}", file=sys.stderr)
        return 1
    for uid, url in result.uploaded:
        print(f"{uid}\t{url}")
    return 0


def _one_line(exc: Exception, url: str) -> str:
    """A readable reason: the connection's own errno text, not urllib3's repr chain."""
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, OSError) and cause.strerror:
            return f"cannot reach Grafana at {url}: {cause.strerror}"
        cause = cause.__cause__ or cause.__context__
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    if "Failed to establish a new connection" in text or "Max retries exceeded" in text:
        reason = text.rsplit(": ", 1)[-1].rstrip("')")
        return f"cannot reach Grafana at {url}: {reason}"
    return f"{type(exc).__name__}: {text}"


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("dashboards", help="Grafana dashboards")
    dsub = p.add_subparsers(dest="dashboards_command", metavar="SUBCOMMAND", required=True)
    push_p = dsub.add_parser(
        "push",
        help="upload the dashboards to a running Grafana",
        description="Upload the chargewatch dashboards to Grafana (overwriting by uid). "
        "The Grafana needs datasources with uids chargewatch-influxdb and "
        "chargewatch-prometheus.",
    )
    push_p.add_argument("--url", required=True, help="Grafana URL, e.g. http://localhost:3000")
    push_p.add_argument("--token", help="service account token (or use --user/--password)")
    push_p.add_argument("--user")
    push_p.add_argument("--password")
    push_p.add_argument("--folder", default=DEFAULT_FOLDER, help="folder title (created if absent)")
    push_p.add_argument("--dir", help="dashboard JSON directory (default: the bundled dashboards)")
    push_p.add_argument("--timeout", type=float, default=10.0, help="HTTP timeout, s")
    push_p.set_defaults(func=cmd_push)
