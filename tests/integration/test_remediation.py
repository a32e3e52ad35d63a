"""Automatic remediation over a real Mosquitto: fault in, OCPP CALL out, outcome in the alerts.

A separate MQTT client plays the OCPP bridge beside the CSMS: it subscribes to
``ocpp/+/+/command`` and, where a test wants the fault to clear, answers a
command the way a charger would (a CALLRESULT on ``cp`` and an Available status).
The collector runs in-process with a rule whose action has a short delay and
cooldown, an allowlist file and a fleet that places each charger at a site.

Timings (rule below): the alert fires on the first evaluation after the fault
(``for: 0s``), attempt 1 goes out ``delay`` = 1s later, attempt 2 ``cooldown`` =
2s after that, and the alert escalates another 2s later. The tests count
commands over windows longer than that spacing; they assert no durations.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from chargewatch.alerting import BucketSpec, RateLimits, Transition
from chargewatch.collector.service import Collector
from chargewatch.config.fleet_file import load_fleet
from chargewatch.config.settings import AlertingConfig, Config, HttpConfig
from chargewatch.core import metrics
from chargewatch.ingest.mqtt import MqttConfig
from tests.services import Alertmanager, Mosquitto

pytestmark = pytest.mark.integration

DELAY_S = 1.0
COOLDOWN_S = 2.0
MAX_ATTEMPTS = 2

RULES = f"""
groups:
  - name: remediation-it
    interval: 250ms
    rules:
      - alert: LockFailure
        expr: error_code == "ConnectorLockFailure"
        for: 0s
        labels: {{severity: warning, error_code: ConnectorLockFailure}}
        annotations:
          summary: "{{{{ $labels.charger }}}}/{{{{ $labels.connector }}}} cannot unlock"
        actions:
          - command: UnlockConnector
            delay: {int(DELAY_S)}s
            max_attempts: {MAX_ATTEMPTS}
            cooldown: {int(COOLDOWN_S)}s
"""

# UnlockConnector is allowed at the depot only; the mall allows Reset, which
# this rule never asks for, so its chargers must never receive anything.
ALLOWLIST = """
sites:
  depot: [UnlockConnector, Reset]
  mall: [Reset]
"""


@dataclass
class Received:
    at: float
    topic: str
    frame: list[Any]


@dataclass
class Bridge:
    """The OCPP bridge's side of the broker: records commands, optionally 'fixes' the charger."""

    port: int
    received: list[Received] = field(default_factory=list)
    on_command: Callable[[mqtt.Client, Received], None] | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)
    subscribed: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=f"bridge-{uuid.uuid4().hex[:8]}"
        )
        self.client.on_connect = self._connected
        self.client.on_subscribe = lambda *a: self.subscribed.set()
        self.client.on_message = self._message

    def _connected(self, client: mqtt.Client, *args: object) -> None:
        client.subscribe("ocpp/+/+/command", qos=1)

    def _message(self, client: mqtt.Client, userdata: object, msg: mqtt.MQTTMessage) -> None:
        rec = Received(time.monotonic(), msg.topic, orjson.loads(msg.payload))
        with self.lock:
            self.received.append(rec)
        if self.on_command is not None:
            self.on_command(client, rec)

    def start(self) -> None:
        self.client.connect("127.0.0.1", self.port)
        self.client.loop_start()
        assert self.subscribed.wait(10), "bridge never subscribed"

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def commands_for(self, charger: str) -> list[Received]:
        with self.lock:
            return [r for r in self.received if r.topic.split("/")[2] == charger]


@dataclass
class Env:
    collector: Collector
    bridge: Bridge
    pub: mqtt.Client
    alertmanager: Alertmanager
    chargers: dict[str, str]  # role -> charger id

    def status(self, charger: str, status: str, error_code: str) -> None:
        self.pub.publish(
            f"ev/{charger}/1/status",
            orjson.dumps({"ts": time.time(), "status": status, "error_code": error_code}),
            qos=1,
        )

    def transitions(self, charger: str) -> list[Transition]:
        # recent_transitions is appended to by the pipeline thread; copy before filtering.
        return [
            t for t in list(self.collector.recent_transitions) if t.labels["charger"] == charger
        ]

    def active_in_alertmanager(self, charger: str) -> list[dict[str, Any]]:
        return [
            a
            for a in self.alertmanager.alerts(active="true", silenced="false", inhibited="false")
            if a["labels"].get("charger") == charger  # type: ignore[attr-defined]
        ]


def wait_for(pred: Callable[[], object], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.1)
    return False


@pytest.fixture
def env(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    mosquitto: Mosquitto,
    alertmanager: Alertmanager,
) -> Iterator[Env]:
    tag = uuid.uuid4().hex[:6]
    chargers = {role: f"RM-{role}-{tag}" for role in ("fixed", "stuck", "blocked", "v201")}
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "remediation.yaml").write_text(RULES)
    allowlist = tmp_path / "allowlist.yaml"
    allowlist.write_text(ALLOWLIST)
    fleet = tmp_path / "fleet.yaml"
    fleet.write_text(
        "sites:\n- id: depot\n- id: mall\nchargers:\n"
        f"- {{id: {chargers['fixed']}, site: depot, connectors: 1}}\n"
        f"- {{id: {chargers['stuck']}, site: depot, connectors: 1}}\n"
        f"- {{id: {chargers['blocked']}, site: mall, connectors: 1}}\n"
        f"- {{id: {chargers['v201']}, site: depot, connectors: 1}}\n"
    )
    cfg = Config(
        data_dir=tmp_path / "data",
        mqtt=MqttConfig(port=mosquitto.port, client_id=f"cw-{tag}"),
        http=HttpConfig(listen=""),
        rules=rules,
        alerting=AlertingConfig(
            alertmanager=(alertmanager.url,),
            resend_delay_s=1.0,
            log=False,
            remediation_allowlist=allowlist,
            # indirect parametrisation may set tighter rate limits
            remediation_limits=getattr(request, "param", None) or RateLimits(),
        ),
        tick_interval_s=0.1,
    )
    collector = Collector(cfg, fleet=load_fleet(fleet))
    bridge = Bridge(mosquitto.port)
    pub = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"pub-{tag}")
    collector.start()
    bridge.start()
    pub.connect("127.0.0.1", mosquitto.port)
    pub.loop_start()
    try:
        assert collector.ingest.wait_connected(10)
        yield Env(collector, bridge, pub, alertmanager, chargers)
    finally:
        pub.disconnect()
        pub.loop_stop()
        bridge.stop()
        collector.stop()


def assert_unlock_frame(rec: Received, charger: str) -> str:
    """The command is an OCPP 1.6 CALL on the charger's command topic; returns its id."""
    assert rec.topic == f"ocpp/1.6/{charger}/command"
    assert isinstance(rec.frame, list) and len(rec.frame) == 4, rec.frame
    kind, message_id, action, payload = rec.frame
    assert kind == 2
    assert isinstance(message_id, str) and 0 < len(message_id) <= 36  # OCPP's limit
    assert action == "UnlockConnector"
    assert payload == {"connectorId": 1}
    return message_id


def test_fault_cleared_by_first_command_resolves_as_auto_remediated(env: Env) -> None:
    charger = env.chargers["fixed"]

    def charger_recovers(client: mqtt.Client, rec: Received) -> None:
        # What the bridge and charger would send back: the CALLRESULT, then the
        # connector is free again.
        if rec.topic.split("/")[2] != charger:
            return
        client.publish(
            f"ocpp/1.6/{charger}/cp", orjson.dumps([3, rec.frame[1], {"status": "Unlocked"}]), qos=1
        )
        env.status(charger, "Available", "NoError")

    env.bridge.on_command = charger_recovers
    env.status(charger, "Faulted", "ConnectorLockFailure")

    assert wait_for(lambda: env.bridge.commands_for(charger), 15), "no command was published"
    first = env.bridge.commands_for(charger)[0]
    assert_unlock_frame(first, charger)

    def resolved() -> list[Transition]:
        return [t for t in env.transitions(charger) if t.state == "resolved"]

    assert wait_for(resolved, 10), "the alert never resolved after the fix"
    (res,) = resolved()
    assert res.annotations.get("remediation") == "auto-remediated by UnlockConnector (attempt 1)"
    assert "escalated" not in res.labels

    # Past the point where attempt 2 would have gone out (cooldown after
    # attempt 1), and past an escalation: nothing more happens.
    time.sleep(COOLDOWN_S * 2 + 1)
    assert len(env.bridge.commands_for(charger)) == 1
    assert [t.state for t in env.transitions(charger)] == ["firing", "resolved"]
    assert wait_for(lambda: not env.active_in_alertmanager(charger), 10)


def test_persistent_fault_gets_max_attempts_then_escalates(env: Env) -> None:
    charger = env.chargers["stuck"]
    env.status(charger, "Faulted", "ConnectorLockFailure")

    def escalated() -> list[Transition]:
        return [
            t
            for t in env.transitions(charger)
            if t.state == "firing" and t.labels.get("escalated") == "true"
        ]

    assert wait_for(escalated, 60), "the alert never escalated"  # ~5 s unloaded
    # A further window longer than the retry spacing: no third attempt.
    time.sleep(COOLDOWN_S * 2 + 1)
    cmds = env.bridge.commands_for(charger)
    assert len(cmds) == MAX_ATTEMPTS, [c.frame for c in cmds]
    ids = [assert_unlock_frame(c, charger) for c in cmds]
    assert len(set(ids)) == MAX_ATTEMPTS, "each attempt is a new CALL with its own message id"
    assert cmds[0].at < cmds[1].at

    # The engine's record: fired, then the old label set resolved and the
    # escalated one fired (critical), annotated as a failed remediation.
    ts = env.transitions(charger)
    assert [(t.state, t.labels["severity"]) for t in ts] == [
        ("firing", "warning"),
        ("resolved", "warning"),
        ("firing", "critical"),
    ]
    assert ts[1].annotations["remediation"] == f"escalated after {MAX_ATTEMPTS} failed attempt(s)"
    assert ts[2].labels["escalated"] == "true"
    assert "failed after 2 attempt(s)" in ts[2].annotations["remediation"]

    # What on-call sees: only the escalated alert is active in Alertmanager.
    def only_escalated() -> bool:
        active = env.active_in_alertmanager(charger)
        return len(active) == 1 and active[0]["labels"].get("escalated") == "true"

    assert wait_for(only_escalated, 10), env.active_in_alertmanager(charger)
    labels = env.active_in_alertmanager(charger)[0]["labels"]
    assert labels == {
        "alertname": "LockFailure",
        "charger": charger,
        "connector": "1",
        "site": "depot",
        "severity": "critical",
        "error_code": "ConnectorLockFailure",
        "escalated": "true",
    }


def test_command_not_allowlisted_for_the_site_is_never_published(env: Env) -> None:
    blocked, allowed = env.chargers["blocked"], env.chargers["stuck"]
    # The same fault at the depot (allowed) and the mall (not allowed), side by
    # side: the depot's command proves the path works while the mall stays silent.
    env.status(blocked, "Faulted", "ConnectorLockFailure")
    env.status(allowed, "Faulted", "ConnectorLockFailure")

    def firing(charger: str) -> bool:
        return any(t.state == "firing" for t in env.transitions(charger))

    assert wait_for(lambda: firing(blocked) and firing(allowed), 10), "the alerts never fired"
    assert wait_for(lambda: len(env.bridge.commands_for(allowed)) == MAX_ATTEMPTS, 15)
    # Longer than delay + every attempt's cooldown since the mall's alert fired.
    time.sleep(COOLDOWN_S + 1)
    assert env.bridge.commands_for(blocked) == []
    site = next(t for t in env.transitions(blocked) if t.state == "firing").labels["site"]
    assert site == "mall"


def test_command_to_an_ocpp_201_charger_uses_its_topic_and_dialect(env: Env) -> None:
    charger = env.chargers["v201"]
    # The bridge forwards the charger's 2.0.1 traffic; the fault itself comes
    # over the native status topic (both feed the same connector).
    env.pub.publish(
        f"ocpp/2.0.1/{charger}/cp", orjson.dumps([2, "hb-1", "Heartbeat", {}]), qos=1
    ).wait_for_publish(5)
    assert wait_for(lambda: env.collector.ocpp.versions.get(charger) == "2.0.1", 10)
    env.status(charger, "Faulted", "ConnectorLockFailure")
    assert wait_for(lambda: env.bridge.commands_for(charger), 15), "no command was published"
    rec = env.bridge.commands_for(charger)[0]
    assert rec.topic == f"ocpp/2.0.1/{charger}/command"
    assert rec.frame[0] == 2 and rec.frame[2] == "UnlockConnector"
    # OCPP 2.0.1 UnlockConnectorRequest: evseId and connectorId, both required.
    assert rec.frame[3] == {"evseId": 1, "connectorId": 1}


@pytest.mark.parametrize(
    "env", [RateLimits(charger=BucketSpec(per_minute=1 / 60, burst=1))], indirect=True
)
def test_rate_limited_command_is_not_sent_and_pages(env: Env) -> None:
    """One command per charger per hour: attempt 2 is suppressed, counted, and on-call paged
    right away instead of after the cooldown."""
    charger = env.chargers["stuck"]
    counter = metrics.REMEDIATION_SUPPRESSED.labels(reason="charger_rate")
    before = counter._value.get()
    env.status(charger, "Faulted", "ConnectorLockFailure")

    def escalated() -> list[Transition]:
        return [t for t in env.transitions(charger) if t.labels.get("escalated") == "true"]

    assert wait_for(escalated, 60), "the alert never escalated"  # ~5 s unloaded
    time.sleep(COOLDOWN_S * 2 + 1)
    assert len(env.bridge.commands_for(charger)) == 1  # only the first attempt left
    assert counter._value.get() - before == 1
    note = escalated()[0].annotations["remediation"]
    assert note.startswith("UnlockConnector not sent: charger rate limit reached (0.0166667/min")

    def paged() -> bool:
        active = env.active_in_alertmanager(charger)
        return len(active) == 1 and active[0]["labels"].get("escalated") == "true"

    assert wait_for(paged, 10), env.active_in_alertmanager(charger)
