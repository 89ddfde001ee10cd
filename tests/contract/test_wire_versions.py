"""Protocol versions: each end says its own, and a peer older than ``OLDEST_PROTOCOL_VERSION``
is refused with a reason the other end logs (a newer peer is served in the older version:
see tests/server/test_gateway.py for the server's side)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.server import ServerConnection, serve

import peephole
from peephole import messages, protocol
from server.conftest import AGENT_KEY, LiveServer, make_settings


def warned(caplog: pytest.LogCaptureFixture, text: str) -> bool:
    return any(
        text in r.getMessage() for r in caplog.records if r.name == "peephole" and r.levelno >= 30
    )


def wait_for_warning(caplog: pytest.LogCaptureFixture, text: str) -> None:
    deadline = time.monotonic() + 15
    while not warned(caplog, text):
        assert time.monotonic() < deadline, f"the agent never logged {text!r}"
        time.sleep(0.02)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[LiveServer]:
    live = LiveServer(make_settings(f"sqlite:///{tmp_path / 'p.db'}", tmp_path)).start()
    yield live
    live.stop()


def test_an_agent_too_old_for_the_server_logs_why_it_was_refused(
    server: LiveServer, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    caplog.set_level(logging.INFO, logger="peephole")
    monkeypatch.setattr(protocol, "PROTOCOL_VERSION", protocol.OLDEST_PROTOCOL_VERSION - 1)
    peephole.start(service="old", server=server.url, key=AGENT_KEY)
    try:
        wait_for_warning(caplog, "the server rejected this agent: agent protocol 0 is too old")
        assert server.broker.hub.agents == {}
    finally:
        peephole.stop()


class OldServer:
    """A gateway that welcomes every agent in a protocol older than the agent speaks."""

    def __init__(self) -> None:
        self.hellos = 0
        self._server = serve(self._handle, "127.0.0.1", 0)
        self.url = f"http://127.0.0.1:{self._server.socket.getsockname()[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def _handle(self, ws: ServerConnection) -> None:
        hello = protocol.decode(ws.recv(timeout=10))
        self.hellos += 1
        welcome = messages.Welcome(
            type="welcome",
            instance_id=hello["instance"]["instance_id"],
            config={},
            protocol=protocol.OLDEST_PROTOCOL_VERSION - 1,
            last_disconnect=None,
        )
        ws.send(protocol.encode(welcome))
        try:
            for _ in ws:
                pass
        except ConnectionClosed:
            pass

    def close(self) -> None:
        self._server.shutdown()
        self._thread.join(5)


def test_a_server_too_old_for_the_agent_is_refused_and_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="peephole")
    old = OldServer()
    peephole.start(service="new", server=old.url, key=AGENT_KEY)
    try:
        wait_for_warning(caplog, "the server rejected this agent: server protocol 0 is too old")
        assert not warned(caplog, "connected to")
    finally:
        peephole.stop()
        old.close()
