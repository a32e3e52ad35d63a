"""``chargewatch uptime`` and GET /api/v1/uptime on a small ledger (outages from its alerts)."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import pytest

from chargewatch.api.http import HttpServer
from chargewatch.api.uptime_api import register_routes
from chargewatch.cli import main
from chargewatch.reports.dataset_ledger import record_from_dict
from chargewatch.storage.ledger import Ledger
from tests.analytics.helpers import H, session, ts

T0 = ts("2024-03-04 00:00")
OFF = {"charger": "C1", "site": "S1", "severity": "critical", "fault": "charger_offline"}
GF = {
    "charger": "C1",
    "connector": "1",
    "site": "S1",
    "severity": "critical",
    "error_code": "GroundFailure",
    "mrec": "CX002",
}
FS = {
    "charger": "C1",
    "connector": "2",
    "site": "S1",
    "severity": "warning",
    "fault": "failed_start",
}


def _t(at: float, state: str, name: str, labels: dict[str, str]) -> dict[str, Any]:
    return {"at": at, "state": state, "alertname": name, "labels": labels}


@pytest.fixture
def ledger_path(ledger_url: str) -> str:
    path = ledger_url
    with Ledger(path) as ledger:
        ledger.write(
            [
                record_from_dict(
                    session(
                        "s1",
                        T0 + 8 * H,
                        T0 + 9 * H,
                        charge=(T0 + 8 * H, T0 + 9 * H),
                        energy_wh=9_000,
                        max_power_w=11_000.0,
                    )
                ),
                record_from_dict(
                    session("s2", T0 + 10 * H, T0 + 11 * H, connector=2, energy_wh=10)
                ),
            ]
        )
        ledger.write_alert_transitions(
            [
                # Offline 2h–4h while connector 1 reports a ground fault 3h–5h.
                _t(T0 + 2 * H, "firing", "ChargerOffline", OFF),
                _t(T0 + 4 * H, "resolved", "ChargerOffline", OFF),
                _t(T0 + 3 * H, "firing", "OcppGroundFailure", GF),
                _t(T0 + 5 * H, "resolved", "OcppGroundFailure", GF),
                _t(T0 + 12 * H, "firing", "FailedStart", FS),
            ]
        )
    return path


def test_uptime_json_from_the_ledger(ledger_path: Path, tmp_path: Path, capsys: Any) -> None:
    exc = tmp_path / "exclusions.json"
    exc.write_text(
        json.dumps(
            [
                {
                    "charger": "C1",
                    "start": T0 + 2 * H,
                    "end": T0 + 3 * H,
                    "cause": "utility_interruption",
                    "by": "ops",
                    "reason": "grid outage, utility ticket 123",
                }
            ]
        )
    )
    argv = ["uptime", "--ledger", str(ledger_path), "--from", str(T0), "--to", str(T0 + 24 * H)]
    assert main([*argv, "--exclusions", str(exc)]) == 0
    out = json.loads(capsys.readouterr().out)
    ports = {p["connector_id"]: p for p in out["ports"]}
    # Port 1: one outage 2h–5h (offline and faulted counted once), 60 min excluded.
    assert (ports["1"]["outage_min"], ports["1"]["excluded_min"]) == (180.0, 60.0)
    assert ports["1"]["uptime_pct"] == pytest.approx((1440 - 120) / 1440 * 100)
    assert ports["1"]["outages"][0]["evidence"]["mrec"] == ["CX002"]
    # Port 2: offline only; its one session delivered nothing and a start failed.
    assert ports["2"]["outage_min"] == 120.0
    assert ports["2"]["driver"]["attempts"] == 2 and ports["2"]["driver"]["success_pct"] == 0.0
    assert out["failures_by_mrec"] == {"CX002": 1}
    assert ports["1"]["driver"]["success_pct"] == 100.0
    assert out["sites"][0]["site"] == "S1"


def test_uptime_csv(ledger_path: Path, capsys: Any) -> None:
    argv = ["uptime", "--ledger", str(ledger_path), "--from", "2024-03-04", "--to", "2024-03-05"]
    assert main([*argv, "--format", "csv"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert [(r["charger_id"], r["connector_id"], r["outage_min"]) for r in rows] == [
        ("C1", "1", "180.0"),
        ("C1", "2", "120.0"),
    ]
    assert rows[0]["failures_by_mrec"] == "CX002=1"


def test_uptime_refuses_an_unlisted_exclusion_cause(
    ledger_path: Path, tmp_path: Path, capsys: Any
) -> None:
    exc = tmp_path / "x.json"
    exc.write_text(json.dumps([{"charger": "C1", "start": 0, "end": 1, "cause": "bad_luck"}]))
    argv = ["uptime", "--ledger", str(ledger_path), "--from", "0", "--to", "100"]
    assert main([*argv, "--exclusions", str(exc)]) == 2
    assert "680.116" in capsys.readouterr().err


def test_get_api_v1_uptime(ledger_path: Path) -> None:
    server = HttpServer("127.0.0.1:0", health=lambda: (True, {}), ready=lambda: (True, {}))
    try:
        with Ledger(ledger_path) as ledger:
            register_routes(server, ledger)
            q = f"from={T0}&to={T0 + 24 * H}"
            status, _, body = server.dispatch("/api/v1/uptime", q, "")
            assert status == 200
            doc = json.loads(body)
            assert [p["outage_min"] for p in doc["ports"]] == [180.0, 120.0]
            assert doc["failures_by_mrec"] == {"CX002": 1}
            status, ctype, body = server.dispatch("/api/v1/uptime", q + "&format=csv", "")
            assert (status, ctype.split(";")[0]) == (200, "text/csv")
            assert body.decode().splitlines()[0].startswith("charger_id,connector_id,")
            status, _, _ = server.dispatch("/api/v1/uptime", "from=nonsense", "")
            assert status == 400
            _, _, body = server.dispatch("/api/v1/uptime", q + "&charger=nope", "")
            assert json.loads(body)["ports"] == []
    finally:
        server.server.server_close()


def test_nevi_quarterly_csv_has_the_fields_680_112_names(ledger_path: Path, capsys: Any) -> None:
    argv = ["uptime", "--ledger", str(ledger_path), "--from", "2024-01-01", "--to", "2024-04-01"]
    assert main([*argv, "--format", "nevi"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    # 680.112(a)(1)-(8): station, port, session start/end/error codes, kWh, peak kW,
    # payment method, monthly uptime with T_outage and T_excluded, outage durations.
    assert {
        "station_id",
        "port_id",
        "session_start",
        "session_end",
        "error_codes",
        "energy_kwh",
        "peak_power_kw",
        "payment_method",
        "uptime_pct",
        "t_outage_min",
        "t_excluded_min",
        "outage_duration_min",
    } <= set(rows[0])
    by = {
        (r["record"], r["port_id"], r["month"] or r["session_start"] or r["outage_start"]): r
        for r in rows
    }
    march = by[("month", "C1/1", "2024-03")]
    assert float(march["t_outage_min"]) == 180.0 and float(march["t_excluded_min"]) == 0.0
    assert float(march["uptime_pct"]) == pytest.approx((44_640 - 180) / 44_640 * 100, abs=1e-4)
    assert float(march["uptime_12m_pct"]) == pytest.approx(
        (525_600 - 180) / 525_600 * 100, abs=1e-4
    )
    assert float(by[("month", "C1/1", "2024-01")]["t_outage_min"]) == 0.0
    s1 = by[("session", "C1/1", "2024-03-04T08:00:00Z")]
    assert (s1["energy_kwh"], s1["peak_power_kw"], s1["error_codes"]) == ("9.0", "11.0", "")
    assert s1["station_id"] == "S1"
    s2 = by[("session", "C1/2", "2024-03-04T10:00:00Z")]
    assert s2["error_codes"] == "NoEnergyDelivered"  # 10 Wh, no error code reported
    out = by[("outage", "C1/1", "2024-03-04T02:00:00Z")]
    assert float(out["outage_duration_min"]) == 180.0


def test_nevi_needs_a_whole_month(ledger_path: Path) -> None:
    argv = ["uptime", "--ledger", str(ledger_path), "--from", "2024-03-04", "--to", "2024-03-05"]
    assert main([*argv, "--format", "nevi"]) == 2
