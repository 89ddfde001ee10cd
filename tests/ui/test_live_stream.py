"""``GET /live``, the UI's Server-Sent Events stream: it needs a session, sends the probes'
current state first, then the hub's messages; an open page never holds up a shutdown."""

from __future__ import annotations

import subprocess
import threading
from pathlib import Path

import httpx
import pytest

from cli.server_process import ADMIN_TOKEN, ServerProcess

pytestmark = [pytest.mark.slow, pytest.mark.server]


def test_without_a_session_the_stream_sends_to_sign_in(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path).start()
    try:
        answer = httpx.get(f"{server.url}/live", follow_redirects=False, timeout=10)
        assert answer.status_code == 303 and answer.headers["location"].startswith("/login")
    finally:
        server.stop()


def test_an_open_live_page_does_not_hold_up_the_server_stopping(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path).start()
    opened = threading.Event()

    def follow() -> None:
        try:
            with httpx.stream("GET", f"{server.url}/live", timeout=60,
                              cookies={"peephole_session": ADMIN_TOKEN}) as stream:
                for _ in stream.iter_lines():
                    opened.set()
        except httpx.HTTPError:
            pass

    reader = threading.Thread(target=follow, daemon=True)
    reader.start()
    try:
        assert opened.wait(10), "the stream did not start"
        process = server._process
        assert process is not None
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            pytest.fail("the server was still running 15 s after SIGTERM with a page open")
        assert "Exception in ASGI application" not in server.log()  # it ended cleanly
    finally:
        server.stop()
        reader.join(5)
