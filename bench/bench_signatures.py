"""Cost of checking a session's signed readings (OCMF); prints one JSON object.

    PYTHONPATH=. python -m bench.bench_signatures [--sessions 300]

Each session has a signed start and end record (ECDSA secp256r1 / SHA-256, the
curve KEBA and DZG meters sign with), made here with keys of the bench's own,
all different, so the per-record cache never answers: the figure is the cold
cost of one session's check (two pyocmf parses and two signature checks), what
a collector pays once per signed session. A cached re-check (a revised record)
is reported beside it. Wall time follows the machine's load: run it on an idle one.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

from chargewatch.ingest.ocpp.signed import decode_signed
from chargewatch.model.fleet import MeterKey
from chargewatch.sessions.signatures import check_session
from tests.billing.ocmf_kit import Meter

T0, T1 = "2026-03-02T08:00:00,000+0000 S", "2026-03-02T09:30:00,000+0000 S"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sessions", type=int, default=300)
    n = ap.parse_args().sessions
    check_session([], charger="warm")  # nothing to import for an unsigned one
    sessions = []
    for i in range(n):
        m = Meter(serial=f"M{i}")
        recs = [m.record(2 * i, ("B", "1.000", T0)), m.record(2 * i + 1, ("E", "2.500", T1))]
        sessions.append(([decode_signed(r, context="") for r in recs], MeterKey(m.public_hex)))
    check_session(sessions[0][0], charger="CP", keys=(sessions[0][1],))  # imports pyocmf
    cold, warm = [], []
    for signed, key in sessions[1:]:
        t = time.perf_counter()
        got = check_session(signed, charger="CP", keys=(key,), billed_wh=1500.0)
        cold.append(time.perf_counter() - t)
        assert got.status == "verified", got.reason
        t = time.perf_counter()
        check_session(signed, charger="CP", keys=(key,), billed_wh=1500.0)
        warm.append(time.perf_counter() - t)
    print(
        json.dumps(
            {
                "sessions": len(cold),
                "check_session_cold_ms_median": round(statistics.median(cold) * 1e3, 3),
                "check_session_cold_ms_p99": round(sorted(cold)[int(0.99 * len(cold))] * 1e3, 3),
                "check_session_cached_ms_median": round(statistics.median(warm) * 1e3, 3),
                "sessions_per_s_cold": round(1 / statistics.mean(cold), 1),
            }
        )
    )


if __name__ == "__main__":
    main()
