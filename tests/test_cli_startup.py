"""The command line starts without the heavy libraries (bench/bench_startup.py times it).

Structural, so it cannot be flaky: each command runs in a fresh interpreter
with ``-X importtime`` and the modules it imported are read from that list.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from chargewatch.cli.report import DATASET_NAMES
from chargewatch.reports.dataset_ledger import DATASETS

ROOT = Path(__file__).resolve().parent.parent
HEAVY = ("numpy", "scipy", "matplotlib", "paho", "httpx")
TARIFF = ROOT / "tariffs" / "time_of_use.json"
CDR = ROOT / "tests" / "billing" / "testdata" / "ocpi" / "cdr_example.json"


def imported(*args: str) -> set[str]:
    """Every module ``python -m chargewatch ARGS`` imported."""
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "chargewatch", *args],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        cwd=ROOT,  # -m puts the working directory first on the path
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    # Lines read "import time: self | cumulative | <indent>module".
    return {
        line.rsplit("|", 1)[1].strip()
        for line in proc.stderr.splitlines()
        if line.startswith("import time:") and line.count("|") == 2
    }


def heavy(modules: set[str]) -> list[str]:
    return sorted(m for m in modules if m.split(".")[0] in HEAVY)


@pytest.mark.parametrize(
    "args",
    [
        ("--help",),
        ("uptime", "--help"),
        ("tariff", "check", str(TARIFF)),
        ("tariff", "price", "--tariff", str(TARIFF), "--cdr", str(CDR)),
    ],
    ids=["help", "uptime-help", "tariff-check", "tariff-price"],
)
def test_command_imports_no_heavy_library(args: tuple[str, ...]) -> None:
    modules = imported(*args)
    assert "chargewatch.cli" in modules  # the list was read
    assert heavy(modules) == []


#: Standard library modules `chargewatch --help` does without: the commands
#: import them when they run (CPU per start: logging ~14 ms, dataclasses ~16,
#: pathlib ~7, measured in a fresh interpreter).
HELP_NEEDS_NOT = ("logging", "dataclasses", "pathlib", "chargewatch.core.errors")


def loaded_by_help() -> set[str]:
    """sys.modules after ``main(["--help"])`` in a fresh interpreter. -X importtime
    does not list what importlib.import_module loads (the command modules)."""
    code = (
        "import sys\n"
        "from chargewatch.cli import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        "print(' '.join(sorted(sys.modules)), file=sys.stderr)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        cwd=ROOT,
    )
    return set(proc.stderr.split())


def test_help_imports_no_logging_dataclasses_or_pathlib() -> None:
    modules = loaded_by_help()
    assert "chargewatch.cli.run" in modules  # every command registered
    assert sorted(m for m in modules if m.split(".")[0] in HEAVY) == []
    assert sorted(m for m in HELP_NEEDS_NOT if m in modules) == []


def test_tariff_price_imports_only_pricing() -> None:
    modules = imported("tariff", "price", "--tariff", str(TARIFF), "--cdr", str(CDR))
    ours = {m for m in modules if m.startswith("chargewatch.")}
    allowed = ("chargewatch.cli", "chargewatch.core", "chargewatch.billing", "chargewatch.sessions")
    assert sorted(m for m in ours if not m.startswith(allowed)) == []
    assert "chargewatch.sessions.session_engine" not in ours  # periods only
    assert "logging" not in modules  # nothing on the path logs (cli/tariff.py)


def test_report_dataset_choices_match_the_datasets() -> None:
    # cli/report.py spells the names so that its parser need not import the converter.
    assert sorted(DATASET_NAMES) == sorted(DATASETS)
