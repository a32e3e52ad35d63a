"""The minimum power an up port delivers while charging (fleet.yaml ``uptime:``).

23 CFR 680.116(b)(1) counts a port *up* only when it "successfully dispenses
electricity" at the minimum power level: a port in Charging that delivers
(almost) nothing for longer than ``grace_s`` is down, "failing to deliver"
(analytics.uptime.delivery_signals). The fleet's values apply unless a site's
or, more specific, a charger model's override sets one.
"""

from __future__ import annotations

__all__ = ["DEFAULT_GRACE_S", "DEFAULT_MIN_POWER_W", "DeliveryPolicy", "DeliveryRule"]

from collections.abc import Mapping
from dataclasses import dataclass, field

#: Below this a port "in Charging" delivers nothing a driver would call charging:
#: twice the session engine's idle threshold (50 W: meter noise, standby draw),
#: and far below the least a vehicle draws when it charges at all (IEC 61851's
#: 6 A minimum is 1.4 kW at 230 V, 0.7 kW at 120 V). Not 680.106(d)'s 150 kW /
#: 6 kW: the vehicle, not the station, sets the power of a tapering charge, and
#: the ledger cannot tell which limited it; a model override can be stricter.
DEFAULT_MIN_POWER_W = 100.0
#: How long a port may sit in Charging below the minimum before it counts as
#: failing: ramp-up after plug-in and the vehicle's own pauses take seconds to a
#: couple of minutes; five minutes of nothing is a failed charge to a driver.
DEFAULT_GRACE_S = 300.0


@dataclass(frozen=True, slots=True)
class DeliveryRule:
    """An override; None keeps the wider scope's value."""

    min_power_w: float | None = None
    grace_s: float | None = None


@dataclass(frozen=True)
class DeliveryPolicy:
    min_power_w: float = DEFAULT_MIN_POWER_W
    grace_s: float = DEFAULT_GRACE_S
    sites: Mapping[str, DeliveryRule] = field(default_factory=dict)
    models: Mapping[str, DeliveryRule] = field(default_factory=dict)

    def for_port(self, site: str, model: str) -> tuple[float, float]:
        """(min_power_w, grace_s) for a port: model over site over fleet, per value."""
        power, grace = self.min_power_w, self.grace_s
        for rule in (self.sites.get(site), self.models.get(model)):
            if rule is not None:
                power = power if rule.min_power_w is None else rule.min_power_w
                grace = grace if rule.grace_s is None else rule.grace_s
        return power, grace
