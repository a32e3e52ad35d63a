"""``chargewatch ledger migrate``: a whole ledger copied between backends, both ways."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from chargewatch.cli import main
from chargewatch.storage.exclusions import list_exclusions, tag_exclusion
from chargewatch.storage.ledger import Ledger, query_cdrs, query_sessions, query_unpriced
from chargewatch.storage.ledger_copy import row_counts
from tests.billing.test_ledger import records
from tests.services import free_port


def fill(location: str) -> None:
    """A row in every table: sessions with periods and readings, CDRs with their
    history, an unpriced session, alerts, checkpoints, journals, a handover part,
    an uptime exclusion with its audit, a port status change."""
    recs = records(3)
    with Ledger(location, collector_id="east") as led:
        led.write(recs, written_at=1.0)
        cdr = {"total_cost": {"excl_vat": "1.50", "incl_vat": "1.79"}, "currency": "EUR"}
        cdr |= {"total_energy": "3.5", "tariffs": [{"id": "t1"}], "id": "cdr-1"}
        r = recs[0]
        led.write_cdr(session_id=r.session_id, charger_id=r.charger_id, site=r.site,
                      start=r.start, cdr=cdr, written_at=2.0)  # fmt: skip
        led.record_cdr_history(cdr_id="cdr-1", session_id=r.session_id, kind="issued",
                               revision=0, at=2.0, cdr=cdr)  # fmt: skip
        u = recs[1]
        led.mark_unpriced(session_id=u.session_id, charger_id=u.charger_id, site=u.site,
                          start=u.start, reason="no tariff", at=3.0)  # fmt: skip
        led.write_alert_transitions(
            [{"at": 4.0, "state": "firing", "alertname": "Offline", "labels": {"charger": "CP0"}}]
        )
        led.save_state({"sessions": [], "nan": float("nan")}, at=5.0)
        led.journal_append([("StatusEvent", '{"charger": "CP0"}')] * 3)
        led.handover_put("fleet_state", {"chargers": {"CP1": {}}}, at=6.0)
        tag_exclusion(led, charger="CP0", connector="1", start=10.0, end=20.0,
                      cause="utility_interruption", by="ops", reason="grid", at=7.0)  # fmt: skip
        led.write_port_status([["CP0", 1, "Faulted", "GroundFailure", 8.0]], now=8.0)


def content(location: str) -> dict[str, Any]:
    """What a user reads back: the API's queries and the resume state."""
    with Ledger(location, collector_id="east") as led:
        return {
            "sessions": query_sessions(led),
            "cdrs": query_cdrs(led),
            "history": query_cdrs(led, history=True),
            "unpriced": query_unpriced(led),
            "state": json.dumps(led.load_state()),
            "journal": led.journal(),
            "exclusions": list_exclusions(led),
            "counts": row_counts(led),
            "version": led.version,
        }


def migrate(src: str, dst: str, *extra: str) -> int:
    return main(["ledger", "migrate", "--from", src, "--to", dst, *extra])


def test_sqlite_to_postgresql_and_back(
    ledger_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = str(tmp_path / "src.sqlite")
    fill(src)
    want = content(src)
    assert all(want["counts"].values())  # every table has rows to copy
    assert migrate(src, ledger_url) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["verified"] and summary["schema_version"] == want["version"]
    assert content(ledger_url) == want
    # Ids continue after the copied ones: the next journal row is not a duplicate key.
    with Ledger(ledger_url, collector_id="east") as led:
        led.journal_append([("StatusEvent", '{"charger": "CP9"}')])
        assert len(led.journal()) == 4
    back = str(tmp_path / "back.sqlite")
    assert migrate(ledger_url, back) == 0
    assert content(back)["sessions"] == want["sessions"]
    assert content(back)["counts"]["session_journal"] == 4


def test_a_target_with_rows_is_refused_unless_forced(
    ledger_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = str(tmp_path / "src.sqlite")
    fill(src)
    with Ledger(ledger_url) as led:
        led.save_state({"other": True}, at=1.0)
    assert migrate(src, ledger_url) == 1
    assert "not empty" in capsys.readouterr().err
    with Ledger(ledger_url) as led:  # refused: nothing written
        assert led.load_state() == {"other": True} and row_counts(led)["sessions"] == 0
    assert migrate(src, ledger_url, "--force") == 0
    assert content(ledger_url) == content(src)


def test_a_missing_source_is_an_error(tmp_path: Path) -> None:
    assert migrate(str(tmp_path / "none.sqlite"), str(tmp_path / "t.sqlite")) == 2
    assert not (tmp_path / "t.sqlite").exists()


def test_an_unreachable_server_is_said_plainly(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = str(tmp_path / "src.sqlite")
    fill(src)
    dead = f"postgresql://cw:secret@127.0.0.1:{free_port()}/none?connect_timeout=2"
    assert migrate(src, dead) == 1
    err = capsys.readouterr().err
    assert "chargewatch ledger migrate:" in err and "secret" not in err
