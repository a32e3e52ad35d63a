"""Signed OCMF records made in the test with a key of its own.

The real records (tests/fixtures/ocmf and its reference/ folder) cannot be
re-signed, so tampering, pagination gaps, mismatched energy and key rotation
are shown on records this kit signs (ECDSA secp256r1, SHA-256, as KEBA and
DZG meters sign), built like the real ones.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec


@dataclass
class Meter:
    serial: str = "1DZG0033022268"
    key: ec.EllipticCurvePrivateKey = field(
        default_factory=lambda: ec.generate_private_key(ec.SECP256R1())
    )

    @property
    def public_hex(self) -> str:
        der = self.key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return der.hex().upper()

    def record(
        self,
        page: int,
        *readings: tuple[str, str, str],
        status: str = "G",
        serial: str | None = None,
        **extra: Any,
    ) -> str:
        """``OCMF|payload|signature``; readings are (TX, RV as written, TM)."""
        payload = {
            "FV": "1.0",
            "GI": "chargewatch test",
            "GS": "GW-1",
            "GV": "1.0",
            "PG": f"T{page}",
            "MV": "DZG",
            "MM": "DVH4013",
            "MS": self.serial if serial is None else serial,
            "IS": True,
            "IT": "ISO14443",
            "ID": "04A1B2C3",
            "RD": [
                {"TM": tm, "TX": tx, "RV": f"__RV{i}__", "RI": "1-b:1.8.0", "RU": "kWh",
                 "RT": "AC", "EF": "", "ST": status}
                for i, (tx, _, tm) in enumerate(readings)
            ],
            **extra,
        }  # fmt: skip
        text = json.dumps(payload, separators=(",", ":"))
        for i, (_, rv, _) in enumerate(readings):
            text = text.replace(f'"__RV{i}__"', rv)  # the number exactly as written
        sig = self.key.sign(text.encode(), ec.ECDSA(hashes.SHA256())).hex().upper()
        return f'OCMF|{text}|{{"SA":"ECDSA-secp256r1-SHA256","SD":"{sig}"}}'


def tamper(record: str, old: str, new: str) -> str:
    """The record with its payload changed and the signature kept."""
    head, payload, sig = record.split("|", 2)
    assert old in payload
    return f"{head}|{payload.replace(old, new, 1)}|{sig}"
