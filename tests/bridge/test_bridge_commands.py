"""Commands from MQTT into the charger's socket: answers to MQTT only, one CALL at a time."""

from __future__ import annotations

import asyncio
from pathlib import Path

import orjson
import pytest
from ocpp.v16 import call

from chargewatch.bridge.frames import CALL, CALLERROR, CALLRESULT
from chargewatch.ingest.decode_ocpp import OcppDecoder
from chargewatch.model.decoding import DecodeSink
from chargewatch.model.events import CommandResult
from chargewatch.model.fleet import ConnectorIndex
from tests.bridge.kit import Charger16, Csms, Recorder, bridge_config, charger, running, url_of
from tests.services import Mosquitto

pytestmark = pytest.mark.integration


def _calls_in_flight(log: list[tuple[str, str]]) -> int:
    """The most CALLs the charger had received and not yet answered, at any moment."""
    open_ids: set[str] = set()
    most = 0
    for direction, frame in log:
        doc = orjson.loads(frame)
        if direction == "in" and doc[0] == CALL:
            open_ids.add(doc[1])
            most = max(most, len(open_ids))
        elif direction == "out" and doc[0] in (CALLRESULT, CALLERROR):
            open_ids.discard(doc[1])
    return most


def test_reset_reaches_the_charger_and_its_answer_only_mqtt(
    mosquitto: Mosquitto, tmp_path: Path
) -> None:
    async def main() -> None:
        csms = Csms()
        await csms.start()
        rec = Recorder(mosquitto.port, client_id="rec-reset")
        async with running(bridge_config(csms.url, mosquitto.port, tmp_path / "spool")) as b:
            st = await charger(url_of(b), "CP-R")
            await st.cp.call(call.BootNotification("ACME", "Fast-1"))
            command = '[2,"rem-1","Reset",{"type":"Soft"}]'
            rec.publish("ocpp/1.6/CP-R/command", command)
            answers = await rec.wait("ocpp/1.6/CP-R/cp", 2)
            assert st.cp.resets == [{"type": "Soft"}]
            # The answer carries the command's id, as chargewatch sent it.
            assert orjson.loads(answers[-1]) == [3, "rem-1", {"status": "Accepted"}]
            # The charger saw a bridge-owned id; the CSMS saw neither frame.
            seen = [orjson.loads(m) for d, m in st.log if d == "in"]
            assert seen[-1][0] == CALL and seen[-1][1].startswith("cwb-")
            assert seen[-1][2:] == ["Reset", {"type": "Soft"}]
            assert not any("cwb-" in m or "Reset" in m for _, m in csms.logs["CP-R"])
            # The CSMS's own conversation goes on unchanged.
            await st.cp.call(call.Heartbeat())
            assert len(csms.frames("CP-R", "in")) == 2
            await st.close()
            # chargewatch records the outcome from the mirrored frames (as today).
            sink = DecodeSink()
            dec = OcppDecoder(ConnectorIndex())
            dec.decode(
                "ocpp/1.6/CP-R/command", "1.6", "CP-R", "command", command.encode(), 1.0, sink
            )
            for p in await rec.wait("ocpp/1.6/CP-R/cp", 2):
                dec.decode("ocpp/1.6/CP-R/cp", "1.6", "CP-R", "cp", p.encode(), 2.0, sink)
            results = [e for e in sink.events if isinstance(e, CommandResult)]
            assert [(r.action, r.message_id, r.status) for r in results] == [
                ("Reset", "rem-1", "Accepted")
            ]
        await csms.stop()
        rec.close()

    asyncio.run(main())


@pytest.mark.parametrize("first", ["csms", "injected"])
def test_csms_call_and_injected_call_at_once_are_serialised(
    mosquitto: Mosquitto, tmp_path: Path, first: str
) -> None:
    async def main() -> None:
        csms = Csms()
        await csms.start()
        rec = Recorder(mosquitto.port, client_id=f"rec-serial-{first}")
        Charger16.answer_delay_s = 0.4  # each answer takes a while: the calls overlap
        try:
            async with running(bridge_config(csms.url, mosquitto.port, tmp_path / "s")) as b:
                st = await charger(url_of(b), "CP-S")
                await st.cp.call(call.BootNotification("ACME", "Fast-1"))
                csms_cp = csms.cps["CP-S"]
                conf = call.ChangeConfiguration("HeartbeatInterval", "60")
                command = '[2,"rem-2","Reset",{"type":"Hard"}]'
                if first == "csms":
                    csms_task = asyncio.create_task(csms_cp.call(conf))
                    await asyncio.sleep(0.05)
                    rec.publish("ocpp/1.6/CP-S/command", command)
                else:
                    rec.publish("ocpp/1.6/CP-S/command", command)
                    await asyncio.sleep(0.1)
                    csms_task = asyncio.create_task(csms_cp.call(conf))
                result = await asyncio.wait_for(csms_task, 10)
                assert result.status == "Accepted"
                answers = await rec.wait("ocpp/1.6/CP-S/cp", 3)
                assert [3, "rem-2", {"status": "Accepted"}] in [orjson.loads(a) for a in answers]
                assert _calls_in_flight(st.log) == 1
                actions = [
                    orjson.loads(m)[2] for d, m in st.log if d == "in" and m.startswith("[2")
                ]
                assert actions == (
                    ["ChangeConfiguration", "Reset"]
                    if first == "csms"
                    else ["Reset", "ChangeConfiguration"]
                )
                assert not any("cwb-" in m for _, m in csms.logs["CP-S"])
                await st.close()
        finally:
            Charger16.answer_delay_s = 0.0
        await csms.stop()
        rec.close()

    asyncio.run(main())


def test_commands_refused_with_a_published_callerror(mosquitto: Mosquitto, tmp_path: Path) -> None:
    async def main() -> None:
        csms = Csms()
        await csms.start()
        rec = Recorder(mosquitto.port, client_id="rec-refuse")
        async with running(bridge_config(csms.url, mosquitto.port, tmp_path / "spool")) as b:
            st = await charger(url_of(b), "CP-X")
            rec.publish("ocpp/1.6/CP-GONE/command", '[2,"c1","Reset",{"type":"Soft"}]')
            rec.publish("ocpp/1.6/CP-X/command", '[2,"c2","UpdateFirmware",{}]')
            rec.publish("ocpp/1.6/CP-X/command", '[2,"c3","Reset"]')
            rec.publish("ocpp/2.0.1/CP-X/command", '[2,"c4","Reset",{"type":"OnIdle"}]')
            gone = await rec.wait("ocpp/1.6/CP-GONE/cp", 1)
            mine = await rec.wait("ocpp/1.6/CP-X/cp", 2)
            other = await rec.wait("ocpp/2.0.1/CP-X/cp", 1)
            docs = [orjson.loads(p) for p in gone + mine + other]
            assert [(d[0], d[1], d[2], d[4]["reason"]) for d in docs] == [
                (CALLERROR, "c1", "GenericError", "not_connected"),
                (CALLERROR, "c2", "SecurityError", "not_allowed"),
                (CALLERROR, "c3", "ProtocolError", "malformed"),
                (CALLERROR, "c4", "GenericError", "not_connected"),
            ]
            assert all(d[4]["refusedBy"] == "chargewatch-bridge" for d in docs)
            assert not any(d == "in" for d, _ in st.log)  # nothing reached the charger
            await st.close()
        await csms.stop()
        rec.close()

    asyncio.run(main())
