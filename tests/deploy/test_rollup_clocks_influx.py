"""What the NOC sees for chargers whose clocks are off: the dashboards' own
queries (Fleet overview, the Charger detail pickers) against a real InfluxDB
holding what the collector wrote for a charger 2 h ahead, one 5 h behind and
one right (tests/collector/test_rollup_clocks.py; docs/sessions.md, "Charger
clocks that are off")."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.collector.test_rollup_clocks import OFFSETS, POWER_W, T0, _collector, _crash, _run
from tests.services import InfluxDB

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
DB = "cw_rollup_clocks"
# Minutes after the clock behind was confirmed (its first ten are late).
FROM_MIN, TO_MIN = 12, 20


def _query(dashboard: str, title: str) -> str:
    dash = json.loads((ROOT / "dashboards" / f"{dashboard}.json").read_text())
    for p in dash["panels"]:
        if p["title"] == title:
            return str(p["targets"][0]["query"])
    for v in dash["templating"]["list"]:
        if v["name"] == title:
            return str(v["query"])
    raise KeyError(title)


def _fill(query: str, charger: str = "") -> str:
    subs = {
        "$timeFilter": f"time >= {int((T0 + FROM_MIN * 60) * 1000)}ms "
        f"AND time < {int((T0 + TO_MIN * 60) * 1000)}ms",
        "$site": "s",
        "$charger": charger,
    }
    for key in sorted(subs, key=len, reverse=True):
        query = query.replace(key, subs[key])
    return query


def _values(influxdb: InfluxDB, q: str) -> list[list[Any]]:
    return [row for s in influxdb.query(q, DB) for row in s.get("values", [])]


@pytest.fixture(scope="module")
def loaded(influxdb: InfluxDB, tmp_path_factory: pytest.TempPathFactory) -> None:
    data = tmp_path_factory.mktemp("clocks")
    c = _collector(data)
    try:
        _run(c, range(0, TO_MIN + 1))
        c.pipeline.tick(T0 + (TO_MIN + 1) * 60 + 30)
        assert c.linefile is not None
        c.linefile.flush()
    finally:
        _crash(c)
    schema = (ROOT / "deploy/influxdb/init/01-chargewatch.iql").read_text()
    influxdb.query(schema.replace('"chargewatch"', f'"{DB}"'))
    lines = (data / "lines.lp").read_text().splitlines()
    rolled = [ln for ln in lines if ln.startswith(("meter_1m,", "site_1m,"))]
    for rp, part in (
        ("", [ln for ln in lines if ln.startswith("meter,")]),
        ("downsampled", rolled),
    ):
        params = {"db": DB, "precision": "ms"} | ({"rp": rp} if rp else {})
        r = httpx.post(
            f"{influxdb.url}/write", params=params, content="\n".join(part).encode(), timeout=60
        )
        assert r.status_code == 204, r.text


def test_the_fleet_overview_counts_every_charger(influxdb: InfluxDB, loaded: None) -> None:
    power = _values(influxdb, _fill(_query("fleet-overview", "Fleet power")))
    assert [kw for _, kw in power] == [sum(POWER_W.values()) / 1000] * (TO_MIN - FROM_MIN)
    charging = _values(influxdb, _fill(_query("fleet-overview", "Connectors charging")))
    assert {n for _, n in charging} == {len(OFFSETS)}
    online = _values(influxdb, _fill(_query("fleet-overview", "Online share")))
    assert {share for _, share in online} == {100.0}


def test_the_charger_detail_pickers_list_every_charger(influxdb: InfluxDB, loaded: None) -> None:
    chargers = {v for _, v in _values(influxdb, _fill(_query("charger-detail", "charger")))}
    assert chargers == set(OFFSETS)
    for charger in OFFSETS:
        conns = _values(influxdb, _fill(_query("charger-detail", "connector"), charger))
        assert [v for _, v in conns] == ["1"], charger
