"""`chargewatch demo` runs end to end on the embedded broker and tells its story in one folder."""

from __future__ import annotations

import itertools
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

import orjson
import pytest

from chargewatch.cli import build_parser, main
from chargewatch.cli.demo_story import UNPRICED_TARIFF
from chargewatch.storage.ledger import Ledger, query_cdrs, query_sessions, query_unpriced

if TYPE_CHECKING:
    from chargewatch.model.fleet import Fleet
    from chargewatch.simulator import Simulation
    from chargewatch.simulator.plan import Session


def test_demo_runs_and_writes_its_folder(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "demo"
    # A fixed start: which sessions end within the hour depends on the hour of
    # day (test_demo_story_is_told_whatever_hour_it_starts tries nine).
    args = ["demo", "--duration", "60", "--chargers", "12", "--data-dir", str(data)]
    assert main([*args, "--start", "2026-12-07T12:00:00Z"]) == 0
    for name in ("fleet.yaml", "truth.jsonl", "meter.lp", "rejected.jsonl", "demo.log"):
        assert (data / name).exists(), name
    lines = (data / "meter.lp").read_text().splitlines()
    measurements = {line.split(",", 1)[0] for line in lines}
    assert "meter" in measurements, "the demo stored no meter samples"
    with Ledger(data / "ledger.sqlite") as ledger:
        rows = ledger.db.execute("SELECT state, alertname, at FROM alert_transitions").fetchall()
        cdrs = query_cdrs(ledger)
        unpriced = query_unpriced(ledger)
    fired = {name for state, name, _ in rows if state == "firing"}
    resolved = {name for state, name, _ in rows if state == "resolved"}
    assert len(fired & resolved) >= 3, rows
    # The story runs on simulated time (60x): the shipped rules' `for:` of
    # minutes, their remediation delays and 10-minute cooldowns all fit in the
    # wall minute, with no copy of the rules to shorten them.
    assert not (data / "rules").exists()
    times = [at for _, _, at in rows]
    assert max(times) - min(times) > 20 * 60, "alerts spanned less than 20 simulated minutes"
    # Sessions started and finished inside the run and were priced; some were not.
    assert [c for c in cdrs if c["total_cost"]["excl_vat"] > 0], cdrs
    assert unpriced, "no unpriced session showed"
    out = capsys.readouterr().out
    assert "auto-remediated" in out and "escalated" in out
    assert "(60x)" in out and "simulated 0:" not in out, "less than a simulated hour"
    # The summary counts every line of rejected.jsonl, session rejections too.
    rejected = [orjson.loads(x) for x in (data / "rejected.jsonl").read_bytes().splitlines()]
    assert f"{len(rejected):,} rejected" in out
    assert "report.html" in out
    # A second run starts clean: nothing left from the first.
    assert main(["demo", "--duration", "2", "--chargers", "4", "--data-dir", str(data)]) == 0
    with Ledger(data / "ledger.sqlite") as ledger:
        assert ledger.db.execute("SELECT count(*) FROM alert_transitions").fetchone()[0] == 0


def test_demo_start_must_be_rfc3339_with_an_offset(tmp_path: Path) -> None:
    for bad in ("noon", "2026-12-07T12:00:00"):
        with pytest.raises(SystemExit):
            main(["demo", "--duration", "1", "--start", bad, "--data-dir", str(tmp_path / "d")])
    assert not (tmp_path / "d").exists()


def test_demo_refuses_a_folder_it_did_not_write(tmp_path: Path) -> None:
    (tmp_path / "mine.txt").write_text("keep me")
    assert main(["demo", "--duration", "1", "--data-dir", str(tmp_path)]) == 2
    assert (tmp_path / "mine.txt").exists()


def _story(at: str) -> tuple[float, float, Simulation, Fleet]:
    """The demo's plan and fleet for ``--duration 60 --chargers 12`` started at ``at`` UTC."""
    from chargewatch.cli.demo import sim_config, story_simulation, story_until  # noqa: PLC0415

    start = datetime.fromisoformat(f"2026-12-07T{at}:00+00:00").timestamp()
    args = build_parser().parse_args(["demo", "--duration", "60", "--chargers", "12"])
    until = story_until(args, start)
    sim, fleet = story_simulation(sim_config(args, start), until)
    return start, until, sim, fleet


def test_demo_top_ups_find_connectors_at_a_busy_hour() -> None:
    # From 18:50 UTC every AC connector without a fault held or expected a car
    # within the hour: top-ups wanted a connector idle all hour and got none.
    _, _, sim, _ = _story("18:50")
    top_ups = [s for s in sim.plan.sessions if "top_up" in s.tags]
    assert len(top_ups) >= 3, [s.conn.charger for s in top_ups]
    faulted = {f.charger for f in sim.plan.faults}
    assert not faulted & {s.conn.charger for s in top_ups}
    # Planned drivers the top-ups replace are gone: one car per connector at a time.
    by_row: dict[int, list[Session]] = {}
    for s in sim.plan.sessions:
        by_row.setdefault(s.conn.idx, []).append(s)
    for row in by_row.values():
        row.sort(key=lambda s: s.plug_in)
        assert all(a.unplug < b.plug_in for a, b in itertools.pairwise(row)), row
    # The messages come from the changed plan.
    starts = {e.session.transaction_id for e in sim.events if e.kind == "tx_start" and e.session}
    assert {s.transaction_id for s in top_ups} <= starts


@pytest.mark.parametrize(
    "at", ["00:00", "06:00", "09:00", "12:00", "15:00", "18:00", "18:50", "21:00", "23:30"]
)
def test_demo_story_is_told_whatever_hour_it_starts(at: str, tmp_path: Path) -> None:
    """The demo's hour through the collector's pipeline, offline (replay; the
    broker and the 60x clock are test_demo_runs_and_writes_its_folder's):
    every session the plan stops before the story's end is recorded, top-ups
    among them, some priced and some unpriced. At 15:00 every session ending
    in the hour was on a priced charger; from 18:50 there was no top-up, and
    the stop of a session under way at the start, the first event naming its
    transaction, was rejected (stop_without_session): 3 sessions, none
    unpriced."""
    from chargewatch.collector.replay import replay  # noqa: PLC0415
    from chargewatch.core.resources import default_dir  # noqa: PLC0415

    start, until, sim, fleet = _story(at)
    ending = [s for s in sim.plan.sessions if start < s.stop < until]
    chargers = {s.conn.charger for s in ending}
    unpriced_chargers = {c for c in chargers if fleet.chargers[c].tariff == UNPRICED_TARIFF}
    assert unpriced_chargers and unpriced_chargers < chargers, (at, chargers)
    result = replay(
        sim.messages(start, start + 3600.0),
        tmp_path,
        fleet=fleet,
        tariffs=default_dir("tariffs"),
        unknown_tariffs="warn",
    )
    assert result.stats.rejected_by_reason == {}
    with Ledger(tmp_path / "ledger.sqlite") as ledger:
        recorded = {s["transaction_id"] for s in query_sessions(ledger, periods=False)}
        cdrs = query_cdrs(ledger)
        unpriced = query_unpriced(ledger)
    assert {str(s.transaction_id) for s in ending} <= recorded, (at, recorded)
    assert sum("top_up" in s.tags for s in ending) >= 3
    assert [c for c in cdrs if c["total_cost"]["excl_vat"] > 0], cdrs
    assert unpriced_chargers <= {u["charger_id"] for u in unpriced}, unpriced
