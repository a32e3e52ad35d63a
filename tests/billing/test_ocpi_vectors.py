"""Independent OCPI 2.2.1 vectors: other people's tariffs and CDRs, priced (issue #18).

Provenance: tests/fixtures/ocpi_vectors/PROVENANCE.md. Each row is the CDR's
own totals except where the CDR's author and OCPI 2.2.1 (as docs/pricing.md
applies it) disagree; those rows say why. Figures are ours, at 4 decimals.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, tzinfo
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from chargewatch.billing.cdr import PricedCdr, build_cdr
from chargewatch.billing.cdr_reader import periods_from_cdr
from chargewatch.billing.tariff import parse_tariff
from chargewatch.billing.tariff_files import load_json

VECTORS = Path(__file__).parents[1] / "fixtures" / "ocpi_vectors"
D = Decimal
Money = tuple[str, str | None]  # (excl_vat, incl_vat); None: VAT unknown


@dataclass(frozen=True)
class Vector:
    cdr: str  # folder/file under tests/fixtures/ocpi_vectors
    total: Money
    parts: dict[str, Money] = field(default_factory=dict)
    zone: tzinfo | None = UTC  # None: the offset written in the CDR
    warnings: tuple[str, ...] = ()  # key paths the tariff is accepted with
    times: tuple[str, str] | None = None  # (total_time, total_parking_time)


VECTORS_TABLE = [
    Vector("simple_025kwh/cdr1.json", ("5.00", "5.50"), {"total_energy_cost": ("5.00", "5.50")}),
    Vector(
        "025kwh_start/cdr1.json",
        ("5.50", "6.10"),
        {"total_fixed_cost": ("0.50", "0.60"), "total_energy_cost": ("5.00", "5.50")},
    ),
    Vector("025kwh_min_price/cdr1.json", ("5.00", "5.50")),
    # The CDR states 0.30/0.33 (the energy alone); the tariff's min_price is
    # 0.50/0.55 and OCPI's own text for this tariff says the minimum applies.
    Vector(
        "025kwh_min_price/cdr2_less_than_2kWh.json",
        ("0.50", "0.55"),
        {"total_energy_cost": ("0.30", "0.33")},
    ),
    # A tariff without country_code and party_id: priced, with a warning each.
    Vector(
        "grace_period_parking_time/cdr.json",
        ("3.25", "3.50"),
        {"total_energy_cost": ("2.50", "2.75"), "total_parking_cost": ("0.75", "0.75")},
        warnings=("country_code", "party_id"),
        times=("1.25", "0.75"),
    ),
    Vector("multiple_flat_fees/cdr.json", ("1.00", "1.00"), {"total_fixed_cost": ("1.00", "1.00")}),
    Vector(
        "simple_3hour_5parking/cdr1.json",
        ("11.25", "12.75"),
        {"total_time_cost": ("7.50", "8.25"), "total_parking_cost": ("3.75", "4.50")},
        times=("3.2", "0.7"),
    ),
    # Volumes, not timestamps: 5 + 5 min charging (0.0834 h each) at 1.20 and
    # 2.40/h = 0.3002 as the CDR says; 2 min parking (0.0334 h). The CDR rounds
    # parking alone up to 15 min (0.25); OCPI's step_size examples round TIME
    # and PARKING_TIME combined (12.01 min -> 15 min, so 4.99 min parking =
    # 0.0832; docs/pricing.md). The tariff has no VAT: incl. VAT is unknown,
    # where the CDR states it equal to excl.
    Vector(
        "step_size/cdr1.json",
        ("0.3834", None),
        {"total_time_cost": ("0.3002", None), "total_parking_cost": ("0.0832", None)},
        times=("0.2", "0.0334"),
    ),
    Vector(
        "step_size_offset/cdr1.json",
        ("0.3834", None),
        {"total_time_cost": ("0.3002", None), "total_parking_cost": ("0.0832", None)},
        zone=None,
        times=("0.2", "0.0334"),
    ),
    Vector("step_size_energy/cdr1.json", ("30.00", None), {"total_energy_cost": ("30.00", None)}),
    # Real CDR, hourly prices read in the site's zone (Amsterdam): 7.293 kWh at
    # 0.22 (14:00 local) + 0.969 kWh at 0.24 (15:00) = 1.83702; its first
    # period starts 20 min before start_date_time. The CDR prints 1.83/2.21
    # (cut, not rounded), the upstream pricer 1.84/2.22.
    Vector(
        "codeberg_issue_228/cdr.json",
        ("1.8370", "2.2228"),
        {"total_energy_cost": ("1.8370", "2.2228")},
        zone=ZoneInfo("Europe/Amsterdam"),
    ),
]


def _priced(v: Vector) -> tuple[PricedCdr, tuple[str, ...]]:
    path = VECTORS / v.cdr
    doc = load_json(path)
    inline = doc.get("tariffs")  # the real CDR carries its tariff; the others beside it
    raw_tariff = inline[0] if inline else load_json(path.parent / "tariff.json")
    tariff = parse_tariff(raw_tariff, file=str(path.parent / "tariff.json"))
    start, end, periods = periods_from_cdr(doc, file=str(path))
    cdr = build_cdr(
        tariff,
        start=start,
        end=end,
        timezone=v.zone or start.tzinfo or UTC,
        periods=periods,
        cdr_volumes=True,
    )
    assert isinstance(cdr, PricedCdr)
    return cdr, tuple(w.path for w in tariff.warnings)


def _money(m: Money) -> dict[str, Decimal | None]:
    return {"excl_vat": D(m[0]), "incl_vat": None if m[1] is None else D(m[1])}


@pytest.mark.parametrize("v", VECTORS_TABLE, ids=lambda v: v.cdr)
def test_vector_prices_as_ocpi_bills_it(v: Vector) -> None:
    cdr, warnings = _priced(v)
    totals = cdr.totals()
    assert totals["total_cost"] == _money(v.total)
    for name, money in v.parts.items():
        assert totals[name] == _money(money), name
    assert warnings == v.warnings
    if v.times is not None:
        assert (totals["total_time"], totals["total_parking_time"]) == tuple(map(D, v.times))


def test_every_vector_folder_is_in_the_table() -> None:
    files = {str(p.relative_to(VECTORS)) for p in VECTORS.glob("*/cdr*.json")}
    assert files == {v.cdr for v in VECTORS_TABLE}
