"""Line protocol for connector status changes and alert transitions (dashboards read these).

* ``status`` — tags ``charger``, ``connector``, ``site``; fields ``status``
  (string, OCPP 1.6 ChargePointStatus), ``error_code`` (string, OCPP 1.6
  ChargePointErrorCode), ``status_code`` (int, :data:`STATUS_CODES`: a fixed
  number per status, so panels can draw state timelines and count by status
  with numeric functions) and ``vendor_error_code`` (string, "" when none).
  Time = the charger's clock (the receive time when the charger sent none).
* ``alert`` — tags ``alertname``, ``severity``, ``charger``, ``connector``,
  ``site`` and ``fault`` or ``error_code`` and ``mrec`` (whichever labels the alert carries),
  plus ``model`` (the charger model from the fleet inventory, when given and
  known, so panels can rank models);
  fields ``state`` (string ``firing``/``resolved``), ``firing`` (int 1/0),
  ``value`` (float, omitted when NaN) and ``duration_s`` (float: 0 when firing;
  on resolve, the seconds since it fired, when the firing transition was seen).
  Time = the transition time.

Timestamps are in milliseconds, like ``meter``.
"""

from __future__ import annotations

__all__ = [
    "ALERT_TAGS",
    "STATUS_CODES",
    "AlertLines",
    "StatusStage",
    "alert_lines",
    "status_lines",
]

import math
from collections.abc import Iterable, MutableMapping

from chargewatch.alerting.state import Key, Transition, key_of
from chargewatch.model.batch import MeterBatch
from chargewatch.model.events import CONNECTOR_STATUSES, Event, StatusEvent
from chargewatch.model.fleet import ConnectorIndex, Fleet
from chargewatch.storage.lineproto import LineSink, escape_field_string, series_prefix

#: ``status_code`` per status. 0 is an unknown status (a charger outside the
#: vocabulary); the order follows a session's life, then the out-of-service states,
#: so "status_code >= 8" means out of service in panels. Never renumber: stored
#: history and dashboard value mappings depend on these numbers.
STATUS_CODES: dict[str, int] = {name: i + 1 for i, name in enumerate(CONNECTOR_STATUSES)}

#: Alert labels stored as tags (low cardinality); all other labels are dropped.
ALERT_TAGS: tuple[str, ...] = (
    "alertname",
    "severity",
    "charger",
    "connector",
    "site",
    "fault",
    "error_code",
    "mrec",  # ChargeX MREC code of an error-code alert (27 values at most)
)


def _ms(t: float) -> int:
    return round(t * 1000.0)


def status_lines(events: Iterable[Event], index: ConnectorIndex) -> list[str]:
    """A ``status`` line per :class:`StatusEvent` in ``events``; other events are skipped."""
    out: list[str] = []
    fleet = index.fleet
    for ev in events:
        if not isinstance(ev, StatusEvent):
            continue
        t = ev.ts if math.isfinite(ev.ts) and ev.ts > 0 else ev.recv
        tags = {
            "charger": ev.charger,
            "connector": str(ev.connector),
            "site": fleet.site_of(ev.charger),
        }
        out.append(
            f"{series_prefix('status', tags)} "
            f"status={escape_field_string(ev.status)},"
            f"error_code={escape_field_string(ev.error_code)},"
            f"status_code={STATUS_CODES.get(ev.status, 0)}i,"
            f"vendor_error_code={escape_field_string(ev.vendor_error_code)} {_ms(t)}"
        )
    return out


def alert_lines(
    transitions: Iterable[Transition],
    fired_at: MutableMapping[Key, float] | None = None,
    fleet: Fleet | None = None,
) -> list[str]:
    """An ``alert`` line per transition.

    ``fired_at`` maps an alert's identity (its sorted labels) to when it fired;
    pass the same mapping on every call (or use :class:`AlertLines`) and
    resolved lines carry ``duration_s``. It is updated in place.
    """
    since: MutableMapping[Key, float] = {} if fired_at is None else fired_at
    out: list[str] = []
    for tr in transitions:
        labels = dict(tr.labels)
        labels.setdefault("alertname", tr.alertname)
        tags = {k: labels[k] for k in ALERT_TAGS if labels.get(k)}
        if fleet is not None and labels.get("charger"):
            model = fleet.model_of(labels["charger"])
            if model:
                tags["model"] = model
        key = key_of(labels)
        fields = [f"state={escape_field_string(tr.state)}"]
        if tr.state == "firing":
            fields.append("firing=1i")
            since[key] = tr.at
            duration: float | None = 0.0
        else:
            fields.append("firing=0i")
            start = since.pop(key, None)
            duration = None if start is None else max(0.0, tr.at - start)
        if math.isfinite(tr.value):
            fields.append(f"value={float(tr.value)!r}")
        if duration is not None:
            fields.append(f"duration_s={float(duration)!r}")
        out.append(f"{series_prefix('alert', tags)} {','.join(fields)} {_ms(tr.at)}")
    return out


class AlertLines:
    """Keeps firing times between calls so resolved lines carry ``duration_s``."""

    def __init__(self, fleet: Fleet | None = None) -> None:
        self.fleet = fleet
        self.fired_at: dict[Key, float] = {}

    def lines(self, transitions: Iterable[Transition]) -> list[str]:
        return alert_lines(transitions, self.fired_at, self.fleet)


class StatusStage:
    """A pipeline Stage that writes every batch's status events as ``status`` lines."""

    def __init__(self, index: ConnectorIndex, sink: LineSink) -> None:
        self.index = index
        self.sink = sink

    def on_batch(self, batch: MeterBatch, events: list[Event], now: float) -> None:
        lines = status_lines(events, self.index)
        if lines:
            self.sink.write(lines)

    def tick(self, now: float) -> None:
        pass  # status lines are written as the events arrive
