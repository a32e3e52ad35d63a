"""OCPP 1.6 and 2.0.1 decoding: every telemetry action, units, phases, locations, contexts."""

from __future__ import annotations

from typing import Any

import pytest

from chargewatch.model.events import (
    BootEvent,
    HeartbeatEvent,
    MeterReading,
    ProblemEvent,
    StatusEvent,
    TransactionEvent,
)
from tests.collector.ocpp_feed import T0, Feed, mv16, mv201

# ---------------------------------------------------------------- OCPP 1.6


def test_16_boot_notification() -> None:
    f = Feed().call(
        "BootNotification",
        {
            "chargePointVendor": "Acme",
            "chargePointModel": "AC22",
            "chargeBoxSerialNumber": "SN-9",
            "firmwareVersion": "4.1",
            "iccid": "8931",
        },
    )
    (boot,) = f.events()
    assert boot == BootEvent(
        "CP1",
        T0 + 1,
        T0 + 1,
        vendor="Acme",
        model="AC22",
        firmware="4.1",
        serial="SN-9",
        extra={"iccid": "8931"},
        source="ocpp1.6",
    )


def test_16_heartbeat_uses_receive_time() -> None:
    f = Feed().call("Heartbeat", {}, recv=T0 + 5)
    assert f.events() == [HeartbeatEvent("CP1", T0 + 5, T0 + 5, "ocpp1.6")]


def test_16_status_notification_with_and_without_timestamp() -> None:
    f = Feed()
    f.call(
        "StatusNotification",
        {
            "connectorId": 2,
            "errorCode": "HighTemperature",
            "status": "Faulted",
            "info": "hot",
            "vendorErrorCode": "E17",
            "timestamp": "2026-11-24T02:59:59+01:00",
        },
        msg_id="a",
    )
    f.call(
        "StatusNotification",
        {"connectorId": 1, "errorCode": "NoError", "status": "Available"},
        msg_id="b",
        recv=T0 + 9,
    )
    first, second = f.events()
    assert first == StatusEvent(
        "CP1",
        2,
        T0 - 3601,
        T0 + 1,
        "Faulted",
        error_code="HighTemperature",
        info="hot",
        vendor_error_code="E17",
        source="ocpp1.6",
    )
    assert (second.status, second.ts, second.error_code) == ("Available", T0 + 9, "NoError")


ALL_MEASURANDS = [
    {"value": "1144330"},
    {"value": "9.4", "measurand": "Power.Active.Import", "unit": "kW"},
    {"value": "16.1", "measurand": "Current.Import", "phase": "L1", "unit": "A"},
    {"value": "16.0", "measurand": "Current.Import", "phase": "L2", "unit": "A"},
    {"value": "15.9", "measurand": "Current.Import", "phase": "L3", "unit": "A"},
    {"value": "230.1", "measurand": "Voltage", "phase": "L1-N", "unit": "V"},
    {"value": "231.1", "measurand": "Voltage", "phase": "L2-N", "unit": "V"},
    {"value": "229.1", "measurand": "Voltage", "phase": "L3-N", "unit": "V"},
    {"value": "35", "measurand": "Temperature", "unit": "Celsius", "location": "Body"},
    {"value": "55", "measurand": "SoC", "unit": "Percent", "location": "EV"},
    {"value": "32", "measurand": "Current.Offered", "unit": "A"},
    {"value": "49.98", "measurand": "Frequency"},
    {"value": "12", "measurand": "Energy.Active.Export.Register", "unit": "Wh"},
    {"value": "0.99", "measurand": "Power.Factor"},
    {"value": "11", "measurand": "Power.Offered", "unit": "kW"},
]


def test_16_meter_values_all_measurands_make_one_row() -> None:
    f = Feed().call("MeterValues", mv16(*ALL_MEASURANDS))
    assert f.rows() == [
        {
            "energy_wh": 1144330.0,
            "power_w": 9400.0,
            "current_l1_a": 16.1,
            "current_l2_a": 16.0,
            "current_l3_a": 15.9,
            "voltage_l1_v": 230.1,
            "voltage_l2_v": 231.1,
            "voltage_l3_v": 229.1,
            "temperature_c": 35.0,
            "soc_pct": 55.0,
            "offered_a": 32.0,
            "connector": 1,
            "ts": T0,
        }
    ]
    assert f.reasons() == []
    assert f.events() == []  # no transaction context, no transactionId: not a billing reading


def test_16_many_meter_values_are_many_rows() -> None:
    payload = {
        "connectorId": 3,
        "meterValue": [
            {"timestamp": "2026-11-24T03:00:00Z", "sampledValue": [{"value": "1"}]},
            {"timestamp": "2026-11-24T03:00:10Z", "sampledValue": [{"value": "2"}]},
        ],
    }
    rows = Feed().call("MeterValues", payload).rows()
    assert [(r["connector"], r["ts"], r["energy_wh"]) for r in rows] == [
        (3, T0, 1.0),
        (3, T0 + 10, 2.0),
    ]


@pytest.mark.parametrize(
    ("sample", "field", "expected"),
    [
        ({"value": "12.5", "unit": "Wh"}, "energy_wh", 12.5),
        ({"value": "12.5", "unit": "kWh"}, "energy_wh", 12500.0),
        ({"value": "12.5"}, "energy_wh", 12.5),  # spec default unit Wh
        ({"value": "7", "measurand": "Power.Active.Import", "unit": "W"}, "power_w", 7.0),
        ({"value": "7", "measurand": "Power.Active.Import", "unit": "kW"}, "power_w", 7000.0),
        ({"value": "7", "measurand": "Current.Import", "unit": "A"}, "current_l1_a", 7.0),
        ({"value": "230", "measurand": "Voltage", "unit": "V"}, "voltage_l1_v", 230.0),
        ({"value": "40", "measurand": "Temperature", "unit": "Celsius"}, "temperature_c", 40.0),
        ({"value": "40", "measurand": "Temperature", "unit": "Celcius"}, "temperature_c", 40.0),
        ({"value": "313.15", "measurand": "Temperature", "unit": "K"}, "temperature_c", 40.0),
        ({"value": "104", "measurand": "Temperature", "unit": "Fahrenheit"}, "temperature_c", 40.0),
        ({"value": "80", "measurand": "SoC", "unit": "Percent"}, "soc_pct", 80.0),
        ({"value": "16", "measurand": "Current.Offered", "unit": "A"}, "offered_a", 16.0),
    ],
)
def test_16_units(sample: dict[str, str], field: str, expected: float) -> None:
    f = Feed().call("MeterValues", mv16(sample))
    (row,) = f.rows()
    assert row[field] == pytest.approx(expected, rel=1e-12)
    assert f.reasons() == []


@pytest.mark.parametrize(
    ("measurand", "phase", "field"),
    [
        ("Current.Import", "L1", "current_l1_a"),
        ("Current.Import", "L2", "current_l2_a"),
        ("Current.Import", "L3", "current_l3_a"),
        ("Current.Import", "L2-N", "current_l2_a"),
        ("Current.Import", None, "current_l1_a"),  # single-phase / DC
        ("Voltage", "L1", "voltage_l1_v"),
        ("Voltage", "L3-N", "voltage_l3_v"),
        ("Voltage", None, "voltage_l1_v"),
        ("Voltage", "L1-L2", None),  # line-to-line: kept out, not converted
        ("Voltage", "L3-L1", None),
        ("Current.Import", "N", None),  # neutral current: kept out
        ("Energy.Active.Import.Register", "L1", None),  # per-phase register: kept out
    ],
)
def test_16_phases(measurand: str, phase: str | None, field: str | None) -> None:
    sample = {"value": "100", "measurand": measurand}
    if phase:
        sample["phase"] = phase
    f = Feed().call("MeterValues", mv16(sample))
    rows = f.rows()
    if field is None:
        assert rows == []
    else:
        assert rows[0][field] == 100.0
    assert f.reasons() == []


@pytest.mark.parametrize(
    ("sample", "field"),
    [
        ({"value": "5", "location": "Outlet"}, "energy_wh"),
        ({"value": "5", "location": "Inlet"}, None),  # grid side: kept out
        ({"value": "5", "measurand": "Power.Active.Import", "location": "Cable"}, None),
        ({"value": "5", "measurand": "SoC", "location": "EV"}, "soc_pct"),
        ({"value": "5", "measurand": "SoC"}, "soc_pct"),
        ({"value": "5", "measurand": "Temperature", "location": "Cable"}, "temperature_c"),
        ({"value": "5", "measurand": "Temperature", "location": "EV"}, None),  # battery
        ({"value": "5", "measurand": "Current.Offered", "location": "Inlet"}, "offered_a"),
    ],
)
def test_16_locations(sample: dict[str, str], field: str | None) -> None:
    f = Feed().call("MeterValues", mv16(sample))
    rows = f.rows()
    assert (rows[0][field] == 5.0) if field else rows == []


def test_16_main_meter_inlet_readings_are_kept() -> None:
    sample = {"value": "5", "location": "Inlet"}
    f = Feed().call("MeterValues", {**mv16(sample), "connectorId": 0})
    assert f.rows()[0]["energy_wh"] == 5.0


def test_16_hottest_temperature_wins() -> None:
    f = Feed().call(
        "MeterValues",
        mv16(
            {"value": "40", "measurand": "Temperature", "location": "Body", "unit": "Celsius"},
            {"value": "71", "measurand": "Temperature", "location": "Outlet", "unit": "Celsius"},
            {"value": "55", "measurand": "Temperature", "location": "Cable", "unit": "Celsius"},
        ),
    )
    assert f.rows()[0]["temperature_c"] == 71.0


def test_16_unit_less_non_energy_uses_natural_unit_and_counts_quirk() -> None:
    f = Feed().call("MeterValues", mv16({"value": "230", "measurand": "Voltage"}))
    assert f.rows()[0]["voltage_l1_v"] == 230.0
    assert f.decoder.quirks == {"unit_defaulted": 1}


@pytest.mark.parametrize(
    ("context", "tx", "reading"),
    [
        ("Transaction.Begin", False, True),
        ("Transaction.End", False, True),
        ("Sample.Periodic", False, False),
        ("Sample.Clock", False, False),
        ("Interruption.Begin", False, False),
        ("Sample.Periodic", True, True),
        ("Trigger", True, True),
    ],
)
def test_16_contexts_decide_billing_readings(context: str, tx: bool, reading: bool) -> None:
    extra: dict[str, Any] = {"transactionId": 12} if tx else {}
    f = Feed().call("MeterValues", mv16({"value": "500", "context": context}, **extra))
    readings = f.events("MeterReading")
    assert len(f.rows()) == 1  # every context is telemetry
    if not reading:
        assert readings == []
        return
    (r,) = readings
    shown = context if context.startswith("Transaction") else "Sample.Periodic"
    assert r == MeterReading(
        "CP1",
        1,
        T0,
        T0 + 1,
        500.0,
        None,
        context=shown,
        transaction_id="12" if tx else "",
        source="ocpp1.6",
    )


def test_16_numeric_value_is_accepted_as_quirk() -> None:
    f = Feed().call("MeterValues", mv16({"value": 1234.5}, {"value": "7", "measurand": "SoC"}))
    assert f.rows()[0]["energy_wh"] == 1234.5
    assert f.reasons() == []
    assert f.decoder.quirks["numeric_value"] == 1


def test_16_timestamp_without_offset_is_utc() -> None:
    f = Feed().call("MeterValues", mv16({"value": "1"}, ts="2026-11-24T03:00:00"))
    assert f.rows()[0]["ts"] == T0
    assert f.decoder.quirks == {"timestamp_without_offset": 1}


def test_16_ignored_actions_are_counted_not_rejected() -> None:
    f = Feed().call("Authorize", {"idTag": "X"}).call("DataTransfer", {"vendorId": "v"}, "2")
    assert f.events() == [] and f.reasons() == []
    assert f.decoder.ignored == {"Authorize": 1, "DataTransfer": 1}


# --------------------------------------------------------------- OCPP 2.0.1


def te(event: str, seq: int, tx: str = "T1", **extra: Any) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "eventType": event,
        "timestamp": "2026-11-24T03:00:00Z",
        "triggerReason": extra.pop("trigger", "Authorized"),
        "seqNo": seq,
        "transactionInfo": {"transactionId": tx, **extra.pop("info", {})},
    }
    payload.update(extra)
    return payload


def test_201_boot_and_heartbeat() -> None:
    f = Feed("2.0.1")
    f.call(
        "BootNotification",
        {
            "reason": "PowerUp",
            "chargingStation": {
                "model": "M",
                "vendorName": "V",
                "serialNumber": "S",
                "firmwareVersion": "2",
                "modem": {"iccid": "89"},
            },
        },
    )
    f.call("Heartbeat", {}, "2")
    boot, beat = f.events()
    assert boot == BootEvent(
        "CP1",
        T0 + 1,
        T0 + 1,
        vendor="V",
        model="M",
        firmware="2",
        serial="S",
        reason="PowerUp",
        extra={"iccid": "89"},
        source="ocpp2.0.1",
    )
    assert isinstance(beat, HeartbeatEvent) and beat.source == "ocpp2.0.1"


def status201(status: str, evse: int = 1) -> dict[str, Any]:
    return {
        "timestamp": "2026-11-24T03:00:00Z",
        "connectorStatus": status,
        "evseId": evse,
        "connectorId": 1,
    }


def test_201_status_maps_onto_16_statuses() -> None:
    f = Feed("2.0.1")
    f.call("StatusNotification", status201("Available"), "1")
    f.call("StatusNotification", status201("Occupied"), "2")  # plugged in, no transaction
    f.call("StatusNotification", status201("Faulted", evse=2), "3")
    got = [(e.connector, e.status, e.raw_status, e.error_code) for e in f.events()]
    assert got == [
        (1, "Available", "Available", "NoError"),
        (1, "Preparing", "Occupied", "NoError"),
        (2, "Faulted", "Faulted", "OtherError"),
    ]


def test_201_transaction_lifecycle_and_derived_statuses() -> None:
    f = Feed("2.0.1")
    f.call("StatusNotification", status201("Occupied"), "0")
    begin = {
        "timestamp": "2026-11-24T03:00:00Z",
        "sampledValue": [{"value": 1000, "context": "Transaction.Begin"}],
    }
    f.call(
        "TransactionEvent",
        te(
            "Started",
            0,
            evse={"id": 1, "connectorId": 1},
            idToken={"idToken": "RFID1", "type": "ISO14443"},
            info={"chargingState": "Charging"},
            meterValue=[begin],
        ),
        "1",
    )
    f.call(
        "TransactionEvent",
        te(
            "Updated",
            1,
            trigger="ChargingStateChanged",
            info={"chargingState": "SuspendedEV"},
            offline=True,
        ),
        "2",
    )
    end = {
        "timestamp": "2026-11-24T03:00:00Z",
        "sampledValue": [
            {"value": 9.5, "context": "Transaction.End", "unitOfMeasure": {"unit": "kWh"}}
        ],
    }
    f.call(
        "TransactionEvent",
        te(
            "Ended",
            2,
            trigger="EVCommunicationLost",
            info={"stoppedReason": "EVDisconnected", "chargingState": "Idle"},
            meterValue=[end],
        ),
        "3",
    )
    kinds = [
        (type(e).__name__, getattr(e, "kind", None) or getattr(e, "status", None))
        for e in f.events()
    ]
    assert kinds == [
        ("StatusEvent", "Preparing"),
        ("TransactionEvent", "start"),
        ("MeterReading", None),
        ("StatusEvent", "Charging"),
        ("TransactionEvent", "update"),
        ("StatusEvent", "SuspendedEV"),
        ("MeterReading", None),
        ("TransactionEvent", "stop"),
        ("StatusEvent", "Finishing"),
    ]
    start, update, stop = f.events("TransactionEvent")
    assert start == TransactionEvent(
        "CP1",
        1,
        T0,
        T0 + 1,
        "start",
        "T1",
        meter_wh=1000.0,
        id_tag="RFID1",
        reason="Authorized",
        seq_no=0,
        charging_state="Charging",
        source="ocpp2.0.1",
    )
    assert (update.connector, update.offline, update.reason, update.meter_wh) == (
        1,
        True,
        "ChargingStateChanged",
        None,
    )
    assert (stop.connector, stop.meter_wh, stop.reason, stop.seq_no) == (
        1,
        9500.0,
        "EVDisconnected",
        2,
    )
    assert [r["energy_wh"] for r in f.rows()] == [1000.0, 9500.0]
    # After the stop the EVSE is free: a new plug-in starts from Preparing again.
    f.call("StatusNotification", status201("Available"), "4")
    f.call("StatusNotification", status201("Occupied"), "5")
    assert f.events("StatusEvent")[-1].status == "Preparing"


def test_201_transaction_without_known_evse_is_flagged() -> None:
    f = Feed("2.0.1").call(
        "TransactionEvent",
        te(
            "Updated",
            4,
            tx="lost",
            meterValue=[{"timestamp": "2026-11-24T03:00:00Z", "sampledValue": [{"value": 5}]}],
        ),
    )
    event, reading = f.events()
    assert event.connector == 0 and event.flags == ("connector_unknown",)
    assert reading.transaction_id == "lost" and reading.energy_wh == 5.0
    assert f.rows() == []  # no connector, no batch row
    assert f.reasons() == []


def test_201_meter_values_units_multiplier_and_quirks() -> None:
    f = Feed("2.0.1").call(
        "MeterValues",
        mv201(
            {"value": 12.5, "unitOfMeasure": {"unit": "kWh"}},
            {"value": 7.2, "measurand": "Power.Active.Import", "unitOfMeasure": {"unit": "kw"}},
            {"value": 2.3, "measurand": "Voltage", "unitOfMeasure": {"unit": "V", "multiplier": 2}},
            {"value": "16", "measurand": "Current.Import", "phase": "L2"},
            {"value": 60, "measurand": "SoC", "location": "EV"},
        ),
    )
    (row,) = f.rows()
    assert row["energy_wh"] == 12500.0
    assert row["power_w"] == 7200.0
    assert row["voltage_l1_v"] == pytest.approx(230.0)
    assert row["current_l2_a"] == 16.0
    assert row["soc_pct"] == 60.0
    assert f.reasons() == []
    assert f.decoder.quirks == {"unit_case": 1, "string_value": 1, "unit_defaulted": 2}


def test_201_main_meter_is_evse_0() -> None:
    f = Feed("2.0.1").call("MeterValues", mv201({"value": 5}, evse=0))
    assert f.rows()[0]["connector"] == 0


def notify(
    component: str, variable: str, actual: str, trigger: str = "Alerting", **extra: Any
) -> dict[str, Any]:
    return {
        "generatedAt": "2026-11-24T03:00:00Z",
        "seqNo": 0,
        "eventData": [
            {
                "eventId": 1,
                "timestamp": "2026-11-24T03:00:00Z",
                "trigger": trigger,
                "actualValue": actual,
                "eventNotificationType": "HardWiredNotification",
                "component": {"name": component, "evse": {"id": 2}},
                "variable": {"name": variable},
                **extra,
            }
        ],
    }


@pytest.mark.parametrize(
    ("component", "variable", "actual", "trigger", "extra", "code"),
    [
        ("ConnectorPlugRetentionLock", "Problem", "true", "Alerting", {}, "ConnectorLockFailure"),
        ("RCD", "Tripped", "true", "Alerting", {}, "GroundFailure"),
        ("OverCurrentProtection", "Operated", "true", "Alerting", {}, "OverCurrentFailure"),
        ("PowerContactor", "Problem", "true", "Alerting", {}, "PowerSwitchFailure"),
        ("TokenReader", "Problem", "true", "Alerting", {}, "ReaderFailure"),
        ("TemperatureSensor", "Temperature", "91", "Alerting", {}, "HighTemperature"),
        ("ChargingStation", "Temperature", "91", "Delta", {}, "HighTemperature"),
        ("OCPPCommCtrlr", "SignalStrength", "-110", "Alerting", {}, "WeakSignal"),
        (
            "ElectricalFeed",
            "Voltage",
            "190",
            "Alerting",
            {"techCode": "UnderVoltage"},
            "UnderVoltage",
        ),
        ("ElectricalFeed", "Voltage", "260", "Alerting", {}, "OverVoltage"),
        ("Connector", "Problem", "true", "Alerting", {}, "OtherError"),
        ("Connector", "Problem", "false", "Alerting", {}, "NoError"),
        ("RCD", "Tripped", "true", "Alerting", {"cleared": True}, "NoError"),
        ("EVSE", "Power", "7200", "Periodic", {}, ""),  # a monitor value, not a problem
    ],
)
def test_201_notify_event_maps_onto_16_error_codes(
    component: str, variable: str, actual: str, trigger: str, extra: dict[str, Any], code: str
) -> None:
    f = Feed("2.0.1").call("NotifyEvent", notify(component, variable, actual, trigger, **extra))
    (problem,) = f.events()
    assert isinstance(problem, ProblemEvent)
    assert problem.error_code == code
    assert (problem.component, problem.variable, problem.actual_value) == (
        component,
        variable,
        actual,
    )
    assert (problem.connector, problem.ts, problem.trigger) == (2, T0, trigger)
