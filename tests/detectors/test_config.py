from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from chargewatch.core.errors import ConfigError
from chargewatch.core.yamlsrc import load_yaml
from chargewatch.detectors import DetectorConfig, DetectorSet
from chargewatch.detectors.docs import render
from chargewatch.detectors.params import OverTemperatureParams, validate
from chargewatch.model.batch import FIELD_INDEX, MeterBatch
from chargewatch.model.fleet import ChargerSpec, ConnectorIndex, Fleet

from .helpers import charging


def test_bad_parameter_is_named() -> None:
    with pytest.raises(ValueError, match=r"over_temperature\.level_c"):
        validate("over_temperature", OverTemperatureParams(level_c=float("nan")))
    with pytest.raises(ValueError, match=r"over_temperature\.clear_c"):
        DetectorConfig(defaults={"over_temperature": {"level_c": 60.0}})
    with pytest.raises(ValueError, match=r"idle_blocking\.grace_s"):
        DetectorConfig(sites={"x": {"idle_blocking": {"grace_s": -1.0}}})


def test_from_mapping_reports_file_line_key_path() -> None:
    text = """\
defaults:
  over_temperature: {level_c: 80, clear_c: 75}
  meter_stuk: {}
sites:
  north:
    idle_blocking: {grace_s: "long"}
models:
  DC150:
    over_current: {tolerence: 0.2}
"""
    src = load_yaml("det.yaml", text=text)
    with pytest.raises(ConfigError) as err:
        DetectorConfig.from_mapping(src.data, src.file, src)
    msg = str(err.value)
    assert "det.yaml:3:3: defaults.meter_stuk: unknown key" in msg
    assert "sites.north.idle_blocking.grace_s: expected a number" in msg
    assert "models.DC150.over_current.tolerence: unknown key" in msg


def test_model_override_beats_site_and_applies_per_connector() -> None:
    cfg = DetectorConfig.from_mapping(
        {
            "sites": {"s": {"over_temperature": {"level_c": 85, "clear_c": 80}}},
            "models": {"hot": {"over_temperature": {"level_c": 95, "clear_c": 90}}},
        }
    )
    fleet = Fleet(
        {},
        {
            "A": ChargerSpec("A", site="s"),
            "B": ChargerSpec("B", site="s", model="hot"),
            "C": ChargerSpec("C", site="t"),
        },
    )
    idx = ConnectorIndex(fleet)
    ds = DetectorSet(cfg, faults=["over_temperature"])
    b = charging(3)
    ds.update(b, [], idx, float(b.recv[-1]))
    np.testing.assert_array_equal(ds.detectors["over_temperature"].p["level_c"][:3], [85, 95, 75])


def test_parameters_grown_in_steps_equal_those_resolved_at_once() -> None:
    """Connectors arrive a few at a time; uniform parameters stay broadcasts until
    an override appears, and every connector keeps its site's and model's value."""
    cfg = DetectorConfig.from_mapping(
        {
            "sites": {"s": {"over_temperature": {"level_c": 85, "clear_c": 80}}},
            "models": {"hot": {"over_temperature": {"level_c": 95, "clear_c": 90}}},
        }
    )
    specs = {f"U{k}": ChargerSpec(f"U{k}", site="t") for k in range(4)}
    specs |= {"A": ChargerSpec("A", site="s"), "B": ChargerSpec("B", site="s", model="hot")}
    idx = ConnectorIndex(Fleet({}, specs))
    assert [idx.charger_of(c) for c in range(len(idx))] == ["U0", "U1", "U2", "U3", "A", "B"]
    idx.id("C", 1)  # not in the inventory
    stepped = DetectorSet(cfg).detectors["over_temperature"]
    for n in range(1, 8):
        stepped.ensure(idx, n)
        if n <= 4:  # still one value fleet-wide: a broadcast, no memory per connector
            assert not stepped.p["level_c"].flags.writeable
    at_once = DetectorSet(cfg).detectors["over_temperature"]
    at_once.ensure(idx, len(idx))
    for name in at_once.p:
        np.testing.assert_array_equal(stepped.p[name][:7], at_once.p[name][:7])
    np.testing.assert_array_equal(stepped.p["level_c"][:7], [75, 75, 75, 75, 85, 95, 75])


def test_docs_are_generated_from_the_code() -> None:
    doc = Path(__file__).parents[2] / "docs" / "detectors.md"
    assert doc.read_text(encoding="utf-8") == render(), (
        "docs/detectors.md is stale: PYTHONPATH=. python -m chargewatch.detectors.docs "
        "> docs/detectors.md"
    )


def test_per_connector_thresholds_apply_row_by_row() -> None:
    # Uniform parameters are used as scalars; overridden ones are gathered per
    # row. Three connectors at 80 C: only the one whose level is below fires.
    cfg = DetectorConfig(
        sites={
            "hot": {"over_temperature": {"level_c": 85, "clear_c": 80}},
            "cool": {"over_temperature": {"level_c": 70, "clear_c": 65, "rate_floor_c": 40}},
        }
    )
    fleet = Fleet(
        {},
        {
            "A": ChargerSpec("A", site="hot"),
            "B": ChargerSpec("B", site="cool"),
            "C": ChargerSpec("C", site="hot"),
        },
    )
    idx = ConnectorIndex(fleet)
    rows = [charging(30, conn=c) for c in range(3)]
    for b in rows:
        b.values[:, FIELD_INDEX["temperature_c"]] = 80.0
    ds = DetectorSet(cfg, faults=["over_temperature"])
    batch = MeterBatch.concat(rows)
    ds.update(batch, [], idx, float(batch.recv.max()))
    assert ds.signals["over_temperature"].tolist() == [False, True, False]
    assert [f.connector for f in ds.findings] == [1]
