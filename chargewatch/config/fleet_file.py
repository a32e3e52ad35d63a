"""Reading ``fleet.yaml`` into the inventory types of :mod:`chargewatch.model.fleet`.

Every problem is reported with file:line:col and key path (``ConfigError``).
"""

from __future__ import annotations

__all__ = ["load_fleet", "parse_fleet", "tariff_reference_problems"]

import base64
import binascii
import zoneinfo
from collections.abc import Collection
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from chargewatch.config.fleet_uptime import parse_delivery, parse_operating_hours
from chargewatch.core.errors import ConfigError, ConfigProblem
from chargewatch.core.yamlsrc import Path as KeyPath
from chargewatch.core.yamlsrc import Reader, Source, load_yaml, path_str
from chargewatch.model.fleet import (
    _CHARGER_KEYS,
    _METER_KEY_KEYS,
    _SITE_KEYS,
    SITE_KINDS,
    ChargerSpec,
    Fleet,
    MeterKey,
    SiteSpec,
)
from chargewatch.model.ids import CHARGER_ID_RULE, is_charger_id


def _valid_zone(name: str) -> bool:
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return False
    return True


def parse_fleet(src: Source) -> Fleet:
    r = Reader(src)
    top = r.mapping(src.data, (), allowed=("sites", "chargers", "meter_keys", "uptime"))
    sites: dict[str, SiteSpec] = {}
    raw_sites = r.get(top, (), "sites", list, [])
    for i, item in enumerate(raw_sites):
        p = ("sites", i)
        m = r.mapping(item, p, allowed=_SITE_KEYS, required=("id",))
        sid = r.get(m, p, "id", str, "")
        tz = r.get(m, p, "timezone", str, "UTC", check=_valid_zone, expected="an IANA time zone")
        if sid in sites:
            r.fail((*p, "id"), f"duplicate site id {sid!r}")
        sites[sid] = SiteSpec(
            id=sid,
            timezone=tz or "UTC",
            tariff=r.get(m, p, "tariff", str, ""),
            name=r.get(m, p, "name", str, ""),
            address=r.get(m, p, "address", str, ""),
            kind=r.get(
                m,
                p,
                "kind",
                str,
                "public",
                check=lambda v: v in SITE_KINDS,
                expected=f"a site kind: {', '.join(SITE_KINDS)}",
            ),
            operating_hours=parse_operating_hours(
                r, m.get("operating_hours"), (*p, "operating_hours")
            ),
        )
    chargers: dict[str, ChargerSpec] = {}
    raw_chargers = r.get(top, (), "chargers", list, [])
    for i, item in enumerate(raw_chargers):
        p = ("chargers", i)
        m = r.mapping(item, p, allowed=_CHARGER_KEYS, required=("id", "site"))
        cid = r.get(
            m, p, "id", str, "", check=is_charger_id, expected=f"a charger id: {CHARGER_ID_RULE}"
        )
        site = r.get(m, p, "site", str, "")
        if site and sites and site not in sites:
            r.fail((*p, "site"), f"unknown site {site!r}; expected one of {sorted(sites)}")
        phases = r.get(
            m, p, "phases", int, 3, check=lambda v: v in (0, 1, 3), expected="1 or 3 (AC), 0 (DC)"
        )
        spec = ChargerSpec(
            id=cid,
            # The site's own id string, not the YAML scalar's copy (one per charger).
            site=sites[site].id if site in sites else (site or "unknown"),
            connectors=r.get(
                m, p, "connectors", int, 1, check=lambda v: 1 <= v <= 64, expected="1..64"
            ),
            max_power_w=r.get(
                m,
                p,
                "max_power_w",
                float,
                22_000.0,
                check=lambda v: 0 < v <= 2_000_000,
                expected="a power in W, 0 < P <= 2 MW",
            ),
            phases=phases,
            nominal_voltage_v=r.get(
                m,
                p,
                "nominal_voltage_v",
                float,
                230.0 if phases else 400.0,
                check=lambda v: 50 <= v <= 1500,
                expected="a voltage in V, 50..1500",
            ),
            model=r.get(m, p, "model", str, ""),
            tariff=r.get(m, p, "tariff", str, ""),
        )
        if cid in chargers:
            r.fail((*p, "id"), f"duplicate charger id {cid!r}")
        chargers[cid] = spec
    keys = _meter_keys(r, top, chargers)
    models = {c.model for c in chargers.values() if c.model}
    delivery = parse_delivery(r, top.get("uptime"), sites, models)
    r.raise_if_failed()
    return Fleet(sites, chargers, src.file, keys, delivery)


_KEY_EXPECTED = "a DER public key, hex (spaces allowed) or base64"
_TIME_EXPECTED = "a date-time with a UTC offset, e.g. 2026-01-01T00:00:00Z"


def _meter_keys(
    r: Reader, top: dict[str, Any], chargers: dict[str, ChargerSpec]
) -> tuple[MeterKey, ...]:
    """``meter_keys:``: pinned public keys per charger or meter serial (docs/signatures.md)."""
    out: list[MeterKey] = []
    for i, item in enumerate(r.get(top, (), "meter_keys", list, [])):
        p = ("meter_keys", i)
        m = r.mapping(item, p, allowed=_METER_KEY_KEYS, required=("public_key",))
        charger = r.get(m, p, "charger", str, "")
        serial = r.get(m, p, "meter_serial", (str, int), "")
        if not charger and serial == "":
            r.fail(p, "a meter key needs 'charger' or 'meter_serial' (or both)")
        if charger and chargers and charger not in chargers:
            r.fail((*p, "charger"), f"unknown charger {charger!r}")
        key = r.get(m, p, "public_key", str, "", check=_is_der_key, expected=_KEY_EXPECTED)
        since = _time(r, m, p, "valid_from")
        until = _time(r, m, p, "valid_until")
        if since is not None and until is not None and until <= since:
            r.fail((*p, "valid_until"), "valid_until must be after valid_from")
        out.append(MeterKey("".join(key.split()), charger, str(serial), since, until))
    return tuple(out)


def _is_der_key(text: str) -> bool:
    """Hex or base64 of a DER structure (a SEQUENCE); the curve is checked when verifying."""
    compact = "".join(text.split())
    for decode in (bytes.fromhex, lambda s: base64.b64decode(s, validate=True)):
        try:
            der = decode(compact)
        except (ValueError, binascii.Error):
            continue
        if len(der) > 16 and der[0] == 0x30:
            return True
    return False


def _time(r: Reader, m: dict[str, Any], p: tuple[str | int, ...], key: str) -> float | None:
    value = r.get(m, p, key, (str, datetime, date), None, expected=_TIME_EXPECTED)
    if value is None:
        return None
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            r.fail((*p, key), f"expected {_TIME_EXPECTED}, got {value!r}")
            return None
    if not isinstance(value, datetime):  # a bare date: its midnight, UTC
        value = datetime(value.year, value.month, value.day, tzinfo=UTC)
    if value.tzinfo is None:
        r.fail((*p, key), f"expected {_TIME_EXPECTED}, got {value.isoformat()!r} (no offset)")
        return None
    return value.timestamp()


def load_fleet(path: str | Path) -> Fleet:
    return parse_fleet(load_yaml(path))


def tariff_reference_problems(fleet: Fleet, known: Collection[str]) -> list[ConfigProblem]:
    """Every ``tariff:`` in the fleet that names no loaded tariff, with file:line and key path.

    Checked at start (run, replay): a typo would otherwise leave the sessions of
    its chargers unpriced without a word. Lines come from the fleet's file when
    it is one; a fleet built in code (the demo) gets key paths only.
    """
    src: Source | None = None
    if fleet.file and Path(fleet.file).is_file():
        try:
            src = load_yaml(fleet.file)
        except ConfigError:
            src = None  # it loaded once; a file changed since gets paths only
    names = ", ".join(sorted(known)) or "none (no tariffs directory loaded)"
    problems: list[ConfigProblem] = []

    def check(path: KeyPath, tariff: str) -> None:
        if not tariff or tariff in known:
            return
        message = f"unknown tariff {tariff!r}; loaded: {names}"
        if src is not None:
            problems.append(src.problem(path, message))
        else:
            problems.append(ConfigProblem(fleet.file or "<fleet>", path_str(path), message))

    # The dicts keep the file's order, so their positions are the YAML indexes.
    for i, site in enumerate(fleet.sites.values()):
        check(("sites", i, "tariff"), site.tariff)
    for i, charger in enumerate(fleet.chargers.values()):
        check(("chargers", i, "tariff"), charger.tariff)
    return problems
