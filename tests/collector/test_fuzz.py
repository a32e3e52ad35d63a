"""A short run of bench/fuzz_decoders.py in CI (the full million runs as a benchmark)."""

from __future__ import annotations

import json

import pytest

from bench.fuzz_decoders import main


@pytest.mark.parametrize("seed", [1, 2])
def test_fuzzed_payloads_never_escape_and_never_cost_good_samples(
    seed: int, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--payloads", "20000", "--seed", str(seed)]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["exceptions_escaped"] == 0
    assert report["internal_errors"] == 0  # no decoder bug hit (each would cost its message)
    # The mutated topics and number literals reached the checks that refuse them.
    assert report["rejections_by_reason"]["bad_connector_id"] > 0
    assert report["rejections_by_reason"]["bad_charger_id"] > 0
    assert report["rejections_without_reason"] == 0
    assert report["good_samples_kept"] == report["good_samples_expected"] == 400
    assert report["rejections"] > 10_000  # the fuzz really was hostile
