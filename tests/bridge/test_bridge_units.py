"""The bridge's pieces without sockets: framing, the CALL gate, refusals, log redaction."""

from __future__ import annotations

import asyncio
import logging

import orjson
import pytest

from chargewatch.bridge.commands import CallGate, Commands
from chargewatch.bridge.frames import CALL, CALLERROR, CALLRESULT, frame_id, frame_type
from chargewatch.bridge.wslog import ws_logger


@pytest.mark.parametrize(
    ("frame", "kind"),
    [
        ('[2,"1","Heartbeat",{}]', CALL),
        (' [ 3 , "1", {}]', CALLRESULT),
        ('\n[4,"1","GenericError","",{}]', CALLERROR),
        ('[22,"1"]', 0),
        ('{"a": 1}', 0),
        ("", 0),
        (b'[2,"1","Heartbeat",{}]', 0),  # binary frames are not OCPP-J
    ],
)
def test_frame_type(frame: str | bytes, kind: int) -> None:
    assert frame_type(frame) == kind


def test_frame_id() -> None:
    assert frame_id('[3,"abc",{}]')[1] == "abc"
    assert frame_id("[3,7,{}]") == (None, "")
    assert frame_id("not json") == (None, "")


class _Charger:
    def __init__(self) -> None:
        self.sent: list[list[object]] = []

    async def send(self, frame: str) -> None:
        self.sent.append(orjson.loads(frame))


def test_gate_holds_each_side_while_the_other_is_outstanding() -> None:
    async def main() -> None:
        charger, published = _Charger(), []
        gate = CallGate("CP1", "1.6", charger.send, lambda t, p, r: published.append((t, p)), 30.0)
        # The CSMS's CALL goes out; an injected one waits for its answer.
        assert gate.csms_call("c1", '[2,"c1","GetConfiguration",{}]')
        gate.inject("cmd-1", "Reset", {"type": "Soft"})
        await asyncio.sleep(0)
        assert charger.sent == []
        assert gate.charger_answer("c1", '[3,"c1",{}]')  # to the CSMS
        await asyncio.sleep(0)
        assert [f[2] for f in charger.sent] == ["Reset"]
        bridge_id = str(charger.sent[0][1])
        assert bridge_id.startswith("cwb-")
        # While it is outstanding, the CSMS's next CALL is held.
        assert not gate.csms_call("c2", '[2,"c2","ClearCache",{}]')
        assert not gate.charger_answer(bridge_id, f'[3, "{bridge_id}", {{"status":"Accepted"}}]')
        await asyncio.sleep(0)
        assert [f[2] for f in charger.sent] == ["Reset", "ClearCache"]
        # The answer went to MQTT with the command's id, the rest of it untouched.
        assert published == [("ocpp/1.6/CP1/cp", '[3, "cmd-1", {"status":"Accepted"}]')]

    asyncio.run(main())


def test_gate_frees_the_slot_after_the_timeout_and_routes_a_late_answer() -> None:
    async def main() -> None:
        charger, published = _Charger(), []
        gate = CallGate("CP1", "1.6", charger.send, lambda t, p, r: published.append(p), 0.05)
        gate.inject("cmd-1", "Reset", {})
        await asyncio.sleep(0.1)
        assert gate.injected is None
        bridge_id = str(charger.sent[0][1])
        assert gate.csms_call("c1", '[2,"c1","ClearCache",{}]')  # not held any more
        assert not gate.charger_answer(bridge_id, f'[3,"{bridge_id}",{{}}]')  # never to the CSMS
        assert published == ['[3,"cmd-1",{}]']

    asyncio.run(main())


def test_held_commands_are_refused_when_the_charger_goes() -> None:
    async def main() -> None:
        charger, published = _Charger(), []
        gate = CallGate("CP1", "1.6", charger.send, lambda t, p, r: published.append(p), 30.0)
        gate.csms_call("c1", '[2,"c1","ClearCache",{}]')
        gate.inject("cmd-1", "Reset", {})
        gate.close()
        doc = orjson.loads(published[0])
        assert doc[:3] == [CALLERROR, "cmd-1", "GenericError"]
        assert doc[4] == {"refusedBy": "chargewatch-bridge", "reason": "not_connected"}

    asyncio.run(main())


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"not json", "malformed"),
        (b'[2,"x","Reset"]', "malformed"),
        (b'[3,"x",{}]', "malformed"),
        (b'[2,"' + b"x" * 37 + b'","Reset",{}]', "malformed"),
        (b'[2,"x","Reset",[]]', "malformed"),
        (b'[2,"x","DeleteCertificate",{}]', "not_allowed"),
        (b'[2,"x","Reset",{}]', "not_connected"),
    ],
)
def test_commands_refused(payload: bytes, reason: str) -> None:
    published: list[tuple[str, str]] = []
    cmds = Commands(("Reset",), lambda t, p, r: published.append((t, p)))
    cmds.submit("ocpp/1.6/CP9/command", payload)
    topic, frame = published[0]
    assert topic == "ocpp/1.6/CP9/cp"
    assert orjson.loads(frame)[4]["reason"] == reason


def test_websocket_log_never_shows_credentials(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    log = ws_logger()
    log.debug("> %s: %s", "Authorization", "Basic Q1AtQTpzM2NyZXQ=")
    log.debug("> %s: %s", "Sec-WebSocket-Protocol", "ocpp1.6")
    assert "Q1AtQTpzM2NyZXQ" not in caplog.text
    assert "Authorization: [redacted]" in caplog.text
    assert "Sec-WebSocket-Protocol: ocpp1.6" in caplog.text
