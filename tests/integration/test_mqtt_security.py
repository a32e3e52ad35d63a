"""The collector against a real Mosquitto that requires a password and TLS."""

from __future__ import annotations

import subprocess
import time
import uuid
from pathlib import Path

import orjson
import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from chargewatch.collector.service import Collector
from chargewatch.config.settings import Config, HttpConfig
from chargewatch.ingest.mqtt import MqttConfig
from tests.services import Mosquitto

pytestmark = pytest.mark.integration


def make_pki(d: Path) -> None:
    def run(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True, cwd=d)

    run(
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "2",
        "-subj",
        "/CN=test-ca",
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
    )
    run(
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=localhost",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
    )
    (d / "san.ext").write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    run(
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "2",
        "-out",
        "server.crt",
        "-extfile",
        "san.ext",
    )


@pytest.fixture(scope="module")
def secure_broker(tmp_path_factory: pytest.TempPathFactory) -> Mosquitto:
    d = tmp_path_factory.mktemp("mqtt-secure")
    make_pki(d)
    pw = d / "passwd"
    pw.write_text("")
    subprocess.run(["mosquitto_passwd", "-b", str(pw), "collector", "s3cret"], check=True)
    subprocess.run(["mosquitto_passwd", "-b", str(pw), "charger", "ch4rger"], check=True)
    conf = (
        "allow_anonymous false\n"
        f"password_file {pw}\n"
        f"cafile {d}/ca.crt\ncertfile {d}/server.crt\nkeyfile {d}/server.key\n"
        "require_certificate false\n"
    )
    broker = Mosquitto(d / "broker", extra_conf=conf)
    broker.start()
    yield broker  # type: ignore[misc]
    broker.cleanup()


def collector_for(tmp: Path, broker: Mosquitto, **mqtt_kw: object) -> Collector:
    cfg = Config(
        data_dir=tmp,
        mqtt=MqttConfig(
            host="localhost", port=broker.port, client_id=f"cw-{uuid.uuid4().hex[:6]}", **mqtt_kw
        ),  # type: ignore[arg-type]
        http=HttpConfig(listen=""),
    )
    return Collector(cfg)


def test_collector_with_password_and_tls(tmp_path: Path, secure_broker: Mosquitto) -> None:
    ca = str(secure_broker.dir.parent / "ca.crt")
    c = collector_for(
        tmp_path / "ok",
        secure_broker,
        username="collector",
        password="s3cret",
        tls=True,
        ca_file=ca,
    )
    c.start()
    pub = mqtt.Client(CallbackAPIVersion.VERSION2)
    pub.username_pw_set("charger", "ch4rger")
    pub.tls_set(ca_certs=ca)
    pub.connect("localhost", secure_broker.port)
    pub.loop_start()
    try:
        assert c.ingest.wait_connected(10)
        time.sleep(0.3)
        pub.publish(
            "ev/SEC-1/1/meter", orjson.dumps({"ts": time.time(), "power_w": 1.0}), qos=1
        ).wait_for_publish(5)
        deadline = time.monotonic() + 10
        while c.pipeline.stats.samples < 1 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert c.pipeline.stats.samples == 1
    finally:
        pub.disconnect()
        pub.loop_stop()
        c.stop()


@pytest.mark.parametrize(
    ("kw", "why"),
    [
        ({"username": "collector", "password": "wrong", "tls": True}, "bad password"),
        ({"username": "collector", "password": "s3cret", "tls": False}, "no TLS"),
        ({"tls": True}, "anonymous"),
    ],
)
def test_collector_is_refused(
    tmp_path: Path, secure_broker: Mosquitto, kw: dict[str, object], why: str
) -> None:
    if kw.get("tls"):
        kw["ca_file"] = str(secure_broker.dir.parent / "ca.crt")
    c = collector_for(tmp_path, secure_broker, **kw)
    c.start()
    try:
        assert not c.ingest.wait_connected(3), f"connected despite {why}"
    finally:
        c.stop()
