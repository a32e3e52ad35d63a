"""Sessions of chargers whose clock is off, through the ten minutes of doubt
before an offset behind is confirmed; prints JSON figures.

PYTHONPATH=. python bench/clock_doubt.py

Scenarios (the captures of tests/collector/test_replay_clock_behind.py and
tests/billing/test_clock_doubt.py), each against the same traffic from a
right clock: session records, start and stop error (s), energy (Wh) and the
CDR or time-of-use price. ``replay``: the whole collector replay (no
restart); ``restart``/``handover``: the session stage restarted from its
ledger, or the charger moved, five minutes into the doubt; ``waiting_stop``:
a go-e ``-1`` stop received in the doubt that waits for its start.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

from chargewatch.sessions.session_engine import SessionRecord
from tests.billing.sessionkit import T0, final
from tests.billing.test_clock_doubt import _charge_6_min, _Run, _stop_after_doubt
from tests.billing.test_clock_rebase import BEHIND, _power_only, _price
from tests.collector.test_replay_clock_behind import _outputs


def _compare(want: list[SessionRecord], got: list[SessionRecord]) -> dict[str, Any]:
    w = sorted(final(want).values(), key=lambda r: r.start)
    g = sorted(final(got).values(), key=lambda r: r.start)
    return {
        "records_right": len(w),
        "records_behind": len(g),
        "start_error_s": round(g[0].start - w[0].start, 1),
        "stop_error_s": round(max(r.stop for r in g) - max(r.stop for r in w), 1),
        "energy_wh_right": round(sum(r.energy_wh for r in w), 1),
        "energy_wh_behind": round(sum(r.energy_wh for r in g), 1),
        "price_eur_right": str(sum(_price(r) for r in w)),
        "price_eur_behind": str(sum(_price(r) for r in g)),
        "quality_behind": sorted({f for r in g for f in r.quality}),
    }


def main() -> None:
    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        (base / "right").mkdir()
        (base / "behind").mkdir()
        right = _outputs(base / "right", 0.0)
        behind = _outputs(base / "behind", BEHIND)
        out["replay"] = {
            "records_right": len(right["sessions.jsonl"]),
            "records_behind": len(behind["sessions.jsonl"]),
            "energy_wh_right": sum(x["energy_wh"] for x in right["api"]),
            "energy_wh_behind": sum(x["energy_wh"] for x in behind["api"]),
            "cdr_energy_right": sum(x["total_energy"] for x in right["cdrs.jsonl"]),
            "cdr_energy_behind": sum(x["total_energy"] for x in behind["cdrs.jsonl"]),
            "cdr_cost_right": [x["total_cost"] for x in right["cdrs.jsonl"]],
            "cdr_cost_behind": [x["total_cost"] for x in behind["cdrs.jsonl"]],
        }
        for hop in ("restart", "handover"):
            for every, register in ((20.0, False), (60.0, True)):
                right_rows = _power_only(0.0, every=every, start_s=0.0, register=register)
                want = _Run(None).feed(right_rows)
                d = base / f"{hop}{every:.0f}"
                d.mkdir()
                got = _Run(d).feed(
                    _power_only(BEHIND, every=every, start_s=0.0, register=register),
                    hop=hop,
                    at=T0 + 300.0,
                )
                out[f"{hop}_{every:.0f}s"] = _compare(want, got)
    rows_r, rows_b = _charge_6_min(0.0), _charge_6_min(BEHIND)
    want = _Run(None).feed(rows_r, _stop_after_doubt(0.0, rows_r))
    got = _Run(None).feed(rows_b, _stop_after_doubt(BEHIND, rows_b))
    out["waiting_stop"] = _compare(want, got)
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
