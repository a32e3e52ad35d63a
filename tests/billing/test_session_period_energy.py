"""The tariff engine's periods carry the session's energy exactly: rounded to the
milliwatt-hour one by one, three periods of a 19,320 Wh session summed to
19,320.001 Wh, and step_size 1 Wh billed the dust as a whole Wh (found by
tests/acceptance/test_blind_captures.py: 6.7624 EUR for 6.7620)."""

from __future__ import annotations

from decimal import Decimal

from chargewatch.sessions.outputs import session_periods
from chargewatch.sessions.power_track import Period
from chargewatch.sessions.session_types import SessionRecord

T0 = 1_789_000_000.0


def _record(energies: list[float]) -> SessionRecord:
    periods, t = [], T0
    for k, wh in enumerate(energies):
        kind = "idle" if k % 2 else "charging"
        periods.append(Period(kind, t, t + 600.0, wh, None, None, None))
        t += 600.0
    return SessionRecord(
        session_id="s1",
        charger_id="CP1",
        connector_id=1,
        site="",
        transaction_id="1",
        start=T0,
        stop=t,
        energy_wh=sum(energies),
        energy_source="transaction_meter",
        quality=(),
        revision=0,
        stop_reason="transaction",
        idle_s=0.0,
        charging_s=0.0,
        meter_start_wh=None,
        meter_stop_wh=None,
        register_wh=None,
        power_integral_wh=sum(energies),
        mismatch_wh=None,
        mismatch_pct=None,
        id_tag="",
        periods=tuple(periods),
    )


def test_period_energies_sum_to_the_sessions_energy_to_the_mwh() -> None:
    energies = [6852.5676, 0.0036, 12467.4288]  # 19,320.0000 Wh
    got = session_periods(_record(energies))
    assert sum((p.energy_wh for p in got), Decimal(0)) == Decimal("19320.000")
    # each period still within a milliwatt-hour of its own energy
    for p, wh in zip(got, energies, strict=True):
        assert abs(p.energy_wh - Decimal(repr(wh))) <= Decimal("0.001")
