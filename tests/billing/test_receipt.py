"""The driver's receipt, bundle and statement (docs/receipts.md).

End to end from ``chargewatch replay`` ledgers: the real KEBA KC-P30 OCPP 2.0.1
session, OCPP 1.6 SignedData sessions (verified and tampered); unsigned and
hostile sessions as documents. The bundle is parsed back and checked with
``chargewatch ocmf verify``; the HTML is checked structurally (the browser look
is in the report of the session that built it, not a test).
"""

from __future__ import annotations

import html.parser
import json
import sqlite3
import uuid
import xml.etree.ElementTree as ET
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from chargewatch.api.receipt_html import render_receipt, render_statement
from chargewatch.billing.receipt import Place, build_receipt
from chargewatch.billing.statement import build_statement
from chargewatch.cli import main
from chargewatch.model.fleet import Fleet, SiteSpec
from chargewatch.storage.ledger import Ledger
from chargewatch.storage.receipt_source import load_receipt, load_statement
from tests.billing.ocmf_kit import Meter, tamper
from tests.collector import test_replay_signed as replay
from tests.services import PostgreSQL

OPERATOR = {"name": "Stadtwerk Musterstadt", "address": "Hauptstr. 1", "vat_id": "DE123"}
FLEET = Fleet(
    sites={"depot": SiteSpec("depot", "Europe/Berlin", name="Depot Mitte", address="Weg 2")},
    chargers={},
)


def _ledger(tmp: Path) -> Path:
    return tmp / "out" / "ledger.sqlite"


def _session_id(ledger: Path) -> str:
    db = sqlite3.connect(ledger)
    (sid,) = db.execute("SELECT session_id FROM sessions").fetchone()
    db.close()
    return str(sid)


def _receipt(ledger: Path) -> tuple[dict[str, Any], str, str]:
    with Ledger(str(ledger), read_only=True) as led:
        got = load_receipt(led, _session_id(ledger), FLEET, OPERATOR)
    assert got is not None
    doc, xml = got
    return doc, xml, render_receipt(doc)


@pytest.fixture(scope="module")
def v16(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("v16")
    m = Meter()
    replay._v16(tmp, m, *replay._records(m))
    return _ledger(tmp)


@pytest.fixture(scope="module")
def tampered(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("bad")
    m = Meter()
    begin, end = replay._records(m)
    replay._v16(tmp, m, begin, tamper(end, "13.500", "14.500"), stop_wh=14_500)
    return _ledger(tmp)


@pytest.fixture(scope="module")
def keba(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("keba")
    replay._replay(tmp, replay._keba_capture(tmp), replay._fleet(tmp / "f.yaml", replay.KEBA))
    return _ledger(tmp)


def _verify(xml: str, tmp: Path) -> int:
    path = tmp / "bundle.xml"
    path.write_text(xml, encoding="utf-8")
    return main(["ocmf", "verify", str(path)])


class _Text(html.parser.HTMLParser):
    """The page's visible text and its links, as a browser would have them."""

    def __init__(self) -> None:
        super().__init__()
        self.text: list[str] = []
        self.links: list[str] = []
        self.tags: list[str] = []
        self.attrs: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.attrs += [k for k, _ in attrs]
        self.links += [v or "" for k, v in attrs if k == "href"]

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def _page(html_text: str) -> _Text:
    p = _Text()
    p.feed(html_text)
    return p


def test_ocpp16_signed_session_receipt(v16: Path, tmp_path: Path) -> None:
    doc, xml, page = _receipt(v16)
    assert doc["where"] == {
        "site_id": "depot", "site_name": "Depot Mitte", "address": "Weg 2",
        "charger": "CP-SIG", "connector": 1,
    }  # fmt: skip
    # T0 (epoch 1,790,000,000) is 14:13:20Z: 16:13 in Berlin (summer time).
    assert (doc["when"]["start"]["time"], doc["when"]["start"]["zone"]) == ("16:13", "CEST")
    assert doc["energy_kwh"] == Decimal("1.5") and doc["duration"] == "1 h 00 min"
    price = doc["price"]
    (line,) = price["lines"]
    assert (line["dimension"], line["unit_prices"], line["vat_pct"]) == (
        "ENERGY", ["0.35"], [Decimal("21.0")]
    )  # fmt: skip
    assert (line["volume"], line["excl_vat"]) == (Decimal("1.5"), Decimal("0.525"))
    assert price["total_incl_vat"] == Decimal("0.6353") and price["vat"] == Decimal("0.1103")
    sig = doc["signature"]
    assert (sig["status"], sig["tone"], sig["key_pinned"]) == ("verified", "ok", True)
    assert [(r["event"], r["value"], r["status"]) for r in sig["readings"]] == [
        ("Start", "12.000", "verified"), ("End", "13.500", "verified"),
    ]  # fmt: skip
    assert doc["power_curve"] and doc["power_curve"][0]["kw"] == pytest.approx(1.5)
    text = " ".join(_page(page).text)
    shown = (
        "Depot Mitte", "Weg 2", "Stadtwerk Musterstadt", "0.64 EUR", "0.35 EUR/kWh",
        "The meter's signed readings check out.", "signature genuine", "1.500 kWh",
    )  # fmt: skip
    for words in shown:
        assert words in text, words
    assert "receipt/bundle.xml" in _page(page).links and "svg" in _page(page).tags
    # The bundle: one value per record, Begin then End, each with the key; it verifies.
    values = ET.fromstring(xml).findall("value")
    assert [v.get("context") for v in values] == ["Transaction.Begin", "Transaction.End"]
    assert all(v.findtext("signedData", "").startswith("OCMF|") for v in values)
    assert all(v.find("publicKey") is not None for v in values)
    assert _verify(xml, tmp_path) == 0


def test_ocpp201_keba_receipt_and_bundle_verify(keba: Path, tmp_path: Path) -> None:
    doc, xml, page = _receipt(keba)
    sig = doc["signature"]
    assert (sig["status"], sig["key_pinned"]) == ("verified", False)
    assert "not registered by the operator" in sig["key_words"]
    assert [r["value"] for r in sig["readings"]] == ["2114.1356", "2133.8543"]
    # KEBA signs begin and end in one record: the bundle holds it once.
    (value,) = ET.fromstring(xml).findall("value")
    assert '"TX":"B"' in (value.findtext("signedData") or "")
    assert _verify(xml, tmp_path) == 0
    assert "The meter's signed readings check out." in " ".join(_page(page).text)


def test_tampered_reading_warns_in_plain_words(tampered: Path, tmp_path: Path) -> None:
    doc, xml, page = _receipt(tampered)
    assert (doc["signature"]["status"], doc["signature"]["tone"]) == ("invalid", "bad")
    text = " ".join(_page(page).text)
    assert text.count("Warning: the meter's signed readings do NOT check out.") == 2  # top, section
    assert "signature does not verify with the pinned key" in text
    assert "signature NOT genuine" in text
    assert _verify(xml, tmp_path) == 1


def _session(**kw: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "session_id": "S-1", "charger_id": "CP-1", "connector_id": 2, "site": "s1",
        "start": "2026-03-31T22:30:00Z", "stop": "2026-03-31T23:30:00Z", "energy_wh": 7000.0,
        "duration_s": 3600.0, "id_tag": "TAG-1", "quality": [], "periods": [],
        "signature_status": "unsigned", "signature_reason": "", "key_pinned": False,
    }  # fmt: skip
    return base | kw


def test_unsigned_session_says_so_and_offers_no_bundle() -> None:
    doc = build_receipt(_session(), None, Place("s1"), OPERATOR)
    assert doc["price"] is None and doc["signature"]["bundle"] is False
    page = render_receipt(doc)
    assert "This charger sent no signed meter readings." in page
    assert "has not been priced" in page
    assert "bundle.xml" not in page and "<svg" not in page


@pytest.mark.parametrize(
    ("offset", "words"), [(7199.9, "2 h 00 min ahead"), (-18000.2, "5 h 00 min behind")]
)
def test_a_session_moved_by_the_chargers_clock_says_so(offset: float, words: str) -> None:
    session = _session(clock_offset_s=offset, quality=["clock_corrected"])
    page = render_receipt(build_receipt(session, None, Place("s1"), OPERATOR))
    assert f"The charger's clock was {words}." in " ".join(_page(page).text)
    assert "clock was" not in render_receipt(build_receipt(_session(), None, Place("s1"), OPERATOR))


def test_hostile_ids_and_names_are_escaped() -> None:
    evil = '<script>alert("x")</script>'
    session = _session(
        session_id=evil, charger_id='"><img src=x onerror=alert(1)>', id_tag=evil,
        signature_status="invalid", signature_reason=evil,
    )  # fmt: skip
    place = Place("s1", site_name=evil, address="<b>bold</b>", timezone="Europe/Berlin")
    page = render_receipt(build_receipt(session, None, place, {"name": evil, "address": evil}))
    parsed = _page(page)
    # No logo is configured, so any img (or script, or handler) would be the hostile data's.
    assert "script" not in parsed.tags and "img" not in parsed.tags
    assert "onerror" not in parsed.attrs and "<b>bold" not in page
    assert "&lt;script&gt;" in page and "<script>" not in page
    assert evil in " ".join(parsed.text)  # shown as text, not run
    statement = build_statement(evil, "2026-04", [(session, None)], lambda s: place, {"name": evil})
    page = render_statement(statement)
    assert "<script>" not in page and "script" not in _page(page).tags


def _cdr(currency: str, excl: str, incl: str) -> dict[str, Any]:
    return {"currency": currency, "total_cost": {"excl_vat": float(excl), "incl_vat": float(incl)}}


def test_statement_totals_per_currency_in_the_sites_month() -> None:
    berlin = Place("s1", "Depot", timezone="Europe/Berlin")
    sessions = [
        # 22:30Z on 31 March is 00:30 on 1 April in Berlin: April's.
        (_session(session_id="a"), _cdr("EUR", "2.10", "2.50")),
        (_session(session_id="b", start="2026-04-10T10:00:00Z"), _cdr("EUR", "0.105", "0.1250")),
        (_session(session_id="c", start="2026-04-11T10:00:00Z"), _cdr("CHF", "3", "3.23")),
        (_session(session_id="d", start="2026-04-12T10:00:00Z", signature_status="invalid"), None),
        # 30 April 22:30Z is 1 May in Berlin: not April's.
        (_session(session_id="e", start="2026-04-30T22:30:00Z"), _cdr("EUR", "9", "9")),
    ]
    doc = build_statement("TAG-1", "2026-04", sessions, lambda s: berlin, OPERATOR)
    assert [r["session_id"] for r in doc["sessions"]] == ["a", "b", "c", "d"]
    assert doc["unpriced"] == 1 and doc["sessions"][3]["signature_status"] == "invalid"
    totals = {t["currency"]: t for t in doc["totals"]}
    assert totals["EUR"]["incl_vat"] == Decimal("2.625") and totals["EUR"]["sessions"] == 2
    assert totals["EUR"]["vat"] == Decimal("0.42") and totals["EUR"]["energy_kwh"] == 14
    assert totals["CHF"]["incl_vat"] == Decimal("3.23")
    page = render_statement(doc)
    assert "2.63 EUR" in page and "3.23 CHF" in page and "not priced" in page


def test_statement_from_the_ledger_and_cli(v16: Path, tmp_path: Path) -> None:
    with Ledger(str(v16), read_only=True) as led:
        doc = load_statement(led, "04A1B2C3", "2026-09", FLEET, OPERATOR)
        assert load_statement(led, "04A1B2C3", "2026-10", FLEET, OPERATOR)["sessions"] == []
    ((total),) = doc["totals"]
    assert (total["currency"], total["incl_vat"]) == ("EUR", Decimal("0.6353"))
    out = tmp_path / "st.json"
    args = ["statement", "--ledger", str(v16), "--id-tag", "04A1B2C3", "--month", "2026-09"]
    assert main([*args, "--format", "json", "--out", str(out)]) == 0
    assert json.loads(out.read_text())["totals"][0]["incl_vat"] == "0.6353"


def test_receipt_cli_writes_page_and_bundle(v16: Path, tmp_path: Path) -> None:
    page, bundle = tmp_path / "r.html", tmp_path / "r.xml"
    sid = _session_id(v16)
    args = ["receipt", "--ledger", str(v16), sid, "--out", str(page), "--bundle", str(bundle)]
    assert main(args) == 0
    assert "r.xml" in _page(page.read_text()).links
    assert main(["ocmf", "verify", str(bundle)]) == 0
    assert main(["receipt", "--ledger", str(v16), "no-such-session"]) == 1


@pytest.mark.integration
def test_receipt_and_statement_cli_read_a_postgresql_ledger(
    v16: Path, tmp_path: Path, postgresql: PostgreSQL
) -> None:
    """``--ledger postgresql://…`` as for the other commands: the same documents as
    from the SQLite ledger it was migrated from."""
    name = f"receipt_{uuid.uuid4().hex[:10]}"
    url = postgresql.create_db(name)
    try:
        assert main(["ledger", "migrate", "--from", str(v16), "--to", url]) == 0
        sid = _session_id(v16)
        out: dict[str, tuple[str, str, str]] = {}
        for kind, ledger in (("sqlite", str(v16)), ("pg", url)):
            r, b, s = (tmp_path / f"{kind}-{x}" for x in ("r.json", "b.xml", "s.json"))
            receipt = ["receipt", "--ledger", ledger, sid, "--format", "json"]
            assert main([*receipt, "--out", str(r), "--bundle", str(b)]) == 0
            statement = ["statement", "--ledger", ledger, "--id-tag", "04A1B2C3"]
            assert (
                main([*statement, "--month", "2026-09", "--format", "json", "--out", str(s)]) == 0
            )
            out[kind] = (r.read_text(), b.read_text(), s.read_text())
        assert out["pg"] == out["sqlite"]
        assert json.loads(out["pg"][2])["totals"][0]["incl_vat"] == "0.6353"
        assert main(["receipt", "--ledger", url, "no-such-session"]) == 1
    finally:
        postgresql.drop_db(name)
