"""fleet.yaml's uptime settings: a site's ``operating_hours`` (OCPI 2.2.1 Hours) and
the top-level ``uptime:`` minimum power. Problems go to the Reader with their key
path, so they are reported with file:line:col like the rest of the file."""

from __future__ import annotations

__all__ = ["parse_delivery", "parse_operating_hours"]

from collections.abc import Collection
from datetime import date, datetime
from typing import Any

from chargewatch.core.yamlsrc import Path as KeyPath
from chargewatch.core.yamlsrc import Reader
from chargewatch.model.delivery import DeliveryPolicy, DeliveryRule
from chargewatch.model.hours import (
    HHMM,
    ExceptionalPeriod,
    OperatingHours,
    RegularHours,
    minutes_of,
)

_HOURS_KEYS = (
    "twentyfourseven",
    "regular_hours",
    "exceptional_openings",
    "exceptional_closings",
)
_REGULAR_KEYS = ("weekday", "period_begin", "period_end")
_PERIOD_KEYS = ("period_begin", "period_end")
_HHMM_EXPECTED = 'a quoted local time "HH:MM" (00:00-23:59; "24:00" as an end)'
_TIME_EXPECTED = "a date-time with a UTC offset, e.g. 2026-12-24T18:00:00+01:00"


def parse_operating_hours(r: Reader, value: Any, p: KeyPath) -> OperatingHours | None:
    """A site's ``operating_hours``; None when absent."""
    if value is None:
        return None
    m = r.mapping(value, p, allowed=_HOURS_KEYS, required=("twentyfourseven",))
    always = r.get(m, p, "twentyfourseven", bool, True)
    regular = tuple(
        _regular(r, item, (*p, "regular_hours", i))
        for i, item in enumerate(r.get(m, p, "regular_hours", list, []))
    )
    # OCPI: regular_hours only with twentyfourseven false, and then at least one.
    if always and regular:
        r.fail((*p, "regular_hours"), "regular_hours needs twentyfourseven: false")
    if not always and not regular:
        r.fail(p, "twentyfourseven: false needs at least one regular_hours entry")
    return OperatingHours(
        twentyfourseven=bool(always),
        regular_hours=tuple(x for x in regular if x is not None),
        exceptional_openings=_periods(r, m, p, "exceptional_openings"),
        exceptional_closings=_periods(r, m, p, "exceptional_closings"),
    )


def _regular(r: Reader, item: Any, p: KeyPath) -> RegularHours | None:
    m = r.mapping(item, p, allowed=_REGULAR_KEYS, required=_REGULAR_KEYS)
    day = r.get(
        m, p, "weekday", int, 0, check=lambda v: 1 <= v <= 7, expected="1 (Monday) .. 7 (Sunday)"
    )
    begin = r.get(m, p, "period_begin", str, "", check=_begin_ok, expected=_HHMM_EXPECTED)
    end = r.get(m, p, "period_end", str, "", check=_hhmm_ok, expected=_HHMM_EXPECTED)
    if not (day and begin and end):
        return None
    if minutes_of(end) <= minutes_of(begin):
        # OCPI: "Must be later than period_begin"; a night span is two entries.
        r.fail(
            (*p, "period_end"),
            f"period_end {end!r} must be after period_begin {begin!r}"
            " (split a span past midnight into two days)",
        )
        return None
    return RegularHours(day, begin, end)


def _hhmm_ok(text: str) -> bool:
    return HHMM.match(text) is not None


def _begin_ok(text: str) -> bool:
    return _hhmm_ok(text) and text != "24:00"


def _periods(r: Reader, m: dict[str, Any], p: KeyPath, key: str) -> tuple[ExceptionalPeriod, ...]:
    out = []
    for i, item in enumerate(r.get(m, p, key, list, [])):
        q = (*p, key, i)
        pm = r.mapping(item, q, allowed=_PERIOD_KEYS, required=_PERIOD_KEYS)
        begin, end = _instant(r, pm, q, "period_begin"), _instant(r, pm, q, "period_end")
        if begin is None or end is None:
            continue
        if end <= begin:
            r.fail((*q, "period_end"), "period_end must be after period_begin")
            continue
        out.append(ExceptionalPeriod(begin, end))
    return tuple(out)


def _instant(r: Reader, m: dict[str, Any], p: KeyPath, key: str) -> float | None:
    value = r.get(m, p, key, (str, datetime, date), None, expected=_TIME_EXPECTED)
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            r.fail((*p, key), f"expected {_TIME_EXPECTED}, got {value!r}")
            return None
    if value is None:
        return None
    if not isinstance(value, datetime) or value.tzinfo is None:
        r.fail((*p, key), f"expected {_TIME_EXPECTED}, got {str(value)!r}")
        return None
    return value.timestamp()


_RULE_KEYS = ("min_power_w", "grace_s")


def parse_delivery(
    r: Reader, value: Any, sites: Collection[str], models: Collection[str]
) -> DeliveryPolicy:
    """The top-level ``uptime:``: ``min_power_w``, ``grace_s``, and overrides under
    ``sites: {site id: {...}}`` and ``models: {model: {...}}``."""
    p: KeyPath = ("uptime",)
    m = r.mapping(value, p, allowed=(*_RULE_KEYS, "sites", "models"))
    base = _rule(r, m, p)
    overrides: dict[str, dict[str, DeliveryRule]] = {"sites": {}, "models": {}}
    for scope, known in (("sites", sites), ("models", models)):
        q = (*p, scope)
        for name, item in r.mapping(m.get(scope), q).items():
            if name not in known:
                r.fail(
                    (*q, name), f"unknown {scope[:-1]} {name!r}; expected one of {sorted(known)}"
                )
            overrides[scope][str(name)] = _rule(
                r, r.mapping(item, (*q, name), allowed=_RULE_KEYS), (*q, name)
            )
    defaults = DeliveryPolicy()
    return DeliveryPolicy(
        min_power_w=defaults.min_power_w if base.min_power_w is None else base.min_power_w,
        grace_s=defaults.grace_s if base.grace_s is None else base.grace_s,
        sites=overrides["sites"],
        models=overrides["models"],
    )


def _rule(r: Reader, m: dict[str, Any], p: KeyPath) -> DeliveryRule:
    return DeliveryRule(
        min_power_w=r.get(
            m, p, "min_power_w", float, None, check=lambda v: 0 <= v <= 2_000_000,
            expected="a power in W, 0 <= P <= 2 MW",
        ),
        grace_s=r.get(
            m, p, "grace_s", float, None, check=lambda v: 0 <= v <= 86_400,
            expected="seconds, 0..86400",
        ),
    )  # fmt: skip
