"""The live collector pages ChargerOffline at the detector's deadline (issue #17
point 4), not at its rule group's next 10 s grid point.

An OCPP 1.6 charger, as the bridge publishes it over a real Mosquitto (CALLs
on ``ocpp/1.6/<id>/cp``, the CSMS's answers on ``.../csms``), boots, is told a
heartbeat interval, heartbeats, and goes silent. The collector runs on a
simulated clock ten times faster than the wall (a ``ScaledClock``, as beside
``chargewatch simulate --speed 10``), so the pipeline's timer is the real one,
scaled: a minute of silence passes in six wall seconds.

The last heartbeat is placed so that its deadline falls mid-way between two
grid points of the rule group: before the deadline timer (the collector
evaluated ChargerOffline only on the grid), the alert came 3-7 s of clock
later than the deadline, beyond the transit margin allowed here.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path

import orjson
import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from chargewatch.alerting.state import Notification, rfc3339
from chargewatch.collector.service import Collector
from chargewatch.config.settings import AlertingConfig, Config, HttpConfig
from chargewatch.core.clock import ScaledClock
from chargewatch.detectors.params import ChargerOfflineParams
from chargewatch.ingest.mqtt import MqttConfig
from tests.services import Alertmanager, Mosquitto

pytestmark = pytest.mark.integration

SPEED = 10.0
INTERVAL_S = 20.0  # what the CSMS answers the BootNotification
_P = ChargerOfflineParams()
# The configured formula at a told interval: 2 x 20 s + 30 s = 70 s (over the
# 60 s floor, so the formula, not the floor, decides).
TIMEOUT_S = max(_P.min_duration_s, _P.interval_factor * INTERVAL_S + _P.interval_margin_s)
# Clock seconds between the deadline and the alert's startsAt / its hand-over
# to the notifiers: the timer's wake, a tick and an evaluation (0.1 s of wall
# time at SPEED; measured 1-2 ms and 50-80 ms). A grid-bound evaluation is at
# least 3 s late here, and one at the pipeline's next regular tick up to 2.5 s.
MARGIN_S = 1.0
GRID_PHASE_S = (3.0, 7.0)  # where in the group's 10 s grid the deadline falls


class Recorder:
    """A notifier beside Alertmanager: what the collector handed over, and when
    (on the collector's clock)."""

    name = "recorder"

    def __init__(self, clock: ScaledClock) -> None:
        self.clock = clock
        self.lock = threading.Lock()
        self.sent: list[tuple[float, Notification]] = []

    def send(self, alerts: Sequence[Notification]) -> bool:
        at = self.clock.now()
        with self.lock:
            self.sent += [(at, a) for a in alerts]
        return True

    def firing(self, alertname: str, charger: str) -> list[tuple[float, Notification]]:
        with self.lock:
            return [
                (at, n)
                for at, n in self.sent
                if n.status == "firing"
                and n.labels.get("alertname") == alertname
                and n.labels.get("charger") == charger
            ]


class Bridge:
    """The OCPP bridge's publications for one charger and its CSMS."""

    def __init__(self, port: int, charger: str, clock: ScaledClock) -> None:
        self.charger = charger
        self.clock = clock
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2)
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        self._id = 0

    def exchange(
        self, action: str, payload: Mapping[str, object], answer: Mapping[str, object]
    ) -> None:
        self._id += 1
        mid = f"{self.charger}-{self._id}"
        base = f"ocpp/1.6/{self.charger}"
        for topic, frame in (
            (f"{base}/cp", [2, mid, action, payload]),
            (f"{base}/csms", [3, mid, answer]),
        ):
            self.client.publish(topic, orjson.dumps(frame), qos=1).wait_for_publish(5)

    def now_iso(self) -> str:
        return rfc3339(self.clock.now())

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def _t(s: str) -> float:
    return datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp()


def test_live_collector_pages_offline_at_the_deadline(
    tmp_path: Path, mosquitto: Mosquitto, alertmanager: Alertmanager
) -> None:
    clock = ScaledClock(time.time(), SPEED, monotonic=time.monotonic)
    charger = f"LIVEOFF-{uuid.uuid4().hex[:6]}"
    cfg = Config(
        data_dir=tmp_path / "data",
        mqtt=MqttConfig(port=mosquitto.port, client_id=f"cw-{uuid.uuid4().hex[:8]}"),
        http=HttpConfig(listen=""),
        # A resend would be the same alert again: out of this test's way.
        alerting=AlertingConfig(alertmanager=(alertmanager.url,), resend_delay_s=3600.0),
    )
    c = Collector(cfg, clock=clock)
    recorder = Recorder(clock)
    c.notify.notifiers.append(recorder)
    group = next(
        g for g in c.alert_engine.groups if any(r.name == "ChargerOffline" for r in g.rules)
    )
    c.start()
    bridge = Bridge(mosquitto.port, charger, clock)
    try:
        assert c.ingest.wait_connected(10)
        boot = {"chargePointVendor": "V", "chargePointModel": "M"}
        bridge.exchange(
            "BootNotification",
            boot,
            {"status": "Accepted", "currentTime": bridge.now_iso(), "interval": int(INTERVAL_S)},
        )
        status = {"connectorId": 1, "errorCode": "NoError", "status": "Available"}
        bridge.exchange("StatusNotification", status, {})
        last = clock.now()
        for _ in range(3):  # heartbeats at the told interval
            time.sleep(INTERVAL_S / SPEED)
            bridge.exchange("Heartbeat", {}, {"currentTime": bridge.now_iso()})
            last = clock.now()
        # The last one where its deadline falls mid-grid (TIMEOUT_S is whole
        # group intervals, so its phase is the heartbeat's): 15-25 s after the
        # one before, as a told 20 s heartbeat comes.
        assert group.last_eval is not None
        while True:
            now = clock.now()
            phase = (now + TIMEOUT_S - group.last_eval) % group.interval_s
            if now - last >= 15.0 and GRID_PHASE_S[0] + 0.5 <= phase <= GRID_PHASE_S[1] - 0.5:
                break
            time.sleep(0.01)
        bridge.exchange("Heartbeat", {}, {"currentTime": bridge.now_iso()})
        time.sleep(0.3)  # through the broker and the pipeline
        with c.state_lock:
            heard = c.state.charger_seen[charger]
        deadline = heard + TIMEOUT_S
        assert group.last_eval is not None
        phase = (deadline - group.last_eval) % group.interval_s
        assert GRID_PHASE_S[0] <= phase <= GRID_PHASE_S[1], phase  # (else the test proves less)

        # Silent: wait past the deadline and the next grid point.
        while clock.now() < deadline + group.interval_s + 2 * MARGIN_S:
            time.sleep(0.05)
        fired = recorder.firing("ChargerOffline", charger)
        assert fired, "ChargerOffline never reached the notifiers"
        assert len({n.starts_at for _, n in fired}) == 1  # one alert per charger
        delivered, note = fired[0]
        assert deadline <= note.starts_at <= deadline + MARGIN_S, note.starts_at - heard
        assert delivered <= deadline + MARGIN_S, delivered - heard

        # And Alertmanager has it with that startsAt.
        def received() -> list[dict[str, object]]:
            return [
                a
                for a in alertmanager.alerts(active="true")
                if a["labels"].get("charger") == charger  # type: ignore[attr-defined]
                and a["labels"].get("alertname") == "ChargerOffline"  # type: ignore[attr-defined]
            ]

        got = received()
        assert len(got) == 1, got
        assert _t(str(got[0]["startsAt"])) == pytest.approx(note.starts_at, abs=1e-3)
    finally:
        bridge.stop()
        c.stop()
