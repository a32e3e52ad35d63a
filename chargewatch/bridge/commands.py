"""Remediation commands from MQTT into chargers' sockets, one CALL per direction at a time.

chargewatch publishes a CALL on ``ocpp/<version>/<chargerId>/command``. The
bridge sends it to that charger with a message id of its own (``cwb-...``,
never one the CSMS could have used), and the charger's CALLRESULT/CALLERROR
for it goes to MQTT only, on the ``cp`` topic with the command's original id
(so chargewatch matches it to the command it sent, as it does today); the
CSMS never sees either frame.

OCPP-J allows one outstanding CALL per direction. The CSMS's CALLs and the
injected ones share the CSMS → charger direction, so a :class:`CallGate` per
charger holds an injected CALL until the CSMS's outstanding CALL is answered,
and holds the CSMS's CALLs while an injected one is outstanding; either wait
ends after ``timeout_s`` (an unanswered CALL frees the slot). Commands are
refused, with a CALLERROR published on ``cp`` whose details say
``refusedBy: chargewatch-bridge``, when the charger is not connected (with
that OCPP version), the action is not allowlisted, or the frame is malformed.
"""

from __future__ import annotations

__all__ = ["CallGate", "Commands"]

import asyncio
import collections
import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import orjson

from chargewatch.bridge import metrics
from chargewatch.bridge.frames import CALL, refusal

log = logging.getLogger(__name__)

Put = Callable[[str, str, bool], None]
_MAX_ID = 36  # OCPP-J message ids are at most 36 characters
_LATE = 64  # expired injected ids remembered, so a late answer still never reaches the CSMS


@dataclass(slots=True)
class _Injected:
    bridge_id: str
    command_id: str
    frame: str  # as sent to the charger


class CallGate:
    """The CSMS → charger CALL slot of one charger connection (event loop only)."""

    def __init__(
        self,
        charger: str,
        version: str,
        send: Callable[[str], Awaitable[None]],
        put: Put,
        timeout_s: float,
    ) -> None:
        self.charger, self.version = charger, version
        self.cp_topic = f"ocpp/{version}/{charger}/cp"
        self._send, self._put, self.timeout_s = send, put, timeout_s
        self.csms_outstanding: str | None = None
        self.injected: _Injected | None = None
        self.held_csms: collections.deque[tuple[str, str]] = collections.deque()
        self.held_injected: collections.deque[_Injected] = collections.deque()
        self._late: collections.OrderedDict[str, str] = collections.OrderedDict()
        self._tasks: set[asyncio.Task[None]] = set()
        self.closed = False

    @property
    def watching(self) -> bool:
        """True while a charger answer may need routing (only then are answers parsed)."""
        return self.csms_outstanding is not None or self.injected is not None or bool(self._late)

    # -- the CSMS's CALLs -------------------------------------------------------------

    def csms_call(self, message_id: str, frame: str) -> bool:
        """True: forward now. False: held until the injected CALL is answered."""
        if self.injected is not None or self.held_csms:
            self.held_csms.append((message_id, frame))
            return False
        self.csms_outstanding = message_id
        if self.held_injected:
            self._expire_later(self._expire_csms, message_id)
        return True

    # -- the charger's answers ----------------------------------------------------------

    def charger_answer(self, message_id: str, frame: str) -> bool:
        """True: forward to the CSMS. False: it answered an injected CALL (sent to MQTT)."""
        inj = self.injected
        if inj is not None and message_id == inj.bridge_id:
            self.injected = None
            self._publish_answer(frame, inj.bridge_id, inj.command_id)
            metrics.COMMANDS.labels(outcome="answered").inc()
            self._release(csms_first=True)
            return False
        late = self._late.pop(message_id, None)
        if late is not None:
            self._publish_answer(frame, message_id, late)
            return False
        if message_id == self.csms_outstanding:
            self.csms_outstanding = None
            self._release(csms_first=False)
        return True

    def _publish_answer(self, frame: str, bridge_id: str, command_id: str) -> None:
        # Only the id changes (the first occurrence is the id element: bridge ids
        # need no escaping); the rest stays exactly as the charger sent it.
        original = orjson.dumps(command_id).decode()
        self._put(self.cp_topic, frame.replace(f'"{bridge_id}"', original, 1), False)

    # -- injected CALLs -----------------------------------------------------------------

    def inject(self, command_id: str, action: str, payload: dict[str, Any]) -> None:
        bridge_id = f"cwb-{uuid.uuid4().hex[:24]}"
        frame = orjson.dumps([CALL, bridge_id, action, payload]).decode()
        inj = _Injected(bridge_id, command_id, frame)
        if self.injected is not None or self.csms_outstanding is not None or self.held_injected:
            self.held_injected.append(inj)
            if self.csms_outstanding is not None:
                self._expire_later(self._expire_csms, self.csms_outstanding)
            return
        self._start(inj)

    def _start(self, inj: _Injected) -> None:
        self.injected = inj
        self._expire_later(self._expire_injected, inj.bridge_id)
        self._spawn(inj.frame)

    def _release(self, *, csms_first: bool) -> None:
        """The slot is free: the next held CALL (the other side's first) goes out."""
        if self.closed or self.injected is not None or self.csms_outstanding is not None:
            return
        order = (self._next_csms, self._next_injected)
        for step in order if csms_first else order[::-1]:
            if step():
                return

    def _next_csms(self) -> bool:
        if not self.held_csms:
            return False
        message_id, frame = self.held_csms.popleft()
        self.csms_outstanding = message_id
        if self.held_injected:
            self._expire_later(self._expire_csms, message_id)
        self._spawn(frame)
        return True

    def _next_injected(self) -> bool:
        if not self.held_injected:
            return False
        self._start(self.held_injected.popleft())
        return True

    # -- timeouts and teardown --------------------------------------------------------

    def _expire_later(self, fn: Callable[[str], None], message_id: str) -> None:
        asyncio.get_running_loop().call_later(self.timeout_s, fn, message_id)

    def _expire_injected(self, bridge_id: str) -> None:
        inj = self.injected
        if inj is None or inj.bridge_id != bridge_id:
            return
        self.injected = None
        self._late[bridge_id] = inj.command_id
        while len(self._late) > _LATE:
            self._late.popitem(last=False)
        metrics.COMMANDS.labels(outcome="timeout").inc()
        log.warning("charger %s did not answer command %s in time", self.charger, inj.command_id)
        self._release(csms_first=True)

    def _expire_csms(self, message_id: str) -> None:
        if self.csms_outstanding == message_id:
            self.csms_outstanding = None
            self._release(csms_first=False)

    def _spawn(self, frame: str) -> None:
        task = asyncio.get_running_loop().create_task(self._send_quietly(frame))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _send_quietly(self, frame: str) -> None:
        try:
            await self._send(frame)
        except Exception as exc:  # the socket closed meanwhile: the pump notices too
            log.debug("charger %s: send failed: %s", self.charger, exc)

    def close(self) -> None:
        """The charger is gone: held commands are refused (never sent, so never run)."""
        self.closed = True
        for inj in self.held_injected:
            self._put(self.cp_topic, _refuse_not_connected(inj.command_id, self.charger), False)
            metrics.COMMANDS.labels(outcome="refused_not_connected").inc()
        self.held_injected.clear()
        self.held_csms.clear()


def _refuse_not_connected(command_id: str, charger: str) -> str:
    return refusal(command_id, "GenericError", "not_connected", f"{charger} is not connected")


class Commands:
    """Parses command messages and hands them to the charger's :class:`CallGate`."""

    def __init__(self, allowlist: tuple[str, ...], put: Put) -> None:
        self.allowlist = frozenset(allowlist)
        self._put = put
        self.gates: dict[str, CallGate] = {}

    def attach(self, gate: CallGate) -> None:
        self.gates[gate.charger] = gate

    def detach(self, gate: CallGate) -> None:
        if self.gates.get(gate.charger) is gate:
            del self.gates[gate.charger]
        gate.close()

    def submit(self, topic: str, payload: bytes) -> None:
        """One message from ``ocpp/<version>/<chargerId>/command`` (event loop)."""
        parts = topic.split("/")
        if len(parts) != 4 or parts[0] != "ocpp" or parts[3] != "command":
            return
        version, charger = parts[1], parts[2]
        cp_topic = f"ocpp/{version}/{charger}/cp"
        try:
            doc = orjson.loads(payload)
        except orjson.JSONDecodeError:
            doc = None
        command_id = doc[1] if isinstance(doc, list) and len(doc) > 1 else ""
        command_id = command_id if isinstance(command_id, str) else ""
        problem = _malformed(doc)
        if problem:
            self._refuse(cp_topic, command_id, "ProtocolError", "refused_malformed", problem)
            return
        assert isinstance(doc, list)
        action, body = doc[2], doc[3]
        if action not in self.allowlist:
            self._refuse(
                cp_topic,
                command_id,
                "SecurityError",
                "refused_not_allowed",
                f"{action} is not on the bridge's command allowlist",
            )
            return
        gate = self.gates.get(charger)
        if gate is None or gate.version != version:
            desc = f"{charger} is not connected" + (
                f" with OCPP {version} (it speaks {gate.version})" if gate else ""
            )
            self._refuse(cp_topic, command_id, "GenericError", "refused_not_connected", desc)
            return
        log.info("charger %s: injecting %s (command %s)", charger, action, command_id)
        gate.inject(command_id, action, body)

    def _refuse(self, topic: str, command_id: str, code: str, outcome: str, desc: str) -> None:
        metrics.COMMANDS.labels(outcome=outcome).inc()
        log.warning("command %r refused: %s", command_id, desc)
        reason = outcome.removeprefix("refused_")
        self._put(topic, refusal(command_id, code, reason, desc), False)


def _malformed(doc: Any) -> str:
    if not isinstance(doc, list) or len(doc) != 4 or doc[0] != CALL:
        return "a command is an OCPP-J CALL: [2, messageId, action, payload]"
    if not isinstance(doc[1], str) or not 0 < len(doc[1]) <= _MAX_ID:
        return f"messageId must be a string of 1..{_MAX_ID} characters"
    if not isinstance(doc[2], str) or not doc[2]:
        return "action must be a non-empty string"
    if not isinstance(doc[3], dict):
        return "payload must be an object"
    return ""
