"""Secrets never reach the log: `chargewatch run` output, errors and config errors.

Known secret strings go in through files and the environment (MQTT password,
InfluxDB token, API tokens of both scopes); the collector runs at DEBUG level
through the paths that log most (a broker refusing the password, InfluxDB
unreachable, rejected API calls, an admin action) and a config that fails.
Nothing of any secret may appear in what it printed.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import orjson
import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from tests.services import Mosquitto, free_port

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
MQTT_PW = "mqtt-Pw-7f3a9c"
INFLUX_TOKEN = "influx-Tok-5b21e8"
READ_TOKEN = "api-Read-93c4d0"
ADMIN_TOKEN = "api-Admin-0e6f17"
SECRETS = (MQTT_PW, INFLUX_TOKEN, READ_TOKEN, ADMIN_TOKEN)


def _run(config: Path, env: dict[str, str], actions: object = None, until: str = "") -> str:
    """Run the collector at DEBUG, do ``actions`` (or wait for it to exit, or
    until its output holds ``until``), stop it."""
    cmd = [sys.executable, "-m", "chargewatch", "--log-level", "DEBUG", "run"]
    log = config.parent / f"collector-{uuid.uuid4().hex[:6]}.log"
    with log.open("wb") as sink:
        proc = subprocess.Popen(
            [*cmd, "--config", str(config)],
            env={**os.environ, "PYTHONPATH": str(ROOT), **env},
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
        try:
            if callable(actions):
                actions()
            elif until:
                # Not a fixed sleep: on a loaded machine the interpreter alone
                # can take seconds to start, and a collector stopped before it
                # logged anything gives an empty log.
                deadline = time.monotonic() + 30
                while until.encode() not in log.read_bytes() and time.monotonic() < deadline:
                    if proc.poll() is not None:
                        break
                    time.sleep(0.1)
            else:
                proc.wait(30)
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
            proc.wait(30)
    return log.read_bytes().decode(errors="replace")


def _assert_clean(out: str) -> None:
    for secret in SECRETS:
        assert secret not in out, f"secret leaked into the output:\n{out[-3000:]}"
        # nor a recognisable part of it
        assert secret[-6:] not in out, f"part of a secret leaked:\n{out[-3000:]}"


def test_secrets_never_reach_the_log(tmp_path: Path) -> None:
    pw = tmp_path / "passwd"
    pw.touch()
    subprocess.run(["mosquitto_passwd", "-b", str(pw), "collector", MQTT_PW], check=True)
    subprocess.run(["mosquitto_passwd", "-b", str(pw), "charger", "ch4rger"], check=True)
    broker = Mosquitto(
        tmp_path / "broker", extra_conf=f"allow_anonymous false\npassword_file {pw}\n"
    )
    broker.start()
    try:
        (tmp_path / "mqtt.pw").write_text(MQTT_PW + "\n")
        (tmp_path / "admin.tok").write_text(ADMIN_TOKEN + "\n")
        http_port = free_port()
        config = tmp_path / "cw.yaml"
        config.write_text(
            "data_dir: data\n"
            f"mqtt:\n  host: 127.0.0.1\n  port: {broker.port}\n"
            f"  client_id: sec-{uuid.uuid4().hex[:6]}\n"
            "  username: collector\n  password_file: mqtt.pw\n"
            # nothing listens there: every write fails and is logged
            f"influx:\n  url: http://127.0.0.1:{free_port()}\n  api: v2\n  org: o\n"
            "  flush_interval_s: 0.2\n  timeout_s: 0.5\n"
            f"http:\n  listen: 127.0.0.1:{http_port}\n  metrics_auth: true\n"
            "  tokens:\n    - {scope: admin, token_file: admin.tok}\n"
        )
        env = {
            "CHARGEWATCH__INFLUX__TOKEN": INFLUX_TOKEN,
            "CHARGEWATCH__HTTP__TOKEN": READ_TOKEN,
        }
        base = f"http://127.0.0.1:{http_port}"

        def exercise() -> None:
            deadline = time.monotonic() + 20
            ready = False
            while time.monotonic() < deadline and not ready:
                with contextlib.suppress(httpx.HTTPError):
                    ready = httpx.get(f"{base}/readyz", timeout=1).status_code == 200
                time.sleep(0.2)
            assert ready, "collector never connected with the password"
            pub = mqtt.Client(CallbackAPIVersion.VERSION2)
            pub.username_pw_set("charger", "ch4rger")
            pub.connect("127.0.0.1", broker.port)
            pub.loop_start()
            for k in range(5):
                doc = orjson.dumps({"ts": time.time() + k, "energy_wh": 1.0 + k})
                pub.publish("ev/SEC-1/1/meter", doc, qos=1).wait_for_publish(5)
            pub.disconnect()
            pub.loop_stop()
            r = httpx.get(f"{base}/api/v1/fleet", headers={"Authorization": "Bearer wrong"})
            assert r.status_code == 401
            read = {"Authorization": f"Bearer {READ_TOKEN}"}
            admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
            assert httpx.get(f"{base}/metrics", headers=read).status_code == 200
            assert httpx.get(f"{base}/metrics").status_code == 401
            assert httpx.post(f"{base}/api/v1/remediation/pause", headers=read).status_code == 403
            assert httpx.post(f"{base}/api/v1/remediation/pause", headers=admin).json() == {
                "paused": True
            }
            time.sleep(1.5)  # a few failed InfluxDB writes

        out = _run(config, env, exercise)
        assert "remediation paused through the API" in out
        assert "influx" in out.lower()  # the write errors were logged
        _assert_clean(out)

        # The broker refuses a wrong password: the refusal is logged, not the password.
        wrong = MQTT_PW[::-1] + "x"
        bad_pw = {
            "CHARGEWATCH__MQTT__PASSWORD_FILE": "",
            "CHARGEWATCH__MQTT__PASSWORD": wrong,
            "CHARGEWATCH__DATA_DIR": str(tmp_path / "data2"),  # no spool to drain at exit
        }
        refused = "MQTT connect refused: Not authorized"
        out = _run(config, {**env, **bad_pw}, until=refused)
        assert refused in out
        assert wrong not in out
        _assert_clean(out)

        # A config that fails to load: problems named, values of secrets not echoed.
        bad = tmp_path / "bad.yaml"
        bad.write_text(
            "mqtt:\n  password: 73519426\nhttp:\n  tokens: [{scope: rooot, token: 8844221100}]\n"
        )
        out = _run(bad, {"CHARGEWATCH__INFLUX__TOKEN": INFLUX_TOKEN})
        assert "configuration error" in out
        for secret in ("73519426", "8844221100"):
            assert secret not in out
        _assert_clean(out)
    finally:
        broker.cleanup()
