"""ChargerOffline across a collector restart (docs/architecture.md, liveness
across restarts and moves).

X stops heartbeating at T0 + 300 s and is paged (at 450 s); Y heartbeats until
the collector stops at 600 s and is never heard again. The collector comes
back after a short stop (1 min) or a long one (2 h); X is heard again 5 min
after the restart. X's outage was seen before the stop: it goes on, its alert
firing without a resolution or a new page, until X is heard, and the uptime
report has one outage from its last heartbeat to its return. Y's silence
began before the stop; after a short one it is found on time (150 s after
its last heartbeat), after a long one its silence counts from the restart
(the collector's own downtime is no outage), and it is paged then."""

from __future__ import annotations

from pathlib import Path

import pytest

from chargewatch.analytics.uptime import outages
from chargewatch.collector.service import Collector
from chargewatch.config.settings import Config, HttpConfig
from chargewatch.model.fleet import ChargerSpec, Fleet
from chargewatch.storage.uptime_source import load_uptime_inputs
from tests.collector.test_cluster_liveness import BEAT_S, _beat, _boot, _pages

T0 = 1_800_000_000.0
FLEET = Fleet({}, {c: ChargerSpec(c, site="s", connectors=1) for c in ("X", "Y")})


def _collector(data: Path) -> Collector:
    return Collector(Config(data_dir=data, http=HttpConfig(listen="")), fleet=FLEET)


def _run(c: Collector, start: float, stop: float, heard: tuple[str, ...]) -> None:
    """Heartbeats of ``heard`` every 60 s; evaluations and state saves every 10 s,
    as the service's ticks do them (the test runs in a few wall seconds: the
    liveness row's own 60 s are not up, only an outage makes it due)."""
    for s in range(int(start), int(stop), 10):
        t = T0 + s
        if s % BEAT_S == 0 and heard:
            c.pipeline.process([_beat(t, charger) for charger in heard], t)
        c.pipeline.tick(t)
        c._save_state()


def _offline(c: Collector) -> dict[str, tuple[float, float, float | None]]:
    """Per charger, its charger_offline finding: (start, detected, end), from T0."""
    out = {}
    for f in c.detectors.findings:
        if f.fault == "charger_offline":
            charger = c.index.charger_of(f.connector)
            out[charger] = (f.start - T0, f.detected - T0, None if f.end is None else f.end - T0)
    return out


@pytest.mark.parametrize("stop_s", [60, 7200], ids=["short-stop", "long-stop"])
def test_an_outage_seen_before_a_restart_goes_on_after_it(tmp_path: Path, stop_s: int) -> None:
    c = _collector(tmp_path)
    c.pipeline.process([*_boot(T0, "X"), *_boot(T0, "Y")], T0 + 1)
    _run(c, 60, 360, ("X", "Y"))
    _run(c, 360, 610, ("Y",))  # Y's last heartbeat at 600
    assert _pages(c) == [("X", "firing")]
    # Killed after its last save (a clean stop saves the same once more).
    c.ledger.close()
    c.fleet_store.close()
    c.deadletter.close()
    back = 600 + stop_s
    again = _collector(tmp_path)
    try:
        _run(again, back, back + 300, ())
        _run(again, back + 300, back + 600, ("X",))
        y_last = 600.0 if stop_s < 150 else float(back)
        assert _offline(again) == {
            "X": (300.0, 450.0, back + 300.0),
            "Y": (y_last, y_last + 150.0, None),
        }
        assert _pages(again) == [("Y", "firing"), ("X", "resolved")]
        hi = T0 + back + 600
        inputs = load_uptime_inputs(again.ledger, T0, hi, fleet=FLEET)
        (port,) = [p for p in inputs.ports if p.charger == "X"]
        got = [(o.start - T0, o.end - T0) for o in outages(port, inputs.signals, [], T0, hi)]
        assert got == [(300.0, back + 300.0)]
    finally:
        again.ledger.close()
