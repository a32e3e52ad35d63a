"""dashboards/*.json are exactly what scripts/build_dashboards.py makes of dashboards/src/.

The JSON is committed (Grafana and ``chargewatch dashboards push`` read it);
the YAML sources are what people edit. These tests keep the two from drifting.
"""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts/build_dashboards.py"


def _generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("build_dashboards_src", SCRIPT)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_every_committed_dashboard_is_regenerated_exactly_from_a_source() -> None:
    rendered = _generator().render()
    committed = {
        p.name: p.read_text(encoding="utf-8") for p in (ROOT / "dashboards").glob("*.json")
    }
    assert sorted(rendered) == sorted(committed), "a dashboard JSON without a source, or vice versa"
    for name, text in committed.items():
        assert rendered[name] == text, f"{name} differs from its source: run {SCRIPT.name}"


def test_check_mode_passes_on_the_committed_tree() -> None:
    r = subprocess.run(
        [sys.executable, str(SCRIPT), "--check"], check=False, capture_output=True, text=True
    )
    assert r.returncode == 0, r.stderr


def test_an_undefined_name_in_a_source_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    mod = _generator()
    src = tmp_path / "src"
    shutil.copytree(ROOT / "dashboards/src", src)
    path = src / "fleet-overview.yaml"
    path.write_text(path.read_text(encoding="utf-8").replace("@where", "@wehre", 1))
    monkeypatch.setattr(mod, "SRC", src)
    monkeypatch.setattr(mod, "VOCABULARY", src / "_vocabulary.yaml")
    with pytest.raises(ValueError, match="wehre"):
        mod.render()
