""" "Up" requires delivering (23 CFR 680.116(b)(1)): a port in Charging (or
SuspendedEVSE) whose session's periods average below ``min_power_w`` for longer
than ``grace_s`` is down, "failing to deliver". Timelines worked out by hand."""

from __future__ import annotations

from typing import Any

import pytest

from chargewatch.analytics.delivery import delivery_signals
from chargewatch.analytics.uptime import Port, port_uptime
from chargewatch.config.fleet_file import parse_fleet
from chargewatch.core.yamlsrc import load_yaml
from chargewatch.model.delivery import DEFAULT_GRACE_S, DEFAULT_MIN_POWER_W
from chargewatch.reports.dataset_ledger import record_from_dict
from chargewatch.storage.ledger import Ledger
from chargewatch.storage.uptime_source import load_uptime_inputs
from tests.analytics.helpers import H, session, ts

T0 = ts("2024-03-04 10:00")
M = 60.0


def _period(a: float, b: float, wh: float, peak: float | None = None) -> dict[str, Any]:
    return {"session_id": "S1", "charger": "C1", "connector": "1", "start": a, "end": b,
            "energy_wh": wh, "max_power_w": peak}  # fmt: skip


# Plugged in at 10:00 in Charging: 2 min of ramp-up at 0 W, 28 min at 7 kW,
# then 30 min at 0 W until Finishing at 11:00.
PERIODS = [
    _period(T0, T0 + 2 * M, 0.0, 12.0),
    _period(T0 + 2 * M, T0 + 30 * M, 7000.0 * 28 / 60, 7400.0),
    _period(T0 + 30 * M, T0 + 60 * M, 0.0, 20.0),
]


def _changes(tail: str = "Charging") -> list[tuple[float, str, str, str]]:
    return [
        (T0, "C1", "1", "Charging"),
        (T0 + 30 * M, "C1", "1", tail),
        (T0 + 60 * M, "C1", "1", "Finishing"),
    ]


def _defaults(charger: str) -> tuple[float, float]:
    return DEFAULT_MIN_POWER_W, DEFAULT_GRACE_S


def test_charging_at_zero_watts_beyond_the_grace_is_down() -> None:
    (sig,) = delivery_signals(PERIODS, _changes(), T0 + 2 * H, _defaults)
    # The 2 min ramp-up is within the 5 min grace; the 30 min tail is not.
    assert (sig.start, sig.end, sig.kind, sig.session_id) == (
        T0 + 30 * M, T0 + 60 * M, "not_delivering", "S1",
    )  # fmt: skip
    assert "0 W average" in sig.note and "peak 20 W" in sig.note
    row = port_uptime(Port("C1", "1"), [sig], (), T0, T0 + 2 * H)
    assert row["uptime_pct"] == pytest.approx((120 - 30) / 120 * 100)  # 75 %
    ev = row["outages"][0]["evidence"]
    assert ev["sessions"] == ["S1"] and ev["alerts"] == ["delivery"]


def test_a_vehicle_that_suspends_is_not_a_station_failure() -> None:
    assert delivery_signals(PERIODS, _changes("SuspendedEV"), T0 + 2 * H, _defaults) == []
    # The station holding the energy back is.
    (sig,) = delivery_signals(PERIODS, _changes("SuspendedEVSE"), T0 + 2 * H, _defaults)
    assert (sig.start, sig.end) == (T0 + 30 * M, T0 + 60 * M)


def test_a_trickle_above_the_idle_threshold_is_still_below_the_minimum() -> None:
    # 80 W for 10 min (a "charging" period to the session engine: above 50 W).
    periods = [_period(T0, T0 + 10 * M, 80.0 * 10 / 60, 85.0)]
    changes = [(T0, "C1", "1", "Charging"), (T0 + 10 * M, "C1", "1", "Finishing")]
    (sig,) = delivery_signals(periods, changes, T0 + H, _defaults)
    assert (sig.start, sig.end) == (T0, T0 + 10 * M)
    # min_power_w 0 (a model that reports Charging for a full vehicle): never.
    assert delivery_signals(periods, changes, T0 + H, lambda c: (0.0, 300.0)) == []
    # A grace longer than the stretch: not a failure.
    assert delivery_signals(periods, changes, T0 + H, lambda c: (100.0, 600.0)) == []


def test_without_a_delivery_status_nothing_is_judged() -> None:
    # No status history (the charger never said Charging): the meter alone cannot
    # tell a failing station from a full vehicle.
    assert delivery_signals(PERIODS, [], T0 + 2 * H, _defaults) == []


FLEET = """\
sites:
  - {id: S1}
  - {id: S2}
chargers:
  - {id: C1, site: S1, model: Wallbox}
  - {id: C2, site: S2, model: Terra}
uptime:
  min_power_w: 200
  grace_s: 120
  sites: {S2: {min_power_w: 50, grace_s: 900}}
  models: {Terra: {min_power_w: 1000}}
"""


def test_the_minimum_is_per_fleet_site_and_model() -> None:
    fleet = parse_fleet(load_yaml("fleet.yaml", text=FLEET))
    policy = fleet.uptime
    assert policy.for_port("S1", "Wallbox") == (200.0, 120.0)
    # The model's power over the site's; the site's grace where the model sets none.
    assert policy.for_port("S2", "Terra") == (1000.0, 900.0)
    assert policy.for_port("S2", "Other") == (50.0, 900.0)
    empty = parse_fleet(load_yaml("fleet.yaml", text="sites: []\n"))
    assert empty.uptime.for_port("", "") == (DEFAULT_MIN_POWER_W, DEFAULT_GRACE_S)


def test_the_ledger_gives_the_periods_and_the_statuses(ledger_url: str) -> None:
    # A session 10:00-11:00 that delivered 10 kWh 10:05-10:30, then nothing while
    # the port still said Charging: down 10:30-11:00, 30 of the 120 min window.
    rec = session("S1", T0, T0 + H, charge=(T0 + 5 * M, T0 + 30 * M), max_power_w=24_000.0)
    with Ledger(ledger_url) as ledger:
        ledger.write([record_from_dict(rec)], written_at=0.0)
        ledger.write_port_status(
            [["C1", 1, "Charging", "NoError", T0], ["C1", 1, "Finishing", "NoError", T0 + H]],
            now=0.0,
        )
        inputs = load_uptime_inputs(ledger, T0, T0 + 2 * H)
    (sig,) = [s for s in inputs.signals if s.kind == "not_delivering"]
    assert (sig.start, sig.end, sig.session_id) == (T0 + 30 * M, T0 + H, "S1")
    row = port_uptime(Port("C1", "1"), inputs.signals, (), T0, T0 + 2 * H)
    assert row["uptime_pct"] == pytest.approx(75.0)
