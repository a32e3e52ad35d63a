"""Ground truth of a simulation: every session, every injected fault, every hard normal case.

Written as JSON Lines, one record a line, each with a ``type`` of ``session``,
``fault`` or ``normal``. Times are epoch seconds (``*_iso`` twins in RFC 3339)
on the true clock, not the charger's (a skewed clock does not move the truth).
"""

from __future__ import annotations

__all__ = ["FaultTruth", "NormalTruth", "SessionTruth", "Truth", "iso"]

from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson


def iso(t: float) -> str:
    """RFC 3339 UTC with milliseconds, e.g. ``2026-11-23T08:00:00.250Z``."""
    return datetime.fromtimestamp(round(t, 3), UTC).isoformat(timespec="milliseconds")[:-6] + "Z"


@dataclass(frozen=True, slots=True)
class SessionTruth:
    """One plug-in to unplug. ``energy_wh`` is the energy the meter truly counted
    between the transaction start and stop (= the register delta without meter
    faults = the sum of power × interval over the samples in (start, stop]).
    ``full`` is when the car reached its charge limit (None if it left before);
    ``idle_s`` the time plugged in after that. ``tags`` name the hard normal
    cases present (dc, suspended_ev, single_phase_car_on_three_phase, ...)."""

    charger: str
    connector: int
    site: str
    transaction_id: str
    id_tag: str
    plug_in: float
    start: float
    stop: float
    unplug: float
    full: float | None
    energy_wh: float
    idle_s: float
    soc_start: float
    soc_target: float
    stop_reason: str
    tags: tuple[str, ...]
    complete: bool = True  # False: plugged in before the simulation's start or after its end


@dataclass(frozen=True, slots=True)
class FaultTruth:
    """An injected fault. ``connector`` None: the whole charger. ``kind`` is
    "telemetry" (``fault`` label of alerts) or "error_code" (``error_code`` label)."""

    fault: str
    kind: str
    charger: str
    connector: int | None
    site: str
    start: float
    end: float
    params: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class NormalTruth:
    """A hard normal case that must not raise an alert: ``reboot`` (offline and
    boot), ``boot_faulted_blip`` (Faulted/NoError for ~2 s after a boot),
    ``telemetry_gap`` (5-120 s without meter samples)."""

    name: str
    charger: str
    connector: int | None
    start: float
    end: float


@dataclass(frozen=True)
class Truth:
    sessions: list[SessionTruth]
    faults: list[FaultTruth]
    normals: list[NormalTruth]

    def records(self) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for s in self.sessions:
            d = asdict(s)
            d["tags"] = list(s.tags)
            out.append({"type": "session", **d, **_isos(d, ("plug_in", "start", "stop", "unplug"))})
        for f in self.faults:
            d = asdict(f)
            out.append({"type": "fault", **d, **_isos(d, ("start", "end"))})
        for n in self.normals:
            d = asdict(n)
            out.append({"type": "normal", **d, **_isos(d, ("start", "end"))})
        return out

    def write(self, path: str | Path) -> None:
        with open(path, "wb") as fh:
            for rec in self.records():
                fh.write(orjson.dumps(rec) + b"\n")

    @staticmethod
    def read(path: str | Path) -> list[dict[str, Any]]:
        with open(path, "rb") as fh:
            return [orjson.loads(line) for line in fh if line.strip()]


def _isos(d: dict[str, Any], keys: tuple[str, ...]) -> dict[str, str]:
    return {f"{k}_iso": iso(d[k]) for k in keys}
