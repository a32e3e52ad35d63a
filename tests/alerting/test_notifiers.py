"""Notifier payloads and retry policy (no network: httpx.MockTransport)."""

from __future__ import annotations

import json
import logging
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import httpx
import pytest

from chargewatch.alerting.state import Notification
from chargewatch.notify.notifiers import AlertmanagerNotifier, LogNotifier, WebhookNotifier

FIRING = Notification(
    {"alertname": "Hot", "charger": "CP1", "connector": "1", "site": "s", "severity": "warning"},
    {"summary": "CP1 hot"},
    0.0,
    240.0,
    "http://cw/alerts",
    "firing",
)
RESOLVED = Notification(
    {"alertname": "Hot", "charger": "CP2", "connector": "1", "site": "s", "severity": "warning"},
    {"summary": "CP2 hot"},
    0.0,
    90.5,
    "",
    "resolved",
)


def recorder(statuses: list[int]) -> tuple[httpx.Client, list[httpx.Request]]:
    seen: list[httpx.Request] = []

    def handle(req: httpx.Request) -> httpx.Response:
        seen.append(req)
        return httpx.Response(statuses[min(len(seen) - 1, len(statuses) - 1)])

    return httpx.Client(transport=httpx.MockTransport(handle)), seen


def test_alertmanager_body_and_retry_on_5xx() -> None:
    client, seen = recorder([503, 200])
    n = AlertmanagerNotifier(["http://am1:9093/"], client=client, sleep=lambda s: None)
    assert n.send([FIRING, RESOLVED])
    assert [str(r.url) for r in seen] == ["http://am1:9093/api/v2/alerts"] * 2
    body = json.loads(seen[-1].content)
    assert body[0] == {
        "labels": dict(FIRING.labels),
        "annotations": {"summary": "CP1 hot"},
        "startsAt": "1970-01-01T00:00:00Z",
        "endsAt": "1970-01-01T00:04:00Z",
        "generatorURL": "http://cw/alerts",
    }
    assert body[1]["endsAt"] == "1970-01-01T00:01:30.500Z"


def test_client_errors_are_not_retried() -> None:
    client, seen = recorder([400])
    assert not AlertmanagerNotifier("http://am", client=client, sleep=lambda s: None).send([FIRING])
    assert len(seen) == 1


def test_webhook_speaks_alertmanagers_version_4_payload() -> None:
    client, seen = recorder([200])
    assert WebhookNotifier("http://hook", client=client, receiver="noc").send([FIRING, RESOLVED])
    [req] = seen  # one alertname, one group
    p = json.loads(req.content)
    assert p["version"] == "4"
    assert (p["status"], p["receiver"], p["groupLabels"]) == ("firing", "noc", {"alertname": "Hot"})
    assert p["commonLabels"] == {
        "alertname": "Hot",
        "connector": "1",
        "site": "s",
        "severity": "warning",
    }
    assert p["groupKey"] == '{}:{alertname="Hot"}'
    assert [a["status"] for a in p["alerts"]] == ["firing", "resolved"]
    assert p["alerts"][0]["endsAt"] == "0001-01-01T00:00:00Z"
    assert p["alerts"][1]["endsAt"] == "1970-01-01T00:01:30.500Z"
    assert len(p["alerts"][0]["fingerprint"]) == 16
    assert set(p["alerts"][0]) == {
        "status",
        "labels",
        "annotations",
        "startsAt",
        "endsAt",
        "generatorURL",
        "fingerprint",
    }


def test_log_notifier(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, "chargewatch.alerts"):
        assert LogNotifier().send([FIRING, RESOLVED])
    assert 'FIRING {alertname="Hot",charger="CP1"' in caplog.text
    assert "RESOLVED" in caplog.text and "CP2 hot" in caplog.text


def test_webhook_delivers_over_real_http() -> None:
    """End to end over a socket: engine notifications -> WebhookNotifier -> an HTTP receiver."""
    received: list[dict[str, object]] = []

    class Receiver(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.append(json.loads(body))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Receiver)
    thread = threading.Thread(target=server.serve_forever, name="test.webhook", daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/hook"
        with httpx.Client(timeout=5) as client:
            assert WebhookNotifier(url, client=client).send([FIRING])
    finally:
        server.shutdown()
        server.server_close()
    [payload] = received
    assert payload["version"] == "4"
    assert payload["alerts"][0]["labels"]["charger"] == "CP1"  # type: ignore[index]


def test_the_log_receiver_writes_one_line_per_transition_not_per_resend(
    caplog: pytest.LogCaptureFixture,
) -> None:
    labels = {"alertname": "Hot", "charger": "CP1", "connector": "1"}
    firing = Notification(labels, {"summary": "hot"}, 0.0, 0.0, status="firing")
    resolved = Notification(labels, {"summary": "hot"}, 0.0, 60.0, status="resolved")
    log = LogNotifier()
    with caplog.at_level(logging.INFO, "chargewatch.alerts"):
        for batch in ([firing], [firing], [firing], [resolved], [resolved], [firing]):
            log.send(batch)
    assert [r.getMessage().split(" ", 1)[0] for r in caplog.records] == [
        "FIRING", "RESOLVED", "FIRING"
    ]  # fmt: skip
