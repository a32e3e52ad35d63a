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
checkout's code (e.g. main, for a before/after).
"""

from __future__ import annotations

import argparse
import json
import os
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


def wall_times(args: tuple[str, ...], runs: int, root: Path) -> list[float]:
    """Wall seconds of ``runs`` fresh ``python -m chargewatch ARGS`` processes."""
    cmd = [sys.executable, "-m", "chargewatch", *args]
    env = {**os.environ, "PYTHONPATH": str(root)}
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # see the module docstring
    # Run in the checkout: ``-m`` puts the working directory first on the path.
    subprocess.run(cmd, capture_output=True, check=True, env=env, cwd=root)  # warm caches
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        subprocess.run(cmd, capture_output=True, check=True, env=env, cwd=root)
        times.append(time.perf_counter() - t)
    return times


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--root", type=Path, default=ROOT, help="checkout whose code is timed")
    args = ap.parse_args()
    out: dict[str, object] = {"runs": args.runs, "limit_s": LIMIT_S, "root": str(args.root)}
    for name, argv in COMMANDS.items():
        times = wall_times(argv, args.runs, args.root)
        out[name] = {
            "command": "chargewatch " + " ".join(Path(a).name if "/" in a else a for a in argv),
            "median_s": round(statistics.median(times), 3),
            "runs_s": [round(t, 3) for t in times],
        }
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
