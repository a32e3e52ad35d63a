"""A site's operating hours in the shape of OCPI 2.2.1 ``Hours`` (Locations module).

``twentyfourseven``, or ``regular_hours`` (weekday 1 = Monday … 7 = Sunday,
``period_begin``/``period_end`` "HH:MM" in the site's local time, end after
begin), plus ``exceptional_openings`` (open besides the regular hours) and
``exceptional_closings`` (closed, over both), as epoch-second spans. 23 CFR
680.116(b)(3) excludes the hours outside a station's identified hours of
operation from T_excluded's outage minutes: ``analytics.operating_hours`` turns
these into those spans.
"""

from __future__ import annotations

__all__ = ["HHMM", "ExceptionalPeriod", "OperatingHours", "RegularHours", "minutes_of"]

import re
from dataclasses import dataclass

#: OCPI's "HH:MM" (24 h, leading zeros); "24:00" is also taken as an end, the
#: day's end: OCPI's own 23:59 would leave a minute closed every night.
HHMM = re.compile(r"^(?:([01][0-9]|2[0-3]):([0-5][0-9])|24:00)$")


def minutes_of(text: str) -> int:
    """Minutes after local midnight of an "HH:MM" that ``HHMM`` accepts."""
    hours, minutes = text.split(":")
    return int(hours) * 60 + int(minutes)


@dataclass(frozen=True, slots=True)
class RegularHours:
    weekday: int  # 1 = Monday … 7 = Sunday (OCPI)
    period_begin: str  # "HH:MM", local
    period_end: str  # "HH:MM" (or "24:00"), local, after period_begin


@dataclass(frozen=True, slots=True)
class ExceptionalPeriod:
    period_begin: float  # epoch s
    period_end: float


@dataclass(frozen=True, slots=True)
class OperatingHours:
    twentyfourseven: bool = True
    regular_hours: tuple[RegularHours, ...] = ()
    exceptional_openings: tuple[ExceptionalPeriod, ...] = ()
    exceptional_closings: tuple[ExceptionalPeriod, ...] = ()
