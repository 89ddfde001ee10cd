"""Helpers for the framework tests: a real agent with exception capture, and real servers on
loopback ports (wsgiref for WSGI apps, uvicorn for ASGI apps)."""

from __future__ import annotations

import threading
import time
from contextlib import contextmanager
from typing import Any, Dict, Iterator, List
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from peephole.agent.config import AgentConfig
from peephole.agent.core import Agent
from peephole.agent.exception_capture import ExceptionCapture


class Harness:
    """A real agent whose sink keeps what it delivers, with exception capture installed."""

    def __init__(self, **settings: Any) -> None:
        self.delivered: List[Dict[str, Any]] = []
        self.agent = Agent(AgentConfig(service="frameworks", **settings), sink=self._sink)
        self.agent.start()
        self.exceptions = ExceptionCapture(self.agent)
        self.exceptions.install()

    def _sink(self, batch: List[Dict[str, Any]]) -> bool:
        self.delivered.extend(batch)
        return True

    @property
    def events(self) -> List[Dict[str, Any]]:
        assert self.agent.flush(30.0)
        return list(self.delivered)

    def close(self) -> None:
        self.exceptions.uninstall()
        self.agent.stop()


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


class _QuietServer(WSGIServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a broken connection; the app's own errors go through the WSGI handler


@contextmanager
def serve_wsgi(app: Any) -> Iterator[str]:
    """Serve ``app`` with wsgiref on a free loopback port; yields the base URL."""
    server = make_server(
        "127.0.0.1", 0, app, server_class=_QuietServer, handler_class=_QuietHandler
    )
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(5)
        server.server_close()


@contextmanager
def serve_asgi(app: Any) -> Iterator[str]:
    """Serve ``app`` with uvicorn on a free loopback port; yields the base URL."""
    import uvicorn

    config = uvicorn.Config(
        app, host="127.0.0.1", port=0, log_level="warning", lifespan="off", ws="none"
    )  # no WebSocket protocol: an older uvicorn (on 3.9) uses one websockets deprecated
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and thread.is_alive() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert server.started, "uvicorn did not start"
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
