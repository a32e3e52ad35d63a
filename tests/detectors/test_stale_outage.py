"""stale_telemetry around a charger outage (issue 17, the last false page of the
large ocpp-60s evaluation: CP0014/1, seed 7).

The pattern as captured: an idle OCPP connector sends clock-aligned values every
900 s, its charger heartbeats every 120 s; the whole charger goes away for 20 min
(charger_offline's fault), so the reports at :15 and :30 are never sent; it comes
back with a StatusNotification and its heartbeats, and the next report (:45)
arrives on time. The connector's 2700 s without a meter row are the outage's,
not a stale connector's."""

from __future__ import annotations

import numpy as np
import pytest

from chargewatch.model.batch import FIELD_INDEX, MeterBatch
from chargewatch.model.events import (
    Event,
    HeartbeatEvent,
    HeartbeatIntervalEvent,
    StatusEvent,
)

from .helpers import T0, charging, fleet, of, run

P = FIELD_INDEX["power_w"]
HB = 120.0
ALIGNED = 900.0
AWAY = T0 + 8 * ALIGNED - 60 + 59.0  # last heartbeat before: 8 x 900 s - 60 s + 59 s
BACK = AWAY + 1200.0  # 20 min without any message


def _idle_rows(times: list[float]) -> MeterBatch:
    b = charging(len(times), t0=T0)
    b.ts[:] = times
    b.recv[:] = b.ts + 0.5
    b.values[:, P] = 0.0
    return b


def _case(*, outage: bool, told: bool) -> tuple[MeterBatch, list[Event], float]:
    """6 h of an idle connector; ``outage``: the charger is silent for 20 min
    (else only the connector's reports stop for that long plus one)."""
    end = T0 + 6 * 3600.0
    grid = (T0 + ALIGNED * np.arange(int((end - T0) // ALIGNED))).tolist()
    lost = [t for t in grid if AWAY < t < BACK]
    if not outage:  # a stale connector: one report more lost, the charger online
        lost.append(min(t for t in grid if t > BACK))
    rows = _idle_rows([t for t in grid if t not in lost])
    ev: list[Event] = [StatusEvent("CP0", 1, T0 - 10, T0 - 10, "Available")]
    if told:  # the BootNotification CALLRESULT's interval
        ev.append(HeartbeatIntervalEvent("CP0", T0 - 5, T0 - 5, HB, "BootNotification"))
    beats = np.arange(T0 + 18.0, end, HB)
    if outage:
        beats = beats[(beats <= AWAY) | (beats >= BACK)]
        ev.append(StatusEvent("CP0", 1, BACK, BACK, "Available"))
    ev += [HeartbeatEvent("CP0", t, t) for t in beats.tolist()]
    return rows, ev, end


@pytest.mark.parametrize("told", [True, False], ids=["told", "observed"])
@pytest.mark.parametrize("cuts", [1, 7, 40])
def test_no_stale_telemetry_for_reports_lost_while_the_charger_was_away(
    cuts: int, told: bool
) -> None:
    rows, ev, end = _case(outage=True, told=told)
    ds = run(rows, ev, fleet(1), cuts=cuts, faults=["stale_telemetry"], now=end)
    assert of(ds, "stale_telemetry") == []


@pytest.mark.parametrize("cuts", [1, 7, 40])
def test_stale_telemetry_still_found_while_the_charger_heartbeats(cuts: int) -> None:
    # The same connector, its reports lost for as long (and one more) while its
    # charger stays online: that is stale telemetry.
    rows, ev, end = _case(outage=False, told=True)
    ds = run(rows, ev, fleet(1), cuts=cuts, faults=["stale_telemetry"], now=end)
    found = of(ds, "stale_telemetry")
    assert len(found) == 1
    last_row = float(rows.recv[rows.recv < BACK].max())
    assert found[0].start == pytest.approx(last_row)
