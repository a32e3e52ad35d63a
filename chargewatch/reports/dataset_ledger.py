"""Load a raw public dataset into a ledger, through the simulator's converter.

``chargewatch/simulator/dataset_plans.py`` already turns each recorded session into
a :class:`Plan` (plug-in/out, charge start/end, energy); here each plan
becomes the :class:`SessionRecord` the session engine would have written for
it (idle until charging starts, charging, idle until unplug), without running
the engine, so a report on 7,000 sessions takes a second.
"""

from __future__ import annotations

__all__ = [
    "DATASETS",
    "DatasetInfo",
    "load_dataset",
    "plan_records",
    "price_records",
    "record_from_dict",
]

from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from chargewatch.billing.cdr import PricedCdr, build_cdr
from chargewatch.billing.tariff import Tariff
from chargewatch.core.resources import shared_data_dir
from chargewatch.sessions.outputs import session_periods
from chargewatch.sessions.power_track import Period
from chargewatch.sessions.session_engine import SessionRecord
from chargewatch.simulator.dataset_plans import Plan, acn_plans, norway_plans
from chargewatch.storage.ledger import Ledger

SHARED = shared_data_dir()


@dataclass(frozen=True, slots=True)
class DatasetInfo:
    name: str
    path: Path
    plans: Callable[[Path], list[Plan]]
    #: site → IANA zone for local hours. The Norwegian file's times are local
    #: wall-clock times that the converter reads as UTC, so "UTC" gives back
    #: the file's own hours.
    zones: dict[str, str]
    site_of: Callable[[Path], Callable[[str], str]]
    title: str


def _acn_site(_: Path) -> Callable[[str], str]:
    return lambda charger: "JPL"


def _norway_site(path: Path) -> Callable[[str], str]:
    """User → garage (the site): the converter names chargers by user only."""
    garages: dict[str, Counter[str]] = {}
    for line in path.read_text(encoding="utf-8").splitlines()[1:]:
        f = line.split(";")
        if len(f) > 2:
            garages.setdefault("NO-" + f[2], Counter())[f[1]] += 1
    return lambda charger: "NO-" + garages[charger].most_common(1)[0][0]


DATASETS: dict[str, DatasetInfo] = {
    "acn": DatasetInfo(
        "acn",
        SHARED / "acn-jpl-sessions-2021.json",
        acn_plans,
        {"JPL": "America/Los_Angeles"},
        _acn_site,
        "ACN-Data, JPL site (Caltech), May–Sep 2021",
    ),
    "norway": DatasetInfo(
        "norway",
        SHARED / "norway-residential-sessions.csv",
        norway_plans,
        {"*": "UTC"},
        _norway_site,
        "Norwegian residential charging (Sørensen et al.), 2018–2020",
    ),
}


def plan_records(plans: list[Plan], site_of: Callable[[str], str]) -> list[SessionRecord]:
    out = []
    for p in plans:
        periods: list[Period] = []
        if p.energy_wh > 0 and p.charge_end > p.charge_start:
            if p.charge_start > p.plug:
                periods.append(Period("idle", p.plug, p.charge_start, 0.0, 0.0, 0.0, None))
            periods.append(
                Period("charging", p.charge_start, p.charge_end, p.energy_wh, 0.0, p.power_w, None)
            )
            if p.unplug > p.charge_end:
                periods.append(Period("idle", p.charge_end, p.unplug, 0.0, 0.0, 0.0, None))
            charging_s = p.charge_end - p.charge_start
        else:
            periods.append(Period("idle", p.plug, p.unplug, 0.0, 0.0, 0.0, None))
            charging_s = 0.0
        out.append(
            SessionRecord(
                session_id=f"{p.charger}:{p.connector}:{p.transaction_id}",
                charger_id=p.charger,
                connector_id=p.connector,
                site=site_of(p.charger),
                transaction_id=p.transaction_id,
                start=p.plug,
                stop=p.unplug,
                energy_wh=p.energy_wh,
                energy_source="transaction_meter",
                quality=(),
                revision=0,
                stop_reason="transaction",
                idle_s=(p.unplug - p.plug) - charging_s,
                charging_s=charging_s,
                meter_start_wh=p.meter_base_wh,
                meter_stop_wh=p.meter_base_wh + p.energy_wh,
                register_wh=p.energy_wh,
                power_integral_wh=p.energy_wh,
                mismatch_wh=0.0,
                mismatch_pct=0.0,
                id_tag="",
                periods=tuple(periods),
            )
        )
    return out


def load_dataset(
    name: str, ledger: Ledger, path: Path | None = None
) -> tuple[DatasetInfo, list[SessionRecord]]:
    """Write dataset ``name`` (``acn`` | ``norway``) into ``ledger``; return it and its records."""
    info = DATASETS[name]
    src = path or info.path
    records = plan_records(info.plans(src), info.site_of(src))
    ledger.write(records)
    return info, records


def _epoch(v: Any) -> float:
    if isinstance(v, str):
        return datetime.fromisoformat(v.replace("Z", "+00:00")).timestamp()
    return float(v)


def record_from_dict(d: Mapping[str, Any]) -> SessionRecord:
    """Rebuild a :class:`SessionRecord` from its ``sessions.jsonl`` dict (ledger ``record``)."""
    return SessionRecord(
        session_id=d["session_id"],
        charger_id=d["charger_id"],
        connector_id=int(d["connector_id"]),
        site=d.get("site", ""),
        transaction_id=str(d.get("transaction_id", "")),
        start=_epoch(d["start"]),
        stop=_epoch(d["stop"]),
        energy_wh=float(d["energy_wh"]),
        energy_source=d.get("energy_source", ""),
        quality=tuple(d.get("quality", ())),
        revision=int(d.get("revision", 0)),
        stop_reason=d.get("stop_reason", ""),
        idle_s=float(d.get("idle_s", 0.0)),
        charging_s=float(d.get("charging_s", 0.0)),
        meter_start_wh=d.get("meter_start_wh"),
        meter_stop_wh=d.get("meter_stop_wh"),
        register_wh=d.get("register_wh"),
        power_integral_wh=float(d.get("power_integral_wh", 0.0)),
        mismatch_wh=d.get("mismatch_wh"),
        mismatch_pct=d.get("mismatch_pct"),
        id_tag=d.get("id_tag", ""),
        charger_stop_reason=str(d.get("charger_stop_reason", "")),
        periods=tuple(
            Period(
                p["kind"],
                _epoch(p["start"]),
                _epoch(p["end"]),
                float(p["energy_wh"]),
                p.get("min_power_w"),
                p.get("max_power_w"),
                p.get("max_current_a"),
            )
            for p in d.get("periods", ())
        ),
    )


def price_records(
    ledger: Ledger, records: Sequence[SessionRecord], tariff: Tariff, zones: Mapping[str, str]
) -> int:
    """Price each record with ``tariff`` and store its CDR in the ledger; return how many."""
    n = 0
    for r in records:
        zone = zones.get(r.site, zones.get("*", "UTC"))
        cdr = build_cdr(
            tariff,
            start=datetime.fromtimestamp(r.start, UTC),
            end=datetime.fromtimestamp(r.stop, UTC),
            timezone=ZoneInfo(zone),
            periods=session_periods(r),
        )
        if isinstance(cdr, PricedCdr):
            ledger.write_cdr(
                session_id=r.session_id,
                charger_id=r.charger_id,
                site=r.site,
                start=r.start,
                cdr=cdr.to_ocpi(),
            )
            n += 1
    return n
