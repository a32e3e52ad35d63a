"""Capture lines whose payload orjson cannot read (issue #17): the message is
handed on for the decoders to reject; the replay goes on past it. Before, a
payload nested deeper than orjson's 1,024 levels, a number beyond a double or
a lone surrogate escape stopped the whole replay with a CaptureError (and
`chargewatch replay` with a traceback)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from chargewatch.cli import main
from chargewatch.collector.replay import replay
from chargewatch.ingest.capture import CaptureError, read_capture

GOOD = (
    '{"ts":"2026-10-05T06:00:%02d.000Z","topic":"ocpp/1.6/CP1/cp",'
    '"payload":[2,"%d","Heartbeat",{}]}'
)
HOSTILE_LAST = (
    '{"ts":"2026-10-05T06:00:01.000Z","topic":"ocpp/1.6/CP1/cp","payload":"[2,\\"2\\",\\"He"}'
)
HOSTILE = [
    "[" * 10_000 + "]" * 10_000,  # nested 10,000 deep
    '[2,"x","Heartbeat",{"v":1e309}]',  # beyond a double
    '[2,"y","Heartbeat",{"v":' + "9" * 5000 + "}]",  # 5,000 digits
    '"\\udcff"',  # a lone surrogate escape
]


def _capture(tmp_path: Path) -> Path:
    lines = [GOOD % (0, 0)]
    for k, payload in enumerate(HOSTILE, 1):
        head = json.dumps({"ts": f"2026-10-05T06:00:{k:02d}.000Z", "topic": "ocpp/1.6/CP1/cp"})
        lines.append(head[:-1] + ', "payload": ' + payload + "}")
    lines.append(GOOD % (9, 9))
    path = tmp_path / "capture.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_unreadable_payloads_reach_the_decoders_as_text(tmp_path: Path) -> None:
    got = list(read_capture(_capture(tmp_path)))
    assert [topic for _, topic, _ in got] == ["ocpp/1.6/CP1/cp"] * 6
    assert [raw for _, _, raw in got[1:5]] == [p.encode() for p in HOSTILE]


def test_replay_rejects_each_alone_and_goes_on(tmp_path: Path) -> None:
    result = replay(_capture(tmp_path), tmp_path / "out")
    assert result.stats.messages == 6
    assert result.stats.rejected_by_reason == {"malformed_json": 4}
    rejected = [
        json.loads(x) for x in (tmp_path / "out" / "rejected.jsonl").read_text().splitlines()
    ]
    assert sorted(r["at"][17:19] for r in rejected) == ["01", "02", "03", "04"]


def test_a_line_that_is_no_record_still_fails_with_its_line(tmp_path: Path) -> None:
    path = tmp_path / "capture.jsonl"
    path.write_text(GOOD % (0, 0) + '\n{"ts":"2026-10-05T06:00:01Z","topic":"a/b","payl\n')
    with pytest.raises(CaptureError, match=r"capture.jsonl:2: not JSON"):
        list(read_capture(path))


def test_replay_command_reports_a_bad_line_without_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "capture.jsonl"
    path.write_text("not a record\n")
    assert main(["replay", str(path), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert f"{path}:1: not JSON" in err
    assert "Traceback" not in err


def test_a_rejection_at_the_capture_end_is_written_once(tmp_path: Path) -> None:
    # The last batch's rejections were written again when the capture ended
    # (settle wrote the pipeline's batch list though it had rejected nothing
    # new): rejected.jsonl held 2 lines for each 1 the summary counted.
    path = tmp_path / "capture.jsonl"
    path.write_text(GOOD % (0, 0) + "\n" + HOSTILE_LAST + "\n")
    result = replay(path, tmp_path / "out")
    lines = (tmp_path / "out" / "rejected.jsonl").read_text().splitlines()
    assert result.stats.rejected == 1
    assert len(lines) == 1
