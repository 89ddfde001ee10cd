"""A real peephole server in a subprocess (started with `peephole server`), the one every
test that needs a server process uses, and a minimal peer that speaks the agent side of the
wire protocol, so CLI tests can have services, probe statuses and events without depending on
timing of a real application."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Callable, Optional

import httpx
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from peephole import protocol
from waiting import wait_until

ADMIN_TOKEN = "e2e-admin-token"
AGENT_KEY = "e2e-agent-key"
# Seconds a server may take to answer after it starts: a bound that only catches a hang (one
# that exits early fails at once). At load average 12 a start took over 30 s (migrations).
START_TIMEOUT = 180.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without the user's PEEPHOLE_* variables, plus ``extra``."""
    return {**{k: v for k, v in os.environ.items() if not k.startswith("PEEPHOLE_")}, **extra}


class ServerProcess:
    """``peephole server`` on a free loopback port with its data (and ``server.log``) in
    ``data_dir``; ``env`` adds variables (``PEEPHOLE_SERVER_*`` settings). It keeps its port
    across :meth:`stop` and :meth:`start`, so a test can restart it under its agents."""

    def __init__(self, data_dir: Path, env: Optional[dict[str, str]] = None) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.ws_url = f"ws://127.0.0.1:{self.port}"
        self.data_dir = data_dir
        self.log_path = data_dir / "server.log"
        self.env = clean_env(**(env or {}))
        self.process: Optional[subprocess.Popen[bytes]] = None

    def start(self, timeout: float = START_TIMEOUT) -> ServerProcess:
        command = [
            sys.executable,
            "-m",
            "peephole.cli.main",
            "server",
            "--port",
            str(self.port),
            "--data-dir",
            str(self.data_dir),
            "--admin-token",
            ADMIN_TOKEN,
            "--agent-key",
            AGENT_KEY,
        ]
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, env=self.env
            )
        try:
            wait_until(self.healthy, timeout, "the server did not answer", interval=0.1)
        except Exception as exc:
            self.stop()
            raise RuntimeError(f"{exc}; its log:\n{self.log()}") from exc
        return self

    def healthy(self) -> bool:
        """True once it answers; raises if the process has exited (waiting is pointless)."""
        assert self.process is not None
        if self.process.poll() is not None:
            raise RuntimeError("the server exited early")
        try:
            return httpx.get(f"{self.url}/api/v1/health", timeout=1).status_code == 200
        except httpx.TransportError:
            return False

    def api(self, token: str = ADMIN_TOKEN) -> httpx.Client:
        """A REST client on ``/api/v1``, as the admin unless told otherwise."""
        return httpx.Client(
            base_url=f"{self.url}/api/v1", headers={"Authorization": f"Bearer {token}"}, timeout=10
        )

    def events(self, api: httpx.Client, **params: Any) -> list[dict[str, Any]]:
        """Every stored event that matches (``probe_id=...``), page after page."""
        found: list[dict[str, Any]] = []
        cursor = None
        while True:
            page = api.get("/events", params={**params, "limit": 1000, "cursor": cursor}).json()
            found += page["events"]
            cursor = page["next_cursor"]
            if cursor is None:
                return found

    def stop(self) -> None:
        """SIGTERM (a clean shutdown), then SIGKILL if it takes over 30 s."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def rss_bytes(self) -> int:
        """The server's resident memory now."""
        assert self.process is not None
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        raise AssertionError("no VmRSS")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


class ProtocolPeer:
    """One instance of a service as the server sees it: hello, heartbeats, and a status for
    every probe it is sent (``judge`` picks the state and message)."""

    def __init__(
        self,
        url: str,
        service: str,
        judge: Callable[[dict[str, Any]], tuple[str, str | None]] | None = None,
        **info: Any,
    ) -> None:
        self.instance_id = uuid.uuid4().hex[:16]
        self.info = protocol.InstanceInfo(
            self.instance_id,
            service,
            host="test",
            pid=os.getpid(),
            runtime="CPython",
            agent_version="test",
            **info,
        )
        self.url = url.replace("http", "ws", 1) + protocol.AGENT_PATH
        self.judge = judge or (lambda probe: (protocol.ACTIVE, None))
        self.probes: list[dict[str, Any]] = []
        self._ws: ClientConnection | None = None
        self._thread: threading.Thread | None = None
        self._seq = 0

    def __enter__(self) -> ProtocolPeer:
        self._ws = connect(self.url).__enter__()  # closed in __exit__
        self._ws.send(
            protocol.encode({"type": "hello", "instance": self.info.to_dict(), "key": AGENT_KEY})
        )
        welcome = protocol.decode(self._ws.recv(timeout=10))
        assert welcome["type"] == "welcome", welcome
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._ws is not None:
            self._ws.close()
        if self._thread is not None:
            self._thread.join(5)

    def send_events(self, *events: dict[str, Any]) -> None:
        assert self._ws is not None
        self._seq += 1
        stamped = [
            {**e, "instance_id": self.instance_id, "service": self.info.service} for e in events
        ]
        self._ws.send(
            protocol.encode({"type": "events", "seq": self._seq, "events": stamped, "dropped": 0})
        )

    def _read(self) -> None:
        assert self._ws is not None
        try:
            for text in self._ws:
                message = protocol.decode(text)
                if message["type"] == "probes":
                    self.probes = message["probes"]
                    self._report(message["probes"])
        except ConnectionClosed:
            pass

    def _report(self, probes: list[dict[str, Any]]) -> None:
        assert self._ws is not None
        statuses = []
        for probe in probes:
            state, reason = self.judge(probe)
            statuses.append(
                protocol.ProbeStatus(
                    probe["id"], state, reason, version=probe.get("version", 1)
                ).to_dict()
            )
        self._ws.send(protocol.encode({"type": "status", "probes": statuses}))


@pytest.fixture
def server_process(tmp_path: Path) -> Iterator[Callable[..., ServerProcess]]:
    """Start servers (``server_process(PEEPHOLE_SERVER_X="1")``), each with its own data
    directory; stopped after the test."""
    started: list[ServerProcess] = []

    def start(**env: str) -> ServerProcess:
        data = tmp_path / f"server{len(started)}"
        data.mkdir()
        started.append(ServerProcess(data, env))
        return started[-1].start()

    yield start
    for process in started:
        process.stop()
