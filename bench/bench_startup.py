"""Start-up time of the ``chargewatch`` command line; prints one JSON object.

    PYTHONPATH=. python -m bench.bench_startup [--runs 5] [--root CHECKOUT]

Each command runs ``--runs`` times in a fresh ``python -m chargewatch``
process; the figure is the median wall time (process start to exit, so the
interpreter's own start-up is included), beside the 0.3 s limit for
``--help`` and ``tariff price``. ``rules check rules/`` is reported for
reference. One untimed run first warms the file cache and writes the byte
code, as an installed package has it (pip compiles at install) and a checkout
has it after its first run; PYTHONDONTWRITEBYTECODE is dropped for the
commands, or every start would time the compiler. ``--root`` times another
checkout's code (e.g. main, for a before/after). Wall time follows the
machine's load, so CPU time and the bare interpreter's times are reported too.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LIMIT_S = 0.3
COMMANDS: dict[str, tuple[str, ...]] = {
    "help": ("--help",),
    "tariff_price": (
        "tariff",
        "price",
        "--tariff",
        str(ROOT / "tariffs" / "time_of_use.json"),
        "--cdr",
        str(ROOT / "tests" / "billing" / "testdata" / "ocpi" / "cdr_example.json"),
    ),
    "rules_check": ("rules", "check", str(ROOT / "rules")),
}


def _cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def timed_runs(cmd: list[str], runs: int, root: Path) -> tuple[list[float], list[float]]:
    """Wall and CPU seconds (user + system) of ``runs`` fresh processes running ``cmd``."""
    env = {**os.environ, "PYTHONPATH": str(root)}
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # see the module docstring
    # Run in the checkout: ``-m`` puts the working directory first on the path.
    subprocess.run(cmd, capture_output=True, check=True, env=env, cwd=root)  # warm caches
    wall, cpu = [], []
    for _ in range(runs):
        t, c = time.perf_counter(), _cpu()
        subprocess.run(cmd, capture_output=True, check=True, env=env, cwd=root)
        wall.append(time.perf_counter() - t)
        cpu.append(_cpu() - c)
    return wall, cpu


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--root", type=Path, default=ROOT, help="checkout whose code is timed")
    args = ap.parse_args()
    out: dict[str, object] = {"runs": args.runs, "limit_s": LIMIT_S, "root": str(args.root)}
    for name, argv in COMMANDS.items():
        cmd = [sys.executable, "-m", "chargewatch", *argv]
        wall, cpu = timed_runs(cmd, args.runs, args.root)
        out[name] = {
            "command": "chargewatch " + " ".join(Path(a).name if "/" in a else a for a in argv),
            "median_s": round(statistics.median(wall), 3),
            "runs_s": [round(t, 3) for t in wall],
            # CPU time moves less than wall time when others load the machine.
            "cpu_median_s": round(statistics.median(cpu), 3),
        }
    # The interpreter alone: the share of the limit that is not chargewatch's,
    # and a sign of how loaded the machine was.
    wall, cpu = timed_runs([sys.executable, "-c", "pass"], args.runs, args.root)
    out["python_bare"] = {
        "median_s": round(statistics.median(wall), 3),
        "cpu_median_s": round(statistics.median(cpu), 3),
    }
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
