"""Session findings on signed readings, as signals alert rules can page on.

A session-stage listener and a signal provider in one: the session stage hands
it every closed or revised session; the alert stage asks it for the columns
``signature_invalid`` (the connector's last signed session failed its check:
``signature_status`` invalid) and ``signed_energy_mismatch`` (its signed energy
differs from the billed energy beyond the meter's resolution), with the
session's id and reason as strings for the alert text (rules/signatures.yaml).

A finding stands until a later signed session of the connector is clean, or
for ``hold_s`` after the session's stop (a connector that signs no more
sessions must not page for ever).
"""

from __future__ import annotations

__all__ = ["SignatureFindings"]

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from chargewatch.model.fleet import ConnectorIndex
from chargewatch.sessions.session_engine import SessionRecord


@dataclass(frozen=True, slots=True)
class _Finding:
    stop: float
    invalid: bool
    mismatch: bool
    session_id: str
    reason: str


class SignatureFindings:
    def __init__(self, index: ConnectorIndex, hold_s: float = 86_400.0) -> None:
        self.index = index
        self.hold_s = hold_s
        self._last: dict[int, _Finding] = {}  # dense connector -> its last signed session

    def __call__(self, records: list[SessionRecord]) -> None:
        for r in records:
            c = r.signature
            if c.status == "unsigned":
                continue
            conn = self.index.id(r.charger_id, r.connector_id)
            old = self._last.get(conn)
            if old is not None and old.stop > r.stop and old.session_id != r.session_id:
                continue  # a revision of an older session: the newer one stands
            reason = c.reason if c.status == "invalid" else ""
            if c.energy_mismatch:
                signed = f"{c.signed_energy_wh:.1f}" if c.signed_energy_wh is not None else "?"
                reason = reason or f"signed {signed} Wh, billed {r.energy_wh:.1f} Wh"
            self._last[conn] = _Finding(
                r.stop, c.status == "invalid", c.energy_mismatch, r.session_id, reason
            )

    def signals(self, now: float) -> dict[str, NDArray[Any]]:
        n = len(self.index)
        invalid = np.zeros(n, np.bool_)
        mismatch = np.zeros(n, np.bool_)
        session = np.full(n, "", dtype=object)
        reason = np.full(n, "", dtype=object)
        for conn, f in self._last.items():
            if conn >= n or now - f.stop > self.hold_s:
                continue
            invalid[conn], mismatch[conn] = f.invalid, f.mismatch
            if f.invalid or f.mismatch:
                session[conn], reason[conn] = f.session_id, f.reason
        return {
            "signature_invalid": invalid,
            "signed_energy_mismatch": mismatch,
            "signature_session_id": session,
            "signature_reason": reason,
        }
