"""OCPI 2.2.1 EVSE.status from the live fleet state (GET /api/v1/ocpi/evses)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from chargewatch.analytics.ocpi_status import OCPI_STATUSES, ocpi_status
from chargewatch.api.fleet_view import ocpi_evses_document
from chargewatch.collector.service import Collector
from chargewatch.config.settings import Config, HttpConfig
from chargewatch.model.batch import MeterBatch
from chargewatch.model.events import CONNECTOR_STATUSES, StatusEvent
from chargewatch.model.fleet import ConnectorIndex, Fleet
from chargewatch.state.fleet_state import FleetState


@pytest.mark.parametrize(
    ("ocpp", "ocpi"),
    [
        ("Available", "AVAILABLE"),
        ("Preparing", "CHARGING"),  # plugged in: the EVSE is taken
        ("Charging", "CHARGING"),
        ("SuspendedEV", "CHARGING"),
        ("SuspendedEVSE", "CHARGING"),
        ("Finishing", "CHARGING"),  # cable still in
        ("Occupied", "CHARGING"),  # OCPP 2.0.1
        ("Reserved", "RESERVED"),
        ("Unavailable", "INOPERATIVE"),  # out of service, not broken
        ("Faulted", "OUTOFORDER"),  # broken
        ("", "UNKNOWN"),  # no status yet
        ("Bogus", "UNKNOWN"),
    ],
)
def test_ocpp_status_to_ocpi(ocpp: str, ocpi: str) -> None:
    assert ocpi_status(ocpp) == ocpi


def test_offline_is_unknown_whatever_the_last_status() -> None:
    # OCPI 2.2.1 Status UNKNOWN: "No status information available (also used when offline)".
    assert {ocpi_status(s, offline=True) for s in CONNECTOR_STATUSES} == {"UNKNOWN"}


def test_every_ocpp_status_has_an_ocpi_one() -> None:
    assert all(ocpi_status(s) in OCPI_STATUSES for s in CONNECTOR_STATUSES)
    assert len(OCPI_STATUSES) == 9


def test_document_from_the_fleet_state() -> None:
    index = ConnectorIndex(Fleet.empty())
    state = FleetState(index)
    events = [
        StatusEvent("C1", 1, 1_700_000_000.0, 1_700_000_000.0, "Faulted", "GroundFailure"),
        StatusEvent("C1", 2, 1_700_000_100.0, 1_700_000_100.0, "Charging"),
        StatusEvent("C2", 1, 1_700_000_200.0, 1_700_000_200.0, "Available"),
    ]
    state.on_batch(MeterBatch.empty(), events, 1_700_000_300.0)
    offline = np.array([False, False, True])  # C2 offline
    doc = ocpi_evses_document(state, index, 1_700_000_300.0, offline)
    got = {e["uid"]: (e["status"], e["last_updated"]) for e in doc["evses"]}
    assert got == {
        "C1*1": ("OUTOFORDER", "2023-11-14T22:13:20Z"),
        "C1*2": ("CHARGING", "2023-11-14T22:15:00Z"),
        "C2*1": ("UNKNOWN", "2023-11-14T22:16:40Z"),
    }
    assert doc["evses"][2]["ocpp_status"] == "Available" and doc["evses"][2]["offline"]


def test_route_is_served_with_read_scope(tmp_path: Path) -> None:
    c = Collector(Config(data_dir=tmp_path, http=HttpConfig(listen="127.0.0.1:0")))
    assert c.http is not None
    try:
        c.state.on_batch(
            MeterBatch.empty(), [StatusEvent("C1", 1, 1.7e9, 1.7e9, "Unavailable")], 1.7e9
        )
        status, _, body = c.http.dispatch("/api/v1/ocpi/evses", "", "")
        assert status == 200
        (evse,) = json.loads(body)["evses"]
        assert evse["status"] == "INOPERATIVE"
    finally:
        c.http.server.server_close()
