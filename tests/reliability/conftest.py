"""Real processes for the reliability suite: a server (``python -m peephole.server.main``)
and agent applications, with the server's resident memory readable from /proc."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Callable, Optional

import httpx
import pytest

ADMIN_TOKEN = "reliability-admin-token"
AGENT_KEY = "reliability-agent-key"

APP = """\
import logging, os, time

import peephole

logging.basicConfig(level=logging.INFO)
peephole.start()

def work(n):
    total = n * 2  # @work
    return total


def idle():  # never called: probes here cost nothing
    return 0  # @idle


stop = os.environ["APP_STOP_FILE"]
n = 0
while not os.path.exists(stop):
    n += 1
    work(n)
    time.sleep(0.02)
peephole.stop()
"""


IDLE_LINE = next(n for n, text in enumerate(APP.splitlines(), 1) if "# @idle" in text)
WORK_LINE = next(n for n, text in enumerate(APP.splitlines(), 1) if "# @work" in text)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(check: Callable[[], Any], timeout: float, what: str) -> Any:
    """Poll ``check`` until it returns something true, at most ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(what)
        time.sleep(0.05)


class ServerProcess:
    """``python -m peephole.server.main`` on a free loopback port."""

    def __init__(self, data_dir: Path, env: Optional[dict[str, str]] = None) -> None:
        self.data_dir = data_dir
        self.port = free_port()
        self.env = {**os.environ, **(env or {})}
        self.process: Optional[subprocess.Popen[bytes]] = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def start(self) -> ServerProcess:
        with open(self.data_dir / "server.log", "ab") as log:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "peephole.server.main",
                    "--port",
                    str(self.port),
                    "--data-dir",
                    str(self.data_dir),
                    "--admin-token",
                    ADMIN_TOKEN,
                    "--agent-key",
                    AGENT_KEY,
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self.env,
            )
        wait_for(self._healthy, 30, "the server did not start")
        return self

    def _healthy(self) -> bool:
        try:
            return httpx.get(self.url + "/api/v1/health").status_code == 200
        except httpx.HTTPError:
            return False

    def rss_bytes(self) -> int:
        """The server's resident memory now."""
        assert self.process is not None
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        raise AssertionError("no VmRSS")

    def log(self) -> str:
        return (self.data_dir / "server.log").read_text(errors="replace")

    def stop(self) -> None:
        if self.process is not None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
            self.process = None


@pytest.fixture
def server_process(tmp_path: Path) -> Iterator[Callable[..., ServerProcess]]:
    started: list[ServerProcess] = []

    def start(**env: str) -> ServerProcess:
        data = tmp_path / f"server{len(started)}"
        data.mkdir()
        process = ServerProcess(data, env).start()
        started.append(process)
        return process

    yield start
    for process in started:
        process.stop()


class AgentApp:
    """A real application process with the peephole agent started in it."""

    def __init__(self, server: ServerProcess, workdir: Path, service: str) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        (workdir / "app.py").write_text(APP)
        self.stop_file = workdir / "stop"
        self.log_path = workdir / "app.log"
        env = {
            **os.environ,
            "PEEPHOLE_SERVER": server.url,
            "PEEPHOLE_KEY": AGENT_KEY,
            "PEEPHOLE_SERVICE": service,
            "APP_STOP_FILE": str(self.stop_file),
        }
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, str(workdir / "app.py")],
                cwd=workdir,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def stop(self) -> None:
        self.process.send_signal(signal.SIGCONT)
        self.stop_file.touch()
        try:
            self.process.wait(20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


@pytest.fixture
def agent_app(tmp_path: Path) -> Iterator[Callable[[ServerProcess, str], AgentApp]]:
    started: list[AgentApp] = []

    def start(server: ServerProcess, service: str) -> AgentApp:
        app = AgentApp(server, tmp_path / f"app{len(started)}", service)
        started.append(app)
        return app

    yield start
    for app in started:
        app.stop()


def all_events(api: httpx.Client, **params: Any) -> list[dict[str, Any]]:
    """Every stored event that matches, page after page."""
    found: list[dict[str, Any]] = []
    cursor = None
    while True:
        page = api.get("/events", params={**params, "limit": 1000, "cursor": cursor}).json()
        found += page["events"]
        cursor = page["next_cursor"]
        if cursor is None:
            return found


def admin_client(server: ServerProcess, token: str = ADMIN_TOKEN) -> httpx.Client:
    return httpx.Client(
        base_url=server.url + "/api/v1", headers={"Authorization": f"Bearer {token}"}, timeout=10
    )
