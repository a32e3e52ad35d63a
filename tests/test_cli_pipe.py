"""A reader that closes the pipe early (`chargewatch rules signals | head -1`)
ends the command quietly with the SIGPIPE status, not a BrokenPipeError traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from chargewatch.cli import SIGPIPE_EXIT

ROOT = Path(__file__).resolve().parent.parent
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}
COMMANDS = [("rules", "signals"), ("--help",), ("rules", "--help")]


@pytest.mark.parametrize("args", COMMANDS, ids=" ".join)
def test_piped_into_head_prints_no_traceback(args: tuple[str, ...]) -> None:
    cmd = " ".join([sys.executable, "-m", "chargewatch", *args])
    proc = subprocess.run(
        ["bash", "-c", f'{cmd} | head -1; echo "status=${{PIPESTATUS[0]}}" >&2'],
        capture_output=True,
        text=True,
        env=ENV,
        cwd=ROOT,
        check=False,
    )
    assert len(proc.stdout.splitlines()) == 1
    # Whether the pipe closed before the last write is a race: either ending is quiet.
    assert proc.stderr.strip() in ("status=0", f"status={SIGPIPE_EXIT}"), proc.stderr


@pytest.mark.parametrize("args", COMMANDS, ids=" ".join)
def test_a_pipe_closed_before_the_first_write_ends_quietly(args: tuple[str, ...]) -> None:
    read, write = os.pipe()
    os.close(read)  # the reader is gone before the command writes anything
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "chargewatch", *args],
            stdout=write,
            stderr=subprocess.PIPE,
            text=True,
            env=ENV,
            cwd=ROOT,
            check=False,
        )
    finally:
        os.close(write)
    assert proc.stderr == ""
    # argparse's help swallows its own write errors and exits 0; commands end 141.
    assert proc.returncode == (0 if "--help" in args else SIGPIPE_EXIT)
