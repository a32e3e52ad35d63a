"""Compare the session engine with ground truth (dataset plans); used by bench and tests."""

from __future__ import annotations

__all__ = ["evaluate"]

from collections import Counter
from typing import Any

import numpy as np

from chargewatch.billing.sessions import SessionConfig, SessionEngine, SessionRecord
from chargewatch.fleet import ConnectorIndex
from chargewatch.simulator.datasets import Plan, render

#: Quality flags each injected fault must raise on its session.
EXPECTED_FLAGS: dict[str, tuple[str, ...]] = {
    "register_reset": ("register_reset",),
    "no_register": ("estimated",),
    "register_dropout": (),
    "late_offline": ("late_data",),
    "missing_stop": ("inferred_stop",),
    "kwh_as_wh": ("unit_corrected",),
}


def evaluate(
    plans: list[Plan],
    *,
    interval_s: float = 60.0,
    step_s: float = 300.0,
    config: SessionConfig | None = None,
) -> dict[str, Any]:
    """Run plans through the engine; return figures (counts, energy and idle errors)."""
    cfg = config or SessionConfig()
    index = ConnectorIndex()
    stream = render(plans, index, interval_s)
    engine = SessionEngine(index, cfg)
    final: dict[str, SessionRecord] = {}
    emitted = 0
    for now, batch, events in stream.steps(step_s):
        for out in engine.update(batch, events, now):
            emitted += 1
            final[out.session_id] = out
    by_tx = {(r.charger_id, r.connector_id, r.transaction_id): r for r in final.values()}
    abs_err = []
    rel_err = []
    idle_err = []
    missing = 0
    flag_miss: Counter[str] = Counter()
    worst: list[tuple[float, str, str]] = []
    per_fault: dict[str, list[float]] = {}
    for p in plans:
        rec = by_tx.get((p.charger, p.connector, p.transaction_id))
        if rec is None:
            missing += 1
            continue
        err = rec.energy_wh - p.energy_wh
        rel = abs(err) / p.energy_wh * 100.0 if p.energy_wh > 0 else (0.0 if err == 0 else 100.0)
        abs_err.append(abs(err))
        rel_err.append(rel)
        idle_err.append(abs(rec.idle_s - p.idle_s(cfg.charging_threshold_w)))
        fault = p.faults[0] if p.faults else "none"
        per_fault.setdefault(fault, []).append(rel)
        for f in EXPECTED_FLAGS.get(fault, ()):
            if f not in rec.quality:
                flag_miss[f"{fault}:{f}"] += 1
        worst.append((rel, rec.session_id, fault))
    ae = np.array(abs_err) if abs_err else np.zeros(1)
    re = np.array(rel_err) if rel_err else np.zeros(1)
    ie = np.array(idle_err) if idle_err else np.zeros(1)
    worst.sort(reverse=True)
    return {
        "sessions_truth": len(plans),
        "sessions_found": len(plans) - missing,
        "records_final": len(final),
        "records_emitted": emitted,
        "extra_sessions": len(final) - (len(plans) - missing),
        "energy_abs_err_wh": {
            "max": float(ae.max()),
            "p99": float(np.percentile(ae, 99)),
            "within_1wh_pct": float((ae <= 1.0).mean() * 100),
        },
        "energy_rel_err_pct": {
            "max": float(re.max()),
            "p99": float(np.percentile(re, 99)),
            "within_0_5pct_pct": float((re <= 0.5).mean() * 100),
        },
        "idle_abs_err_s": {
            "max": float(ie.max()),
            "p99": float(np.percentile(ie, 99)),
            # Period boundaries are interpolated between samples: one interval is the resolution.
            "within_interval_pct": float((ie <= interval_s).mean() * 100),
        },
        "per_fault": {
            k: {
                "n": len(v),
                "max_rel_err_pct": float(max(v)),
                "within_0_5pct": sum(1 for x in v if x <= 0.5),
            }
            for k, v in sorted(per_fault.items())
        },
        "flags_missing": dict(flag_miss),
        "worst": [{"rel_err_pct": w[0], "session_id": w[1], "fault": w[2]} for w in worst[:5]],
        "rejected": len(engine.drain_rejected()),
    }
