"""The writer's delivery rules, against a scripted HTTP endpoint.

A real InfluxDB cannot be made to answer 429, 503, 413 or a partial-write 400 on
demand, so these rules are checked against a small local server that answers
from a script; tests/integration checks the real servers.
"""

from __future__ import annotations

import gzip
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from chargewatch.storage.influx import InfluxConfig, InfluxWriter


class Scripted:
    def __init__(self, answers: list[tuple[int, dict[str, str], bytes]]) -> None:
        self.answers = answers
        self.requests: list[tuple[float, str, dict[str, str], bytes]] = []
        outer = self

        class H(BaseHTTPRequestHandler):
            def log_message(self, *a: object) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                outer.requests.append((time.monotonic(), self.path, dict(self.headers), body))
                status, headers, text = outer.answers.pop(0) if outer.answers else (204, {}, b"")
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(text)))
                self.end_headers()
                self.wfile.write(text)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), H)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def writes(self) -> list[tuple[float, str, dict[str, str], bytes]]:
        return [r for r in self.requests if r[1].startswith(("/write", "/api/v2/write"))]


@pytest.fixture
def server() -> Iterator[type[Scripted]]:
    made: list[Scripted] = []

    def make(answers: list[tuple[int, dict[str, str], bytes]]) -> Scripted:
        s = Scripted(answers)
        made.append(s)
        return s

    yield make  # type: ignore[misc]
    for s in made:
        s.server.shutdown()


def writer(url: str, tmp: Path, **kw: object) -> InfluxWriter:
    cfg = InfluxConfig(
        url=url,
        batch_lines=2,
        flush_interval_s=0.05,
        max_backoff_s=1.0,
        create_database=False,
        **kw,
    )  # type: ignore[arg-type]
    w = InfluxWriter(cfg, tmp / "spool")
    w.start()
    return w


LINES = ["m,t=a f=1 1", "m,t=a f=2 2", "m,t=a f=3 3", "m,t=a f=4 4"]


def test_retry_after_is_honoured_and_order_kept(server: type[Scripted], tmp_path: Path) -> None:
    s = server([(429, {"Retry-After": "1"}, b"slow down"), (503, {}, b"busy")])  # type: ignore[call-arg]
    w = writer(s.url, tmp_path)
    w.write(LINES)
    assert w.drain(10)
    w.stop()
    writes = s.writes()
    bodies = [r[3] for r in writes]
    # the first chunk was tried three times (429, 503, ok), then the second chunk
    assert bodies == [b"m,t=a f=1 1\nm,t=a f=2 2\n"] * 3 + [b"m,t=a f=3 3\nm,t=a f=4 4\n"]
    assert writes[1][0] - writes[0][0] >= 0.9  # Retry-After: 1
    assert w.lines_written == 4


def test_bad_data_is_set_aside_not_retried(
    server: type[Scripted], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    s = server([(400, {}, b'{"error":"partial write: unable to parse \'m,t=a f=x 1\'"}')])  # type: ignore[call-arg]
    w = writer(s.url, tmp_path)
    w.write(LINES)
    assert w.drain(10)
    w.stop()
    assert len(s.writes()) == 2  # no retry of the rejected chunk
    aside = list((tmp_path / "spool" / "rejected").glob("*.lp.gz"))
    assert len(aside) == 1
    assert gzip.decompress(aside[0].read_bytes()) == b"m,t=a f=1 1\nm,t=a f=2 2\n"
    # the offending line, as InfluxDB named it, is in the log
    assert "unable to parse 'm,t=a f=x 1'" in caplog.text


def test_too_large_is_split(server: type[Scripted], tmp_path: Path) -> None:
    s = server([(413, {}, b"too large")])  # type: ignore[call-arg]
    w = writer(s.url, tmp_path)
    w.write(LINES[:2])
    assert w.drain(10)
    w.stop()
    bodies = sorted(r[3] for r in s.writes()[1:])
    assert bodies == [b"m,t=a f=1 1\n", b"m,t=a f=2 2\n"]


def test_v2_endpoint_and_auth(server: type[Scripted], tmp_path: Path) -> None:
    s = server([])  # type: ignore[call-arg]
    w = writer(s.url, tmp_path, api="v2", org="noc", bucket="cw", token="t0ken", gzip=False)
    w.write(LINES[:2])
    assert w.drain(10)
    w.stop()
    _, path, headers, _body = s.writes()[0]
    assert path.startswith("/api/v2/write?")
    assert "bucket=cw" in path and "org=noc" in path and "precision=ms" in path
    assert headers["Authorization"] == "Token t0ken"
    assert "t0ken" not in repr(w.config)


def test_v1_basic_auth_not_in_url(server: type[Scripted], tmp_path: Path) -> None:
    s = server([])  # type: ignore[call-arg]
    w = writer(
        s.url, tmp_path, username="u", password="p4ss", database="db1", retention_policy="raw"
    )
    w.write(LINES[:2])
    assert w.drain(10)
    w.stop()
    _, path, headers, _ = s.writes()[0]
    assert "p4ss" not in path and "db=db1" in path and "rp=raw" in path
    assert headers["Authorization"].startswith("Basic ")


def test_spool_survives_restart(tmp_path: Path) -> None:
    # Nothing listens on this port: the chunk stays spooled on disk.
    w = writer("http://127.0.0.1:9", tmp_path)
    w.write(LINES)
    w.stop(drain_timeout_s=0.5)
    w2 = InfluxWriter(InfluxConfig(url="http://127.0.0.1:9"), tmp_path / "spool")
    assert len(w2.spool) == 2
