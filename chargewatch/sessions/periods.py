"""The engine's input: a session as contiguous periods of one state each."""

from __future__ import annotations

__all__ = ["PeriodState", "SessionPeriod", "seconds"]

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from enum import Enum

_ZERO = Decimal(0)


def seconds(delta: timedelta) -> Decimal:
    """A timedelta as exact Decimal seconds (timedelta holds whole microseconds)."""
    us = (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds
    return Decimal(us).scaleb(-6)


class PeriodState(Enum):
    """What the connector was doing during a period."""

    CHARGING = "CHARGING"  # energy flowing: TIME and ENERGY apply
    PARKING = "PARKING"  # connected, not charging (idle): PARKING_TIME applies
    RESERVATION = "RESERVATION"  # reserved, not yet in use: reservation TIME applies


@dataclass(frozen=True, slots=True)
class SessionPeriod:
    """One stretch of a session with constant state (input to the engine).

    ``start``/``end`` are timezone-aware. ``energy_wh`` is the energy delivered
    in the period (>= 0). Power bounds are in W and current bounds in A of the
    largest phase (per phase, not summed); ``None`` means unknown.
    """

    start: datetime
    end: datetime
    state: PeriodState
    energy_wh: Decimal = _ZERO
    min_power_w: Decimal | None = None
    max_power_w: Decimal | None = None
    min_current_a: Decimal | None = None
    max_current_a: Decimal | None = None
