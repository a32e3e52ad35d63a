"""Frames through the bridge: passed unchanged, mirrored exactly and in order, replayed."""

from __future__ import annotations

import asyncio
from pathlib import Path

import orjson
import pytest

from chargewatch.collector.replay import replay
from chargewatch.ingest.capture import encode_record
from tests.bridge.kit import Csms, Recorder, bridge_config, charger, now_iso, running, url_of
from tests.services import Mosquitto

pytestmark = pytest.mark.integration


async def _transaction16(url: str, charger_id: str) -> None:
    st = await charger(url, charger_id, "ocpp1.6")
    from ocpp.v16 import call  # noqa: PLC0415

    cp = st.cp
    await cp.call(call.BootNotification("ACME", "Fast-1"))
    await cp.call(call.StatusNotification(1, "NoError", "Preparing", timestamp=now_iso()))
    await cp.call(call.Authorize("TAG-1"))
    started = await cp.call(call.StartTransaction(1, "TAG-1", 1000, now_iso()))
    for i in range(1, 4):
        await cp.call(
            call.MeterValues(
                1,
                [
                    {
                        "timestamp": now_iso(),
                        "sampledValue": [
                            {
                                "value": str(1000 + 500 * i),
                                "measurand": "Energy.Active.Import.Register",
                                "unit": "Wh",
                            },
                            {"value": "7200", "measurand": "Power.Active.Import", "unit": "W"},
                        ],
                    }
                ],
                transaction_id=started.transaction_id,
            )
        )
        await asyncio.sleep(0.05)
    await cp.call(call.StopTransaction(3000, now_iso(), started.transaction_id, id_tag="TAG-1"))
    await cp.call(call.StatusNotification(1, "NoError", "Available", timestamp=now_iso()))
    await st.close()


def test_transaction_16_mirrored_exactly_then_replayed(
    mosquitto: Mosquitto, tmp_path: Path
) -> None:
    async def main() -> Recorder:
        csms = Csms()
        await csms.start()
        rec = Recorder(mosquitto.port, client_id="rec-flow16")
        async with running(bridge_config(csms.url, mosquitto.port, tmp_path / "spool")) as b:
            await _transaction16(url_of(b), "CP-16")
            # Frames each side sent, exactly, in order, on its topic.
            cp_sent = csms.frames("CP-16", "in")
            csms_sent = csms.frames("CP-16", "out")
            assert len(cp_sent) == 9 and len(csms_sent) == 9
            assert await rec.wait("ocpp/1.6/CP-16/cp", 9) == cp_sent
            assert await rec.wait("ocpp/1.6/CP-16/csms", 9) == csms_sent
            online = await rec.wait("ev/CP-16/online", 2)
            assert [orjson.loads(p) for p in online] == [{"online": True}, {"online": False}]
        await csms.stop()
        rec.close()
        return rec

    rec = asyncio.run(main())
    capture = tmp_path / "capture.jsonl"
    with capture.open("wb") as f:
        for recv, topic, payload, _ in rec.messages:
            f.write(encode_record(recv, topic, payload))
    out = tmp_path / "replay"
    result = replay(capture, out)
    assert result.stats.rejected == 0, (out / "rejected.jsonl").read_text()
    sessions = [orjson.loads(x) for x in (out / "sessions.jsonl").read_bytes().splitlines()]
    mine = [s for s in sessions if s["charger_id"] == "CP-16" and s.get("stop")]
    assert mine, sessions
    final = mine[-1]
    assert (final["connector_id"], final["id_tag"]) == (1, "TAG-1")
    assert (final["meter_start_wh"], final["meter_stop_wh"]) == (1000, 3000)
    assert final["energy_wh"] == pytest.approx(2000.0)


async def _transaction201(url: str, charger_id: str) -> None:
    from ocpp.v201 import call  # noqa: PLC0415

    st = await charger(url, charger_id, "ocpp2.0.1")
    cp = st.cp
    await cp.call(call.BootNotification({"model": "Fast-2", "vendor_name": "ACME"}, "PowerUp"))
    await cp.call(call.StatusNotification(now_iso(), "Occupied", 1, 1))
    tx = {"transaction_id": "TX-201"}

    def meter(wh: int, context: str = "Sample.Periodic") -> list[dict[str, object]]:
        value = {"value": wh, "measurand": "Energy.Active.Import.Register", "context": context}
        return [{"timestamp": now_iso(), "sampled_value": [value]}]

    await cp.call(
        call.TransactionEvent(
            "Started", now_iso(), "Authorized", 0, tx, meter_value=meter(5000, "Transaction.Begin"),
            evse={"id": 1, "connector_id": 1}, id_token={"id_token": "TAG-2", "type": "ISO14443"},
        )
    )  # fmt: skip
    for seq in (1, 2, 3):
        await cp.call(
            call.TransactionEvent(
                "Updated",
                now_iso(),
                "MeterValuePeriodic",
                seq,
                tx,
                meter_value=meter(5000 + 1000 * seq),
            )
        )
        await asyncio.sleep(0.05)
    await cp.call(
        call.TransactionEvent(
            "Ended", now_iso(), "EVCommunicationLost", 4,
            {**tx, "stopped_reason": "EVDisconnected"}, meter_value=meter(9000, "Transaction.End"),
        )
    )  # fmt: skip
    await cp.call(call.StatusNotification(now_iso(), "Available", 1, 1))
    await st.close()


def test_transaction_201_mirrored_exactly_then_replayed(
    mosquitto: Mosquitto, tmp_path: Path
) -> None:
    async def main() -> Recorder:
        csms = Csms()
        await csms.start()
        rec = Recorder(mosquitto.port, client_id="rec-flow201")
        async with running(bridge_config(csms.url, mosquitto.port, tmp_path / "spool")) as b:
            await _transaction201(url_of(b), "CP-201")
            cp_sent, csms_sent = csms.frames("CP-201", "in"), csms.frames("CP-201", "out")
            assert len(cp_sent) == len(csms_sent) == 8
            assert await rec.wait("ocpp/2.0.1/CP-201/cp", 8) == cp_sent
            assert await rec.wait("ocpp/2.0.1/CP-201/csms", 8) == csms_sent
        await csms.stop()
        rec.close()
        return rec

    rec = asyncio.run(main())
    capture = tmp_path / "capture.jsonl"
    with capture.open("wb") as f:
        for recv, topic, payload, _ in rec.messages:
            if "CP-201" in topic:
                f.write(encode_record(recv, topic, payload))
    out = tmp_path / "replay"
    result = replay(capture, out)
    assert result.stats.rejected == 0, (out / "rejected.jsonl").read_text()
    sessions = [orjson.loads(x) for x in (out / "sessions.jsonl").read_bytes().splitlines()]
    mine = [s for s in sessions if s["charger_id"] == "CP-201" and s.get("stop")]
    assert mine, sessions
    assert mine[-1]["transaction_id"] == "TX-201"
    assert mine[-1]["energy_wh"] == pytest.approx(4000.0), mine[-1]
