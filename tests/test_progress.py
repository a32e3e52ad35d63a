"""Long commands show progress on a terminal's stderr and nothing when piped."""

from __future__ import annotations

import sys

import pytest

from chargewatch.cli.progress import spinner, track_capture, track_simulation

MSGS = [(1000.0 + i, "ev/CP1/meter", b'{"power_w": 1}') for i in range(5000)]


def test_quiet_when_stderr_is_not_a_terminal(capsys: pytest.CaptureFixture[str]) -> None:
    assert list(track_capture(iter(MSGS), 10_000, "replay")) == MSGS
    assert list(track_simulation(iter(MSGS), 1000.0, 6000.0, "simulate")) == MSGS
    with spinner("report"):
        pass
    assert capsys.readouterr().err == ""


def test_shown_on_a_terminal(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True, raising=False)
    assert list(track_capture(iter(MSGS), 400_000, "replay x.jsonl")) == MSGS
    err = capsys.readouterr().err
    assert "replay x.jsonl" in err
    assert "5,000 msgs" in err
