"""`chargewatch run` checks fleet.yaml's tariff ids at load (issue #18)."""

from __future__ import annotations

from pathlib import Path

import pytest

from chargewatch.collector.service import Collector
from chargewatch.config.settings import Config
from chargewatch.core.errors import ConfigError

TARIFFS = Path(__file__).resolve().parents[2] / "tariffs"


def test_run_refuses_an_unknown_tariff_id_before_opening_anything(tmp_path: Path) -> None:
    fleet = tmp_path / "fleet.yaml"
    fleet.write_text("sites:\n  - {id: depot, tariff: flat-energy}\n  - {id: mall, tariff: tou}\n")
    data = tmp_path / "data"
    config = Config(data_dir=data, fleet=fleet, tariffs=TARIFFS)
    with pytest.raises(ConfigError) as caught:
        Collector(config)
    (problem,) = caught.value.problems
    assert (problem.file, problem.line, problem.path) == (str(fleet), 3, "sites[1].tariff")
    assert "unknown tariff 'tou'" in problem.message
    assert not (data / "ledger.sqlite").exists()
