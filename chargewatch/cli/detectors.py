"""``chargewatch detectors report``: precision, recall and time to detect per detector,
measured on a seeded fleet simulation with every telemetry fault injected."""

from __future__ import annotations

import argparse
import json
import sys


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "detectors",
        help="fault detectors: evaluation report",
        description="Vectorised fault detectors (see docs/detectors.md).",
    )
    dsub = p.add_subparsers(dest="detectors_command", metavar="SUBCOMMAND")
    r = dsub.add_parser(
        "report",
        help="simulate a fleet with every fault injected and score each detector",
        description="Runs the fleet simulator with each telemetry fault injected "
        "--per-fault times (one fault per charger) and the simulator's hard normal "
        "cases, feeds the messages through the collector pipeline into the "
        "detectors, and prints precision, recall and time to detect per detector. "
        "Exit status 1 when a detector misses its target.",
    )
    r.add_argument("--chargers", type=int, default=60)
    r.add_argument("--hours", type=float, default=10.0)
    r.add_argument("--seed", type=int, default=1)
    r.add_argument("--per-fault", type=int, default=2, help="injections of each fault")
    r.add_argument("--interval", type=float, default=10.0, help="meter sample interval, s")
    r.add_argument("--config", help="YAML file with detector parameters (DetectorConfig)")
    r.add_argument(
        "--no-normals",
        action="store_true",
        help="skip the normal-scenario runs (false findings on fault-free hard cases)",
    )
    r.add_argument("--json", action="store_true", help="print JSON instead of a table")
    r.add_argument(
        "--path",
        choices=("detectors", "alerts"),
        default="detectors",
        help="detectors: score the detectors' findings (default); alerts: replay each "
        "cadence's capture through the whole path of `chargewatch replay` (decode, "
        "detectors, rules) and score the alerts that fire (docs/evaluation.md)",
    )
    r.add_argument(
        "--cadence",
        action="append",
        help="with --path alerts: native-1s, ocpp-10s, ocpp-30s, ocpp-60s, ocpp-300s "
        "(repeatable; default all)",
    )
    r.add_argument(
        "--rounds", type=int, default=1, help="with --path alerts: injections of each fault"
    )
    r.set_defaults(func=_report)

    def usage(args: argparse.Namespace) -> int:
        p.print_help()
        return 2

    p.set_defaults(func=usage)


def _report(args: argparse.Namespace) -> int:
    if args.path == "alerts":
        return _report_alerts(args)
    # Imported here: the evaluation pulls in the simulator and the detectors
    # (numpy, scipy), which `chargewatch --help` and every other subcommand do not need.
    from chargewatch.core.yamlsrc import load_yaml  # noqa: PLC0415
    from chargewatch.detectors.params import DetectorConfig  # noqa: PLC0415
    from chargewatch.evaluation.detector_report import (  # noqa: PLC0415
        NOT_INJECTABLE,
        evaluate,
        format_table,
        normal_scenarios,
    )

    cfg = None
    if args.config:
        src = load_yaml(args.config)
        cfg = DetectorConfig.from_mapping(src.data, src.file, src)
    rows, counters = evaluate(
        args.chargers,
        args.hours,
        args.seed,
        cfg,
        per_fault=args.per_fault,
        interval=args.interval,
    )
    normals: dict[str, dict[str, int]] = {}
    # Reboots silent past the offline timeout: findings by the contract, not false.
    expected: dict[str, int] = {}
    if not args.no_normals:
        normals = normal_scenarios(
            max(4, args.chargers // 3),
            min(args.hours, 6.0),
            args.seed,
            cfg,
            interval=args.interval,
            expected=expected,
        )
    false_alarms = {k: {f: n for f, n in v.items() if n} for k, v in normals.items()}
    passed = all(r.passed for r in rows) and not any(false_alarms.values())
    if args.json:
        out = {
            "chargers": args.chargers,
            "hours": args.hours,
            "seed": args.seed,
            "per_fault": args.per_fault,
            "interval_s": args.interval,
            "detectors": [r.as_dict() for r in rows],
            # Detectors the simulator has no fault for: their rows carry no truth.
            "not_injectable": list(NOT_INJECTABLE),
            "counters": counters,
            "expected_offline_on_normals": expected,
            "passed": passed,
        }
        json.dump(out, sys.stdout, indent=2)
        print()
    else:
        print(format_table(rows))
        if normals:
            print("\nfalse findings on fault-free scenarios (hard normal cases):")
            for name, bad in false_alarms.items():
                due = expected.get(name, 0)
                note = (
                    f" (charger_offline expected: {due}, reboots past the timeout)" if due else ""
                )
                print(f"  {name:22} {bad or 'none'}{note}")
        print(f"counters: {counters}")
        print("all targets met" if passed else "SOME TARGETS MISSED")
    return 0 if passed else 1


def _report_alerts(args: argparse.Namespace) -> int:
    from chargewatch.evaluation.alert_eval import (  # noqa: PLC0415
        ALERT_CADENCES,
        evaluate_alerts,
        format_alert_table,
    )

    cadences = args.cadence or list(ALERT_CADENCES)
    unknown = [c for c in cadences if c not in ALERT_CADENCES]
    if unknown:
        print(f"unknown cadence {unknown}; expected {list(ALERT_CADENCES)}", file=sys.stderr)
        return 2
    results = evaluate_alerts(cadences, args.chargers, args.hours, args.seed, args.rounds)
    passed = all(r.passed for res in results for r in res.rows) and not any(
        res.false_pages for res in results
    )
    if args.json:
        out = {
            "chargers": args.chargers,
            "hours": args.hours,
            "seed": args.seed,
            "rounds": args.rounds,
            "cadences": [
                {
                    "cadence": res.cadence,
                    "rows": [r.as_dict() for r in res.rows],
                    "false_pages": [
                        {"alertname": f.alertname, "charger": f.charger, "connector": f.connector}
                        for f in res.false_pages
                    ],
                    "clean_info_alerts": res.clean_info,
                    "rejected_by_reason": res.rejected_by_reason,
                    "messages": res.messages,
                }
                for res in results
            ],
            "passed": passed,
        }
        json.dump(out, sys.stdout, indent=2)
        print()
    else:
        print(format_alert_table(results))
        print("all targets met" if passed else "SOME TARGETS MISSED")
    return 0 if passed else 1
