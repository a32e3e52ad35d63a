"""A charger whose clock is off, through the collector as ``chargewatch run``
builds it (OCPP 1.6 decoder, Downsampler, session engine): it counts in the
fleet rollups (``meter_1m``, ``site_1m``) on the receive clock, with the
offset the sessions use, also after a restart (docs/sessions.md, "Charger
clocks that are off")."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from chargewatch.collector.service import Collector
from chargewatch.config.settings import Config, HttpConfig
from chargewatch.model.fleet import ChargerSpec, Fleet

T0 = 1_800_000_000.0  # a minute boundary
LATENCY = 0.2
OFFSETS = {"AHEAD": 7_200.0, "BEHIND": -5 * 3_600.0, "RIGHT": 0.0}  # charger time - true time
POWER_W = {"AHEAD": 7_000.0, "BEHIND": 11_000.0, "RIGHT": 3_000.0}
FLEET = Fleet({}, {c: ChargerSpec(c, site="s", connectors=1) for c in OFFSETS})

Msg = tuple[str, bytes, float]


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds")[:-6] + "Z"


def _meter_values(charger: str, true: float, k: int) -> Msg:
    """A periodic sample as the charger sends it: stamped on its own clock."""
    sv = [{"value": f"{POWER_W[charger]:.1f}", "measurand": "Power.Active.Import", "unit": "W"}]
    body = {"connectorId": 1, "meterValue": [{"timestamp": _iso(true + OFFSETS[charger]),
                                             "sampledValue": sv}]}  # fmt: skip
    frame = [2, f"{charger}-{k}", "MeterValues", body]
    return f"ocpp/1.6/{charger}/cp", json.dumps(frame).encode(), true + LATENCY


def _collector(data: Path) -> Collector:
    return Collector(
        Config(data_dir=data, http=HttpConfig(listen=""), influx_file=data / "lines.lp"),
        fleet=FLEET,
    )


def _crash(c: Collector) -> None:
    """Gone without a word (its ledger lock freed): what it saved last is what stays."""
    c.ledger.close()
    c.fleet_store.close()
    c.deadletter.close()


def _run(c: Collector, minutes: range) -> None:
    """Every charger samples each 20 s; the pipeline runs once every 5 s."""
    k = 0
    for m in minutes:
        for s in range(0, 60, 5):
            now = T0 + m * 60 + s + 1.0
            msgs = [
                _meter_values(ch, T0 + m * 60 + s, (k := k + 1)) for ch in OFFSETS if s % 20 == 0
            ]
            if msgs:
                c.pipeline.process(msgs, now)
            c.pipeline.tick(now)


def _site_minutes(path: Path) -> dict[int, dict[str, str]]:
    """site_1m fields by minute (s)."""
    out = {}
    for line in path.read_text().splitlines():
        if line.startswith("site_1m,"):
            _, fields, ms = line.split(" ")
            out[int(ms) // 1000] = dict(f.split("=") for f in fields.split(","))
    return out


def _chargers_in(path: Path, minute: float) -> set[str]:
    stamp = f" {int(minute * 1000)}"
    return {
        line.split("charger=")[1].split(",")[0]
        for line in path.read_text().splitlines()
        if line.startswith("meter_1m,") and line.endswith(stamp)
    }


def test_chargers_with_wrong_clocks_count_in_the_rollups_on_the_receive_clock(
    tmp_path: Path,
) -> None:
    c = _collector(tmp_path)
    _run(c, range(0, 20))
    c.pipeline.tick(T0 + 20 * 60 + 30)
    assert c.linefile is not None
    c.linefile.flush()
    lines = tmp_path / "lines.lp"
    site = _site_minutes(lines)
    everyone = sum(POWER_W.values())
    # Two hours ahead: counted from its first minute (rows dated after their
    # receipt go by receipt until the offset is confirmed, then are moved by it).
    assert _chargers_in(lines, T0) >= {"AHEAD", "RIGHT"}
    # Five hours behind: its rows look late until the engine has confirmed the
    # offset (3 messages over 10 min); from then on it counts like the rest.
    for m in range(12, 20):
        assert _chargers_in(lines, T0 + m * 60) == set(OFFSETS), m
        assert float(site[int(T0) + m * 60]["power_w_sum"]) == everyone
        assert site[int(T0) + m * 60]["connectors_reporting"] == "3i"
    # No minute two hours ahead was opened. (The first rows of the charger
    # behind, before its offset was confirmed, are where they are dated:
    # a backlog looks the same.)
    assert max(site) < T0 + 21 * 60

    # A crash and a restart: the offsets come back with the engine's checkpoint,
    # so the charger behind is not lost for another ten minutes.
    _crash(c)
    again = _collector(tmp_path)
    try:
        _run(again, range(21, 25))
        again.pipeline.tick(T0 + 25 * 60 + 30)
        assert again.linefile is not None
        again.linefile.flush()
        site = _site_minutes(lines)
        for m in range(21, 25):
            assert _chargers_in(lines, T0 + m * 60) == set(OFFSETS), m
            assert float(site[int(T0) + m * 60]["power_w_sum"]) == everyone
    finally:
        _crash(again)
