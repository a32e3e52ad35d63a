"""The MQTT topic contract that more than one stage writes (docs/architecture.md)."""

from __future__ import annotations

__all__ = ["command_topic"]


def command_topic(version: str, charger: str) -> str:
    """Where remediation commands to a charger go; the OCPP bridge delivers them."""
    return f"ocpp/{version}/{charger}/command"
