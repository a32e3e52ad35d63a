"""Blind test: captures of tests/acceptance/gen_blind4.py (MeterValues at 30 s
and 300 s, heartbeats at 300/900 s, DC at 150/350 kW with SoC and offered
power, 2.0.1 chargingState transitions and per-phase registers, registers in
kWh and in the spec default, per-transaction register restarts, two connectors
charging at once, RemoteStart/RemoteStop, an offline charger's queued
MeterValues and StopTransaction, residential overnight stays, connector 0;
and one fault per fault charger) through the same path as `chargewatch
replay`, judged as a user sees them: no page on a clean charger, each fault
alerted with its charger and connector labels within its budget, one session
per transaction with its energy within 1 %, every CDR priced as by hand.

Budget (docs/alerting.md, "Time to detect"): the detector's minimum duration
+ the rule's `for` + 2 sample intervals (none for OCPP error codes, which are
reported, not sampled); for ChargerOffline 2 heartbeat intervals + 30 s from
the last sign of life; plus one rule evaluation (10 s): the docs' bound counts
one group interval, except for ChargerOffline, judged at its deadline off the
group's grid (no evaluation wait). Plus 1 s of transit (gen_blind4 frames arrive 0.1-0.9 s after
the charger sent them).

Not detectable faults (a meter-borne fault with fewer than 3 periodic samples
in its window, docs/evaluation.md "Scoring") are kept as cases that assert
they are n/a, with the sample count, so they are visible, not hidden.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from decimal import ROUND_CEILING, ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

import pytest

from chargewatch.collector.replay import replay
from chargewatch.config.fleet_file import load_fleet
from tests.acceptance.gen_blind4 import fleet, generate

pytestmark = pytest.mark.slow

TARIFFS = Path(__file__).resolve().parents[2] / "tariffs"
PAGES = ("warning", "critical")
EVAL_S = 10.0  # rules/*.yaml group interval
MAX_TRANSIT_S = 1.0
CADENCES = [30, 300]


def _t(s: str) -> datetime:
    return datetime.fromisoformat(s.replace("Z", "+00:00"))


def _jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip()]


def score(truth: dict[str, Any], out: Path) -> dict[str, Any]:
    alerts = [a for a in _jsonl(out / "alerts.jsonl") if a["state"] == "firing"]
    res: dict[str, Any] = {"alerts": alerts, "faults": []}
    for f in truth["faults"]:
        onset = _t(f["onset"])
        hits = sorted(
            _t(a["at"])
            for a in alerts
            if a["alertname"] == f["alert"]
            and a["labels"].get("charger") == f["charger"]
            and a["labels"].get("connector") == f["connector"]
            and _t(a["at"]) >= onset - timedelta(minutes=5)
        )
        res["faults"].append(f | {"ttd_s": (hits[0] - onset).total_seconds() if hits else None})
    behaviour = {c["id"]: c["behaviour"] for c in truth["chargers"]}
    fault_of = {c["id"]: c["fault"] for c in truth["chargers"]}
    expected = {(f["charger"], f["alert"]) for f in truth["faults"]}
    res["false_pages"] = [
        {
            "charger": a["labels"].get("charger"),
            "connector": a["labels"].get("connector"),
            "behaviour": behaviour.get(a["labels"].get("charger", "")),
            "alert": a["alertname"],
            "at": a["at"],
            "clean": fault_of.get(a["labels"].get("charger", "")) is None,
        }
        for a in alerts
        if a["labels"].get("severity") in PAGES
        and (a["labels"].get("charger"), a["alertname"]) not in expected
    ]
    sessions = _jsonl(out / "sessions.jsonl")
    res["sessions"] = sessions
    res["cdrs"] = _jsonl(out / "cdrs.jsonl")
    res["rejected"] = _jsonl(out / "rejected.jsonl")
    res["open"] = _jsonl(out / "open_sessions.jsonl")
    return res


_RUNS: dict[int, tuple[dict[str, Any], dict[str, Any]]] = {}


def _replayed(cadence: int, tmp: pytest.TempPathFactory) -> tuple[dict[str, Any], dict[str, Any]]:
    # Each capture generated and replayed once per test session, whichever test asks.
    if cadence not in _RUNS:
        d = tmp.mktemp(f"blind4-{cadence}")
        truth = generate(d, cadence)
        replay(d / "capture.jsonl", d / "out", fleet=load_fleet(d / "fleet.yaml"), tariffs=TARIFFS)
        _RUNS[cadence] = truth, score(truth, d / "out")
    return _RUNS[cadence]


@pytest.fixture(params=CADENCES, ids=lambda c: f"mv{c}s")
def run(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> tuple[dict[str, Any], dict[str, Any]]:
    return _replayed(request.param, tmp_path_factory)


def _fault_cases() -> list[Any]:
    return [
        pytest.param(c, st.cid, id=f"mv{c}s-{st.fault}")
        for c in CADENCES
        for st in fleet(c)
        if st.fault is not None
    ]


def test_no_page_on_clean_chargers(run: Any) -> None:
    _, res = run
    assert [p for p in res["false_pages"] if p["clean"]] == []


def test_fault_chargers_page_only_for_their_fault(run: Any) -> None:
    _, res = run
    assert [p for p in res["false_pages"] if not p["clean"]] == []


@pytest.mark.parametrize(("cadence", "charger"), _fault_cases())
def test_fault_alerted_with_its_labels_in_budget(
    cadence: int, charger: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    _, res = _replayed(cadence, tmp_path_factory)
    (f,) = [f for f in res["faults"] if f["charger"] == charger]
    if not f["detectable"]:
        # Sampling alone hides it (docs/evaluation.md, "Scoring"): stated, not skipped.
        assert f["fault"] == "phase_loss" and cadence == 300, f
        assert f["not_detectable_why"] == "2 samples in its 480 s window"
        return
    assert f["ttd_s"] is not None, f"{f['alert']} never fired for {charger}/{f['connector']}"
    # ChargerOffline waits for no evaluation: it is judged at its deadline.
    wait = 0.0 if f["alert"] == "ChargerOffline" else EVAL_S
    assert f["ttd_s"] <= f["budget_s"] + wait + MAX_TRANSIT_S, f


def test_residential_overnight_pages_nobody_public_gets_info(run: Any) -> None:
    # docs/alerting.md "Site kinds": IdleBlocking is silent on residential
    # sites; the same 3 h 45 min stay on a public site is IdleBlocking (info).
    _, res = run
    idle = {a["labels"]["charger"]: a for a in res["alerts"] if a["alertname"] == "IdleBlocking"}
    assert "B4-HOME16" not in idle
    assert idle["B4-PUBIDLE"]["labels"]["severity"] == "info"
    home = [a for a in res["alerts"] if a["labels"].get("charger") == "B4-HOME16"]
    assert home == []


def test_one_session_per_transaction_with_its_energy(run: Any) -> None:
    truth, res = run
    seen: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for s in res["sessions"]:
        seen.setdefault((s["charger_id"], str(s["transaction_id"])), []).append(s)
    errors: list[dict[str, Any]] = []
    for ts in truth["sessions"]:
        got = seen.pop((ts["charger"], ts["transaction_id"]), [])
        if len(got) != 1:
            errors.append({"truth": ts, "got": len(got)})
            continue
        s = got[0]
        if s["connector_id"] != ts["connector"]:
            errors.append({"truth": ts, "connector": s["connector_id"]})
        # The meter's own account (meterStop - meterStart, whole Wh) is the
        # bill; the true flow differs from it only by the register's rounding.
        if ts["true_wh"] is not None:
            billed = ts["meter_stop_wh"] - ts["meter_start_wh"]
            if abs(s["energy_wh"] - billed) > 0.01 * billed:
                errors.append({"truth": ts, "energy_wh": s["energy_wh"], "billed": billed})
    errors += [{"phantom": x} for v in seen.values() for x in v]
    assert errors == []
    assert res["open"] == []


def test_queued_stop_billed_once_and_late(run: Any) -> None:
    # B4-QUEUE16 was offline 15 min; its MeterValues and StopTransaction came
    # after it reconnected: billed once, to its own stop time, marked late.
    truth, res = run
    (ts,) = [s for s in truth["sessions"] if s["charger"] == "B4-QUEUE16"]
    (s,) = [s for s in res["sessions"] if s["charger_id"] == "B4-QUEUE16"]
    assert _t(s["stop"]) == _t(ts["stop"])
    assert s["energy_wh"] == ts["meter_stop_wh"] - ts["meter_start_wh"]
    assert "late_data" in s["quality"]
    assert [c["session_id"] for c in res["cdrs"]].count(s["session_id"]) == 1


@pytest.mark.parametrize("cadence", CADENCES, ids=lambda c: f"mv{c}s")
def test_every_cdr_priced_by_hand(cadence: int, tmp_path_factory: pytest.TempPathFactory) -> None:
    # tariffs/flat_energy.json: 0.35 EUR/kWh excl. 21 % VAT, 1 Wh steps rounded
    # up; computed from the meter's own meterStop - meterStart (whole Wh).
    truth, res = _replayed(cadence, tmp_path_factory)
    sid = {(s["charger_id"], str(s["transaction_id"])): s["session_id"] for s in res["sessions"]}
    cdr = {c["session_id"]: c for c in res["cdrs"]}
    assert len(cdr) == len(res["cdrs"]) == len(res["sessions"])
    q = Decimal("0.0001")
    wrong = []
    for ts in truth["sessions"]:
        if ts["true_wh"] is None:
            continue  # the regression's session: its energy is the engine's call
        c = cdr[sid[ts["charger"], ts["transaction_id"]]]
        wh = Decimal(ts["meter_stop_wh"] - ts["meter_start_wh"])
        excl = (wh.to_integral_value(ROUND_CEILING) / 1000 * Decimal("0.35")).quantize(
            q, ROUND_HALF_UP
        )
        incl = (wh / 1000 * Decimal("0.35") * Decimal("1.21")).quantize(q, ROUND_HALF_UP)
        got = (Decimal(str(c["total_cost"]["excl_vat"])), Decimal(str(c["total_cost"]["incl_vat"])))
        if got != (excl, incl):
            wrong.append((ts["charger"], ts["transaction_id"], str(wh), got, (excl, incl)))
    assert wrong == []


def test_nothing_good_rejected(run: Any) -> None:
    _, res = run
    assert [(r["reason"], r.get("detail")) for r in res["rejected"]] == []
