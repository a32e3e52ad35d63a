"""Offline replay of a capture through the same pipeline, with capture time as the clock."""

from __future__ import annotations

__all__ = ["ReplayResult", "replay"]

import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import orjson

from chargewatch.alerting import AlertEngine, Transition, default_rules_dir
from chargewatch.billing.tariff_files import load_tariff_dir
from chargewatch.collector.alert_stage import (
    AlertStage,
    detector_signals,
    ocpp_versions,
    transition_row,
)
from chargewatch.collector.allocator import keep_freed_batch_memory
from chargewatch.collector.cdr_issuer import CdrIssuer, check_tariff_references
from chargewatch.collector.pipeline import Pipeline, Stats
from chargewatch.collector.service import _ocpp_decoder
from chargewatch.collector.session_stage import SessionsJsonl, SessionStage, as_rejections
from chargewatch.collector.signature_alerts import SignatureFindings
from chargewatch.config.settings import OcppConfig
from chargewatch.detectors import DetectorConfig, DetectorSet
from chargewatch.ingest.capture import read_capture
from chargewatch.model.fleet import ConnectorIndex, Fleet
from chargewatch.sessions.session_engine import SessionConfig, SessionEngine
from chargewatch.sessions.session_types import rfc3339
from chargewatch.state.fleet_state import FleetState
from chargewatch.storage.deadletter import rejection_record
from chargewatch.storage.ledger import Ledger
from chargewatch.storage.linefile import LineFile
from chargewatch.storage.uptime_source import write_uptime_jsonl

log = logging.getLogger(__name__)

# Messages are processed in chunks that span at most this much capture time, so
# stages see time advance much as they did live: rule groups evaluate every
# 30 s and `for:` lasts minutes, so 5 s of clock granularity changes no alert,
# while far fewer, larger batches keep the vectorised stages fast.
CHUNK_SECONDS = 5.0
CHUNK_MESSAGES = 20_000
# A live collector ticks every second whether frames come or not; replay ticks
# through the capture's quiet stretches at this step, so a silence (a charger
# offline, a stale meter) is judged when it becomes true, not at the next frame
# of the capture (which may come from another charger, hours later). As coarse
# as a chunk: rules evaluate every 30 s.
TICK_SECONDS = CHUNK_SECONDS
#: Far into a quiet stretch, replay ticks every 1/QUIET_TICK_SHARE of it (see idle()).
QUIET_TICK_SHARE = 240.0


@dataclass
class ReplayResult:
    stats: Stats
    seconds: float  # wall time spent
    capture_span_s: float  # capture time covered
    unpriced: int = 0  # finished sessions without a CDR (no tariff, or it failed)
    unpriced_by_reason: dict[str, int] = field(default_factory=dict)
    tariff_warnings: list[str] = field(default_factory=list)  # accepted with these
    open_at_end: int = 0  # sessions still open when the capture ended (open_sessions.jsonl)


def write_open_sessions(path: Path, open_now: list[dict[str, Any]]) -> int:
    """``open_sessions.jsonl``: the sessions a capture ended in (no stop seen):
    not billed, so not in sessions.jsonl or cdrs.jsonl, but what they had come
    to -- a capture cut mid-charge is where a user looks for them. One line
    each, ordered by start then id, so two replays give the same file."""
    rows = sorted(open_now, key=lambda r: (r["start"], r["session_id"]))
    with path.open("wb") as fh:
        for r in rows:
            fh.write(orjson.dumps({**r, "start": rfc3339(r["start"])}) + b"\n")
    return len(rows)


def replay(
    capture: Path | Iterable[tuple[float, str, bytes]],
    out: Path,
    *,
    fleet: Fleet | None = None,
    lines_file: Path | None = None,
    rules: Path | None = None,
    detector_config: DetectorConfig | None = None,
    tariffs: Path | None = None,
    session_config: SessionConfig | None = None,
    unknown_tariffs: str = "fail",
    receipt_base_url: str = "",
    ocpp_config: OcppConfig | None = None,
    max_future_s: float = 86_400.0,
) -> ReplayResult:
    keep_freed_batch_memory()  # as the service does
    fleet = fleet or Fleet.empty()
    # As run does, before any output is written: an unknown tariff id fails
    # (ConfigError) unless unknown_tariffs is "warn" (billing.unknown_tariffs).
    tariff_map = load_tariff_dir(tariffs) if tariffs else {}
    references = check_tariff_references(fleet, tariff_map, unknown=unknown_tariffs)
    warnings = [str(w) for t in tariff_map.values() for w in t.warnings]
    out.mkdir(parents=True, exist_ok=True)
    index = ConnectorIndex(fleet)
    # The ledger is part of the output: replaying the same capture into it
    # again gives the same rows (idempotent writes), and reports can read it.
    ledger = Ledger(out / "ledger.sqlite")
    cdrs_out = (out / "cdrs.jsonl").open("w", encoding="utf-8")

    def emit_cdr(line: str) -> None:
        cdrs_out.write(line + "\n")

    # Once per charger and reason, then a summary (below): thousands of
    # sessions of a site without a tariff made as many warnings.
    issuer = CdrIssuer(
        fleet,
        tariff_map,
        ledger=ledger,
        emit=emit_cdr,
        receipt_base_url=receipt_base_url,
        log_repeats=False,
    )
    sessions_jsonl = SessionsJsonl(out / "sessions.jsonl")
    # The config's policy (run's), with the fleet's pinned meter keys.
    engine_config = replace(session_config or SessionConfig(), meter_keys=fleet.meter_keys)
    engine = SessionEngine(index, engine_config)
    findings = SignatureFindings(index)
    sessions = SessionStage(engine, ledger=ledger, listeners=[sessions_jsonl, issuer, findings])
    lines = LineFile(lines_file) if lines_file else None
    state = FleetState(index)
    alerts_out = (out / "alerts.jsonl").open("wb")

    def record_transitions(transitions: list[Transition]) -> None:
        for t in transitions:
            alerts_out.write(orjson.dumps(t.to_json(), default=str) + b"\n")
        ledger.write_alert_transitions(transition_row(t) for t in transitions)

    detectors = DetectorSet(detector_config, index=index)
    ocpp = _ocpp_decoder(index, ocpp_config, max_future_s)
    alerts = AlertStage(
        AlertEngine(rules or default_rules_dir(), index),
        state,
        # The same frame as live (service.py), so rules behave the same.
        providers=[
            detector_signals(detectors, index),
            ocpp_versions(ocpp, index),
            findings.signals,
            sessions.signals,
        ],
        on_transitions=record_transitions,
        deadlines=detectors,
    )
    pipeline = Pipeline(
        index,
        lines=lines,
        ocpp=ocpp,
        stages=[state, detectors, alerts, sessions],
        max_future_s=max_future_s,
    )
    messages = read_capture(capture) if isinstance(capture, Path) else capture
    t0 = time.perf_counter()
    first = last = None
    with (out / "rejected.jsonl").open("wb") as rejected:

        def session_rejections() -> None:
            """The session engine's rejections (a stop without its session, ...):
            written beside the decoder's and counted in the summary as they are."""
            stats = pipeline.stats
            for r in as_rejections(sessions.rejected):
                rejected.write(orjson.dumps(rejection_record(r), default=str) + b"\n")
                stats.rejected += 1
                stats.rejected_by_reason[r.reason] = stats.rejected_by_reason.get(r.reason, 0) + 1
            sessions.rejected.clear()

        def tick(now: float) -> None:
            before = pipeline.rejected
            pipeline.tick(now)
            # The tick expires the OCPP decoder's pending CALLs and early answers
            # (an orphan CALLRESULT is rejected then): its rejections are output too.
            if pipeline.rejected is not before:
                for r in pipeline.rejected:
                    rejected.write(orjson.dumps(rejection_record(r), default=str) + b"\n")
            session_rejections()

        def run(chunk: list[tuple[str, bytes, float]], now: float) -> None:
            pipeline.process(chunk, now)
            # Status history, as the service keeps it (uptime reads it).
            ledger.write_port_status(state.take_changes()["connectors"], now=now)
            for r in pipeline.rejected:
                rejected.write(orjson.dumps(rejection_record(r), default=str) + b"\n")
            tick(now)

        def settle(end: float) -> None:
            """The capture has ended: what waits for a later frame never gets one.
            A start held for the CSMS's answer is released and a stop still
            waiting for its start is rejected, and so is a message held for its
            charger clock's offset, as the live service does once its timeouts
            pass; liveness is not judged past the last frame."""
            before = pipeline.rejected
            pipeline.settle(end + ocpp.pending_timeout, end)
            # As in tick: only a new list is new rejections; the last batch's
            # were written by run (they were written twice when the capture
            # ended on a rejected message).
            if pipeline.rejected is not before:
                for r in pipeline.rejected:
                    rejected.write(orjson.dumps(rejection_record(r), default=str) + b"\n")
            pipeline.rejected = []
            # Just past the wait: a stop waits late_after_s inclusive.
            sessions.tick(end + engine.config.late_after_s + TICK_SECONDS)
            # Messages held for a charger clock's offset will not see it confirmed.
            engine.give_up_held()
            sessions.rejected += engine.drain_rejected()
            session_rejections()

        def idle(since: float, until: float) -> None:
            """Tick through a quiet stretch of the capture, as live ticks would.

            Every TICK_SECONDS at first; far into a silence the steps grow to
            1/QUIET_TICK_SHARE of the silence so far, so a capture with
            week-long gaps (excerpts, sparse chargers) replays in seconds, not
            minutes (a 7-day gap cost 87 s of CPU at 5 s steps). Deadlines up to
            20 min into a silence (offline at 2 x 900 s + 30 s is 1,830 s: 7.6 s
            steps) are seen as at 5 s; later ones within 0.4 % of their time.
            Between the steps, a tick at each deadline the alert stage waits for
            (``next_wake``: a charger's offline timeout), as the live collector's
            timer wakes for it: ChargerOffline fires at the deadline itself.
            """
            t, last = since + TICK_SECONDS, since
            while True:
                wake = alerts.next_wake()
                if last < wake < min(t, until):
                    tick(wake)
                    last = wake
                    continue
                if t >= until:
                    return
                tick(t)
                last = t
                t += max(TICK_SECONDS, (t - since) / QUIET_TICK_SHARE)

        chunk: list[tuple[str, bytes, float]] = []
        chunk_start = 0.0
        wake = alerts.next_wake()
        for recv, topic, payload in messages:
            if first is None:
                first = chunk_start = recv
            # A chunk also ends before the first message past a deadline, so
            # that deadline is ticked at its own time (idle), not at the end
            # of a chunk up to CHUNK_SECONDS later.
            if chunk and (
                recv - chunk_start >= CHUNK_SECONDS
                or len(chunk) >= CHUNK_MESSAGES
                or chunk_start < wake < recv
            ):
                run(chunk, chunk[-1][2])
                idle(chunk[-1][2], recv)
                wake = alerts.next_wake()
                chunk = []
                chunk_start = recv
            chunk.append((topic, payload, recv))
            last = recv
        if chunk:
            run(chunk, chunk[-1][2])
        if last is not None:
            settle(last)
    if last is not None:
        sessions.close(last + engine.config.late_after_s + TICK_SECONDS)
    sessions_jsonl.write()
    still_open = write_open_sessions(out / "open_sessions.jsonl", engine.open_sessions())
    cdrs_out.close()
    alerts_out.close()
    # Per-port uptime over the capture window, from the statuses and alerts just recorded.
    write_uptime_jsonl(ledger, out / "uptime.jsonl", first, last, fleet=fleet)
    ledger.close()
    if lines is not None:
        lines.stop()
    if issuer.unpriced:
        log.warning(
            "%d sessions unpriced (%s); the first of each charger and reason is logged above",
            issuer.unpriced,
            ", ".join(f"{k}: {v}" for k, v in sorted(issuer.unpriced_by_reason.items())),
        )
    span = (last - first) if first is not None and last is not None else 0.0
    return ReplayResult(
        pipeline.stats,
        time.perf_counter() - t0,
        span,
        unpriced=issuer.unpriced,
        unpriced_by_reason=dict(issuer.unpriced_by_reason),
        tariff_warnings=warnings + [str(p) for p in references],
        open_at_end=still_open,
    )
