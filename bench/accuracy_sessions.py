"""Session accuracy on real datasets, clean and with faults; prints JSON figures.

PYTHONPATH=. python bench/accuracy_sessions.py [--limit N]
"""

from __future__ import annotations

import argparse
import json
import time

from chargewatch.core.resources import shared_data_dir
from chargewatch.evaluation.session_accuracy import evaluate
from chargewatch.simulator.dataset_plans import acn_plans, norway_plans, with_faults

DATA = shared_data_dir()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--limit", type=int, default=0, help="first N sessions of each dataset")
    ap.add_argument("--fault-rate", type=float, default=0.3)
    ap.add_argument("--direct", action="store_true", help="bypass OCPP frames and decoder")
    args = ap.parse_args()
    out = {}
    for name, all_plans, interval in (
        ("acn_jpl", acn_plans(DATA / "acn-jpl-sessions-2021.json"), 60.0),
        ("norway", norway_plans(DATA / "norway-residential-sessions.csv"), 300.0),
    ):
        plans = all_plans[: args.limit] if args.limit else all_plans
        for label, pl in (("clean", plans), ("faults", with_faults(plans, args.fault_rate, 7))):
            t0 = time.perf_counter()
            fig = evaluate(pl, interval_s=interval, via_ocpp=not args.direct)
            fig["seconds"] = round(time.perf_counter() - t0, 2)
            out[f"{name}_{label}"] = fig
            print(json.dumps({f"{name}_{label}": fig}), flush=True)


if __name__ == "__main__":
    main()
