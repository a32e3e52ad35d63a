"""Signed meter readings (OCMF) of a session checked: signatures, binding, energy.

Pure: given a session's signed readings (as the decoders keep them,
:class:`~chargewatch.model.events.SignedReading`), the pinned keys of the
fleet file and the billed energy, :func:`check_session` says whether the
meter's own signed start and end readings prove what is billed
(docs/signatures.md). Parsing and the elliptic-curve checks are pyocmf's
(every curve it supports); nothing here reads a clock or a file.

A session's ``signature_status``:

* ``verified`` — every signed record verifies with its key, and the start
  and end readings belong to one transaction of one meter;
* ``invalid`` — a signature fails (tampered data, wrong key), a record claims
  OCMF but does not parse, or the readings are not one transaction (another
  meter serial, a gap in the transaction pagination, meter or time status
  not OK, the register going back);
* ``key_unknown`` — signed, but no key to check a record with (none pinned
  for the charger or meter at that time, none sent);
* ``incomplete`` — the signed start or end reading is missing, or the signed
  data is in a format other than OCMF;
* ``unsigned`` — no signed reading at all.

The first of invalid, key_unknown, incomplete that applies is the status.
"""

from __future__ import annotations

__all__ = [
    "SIGNATURE_STATUSES",
    "ReadingCheck",
    "SignatureCheck",
    "check_records",
    "check_session",
    "key_hex",
]

import base64
import binascii
import json
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from itertools import pairwise
from typing import TYPE_CHECKING, Any, Final

from chargewatch.model.events import SignedReading
from chargewatch.model.fleet import MeterKey

if TYPE_CHECKING:
    from pyocmf import OCMF, Reading

SIGNATURE_STATUSES: Final = ("verified", "invalid", "unsigned", "key_unknown", "incomplete")
_RANK: Final = {"invalid": 0, "key_unknown": 1, "incomplete": 2, "verified": 3}
_WH_PER: Final = {"Wh": Decimal(1), "kWh": Decimal(1000)}
_END_REASONS: Final = frozenset("ELRAP")  # OCMF TX of a transaction's last reading


@dataclass(frozen=True, slots=True)
class ReadingCheck:
    """One signed reading and its verdict (what a receipt lists per reading).

    ``status``: verified | invalid | key_unknown | unreadable (not OCMF).
    ``signature_valid`` is None when the signature could not be checked.
    ``time``/``value``/``unit``/``reason``/``pagination`` are the OCMF TM, RV,
    RU, TX and PG as written; ``public_key`` is the key checked against (hex
    DER), ``key_pinned`` whether it came from the fleet file.
    """

    raw: str
    ocmf: str
    meter_serial: str
    time: str
    value: str
    unit: str
    reason: str
    pagination: str
    signature_valid: bool | None
    status: str
    detail: str
    public_key: str
    key_pinned: bool
    record: int = 0  # which signed record (OCMF string) of the session holds it

    def to_dict(self) -> dict[str, Any]:
        return {
            "record": self.record,
            "ocmf": self.ocmf or self.raw,
            "meter_serial": self.meter_serial,
            "time": self.time,
            "value": self.value,
            "unit": self.unit,
            "reason": self.reason,
            "pagination": self.pagination,
            "signature_valid": self.signature_valid,
            "status": self.status,
            "detail": self.detail,
            "public_key": self.public_key,
            "key_pinned": self.key_pinned,
        }


@dataclass(frozen=True, slots=True)
class SignatureCheck:
    """A session's verdict on its signed readings (see the module doc).

    ``signed_energy_wh`` is the end reading minus the start reading, in Wh;
    ``energy_mismatch`` says it differs from the billed energy by more than
    ``resolution_wh``, the meter's resolution (the last digit its readings
    are written with).
    """

    status: str
    reason: str = ""
    key_pinned: bool = False
    public_key: str = ""
    readings: tuple[ReadingCheck, ...] = ()
    signed_energy_wh: float | None = None
    resolution_wh: float | None = None
    energy_mismatch: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "reason": self.reason,
            "key_pinned": self.key_pinned,
            "public_key": self.public_key,
            "signed_energy_wh": self.signed_energy_wh,
            "resolution_wh": self.resolution_wh,
            "energy_mismatch": self.energy_mismatch,
            "readings": [r.to_dict() for r in self.readings],
        }


UNSIGNED: Final = SignatureCheck("unsigned", "no signed meter reading")


@dataclass(frozen=True, slots=True)
class _Record:
    """One signed record (one OCMF string) and what checking it found."""

    signed: SignedReading
    ocmf: OCMF | None
    status: str  # verified | invalid | key_unknown | unreadable
    detail: str
    key: str = ""
    pinned: bool = False
    valid: bool | None = None


def check_session(
    readings: Sequence[SignedReading],
    *,
    charger: str,
    keys: Sequence[MeterKey] = (),
    billed_wh: float | None = None,
) -> SignatureCheck:
    """The session's verdict (module doc); never raises on bad signed data."""
    if not readings:
        return UNSIGNED
    pinned = tuple(keys)
    try:
        records = [_check_record(s, charger, pinned) for s in _unique(readings)]
        return _verdict(records, billed_wh)
    except Exception as bad:  # pyocmf's models on untrusted input: a session must not fail
        return SignatureCheck("invalid", f"signed data cannot be checked: {_first_line(bad)}")


def check_records(
    readings: Sequence[SignedReading], *, key: str = "", keys: Sequence[MeterKey] = ()
) -> SignatureCheck:
    """Records outside a session (``chargewatch ocmf verify``): ``key``, if given,
    stands in for every record's own; no billed energy to compare."""
    if key:
        keys = (MeterKey(key),)
    return check_session(readings, charger="", keys=keys)


def _unique(readings: Sequence[SignedReading]) -> list[SignedReading]:
    # KEBA attaches one record (Begin and End readings) to both values.
    seen: set[str] = set()
    out = []
    for s in readings:
        k = s.ocmf or s.raw
        if k not in seen:
            seen.add(k)
            out.append(s)
    return out


def _parse(text: str) -> OCMF | str:
    from pyocmf import OCMF, SpecWarning  # noqa: PLC0415  (pydantic: ~0.4 s to import)

    warnings.filterwarnings("ignore", category=SpecWarning)  # deviations real meters show
    try:
        return OCMF.from_string(text)
    except Exception as bad:  # a third-party parser on untrusted input: anything goes
        return f"OCMF does not parse: {_first_line(bad)}"


def _first_line(bad: BaseException) -> str:
    msg = str(bad).strip()
    return (msg.splitlines()[0] if msg else type(bad).__name__)[:200]


# A closed session's record is built again on every change (late data, revisions):
# its signatures are checked once.
@lru_cache(maxsize=4096)
def _check_record(s: SignedReading, charger: str, keys: tuple[MeterKey, ...]) -> _Record:
    if not s.ocmf:
        why = s.error or "not OCMF"
        return _Record(s, None, "unreadable", f"signed data not readable: {why}")
    parsed = _parse(s.ocmf) if not s.error.startswith("OCMF does not parse") else s.error
    if isinstance(parsed, str):
        return _Record(s, None, "invalid", parsed)
    serial = parsed.payload.MS or parsed.payload.GS or ""
    at = _first_time(parsed)
    key, pinned, why = _key_for(s, parsed, charger, serial, at, keys)
    if not key:
        return _Record(s, parsed, "key_unknown", why)
    try:
        ok = parsed.verify_signature(key)
    except ImportError as bad:  # pyocmf[crypto] missing: cannot check, say so
        return _Record(s, parsed, "key_unknown", f"cannot verify: {_first_line(bad)}", key, pinned)
    except Exception as bad:  # wrong curve for SA, undecodable SD or key
        return _Record(s, parsed, "invalid", _first_line(bad), key, pinned, False)
    if not ok:
        whose = "the pinned key" if pinned else "the key sent with it"
        return _Record(
            s, parsed, "invalid", f"signature does not verify with {whose}", key, pinned, False
        )
    return _Record(s, parsed, "verified", "", key, pinned, True)


def _first_time(ocmf: OCMF) -> float | None:
    """The first reading's time (epoch s); None without one or without a UTC offset."""
    for rd in ocmf.payload.RD:
        try:
            at = rd.timestamp
            return at.timestamp() if at.tzinfo is not None else None
        except (TypeError, ValueError, OverflowError, AttributeError):
            return None
    return None


def _tm(rd: Reading) -> str:
    """TM as OCMF writes it; pyocmf refuses to print a time without an offset."""
    try:
        return str(rd.TM)
    except (TypeError, ValueError):
        return str(getattr(rd.TM, "timestamp", ""))


def _key_for(
    s: SignedReading,
    ocmf: OCMF,
    charger: str,
    serial: str,
    at: float | None,
    keys: Sequence[MeterKey],
) -> tuple[str, bool, str]:
    """(hex key, pinned, why none): pinned first, the meter serial's before the charger's."""
    mine = [k for k in keys if k.applies(charger, serial, at)]
    if mine:
        best = max(mine, key=lambda k: (bool(k.meter_serial), bool(k.charger)))
        return key_hex(best.public_key), True, ""
    for sent in (s.public_key, ocmf.embedded_public_key or ""):
        got = key_hex(sent)
        if got:
            return got, False, ""
    if any(k.applies(charger, serial, None) or _same_meter(k, charger, serial) for k in keys):
        return "", False, f"no pinned key for meter {serial or '?'} valid at the reading's time"
    return "", False, f"no public key for meter {serial or '?'} (none pinned, none sent)"


def _same_meter(k: MeterKey, charger: str, serial: str) -> bool:
    return (not k.meter_serial or k.meter_serial == serial) and (
        not k.charger or k.charger == charger
    )


def key_hex(text: str) -> str:
    """A public key as hex DER, from hex (spaced or not), base64, or the JSON
    ``{"UK": "<hex>"}`` (plain or base64) KEBA sends as 2.0.1 ``publicKey``; "" if none."""
    s = "".join(text.split())
    if not s:
        return ""
    if not s.startswith("{"):
        try:
            inner = base64.b64decode(s, validate=True).decode("ascii")
        except (binascii.Error, ValueError):
            inner = ""
        if inner.lstrip().startswith("{"):
            s = "".join(inner.split())
    if s.startswith("{"):
        try:
            uk = json.loads(s).get("UK", "")
        except (ValueError, AttributeError):
            return ""
        s = "".join(str(uk).split())
    try:
        return bytes.fromhex(s).hex().upper()
    except ValueError:
        pass
    try:
        return base64.b64decode(s, validate=True).hex().upper()
    except (binascii.Error, ValueError):
        return ""


def _verdict(records: list[_Record], billed_wh: float | None) -> SignatureCheck:
    problems: list[tuple[str, str]] = [
        (r.status, r.detail) for r in records if r.status != "verified"
    ]
    problems = [("incomplete", d) if st == "unreadable" else (st, d) for st, d in problems]
    parsed = [r for r in records if r.ocmf is not None]
    begin, end = _ends(parsed)
    problems += _binding(parsed, begin, end)
    if begin is None or end is None:
        missing = "start" if begin is None else "end"
        problems.append(("incomplete", f"no signed {missing} reading"))
    energy, resolution = _signed_energy(begin, end)
    mismatch = (
        energy is not None
        and resolution is not None
        and billed_wh is not None
        and abs(energy - billed_wh) > resolution + 1e-9 * max(1.0, abs(billed_wh))
    )
    status, reason = min(problems, key=lambda p: _RANK[p[0]]) if problems else ("verified", "")
    used = [r for r in records if r.valid]
    return SignatureCheck(
        status=status,
        reason=reason,
        key_pinned=bool(used) and all(r.pinned for r in used),
        public_key=next((r.key for r in records if r.key), ""),
        readings=tuple(c for i, r in enumerate(records) for c in _reading_checks(r, i)),
        signed_energy_wh=energy,
        resolution_wh=resolution,
        energy_mismatch=mismatch,
    )


_Point = tuple["_Record", "Reading"]


def _ends(records: list[_Record]) -> tuple[_Point | None, _Point | None]:
    """The signed start (TX B) and end (E, L, R, A, P) energy readings."""
    points = [(r, rd) for r in records if r.ocmf is not None for rd in r.ocmf.payload.RD if _wh(rd)]
    begin = next((p for p in points if str(p[1].TX or "") == "B"), None)
    end = next((p for p in reversed(points) if str(p[1].TX or "") in _END_REASONS), None)
    return begin, end


def _wh(rd: Reading) -> bool:
    """An energy reading of the import register: a meter may sign its export
    register beside it (LEM DCBM: 1-0:2.8.0 after each 1-0:1.8.0, with TX and
    TM inherited), which is neither the start nor the end of the charge."""
    ri = str(rd.RI or "")
    import_register = not ri or ri.split(":", 1)[-1].startswith("1.8.")
    return rd.RV is not None and str(rd.RU or "") in _WH_PER and import_register


def _binding(
    records: list[_Record], begin: _Point | None, end: _Point | None
) -> list[tuple[str, str]]:
    """Do the records form one transaction of one meter? (invalid when not)"""
    out: list[tuple[str, str]] = []
    serials = {r.ocmf.payload.MS or r.ocmf.payload.GS or "" for r in records if r.ocmf is not None}
    if len(serials) > 1:
        out.append(("invalid", f"readings of different meters: {', '.join(sorted(serials))}"))
    keys = {r.key for r in records if r.key}
    if len(keys) > 1:
        out.append(("invalid", "the readings are signed with different keys"))
    out += _pagination(records)
    for name, point in (("start", begin), ("end", end)):
        if point is not None:
            out += _status(name, point[1])
    if begin is not None and end is not None:
        a, b = _decimal_wh(begin[1]), _decimal_wh(end[1])
        if a is not None and b is not None and b < a:
            out.append(("invalid", f"the end reading ({b} Wh) is below the start ({a} Wh)"))
    return out


def _pagination(records: list[_Record]) -> list[tuple[str, str]]:
    """Transaction pagination (PG ``T<n>``): one counter, no number skipped.

    Two records may share a page when both carry the same begin (TX B)
    reading: a meter that signs its transaction record again as it goes on (a
    LEM DCBM's start record holds B and C readings, its stop record the same
    B and the E one, both "T608") issues versions of one transaction's record,
    not two records."""
    pages: dict[int, frozenset[tuple[str, str, str]]] = {}
    for r in records:
        assert r.ocmf is not None
        pg = str(r.ocmf.payload.PG or "")
        if not pg.startswith("T") or not pg[1:].isdigit():
            return [("invalid", f"pagination {pg or '(none)'} is not a transaction counter (T<n>)")]
        n = int(pg[1:])
        begins = frozenset(
            (str(rd.TM), str(rd.RV).strip(), str(rd.RI or ""))
            for rd in r.ocmf.payload.RD
            if str(rd.TX or "") == "B"
        )
        seen = pages.get(n)
        if seen is not None and not (seen and seen == begins):
            return [("invalid", f"two different records with pagination {pg}")]
        pages[n] = begins
    nums = sorted(pages)
    for a, b in pairwise(nums):
        if b != a + 1:
            return [
                ("invalid", f"pagination gap T{a} -> T{b}: {b - a - 1} signed record(s) missing")
            ]
    return []


def _status(name: str, rd: Reading) -> list[tuple[str, str]]:
    out = []
    if str(rd.ST or "") != "G":
        out.append(("invalid", f"{name} reading: meter status {rd.ST or '(none)'}, not G (OK)"))
    if rd.EF and ("E" in rd.EF or "t" in rd.EF):
        out.append(("invalid", f"{name} reading: error flags {rd.EF!r}"))
    if str(rd.time_status) == "U":
        out.append(("invalid", f"{name} reading: meter clock not set (time status U)"))
    return out


def _decimal_wh(rd: Reading) -> Decimal | None:
    try:
        value = Decimal(str(rd.RV).strip())
    except (InvalidOperation, ValueError):
        return None
    return value * _WH_PER[str(rd.RU)] if value.is_finite() else None


def _resolution_wh(rd: Reading) -> Decimal | None:
    try:
        exp = Decimal(str(rd.RV).strip()).as_tuple().exponent
    except (InvalidOperation, ValueError):
        return None
    if not isinstance(exp, int):
        return None
    return Decimal(1).scaleb(exp) * _WH_PER[str(rd.RU)]


def _signed_energy(begin: _Point | None, end: _Point | None) -> tuple[float | None, float | None]:
    if begin is None or end is None:
        return None, None
    a, b = _decimal_wh(begin[1]), _decimal_wh(end[1])
    ra, rb = _resolution_wh(begin[1]), _resolution_wh(end[1])
    if a is None or b is None or ra is None or rb is None:
        return None, None
    return float(b - a), float(max(ra, rb))


def _reading_checks(r: _Record, index: int) -> list[ReadingCheck]:
    s = r.signed
    serial = s.meter_serial or s.gateway_serial
    pg = ""
    rds: list[tuple[str, str, str, str]] = []
    if r.ocmf is not None:
        p = r.ocmf.payload
        serial = p.MS or p.GS or ""
        pg = str(p.PG or "")
        rds = [
            (_tm(rd), str(rd.RV).strip(), str(rd.RU), str(rd.TX or "")) for rd in p.RD if _wh(rd)
        ]
    if not rds:  # nothing to list but the record itself (unreadable, or no energy reading)
        rds = [(s.reading_time, s.value, s.unit, s.reading_reason)]
    return [
        ReadingCheck(
            raw=s.raw,
            ocmf=s.ocmf,
            meter_serial=serial,
            time=tm,
            value=rv,
            unit=ru,
            reason=tx,
            pagination=pg,
            signature_valid=r.valid,
            status=r.status,
            detail=r.detail,
            public_key=r.key,
            key_pinned=r.pinned,
            record=index,
        )
        for tm, rv, ru, tx in rds
    ]
