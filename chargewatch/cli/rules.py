"""``chargewatch rules check`` and ``chargewatch rules test``."""

from __future__ import annotations

import argparse
import sys

# The alerting modules (numpy, the rule engine) are imported by the handlers
# when they run, so building the parser at every ``chargewatch`` start stays cheap.


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    rules = sub.add_parser("rules", help="check alert rule files and run their unit tests")
    rsub = rules.add_subparsers(dest="rules_command", metavar="SUBCOMMAND", required=True)
    check = rsub.add_parser("check", help="validate rule files; print every problem")
    check.add_argument("paths", nargs="+", metavar="DIR_OR_FILE")
    check.set_defaults(func=_check)
    test = rsub.add_parser("test", help="run rule unit tests (promtool test rules format)")
    test.add_argument("files", nargs="+", metavar="FILE")
    test.set_defaults(func=_test)
    signals = rsub.add_parser("signals", help="list the signals rule expressions may use")
    signals.set_defaults(func=_signals)


def _signals(args: argparse.Namespace) -> int:
    from chargewatch.alerting.signals import SIGNALS  # noqa: PLC0415 - see the imports

    # The same catalogue the rule loader checks names against (signals.py).
    print("| signal | kind | unit | meaning |\n|---|---|---|---|")
    for s in SIGNALS.values():
        print(f"| `{s.name}` | {s.kind} | {s.unit} | {s.help} |")
    return 0


def _check(args: argparse.Namespace) -> int:
    from chargewatch.alerting.rulefmt import check_files, rule_files  # noqa: PLC0415

    files = rule_files(args.paths)
    if not files:
        print(f"no rule files in {' '.join(args.paths)}", file=sys.stderr)
        return 1
    groups, problems = check_files(args.paths)
    for p in problems:
        print(p, file=sys.stderr)
    if problems:
        print(f"FAILED: {len(problems)} problem(s) in {len(files)} file(s)", file=sys.stderr)
        return 1
    n = sum(len(g.rules) for g in groups)
    print(f"SUCCESS: {n} rules in {len(groups)} groups, {len(files)} file(s)")
    return 0


def _test(args: argparse.Namespace) -> int:
    from chargewatch.alerting.ruletest import run_test_files, summary  # noqa: PLC0415

    results = run_test_files(args.files)
    for r in results:
        print(f"{'  OK  ' if r.ok else 'FAILED'} {r.file} ({len(r.cases)} tests)")
        if not r.ok:
            print(r.report(), file=sys.stderr)
    s = summary(results)
    if not results:
        print("no test files", file=sys.stderr)
        return 1
    print(f"{s['cases']} tests in {s['files']} file(s), {s['failed']} failed")
    return 1 if s["failed"] else 0
