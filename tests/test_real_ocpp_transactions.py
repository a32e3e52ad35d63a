"""Whole transactions of real chargers (tests/fixtures/real_ocpp/, PROVENANCE.md
there) through ``chargewatch replay``, checked for what a user sees: one session
per transaction, its energy as read by hand from the frames, its start and stop,
and its price once the charger's site has a tariff.

Every figure below is read off the capture's frames (cited beside it), not
taken from the product's output.
"""

from __future__ import annotations

import json
from datetime import datetime
from decimal import ROUND_CEILING, ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

import orjson
import pytest

from chargewatch.cli import main
from chargewatch.collector.replay import replay
from chargewatch.model.batch import MeterBatch
from chargewatch.sessions.session_engine import SessionEngine
from tests.collector.ocpp_feed import Feed

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT / "tests" / "fixtures" / "real_ocpp"
TARIFFS = ROOT / "tariffs"

# KEBA KC-P30 (meter 28881628, fw 2.9.2), OCPP 2.0.1: TransactionEvent Started
# then Ended, 6.5 h apart (capture keba_p30_201_mhegele; its payloads are
# re-serialised from the CSMS proxy's log, see PROVENANCE.md).
KEBA = "keba_p30_201_mhegele"
KEBA_TX = "28881628250821070333100549825004"  # transactionInfo.transactionId, both events
# Started: meterValue Transaction.Begin 2114135.6 (Wh, the default unit);
# Ended: meterValue Transaction.End 2133854.3 Wh (unitOfMeasure Wh).
KEBA_BEGIN_WH = Decimal("2114135.6")
KEBA_END_WH = Decimal("2133854.3")
KEBA_START = "2025-08-21T07:03:33.373Z"  # Started's timestamp (…373+0000)
KEBA_STOP = "2025-08-21T13:34:41.364Z"  # Ended's timestamp (…364+0000)
# The OCMF both events carry (signed Begin/End values 2114.1356 / 2133.8543,
# RU kWh) is the same reading in kWh.
KEBA_SIGNED_WH = (Decimal("2133.8543") - Decimal("2114.1356")) * 1000


def _fleet(tmp: Path, charger: str, tariff: str) -> Path:
    path = tmp / f"fleet-{tariff}.yaml"
    path.write_text(
        f"sites:\n  - {{id: depot, tariff: {tariff}}}\n"
        f"chargers:\n  - {{id: {charger}, site: depot}}\n",
        encoding="utf-8",
    )
    return path


def _replay(tmp: Path, capture: str, tariff: str) -> dict[str, list[dict[str, Any]]]:
    out = tmp / f"out-{tariff}"
    fleet = _fleet(tmp, capture, tariff)
    args = ["replay", str(CORPUS / f"{capture}.jsonl"), "--out", str(out)]
    assert main([*args, "--fleet", str(fleet), "--tariffs", str(TARIFFS)]) == 0
    return {
        name: [json.loads(x) for x in (out / f"{name}.jsonl").read_text().splitlines()]
        for name in ("sessions", "cdrs", "rejected", "open_sessions")
    }


def _tariff(tariff_id: str) -> dict[str, Any]:
    for path in TARIFFS.glob("*.json"):
        doc: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
        if doc["id"] == tariff_id:
            return doc
    raise LookupError(tariff_id)


def _energy_price(tariff_id: str) -> tuple[Decimal, Decimal]:
    """(EUR per kWh, step in Wh) of the tariff's only ENERGY component."""
    (energy,) = [
        c
        for el in _tariff(tariff_id)["elements"]
        for c in el["price_components"]
        if c["type"] == "ENERGY"
    ]
    return Decimal(str(energy["price"])), Decimal(energy["step_size"])


def _energy_cost(wh: Decimal, tariff_id: str) -> Decimal:
    """Whole steps of energy at the tariff's price, rounded half-up to 4
    decimals at the end (docs/pricing.md)."""
    price, step = _energy_price(tariff_id)
    billed_wh = (wh / step).to_integral_value(ROUND_CEILING) * step
    return (billed_wh * price / 1000).quantize(Decimal("0.0001"), ROUND_HALF_UP)


@pytest.mark.parametrize("tariff", ["flat-energy", "idle-fee"])
def test_keba_p30_201_transaction_is_one_priced_session(tariff: str, tmp_path: Path) -> None:
    got = _replay(tmp_path, KEBA, tariff)
    assert got["rejected"] == []
    (s,) = got["sessions"]
    assert s["transaction_id"] == KEBA_TX
    assert (s["start"], s["stop"]) == (KEBA_START, KEBA_STOP)
    # The Ended event's stoppedReason (its triggerReason is Authorized).
    assert s["charger_stop_reason"] == "EVDisconnected"
    assert Decimal(str(s["energy_wh"])) == KEBA_END_WH - KEBA_BEGIN_WH
    assert (s["meter_start_wh"], s["meter_stop_wh"]) == (
        float(KEBA_BEGIN_WH),
        float(KEBA_END_WH),
    )
    # Signed by the meter's key, which the frames carry: verified, same energy.
    assert s["signature_status"] == "verified"
    assert Decimal(str(s["signed_energy_wh"])) == KEBA_SIGNED_WH
    (cdr,) = got["cdrs"]
    assert (cdr["start_date_time"], cdr["end_date_time"]) == (KEBA_START, KEBA_STOP)
    assert Decimal(str(cdr["total_energy"])) == (KEBA_END_WH - KEBA_BEGIN_WH) / 1000
    cost = _energy_cost(KEBA_END_WH - KEBA_BEGIN_WH, tariff)
    assert Decimal(str(cdr["total_energy_cost"]["excl_vat"])) == cost
    # The 19.7 kWh flowed some time in the 6.5 h between the two events (nothing
    # says when): that time is not parking, so the idle fee (after 3 h) adds nothing.
    assert cdr["total_parking_cost"]["excl_vat"] == 0
    assert Decimal(str(cdr["total_cost"]["excl_vat"])) == cost


# AcTEC EV-AC22K, OCPP 1.6: 17 MeterValues of transaction 1 (capture
# actec_ev_ac22k_energymgmt), started before the excerpt and not stopped in it.
ACTEC = "actec_ev_ac22k_energymgmt"
# MeterValues "1063" (first): timestamp 2026-02-24T06:15:22.000Z, register "60" Wh;
# "1096" (last): 2026-02-24T06:31:23.000Z, register "1360" Wh.
ACTEC_FIRST = ("2026-02-24T06:15:22+00:00", 60.0)
ACTEC_LAST = ("2026-02-24T06:31:23+00:00", 1360.0)


def test_actec_running_transaction_shows_its_energy_so_far() -> None:
    """What a dashboard shows for it: the open session of transaction 1 on
    connector 1, from its first reading, with the register's growth so far."""
    feed = Feed()
    last = 0.0
    for line in (CORPUS / f"{ACTEC}.jsonl").read_bytes().splitlines():
        frame = orjson.loads(line)
        _, _, charger, source = str(frame["topic"]).split("/")
        last = datetime.fromisoformat(str(frame["ts"]).replace("Z", "+00:00")).timestamp()
        feed.send(frame["payload"], source=source, charger=charger, recv=last)
    engine = SessionEngine(feed.index)
    assert engine.update(feed.sink.meter.build(), list(feed.sink.events), last) == []
    assert engine.update(MeterBatch.empty(), [], last + 60) == []
    (s,) = engine.open_sessions()
    assert (s["connector_id"], s["transaction_id"]) == (1, "1")
    assert s["start"] == datetime.fromisoformat(ACTEC_FIRST[0]).timestamp()
    assert s["energy_wh"] == ACTEC_LAST[1] - ACTEC_FIRST[1]
    # Charging at 4.1-5.1 kW throughout (the per-phase powers of every frame).
    last_ts = datetime.fromisoformat(ACTEC_LAST[0]).timestamp()
    assert s["charging_s"] == pytest.approx(last_ts - s["start"])
    assert s["idle_s"] == 0


def test_actec_replay_lists_the_session_the_capture_ended_in(tmp_path: Path) -> None:
    """Through `chargewatch replay`: the transaction was never stopped in the
    excerpt, so it is neither in sessions.jsonl nor billed, and
    open_sessions.jsonl says what it had come to."""
    res = _replay(tmp_path, ACTEC, "flat-energy")
    assert res["sessions"] == [] and res["cdrs"] == [] and res["rejected"] == []
    (s,) = res["open_sessions"]
    assert (s["connector_id"], s["transaction_id"]) == (1, "1")
    assert s["start"] == "2026-02-24T06:15:22.000Z"
    assert s["energy_wh"] == ACTEC_LAST[1] - ACTEC_FIRST[1]


# QUENCH DC charger (two CCS outlets), OCPP 1.6, charger-side log (capture
# quench_dc_ocppparser; an extract of the stored log, see PROVENANCE.md): two
# whole transactions of one card at once, 77 min each, about 100 kWh each.
QUENCH = "quench_dc_ocppparser"
#: transactionId (StartTransaction.conf), connector, StartTransaction meterStart
#: and timestamp, StopTransaction meterStop and timestamp, as in the frames.
QUENCH_TX = {
    "91262367": (1, 27615218, "2025-08-22T02:53:53.273Z", 27715695, "2025-08-22T04:11:09.129Z"),
    "39587667": (2, 55557067, "2025-08-22T02:54:31.526Z", 55657562, "2025-08-22T04:11:09.316Z"),
}


@pytest.mark.parametrize("tariff", ["flat-energy", "idle-fee"])
def test_quench_dc_transactions_are_two_priced_sessions(tariff: str, tmp_path: Path) -> None:
    got = _replay(tmp_path, QUENCH, tariff)
    # Valid as sent: the CSMS's Rejected DataTransfer, SoC-only transactionData,
    # the AC input's kWh register and DC values without a phase beside the outlet's.
    assert got["rejected"] == [] and got["open_sessions"] == []
    sessions = {s["transaction_id"]: s for s in got["sessions"]}
    assert set(sessions) == set(QUENCH_TX)
    cdrs = {(c["start_date_time"], c["end_date_time"]): c for c in got["cdrs"]}
    for tx, (connector, meter_start, start, meter_stop, stop) in QUENCH_TX.items():
        s = sessions[tx]
        assert s["connector_id"] == connector
        assert (s["start"], s["stop"]) == (start, stop)
        assert s["charger_stop_reason"] == "EVDisconnected"
        assert (s["meter_start_wh"], s["meter_stop_wh"]) == (meter_start, meter_stop)
        # The outlet's Wh register, not the inlet's kWh one (30463 -> 30605 kWh).
        assert s["energy_wh"] == meter_stop - meter_start
        cdr = cdrs[(start, stop)]
        wh = Decimal(meter_stop - meter_start)
        assert Decimal(str(cdr["total_energy"])) == wh / 1000
        cost = _energy_cost(wh, tariff)
        assert Decimal(str(cdr["total_energy_cost"]["excl_vat"])) == cost
        # Charging at 8-85 kW from start to stop: no parking (idle-fee bills after 3 h).
        assert cdr["total_parking_cost"]["excl_vat"] == 0
        assert Decimal(str(cdr["total_cost"]["excl_vat"])) == cost


# The same make of charger at another site (capture quench_ts0064_estop_ocppparser;
# an extract of its own OCPP client log "TS0064 Emergency Stop No Available
# Status", see PROVENANCE.md): an emergency stop button pressed at 05:01:20Z
# faults both outlets, a charge on connector 2 then runs 4.7 min while the
# charger still reports Faulted, and a second emergency shutdown ends it with
# StopTransaction reason EmergencyStop.
TS0064 = "quench_ts0064_estop_ocppparser"
TS0064_TX = "51613"  # StartTransaction.conf transactionId
TS0064_METER_START = 5121707  # StartTransaction meterStart (Wh)
TS0064_START = "2026-03-13T05:03:24.660Z"  # StartTransaction timestamp
TS0064_METER_STOP = 5123598  # StopTransaction meterStop (Wh), = Transaction.End register
TS0064_STOP = "2026-03-13T05:08:04.012Z"  # StopTransaction timestamp


@pytest.mark.parametrize("tariff", ["flat-energy", "idle-fee"])
def test_quench_emergency_stop_transaction_is_one_priced_session(
    tariff: str, tmp_path: Path
) -> None:
    got = _replay(tmp_path, TS0064, tariff)
    # Valid as sent: Invalid Authorize answers, the CSMS's AutoStop DataTransfer,
    # and its RemoteStopTransaction of the stopped transaction, Rejected.
    assert got["rejected"] == [] and got["open_sessions"] == []
    (s,) = got["sessions"]
    assert (s["transaction_id"], s["connector_id"]) == (TS0064_TX, 2)
    assert (s["start"], s["stop"]) == (TS0064_START, TS0064_STOP)
    assert (s["meter_start_wh"], s["meter_stop_wh"]) == (TS0064_METER_START, TS0064_METER_STOP)
    # 1,891 Wh (the charger's own session_stop log line says 1890: its SECC's count).
    assert s["energy_wh"] == TS0064_METER_STOP - TS0064_METER_START
    # Closed by its StopTransaction, whose reason says the emergency stop cut it.
    assert (s["stop_reason"], s["charger_stop_reason"]) == ("transaction", "EmergencyStop")
    (cdr,) = got["cdrs"]
    assert (cdr["start_date_time"], cdr["end_date_time"]) == (TS0064_START, TS0064_STOP)
    wh = Decimal(TS0064_METER_STOP - TS0064_METER_START)
    assert Decimal(str(cdr["total_energy"])) == wh / 1000
    cost = _energy_cost(wh, tariff)
    assert Decimal(str(cdr["total_energy_cost"]["excl_vat"])) == cost
    assert cdr["total_parking_cost"]["excl_vat"] == 0
    assert Decimal(str(cdr["total_cost"]["excl_vat"])) == cost


# The same make again (capture quench_dc060_fault_ocppparser; an extract of its
# OCPP client log "DC060 After Error Charging happening", see PROVENANCE.md): a
# car fails to start twice on connector 2 (Preparing, two RemoteStartTransaction
# Accepted without a transaction, SuspendedEV EVCommunicationError, Finishing
# OtherError BMSCommunicationTimeout), then charges 12 min at up to 182 kW with
# no further StatusNotification; 8 s after its StopTransaction a supply power
# loss faults connectors 1, 2 and 0 (OtherError PowerFailure, vendorErrorCode "19").
DC060 = "quench_dc060_fault_ocppparser"
DC060_TX = "77012"  # StartTransaction.conf transactionId
DC060_METER_START = 3306340  # StartTransaction meterStart (Wh), = Transaction.Begin register
DC060_START = "2026-07-04T07:38:18.742Z"  # StartTransaction timestamp
DC060_METER_STOP = 3339320  # StopTransaction meterStop (Wh), = Transaction.End register
DC060_STOP = "2026-07-04T07:50:20.236Z"  # StopTransaction timestamp
DC060_FAULTED = {"1": "2026-07-04T07:50:28.176Z", "2": "2026-07-04T07:50:28.232Z"}
DC060_END = "2026-07-04T07:51:15.021Z"  # the last frame kept (Heartbeat answer)


@pytest.mark.parametrize("tariff", ["flat-energy", "idle-fee"])
def test_quench_dc060_charge_after_failed_starts_is_one_priced_session(
    tariff: str, tmp_path: Path
) -> None:
    got = _replay(tmp_path, DC060, tariff)
    # Valid as sent: RemoteStarts the charger Accepted and never started, the
    # CSMS's UnknownMessageId answer to the VehicleID DataTransfer.
    assert got["rejected"] == [] and got["open_sessions"] == []
    # The failed attempts started no transaction: one session, one CDR.
    (s,) = got["sessions"]
    assert (s["transaction_id"], s["connector_id"]) == (DC060_TX, 2)
    assert (s["start"], s["stop"]) == (DC060_START, DC060_STOP)
    assert (s["meter_start_wh"], s["meter_stop_wh"]) == (DC060_METER_START, DC060_METER_STOP)
    # 32,980 Wh (the charger's own session_stop log line says 32619: its SECC's count).
    assert s["energy_wh"] == DC060_METER_STOP - DC060_METER_START
    (cdr,) = got["cdrs"]
    assert (cdr["start_date_time"], cdr["end_date_time"]) == (DC060_START, DC060_STOP)
    wh = Decimal(DC060_METER_STOP - DC060_METER_START)
    assert Decimal(str(cdr["total_energy"])) == wh / 1000
    cost = _energy_cost(wh, tariff)
    assert Decimal(str(cdr["total_energy_cost"]["excl_vat"])) == cost
    assert cdr["total_parking_cost"]["excl_vat"] == 0
    assert Decimal(str(cdr["total_cost"]["excl_vat"])) == cost


def test_quench_dc060_power_failure_is_an_outage_not_yet_a_page(tmp_path: Path) -> None:
    """The Finishing status's OtherError of the failed attempt does not page while
    the connector charges (it paged OcppOtherError at 07:42:39.991Z before the
    transaction start ended it); the PowerFailure fault is 47 s old when the
    extract ends, short of error_codes.yaml's 5 min for OtherError, so it pages
    nothing yet but is each port's outage, with its error code, until the end.
    No fleet, as the corpus replays (a fleet entry without ``connectors`` has one)."""
    replay(CORPUS / f"{DC060}.jsonl", tmp_path)
    alerts = [json.loads(x) for x in (tmp_path / "alerts.jsonl").read_text().splitlines()]
    assert [a for a in alerts if a["state"] == "firing"] == []
    uptime = [json.loads(x) for x in (tmp_path / "uptime.jsonl").read_text().splitlines()]
    outages = {
        u["connector_id"]: [
            (o["cause"], o["evidence"]["error_codes"], o["start"], o["end"]) for o in u["outages"]
        ]
        for u in uptime
    }
    assert outages == {
        c: [("faulted", ["OtherError"], _epoch(at), _epoch(DC060_END))]
        for c, at in DC060_FAULTED.items()
    }


def _epoch(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()
