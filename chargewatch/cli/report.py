"""``chargewatch report``: HTML usage reports over a ledger, one session, or a public dataset."""

from __future__ import annotations

__all__ = ["register"]

import argparse
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from chargewatch.reports.html import Report

# The report's modules (matplotlib, numpy, the simulator's dataset converter)
# are imported by _run when it runs, so building the parser at every start
# stays cheap. The dataset names are therefore spelled here; a test holds them
# equal to reports.dataset_ledger.DATASETS.
DATASET_NAMES = ("acn", "norway")


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "report",
        help="write an HTML usage report (ledger, one session, or a public dataset)",
        description=(
            "Writes DIR/report.html (figures embedded) and the figures as PNG files beside it. "
            "Give --ledger (fleet report, or one --session) or --dataset acn|norway."
        ),
    )
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--ledger", help="SQLite ledger file, or a postgresql:// URL")
    src.add_argument("--dataset", choices=DATASET_NAMES, help="load a raw public dataset")
    p.add_argument("--dataset-path", help="the dataset file (default: the shared copy)")
    p.add_argument("--from", dest="frm", help="window start (RFC 3339 or epoch s)")
    p.add_argument("--to", help="window end (RFC 3339 or epoch s)")
    p.add_argument("--site", help="only this site")
    p.add_argument("--session", help="report on one session (billing disputes)")
    p.add_argument(
        "--fleet",
        help="fleet.yaml: site time zones, the chargers and connectors counted, AC/DC; "
        "uptime as with `uptime --fleet` (operating hours: closed hours excluded)",
    )
    p.add_argument("--timezone", default="UTC", help="zone for sites not in --fleet")
    p.add_argument("--tariff", help="OCPI tariff file: price sessions that have no CDR")
    p.add_argument("--out", required=True, help="output directory")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    # See the imports at the top for why these are here.
    from pathlib import Path  # noqa: PLC0415 - not for every CLI start

    from chargewatch.analytics.session_frame import Window  # noqa: PLC0415
    from chargewatch.api.analytics_api import ledger_span, parse_time  # noqa: PLC0415
    from chargewatch.billing.tariff_files import load_tariff  # noqa: PLC0415
    from chargewatch.cli.progress import spinner  # noqa: PLC0415
    from chargewatch.reports.dataset_ledger import load_dataset, price_records  # noqa: PLC0415
    from chargewatch.reports.html import fleet_report, session_report  # noqa: PLC0415
    from chargewatch.storage.ledger import Ledger  # noqa: PLC0415
    from chargewatch.storage.sqldb import ledger_missing, ledger_name  # noqa: PLC0415

    zones: dict[str, str] = {"*": args.timezone}
    connectors: dict[str, int] | None = None
    fleet = None
    if args.fleet:
        from chargewatch.config.fleet_file import load_fleet  # noqa: PLC0415

        fleet = load_fleet(args.fleet)
        zones |= {s.id: s.timezone for s in fleet.sites.values()}
    tariff = load_tariff(args.tariff) if args.tariff else None
    notes: list[str] = []
    clock = None
    if args.dataset:
        ledger = Ledger(":memory:")
        info, records = load_dataset(
            args.dataset, ledger, Path(args.dataset_path) if args.dataset_path else None
        )
        zones = info.zones | {k: v for k, v in zones.items() if k != "*"}
        # One plug per station in both datasets; the converter's extra connector
        # only holds overlapping records, so it must not add capacity.
        connectors = {r.charger_id: 1 for r in records}
        title = f"Usage report — {info.title}"
        notes.append(
            f"Loaded {len(records)} sessions from {args.dataset_path or info.path} through the "
            "simulator's dataset converter; charging periods follow its ramp-flat-taper curve "
            "(charging ends at doneChargingTime where the data gives it)."
        )
        if args.dataset == "norway":
            notes.append(
                "Times are the file's local wall-clock times (the converter reads them as UTC)."
            )
            clock = "the file's Norwegian wall clock"
        if tariff is not None:
            n = price_records(ledger, records, tariff, zones)
            notes.append(f"Priced {n} sessions with tariff {tariff.id} for this report.")
    else:
        if ledger_missing(args.ledger):
            print(f"chargewatch report: {args.ledger}: no such ledger file", file=sys.stderr)
            return 2
        ledger = Ledger(args.ledger)
        title = f"Usage report — {ledger_name(args.ledger)}" + (
            f", site {args.site}" if args.site else ""
        )
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    with ledger, spinner(f"writing {out / 'report.html'}"):
        report: Report | None
        if args.session:
            report = session_report(ledger, args.session, tariff=tariff, zones=zones)
            if report is None:
                some = [r[0] for r in ledger.db.execute("SELECT session_id FROM sessions LIMIT 3")]
                print(
                    f"chargewatch report: no session {args.session!r} (e.g. {', '.join(some)})",
                    file=sys.stderr,
                )
                return 1
        else:
            span = ledger_span(ledger, args.site)
            lo = parse_time(args.frm) if args.frm else (span.lo if span else None)
            hi = parse_time(args.to) if args.to else (span.hi if span else None)
            if lo is None or hi is None:
                print(
                    "chargewatch report: the ledger has no sessions; give --from and --to",
                    file=sys.stderr,
                )
                return 1
            report = fleet_report(
                ledger,
                Window(lo, hi),
                title=title,
                site=args.site,
                zones=zones,
                connectors=connectors,
                fleet=fleet,
                notes=notes,
                clock=clock,
            )
    (out / "report.html").write_text(report.html, encoding="utf-8")
    for name, png in report.figures.items():
        (out / name).write_bytes(png)
    s = report.summary
    if "sessions" in s:
        occ = s["occupied_share"]
        print(
            f"{out / 'report.html'}: {s['sessions']} sessions, {s['energy_kwh']:.3f} kWh, "
            f"occupied {'n/a' if occ is None else f'{occ * 100:.2f} %'}, "
            f"{len(report.figures)} figures"
        )
    else:
        print(f"{out / 'report.html'}: {len(report.figures)} figures")
    return 0
