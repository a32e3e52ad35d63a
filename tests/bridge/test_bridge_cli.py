"""``chargewatch bridge`` as operators run it: flags, config file, /metrics, /healthz, SIGTERM."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import orjson
import pytest
from ocpp.v16 import call

from tests.bridge.kit import Csms, Recorder, charger
from tests.services import Mosquitto, free_port

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


async def _get(url: str) -> httpx.Response:
    async with httpx.AsyncClient() as client:
        return await client.get(url, timeout=5)


def test_the_command_serves_metrics_and_stops_cleanly(mosquitto: Mosquitto, tmp_path: Path) -> None:
    port, http_port = free_port(), free_port()
    cfg = tmp_path / "cw.yaml"
    cfg.write_text(
        f"bridge:\n  mirror: {{spool_dir: spool}}\n  http: {{listen: 127.0.0.1:{http_port}}}\n"
    )

    async def main() -> None:
        csms = Csms()
        await csms.start()
        rec = Recorder(mosquitto.port, client_id="rec-cli")
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        proc = subprocess.Popen(
            [
                sys.executable, "-m", "chargewatch", "bridge", "--listen", f"127.0.0.1:{port}",
                "--csms", csms.url, "--broker", f"127.0.0.1:{mosquitto.port}", "--config", str(cfg),
            ],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        )  # fmt: skip
        try:
            deadline = time.monotonic() + 20
            while True:
                try:
                    ready = await _get(f"http://127.0.0.1:{http_port}/readyz")
                    if ready.status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                assert time.monotonic() < deadline and proc.poll() is None, "bridge did not start"
                await asyncio.sleep(0.2)
            st = await charger(f"ws://127.0.0.1:{port}/ocpp", "CP-CLI")
            await st.cp.call(call.BootNotification("ACME", "Fast-1"))
            health = (await _get(f"http://127.0.0.1:{http_port}/healthz")).json()
            assert health["ok"] and health["chargers"] == 1 and health["broker_connected"]
            text = (await _get(f"http://127.0.0.1:{http_port}/metrics")).text
            assert "chargewatch_bridge_connections 1.0" in text
            assert 'chargewatch_bridge_frames_total{direction="cp"} 1.0' in text
            assert 'chargewatch_bridge_frames_total{direction="csms"} 1.0' in text
            proc.send_signal(signal.SIGTERM)
            assert await asyncio.to_thread(proc.wait, 20) == 0
            # Stopping closed the charger's socket and said so on MQTT.
            flags = await rec.wait("ev/CP-CLI/online", 2)
            assert orjson.loads(flags[-1]) == {"online": False}
            await st.close()
        finally:
            if proc.poll() is None:
                proc.kill()
            out = proc.stdout.read().decode() if proc.stdout else ""
            await csms.stop()
            rec.close()
        assert "chargewatch bridge listening" in out, out

    asyncio.run(main())


def test_a_wrong_config_fails_at_start(tmp_path: Path) -> None:
    cfg = tmp_path / "cw.yaml"
    cfg.write_text("bridge:\n  csms_url: ftp://csms\n")
    proc = subprocess.run(
        [sys.executable, "-m", "chargewatch", "bridge", "--config", str(cfg)],
        env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True, timeout=60,
        check=False,
    )  # fmt: skip
    assert proc.returncode == 2
    assert f"{cfg}:2:13: bridge.csms_url: expected a ws:// or wss:// URL" in proc.stderr
