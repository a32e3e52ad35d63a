"""Alert receivers: Prometheus Alertmanager (API v2), a webhook, and the log.

The alert engine decides *what* to send and when (new, resent every resend
interval, resolved and resent for 15 minutes); these classes only deliver a
batch of :class:`~chargewatch.alerting.state.Notification`. Delivery failures
are logged and counted, never raised into the pipeline: a receiver outage must
not stop monitoring, and the engine resends on its next interval anyway.
"""

from __future__ import annotations

__all__ = [
    "AlertmanagerNotifier",
    "LogNotifier",
    "Notifier",
    "WebhookNotifier",
    "webhook_payload",
]

import hashlib
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import httpx
from prometheus_client import Counter

from chargewatch.alerting.state import Notification, rfc3339

log = logging.getLogger("chargewatch.notifiers")

SENT = Counter(
    "chargewatch_notifications_sent_total", "Alerts delivered to a receiver.", ["receiver"]
)
FAILED = Counter(
    "chargewatch_notifications_failed_total",
    "Alert batches that could not be delivered after all retries.",
    ["receiver"],
)


class Notifier(Protocol):
    name: str

    def send(self, alerts: Sequence[Notification]) -> bool:
        """Deliver ``alerts``; True when delivered (an empty batch is delivered)."""
        ...


class _HttpNotifier:
    """POST JSON with retries: connection errors and 5xx/429 are retried, other 4xx are not."""

    name = "http"

    def __init__(
        self,
        *,
        timeout_s: float = 10.0,
        retries: int = 3,
        backoff_s: float = 0.5,
        client: httpx.Client | None = None,
        sleep: Callable[[float], None] = time.sleep,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.retries = retries
        self.backoff_s = backoff_s
        self._sleep = sleep
        self._client = client or httpx.Client(timeout=timeout_s, headers=headers)
        self._owns_client = client is None

    def _post(self, url: str, body: Any) -> bool:
        last = ""
        for attempt in range(self.retries + 1):
            if attempt:
                self._sleep(self.backoff_s * 2 ** (attempt - 1))
            try:
                resp = self._client.post(url, json=body)
            except httpx.HTTPError as exc:
                last = f"{type(exc).__name__}: {exc}"
                continue
            if resp.is_success:
                return True
            last = f"HTTP {resp.status_code}: {resp.text[:200]}"
            if resp.status_code < 500 and resp.status_code != 429:
                break  # the request itself is wrong; repeating it will not help
        log.warning("%s: delivery to %s failed: %s", self.name, url, last)
        return False

    def close(self) -> None:
        if self._owns_client:
            self._client.close()


class AlertmanagerNotifier(_HttpNotifier):
    """Posts to Alertmanager's ``/api/v2/alerts`` (one or more instances of a cluster).

    Like Prometheus, every Alertmanager of the list gets every alert; the batch
    counts as delivered when at least one accepted it.
    """

    name = "alertmanager"

    def __init__(self, urls: str | Sequence[str], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        base = [urls] if isinstance(urls, str) else list(urls)
        self.urls = [u.rstrip("/") + "/api/v2/alerts" for u in base]

    def send(self, alerts: Sequence[Notification]) -> bool:
        if not alerts:
            return True
        body = [a.to_alertmanager() for a in alerts]
        ok = False
        for url in self.urls:
            ok = self._post(url, body) or ok
        (SENT if ok else FAILED).labels(self.name).inc(len(alerts) if ok else 1)
        return ok


def _fingerprint(labels: dict[str, str]) -> str:
    return hashlib.sha256(
        "\xff".join(f"{k}\xfe{v}" for k, v in sorted(labels.items())).encode()
    ).hexdigest()[:16]


def _common(maps: Sequence[dict[str, str]]) -> dict[str, str]:
    if not maps:
        return {}
    first = maps[0]
    return {k: v for k, v in first.items() if all(m.get(k) == v for m in maps[1:])}


def webhook_payload(
    alerts: Sequence[Notification],
    *,
    receiver: str = "chargewatch",
    external_url: str = "",
    group_labels: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Alertmanager's webhook body (``version: "4"``), so existing receivers just work."""
    items = []
    for a in alerts:
        labels = dict(a.labels)
        items.append(
            {
                "status": a.status,
                "labels": labels,
                "annotations": dict(a.annotations),
                "startsAt": rfc3339(a.starts_at),
                "endsAt": rfc3339(a.ends_at) if a.status == "resolved" else "0001-01-01T00:00:00Z",
                "generatorURL": a.generator_url,
                "fingerprint": _fingerprint(labels),
            }
        )
    gl = group_labels if group_labels is not None else {}
    firing = any(a.status == "firing" for a in alerts)
    return {
        "version": "4",
        "groupKey": "{}:" + "{" + ",".join(f'{k}="{v}"' for k, v in sorted(gl.items())) + "}",
        "truncatedAlerts": 0,
        "status": "firing" if firing else "resolved",
        "receiver": receiver,
        "groupLabels": gl,
        "commonLabels": _common([dict(a.labels) for a in alerts]),
        "commonAnnotations": _common([dict(a.annotations) for a in alerts]),
        "externalURL": external_url,
        "alerts": items,
    }


class WebhookNotifier(_HttpNotifier):
    """Posts Alertmanager-compatible webhook payloads, one per alertname (its group)."""

    name = "webhook"

    def __init__(
        self, url: str, *, receiver: str = "chargewatch", external_url: str = "", **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.url = url
        self.receiver = receiver
        self.external_url = external_url

    def send(self, alerts: Sequence[Notification]) -> bool:
        if not alerts:
            return True
        groups: dict[str, list[Notification]] = {}
        for a in alerts:
            groups.setdefault(a.labels.get("alertname", ""), []).append(a)
        ok = True
        for name, batch in groups.items():
            body = webhook_payload(
                batch,
                receiver=self.receiver,
                external_url=self.external_url,
                group_labels={"alertname": name},
            )
            delivered = self._post(self.url, body)
            (SENT if delivered else FAILED).labels(self.name).inc(len(batch) if delivered else 1)
            ok = ok and delivered
        return ok


# Alerts whose last logged status is remembered (resolved ones are resent for
# 15 minutes, then forgotten by the engine; this bounds the memory either way).
_LOG_MEMORY = 50_000


class LogNotifier:
    """Writes one log line per alert: the embedded default receiver."""

    name = "log"

    def __init__(self, logger: logging.Logger | None = None) -> None:
        self.log = logger or logging.getLogger("chargewatch.alerts")
        # The status last logged per alert: Alertmanager needs an alert resent
        # while it fires, a log reader needs one line per transition.
        self._logged: dict[frozenset[tuple[str, str]], str] = {}

    def send(self, alerts: Sequence[Notification]) -> bool:
        for a in alerts:
            key = frozenset(a.labels.items())
            if self._logged.get(key) == a.status:
                continue
            self._logged.pop(key, None)
            self._logged[key] = a.status  # newest last: the oldest go first below
            if len(self._logged) > _LOG_MEMORY:
                del self._logged[next(iter(self._logged))]
            labels = ",".join(f'{k}="{v}"' for k, v in sorted(a.labels.items()))
            level = logging.WARNING if a.status == "firing" else logging.INFO
            self.log.log(
                level, "%s {%s} %s", a.status.upper(), labels, a.annotations.get("summary", "")
            )
        SENT.labels(self.name).inc(len(alerts))
        return True
