"""Port uptime per site as Prometheus gauges, for the Grafana panel (issue 22).

Every ``interval_s`` a thread of its own reads the ledger (read-only, like the
HTTP API) and sets ``chargewatch_port_uptime_percent{site, window}`` for the
trailing 30 days and the trailing 12 months (NEVI's T = 525,600 min), and
``chargewatch_ports_at_or_below_nevi_floor{site}``; site "" is the fleet. The
filed NEVI figure is per calendar month: ``chargewatch uptime --format nevi``.
A year of a large fleet's history takes seconds to read, so this stays off the
pipeline thread.
"""

from __future__ import annotations

__all__ = ["UptimeExporter"]

import logging
import threading
from collections.abc import Callable

from chargewatch.core import metrics
from chargewatch.model.fleet import Fleet
from chargewatch.storage.ledger import Ledger
from chargewatch.storage.sqldb import PgOptions
from chargewatch.storage.uptime_source import uptime_gauges

log = logging.getLogger(__name__)

#: How often the gauges are recomputed.
INTERVAL_S = 600.0


class UptimeExporter:
    def __init__(
        self,
        ledger_path: str,
        fleet: Fleet | None,
        *,
        clock: Callable[[], float],
        pg: PgOptions | None = None,
        interval_s: float = INTERVAL_S,
    ) -> None:
        self.ledger_path = ledger_path
        self.pg = pg
        self.fleet = fleet
        self.clock = clock
        self.interval_s = interval_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="collector.uptime", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)

    def _loop(self) -> None:
        # The first figures after one interval: a starting collector has other work.
        while not self._stop.wait(self.interval_s):
            self.export_once()

    def export_once(self) -> None:
        try:
            with Ledger(self.ledger_path, read_only=True, pg=self.pg) as ledger:
                g = uptime_gauges(ledger, self.clock(), self.fleet)
        except Exception:  # a bad row must not stop the gauges for good
            log.exception("uptime gauges not updated")
            return
        for window in ("30d", "12m"):
            for site, pct in g[window].items():
                if pct is not None:
                    metrics.PORT_UPTIME.labels(site=site, window=window).set(pct)
        for site, n in g["below"].items():
            metrics.PORTS_AT_OR_BELOW_NEVI.labels(site=site).set(n)
