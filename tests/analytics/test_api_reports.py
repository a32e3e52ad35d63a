"""The HTTP endpoints, the ledger's CDR/alert tables and the report command on a small ledger."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

import orjson
import pytest

from chargewatch.api.analytics_api import ENDPOINTS, register_routes
from chargewatch.api.http import HttpServer
from chargewatch.billing.tariff_files import load_tariff
from chargewatch.cli import main
from chargewatch.reports.dataset_ledger import price_records, record_from_dict
from chargewatch.storage.analytics_source import load_cdrs, load_transitions
from chargewatch.storage.ledger import Ledger
from tests.analytics.helpers import H, session, ts

REPO = Path(__file__).resolve().parents[2]
T0 = ts("2024-03-04 00:00")
FROM, TO = "2024-03-04T00:00:00Z", "2024-03-11T00:00:00Z"


def _records() -> list[Any]:
    sessions = [
        session(
            "s1",
            T0 + 8 * H,
            T0 + 12 * H,
            charge=(T0 + 8 * H, T0 + 10 * H),
            energy_wh=14_000,
            max_power_w=7400.0,
        ),
        session(
            "s2",
            T0 + 9 * H,
            T0 + 10 * H,
            connector=2,
            charge=(T0 + 9 * H, T0 + 10 * H),
            energy_wh=7000,
        ),
        session("s3", T0 + 30 * H, T0 + 31 * H, charger="C2"),
        session(
            "s4",
            T0 + 50 * H,
            T0 + 53 * H,
            charger="C3",
            site="S2",
            charge=(T0 + 50 * H, T0 + 51 * H),
            energy_wh=11_000,
        ),
    ]
    return [record_from_dict(s) for s in sessions]


@pytest.fixture
def ledger_path(ledger_url: str) -> str:
    path = ledger_url
    with Ledger(path) as ledger:
        records = _records()
        ledger.write(records)
        price_records(ledger, records[:2], load_tariff(REPO / "tariffs/flat_energy.json"), {})
        n = ledger.write_alert_transitions(
            [
                {
                    "at": T0 + 20 * H,
                    "state": "firing",
                    "alertname": "ChargerOffline",
                    "labels": {
                        "charger": "C2",
                        "site": "S1",
                        "severity": "critical",
                        "fault": "charger_offline",
                    },
                },
                {
                    "at": T0 + 26 * H,
                    "state": "resolved",
                    "alertname": "ChargerOffline",
                    "labels": {
                        "charger": "C2",
                        "site": "S1",
                        "severity": "critical",
                        "fault": "charger_offline",
                    },
                },
            ]
        )
        assert n == 2
    return path


@pytest.fixture
def server(ledger_path: Path) -> HttpServer:
    srv = HttpServer("127.0.0.1:0", health=lambda: (True, {}), ready=lambda: (True, {}))
    register_routes(srv, Ledger(ledger_path))
    yield srv
    srv.server.server_close()


def get(srv: HttpServer, name: str, query: str) -> tuple[int, str, bytes]:
    return srv.dispatch(f"/api/v1/analytics/{name}", query, "")


def test_ledger_keeps_cdrs_and_ignores_repeated_alert_transitions(ledger_path: Path) -> None:
    with Ledger(ledger_path) as ledger:
        assert ledger.version >= 2  # the CDR and alert tables arrived in migration 2
        cdrs = {c["session_id"]: c for c in load_cdrs(ledger)}
        assert set(cdrs) == {"s1", "s2"}
        assert cdrs["s1"]["total_cost_excl_vat"] == pytest.approx(14 * 0.35)
        assert cdrs["s1"]["total_energy_kwh"] == pytest.approx(14.0)
        again = load_transitions(ledger)
        assert ledger.write_alert_transitions(again) == 0
        assert len(load_transitions(ledger)) == 2


@pytest.mark.parametrize("name", ENDPOINTS)
def test_every_endpoint_answers_json_and_csv(server: HttpServer, name: str) -> None:
    status, ctype, body = get(server, name, f"from={FROM}&to={TO}")
    assert (status, ctype) == (200, "application/json")
    doc = orjson.loads(body)
    assert name in doc
    status, ctype, body = get(server, name, f"from={FROM}&to={TO}&format=csv")
    assert status == 200
    assert ctype.startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(body.decode())))
    assert rows or name == "peers"  # peers need 5 sessions per charger; none here


def test_utilisation_filters_and_csv_shape(server: HttpServer) -> None:
    _, _, body = get(server, "utilisation", f"from={FROM}&to={TO}&site=S1&level=charger")
    doc = orjson.loads(body)["utilisation"]
    by = {g["group"]: g for g in doc}
    assert set(by) == {"C1", "C2"}
    # C1: two connectors, 4 h + 1 h occupied in a 168 h week.
    assert by["C1"]["occupied_share"] == pytest.approx(5 / (2 * 168))
    _, _, body = get(server, "utilisation", f"from={FROM}&to={TO}&charger=C1&format=csv")
    rows = list(csv.DictReader(io.StringIO(body.decode())))
    assert len(rows) == 168
    assert rows[9]["weekday"] == "Mon"
    assert float(rows[9]["occupied_share"]) == pytest.approx(1.0)


def test_revenue_and_reliability_through_the_api(server: HttpServer) -> None:
    _, _, body = get(server, "revenue", f"from={FROM}&to={TO}")
    rev = {g["group"]: g for g in orjson.loads(body)["revenue"]}
    assert rev["S1"]["priced_sessions"] == 2
    (eur,) = rev["S1"]["currencies"]
    assert eur["avg_price_per_kwh_excl_vat"] == pytest.approx(0.35)
    assert rev["S2"]["status"] == "unpriced"
    _, _, body = get(server, "reliability", f"from={FROM}&to={TO}")
    rel = orjson.loads(body)["reliability"]
    c2 = next(c for c in rel["chargers"] if c["charger"] == "C2")
    assert c2["down_hours"] == pytest.approx(6.0)
    assert c2["availability"] == pytest.approx(1 - 6 / 168)


@pytest.mark.parametrize(
    ("query", "status"),
    [
        ("level=galaxy", 400),
        ("format=xml", 400),
        ("from=yesterday", 400),
        (f"from={TO}&to={FROM}", 400),
        ("site=nowhere", 404),
    ],
)
def test_bad_queries(server: HttpServer, query: str, status: int) -> None:
    assert get(server, "daily", query)[0] == status


def test_fleet_report_from_a_ledger(ledger_path: Path, tmp_path: Path) -> None:
    out = tmp_path / "rep"
    argv = ["report", "--ledger", str(ledger_path), "--from", FROM, "--to", TO, "--out", str(out)]
    assert main(argv) == 0
    html = (out / "report.html").read_text()
    assert "Revenue" in html
    assert "flat-energy" in html
    assert (out / "revenue.png").exists()
    assert "availability" in html


def test_session_report_shows_periods_and_pricing(ledger_path: Path, tmp_path: Path) -> None:
    out = tmp_path / "s1"
    assert main(["report", "--ledger", str(ledger_path), "--session", "s1", "--out", str(out)]) == 0
    html = (out / "report.html").read_text()
    assert "Stored CDR, tariff flat-energy" in html
    assert "ENERGY 14" in html  # the charging period's dimension volume (kWh)
    assert (out / "session.png").read_bytes()[:4] == b"\x89PNG"
    out = tmp_path / "s4"
    tariff = str(REPO / "tariffs/idle_fee.json")
    argv = [
        "report",
        "--ledger",
        str(ledger_path),
        "--session",
        "s4",
        "--tariff",
        tariff,
        "--out",
        str(out),
    ]
    assert main(argv) == 0
    html = (out / "report.html").read_text()
    assert "Priced now with tariff idle-fee" in html
    assert "PARKING" in html
    assert (
        main(["report", "--ledger", str(ledger_path), "--session", "nope", "--out", str(out)]) == 1
    )
