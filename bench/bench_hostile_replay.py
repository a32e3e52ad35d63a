"""The hostile capture of tests/acceptance/gen_hostile.py through
``chargewatch replay`` in its own process, beside the same fleet and traffic
without the injected frames: wall time and the child's peak RSS of each
(issue #17: the 5 MB frame and the 10,000-deep frames must cost bounded time
and memory). Limits: the hostile replay within 2x the clean one's time and
+64 MB of its peak RSS.

    PYTHONPATH=. python -m bench.bench_hostile_replay [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from tests.acceptance.gen_hostile import generate

TIME_RATIO_LIMIT = 2.0
RSS_EXTRA_LIMIT_MB = 64.0
TARIFFS = Path(__file__).resolve().parents[1] / "tariffs"


def _replay_child(d: Path) -> tuple[float, float, dict[str, Any]]:
    """Wall seconds, peak RSS (MB) and the summary of one replay in a child."""
    cmd = [sys.executable, "-m", "chargewatch", "--log-level", "ERROR", "replay"]
    cmd += [str(d / "capture.jsonl"), "--out", str(d / f"out-{time.monotonic_ns()}")]
    cmd += ["--fleet", str(d / "fleet.yaml"), "--tariffs", str(TARIFFS)]
    t = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    assert proc.stdout is not None
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t
    if status != 0:
        raise SystemExit(f"replay failed ({status}): {' '.join(cmd)}")
    return wall, usage.ru_maxrss / 1024.0, json.loads(out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args(argv)
    res: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, inject in (("clean", False), ("hostile", True)):
            d = Path(tmp) / name
            generate(d, seed=12, inject=inject)
            runs = [_replay_child(d) for _ in range(args.rounds)]
            walls = sorted(w for w, _, _ in runs)
            res[name] = {
                "capture_mb": round((d / "capture.jsonl").stat().st_size / 2**20, 1),
                "messages": runs[0][2]["messages"],
                "rejected": runs[0][2]["rejected"],
                "wall_s_median": round(walls[len(walls) // 2], 2),
                "wall_s_all": [round(w, 2) for w in walls],
                "peak_rss_mb": round(max(r for _, r, _ in runs), 1),
            }
    ratio = res["hostile"]["wall_s_median"] / res["clean"]["wall_s_median"]
    extra = res["hostile"]["peak_rss_mb"] - res["clean"]["peak_rss_mb"]
    res["time_ratio"] = round(ratio, 2)
    res["rss_extra_mb"] = round(extra, 1)
    res["limits"] = {"time_ratio": TIME_RATIO_LIMIT, "rss_extra_mb": RSS_EXTRA_LIMIT_MB}
    res["ok"] = ratio <= TIME_RATIO_LIMIT and extra <= RSS_EXTRA_LIMIT_MB
    print(json.dumps(res, indent=2))
    return 0 if res["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
