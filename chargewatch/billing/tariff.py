"""OCPI 2.2.1 Tariff objects: the model, and parsing that reports every problem.

``parse_tariff(doc, file=...)`` takes a decoded JSON document (numbers may be
``int``, ``float`` or ``Decimal``; decode with ``parse_float=Decimal`` to keep
the file's digits) and returns a frozen :class:`Tariff`, or raises
:class:`~chargewatch.core.errors.ConfigError` listing every problem with its key
path, e.g. ``tariff.json: elements[2].price_components[0].step_size: expected a
positive integer``. Unknown keys are problems too: a misspelt restriction would
otherwise silently make an element match everything.

Pure: no I/O. Money and quantities are ``Decimal``, never ``float``.
"""

from __future__ import annotations

__all__ = [
    "IDENTITY_FIELDS",
    "MAX_DECIMALS",
    "MAX_NUMBER",
    "RESTRICTION_FIELDS",
    "DayOfWeek",
    "Dimension",
    "Price",
    "PriceComponent",
    "ReservationKind",
    "Restrictions",
    "Tariff",
    "TariffElement",
    "parse_datetime",
    "parse_tariff",
    "to_decimal",
]

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from datetime import UTC, date, datetime, time
from decimal import Decimal, InvalidOperation
from enum import Enum
from typing import Any

from chargewatch.core.errors import ConfigError, ConfigProblem


class Dimension(Enum):
    """TariffDimensionType: what a price component is charged for."""

    ENERGY = "ENERGY"  # price per kWh; step_size in Wh
    FLAT = "FLAT"  # once per session; step_size has no unit and is ignored
    TIME = "TIME"  # price per hour of charging (or of reservation); step_size in s
    PARKING_TIME = "PARKING_TIME"  # price per hour connected but not charging; step_size in s


class ReservationKind(Enum):
    """ReservationRestrictionType."""

    RESERVATION = "RESERVATION"  # a reservation that was followed by a session
    RESERVATION_EXPIRES = "RESERVATION_EXPIRES"  # a reservation that expired unused


class DayOfWeek(Enum):
    MONDAY = 0  # values are date.weekday()
    TUESDAY = 1
    WEDNESDAY = 2
    THURSDAY = 3
    FRIDAY = 4
    SATURDAY = 5
    SUNDAY = 6


TARIFF_TYPES = frozenset(
    {"AD_HOC_PAYMENT", "PROFILE_CHEAP", "PROFILE_FAST", "PROFILE_GREEN", "REGULAR"}
)


@dataclass(frozen=True, slots=True)
class Price:
    """OCPI Price. ``incl_vat`` is None when it is not known (no VAT was given)."""

    excl_vat: Decimal
    incl_vat: Decimal | None = None


@dataclass(frozen=True, slots=True)
class PriceComponent:
    type: Dimension
    price: Decimal  # excl. VAT, per kWh / per hour / per session
    vat: Decimal | None  # percent; None means "no VAT applicable/known", not 0 %
    step_size: int


@dataclass(frozen=True, slots=True)
class Restrictions:
    """TariffRestrictions; every field that is set must hold (logical AND)."""

    start_time: time | None = None  # local, inclusive
    end_time: time | None = None  # local, exclusive; 00:00 means end of day
    start_date: date | None = None  # local, inclusive
    end_date: date | None = None  # local, exclusive
    min_kwh: Decimal | None = None  # inclusive
    max_kwh: Decimal | None = None  # exclusive
    min_current: Decimal | None = None  # A, per phase (the largest), inclusive
    max_current: Decimal | None = None  # A, per phase (the largest), exclusive
    min_power: Decimal | None = None  # kW, inclusive
    max_power: Decimal | None = None  # kW, exclusive
    min_duration: int | None = None  # s since session start, inclusive
    max_duration: int | None = None  # s since session start, exclusive
    day_of_week: frozenset[DayOfWeek] = frozenset()  # empty: every day
    reservation: ReservationKind | None = None


@dataclass(frozen=True, slots=True)
class TariffElement:
    price_components: tuple[PriceComponent, ...]
    restrictions: Restrictions | None = None

    def component(self, dimension: Dimension) -> PriceComponent | None:
        for pc in self.price_components:
            if pc.type is dimension:
                return pc
        return None


@dataclass(frozen=True, slots=True)
class Tariff:
    country_code: str  # "" when the file lacks it (a warning, see IDENTITY_FIELDS)
    party_id: str  # likewise
    id: str
    currency: str
    elements: tuple[TariffElement, ...]
    last_updated: datetime | None  # None when the file lacks it (a warning)
    type: str | None = None
    min_price: Price | None = None
    max_price: Price | None = None
    start_date_time: datetime | None = None
    end_date_time: datetime | None = None
    tariff_alt_url: str | None = None
    tariff_alt_text: tuple[tuple[str, str], ...] = ()  # (language, text)
    # What was accepted but is not OCPI-complete (a missing identity field):
    # the operator sees these at load (log, `tariff check`, replay summary).
    warnings: tuple[ConfigProblem, ...] = ()


# --- parsing -----------------------------------------------------------------

_TIME_RE = re.compile(r"([0-1][0-9]|2[0-3]):[0-5][0-9]")
_DATE_RE = re.compile(r"([12][0-9]{3})-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])")
# OCPI DateTime: RFC 3339, UTC; "Z" or no designator. An explicit offset is
# accepted too (chargers and hand-written files use them) and honoured.
_DATETIME_RE = re.compile(
    r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})?", re.IGNORECASE
)

# Who published the tariff and when: required by OCPI, but no price depends on
# them, so a tariff without them (real ones exist) is priced with a warning.
# Everything that changes money (id, currency, elements, prices) stays required.
IDENTITY_FIELDS = ("country_code", "party_id", "last_updated")

_TARIFF_KEYS = frozenset(
    {
        "country_code",
        "party_id",
        "id",
        "currency",
        "type",
        "tariff_alt_text",
        "tariff_alt_url",
        "min_price",
        "max_price",
        "elements",
        "start_date_time",
        "end_date_time",
        "energy_mix",
        "last_updated",
    }
)
# The OCPI TariffRestrictions fields are the dataclass's own fields, in the
# spec's order: the parser's known keys and the JSON writer both read this.
RESTRICTION_FIELDS: tuple[str, ...] = tuple(f.name for f in fields(Restrictions))
_RESTRICTION_KEYS = frozenset(RESTRICTION_FIELDS)

# Bounds on every number in a tariff (prices, VAT, step sizes, restrictions).
# Real tariffs stay orders of magnitude inside them; beyond them a price times
# a session's volume no longer fits billing's 34-digit context, and a session
# would fail to price (decimal.InvalidOperation) long after the file was
# accepted. docs/pricing.md states them.
MAX_NUMBER = Decimal(1_000_000_000)
MAX_DECIMALS = 15


def _out_of_bounds(d: Decimal) -> str:
    """Why ``d`` (finite) is outside the bounds, or "" when it is inside."""
    if abs(d) > MAX_NUMBER:
        return f"expected at most {MAX_NUMBER:,} in size, got {_brief(str(d))}"
    exponent = d.as_tuple().exponent
    if isinstance(exponent, int) and -exponent > MAX_DECIMALS:
        return f"expected at most {MAX_DECIMALS} decimals, got {-exponent}: {_brief(str(d))}"
    return ""


def _brief(text: str) -> str:
    # A refused number may have thousands of digits; the message needs a few.
    return text if len(text) <= 40 else f"{text[:20]}... ({len(text)} characters)"


def parse_datetime(value: str) -> datetime:
    """Parse an OCPI DateTime; no designator means UTC. Raises ValueError."""
    if not _DATETIME_RE.fullmatch(value):
        raise ValueError(
            f"expected an RFC 3339 date-time such as 2015-06-29T20:39:09Z, got {value!r}"
        )
    # Python 3.11 accepts "Z"; fromisoformat wants at most 6 fractional digits.
    text = re.sub(r"(\.\d{6})\d+", r"\1", value.upper())
    parsed = datetime.fromisoformat(text)
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


class _Collector:
    """Gathers problems (and warnings) for one file while the parser keeps going."""

    def __init__(self, file: str) -> None:
        self.file = file
        self.problems: list[ConfigProblem] = []
        self.warnings: list[ConfigProblem] = []

    def add(self, path: str, message: str) -> None:
        self.problems.append(ConfigProblem(self.file, path, message))

    def warn(self, path: str, message: str) -> None:
        self.warnings.append(ConfigProblem(self.file, path, message))


def _join(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


def to_decimal(value: Any) -> Decimal | None:
    """A JSON number as Decimal (None if it is not one); floats keep their printed digits."""
    # bool is an int in Python, but true is not a number in JSON.
    if isinstance(value, bool):
        return None
    if isinstance(value, Decimal):
        return value if value.is_finite() else None
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, float):
        # repr gives the shortest text that round-trips, i.e. the file's digits.
        try:
            d = Decimal(repr(value))
        except InvalidOperation:
            return None
        return d if d.is_finite() else None
    return None


def _integer(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, Decimal | float):
        d = to_decimal(value)
        if d is not None and d == d.to_integral_value():
            return int(d)
    return None


class _Obj:
    """Typed access to one JSON object, reporting problems under its path."""

    def __init__(self, c: _Collector, path: str, data: Mapping[str, Any], known: frozenset[str]):
        self.c = c
        self.path = path
        self.data = data
        for key in data:
            if key not in known:
                c.add(_join(path, str(key)), "unknown field")

    def _get(self, key: str, required: bool) -> Any:
        if key not in self.data or self.data[key] is None:
            if required:
                self.c.add(_join(self.path, key), "required field is missing")
            return None
        return self.data[key]

    def string(
        self, key: str, *, required: bool = False, max_len: int = 0, exact_len: int = 0
    ) -> str | None:
        value = self._get(key, required)
        if value is None:
            return None
        where = _join(self.path, key)
        if not isinstance(value, str):
            self.c.add(where, "expected a string")
            return None
        if exact_len and len(value) != exact_len:
            self.c.add(where, f"expected exactly {exact_len} characters, got {value!r}")
            return None
        if max_len and not 0 < len(value) <= max_len:
            self.c.add(where, f"expected 1 to {max_len} characters, got {len(value)}")
            return None
        return value

    def number(
        self, key: str, *, required: bool = False, minimum: int | None = 0
    ) -> Decimal | None:
        value = self._get(key, required)
        if value is None:
            return None
        d = to_decimal(value)
        where = _join(self.path, key)
        if d is None:
            if isinstance(value, Decimal) and value.is_infinite():
                # load_json's stand-in for an exponent too large to hold.
                self.c.add(where, f"expected at most {MAX_NUMBER:,} in size, got a huge number")
            else:
                self.c.add(where, f"expected a number, got {_brief(repr(value))}")
            return None
        if bad := _out_of_bounds(d):
            self.c.add(where, bad)
            return None
        if minimum is not None and d < minimum:
            self.c.add(where, f"expected a number >= {minimum}, got {d}")
            return None
        return d

    def integer(self, key: str, *, required: bool = False, minimum: int = 0) -> int | None:
        value = self._get(key, required)
        if value is None:
            return None
        d = to_decimal(value)
        if d is not None and (bad := _out_of_bounds(d)):
            self.c.add(_join(self.path, key), bad)
            return None
        i = _integer(value)
        if i is None or i < minimum:
            what = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
            self.c.add(_join(self.path, key), f"expected {what}, got {_brief(repr(value))}")
            return None
        return i

    def parsed(self, key: str, parse: Callable[[str], Any], what: str) -> Any:
        value = self.string(key)
        if value is None:
            return None
        try:
            return parse(value)
        except ValueError:
            self.c.add(_join(self.path, key), f"expected {what}, got {value!r}")
            return None

    def datetime(self, key: str, *, required: bool = False) -> datetime | None:
        value = self._get(key, required)
        if value is None:
            return None
        if not isinstance(value, str):
            self.c.add(_join(self.path, key), "expected an RFC 3339 date-time string")
            return None
        try:
            return parse_datetime(value)
        except ValueError as exc:
            self.c.add(_join(self.path, key), str(exc))
            return None

    def obj(self, key: str, known: frozenset[str]) -> _Obj | None:
        value = self._get(key, False)
        if value is None:
            return None
        if not isinstance(value, Mapping):
            self.c.add(_join(self.path, key), "expected an object")
            return None
        return _Obj(self.c, _join(self.path, key), value, known)

    def array(self, key: str, *, required: bool = False, non_empty: bool = False) -> list[Any]:
        value = self._get(key, required)
        if value is None:
            return []
        if not isinstance(value, list):
            self.c.add(_join(self.path, key), "expected a list")
            return []
        if non_empty and not value:
            self.c.add(_join(self.path, key), "expected at least one entry")
        return value


def _parse_time(text: str) -> time:
    if not _TIME_RE.fullmatch(text):
        raise ValueError(text)
    return time(int(text[:2]), int(text[3:]))


def _parse_date(text: str) -> date:
    if not _DATE_RE.fullmatch(text):
        raise ValueError(text)
    return date.fromisoformat(text)  # also rejects 2019-02-30


def _price(c: _Collector, parent: _Obj, key: str) -> Price | None:
    o = parent.obj(key, frozenset({"excl_vat", "incl_vat"}))
    if o is None:
        return None
    excl = o.number("excl_vat", required=True)
    incl = o.number("incl_vat")
    if excl is None:
        return None
    if incl is not None and incl < excl:
        c.add(_join(o.path, "incl_vat"), f"is lower than excl_vat ({incl} < {excl})")
    return Price(excl, incl)


def _component(c: _Collector, path: str, raw: Any) -> PriceComponent | None:
    if not isinstance(raw, Mapping):
        c.add(path, "expected an object")
        return None
    o = _Obj(c, path, raw, frozenset({"type", "price", "vat", "step_size"}))
    type_text = o.string("type", required=True)
    dim: Dimension | None = None
    if type_text is not None:
        try:
            dim = Dimension(type_text)
        except ValueError:
            names = ", ".join(d.value for d in Dimension)
            c.add(_join(path, "type"), f"expected one of {names}, got {type_text!r}")
    price = o.number("price", required=True)
    vat = o.number("vat")
    if vat is not None and vat > 100:
        c.add(_join(path, "vat"), f"expected a percentage from 0 to 100, got {vat}")
    # FLAT has no unit to step in, and the spec's own free-of-charge example uses
    # step_size 0 there; every other dimension divides by it.
    step = o.integer("step_size", required=True, minimum=0 if dim is Dimension.FLAT else 1)
    if dim is None or price is None or step is None:
        return None
    return PriceComponent(dim, price, vat, step)


def _restrictions(c: _Collector, parent: _Obj) -> Restrictions | None:
    o = parent.obj("restrictions", _RESTRICTION_KEYS)
    if o is None:
        return None
    start_time = o.parsed("start_time", _parse_time, "a time of day HH:MM")
    end_time = o.parsed("end_time", _parse_time, "a time of day HH:MM")
    start_date = o.parsed("start_date", _parse_date, "a date YYYY-MM-DD")
    end_date = o.parsed("end_date", _parse_date, "a date YYYY-MM-DD")
    if start_date and end_date and end_date <= start_date:
        c.add(_join(o.path, "end_date"), "must be after start_date (end_date is exclusive)")
    bounds: dict[str, Decimal | None] = {}
    for low, high in (
        ("min_kwh", "max_kwh"),
        ("min_current", "max_current"),
        ("min_power", "max_power"),
    ):
        bounds[low] = o.number(low)
        bounds[high] = o.number(high)
        lo, hi = bounds[low], bounds[high]
        if lo is not None and hi is not None and hi <= lo:
            c.add(_join(o.path, high), f"must be greater than {low} ({hi} <= {lo})")
    min_duration = o.integer("min_duration")
    max_duration = o.integer("max_duration")
    if min_duration is not None and max_duration is not None and max_duration <= min_duration:
        c.add(_join(o.path, "max_duration"), "must be greater than min_duration")
    days: set[DayOfWeek] = set()
    for i, raw in enumerate(o.array("day_of_week")):
        try:
            day = DayOfWeek[raw] if isinstance(raw, str) else None
        except KeyError:
            day = None
        if day is None:
            c.add(
                _join(_join(o.path, "day_of_week"), i),
                f"expected a day such as MONDAY, got {raw!r}",
            )
        elif day in days:
            c.add(_join(_join(o.path, "day_of_week"), i), f"{raw} is listed twice")
        else:
            days.add(day)
    reservation: ReservationKind | None = None
    res_text = o.string("reservation")
    if res_text is not None:
        try:
            reservation = ReservationKind(res_text)
        except ValueError:
            c.add(
                _join(o.path, "reservation"),
                f"expected RESERVATION or RESERVATION_EXPIRES, got {res_text!r}",
            )
    return Restrictions(
        start_time=start_time,
        end_time=end_time,
        start_date=start_date,
        end_date=end_date,
        min_kwh=bounds["min_kwh"],
        max_kwh=bounds["max_kwh"],
        min_current=bounds["min_current"],
        max_current=bounds["max_current"],
        min_power=bounds["min_power"],
        max_power=bounds["max_power"],
        min_duration=min_duration,
        max_duration=max_duration,
        day_of_week=frozenset(days),
        reservation=reservation,
    )


def _element(c: _Collector, path: str, raw: Any) -> TariffElement | None:
    if not isinstance(raw, Mapping):
        c.add(path, "expected an object")
        return None
    o = _Obj(c, path, raw, frozenset({"price_components", "restrictions"}))
    components: list[PriceComponent] = []
    seen: set[Dimension] = set()
    for j, raw_pc in enumerate(o.array("price_components", required=True, non_empty=True)):
        pc_path = _join(_join(path, "price_components"), j)
        pc = _component(c, pc_path, raw_pc)
        if pc is None:
            continue
        if pc.type in seen:
            # Matching picks one component per dimension; two would be ambiguous.
            c.add(_join(pc_path, "type"), f"a second {pc.type.value} component in one element")
        seen.add(pc.type)
        components.append(pc)
    restrictions = _restrictions(c, o)
    if restrictions is not None and restrictions.reservation is not None:
        for j, pc in enumerate(components):
            if pc.type not in (Dimension.FLAT, Dimension.TIME):
                c.add(
                    _join(_join(_join(path, "price_components"), j), "type"),
                    "a reservation element can only have FLAT and TIME components",
                )
    return TariffElement(tuple(components), restrictions)


def parse_tariff(doc: Any, *, file: str = "<tariff>") -> Tariff:
    """Validate one OCPI 2.2.1 Tariff object and build the model.

    Raises ConfigError carrying every problem found (file, key path, message).
    """
    c = _Collector(file)
    if not isinstance(doc, Mapping):
        c.add("", "expected a JSON object (one OCPI Tariff)")
        raise ConfigError(c.problems)
    o = _Obj(c, "", doc, _TARIFF_KEYS)
    country_code = o.string("country_code", exact_len=2)
    party_id = o.string("party_id", exact_len=3)
    tariff_id = o.string("id", required=True, max_len=36)
    currency = o.string("currency", required=True, exact_len=3)
    if currency is not None and not re.fullmatch(r"[A-Z]{3}", currency):
        c.add("currency", f"expected an ISO 4217 code such as EUR, got {currency!r}")
    tariff_type = o.string("type")
    if tariff_type is not None and tariff_type not in TARIFF_TYPES:
        c.add("type", f"expected one of {', '.join(sorted(TARIFF_TYPES))}, got {tariff_type!r}")
    alt_texts: list[tuple[str, str]] = []
    for i, raw in enumerate(o.array("tariff_alt_text")):
        path = _join("tariff_alt_text", i)
        if not isinstance(raw, Mapping):
            c.add(path, "expected an object with language and text")
            continue
        t = _Obj(c, path, raw, frozenset({"language", "text"}))
        lang = t.string("language", required=True, exact_len=2)
        text = t.string("text", required=True, max_len=512)
        if lang is not None and text is not None:
            alt_texts.append((lang, text))
    alt_url = o.string("tariff_alt_url", max_len=255)
    min_price = _price(c, o, "min_price")
    max_price = _price(c, o, "max_price")
    if min_price and max_price and max_price.excl_vat < min_price.excl_vat:
        c.add("max_price.excl_vat", "is lower than min_price.excl_vat")
    elements: list[TariffElement] = []
    for i, raw in enumerate(o.array("elements", required=True, non_empty=True)):
        el = _element(c, _join("elements", i), raw)
        if el is not None:
            elements.append(el)
    start = o.datetime("start_date_time")
    end = o.datetime("end_date_time")
    if start and end and end <= start:
        c.add("end_date_time", "must be after start_date_time")
    mix = doc.get("energy_mix")
    if mix is not None and not isinstance(mix, Mapping):
        c.add("energy_mix", "expected an object")  # informative only; not priced
    last_updated = o.datetime("last_updated")
    for key in IDENTITY_FIELDS:
        if doc.get(key) is None:
            c.warn(key, "missing (required by OCPI; priced anyway, it changes no price)")
    if c.problems:
        raise ConfigError(c.problems)
    assert tariff_id and currency
    return Tariff(
        country_code=country_code or "",
        party_id=party_id or "",
        id=tariff_id,
        currency=currency,
        elements=tuple(elements),
        last_updated=last_updated,
        type=tariff_type,
        min_price=min_price,
        max_price=max_price,
        start_date_time=start,
        end_date_time=end,
        tariff_alt_url=alt_url,
        tariff_alt_text=tuple(alt_texts),
        warnings=tuple(c.warnings),
    )
