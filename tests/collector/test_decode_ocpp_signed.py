"""Signed meter values (OCMF) decoded as the reading they sign, on real data.

The KEBA KC-P30 frames are rebuilt from the decoded TransactionEvent(Ended)
meter values of the external capture ocmf_keba_p30_ocpp201_mhegele.jsonl
(m-hegele/notes@860c871 dev/keba-tx-end-mv.json): the same values, OCMF (base64) and
public key, in the wire's camelCase. The OCMF strings of the SAFE e.V.,
Chargy and pyocmf sets are the real ones those files hold.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest

from chargewatch.ingest.ocpp.signed import decode_signed
from chargewatch.model.batch import MeterBatch
from chargewatch.model.events import MeterReading, TransactionEvent
from chargewatch.sessions.session_engine import SessionEngine, SessionRecord
from tests.collector.ocpp_feed import Feed, mv16

# The KEBA P30's OCMF, as its signedMeterData carried it (base64), with Begin and End readings.
KEBA_OCMF_B64 = (
    "T0NNRnx7IkZWIjoiMS4xIiwiR0kiOiJLRUJBX0tDUDMwIiwiR1MiOiIyODg4MTYyOCIsIkdWIjoiMi45LjIiLCJQ"
    "RyI6IlQxMjUiLCJJUyI6dHJ1ZSwiSUwiOiJUUlVTVEVEIiwiSUYiOlsiUkZJRF9QTEFJTiIsIk9DUFBfQ0FDSEUi"
    "LCJJU08xNTExOF9OT05FIiwiUExNTl9OT05FIl0sIklUIjoiSVNPMTQ0NDMiLCJJRCI6IjNBNUFBODc2IiwiUkQi"
    "Olt7IlRNIjoiMjAyNS0wOC0yMVQwNzowMzozNiwwMDArMDAwMCBJIiwiVFgiOiJCIiwiRUYiOiIiLCJTVCI6Ikci"
    "LCJSViI6MjExNC4xMzU2LCJSSSI6IjEtYjoxLjguMCIsIlJVIjoia1doIn0seyJUTSI6IjIwMjUtMDgtMjFUMTM6"
    "MzQ6NDEsMDAwKzAwMDAgSSIsIlRYIjoiRSIsIkVGIjoiIiwiU1QiOiJHIiwiUlYiOjIxMzMuODU0MywiUkkiOiIx"
    "LWI6MS44LjAiLCJSVSI6ImtXaCJ9XX18eyJTRCI6IjMwNDYwMjIxMDBEQjM2QUNFNEQ5OEFENEM5NzFDNkRDQUQz"
    "NDU0MzNDN0JDOURGNDVGMDc0RkVCQUI5OTNBRjgzNDU4NkQxMUE3MDIyMTAwQkNGQjRDRERENzkyOTVGMUI1MjQ3"
    "QzAwRjc2NTg4OEE5RDkzQ0FDMDQ4RUI2NjQxRTQ5NzU0M0NBQjI5NUMxMSJ9"
)
KEBA_KEY = (
    "eyJVSyI6IjMwNTkzMDEzMDYwNzJBODY0OENFM0QwMjAxMDYwODJBODY0OENFM0QwMzAxMDcwMzQyMDAwNDYwNkE0"
    "NDdDQUZFREZCMkQ1RUUyMTE2MDYwN0M4NEY4NEUxRjMzMjJGNkRDMTJGOEFBMjgzMzVEOEUxQTVGMkRGMzQ4NzYy"
    "QjA5QUFEQzcwNTVFM0U1MUJGQjM3RUU5MjJCRUE2NUMwNEQyNTNCNDZCRkQ5RjQ0NjlGRTA4MUQ1In0="
)
# Real OCMF strings from public sources (provenance beside them).
CAPTURES = Path(__file__).resolve().parents[1] / "fixtures" / "ocmf"
# A KEBA KC-P30 record (pyocmf docs/demo/examples/sample.xml, paul-ww/pyocmf@15bfc7a).
KEBA_2019_OCMF = (
    'OCMF|{"FV":"1.0","GI":"KEBA_KCP30","GS":"17619300","GV":"2.8.5","PG":"T32","IS":'
    'false,"IL":"NONE","IF":["RFID_NONE","OCPP_NONE","ISO15118_NONE","PLMN_NONE"],"IT'
    '":"NONE","ID":"","RD":[{"TM":"2019-08-13T10:03:15,000+0000 I","TX":"B","EF":"","'
    'ST":"G","RV":0.2596,"RI":"1-b:1.8.0","RU":"kWh"},{"TM":"2019-08-13T10:03:36,000+'
    '0000 R","TX":"E","EF":"","ST":"G","RV":0.2597,"RI":"1-b:1.8.0","RU":"kWh"}]}|{"S'
    'D":"304502200E2F107C987A300AC1695CA89EA149A8CDFA16188AF0A33EE64B67964AA943F90221'
    '00889A72B6D65364BEA8562E7F6A0253157ACFF84FE4929A93B5964D23C4265699"}'
)


def _signed(value: float, context: str, data: str = KEBA_OCMF_B64) -> dict[str, Any]:
    """A KEBA signed sampled value: no measurand, no unit, the number in kWh."""
    return {
        "value": value,
        "context": context,
        "signedMeterValue": {
            "signedMeterData": data,
            "signingMethod": "ECC256",
            "encodingMethod": "OCMF",
            "publicKey": KEBA_KEY,
        },
    }


def _register(value: float, context: str, unit: bool = True) -> dict[str, Any]:
    sv: dict[str, Any] = {
        "value": value,
        "context": context,
        "measurand": "Energy.Active.Import.Register",
        "location": "Outlet",
    }
    if unit:
        sv["unitOfMeasure"] = {"unit": "Wh", "multiplier": 0}
    return sv


def keba_frames(begin_ts: str = "2025-08-21T07:03:36.481+0000") -> list[Any]:
    """Started (Begin values: the Wh register without a unit, as KEBA sends it, and
    the signed one) and the Ended event's four meter values as logged."""
    tx = {"transactionId": "keba-1"}
    started = {
        "eventType": "Started",
        "timestamp": "2025-08-21T07:03:36.000Z",
        "triggerReason": "Authorized",
        "seqNo": 0,
        "transactionInfo": tx,
        "evse": {"id": 1, "connectorId": 1},
        "idToken": {"idToken": "3A5AA876", "type": "ISO14443"},
        "meterValue": [
            {
                "timestamp": "2025-08-21T07:03:36.481+0000",
                "sampledValue": [_register(2114135.6, "Transaction.Begin", unit=False)],
            },
            {
                "timestamp": "2025-08-21T07:03:36.000+0000",
                "sampledValue": [_signed(2114.1356, "Transaction.Begin")],
            },
        ],
    }
    ended = {
        "eventType": "Ended",
        "timestamp": "2025-08-21T13:34:41.364Z",
        "triggerReason": "EVCommunicationLost",
        "seqNo": 1,
        "transactionInfo": {**tx, "stoppedReason": "EVDisconnected"},
        "meterValue": [
            {
                "timestamp": begin_ts,
                "sampledValue": [_register(2114135.6, "Transaction.Begin")],
            },
            {
                "timestamp": "2025-08-21T13:34:41.364+0000",
                "sampledValue": [_register(2133854.3, "Transaction.End")],
            },
            {
                "timestamp": "2025-08-21T07:03:36.000+0000",
                "sampledValue": [_signed(2114.1356, "Transaction.Begin")],
            },
            {
                "timestamp": "2025-08-21T13:34:41.000+0000",
                "sampledValue": [_signed(2133.8543, "Transaction.End")],
            },
        ],
    }
    return [[2, "k1", "TransactionEvent", started], [2, "k2", "TransactionEvent", ended]]


def _feed(frames: list[Any]) -> Feed:
    f = Feed("2.0.1")
    recv = 1_755_759_816.0  # 2025-08-21T07:03:36Z
    for k, frame in enumerate(frames):
        f.send(frame, charger="P30_28881628", recv=recv + k * 23_465.0 + 1.0)
    return f


def _sessions(f: Feed) -> list[SessionRecord]:
    engine = SessionEngine(f.index)
    batch = f.sink.meter.build()
    now = 1_755_790_000.0
    out = engine.update(batch, list(f.sink.events), now)
    out += engine.update(MeterBatch.empty(), [], now + 60.0)
    return out


def test_keba_signed_values_are_read_from_their_ocmf_in_kwh() -> None:
    f = _feed(keba_frames())
    assert f.reasons() == []
    # Each signed value's row holds its OCMF reading in Wh, not 2,114 "Wh".
    energies = sorted(r["energy_wh"] for r in f.rows())
    assert energies == pytest.approx([2114135.6] * 4 + [2133854.3] * 2)
    signed = [r for r in f.events("MeterReading") if r.signed is not None]
    assert len(signed) == 3
    end = signed[-1].signed
    assert end is not None and end.error == ""
    assert (end.value, end.unit, end.reading_reason) == ("2133.8543", "kWh", "E")
    assert end.energy_wh == pytest.approx(2133854.3)
    assert end.gateway_serial == "28881628" and end.raw == KEBA_OCMF_B64
    assert end.ocmf == base64.b64decode(KEBA_OCMF_B64).decode()
    assert (end.public_key, end.signing_method, end.encoding) == (KEBA_KEY, "ECC256", "OCMF")
    (stop,) = [e for e in f.events("TransactionEvent") if e.kind == "stop"]
    assert stop.meter_wh == pytest.approx(2133854.3)
    assert stop.signed is not None and stop.signed.reading_reason == "E"


@pytest.mark.parametrize(
    "begin_ts",
    ["2025-08-21T07:03:36.481+0000", "2025-08-21T07: 03: 36.481+0000"],
    ids=["clean", "damaged-timestamp-as-logged"],
)
def test_keba_session_is_billed_its_19718_7_wh(begin_ts: str) -> None:
    """Was 0 Wh with register_reset and register_jump (issue 18)."""
    (rec,) = _sessions(_feed(keba_frames(begin_ts)))
    assert rec.energy_wh == pytest.approx(19718.7, abs=0.01)
    assert rec.energy_source in ("transaction_meter", "register")
    for bad in ("register_reset", "register_jump", "bad_value", "needs_review"):
        assert bad not in rec.quality
    assert rec.signed_stop == KEBA_OCMF_B64


def test_malformed_signed_value_drops_alone_and_keeps_the_values_beside_it() -> None:
    for data in ("", "T0NNRnx7", "OCMF|{not json|{}", 'OCMF|{"RD":5}|x', "zz" * 40):
        f = Feed("2.0.1")
        body = {
            "evseId": 1,
            "meterValue": [
                {
                    "timestamp": "2026-11-24T03:00:00Z",
                    "sampledValue": [
                        _signed(2114.1356, "Sample.Periodic", data),
                        _register(2114135.6, "Sample.Periodic"),
                        {"value": 7200.0, "measurand": "Power.Active.Import",
                         "unitOfMeasure": {"unit": "W"}},
                    ],
                }
            ],
        }  # fmt: skip
        f.call("MeterValues", body)
        assert f.reasons() == []
        (row,) = f.rows()
        assert row["energy_wh"] == 2114135.6 and row["power_w"] == 7200.0
        assert f.decoder.quirks["signed_value_undecodable"] == 1
        if not data:
            continue  # nothing signed to pass on: no billing reading (a periodic value)
        (reading,) = f.events("MeterReading")
        assert isinstance(reading, MeterReading) and reading.signed is not None
        assert reading.signed.error and reading.signed.raw == data


def test_signed_value_alone_with_undecodable_data_is_not_read_as_wh() -> None:
    f = Feed("2.0.1")
    f.call("MeterValues", {"evseId": 1, "meterValue": [
        {"timestamp": "2026-11-24T03:00:00Z",
         "sampledValue": [_signed(2114.1356, "Sample.Periodic", "garbage")]}]})  # fmt: skip
    assert f.rows() == []


def test_16_signed_data_value_is_decoded_beside_the_plain_register() -> None:
    ocmf = KEBA_2019_OCMF
    f = Feed()
    f.call(
        "MeterValues",
        mv16(
            {"value": "5000.5", "context": "Transaction.End", "unit": "Wh"},
            {"value": ocmf, "context": "Transaction.End", "format": "SignedData"},
            transactionId=5,
        ),
    )
    (row,) = f.rows()
    assert row["energy_wh"] == 5000.5  # the plain register keeps the row
    (reading,) = f.events("MeterReading")
    assert reading.signed_data == ocmf and reading.signed is not None
    assert reading.signed.error == "" and reading.signed.unit == "kWh"
    assert reading.signed.value == "0.2597" and reading.signed.energy_wh == pytest.approx(259.7)


def test_16_signed_data_alone_fills_the_register() -> None:
    f = Feed()
    ocmf = base64.b64decode(KEBA_OCMF_B64).decode()
    f.call("MeterValues", mv16({"value": ocmf, "context": "Transaction.End",
                                "format": "SignedData"}, transactionId=5))  # fmt: skip
    (row,) = f.rows()
    assert row["energy_wh"] == pytest.approx(2133854.3)  # the E reading of a Transaction.End


def test_16_signed_meter_value_envelope_of_the_oca_whitepaper() -> None:
    """OCPP 1.6 signed meter values whitepaper (OCA, v1.0, 3.2.1): the SignedData
    value is a JSON SignedMeterValueType, as 2.0.1's signedMeterValue, serialised
    into the string (the form the SAP and Solidstudio charge-point simulators
    send); the key comes with it, recorded as the charger's."""
    envelope = json.dumps(
        {"signedMeterData": KEBA_OCMF_B64, "signingMethod": "", "encodingMethod": "OCMF",
         "publicKey": KEBA_KEY}
    )  # fmt: skip
    f = Feed()
    f.call("MeterValues", mv16({"value": envelope, "context": "Transaction.End",
                                "format": "SignedData"}, transactionId=5))  # fmt: skip
    (row,) = f.rows()
    assert row["energy_wh"] == pytest.approx(2133854.3)
    (reading,) = f.events("MeterReading")
    assert reading.signed is not None and reading.signed.error == ""
    assert reading.signed.public_key != ""
    # Not a SignedMeterValueType: read as before (and undecodable, counted, alone).
    f.call("MeterValues", mv16({"value": '{"x": 1}', "context": "Sample.Periodic",
                                "format": "SignedData"}, transactionId=5))  # fmt: skip
    assert f.decoder.quirks["signed_value_undecodable"] == 1


def _capture_strings() -> list[tuple[str, str]]:
    out = []
    for path in sorted(CAPTURES.glob("ocmf_*.jsonl")):
        for line in path.read_text().splitlines():
            d = json.loads(line)
            if d.get("ocmf"):
                out.append((path.name, d["ocmf"]))
    return out


def test_every_real_ocmf_string_decodes_to_an_energy_reading() -> None:
    found = _capture_strings()
    assert len(found) >= 400
    for name, ocmf in found:
        for raw in (ocmf, base64.b64encode(ocmf.encode()).decode(), ocmf.encode().hex()):
            got = decode_signed(raw, context="Transaction.End")
            assert got.error == "", (name, got.error)
            assert got.energy_wh is not None and got.energy_wh >= 0, name
            assert got.unit in ("Wh", "kWh") and got.value


def test_transaction_event_type_is_unchanged_for_unsigned_stops() -> None:
    f = Feed("2.0.1")
    frames = keba_frames()
    for frame in frames:
        for mv in frame[3]["meterValue"]:
            mv["sampledValue"] = [s for s in mv["sampledValue"] if "signedMeterValue" not in s]
        frame[3]["meterValue"] = [m for m in frame[3]["meterValue"] if m["sampledValue"]]
    for k, frame in enumerate(frames):
        f.send(frame, recv=1_755_759_817.0 + k)
    stops = [e for e in f.events("TransactionEvent") if e.kind == "stop"]
    assert isinstance(stops[0], TransactionEvent)
    assert stops[0].signed is None and stops[0].signed_data == ""
