"""``GET /live``, the UI's Server-Sent Events stream: it needs a session, sends the probes'
current state first, then the hub's messages; an open page never holds up a shutdown."""

from __future__ import annotations

import json
import subprocess
import threading
import time
from pathlib import Path

import httpx
import pytest

from e2e.server_process import ADMIN_TOKEN, ProtocolPeer, ServerProcess
from peephole import protocol

from .conftest import wait_for

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
            with httpx.stream(
                "GET", f"{server.url}/live", timeout=60, cookies={"peephole_session": ADMIN_TOKEN}
            ) as stream:
                for _ in stream.iter_lines():
                    opened.set()
        except httpx.HTTPError:
            pass

    reader = threading.Thread(target=follow, daemon=True)
    reader.start()
    try:
        assert opened.wait(10), "the stream did not start"
        process = server.process
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


def test_a_page_gets_what_was_stored_while_it_loaded(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path).start()
    try:
        with (
            ProtocolPeer(server.url, "replayed") as peer,
            httpx.Client(
                base_url=f"{server.url}/api/v1",
                timeout=10,
                headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
            ) as api,
        ):
            probe = api.post(
                "/probes",
                json={
                    "kind": "logpoint",
                    "file": "app.py",
                    "line": 3,
                    "template": "t",
                    "target": {"service": "replayed"},
                },
            )
            wait_for(lambda: peer.probes, what="the probe to reach the agent")
            made = time.time()  # the page is made; its stream is not open yet
            event = protocol.new_event(
                protocol.LOG,
                probe_id=probe.json()["id"],
                level="info",
                message="<b>between render and stream</b>",
            )
            peer.send_events(event)
            wait_for(
                lambda: api.get("/events?service=replayed").json()["events"],
                what="the event to be stored",
            )
            url = f"{server.url}/live?type=log&service=replayed&since={made}"
            with httpx.stream(
                "GET", url, timeout=10, cookies={"peephole_session": ADMIN_TOKEN}
            ) as stream:
                assert stream.status_code == 200, stream.read()
                for line in stream.iter_lines():
                    if line.startswith("data: "):
                        message = json.loads(line[len("data: ") :])
                        break
        assert message["replay"] is True
        assert message["event"]["id"] == event["id"]
        assert message["event"]["message"] == "<b>between render and stream</b>"
    finally:
        server.stop()


def test_revoking_a_token_ends_its_live_page(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path).start()
    try:
        with httpx.Client(
            base_url=f"{server.url}/api/v1",
            timeout=10,
            headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
        ) as api:
            made = api.post("/tokens", json={"name": "leaving", "role": "viewer"}).json()
            token_id = next(t["id"] for t in api.get("/tokens").json() if t["name"] == "leaving")
            lines: list[str] = []
            with httpx.stream(
                "GET", f"{server.url}/live", timeout=20, cookies={"peephole_session": made["token"]}
            ) as stream:
                assert stream.status_code == 200
                for line in stream.iter_lines():
                    lines.append(line)
                    if line == ": connected":
                        assert api.post(f"/tokens/{token_id}/revoke").status_code == 200
        # the loop ended: the server closed the stream, after saying why
        errors = [json.loads(line[6:]) for line in lines if line.startswith("data: ")]
        assert errors and errors[-1]["type"] == "error", lines
    finally:
        server.stop()
