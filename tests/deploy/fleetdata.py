"""A simulated fleet's series, as the collector would store them, for dashboard tests.

Meter lines come from ``chargewatch replay --lines`` (the function behind it);
``meter_1m``/``site_1m`` and ``status`` from the Downsampler and
``status_lines`` run in the same pipeline; ``alert`` lines from transitions
built from the simulator's ground-truth faults; ``session`` lines from its
ground-truth sessions, priced with a flat made-up tariff (the billing engine's
own writer is another engineer's piece, so only its documented fields are used).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path

from chargewatch.alerting.state import Transition
from chargewatch.collector.pipeline import Pipeline
from chargewatch.collector.replay import replay
from chargewatch.collector.service import _ocpp_decoder
from chargewatch.ingest.capture import read_capture
from chargewatch.model.fleet import ConnectorIndex, Fleet
from chargewatch.model.mrec import mrec_of
from chargewatch.simulator.fault_models import parse_fault
from chargewatch.simulator.scenarios import SimConfig
from chargewatch.simulator.simulation import Simulation
from chargewatch.simulator.truth import Truth
from chargewatch.storage.event_lines import AlertLines, StatusStage
from chargewatch.storage.lineproto import escape_field_string, series_prefix
from chargewatch.storage.rollups import Downsampler

SEVERITIES = ("critical", "warning", "info")
DURATION_S = 3 * 3600.0


class ListSink:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def write(self, lines: list[str]) -> None:
        self.lines.extend(lines)


@dataclass
class FleetData:
    start: float
    end: float
    fleet: Fleet
    meter: list[str]  # default retention policy
    downsampled: list[str] = field(default_factory=list)  # rp "downsampled"
    detail_charger: str = ""  # DC: has SoC, sessions, status changes and alerts
    ac_charger: str = ""  # three-phase AC with a session: has L2 and L3 readings


def _alerts(truth: Truth, fleet: Fleet, end: float, detail: str, t0: float) -> list[str]:
    transitions: list[Transition] = []
    for i, f in enumerate(truth.faults):
        labels = {
            "severity": SEVERITIES[i % len(SEVERITIES)],
            "charger": f.charger,
            "site": f.site,
        }
        if f.connector is not None:
            labels["connector"] = str(f.connector)
        if f.kind == "error_code":
            # rules/error_codes.yaml labels every error-code alert with its MREC code.
            labels |= {"alertname": "ConnectorErrorCode", "error_code": f.fault,
                       "mrec": mrec_of(f.fault)}  # fmt: skip
        else:
            labels |= {"alertname": "".join(w.title() for w in f.fault.split("_")),
                       "fault": f.fault}  # fmt: skip
        transitions.append(Transition(f.start, "firing", labels["alertname"], labels, {}, 1.0))
        if f.end is not None and f.end <= end:
            transitions.append(
                Transition(f.end, "resolved", labels["alertname"], labels, {}, math.nan)
            )
    # The detail charger: one alert that fired and resolved, one still open.
    site = fleet.charger(detail).site
    for name, at, until in (("OverTemperature", t0 + 1800, t0 + 3000), ("MeterStuck", t0 + 3600,
                                                                         None)):  # fmt: skip
        fault = "over_temperature" if name == "OverTemperature" else "meter_stuck"
        labels = {"alertname": name, "severity": "critical", "charger": detail,
                  "connector": "1", "site": site, "fault": fault}  # fmt: skip
        transitions.append(Transition(at, "firing", name, labels, {}, 71.5))
        if until is not None:
            transitions.append(Transition(until, "resolved", name, labels, {}, 65.0))
    transitions.sort(key=lambda t: t.at)
    return AlertLines(fleet).lines(transitions)


def _sessions(truth: Truth, end: float) -> list[str]:
    out = []
    for s in truth.sessions:
        if s.stop > end:
            continue
        excl = round(s.energy_wh / 1000 * 0.35 + 0.5, 2)
        fields = ",".join(
            [
                f"energy_wh={float(s.energy_wh)!r}",
                f"duration_s={float(s.stop - s.start)!r}",
                f"idle_s={float(s.idle_s)!r}",
                f"energy_source={escape_field_string('meter')}",
                "revision=1i",
                f"total_cost_excl_vat={excl!r}",
                f"total_cost_incl_vat={round(excl * 1.25, 2)!r}",
                f"currency={escape_field_string('EUR')}",
                f"tariff_id={escape_field_string('AC-' + s.site if s.energy_wh < 40e3 else 'DC')}",
            ]
        )
        tags = {"charger": s.charger, "connector": str(s.connector), "site": s.site}
        out.append(f"{series_prefix('session', tags)} {fields} {round(s.stop * 1000)}")
    return out


def build(workdir: Path) -> FleetData:
    # Recent data, so panels that look back from now() (current status, open
    # alerts) see it. Sessions follow the time of day, so always simulate the
    # same hours: 08:00-11:00 UTC of the latest day that has them in the past.
    day = 86400.0
    t0 = time.time() // day * day + 8 * 3600
    if t0 + DURATION_S > time.time():
        t0 -= day
    cfg = SimConfig(
        chargers=10,
        sites=2,
        seed=3,
        start=t0,
        duration=DURATION_S,
        interval=5.0,
        dc_fraction=0.35,
        arrival_rate=6.0,
        random_faults=3,
        faults=(
            parse_fault("over_temperature@CP0001:1@20m+20m"),
            parse_fault("GroundFailure@CP0002:1@40m+30m"),
        ),
    )
    sim = Simulation(cfg)
    fleet = sim.fleet()
    truth = sim.truth()
    capture = workdir / "capture.jsonl"
    sim.write_capture(capture)

    # Meter lines exactly as `chargewatch replay CAPTURE --out DIR --lines FILE` writes them.
    lines_file = workdir / "meter.lp"
    replay(capture, workdir / "replay", fleet=fleet, lines_file=lines_file)
    meter = [ln for ln in lines_file.read_text().splitlines() if ln]

    # The derived series, from the same pipeline with the new stages.
    index = ConnectorIndex(fleet)
    derived = ListSink()
    ds = Downsampler(index, derived)
    pipeline = Pipeline(index, stages=[ds, StatusStage(index, derived)], ocpp=_ocpp_decoder(index))
    chunk: list[tuple[str, bytes, float]] = []
    for recv, topic, payload in read_capture(capture):
        if chunk and recv - chunk[0][2] >= 1.0:
            pipeline.process(chunk, chunk[-1][2])
            pipeline.tick(chunk[-1][2])
            chunk = []
        chunk.append((topic, payload, recv))
    if chunk:
        pipeline.process(chunk, chunk[-1][2])
    pipeline.tick(cfg.end + 120)  # close the last buckets

    dc = {c.id for c in fleet.chargers.values() if c.is_dc}
    with_sessions = [s.charger for s in truth.sessions if s.charger in dc and s.stop <= cfg.end]
    if not with_sessions:
        raise RuntimeError("the test fleet has no DC charger with a finished session; change seed")
    detail = max(sorted(set(with_sessions)), key=with_sessions.count)
    ac3 = [s.charger for s in truth.sessions if fleet.charger(s.charger).phases == 3]
    if not ac3:
        raise RuntimeError("the test fleet has no three-phase AC session; change seed")
    data = FleetData(t0, cfg.end, fleet, meter, detail_charger=detail, ac_charger=min(ac3))
    data.downsampled = (
        derived.lines + _alerts(truth, fleet, cfg.end, detail, t0) + _sessions(truth, cfg.end)
    )
    return data
