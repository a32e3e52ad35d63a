"""Compare the session engine with ground truth (dataset plans); used by bench and tests."""

from __future__ import annotations

__all__ = ["evaluate"]

from collections import Counter
from collections.abc import Iterator
from typing import Any

import numpy as np

from chargewatch.ingest.decode_ocpp import OcppDecoder
from chargewatch.model.batch import MeterBatch
from chargewatch.model.decoding import DecodeSink
from chargewatch.model.events import Event
from chargewatch.model.fleet import ConnectorIndex
from chargewatch.sessions.session_engine import SessionConfig, SessionEngine, SessionRecord
from chargewatch.simulator.dataset_plans import Plan, ocpp16_capture, render

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
    via_ocpp: bool = False,
) -> dict[str, Any]:
    """Run plans through the engine; return figures (counts, energy and idle errors).

    ``via_ocpp``: render OCPP 1.6 frames and decode them with the OCPP decoder
    (the production path) instead of building the decoder's output directly.
    """
    cfg = config or SessionConfig()
    index = ConnectorIndex()
    steps = (
        _ocpp_steps(plans, index, interval_s, step_s)
        if via_ocpp
        else render(plans, index, interval_s).steps(step_s)
    )
    engine = SessionEngine(index, cfg)
    final: dict[str, SessionRecord] = {}
    emitted = 0
    decode_rejects = 0
    for now, batch, events in steps:
        if isinstance(events, _Rejects):
            decode_rejects += events.n
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
    idle_fault: dict[str, list[float]] = {}
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
        idle_fault.setdefault(fault, []).append(idle_err[-1])
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
                "max_idle_err_s": float(max(idle_fault[k])),
            }
            for k, v in sorted(per_fault.items())
        },
        "flags_missing": dict(flag_miss),
        "worst": [{"rel_err_pct": w[0], "session_id": w[1], "fault": w[2]} for w in worst[:5]],
        "rejected": len(engine.drain_rejected()),
        "decoder_rejected": decode_rejects,
    }


class _Rejects(list[Event]):
    """Events of one step, with the count of frames the decoder rejected in it."""

    n: int = 0


def _ocpp_steps(
    plans: list[Plan], index: ConnectorIndex, interval_s: float, step_s: float
) -> Iterator[tuple[float, MeterBatch, list[Event]]]:
    decoder = OcppDecoder(index)
    frames = ocpp16_capture(plans, interval_s)
    if not frames:
        return
    lo = frames[0][0]
    i = 0
    while i < len(frames):
        end = lo + (int((frames[i][0] - lo) // step_s) + 1) * step_s
        sink = DecodeSink()
        while i < len(frames) and frames[i][0] < end:
            recv, topic, payload = frames[i]
            _, version, charger, source = topic.split("/")
            decoder.decode(topic, version, charger, source, payload, recv, sink)
            i += 1
        decoder.expire(end, sink)
        events = _Rejects(sink.events)
        events.n = len(sink.rejects)
        yield end, sink.meter.build(), events
    yield frames[-1][0] + 30 * 86400.0, MeterBatch.empty(), []
