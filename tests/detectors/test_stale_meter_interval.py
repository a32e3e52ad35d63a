"""stale_telemetry judged by the meter intervals the CSMS set: OCPP 1.6 frames
through the decoder, the detectors and the shipped rules, in 30 s batches."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from chargewatch.alerting import AlertEngine
from chargewatch.alerting.engine import default_rules_dir
from chargewatch.detectors import DetectorSet
from chargewatch.detectors.params import DetectorConfig
from chargewatch.ingest.decode_ocpp import OcppDecoder
from chargewatch.model.decoding import DecodeSink
from chargewatch.model.fleet import ChargerSpec, ConnectorIndex, Fleet

T0 = 1_800_000_000.0
EVAL_S = 30.0
START = T0 + 120.0  # the session starts here
Frames = list[tuple[float, str, list[Any]]]  # recv, source (cp/csms), frame


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat().replace("+00:00", "Z")


def _boot(until: float) -> Frames:
    """Boot, then a heartbeat every 60 s up to ``until``: the charger is online."""
    boot = {"chargePointVendor": "V", "chargePointModel": "M"}
    answer = {"status": "Accepted", "currentTime": _iso(T0), "interval": 60}
    frames: Frames = [
        (T0, "cp", [2, "b", "BootNotification", boot]),
        (T0 + 0.2, "csms", [3, "b", answer]),
    ]
    t, k = T0 + 60.0, 0
    while t < until:
        frames.append((t + 0.3, "cp", [2, f"h{k}", "Heartbeat", {}]))
        t, k = t + 60.0, k + 1
    return frames


def _session(until: float) -> Frames:
    """Boot (heartbeats up to ``until``), then a charging session from START."""
    start = {"connectorId": 1, "idTag": "TAG1", "meterStart": 0, "timestamp": _iso(START)}
    charging = {"connectorId": 1, "errorCode": "NoError", "status": "Charging"}
    return [
        *_boot(until),
        (START, "cp", [2, "st", "StartTransaction", start]),
        (START + 0.2, "csms", [3, "st", {"transactionId": 7, "idTagInfo": {"status": "Accepted"}}]),
        (START + 0.5, "cp", [2, "sn", "StatusNotification", charging]),
    ]


def _told(t: float, seconds: int, answer: str = "Accepted", msg: str = "c") -> Frames:
    """The CSMS sets MeterValueSampleInterval; the charger answers."""
    call = {"key": "MeterValueSampleInterval", "value": str(seconds)}
    return [
        (t, "csms", [2, msg, "ChangeConfiguration", call]),
        (t + 0.4, "cp", [3, msg, {"status": answer}]),
    ]


def _samples(times: list[float]) -> Frames:
    out: Frames = []
    for k, t in enumerate(times):
        values = [
            {"value": str(round(2000 * (t - START) / 3600)), "unit": "Wh"},
            {"value": "7200", "measurand": "Power.Active.Import", "unit": "W"},
        ]
        mv = {"connectorId": 1, "transactionId": 7,
              "meterValue": [{"timestamp": _iso(t), "sampledValue": values}]}  # fmt: skip
        out.append((t, "cp", [2, f"m{k}", "MeterValues", mv]))
    return out


def _run(
    frames: Frames, end: float, config: DetectorConfig | None = None
) -> tuple[list[Any], list[Any]]:
    """Stale findings and StaleTelemetry transitions, decoding and detecting in
    30 s batches and evaluating the shipped rules after each, as live."""
    index = ConnectorIndex(Fleet({}, {"CP1": ChargerSpec("CP1", site="s", max_power_w=22e3)}))
    decoder = OcppDecoder(index)
    ds = DetectorSet(config, index=index)
    engine = AlertEngine(default_rules_dir(), index)
    frames = sorted(frames, key=lambda f: f[0])
    transitions: list[Any] = []
    i, now = 0, T0
    while now < end:
        now += EVAL_S
        sink = DecodeSink()
        while i < len(frames) and frames[i][0] <= now:
            recv, source, frame = frames[i]
            payload = json.dumps(frame).encode()
            decoder.decode(f"ocpp/1.6/CP1/{source}", "1.6", "CP1", source, payload, recv, sink)
            i += 1
        assert not sink.rejects, sink.rejects
        ds.on_batch(sink.meter.build(), sink.events, now)
        transitions += engine.evaluate(now, ds.signals)
    stale = [f for f in ds.findings if f.fault == "stale_telemetry"]
    return stale, [t for t in transitions if t.labels.get("alertname") == "StaleTelemetry"]


@pytest.mark.parametrize("interval", [10, 60, 300])
def test_told_interval_judges_the_first_samples_and_the_silence(interval: int) -> None:
    # silence_s low, so the cadence decides, not the floor. Three samples (too few
    # gaps to learn from), one of them lost in between (a gap of 2 intervals +
    # 1 s: normal), then the meter values stop while heartbeats go on.
    config = DetectorConfig(defaults={"stale_telemetry": {"silence_s": 20.0}})
    t1 = START + interval
    times = [t1, t1 + interval, t1 + 3 * interval + 1]
    last = times[-1]
    budget = 2 * interval + 30.0
    frames = _session(last + budget + 600) + _told(T0 + 30, interval) + _samples(times)
    stale, _ = _run(frames, last + budget + 300, config)
    # Offsets from the last sample: approx on epoch seconds would allow ~30 min.
    assert [(f.start - last, f.detected - last) for f in stale] == [(0.0, budget)]
    assert stale[0].evidence["timeout_s"] == pytest.approx(budget)


def _ten_then_300(answer: str) -> tuple[Frames, float]:
    """10 s sampling for 10 min (told 10 s), then the CSMS asks for 300 s; the
    charger samples every 300 s (+2 s of jitter) for 40 minutes if it accepted."""
    change = START + 600
    times = [START + 10.0 * k for k in range(1, 60)]
    times += [change + 302.0 * k for k in range(1, 9)]
    end = times[-1] + 200
    frames = _session(end + 600) + _told(T0 + 30, 10, msg="c0")
    frames += _told(change, 300, answer) + _samples(times)
    return frames, end


def test_lengthened_interval_accepted_mid_session_pages_nobody_rejected_keeps_the_old() -> None:
    frames, end = _ten_then_300("Accepted")
    stale, alerts = _run(frames, end)
    assert stale == [] and alerts == []
    # Rejected: the charger was told to keep 10 s, so a 302 s gap is a silence,
    # until three of its last five gaps are 302 s and the learned cadence turns.
    frames, end = _ten_then_300("Rejected")
    stale, alerts = _run(frames, end)
    assert len(stale) == 3
    assert all(f.evidence["timeout_s"] == pytest.approx(300.0) for f in stale)


def test_shortened_interval_is_judged_at_once_not_after_the_history_turns_over() -> None:
    # 299 s sampling learned (told 300 s), then the CSMS asks for 10 s: two 10 s
    # samples and the values stop. The silence is judged by the new cadence (the
    # 300 s floor), not by the old 299 s median (628 s).
    change = START + 299 * 6 + 5
    times = [START + 299.0 * k for k in range(1, 7)] + [change + 10.0 * k for k in range(1, 3)]
    last = times[-1]
    frames = _session(last + 1200) + _told(T0 + 30, 300, msg="c0") + _told(change, 10)
    frames += _samples(times)
    stale, _ = _run(frames, last + 900)
    assert [(f.start - last, f.detected - last) for f in stale] == [(0.0, 300.0)]


def test_told_aligned_interval_makes_an_idle_reporters_cadence_known_at_once() -> None:
    # Idle (Available), clock-aligned values every 900 s as told, then they stop.
    # Learned alone, the idle cadence needs 3 gaps (45 min) before a silence
    # counts; told, it counts from the first idle value.
    call = {"key": "ClockAlignedDataInterval", "value": "900"}
    available = {"connectorId": 1, "errorCode": "NoError", "status": "Available"}
    frames: Frames = [
        *_boot(T0 + 5000),
        (T0 + 1, "cp", [2, "a0", "StatusNotification", available]),
        (T0 + 30, "csms", [2, "c", "ChangeConfiguration", call]),
        (T0 + 30.4, "cp", [3, "c", {"status": "Accepted"}]),
    ]
    times = [T0 + 900.0, T0 + 1800.0]
    for k, t in enumerate(times):
        sv = [{"value": "5000", "unit": "Wh", "context": "Sample.Clock"},
              {"value": "0", "measurand": "Power.Active.Import", "unit": "W",
               "context": "Sample.Clock"}]  # fmt: skip
        mv = {"connectorId": 1, "meterValue": [{"timestamp": _iso(t), "sampledValue": sv}]}
        frames.append((t + 0.5, "cp", [2, f"m{k}", "MeterValues", mv]))
    last = times[-1] + 0.5
    stale, _ = _run(frames, T0 + 4800)
    assert [(f.start - last, f.detected - last) for f in stale] == [(0.0, 1830.0)]
