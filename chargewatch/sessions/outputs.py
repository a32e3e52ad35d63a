"""Session outputs for billing: JSON Lines, CSV, JSON and InfluxDB line protocol.

Pure functions over :class:`SessionRecord` or the dicts the ledger returns
(the ``sessions.jsonl`` object); the CLI and HTTP API write them.
"""

from __future__ import annotations

__all__ = ["CSV_COLUMNS", "influx_lines", "jsonl_line", "session_periods", "to_csv", "to_json"]

import json
from collections.abc import Iterable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from chargewatch.core.spreadsheet import csv_text
from chargewatch.sessions.periods import PeriodState, SessionPeriod
from chargewatch.sessions.session_engine import SessionRecord

#: CSV columns, in order. Quality flags are joined with "|"; periods are left out.
CSV_COLUMNS: tuple[str, ...] = (
    "session_id",
    "charger_id",
    "connector_id",
    "site",
    "transaction_id",
    "start",
    "stop",
    "duration_s",
    "energy_wh",
    "energy_source",
    "idle_s",
    "charging_s",
    "quality",
    "revision",
    "stop_reason",
    "charger_stop_reason",
    "meter_start_wh",
    "meter_stop_wh",
    "register_wh",
    "power_integral_wh",
    "mismatch_wh",
    "mismatch_pct",
    "id_tag",
    # Set where the register is proven wrong (needs_review) or differs from the estimate.
    "register_energy_wh",
    "estimate_energy_wh",
    "review_reason",
    # Set where the charger's clock was off; start/stop are moved by it.
    "clock_offset_s",
    # From the session's current CDR (empty when it has none): storage.ledger.with_costs.
    "tariff_id",
    "currency",
    "total_cost_excl_vat",
    "total_cost_incl_vat",
    # The verdict on the meter's signed readings (docs/signatures.md).
    "signature_status",
    "signature_reason",
    "key_pinned",
)


def jsonl_line(record: SessionRecord) -> str:
    """One line of ``sessions.jsonl`` (no trailing newline), keys sorted for stable diffs."""
    return json.dumps(record.to_dict(), sort_keys=True, separators=(",", ":"))


def to_json(rows: Iterable[dict[str, Any]]) -> str:
    return json.dumps(list(rows), indent=1, sort_keys=True)


def to_csv(rows: Iterable[dict[str, Any]]) -> str:
    return csv_text(
        CSV_COLUMNS,
        (
            [
                "|".join(d.get("quality", [])) if c == "quality" else _cell(d.get(c))
                for c in CSV_COLUMNS
            ]
            for d in rows
        ),
    )


def _cell(v: Any) -> str:
    return "" if v is None else str(v)


def _tag(v: str) -> str:
    # Line protocol: commas, spaces and equals signs in tag values are escaped.
    return v.replace("\\", "\\\\").replace(",", "\\,").replace(" ", "\\ ").replace("=", "\\=")


def _str_field(v: str) -> str:
    return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'


def influx_lines(records: Iterable[SessionRecord], measurement: str = "session") -> list[str]:
    """``session`` points, one per record, timestamped at the session start (ms,
    the writer's precision: chargewatch.storage.lineproto.PRECISION).

    A revision is written at the same series and timestamp, so InfluxDB
    overwrites the earlier point instead of counting the session twice.
    """
    out = []
    for r in records:
        tags = f"{measurement},charger={_tag(r.charger_id)},connector={r.connector_id}"
        if r.site:
            tags += f",site={_tag(r.site)}"
        fields = (
            f"energy_wh={r.energy_wh!r},duration_s={r.duration_s!r},idle_s={r.idle_s!r},"
            f"energy_source={_str_field(r.energy_source)},revision={r.revision}i,"
            f"session_id={_str_field(r.session_id)}"
        )
        out.append(f"{tags} {fields} {round(r.start * 1e3)}")
    return out


def _dec(x: float | None, places: str = "0.001") -> Decimal | None:
    return None if x is None else Decimal(repr(x)).quantize(Decimal(places))


def session_periods(record: SessionRecord) -> list[SessionPeriod]:
    """The record's charging/idle periods as the tariff engine's input (``build_cdr``).

    Contiguous from ``record.start`` to ``record.stop`` (UTC): each period
    starts where the previous one ended, so rounding to microseconds cannot
    open a hole. Idle periods are PARKING; energies in Wh to the milliwatt-hour,
    rounded as running totals so that they sum to the total rounded once: each
    rounded alone, a 19,320 Wh session's periods made 19,320.001 Wh, which the
    1 Wh step_size billed as 19,321.
    """
    out: list[SessionPeriod] = []
    end_last = datetime.fromtimestamp(record.start, UTC)
    running = 0.0
    billed = Decimal(0)
    for p in record.periods:
        start = end_last
        end = datetime.fromtimestamp(p.end, UTC)
        if end <= start:
            continue
        running += max(p.energy_wh, 0.0)
        total = _dec(running) or Decimal(0)
        energy, billed = total - billed, total
        out.append(
            SessionPeriod(
                start,
                end,
                PeriodState.CHARGING if p.kind == "charging" else PeriodState.PARKING,
                energy,
                min_power_w=_dec(p.min_power_w, "0.1"),
                max_power_w=_dec(p.max_power_w, "0.1"),
                max_current_a=_dec(p.max_current_a, "0.01"),
            )
        )
        end_last = end
    return out
