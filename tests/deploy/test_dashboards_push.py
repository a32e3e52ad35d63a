"""`chargewatch dashboards push` against a stand-in Grafana HTTP API (no Grafana here)."""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from chargewatch.cli import main

ROOT = Path(__file__).resolve().parents[2]


class FakeGrafana:
    """Folders and dashboards endpoints of Grafana's HTTP API, recording requests."""

    def __init__(self) -> None:
        self.folders: list[dict[str, Any]] = [{"uid": "other", "title": "Other"}]
        self.dashboards: dict[str, dict[str, Any]] = {}
        self.auth: list[str] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def _reply(self, code: int, body: object) -> None:
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                outer.auth.append(self.headers.get("Authorization", ""))
                if self.path.startswith("/api/folders"):
                    return self._reply(200, outer.folders)
                return self._reply(404, {"message": "not found"})

            def do_POST(self) -> None:
                outer.auth.append(self.headers.get("Authorization", ""))
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                if self.path == "/api/folders":
                    folder = {"uid": "f-" + body["title"], "title": body["title"]}
                    outer.folders.append(folder)
                    return self._reply(200, folder)
                if self.path == "/api/dashboards/db":
                    dash = body["dashboard"]
                    if "id" in dash or not body.get("overwrite"):
                        return self._reply(412, {"message": "version-mismatch"})
                    outer.dashboards[dash["uid"]] = body
                    return self._reply(
                        200, {"status": "success", "uid": dash["uid"], "url": f"/d/{dash['uid']}/x"}
                    )
                return self._reply(404, {"message": "not found"})

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"


@pytest.fixture
def grafana() -> Iterator[FakeGrafana]:
    g = FakeGrafana()
    t = threading.Thread(target=g.server.serve_forever, name="test.fake_grafana", daemon=True)
    t.start()
    yield g
    g.server.shutdown()
    g.server.server_close()


def test_push_with_token_creates_folder_and_uploads_every_dashboard(
    grafana: FakeGrafana, capsys: pytest.CaptureFixture[str]
) -> None:
    rc = main(
        ["dashboards", "push", "--url", grafana.url, "--token", "glsa_secret", "--folder", "NOC"]
    )
    assert rc == 0, capsys.readouterr().err
    expected = {json.loads(p.read_text())["uid"] for p in (ROOT / "dashboards").glob("*.json")}
    assert set(grafana.dashboards) == expected and len(expected) == 5
    assert {b["folderUid"] for b in grafana.dashboards.values()} == {"f-NOC"}
    assert set(grafana.auth) == {"Bearer glsa_secret"}
    out = capsys.readouterr().out
    assert "cw-fleet-overview\t/d/cw-fleet-overview/x" in out
    # Pushing again reuses the folder instead of creating a second one.
    assert (
        main(["dashboards", "push", "--url", grafana.url, "--token", "t", "--folder", "NOC"]) == 0
    )
    assert [f["title"] for f in grafana.folders].count("NOC") == 1


def test_push_with_basic_auth(grafana: FakeGrafana) -> None:
    assert (
        main(["dashboards", "push", "--url", grafana.url, "--user", "admin", "--password", "pw"])
        == 0
    )
    assert set(grafana.auth) == {"Basic " + base64.b64encode(b"admin:pw").decode()}
    assert {b["folderUid"] for b in grafana.dashboards.values()} == {"f-chargewatch"}


def test_push_rejects_mixed_credentials_and_bad_files(
    grafana: FakeGrafana, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert (
        main(
            [
                "dashboards",
                "push",
                "--url",
                grafana.url,
                "--token",
                "t",
                "--user",
                "u",
                "--password",
                "p",
            ]
        )
        == 2
    )
    (tmp_path / "broken.json").write_text("{")
    assert main(["dashboards", "push", "--url", grafana.url, "--dir", str(tmp_path)]) == 2
    assert "broken.json" in capsys.readouterr().err
    assert grafana.dashboards == {}


def test_push_reports_grafana_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # Nothing listens on this port: a clear error and exit code 1, not a traceback.
    rc = main(
        ["dashboards", "push", "--url", "http://127.0.0.1:9", "--token", "t", "--timeout", "2"]
    )
    assert rc == 1
    assert "chargewatch dashboards push:" in capsys.readouterr().err


def test_a_grafana_that_is_not_there_is_one_readable_line(
    capsys: pytest.CaptureFixture[str],
) -> None:
    import socket  # noqa: PLC0415

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    assert main(["dashboards", "push", "--url", url, "--timeout", "2"]) == 1
    err = capsys.readouterr().err.strip()
    assert err == f"chargewatch dashboards push: cannot reach Grafana at {url}: Connection refused"
