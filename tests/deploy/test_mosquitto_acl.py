"""deploy/mosquitto on a real broker: authentication, and a charger publishes only as itself.

The broker runs deploy's mosquitto.conf and acl (container paths mapped to a
temporary directory). The committed password file is checked against the
development secrets; the ACL tests use a copy with known charger passwords.
"""

from __future__ import annotations

import queue
import shutil
import subprocess
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from tests.conftest import IN_CI
from tests.services import Service, ServiceMissingError, _which

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
SECRETS = DEPLOY / "secrets"
DEADLINE_S = 10.0  # a failure deadline, not a timing assertion


def _secret(name: str) -> str:
    return (SECRETS / name).read_text().strip()


class DeployedMosquitto(Service):
    """Mosquitto started from deploy/mosquitto/mosquitto.conf with a given password file."""

    name = "mosquitto"

    def __init__(self, passwd: Path) -> None:
        super().__init__()
        self.binary = _which("mosquitto")
        self.passwd = passwd

    def command(self) -> list[str]:
        d = self.dir
        shutil.copy(DEPLOY / "mosquitto/acl", d / "acl")
        shutil.copy(self.passwd, d / "passwd")
        (d / "data").mkdir(exist_ok=True)
        conf = (DEPLOY / "mosquitto/mosquitto.conf").read_text()
        assert "\nlistener 1883\n" in conf and "allow_anonymous false" in conf
        conf = conf.replace("/mosquitto/config/", f"{d}/").replace("/mosquitto/data/", f"{d}/data/")
        conf = conf.replace("\nlistener 1883\n", f"\nlistener {self.port} 127.0.0.1\n")
        (d / "mosquitto.conf").write_text(conf)
        # Started as root, mosquitto drops to its own user before reading the
        # password and ACL files (the container does the same): let it read them.
        d.chmod(0o755)
        (d / "data").chmod(0o777)
        for f in ("acl", "passwd", "mosquitto.conf"):
            (d / f).chmod(0o644)
        return [self.binary, "-c", str(d / "mosquitto.conf")]

    def ready(self) -> bool:
        import socket  # noqa: PLC0415

        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                return True
        except OSError:
            return False


def _start(passwd: Path) -> DeployedMosquitto:
    try:
        svc = DeployedMosquitto(passwd)
        shutil.which("mosquitto_passwd") or _which("mosquitto_passwd")
    except ServiceMissingError as exc:
        if IN_CI:
            pytest.fail(str(exc))
        pytest.skip(str(exc))
    svc.start()
    return svc


def _client(port: int, user: str | None, password: str | None) -> tuple[mqtt.Client, int]:
    """A connected client and its CONNACK reason code (0 = accepted)."""
    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"t-{uuid.uuid4().hex[:8]}")
    if user is not None:
        c.username_pw_set(user, password)
    result: queue.Queue[int] = queue.Queue()
    c.on_connect = lambda cl, ud, fl, rc, pr: result.put(rc.value)
    c.connect("127.0.0.1", port)
    c.loop_start()
    try:
        code = result.get(timeout=DEADLINE_S)
    except queue.Empty:
        code = -1
    return c, code


def _close(c: mqtt.Client) -> None:
    c.disconnect()
    c.loop_stop()


@pytest.fixture(scope="module")
def acl_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DeployedMosquitto]:
    passwd = tmp_path_factory.mktemp("mqtt") / "passwd"
    passwd.touch()
    mp = _which("mosquitto_passwd")
    for user, pw in (
        ("chargewatch-collector", "c-pw"),
        ("simulator", "s-pw"),
        ("ocpp-bridge", "b-pw"),
        ("CP0001", "cp1-pw"),
        ("CP0002", "cp2-pw"),
    ):
        subprocess.run([mp, "-b", str(passwd), user, pw], check=True)
    svc = _start(passwd)
    yield svc
    svc.cleanup()


@pytest.mark.integration
def test_committed_password_file_matches_the_development_secrets() -> None:
    svc = _start(DEPLOY / "mosquitto/passwd")
    try:
        for user, secret in (
            ("chargewatch-collector", "mqtt_collector_password"),
            ("simulator", "mqtt_simulator_password"),
            ("ocpp-bridge", "mqtt_ocpp_bridge_password"),
        ):
            c, code = _client(svc.port, user, _secret(secret))
            _close(c)
            assert code == 0, f"{user} refused with its secret (rc {code})"
        c, code = _client(svc.port, "chargewatch-collector", "wrong")
        _close(c)
        assert code != 0
        c, code = _client(svc.port, None, None)
        _close(c)
        assert code != 0, "anonymous clients must be refused"
    finally:
        svc.cleanup()


def _collect(
    port: int, topics: list[str], user: str = "chargewatch-collector", pw: str = "c-pw"
) -> tuple[mqtt.Client, queue.Queue[str]]:
    got: queue.Queue[str] = queue.Queue()
    sub, code = _client(port, user, pw)
    assert code == 0
    subscribed = threading.Event()
    sub.on_message = lambda cl, ud, msg: got.put(msg.topic)
    sub.on_subscribe = lambda *a: subscribed.set()
    sub.subscribe([(t, 1) for t in topics])
    assert subscribed.wait(DEADLINE_S)
    return sub, got


def _publish_then_marker(port: int, user: str, pw: str, denied: str, marker: str) -> None:
    pub, code = _client(port, user, pw)
    assert code == 0, f"{user} refused (rc {code})"
    try:
        # Mosquitto delivers one client's messages in order: if `denied` were
        # let through, the subscriber would see it before the marker.
        pub.publish(denied, b"{}", qos=1).wait_for_publish(DEADLINE_S)
        pub.publish(marker, b"{}", qos=1).wait_for_publish(DEADLINE_S)
    finally:
        _close(pub)


def _drain_until(got: queue.Queue[str], marker: str) -> list[str]:
    seen = []
    while True:
        topic = got.get(timeout=DEADLINE_S)
        seen.append(topic)
        if topic == marker:
            return seen


@pytest.mark.integration
def test_charger_publishes_only_under_its_own_id(acl_broker: DeployedMosquitto) -> None:
    sub, got = _collect(acl_broker.port, ["ev/#"])
    try:
        _publish_then_marker(
            acl_broker.port, "CP0001", "cp1-pw", "ev/CP0002/1/meter", "ev/CP0001/1/meter"
        )
        seen = _drain_until(got, "ev/CP0001/1/meter")
        assert seen == ["ev/CP0001/1/meter"], seen
        # The simulator stands in for every charger.
        _publish_then_marker(
            acl_broker.port, "simulator", "s-pw", "ev/CP0002/1/status", "ev/CP0001/online"
        )
        assert _drain_until(got, "ev/CP0001/online") == ["ev/CP0002/1/status", "ev/CP0001/online"]
    finally:
        _close(sub)


@pytest.mark.integration
def test_collector_sends_commands_but_cannot_forge_telemetry(
    acl_broker: DeployedMosquitto,
) -> None:
    # The OCPP bridge reads commands; the collector reads telemetry.
    bridge, commands = _collect(acl_broker.port, ["ocpp/#"], "ocpp-bridge", "b-pw")
    collector, telemetry = _collect(acl_broker.port, ["ev/#", "ocpp/+/+/cp"])
    try:
        _publish_then_marker(
            acl_broker.port,
            "chargewatch-collector",
            "c-pw",
            "ev/CP0001/1/meter",  # telemetry: not the collector's to write
            "ocpp/1.6/CP0001/command",  # a remediation command: allowed
        )
        assert _drain_until(commands, "ocpp/1.6/CP0001/command") == ["ocpp/1.6/CP0001/command"]
        # A charger may not send commands, not even to itself.
        _publish_then_marker(
            acl_broker.port, "CP0001", "cp1-pw", "ocpp/1.6/CP0001/command", "ev/CP0001/heartbeat"
        )
        assert _drain_until(telemetry, "ev/CP0001/heartbeat") == ["ev/CP0001/heartbeat"]
        # The bridge forwards OCPP frames but cannot pose as a native-telemetry charger.
        _publish_then_marker(
            acl_broker.port, "ocpp-bridge", "b-pw", "ev/CP0001/2/meter", "ocpp/1.6/CP0001/cp"
        )
        assert _drain_until(telemetry, "ocpp/1.6/CP0001/cp") == ["ocpp/1.6/CP0001/cp"]
    finally:
        _close(bridge)
        _close(collector)
