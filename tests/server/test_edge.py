"""The HTTP edge: bodies are authenticated and capped before they are read, input no route
can take is a 422 the same on SQLite and PostgreSQL, and the connection stays open."""

from __future__ import annotations

import http.client
import socket
from collections.abc import MutableMapping
from typing import Any

import pytest

from peephole.server.edge import API_BODY_BYTES, Edge

from .conftest import ADMIN_TOKEN, LiveServer

pytestmark = pytest.mark.server

AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


def raw_head(server: LiveServer, head: str, timeout: float = 5.0) -> str:
    """Send request headers (and no body); return the first response line and headers."""
    with socket.create_connection(("127.0.0.1", server.settings.port), timeout=timeout) as sock:
        sock.sendall(head.encode())
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(4096)
            if not chunk:
                break
            data += chunk
    return data.decode(errors="replace")


@pytest.mark.parametrize("length,status", [(API_BODY_BYTES, 401), (200 * 1024 * 1024, 413)])
def test_a_body_without_a_token_is_refused_before_it_is_read(
    server: LiveServer, length: int, status: int
) -> None:
    # A body announced and none sent: the answer comes at once, so nothing was read.
    answer = raw_head(
        server,
        "POST /api/v1/probes HTTP/1.1\r\nHost: x\r\n"
        f"Content-Type: application/json\r\nContent-Length: {length}"
        "\r\n\r\n",
    )
    assert answer.startswith(f"HTTP/1.1 {status}"), answer


def test_an_oversized_body_is_refused_from_its_length(server: LiveServer) -> None:
    answer = raw_head(
        server,
        "POST /api/v1/probes HTTP/1.1\r\nHost: x\r\n"
        f"Authorization: Bearer {ADMIN_TOKEN}\r\n"
        f"Content-Length: {API_BODY_BYTES + 1}\r\n\r\n",
    )
    assert answer.startswith("HTTP/1.1 413"), answer


def test_a_chunked_body_is_cut_at_the_limit(server: LiveServer) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", server.settings.port, timeout=10)
    chunks = (b"x" * 65536 for _ in range(API_BODY_BYTES // 65536 + 2))
    connection.request(
        "POST",
        "/api/v1/probes",
        body=chunks,
        encode_chunked=True,
        headers={**AUTH, "Content-Type": "application/json"},
    )
    assert connection.getresponse().status == 413


CASES = [
    ("GET", "/api/v1/probes?service=%00", None),
    ("GET", "/api/v1/events?probe_id=a%00b", None),
    ("GET", "/api/v1/services/" + "s" * 300 + "/policy", None),
    ("PUT", "/api/v1/services/" + "s" * 300 + "/policy", "{}"),
    ("GET", "/api/v1/probes/" + "p" * 300, None),
    ("GET", "/api/v1/events?cursor=1.0:" + str(2**64), None),
    ("GET", "/api/v1/events?cursor=nan:1", None),
    ("GET", "/api/v1/events?since=nan", None),
    ("GET", "/api/v1/events?cursor=" + "1" * 200, None),
    ("POST", "/api/v1/tokens", '{"name": "a\\u0000b", "role": "viewer"}'),
    ("POST", "/api/v1/probes", '{"kind": "tracepoint", "file": "a\\u0000.py", "line": 1}'),
    (
        "POST",
        "/api/v1/probes",
        '{"kind": "tracepoint", "file": "a.py", "line": 1, "target": {"tags": {"k\\u0000": "v"}}}',
    ),
    ("PUT", "/api/v1/services/shop/policy", '{"redact_names": ["\\u0000"]}'),
    ("GET", "/api/v1/exceptions/" + "f" * 200, None),
]


@pytest.mark.parametrize("method,path,body", CASES)
def test_bad_input_is_422_and_the_connection_stays_open(
    server: LiveServer, method: str, path: str, body: Any
) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", server.settings.port, timeout=10)
    headers = {**AUTH, "Content-Type": "application/json"}
    connection.request(method, path, body=body, headers=headers)
    response = connection.getresponse()
    text = response.read().decode()
    assert response.status == 422, text
    opened = connection.sock
    connection.request("GET", "/api/v1/health", headers=headers)
    assert connection.getresponse().status == 200
    assert connection.sock is opened, "the server closed the connection"


async def test_an_unexpected_error_is_a_500_that_keeps_the_connection() -> None:
    async def failing(scope: Any, receive: Any, send: Any) -> None:
        raise RuntimeError("boom")

    sent: list[dict[str, Any]] = []

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(dict(message))

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    scope = {
        "type": "http",
        "method": "GET",
        "path": "/api/v1/x",
        "query_string": b"",
        "headers": [],
    }
    await Edge(failing)(scope, receive, send)  # does not raise: the server keeps the socket
    assert sent[0]["status"] == 500
    assert b"internal error" in sent[1]["body"]
