"""What the session engine takes and gives: thresholds, rejections, billed records.

The records' JSON shape (``SessionRecord.to_dict``) is the ``sessions.jsonl``
line; ``session_id`` is deterministic so a replay gives the same ids.
"""

from __future__ import annotations

__all__ = [
    "ENERGY_POLICIES",
    "QUALITY_FLAGS",
    "Rejected",
    "SessionConfig",
    "SessionRecord",
    "period_dict",
    "rfc3339",
    "session_id",
    "signature_dict",
]

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from chargewatch.model.events import SignedReading
from chargewatch.model.fleet import MeterKey
from chargewatch.sessions.power_track import Period
from chargewatch.sessions.signatures import UNSIGNED, SignatureCheck

#: Every quality flag a record can carry, with its meaning.
QUALITY_FLAGS: dict[str, str] = {
    "inferred_start": "start not from a transaction event (status or power)",
    "inferred_stop": "no stop event; closed by next_start / available / status / timeout",
    "register_reset": "the register dropped (reboot, reset, meter swap); segments summed",
    "register_jump": "the register rose faster than possible (meter swap); not billed",
    "bad_value": "impossible register readings (negative, decreasing without reset) discarded",
    "register_stuck": "register stood still while power was delivered and missed that energy",
    "estimated": "energy from the power integral, no usable register",
    "unit_corrected": "register in kWh labelled Wh; scaled by 1000",
    "coarse_meter_values": "meter start/stop in whole kWh; the finer sampled registers used",
    "needs_review": "register proven wrong (review_reason): register and estimate both given",
    "gap": "samples missing for longer than gap_s; not bridged",
    "late_data": "data received late_after_s past its meter time, or out of order, changed it",
    "revised": "an earlier record of this session was changed (see revision)",
    "power_register_mismatch": "register and power integral disagree beyond tolerance",
    "stop_matched": "the stop named no known transaction (e.g. -1); matched to the open one",
    "stop_time_corrected": "the stop's timestamp was impossible; receive time or last data used",
    "failed_start": "plugged in, no transaction and no energy: recorded, not billed",
    "clock_corrected": (
        "the charger's clock was off by clock_offset_s (its time minus receipt); "
        "start, stop and samples moved by it"
    ),
    "clock_rebased": (
        "opened while the charger's clock offset was not yet confirmed; its times "
        "were moved to it once it was"
    ),
    "signed_energy_mismatch": (
        "the meter's signed end minus start reading differs from the billed energy "
        "by more than the meter's resolution"
    ),
}


#: billing.energy_policy: bill the register as the meter counted it, or the best estimate.
ENERGY_POLICIES: tuple[str, ...] = ("best_estimate", "register")


@dataclass(frozen=True, slots=True)
class SessionConfig:
    """Thresholds of the engine. Times in seconds, power in W, energy in Wh."""

    charging_threshold_w: float = 50.0  # above: charging; at or below: idle
    gap_s: float = 1800.0  # sample gaps longer than this are not bridged
    available_grace_s: float = 300.0  # wait for a stop after Available
    stale_timeout_s: float = 86_400.0  # no growth and no power: close (rule 5)
    power_idle_timeout_s: float = 1_800.0  # same, for power-inferred sessions
    occupied_timeout_s: float = 7 * 86_400.0  # same, while the connector status is occupied
    retain_closed_s: float = 14 * 86_400.0  # closed sessions kept for late data / late stops
    future_tolerance_s: float = 3_600.0  # timestamps further ahead of `now` are rejected
    late_after_s: float = 300.0  # received this long after its timestamp: late
    register_tolerance_wh: float = 1.0
    reset_ratio: float = 0.5
    reset_from_zero_wh: float = 1_000.0  # first reading after a reset counted from 0 up to this
    max_power_w: float = 4_000_000.0  # megawatt charging (MCS); faster register rises are jumps
    mismatch_pct: float = 5.0
    mismatch_min_wh: float = 100.0
    # A register run stuck under load must have missed more than this to count.
    stuck_min_wh: float = 100.0
    # What energy_wh is when the register is proven wrong (billing.energy_policy).
    energy_policy: str = "best_estimate"
    # Pinned public keys of the meters' signed readings (fleet.yaml meter_keys).
    meter_keys: tuple[MeterKey, ...] = ()
    # Charger clocks off by at least this much are corrected (clock_offsets.py;
    # math.inf: never). Smaller offsets are latency and drift: ClockSkew's.
    clock_min_offset_s: float = 300.0
    clock_agree_s: float = 60.0  # messages within this of each other show one offset
    # An offset behind the applied one (what late delivery also looks like)
    # takes this many agreeing messages over this much receive time.
    clock_confirm_n: int = 3
    clock_confirm_span_s: float = 600.0
    # A message rejected only because its charger's offset is not confirmed yet
    # is held (clock_hold.py) this long at most, this many per charger. Long:
    # statuses come only on change, and an idle charger may send nothing else
    # with a timestamp for hours (the field captures: 34 min); memory is
    # bounded by the count.
    clock_hold_s: float = 6 * 3_600.0
    clock_hold_max: int = 16

    def __post_init__(self) -> None:
        if self.gap_s <= 0 or self.charging_threshold_w < 0:
            raise ValueError("gap_s must be > 0 and charging_threshold_w >= 0")
        if self.energy_policy not in ENERGY_POLICIES:
            raise ValueError(f"energy_policy must be one of {', '.join(ENERGY_POLICIES)}")
        if not 0 < self.reset_ratio < 1:
            raise ValueError("reset_ratio must be in (0, 1)")
        if not 0 < self.clock_agree_s < self.clock_min_offset_s or self.clock_confirm_n < 2:
            raise ValueError("need 0 < clock_agree_s < clock_min_offset_s and clock_confirm_n >= 2")
        if self.clock_hold_s < 0 or self.clock_hold_max < 1:
            raise ValueError("need clock_hold_s >= 0 and clock_hold_max >= 1")


@dataclass(frozen=True, slots=True)
class Rejected:
    """Input not used by the engine, with a stable reason code."""

    charger: str
    connector: int
    ts: float
    reason: str  # future_timestamp | stop_without_session | stop_ambiguous
    detail: str = ""


@dataclass(frozen=True, slots=True)
class SessionRecord:
    session_id: str
    charger_id: str
    connector_id: int
    site: str
    transaction_id: str
    start: float  # epoch seconds (meter clock)
    stop: float
    energy_wh: float
    energy_source: str  # register | transaction_meter | power_integral
    quality: tuple[str, ...]
    revision: int
    stop_reason: str  # transaction | next_start | available | status | timeout
    idle_s: float
    charging_s: float
    meter_start_wh: float | None
    meter_stop_wh: float | None
    register_wh: float | None
    power_integral_wh: float
    mismatch_wh: float | None
    mismatch_pct: float | None
    id_tag: str
    periods: tuple[Period, ...]
    signed_start: str = ""
    signed_stop: str = ""
    # Set when the register is proven wrong (needs_review) or differs from the estimate.
    register_energy_wh: float | None = None
    estimate_energy_wh: float | None = None
    # register_stuck | register_regression | register_break | unit_corrected
    review_reason: str = ""
    # The session's signed readings and their check (docs/signatures.md).
    signed: tuple[SignedReading, ...] = ()
    signature: SignatureCheck = UNSIGNED
    # The charger's clock offset (its time minus receipt) start, stop and
    # periods were corrected by; 0 for a clock that was right (clock_corrected).
    clock_offset_s: float = 0.0
    # Why the charger says the transaction stopped (OCPP 1.6 StopTransaction
    # ``reason``, "Local" when absent as the spec says; 2.0.1 ``stoppedReason``,
    # else the Ended event's ``triggerReason``); "" when no stop event came.
    # ``stop_reason`` says how the session was closed, this what the charger told.
    charger_stop_reason: str = ""

    @property
    def duration_s(self) -> float:
        return self.stop - self.start

    def to_dict(self) -> dict[str, Any]:
        """The ``sessions.jsonl`` line of docs/sessions.md (times RFC 3339 UTC)."""
        d = {
            "session_id": self.session_id,
            "charger_id": self.charger_id,
            "connector_id": self.connector_id,
            "transaction_id": self.transaction_id,
            "start": rfc3339(self.start),
            "stop": rfc3339(self.stop),
            "energy_wh": round(self.energy_wh, 3),
            "energy_source": self.energy_source,
            "quality": list(self.quality),
            "site": self.site,
            "revision": self.revision,
            "stop_reason": self.stop_reason,
            "duration_s": round(self.duration_s, 3),
            "idle_s": round(self.idle_s, 3),
            "charging_s": round(self.charging_s, 3),
            "meter_start_wh": self.meter_start_wh,
            "meter_stop_wh": self.meter_stop_wh,
            "register_wh": _r3(self.register_wh),
            "power_integral_wh": round(self.power_integral_wh, 3),
            "mismatch_wh": _r3(self.mismatch_wh),
            "mismatch_pct": _r3(self.mismatch_pct),
            "id_tag": self.id_tag,
            "periods": [period_dict(p) for p in self.periods],
            "signed_start": self.signed_start,
            "signed_stop": self.signed_stop,
            "signature_status": self.signature.status,
            "signature_reason": self.signature.reason,
            "key_pinned": self.signature.key_pinned,
        }
        if self.signature.readings:
            d.update(signature_dict(self.signature))
        if self.register_energy_wh is not None or self.review_reason:
            # Only where they say something: lines of clean sessions stay as they were.
            d["register_energy_wh"] = _r3(self.register_energy_wh)
            d["estimate_energy_wh"] = _r3(self.estimate_energy_wh)
            d["review_reason"] = self.review_reason
        if self.clock_offset_s:
            d["clock_offset_s"] = round(self.clock_offset_s, 3)
        if self.charger_stop_reason:
            d["charger_stop_reason"] = self.charger_stop_reason
        return d


def signature_dict(c: SignatureCheck) -> dict[str, Any]:
    """The signed readings' part of a session line: each reading with its verdict
    (what a driver's receipt lists), the key, the signed energy."""
    return {
        "public_key": c.public_key,
        "signed_energy_wh": _r3(c.signed_energy_wh),
        "signed_resolution_wh": c.resolution_wh,
        "signed_readings": [r.to_dict() for r in c.readings],
    }


def _r3(x: float | None) -> float | None:
    return None if x is None else round(x, 3)


def rfc3339(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def period_dict(p: Period) -> dict[str, Any]:
    return {
        "kind": p.kind,
        "start": rfc3339(p.start),
        "end": rfc3339(p.end),
        "duration_s": round(p.duration_s, 3),
        "energy_wh": round(p.energy_wh, 3),
        "min_power_w": p.min_power_w,
        "max_power_w": p.max_power_w,
        "max_current_a": p.max_current_a,
    }


def session_id(charger: str, connector: int, transaction_id: str, start: float) -> str:
    """Deterministic id: replaying a capture twice gives the same ids (idempotent ledger)."""
    key = f"{charger}\x1f{connector}\x1f{transaction_id}\x1f{start:.3f}"
    return hashlib.sha256(key.encode()).hexdigest()[:24]
