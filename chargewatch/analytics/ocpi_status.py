"""OCPI 2.2.1 Locations ``EVSE.status`` from what chargewatch knows of a connector (pure).

For AFIR feeds (Regulation (EU) 2023/1804, art. 20: operational status and
availability, as dynamic data) through an OCPI hub or a national access point.
OCPI 2.2.1 ``Status`` (Locations module, 8.4.22) has nine values; chargewatch can
tell six of them from OCPP:

=================  ===============================================  =============
OCPP 1.6 status    what it means for a driver                       OCPI Status
=================  ===============================================  =============
Available          free to use                                      AVAILABLE
Preparing …        in use: plugged in, charging, paused, finishing  CHARGING
Reserved           held for one driver                              RESERVED
Unavailable        taken out of service (ChangeAvailability)        INOPERATIVE
Faulted            broken                                           OUTOFORDER
(none yet)         no status received                               UNKNOWN
any, offline       the charger is offline: its status is stale      UNKNOWN
=================  ===============================================  =============

OCPI says UNKNOWN is "also used when offline". BLOCKED (a parked car), PLANNED and
REMOVED are facts of the site, not of OCPP, and are never produced here. DATEX II
(AFIR national access points) has a same-named ``RefillPointStatusEnum`` value for
each (docs/analytics.md, "OCPI EVSE status").
"""

from __future__ import annotations

__all__ = ["OCPI_STATUSES", "ocpi_status"]

#: OCPI 2.2.1 Status, in the specification's order.
OCPI_STATUSES: tuple[str, ...] = (
    "AVAILABLE",
    "BLOCKED",
    "CHARGING",
    "INOPERATIVE",
    "OUTOFORDER",
    "PLANNED",
    "REMOVED",
    "RESERVED",
    "UNKNOWN",
)

_OF_OCPP: dict[str, str] = {
    "Available": "AVAILABLE",
    # The EVSE is occupied from plug-in until the cable is out (OCPP 2.0.1: Occupied).
    "Preparing": "CHARGING",
    "Charging": "CHARGING",
    "SuspendedEV": "CHARGING",
    "SuspendedEVSE": "CHARGING",
    "Finishing": "CHARGING",
    "Occupied": "CHARGING",
    "Reserved": "RESERVED",
    "Unavailable": "INOPERATIVE",
    "Faulted": "OUTOFORDER",
}


def ocpi_status(ocpp_status: str, *, offline: bool = False) -> str:
    """The OCPI ``EVSE.status`` of a connector with ``ocpp_status``; UNKNOWN when
    the charger is offline or the status is not one OCPP defines."""
    if offline:
        return "UNKNOWN"
    return _OF_OCPP.get(ocpp_status, "UNKNOWN")
