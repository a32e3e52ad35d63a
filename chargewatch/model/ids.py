"""The charger id alphabet, shared by the telemetry topics and the fleet inventory.

Charger ids end up in MQTT topics, InfluxDB tags and file names, so they are
kept to a safe alphabet. OCPP's chargeBoxIdentity is a CiString of at most 48
characters; real ids use these characters. An inventory id outside it could
never match telemetry and would make remediation topics invalid (``EVIL/#``).
"""

from __future__ import annotations

__all__ = ["CHARGER_ID_RULE", "is_charger_id"]

import re

# fullmatch, not `^...$`: `$` also matches before a trailing newline.
_CHARGER_ID = re.compile(r"[A-Za-z0-9._:\-]{1,64}")

#: What a valid id is, for error messages.
CHARGER_ID_RULE = "1 to 64 ASCII letters, digits or . _ : -"


def is_charger_id(text: str) -> bool:
    return _CHARGER_ID.fullmatch(text) is not None
