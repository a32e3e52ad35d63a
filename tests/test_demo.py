"""`chargewatch demo` runs end to end on the embedded broker and keeps its data in one folder."""

from __future__ import annotations

from pathlib import Path

from chargewatch.cli import main


def test_demo_runs_and_writes_its_folder(tmp_path: Path) -> None:
    data = tmp_path / "demo"
    assert main(["demo", "--duration", "8", "--chargers", "8", "--data-dir", str(data)]) == 0
    for name in ("fleet.yaml", "truth.jsonl", "meter.lp", "rejected.jsonl"):
        assert (data / name).exists(), name
    lines = (data / "meter.lp").read_text().splitlines()
    measurements = {line.split(",", 1)[0] for line in lines}
    assert "meter" in measurements, "the demo stored no meter samples"
    assert measurements <= {"meter", "meter_1m", "site_1m", "status", "alert", "session"}
    assert (data / "rejected.jsonl").read_text() == ""  # the simulator sends only valid data
