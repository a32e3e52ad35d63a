"""The HTTP server against clients it does not control: bad lengths, silence, floods."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import pytest

from chargewatch.api.http import HttpServer, json_response


@pytest.fixture
def srv() -> Iterator[HttpServer]:
    s = HttpServer(
        "127.0.0.1:0",
        health=lambda: (True, {}),
        ready=lambda: (True, {}),
        request_timeout_s=0.5,
        max_connections=4,
    )
    s.routes["fleet"] = lambda p, r: json_response({"ok": True})
    s.start()
    yield s
    s.stop()


def exchange(srv: HttpServer, request: bytes, wait_s: float = 5.0) -> bytes:
    with socket.create_connection(("127.0.0.1", srv.port), timeout=wait_s) as c:
        c.sendall(request)
        chunks = []
        while chunk := c.recv(65536):
            chunks.append(chunk)
        return b"".join(chunks)


def status(reply: bytes) -> int:
    return int(reply.split(b" ", 2)[1])


@pytest.mark.parametrize(
    ("length", "code"), [("-1", 400), ("abc", 400), ("1e3", 400), ("²", 400), ("99999999", 413)]
)
def test_an_unusable_content_length_is_refused_at_once(
    srv: HttpServer, length: str, code: int
) -> None:
    reply = exchange(
        srv, f"POST /api/v1/fleet HTTP/1.1\r\nHost: x\r\nContent-Length: {length}\r\n\r\n".encode()
    )
    assert status(reply) == code
    assert b"Traceback" not in reply


def test_a_body_of_the_stated_length_is_read_and_the_request_served(srv: HttpServer) -> None:
    reply = exchange(
        srv,
        b"GET /api/v1/fleet HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n"
        b"Connection: close\r\n\r\nabc",
    )
    assert status(reply) == 200 and reply.endswith(b'{"ok":true}')


def test_a_silent_client_is_disconnected_after_the_timeout(srv: HttpServer) -> None:
    with socket.create_connection(("127.0.0.1", srv.port), timeout=5) as c:
        c.sendall(b"GET /api/v1/fleet HTTP/1.1\r\n")  # and then nothing
        t0 = time.monotonic()
        assert c.recv(65536) == b""  # closed by the server
        assert 0.3 < time.monotonic() - t0 < 4.0


def test_connections_beyond_the_limit_get_503_and_the_server_recovers(srv: HttpServer) -> None:
    slow = [socket.create_connection(("127.0.0.1", srv.port), timeout=5) for _ in range(4)]
    try:
        for c in slow:
            c.sendall(b"GET /api/v1/fleet HTTP/1.1\r\n")
        time.sleep(0.1)  # the four hold every slot
        assert status(exchange(srv, b"GET /api/v1/fleet HTTP/1.1\r\nHost: x\r\n\r\n")) == 503
    finally:
        for c in slow:
            c.close()
    time.sleep(0.7)  # their threads end (closed by the client or the timeout)
    reply = exchange(srv, b"GET /api/v1/fleet HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert status(reply) == 200
