"""A reloaded fleet keeps connector ids and rewrites what each connector is."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from chargewatch.alerting import AlertEngine
from chargewatch.model.fleet import ChargerSpec, ConnectorIndex, Fleet, SiteSpec

RULE = """\
groups:
- name: g
  rules:
  - alert: Big
    expr: 'max_power_w > 20000'
"""


def _fleet(power: float, site: str, *extra: str) -> Fleet:
    chargers = {"A": ChargerSpec("A", site=site, max_power_w=power)}
    chargers |= {c: ChargerSpec(c, site="s2") for c in extra}
    return Fleet({"s1": SiteSpec("s1"), "s2": SiteSpec("s2", kind="depot")}, chargers)


def test_refit_keeps_ids_rewrites_columns_and_adds_connectors() -> None:
    index = ConnectorIndex(_fleet(11_000, "s1"))
    index.id("UNKNOWN", 1)  # seen on the wire, not in the inventory
    before = index.generation
    index.refit(_fleet(50_000, "s2", "B"))
    assert index.keys[:2] == [("A", 1), ("UNKNOWN", 1)]
    assert index.get("B", 1) == 2
    assert index.max_power_w[0] == 50_000
    assert index.site_of(0) == "s2"
    assert not index.known[1] and index.known[2]
    assert index.generation == before + 1


def test_alert_labels_follow_a_reloaded_fleet(tmp_path: Path) -> None:
    (tmp_path / "r.yaml").write_text(RULE)
    index = ConnectorIndex(_fleet(11_000, "s1"))
    engine = AlertEngine(tmp_path, index)
    assert engine.evaluate(0.0, {"status": np.array(["Available"], dtype=object)}) == []
    index.refit(_fleet(50_000, "s2"))
    # The engine's cached inventory columns are rebuilt for the new generation.
    fired = engine.evaluate(100.0, {"status": np.array(["Available"], dtype=object)})
    assert [t.labels["site"] for t in fired if t.state == "firing"] == ["s2"]
