"""charger_offline from each charger's own heartbeat: OCPP frames through the
decoder, the detectors and the shipped rules, evaluated every 30 s as live."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pytest

from chargewatch.alerting import AlertEngine
from chargewatch.alerting.engine import default_rules_dir
from chargewatch.detectors import DetectorSet
from chargewatch.detectors.params import DetectorConfig
from chargewatch.ingest.decode_ocpp import OcppDecoder
from chargewatch.model.decoding import DecodeSink
from chargewatch.model.events import HeartbeatIntervalEvent, OnlineEvent
from chargewatch.model.fleet import ChargerSpec, ConnectorIndex, Fleet

T0 = 1_800_000_000.0
EVAL_S = 30.0  # the rule group's interval: the collector's evaluation cadence
Frames = list[tuple[float, str, list[Any]]]  # recv, source (cp/csms), frame


def _index() -> ConnectorIndex:
    spec = ChargerSpec("CP1", site="s", max_power_w=22_000.0, connectors=2)
    return ConnectorIndex(Fleet({}, {"CP1": spec}))


def _boot(version: str, interval: int) -> Frames:
    if version == "1.6":
        req = {"chargePointVendor": "V", "chargePointModel": "M"}
    else:
        req = {"chargingStation": {"vendorName": "V", "model": "M"}, "reason": "PowerUp"}
    res = {"status": "Accepted", "currentTime": "2027-01-15T08:00:00Z", "interval": interval}
    return [(T0, "cp", [2, "b1", "BootNotification", req]), (T0 + 0.2, "csms", [3, "b1", res])]


def _configure(version: str, interval: int) -> Frames:
    """The CSMS sets the interval after a boot that left it to the charger (0)."""
    if version == "1.6":
        call = ["ChangeConfiguration", {"key": "HeartbeatInterval", "value": str(interval)}]
        res: dict[str, Any] = {"status": "Accepted"}
    else:
        names = {"component": {"name": "OCPPCommCtrlr"}, "variable": {"name": "HeartbeatInterval"}}
        call = ["SetVariables", {"setVariableData": [{"attributeValue": str(interval), **names}]}]
        res = {"setVariableResult": [{"attributeStatus": "Accepted", **names}]}
    return [
        *_boot(version, 0),
        (T0 + 1, "csms", [2, "c1", *call]),
        (T0 + 1.3, "cp", [3, "c1", res]),
    ]


def _heartbeats(interval: float, until: float, jitter: float = 0.4) -> Frames:
    rng = np.random.default_rng(int(interval))
    times = np.arange(T0 + interval, until, interval)
    times = times + rng.uniform(0, jitter, times.size)
    return [(float(t), "cp", [2, f"h{i}", "Heartbeat", {}]) for i, t in enumerate(times)]


def _run(
    frames: Frames,
    version: str,
    end: float,
    config: DetectorConfig | None = None,
    extra: list[Any] | None = None,
) -> tuple[DetectorSet, list[Any], list[Any]]:
    """Decode and detect in 30 s batches, evaluating the shipped rules after each."""
    index = _index()
    decoder = OcppDecoder(index)
    ds = DetectorSet(config, index=index)
    engine = AlertEngine(default_rules_dir(), index)
    frames = sorted(frames, key=lambda f: f[0])
    transitions: list[Any] = []
    events: list[Any] = []
    i = 0
    now = T0
    while now < end:
        now += EVAL_S
        sink = DecodeSink()
        while i < len(frames) and frames[i][0] <= now:
            recv, source, frame = frames[i]
            topic = f"ocpp/{version}/CP1/{source}"
            decoder.decode(topic, version, "CP1", source, json.dumps(frame).encode(), recv, sink)
            i += 1
        evs = sink.events + [e for e in extra or [] if now - EVAL_S < e.recv <= now]
        events += evs
        ds.on_batch(sink.meter.build(), evs, now)
        transitions += engine.evaluate(now, ds.signals)
    return ds, events, transitions


def _last_hb(frames: Frames) -> float:
    return max(t for t, _, f in frames if f[0] == 2 and f[2] == "Heartbeat")


@pytest.mark.parametrize("interval", [60, 300, 900])
@pytest.mark.parametrize(
    ("version", "how"),
    [("1.6", "boot"), ("2.0.1", "boot"), ("1.6", "config"), ("2.0.1", "config"), ("1.6", "seen")],
)
def test_offline_within_two_intervals_and_30_s(interval: int, version: str, how: str) -> None:
    stop = T0 + 12 * interval  # the heartbeats stop here: the charger is gone
    frames = _heartbeats(interval, stop)
    if how == "boot":
        frames += _boot(version, interval)
    elif how == "config":
        frames += _configure(version, interval)
    end = stop + 3 * interval + 300
    ds, events, transitions = _run(frames, version, end)
    learned = [e.interval_s for e in events if isinstance(e, HeartbeatIntervalEvent)]
    assert learned == ([] if how == "seen" else [float(interval)])
    last = _last_hb(frames)
    budget = 2 * interval + 30.0
    # One finding per connector, both for the same silence; nothing before it
    # (a charger merely between heartbeats is not offline).
    fs = [f for f in ds.findings if f.fault == "charger_offline"]
    # Learned from its heartbeats only ("seen": no BootNotification answer, the
    # charger booted before the capture), no page before the silence either:
    # until its interval is known it is assumed 900 s (or the longest gap).
    assert [f.connector for f in fs] == [0, 1]
    for f in fs:
        # Seen: the median of gaps jittered by up to 0.4 s each.
        assert f.start == pytest.approx(last, abs=1e-6)
        assert f.detected == pytest.approx(last + budget, abs=1.0)
    # The page: one alert for the 2-connector charger, at the first evaluation
    # after the detector's finding (the rule has no `for`: the detector's timeout
    # is the debounce), within the timeout and two evaluations (every 30 s).
    (fired,) = [t for t in transitions if t.state == "firing"]
    assert fired.labels["charger"] == "CP1" and fired.labels["connector"] == "0"
    assert fired.labels["alertname"] == "ChargerOffline"
    assert fs[0].detected <= fired.at <= last + budget + 2 * EVAL_S


def test_no_offline_between_meter_values_and_heartbeats_at_300_s() -> None:
    # 2.0.1 lets a charger skip heartbeats while other messages go: MeterValues
    # every 300 s, a heartbeat only now and then, for hours.
    frames = _boot("2.0.1", 300)
    for k, t in enumerate(np.arange(T0 + 300, T0 + 6 * 3600, 300.0)):
        stamp = datetime.fromtimestamp(float(t), UTC).isoformat()
        mv = {"evseId": 1, "meterValue": [{"timestamp": stamp, "sampledValue": [{"value": 1.0}]}]}
        frames.append((float(t) + 0.3, "cp", [2, f"m{k}", "MeterValues", mv]))
        if k % 7 == 0:
            frames.append((float(t) + 150, "cp", [2, f"h{k}", "Heartbeat", {}]))
    ds, _, transitions = _run(frames, "2.0.1", T0 + 6 * 3600)
    assert [f for f in ds.findings if f.fault == "charger_offline"] == []
    assert transitions == []


def test_charger_that_ignores_its_interval_is_judged_by_its_own_cadence() -> None:
    # Told 60 s, heartbeats every 300 s: after a few, 300 s is believed (no pages).
    frames = _boot("1.6", 60) + _heartbeats(300, T0 + 4 * 3600)
    ds, _, _ = _run(frames, "1.6", T0 + 4 * 3600 - 1)
    offline = [f for f in ds.findings if f.fault == "charger_offline"]
    # The first gaps, before 3 of them were seen, are judged at 60 s: then no more.
    assert offline and max(f.start for f in offline) < T0 + 4 * 300 + 1


def test_retained_online_false_is_immediate_with_no_grace() -> None:
    frames = _boot("1.6", 60) + _heartbeats(60, T0 + 3600)
    will = OnlineEvent("CP1", False, T0 + 1000.5)
    config = DetectorConfig({"charger_offline": {"lwt_grace_s": 0}})
    ds, _, _ = _run(frames, "1.6", T0 + 1100, config, [will])
    fs = [f for f in ds.findings if f.fault == "charger_offline"]
    assert [f.connector for f in fs] == [0, 1]
    assert all(f.detected == will.recv and f.evidence["lwt"] == 1.0 for f in fs)


def test_hourly_heartbeat_of_a_charger_booted_before() -> None:
    # No BootNotification answer in sight (the charger booted before chargewatch
    # started): idle, it sends only its heartbeat, here hourly. The first gap,
    # longer than 2 x the assumed 900 s + 30 s, is one page (nothing tells it
    # from an outage then); the gap seen, its length is believed: no more pages.
    stop = T0 + 6 * 3600
    frames = _heartbeats(3600, stop + 1)
    end = stop + 2 * 3600 + 300
    first = frames[0][0]
    last = _last_hb(frames)
    ds, _, transitions = _run(frames, "1.6", end)
    fs = [f for f in ds.findings if f.fault == "charger_offline"]
    assert [(f.connector, round(f.start - T0)) for f in fs] == [
        (0, round(first - T0)),
        (1, round(first - T0)),
        (0, round(last - T0)),
        (1, round(last - T0)),
    ]
    assert fs[0].detected == pytest.approx(first + 1830, abs=1e-6)
    assert fs[2].detected == pytest.approx(last + 2 * 3600 + 30, abs=1.0)
    assert len([t for t in transitions if t.state == "firing"]) == 2
    # A fleet whose CSMS sets an hour says so: then only the real silence.
    config = DetectorConfig({"charger_offline": {"assumed_interval_s": 3600}})
    ds, _, transitions = _run(frames, "1.6", end, config)
    fs = [f for f in ds.findings if f.fault == "charger_offline"]
    assert [(f.connector, round(f.start - T0)) for f in fs] == [
        (0, round(last - T0)),
        (1, round(last - T0)),
    ]
    assert len([t for t in transitions if t.state == "firing"]) == 1


def test_ocpp_charger_gone_before_its_interval_is_known_is_judged_by_the_assumed_one() -> None:
    # One heartbeat, then nothing: no interval told, no gap seen. The assumed
    # 900 s gives 2 x 900 + 30 s; silence_s (600 s) would have paged a 900 s
    # heartbeat charger between two heartbeats.
    frames: Frames = [(T0 + 5.0, "cp", [2, "h1", "Heartbeat", {}])]
    ds, _, _ = _run(frames, "1.6", T0 + 3000)
    fs = [f for f in ds.findings if f.fault == "charger_offline"]
    assert [f.connector for f in fs] == [0, 1]
    assert all(f.detected == pytest.approx(T0 + 5 + 1830, abs=1e-6) for f in fs)
    assert all(f.evidence["interval_s"] == 900.0 for f in fs)
    # Lowered for a fleet whose chargers beat faster, it applies as told.
    config = DetectorConfig({"charger_offline": {"assumed_interval_s": 120}})
    ds, _, _ = _run(frames, "1.6", T0 + 3000, config)
    fs = [f for f in ds.findings if f.fault == "charger_offline"]
    assert fs and all(f.detected == pytest.approx(T0 + 5 + 270, abs=1e-6) for f in fs)
