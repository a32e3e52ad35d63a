"""Prices every finished session with its tariff and issues OCPI 2.2.1 CDRs.

Listens to the session stage. The tariff is the charger's own, else its site's
default (fleet inventory). A session without a tariff is recorded as
unpriced (ledger, metric, API), never priced as 0. A session revised after its
CDR was issued gets a credit CDR for the old one and a new CDR, as OCPI
requires (a CDR is never changed silently).
"""

from __future__ import annotations

__all__ = ["CdrIssuer", "cdrs_csv", "check_tariff_references"]

import json
import logging
import zoneinfo
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from prometheus_client import Counter

from chargewatch.billing.cdr import PricedCdr, build_cdr
from chargewatch.billing.ocpi_json import json_text
from chargewatch.billing.signed_data import ocpi_signed_data
from chargewatch.billing.tariff import Tariff
from chargewatch.config.fleet_file import tariff_reference_problems
from chargewatch.core.errors import ConfigError, ConfigProblem
from chargewatch.core.spreadsheet import csv_text
from chargewatch.model.fleet import Fleet
from chargewatch.sessions.outputs import session_periods
from chargewatch.sessions.session_engine import SessionRecord
from chargewatch.storage.ledger import Ledger
from chargewatch.storage.lineproto import LineSink, escape_field_string, escape_tag

log = logging.getLogger(__name__)

CDRS = Counter("chargewatch_cdrs_total", "CDRs issued, by kind", ["kind"])
UNPRICED = Counter(
    "chargewatch_sessions_unpriced_total", "Finished sessions without a tariff", ["reason"]
)


def check_tariff_references(
    fleet: Fleet, tariffs: dict[str, Tariff], *, unknown: str = "fail"
) -> list[ConfigProblem]:
    """At start: log what tariffs were accepted with, and check fleet.yaml's tariff ids.

    An unknown id raises ConfigError (file:line and key path of each) unless
    ``unknown`` is "warn" (billing.unknown_tariffs), which logs them; the
    problems are returned either way (replay's summary lists them).
    """
    for tariff in tariffs.values():
        for warning in tariff.warnings:
            log.warning("tariff %s: %s", tariff.id, warning)
    problems = tariff_reference_problems(fleet, tariffs)
    if problems and unknown != "warn":
        raise ConfigError(problems)
    for problem in problems:
        log.warning("%s (its sessions will be unpriced; billing.unknown_tariffs: warn)", problem)
    return problems


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


class CdrIssuer:
    """A session-stage listener: ``issuer(records)`` for closed or revised sessions."""

    def __init__(
        self,
        fleet: Fleet,
        tariffs: dict[str, Tariff],
        *,
        ledger: Ledger | None = None,
        emit: Callable[[str], None] | None = None,
        lines: LineSink | None = None,
        country_code: str = "NL",
        party_id: str = "CWX",
        receipt_base_url: str = "",
        log_repeats: bool = True,
    ) -> None:
        self.fleet = fleet
        self.tariffs = tariffs
        # billing.receipt_base_url: the CDR's signed_data.url is the receipt there.
        self.receipt_base_url = receipt_base_url
        self.ledger = ledger
        self.emit = emit  # one OCPI CDR as a JSON line (replay's cdrs.jsonl)
        self.lines = lines
        self.country_code = country_code
        self.party_id = party_id
        self._issued: dict[str, dict[str, Any]] = {}  # without a ledger (replay to files)
        self.issued = 0
        self.credited = 0
        self.unpriced = 0
        self.unpriced_by_reason: dict[str, int] = {}  # by the metric's reason label
        # False (replay): an unpriced session is logged only when its charger
        # is first unpriced for its reason; the rest are counted (metric,
        # summary), not logged: a site without a tariff made thousands of lines.
        self.log_repeats = log_repeats
        self._logged: set[tuple[str, str]] = set()  # (charger, reason) logged

    def __call__(self, records: list[SessionRecord]) -> None:
        for rec in records:
            try:
                self._price(rec)
            except (ValueError, ArithmeticError) as exc:
                # A session the engine cannot price (inconsistent periods) is
                # unpriced with the reason, never dropped and never 0.
                log.error("cannot price session %s: %s", rec.session_id, exc)
                self._unpriced(rec, f"pricing failed: {exc}")

    def _price(self, rec: SessionRecord) -> None:
        if "failed_start" in rec.quality:
            return  # a plug-in that never charged is recorded, not billed
        if rec.stop <= rec.start and rec.energy_wh <= 0.0:
            # No time and no energy (one MeterValues naming a transaction never
            # seen started, and nothing after it): recorded, nothing to bill. Not
            # an unpriced error, and no flat session fee for a message alone.
            return
        spec = self.fleet.charger(rec.charger_id)
        tariff_id = self.fleet.tariff_for(rec.charger_id)
        tariff = self.tariffs.get(tariff_id) if tariff_id else None
        if tariff is None:
            reason = f"no tariff {tariff_id!r} loaded" if tariff_id else "no tariff assigned"
            self._unpriced(rec, reason)
            return
        start_dt = datetime.fromtimestamp(rec.start, UTC)
        if (tariff.start_date_time and start_dt < tariff.start_date_time) or (
            tariff.end_date_time and start_dt >= tariff.end_date_time
        ):
            # OCPI: a tariff applies only within its validity window.
            self._unpriced(rec, f"tariff {tariff_id!r} is not valid at the session start")
            return
        site = self.fleet.site(spec.site)
        result = build_cdr(
            tariff,
            start=datetime.fromtimestamp(rec.start, UTC),
            end=datetime.fromtimestamp(rec.stop, UTC),
            timezone=zoneinfo.ZoneInfo(site.timezone),
            periods=session_periods(rec),
        )
        if not isinstance(result, PricedCdr):  # only without a tariff, handled above
            self._unpriced(rec, "the tariff engine returned no price")
            return
        cdr_id = rec.session_id[:32] + (f"-r{rec.revision}" if rec.revision else "")
        doc: dict[str, Any] = {
            "country_code": self.country_code,
            "party_id": self.party_id,
            "id": cdr_id,
            "end_date_time": _iso(rec.stop),
            "session_id": rec.session_id,
            "cdr_location": {
                "evse_uid": f"{rec.charger_id}*{rec.connector_id}",
                "connector_id": str(rec.connector_id),
            },
            "cdr_token": {"uid": rec.id_tag or "unknown", "type": "RFID"},
            "auth_method": "WHITELIST",
            "last_updated": _iso(rec.stop),
            **result.to_ocpi(),
        }
        signed = ocpi_signed_data(rec, receipt_base_url=self.receipt_base_url)
        if signed is not None:
            doc["signed_data"] = signed
        previous = self._previous(rec.session_id)
        if previous is not None and previous.get("id") == cdr_id:
            # Issued already (a replay into the same ledger, a restart): nothing
            # new for billing, but this run's output still lists it.
            if self.emit is not None:
                self.emit(json_text(doc, indent=None))
            return
        if previous is not None:
            credit = dict(previous, id=f"{previous['id']}-C", credit=True,
                          credit_reference_id=previous["id"])  # fmt: skip
            self._record(rec, credit, "credit")
            self.credited += 1
        self._record(rec, doc, "issued")
        self.issued += 1
        if self.ledger is not None:
            self.ledger.clear_unpriced(rec.session_id)
            self.ledger.write_cdr(
                session_id=rec.session_id, charger_id=rec.charger_id, site=rec.site,
                start=rec.start, cdr=_plain(doc), written_at=rec.stop,
            )  # fmt: skip
        self._issued[rec.session_id] = _plain(doc)
        if self.lines is not None:
            totals = result.totals()
            incl = totals["total_cost"]["incl_vat"]
            fields = f"total_cost_excl_vat={float(totals['total_cost']['excl_vat'])!r}"
            if incl is not None:
                fields += f",total_cost_incl_vat={float(incl)!r}"
            fields += (
                f",currency={escape_field_string(tariff.currency)}"
                f",tariff_id={escape_field_string(tariff.id)}"
            )
            tags = f"session,charger={escape_tag(rec.charger_id)},connector={rec.connector_id}" + (
                f",site={escape_tag(rec.site)}" if rec.site else ""
            )
            # Same series and timestamp as the session point: InfluxDB merges the fields.
            self.lines.write([f"{tags} {fields} {round(rec.start * 1e3)}"])

    def _previous(self, session_id: str) -> dict[str, Any] | None:
        if self.ledger is not None:
            return self.ledger.issued_cdr(session_id)
        return self._issued.get(session_id)

    def _record(self, rec: SessionRecord, doc: dict[str, Any], kind: str) -> None:
        # A credit is built from the stored CDR (plain JSON numbers, already at
        # the reported precision); a new CDR still holds the engine's Decimals.
        plain = doc if kind == "credit" else _plain(doc)
        text = json.dumps(doc) if kind == "credit" else json_text(doc, indent=None)
        CDRS.labels(kind=kind).inc()
        if self.ledger is not None:
            self.ledger.record_cdr_history(
                cdr_id=str(doc["id"]), session_id=rec.session_id, kind=kind,
                revision=rec.revision, at=rec.stop, cdr=plain,
            )  # fmt: skip
        if self.emit is not None:
            self.emit(text)

    def _unpriced(self, rec: SessionRecord, reason: str) -> None:
        self.unpriced += 1
        label = "no_tariff" if "tariff" in reason else "error"
        UNPRICED.labels(reason=label).inc()
        self.unpriced_by_reason[label] = self.unpriced_by_reason.get(label, 0) + 1
        # Counted where the operator looks: this log, the metric above, the
        # ledger (API), replay's and the demo's summaries.
        first = (rec.charger_id, reason) not in self._logged
        if first or self.log_repeats:
            self._logged.add((rec.charger_id, reason))
            log.warning(
                "session %s (%s) unpriced: %s [%d unpriced so far]%s",
                rec.session_id, rec.charger_id, reason, self.unpriced,
                "" if self.log_repeats else "; further such sessions of this charger are counted",
            )  # fmt: skip
        if self.ledger is not None:
            self.ledger.mark_unpriced(
                session_id=rec.session_id, charger_id=rec.charger_id, site=rec.site,
                start=rec.start, reason=reason, at=rec.stop,
            )  # fmt: skip


def _plain(doc: dict[str, Any]) -> dict[str, Any]:
    """Decimal-exact OCPI JSON as plain JSON values (numbers keep their digits)."""
    return dict(json.loads(json_text(doc, indent=None)))


def cdrs_csv(
    rows: list[dict[str, Any]], owners: Mapping[str, Mapping[str, Any]] | None = None
) -> str:
    """One CSV row per CDR: the figures billing reconciles.

    ``owners``: charger_id, site, connector_id and id_tag by session id
    (``storage.ledger.session_owners``), which an OCPI CDR does not carry.
    """
    header = ["id", "session_id", "charger_id", "site", "connector_id", "id_tag", "credit",
              "start_date_time", "end_date_time", "currency",
              "tariff_id", "total_energy", "total_time", "total_parking_time",
              "total_cost_excl_vat", "total_cost_incl_vat"]  # fmt: skip
    owners = owners or {}
    return csv_text(header, (_cdr_row(c, owners.get(c.get("session_id", ""), {})) for c in rows))


def _cdr_row(c: dict[str, Any], owner: Mapping[str, Any]) -> list[Any]:
    cost = c.get("total_cost", {})
    return [
        c.get("id"), c.get("session_id"),
        *(owner.get(k) for k in ("charger_id", "site", "connector_id", "id_tag")),
        bool(c.get("credit")), c.get("start_date_time"),
        c.get("end_date_time"), c.get("currency"),
        (c.get("tariffs") or [{}])[0].get("id", ""), c.get("total_energy"),
        c.get("total_time"), c.get("total_parking_time"), cost.get("excl_vat"),
        cost.get("incl_vat"),
    ]  # fmt: skip
