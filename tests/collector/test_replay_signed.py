"""Signed meter values end to end through ``chargewatch replay``: decoder ->
session ``signature_status`` -> ledger -> CDR ``signed_data`` -> alert.

OCPP 2.0.1: the real KEBA KC-P30 transaction (tests/collector/test_decode_ocpp_signed.py
rebuilds its frames from the external capture), signed by the meter's real key.
OCPP 1.6: SignedData values with OCMF records signed in the test (ocmf_kit), since
no real 1.6 SignedData frame was found (tests/fixtures/ocmf/PROVENANCE.md).
"""

from __future__ import annotations

import base64
import json
import sqlite3
from pathlib import Path
from typing import Any

import orjson
import pytest

from chargewatch.cli import main
from chargewatch.sessions.signatures import key_hex
from tests.billing.ocmf_kit import Meter, tamper
from tests.collector.test_decode_ocpp_signed import KEBA_KEY, keba_frames

TARIFFS = Path(__file__).resolve().parents[2] / "tariffs"
BASE = "https://charge.example.com"
KEBA = "P30_28881628"


def _capture(path: Path, frames: list[tuple[float, str, Any]]) -> Path:
    path.write_bytes(b"".join(orjson.dumps({"ts": _iso(t), "topic": tp, "payload": p}) + b"\n"
                              for t, tp, p in frames))  # fmt: skip
    return path


def _fleet(path: Path, charger: str, keys: str = "") -> Path:
    path.write_text(
        "sites:\n  - {id: depot, tariff: flat-energy}\n"
        f"chargers:\n  - {{id: {charger}, site: depot}}\n" + keys,
        encoding="utf-8",
    )
    return path


def _replay(tmp: Path, capture: Path, fleet: Path) -> dict[str, Any]:
    out = tmp / "out"
    args = ["replay", str(capture), "--out", str(out), "--fleet", str(fleet)]
    assert main([*args, "--tariffs", str(TARIFFS), "--receipt-base-url", BASE + "/"]) == 0
    (session,) = [json.loads(x) for x in (out / "sessions.jsonl").read_text().splitlines()]
    cdrs = [json.loads(x) for x in (out / "cdrs.jsonl").read_text().splitlines()]
    alerts = [json.loads(x) for x in (out / "alerts.jsonl").read_text().splitlines()]
    db = sqlite3.connect(out / "ledger.sqlite")
    row = db.execute(
        "SELECT signature_status, signature_reason, key_pinned FROM sessions"
    ).fetchone()
    readings = db.execute(
        "SELECT reason, value, unit, signature_valid, status FROM signed_readings ORDER BY seq"
    ).fetchall()
    db.close()
    return {"session": session, "cdrs": cdrs, "alerts": alerts, "row": row, "readings": readings}


def _keba_capture(tmp: Path) -> Path:
    recv = 1_755_759_816.0
    frames = [(recv + k * 23_465.0 + 1.0, f"ocpp/2.0.1/{KEBA}/cp", f)
              for k, f in enumerate(keba_frames())]  # fmt: skip
    # Time moves on after the stop: the alert rules evaluate (and wait their `for:`).
    end = frames[-1][0]
    frames += [(end + k * 600, f"ocpp/2.0.1/{KEBA}/cp", [2, f"h{k}", "Heartbeat", {}])
               for k in (1, 2, 3)]  # fmt: skip
    return _capture(tmp / "keba.jsonl", frames)


def test_ocpp201_keba_session_verifies_with_the_key_it_sent(tmp_path: Path) -> None:
    got = _replay(tmp_path, _keba_capture(tmp_path), _fleet(tmp_path / "f.yaml", KEBA))
    s = got["session"]
    assert (s["signature_status"], s["signature_reason"], s["key_pinned"]) == (
        "verified",
        "",
        False,
    )
    assert s["energy_wh"] == pytest.approx(19718.7, abs=0.01)
    assert s["signed_energy_wh"] == pytest.approx(19718.7) and s["signed_resolution_wh"] == 0.1
    assert "signed_energy_mismatch" not in s["quality"]
    assert [
        (r["reason"], r["value"], r["unit"], r["pagination"]) for r in s["signed_readings"]
    ] == [
        ("B", "2114.1356", "kWh", "T125"),
        ("E", "2133.8543", "kWh", "T125"),
    ]
    assert got["row"] == ("verified", "", 0)
    assert got["readings"] == [("B", "2114.1356", "kWh", 1, "verified"),
                               ("E", "2133.8543", "kWh", 1, "verified")]  # fmt: skip
    (cdr,) = got["cdrs"]
    sd = cdr["signed_data"]
    assert sd["encoding_method"] == "OCMF" and sd["encoding_method_version"] == 1
    assert base64.b64decode(sd["public_key"]).hex().upper() == key_hex(KEBA_KEY)
    assert sd["url"] == f"{BASE}/api/v1/sessions/{s['session_id']}/receipt"
    # One record signs both readings: it is the Start and the End value.
    assert [v["nature"] for v in sd["signed_values"]] == ["Start", "End"]
    ocmf = base64.b64decode(sd["signed_values"][0]["signed_data"]).decode()
    assert ocmf.startswith("OCMF|") and '"PG":"T125"' in ocmf
    assert sd["signed_values"][1]["plain_data"].startswith("B 2114.1356 kWh 2025-08-21T07:03:36")
    assert not [a for a in got["alerts"] if a["alertname"].startswith("Signed")]


def test_ocpp201_keba_key_pinned_in_the_fleet_file(tmp_path: Path) -> None:
    keys = f"meter_keys:\n  - {{meter_serial: '28881628', public_key: {key_hex(KEBA_KEY)}}}\n"
    got = _replay(tmp_path, _keba_capture(tmp_path), _fleet(tmp_path / "f.yaml", KEBA, keys))
    assert (got["session"]["signature_status"], got["session"]["key_pinned"]) == ("verified", True)


def test_ocpp201_keba_another_pinned_key_is_invalid_and_alerts(tmp_path: Path) -> None:
    keys = f"meter_keys:\n  - {{charger: {KEBA}, public_key: {Meter().public_hex}}}\n"
    got = _replay(tmp_path, _keba_capture(tmp_path), _fleet(tmp_path / "f.yaml", KEBA, keys))
    s = got["session"]
    assert s["signature_status"] == "invalid" and "pinned key" in s["signature_reason"]
    fired = [a for a in got["alerts"] if a["alertname"] == "SignedReadingInvalid"]
    assert fired and fired[0]["state"] == "firing"
    assert fired[0]["labels"]["charger"] == KEBA
    assert s["session_id"] in fired[0]["annotations"]["description"]


# OCPP 1.6: StartTransaction (answered with the transaction id), MeterValues with the
# signed begin value beside the plain register, StopTransaction whose
# transactionData carries the signed end value.
CP = "CP-SIG"
T0 = 1_790_000_000.0  # 2026-09-21T15:33:20Z


def _iso(t: float) -> str:
    from datetime import UTC, datetime  # noqa: PLC0415

    return datetime.fromtimestamp(t, UTC).isoformat().replace("+00:00", "Z")


def _tm(t: float) -> str:
    from datetime import UTC, datetime  # noqa: PLC0415

    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%S,000+0000 S")


def _v16_capture(tmp: Path, begin: str, end: str, stop_wh: int = 13_500) -> Path:
    t1 = T0 + 3600
    cp, csms = f"ocpp/1.6/{CP}/cp", f"ocpp/1.6/{CP}/csms"
    tx = 77

    def signed(ocmf: str, context: str, wh: int, t: float) -> dict[str, Any]:
        return {"timestamp": _iso(t), "sampledValue": [
            {"value": str(wh), "context": context, "unit": "Wh"},
            {"value": ocmf, "context": context, "format": "SignedData"}]}  # fmt: skip

    frames: list[tuple[float, str, Any]] = [
        (T0, cp, [2, "s1", "StartTransaction", {"connectorId": 1, "idTag": "04A1B2C3",
                                                "meterStart": 12_000, "timestamp": _iso(T0)}]),
        (T0 + 0.2, csms, [3, "s1", {"transactionId": tx, "idTagInfo": {"status": "Accepted"}}]),
        (T0 + 1, cp, [2, "m1", "MeterValues", {"connectorId": 1, "transactionId": tx,
                                               "meterValue": [signed(begin, "Transaction.Begin",
                                                                     12_000, T0)]}]),
    ]  # fmt: skip
    for k in range(1, 12):  # periodic registers in between: the billed energy
        t = T0 + k * 300
        wh = 12_000 + round((stop_wh - 12_000) * k * 300 / 3600)
        mv = {"connectorId": 1, "transactionId": tx, "meterValue": [{"timestamp": _iso(t),
              "sampledValue": [{"value": str(wh), "unit": "Wh"},
                               {"value": "11000", "measurand": "Power.Active.Import",
                                "unit": "W"}]}]}  # fmt: skip
        frames.append((t + 1, cp, [2, f"p{k}", "MeterValues", mv]))
    stop = {"transactionId": tx, "meterStop": stop_wh, "timestamp": _iso(t1),
            "reason": "EVDisconnected",
            "transactionData": [signed(end, "Transaction.End", stop_wh, t1)]}  # fmt: skip
    frames += [
        (t1 + 1, cp, [2, "e1", "StopTransaction", stop]),
        (t1 + 1.2, csms, [3, "e1", {}]),
        # Time moves on: the alert rules evaluate (and wait their `for:`).
        *((t1 + k * 600, cp, [2, f"h{k}", "Heartbeat", {}]) for k in (1, 2, 3)),
    ]
    return _capture(tmp / "v16.jsonl", frames)


def _v16(tmp: Path, m: Meter, begin: str, end: str, stop_wh: int = 13_500) -> dict[str, Any]:
    keys = f"meter_keys:\n  - {{charger: {CP}, public_key: {m.public_hex}}}\n"
    return _replay(tmp, _v16_capture(tmp, begin, end, stop_wh), _fleet(tmp / "f.yaml", CP, keys))


def _records(m: Meter, end_value: str = "13.500", pages: tuple[int, int] = (40, 41)) -> list[str]:
    return [
        m.record(pages[0], ("B", "12.000", _tm(T0))),
        m.record(pages[1], ("E", end_value, _tm(T0 + 3600))),
    ]


def test_ocpp16_signed_session_end_to_end(tmp_path: Path) -> None:
    m = Meter()
    got = _v16(tmp_path, m, *_records(m))
    s = got["session"]
    assert (s["signature_status"], s["key_pinned"]) == ("verified", True)
    assert s["energy_wh"] == pytest.approx(1500.0) and s["signed_energy_wh"] == 1500.0
    assert [r["reason"] for r in s["signed_readings"]] == ["B", "E"]
    (cdr,) = got["cdrs"]
    natures = [v["nature"] for v in cdr["signed_data"]["signed_values"]]
    assert natures == ["Start", "End"]
    assert not [a for a in got["alerts"] if a["alertname"].startswith("Signed")]


def test_ocpp16_tampered_reading_is_invalid_and_alerts(tmp_path: Path) -> None:
    m = Meter()
    begin, end = _records(m)
    got = _v16(tmp_path, m, begin, tamper(end, "13.500", "14.500"), stop_wh=14_500)
    s = got["session"]
    assert s["signature_status"] == "invalid"
    assert s["signature_reason"] == "signature does not verify with the pinned key"
    assert [r["signature_valid"] for r in s["signed_readings"]] == [True, False]
    assert got["row"][0] == "invalid"
    assert [a["state"] for a in got["alerts"] if a["alertname"] == "SignedReadingInvalid"][:1] == [
        "firing"
    ]
    # The unsigned values are kept and billed all the same: the status says what is wrong.
    assert s["energy_wh"] == pytest.approx(2500.0)


def test_ocpp16_pagination_gap_is_invalid(tmp_path: Path) -> None:
    m = Meter()
    got = _v16(tmp_path, m, *_records(m, pages=(40, 44)))
    assert got["session"]["signature_status"] == "invalid"
    assert "pagination gap T40 -> T44" in got["session"]["signature_reason"]


def test_ocpp16_signed_delta_disagreeing_with_billed_energy_flags_and_alerts(
    tmp_path: Path,
) -> None:
    m = Meter()
    # The meter signed 1.5 kWh; the registers the charger reported (and billing uses) say 1.9.
    got = _v16(tmp_path, m, *_records(m), stop_wh=13_900)
    s = got["session"]
    assert s["signature_status"] == "verified"
    assert s["energy_wh"] == pytest.approx(1900.0) and s["signed_energy_wh"] == 1500.0
    assert "signed_energy_mismatch" in s["quality"]
    fired = [a for a in got["alerts"] if a["alertname"] == "SignedEnergyMismatch"]
    assert fired and fired[0]["state"] == "firing"
    assert "signed 1500.0 Wh, billed 1900.0 Wh" in fired[0]["annotations"]["description"]


def test_ocpp16_malformed_signed_value_keeps_the_session_and_its_energy(tmp_path: Path) -> None:
    m = Meter()
    begin, _ = _records(m)
    got = _v16(tmp_path, m, begin, "OCMF|{broken")
    s = got["session"]
    assert s["signature_status"] == "invalid" and "does not parse" in s["signature_reason"]
    assert s["energy_wh"] == pytest.approx(1500.0)
