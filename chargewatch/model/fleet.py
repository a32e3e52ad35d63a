"""Fleet inventory types (what ``fleet.yaml`` says) and the dense connector index.

A charger that is not in the inventory is still monitored, with the defaults
below, and counted as unknown.
"""

from __future__ import annotations

__all__ = [
    "DEFAULT_CHARGER",
    "SITE_KINDS",
    "ChargerSpec",
    "ConnectorIndex",
    "Fleet",
    "MeterKey",
    "SiteSpec",
]

from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
from numpy.typing import NDArray

from chargewatch.model.delivery import DeliveryPolicy
from chargewatch.model.hours import OperatingHours

#: What a site is for; alert defaults differ by kind (a car plugged in all night
#: is normal at home, a blocked bay at a motorway charger is not).
SITE_KINDS = ("public", "depot", "residential", "workplace", "destination", "fleet")


@dataclass(frozen=True, slots=True)
class SiteSpec:
    id: str
    timezone: str = "UTC"
    tariff: str = ""  # default tariff id for the site's chargers
    name: str = ""
    kind: str = "public"  # one of SITE_KINDS
    address: str = ""  # postal address, as printed on drivers' receipts
    #: OCPI Hours; None: not given (open around the clock, nothing excluded).
    operating_hours: OperatingHours | None = None


@dataclass(frozen=True, slots=True)
class ChargerSpec:
    id: str
    site: str = "unknown"
    connectors: int = 1
    max_power_w: float = 22_000.0
    phases: int = 3  # 1 or 3 for AC; 0 for DC
    nominal_voltage_v: float = 230.0  # phase-to-neutral for AC; nominal DC bus for DC
    model: str = ""
    tariff: str = ""  # overrides the site's default tariff
    known: bool = True

    @property
    def is_dc(self) -> bool:
        return self.phases == 0

    @property
    def rated_current_a(self) -> float:
        """Per-phase rated current for AC; output current for DC."""
        lines = self.phases if self.phases else 1
        return self.max_power_w / (lines * self.nominal_voltage_v)


DEFAULT_CHARGER = ChargerSpec(id="", known=False)


@dataclass(frozen=True, slots=True)
class MeterKey:
    """A meter's public key for its signed readings (OCMF), pinned in the inventory.

    It belongs to one charger (all its meters) or to one meter serial (OCMF
    ``MS``, or ``GS`` where the meter has none); ``public_key`` is the DER key
    as hex or base64, as meter vendors print it. ``valid_from``/``valid_until``
    (epoch seconds, None = open) bound it in time: after a key rotation the
    key in force at a reading's own time verifies it.
    """

    public_key: str
    charger: str = ""
    meter_serial: str = ""
    valid_from: float | None = None
    valid_until: float | None = None

    def applies(self, charger: str, meter_serial: str, at: float | None) -> bool:
        if self.meter_serial and self.meter_serial != meter_serial:
            return False
        if self.charger and self.charger != charger:
            return False
        if at is None:  # a reading without a usable time: only a key without bounds
            return self.valid_from is None and self.valid_until is None
        if self.valid_from is not None and at < self.valid_from:
            return False
        return self.valid_until is None or at < self.valid_until


@dataclass(frozen=True)
class Fleet:
    sites: dict[str, SiteSpec]
    chargers: dict[str, ChargerSpec]
    file: str = ""
    #: Pinned public keys of the meters' signed readings (``meter_keys:``).
    meter_keys: tuple[MeterKey, ...] = ()
    #: The minimum power of an up port (``uptime:``).
    uptime: DeliveryPolicy = field(default_factory=DeliveryPolicy)

    @staticmethod
    def empty() -> Fleet:
        return Fleet({}, {})

    def charger(self, charger_id: str) -> ChargerSpec:
        spec = self.chargers.get(charger_id)
        return spec if spec is not None else replace(DEFAULT_CHARGER, id=charger_id)

    # model_of/site_of answer without building a spec for an unknown charger:
    # they are asked per event and per new connector by every detector.
    def model_of(self, charger_id: str) -> str:
        spec = self.chargers.get(charger_id)
        return spec.model if spec is not None else DEFAULT_CHARGER.model

    def site_of(self, charger_id: str) -> str:
        spec = self.chargers.get(charger_id)
        return spec.site if spec is not None else DEFAULT_CHARGER.site

    def site(self, site_id: str) -> SiteSpec:
        return self.sites.get(site_id) or SiteSpec(id=site_id)

    def tariff_for(self, charger_id: str) -> str:
        """Charger override, else the site default; "" when neither is set."""
        spec = self.charger(charger_id)
        return spec.tariff or self.site(spec.site).tariff


_SITE_KEYS = ("id", "timezone", "tariff", "name", "kind", "address", "operating_hours")
_METER_KEY_KEYS = ("charger", "meter_serial", "public_key", "valid_from", "valid_until")
_CHARGER_KEYS = (
    "id",
    "site",
    "connectors",
    "max_power_w",
    "phases",
    "nominal_voltage_v",
    "model",
    "tariff",
)


class ConnectorIndex:
    """Dense integer ids for (charger, connector) pairs, with inventory columns.

    Every per-connector state array in detectors, rules and sessions is indexed
    by these ids. Ids are assigned on first sight and never reused, so arrays
    only ever grow (capacity doubles; ``on_grow`` callbacks are not needed
    because consumers size their state from ``len(index)`` each batch).
    """

    def __init__(self, fleet: Fleet | None = None) -> None:
        self.fleet = fleet or Fleet.empty()
        self._ids: dict[tuple[str, int], int] = {}
        self.keys: list[tuple[str, int]] = []
        self.site_names: list[str] = []
        self._site_ids: dict[str, int] = {}
        cap = 64
        self.site = np.zeros(cap, np.int32)
        self.max_power_w = np.zeros(cap, np.float64)
        self.phases = np.zeros(cap, np.int8)
        self.nominal_voltage_v = np.zeros(cap, np.float64)
        self.rated_current_a = np.zeros(cap, np.float64)
        self.known = np.zeros(cap, np.bool_)
        # Bumped by refit(): caches of per-connector inventory (labels,
        # thresholds) compare it to know when to rebuild.
        self.generation = 0
        for spec in self.fleet.chargers.values():
            for c in range(1, spec.connectors + 1):
                self.id(spec.id, c)

    def __len__(self) -> int:
        return len(self.keys)

    def get(self, charger: str, connector: int) -> int | None:
        return self._ids.get((charger, connector))

    def id(self, charger: str, connector: int) -> int:
        key = (charger, connector)
        found = self._ids.get(key)
        if found is not None:
            return found
        return self._add(key)

    def _add(self, key: tuple[str, int]) -> int:
        n = len(self.keys)
        if n == self.site.shape[0]:
            self._grow(2 * n)
        self._ids[key] = n
        self.keys.append(key)
        self._describe(n, self.fleet.charger(key[0]))
        return n

    def _describe(self, n: int, spec: ChargerSpec) -> None:
        sid = self._site_ids.get(spec.site)
        if sid is None:
            sid = self._site_ids[spec.site] = len(self.site_names)
            self.site_names.append(spec.site)
        self.site[n] = sid
        self.max_power_w[n] = spec.max_power_w
        self.phases[n] = spec.phases
        self.nominal_voltage_v[n] = spec.nominal_voltage_v
        self.rated_current_a[n] = spec.rated_current_a
        self.known[n] = spec.known

    def refit(self, fleet: Fleet) -> None:
        """Take a reloaded inventory: ids stay (state arrays are indexed by them),
        every connector's inventory columns are rewritten in place and the new
        inventory's connectors are added."""
        self.fleet = fleet
        for n, (charger, _) in enumerate(self.keys):
            self._describe(n, fleet.charger(charger))
        for spec in fleet.chargers.values():
            for c in range(1, spec.connectors + 1):
                self.id(spec.id, c)
        self.generation += 1

    def _grow(self, cap: int) -> None:
        def grown(a: NDArray[Any]) -> NDArray[Any]:
            out = np.zeros(cap, a.dtype)
            out[: a.shape[0]] = a
            return out

        self.site = grown(self.site)
        self.max_power_w = grown(self.max_power_w)
        self.phases = grown(self.phases)
        self.nominal_voltage_v = grown(self.nominal_voltage_v)
        self.rated_current_a = grown(self.rated_current_a)
        self.known = grown(self.known)

    def charger_of(self, idx: int) -> str:
        return self.keys[idx][0]

    def site_of(self, idx: int) -> str:
        return self.site_names[int(self.site[idx])]
