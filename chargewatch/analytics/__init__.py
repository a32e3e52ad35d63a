"""Usage analytics over the session ledger: utilisation, daily figures,
distributions, reliability, revenue, peak power and peer deviations.

Every function is pure: it takes a :class:`SessionFrame` (plus CDR rows or
alert transitions) and a :class:`Window` and returns JSON-ready dicts.
Loading from the ledger is ``chargewatch.storage.analytics_source``.
"""

from chargewatch.analytics.peers import peers
from chargewatch.analytics.reliability import reliability
from chargewatch.analytics.revenue import revenue
from chargewatch.analytics.session_frame import SessionFrame, Window
from chargewatch.analytics.usage import daily, distributions, peak_power, utilisation

__all__ = [
    "SessionFrame",
    "Window",
    "daily",
    "distributions",
    "peak_power",
    "peers",
    "reliability",
    "revenue",
    "utilisation",
]
