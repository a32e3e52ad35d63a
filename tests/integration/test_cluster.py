"""Dynamic partitions with the real engines (docs/scaling.md): PostgreSQL leases,
per-partition MQTT persistent sessions on Mosquitto, three ``chargewatch run``
collectors, a fleet charging at QoS 1.

One collector is SIGKILLed in the middle of sessions, holding a firing alert.
The others take its partitions over within the lease time, resume its open
sessions from the ledger and the broker's queues, and keep the alert firing
without paging it again. A fourth collector then joins and takes its share
from the others, and sessions go on across the move. Checked at the end: every
session once with the publisher's energy, one CDR each, every meter sample in
InfluxDB (a sample may be missing only if the killed collector had acknowledged
it and held it in its writer's buffer), the alert fired once and never resolved.
"""

from __future__ import annotations

import json
import signal
import time
import uuid
import zlib
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from tests.integration.test_crash import RULES, Fleet, am_alert, collector, is_active, wait_for
from tests.services import Alertmanager, InfluxDB, Mosquitto, PostgreSQL, free_port

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
N = 6  # partitions
LEASE_S = 3.0  # takeover within 4/3 of it after the last renewal
CHARGERS = 12


@pytest.fixture
def pg_url(postgresql: PostgreSQL) -> Iterator[str]:
    name = f"cluster_{uuid.uuid4().hex[:10]}"
    yield postgresql.create_db(name)
    postgresql.drop_db(name)


def owners(url: str) -> dict[int, str]:
    with psycopg.connect(url, autocommit=True) as conn:
        if not conn.execute("SELECT to_regclass('partition_leases')").fetchone()[0]:  # type: ignore[index]
            return {}  # no collector has started yet
        rows = conn.execute(
            "SELECT partition, CASE WHEN expires_at > extract(epoch FROM clock_timestamp())"
            " THEN owner ELSE '' END FROM partition_leases ORDER BY partition"
        ).fetchall()
    return {int(p): str(o) for p, o in rows}


def test_sigkill_takeover_and_join_lose_nothing(
    tmp_path: Path,
    mosquitto: Mosquitto,
    alertmanager: Alertmanager,
    influxdb: InfluxDB,
    pg_url: str,
) -> None:
    tag = uuid.uuid4().hex[:6]
    db_name = f"cluster_{tag}"
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "crash.yaml").write_text(RULES)
    chargers = [f"CR{n}-{tag}" for n in range(1, CHARGERS + 1)]
    (tmp_path / "fleet.yaml").write_text(
        "sites: [{id: depot, timezone: Europe/Amsterdam, tariff: flat-energy}]\n"
        "chargers:\n"
        + "".join(
            f"  - {{id: {c}, site: depot, connectors: 1, max_power_w: 22000}}\n" for c in chargers
        )
    )
    names = ("a", "b", "c", "d")
    ports = {n: free_port() for n in names}
    configs: dict[str, Path] = {}
    for name in names:
        d = tmp_path / name
        d.mkdir()
        configs[name] = d / "chargewatch.yaml"
        configs[name].write_text(
            f"collector_id: {name}\ndata_dir: data\n"
            f"ledger:\n  url: {pg_url}\n"
            f"cluster:\n  partitions: {N}\n  lease_s: {LEASE_S}\n  session_prefix: cw-{tag}\n"
            "mqtt:\n  host: 127.0.0.1\n  port: 1\n"
            f"http:\n  listen: 127.0.0.1:{ports[name]}\n  token: tok\n"
            f"influx:\n  url: {influxdb.url}\n  database: {db_name}\n  flush_interval_s: 0.5\n"
            f"fleet: {tmp_path / 'fleet.yaml'}\ntariffs: {ROOT / 'tariffs'}\n"
            f"rules: {tmp_path / 'rules'}\n"
            f"alerting:\n  alertmanager: [{alertmanager.url}]\n  resend_delay_s: 1\n  log: false\n"
            "pipeline:\n  tick_interval_s: 0.2\n"
        )

    def api(name: str) -> httpx.Client:
        return httpx.Client(
            base_url=f"http://127.0.0.1:{ports[name]}", headers={"Authorization": "Bearer tok"}
        )

    def balanced(live: set[str]) -> Callable[[], dict[int, str] | None]:
        share = -(-N // len(live))

        def check() -> dict[int, str] | None:
            got = owners(pg_url)
            held = list(got.values())
            ok = set(held) == live and all(held.count(n) <= share for n in live)
            return got if ok else None

        return check

    def part(charger: str) -> int:
        return zlib.crc32(charger.encode()) % N

    with Fleet(mosquitto.port, tag) as fleet, ExitStack() as stack:
        c = fleet.charger
        procs = {n: stack.enter_context(collector(configs[n], mosquitto.port)) for n in "abc"}
        before = wait_for(balanced({"a", "b", "c"}), 60, "three collectors to share the partitions")
        # Sessions on most chargers; a ground fault on one.
        faulted = c(CHARGERS)
        for n in range(1, CHARGERS):
            fleet.start_session(c(n), f"T1-{n}-{tag}")
        fleet.status(faulted, "Faulted", "GroundFailure")
        ground = wait_for(
            lambda: is_active(a := am_alert(alertmanager, "CrashGroundFault", faulted)) and a,
            30,
            "the ground fault to fire",
        )
        time.sleep(2.0)
        # The victim: whoever owns the faulted charger. Half its sessions end
        # just before the kill (newer than any periodic checkpoint).
        victim = before[part(faulted)]
        theirs = [n for n in range(1, CHARGERS) if before[part(c(n))] == victim]
        for n in theirs[::2]:
            fleet.stop_session(c(n))
        time.sleep(0.5)
        procs[victim].send_signal(signal.SIGKILL)
        killed_at = time.time()
        procs[victim].wait(10)
        live = {"a", "b", "c"} - {victim}
        after = wait_for(balanced(live), 30, "the survivors to take the victim's partitions")
        takeover_s = time.time() - killed_at
        assert takeover_s <= 4 / 3 * LEASE_S + 3.0, takeover_s
        # Sessions go on at their new owners; the others end later.
        time.sleep(3.0)
        for n in theirs[1::2]:
            fleet.stop_session(c(n))
        # A fourth collector joins: it takes its share, given back cleanly.
        procs["d"] = stack.enter_context(collector(configs["d"], mosquitto.port))
        joined = wait_for(balanced(live | {"d"}), 60, "the partitions to rebalance to d")
        time.sleep(3.0)
        for n in range(1, CHARGERS):
            if n not in theirs:
                fleet.stop_session(c(n))
        # A second session on every charger, across the new owners.
        for n in range(1, CHARGERS):
            fleet.start_session(c(n), f"T2-{n}-{tag}")
        time.sleep(3.0)
        for n in range(1, CHARGERS):
            fleet.stop_session(c(n))
        want = set(fleet.truth)
        reader = api("d")

        def all_sessions() -> list[dict[str, Any]] | None:
            got: list[dict[str, Any]] = reader.get("/api/v1/sessions").json()["sessions"]
            return got if {r["transaction_id"] for r in got} >= want else None

        try:
            rows = wait_for(all_sessions, 60, "every session in the ledger")
        except AssertionError:
            seen = {r["transaction_id"] for r in reader.get("/api/v1/sessions").json()["sessions"]}
            raise AssertionError(
                f"sessions missing from the ledger: {sorted(want - seen)}"
            ) from None
        history = wait_for(
            lambda: (
                (x := reader.get("/api/v1/cdrs", params={"history": "1"}).json())
                and len(x["cdrs"]) >= len(want)
                and x["cdrs"]
            ),
            60,
            "a CDR for every session",
        )
        time.sleep(3.0)  # a few resend intervals: a re-page or resolve would show now
        ground_after = am_alert(alertmanager, "CrashGroundFault", faulted)
        for n in live | {"d"}:
            assert procs[n].poll() is None, f"collector {n} exited"

    print(
        f"\ntakeover after SIGKILL: {takeover_s:.1f} s (lease {LEASE_S} s); owners "
        f"before {before}, after {after}, joined {joined}"
    )
    assert sorted(r["transaction_id"] for r in rows) == sorted(want)
    for r in rows:
        assert r["energy_wh"] == pytest.approx(fleet.truth[r["transaction_id"]], abs=0.01), r
    assert sorted(h["session_id"] for h in history) == sorted(r["session_id"] for r in rows)
    assert not any(h.get("credit") for h in history)
    # The fault kept firing across the kill with its first startsAt, paged once.
    assert is_active(ground_after) and ground_after is not None
    assert ground_after["startsAt"] == ground["startsAt"]
    with psycopg.connect(pg_url, autocommit=True) as conn:
        transitions = [
            (name, state, json.loads(labels)["charger"])
            for name, state, labels in conn.execute(
                "SELECT alertname, state, labels FROM alert_transitions"
            )
        ]
        sessions = conn.execute("SELECT COUNT(*), COUNT(DISTINCT session_id) FROM sessions")
        assert tuple(sessions.fetchone() or ()) == (len(want), len(want))
        cdr_rows = conn.execute("SELECT COUNT(*) FROM cdr_history").fetchone()
        assert cdr_rows is not None and cdr_rows[0] == len(want)
    assert transitions == [("CrashGroundFault", "firing", faulted)], transitions
    # Every meter sample in InfluxDB, but what the victim acknowledged and still
    # held in its writer's buffer (flush_interval_s) at the kill.
    stored: set[tuple[str, int]] = set()
    for series in influxdb.query("SELECT energy_wh FROM meter GROUP BY charger", db_name):
        charger = series["tags"]["charger"]  # type: ignore[index]
        stored |= {(charger, int(t)) for t, _ in series["values"]}  # type: ignore[attr-defined]
    missing = sorted(fleet.samples[k] for k in fleet.samples.keys() - stored)
    assert all(at < killed_at for at in missing), "a sample published after the kill was lost"
    print(f"loss window: {len(missing)} of {len(fleet.samples)} meter samples")
