"""What a user sees of a charger whose clock is five hours behind and that
sends power only (native meter messages): replayed, its charge is one session
in sessions.jsonl, the ledger the sessions API reads, and cdrs.jsonl -- the
same as a right clock's, on the receive clock. Before, each engine step of the
ten minutes its offset took to be confirmed left a zero-length session there
(sessions/session_book.py, doubt_lag)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from chargewatch.collector.replay import replay
from chargewatch.config.fleet_file import load_fleet
from chargewatch.storage.ledger import Ledger, query_sessions

T0 = 1_795_000_000.0
TARIFFS = Path(__file__).resolve().parents[2] / "tariffs"
FLEET = """\
sites:
- id: s1
  timezone: Europe/Amsterdam
  tariff: flat-energy
chargers:
- id: CPB
  site: s1
  connectors: 1
  max_power_w: 11000.0
"""


def _outputs(tmp: Path, offset: float) -> dict[str, list[dict[str, Any]]]:
    """11 kW for an hour, then 0 W for 50 min, a sample every 20 s (no
    register, no status, no transaction), stamped ``offset`` s off."""
    frames = []
    for k in range(330):
        t = T0 + k * 20.0
        payload = {"ts": t + offset, "power_w": 11_000 if k < 180 else 0}
        frames.append((t + 0.2, "ev/CPB/1/meter", json.dumps(payload).encode()))
    (tmp / "fleet.yaml").write_text(FLEET)
    out = tmp / "out"
    replay(frames, out, fleet=load_fleet(tmp / "fleet.yaml"), tariffs=TARIFFS)
    with Ledger(out / "ledger.sqlite") as ledger:
        api = query_sessions(ledger)
    lines = {
        name: [json.loads(x) for x in (out / name).read_text().splitlines()]
        for name in ("sessions.jsonl", "cdrs.jsonl")
    }
    return {**lines, "api": api}


def test_a_power_only_charger_behind_is_one_session_and_one_cdr(tmp_path: Path) -> None:
    (tmp_path / "right").mkdir()
    (tmp_path / "behind").mkdir()
    right = _outputs(tmp_path / "right", 0.0)
    behind = _outputs(tmp_path / "behind", -5 * 3_600.0)
    for name in ("sessions.jsonl", "api", "cdrs.jsonl"):
        assert len(behind[name]) == len(right[name]) == 1, name
    (want,), (got,) = right["api"], behind["api"]
    assert got["energy_wh"] == pytest.approx(want["energy_wh"])
    assert got["clock_offset_s"] == pytest.approx(-5 * 3_600.0 - 0.2)
    assert set(got["quality"]) == {*want["quality"], "clock_corrected", "clock_rebased"}
    assert got["session_id"] == behind["sessions.jsonl"][0]["session_id"]
    (cdr_r,), (cdr_b,) = right["cdrs.jsonl"], behind["cdrs.jsonl"]
    assert cdr_b["total_energy"] == cdr_r["total_energy"]
    assert cdr_b["total_cost"] == cdr_r["total_cost"]
