"""A real peephole server in a subprocess (started with `peephole server`), and a minimal
peer that speaks the agent side of the wire protocol, so CLI tests can have services,
probe statuses and events without depending on timing of a real application."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any, Callable

import httpx
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from peephole import protocol

ADMIN_TOKEN = "cli-test-admin-token"
AGENT_KEY = "cli-test-agent-key"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ServerProcess:
    """``python -m peephole.cli.main server`` on a free loopback port with a fresh data dir."""

    def __init__(self, data_dir: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.data_dir = data_dir
        self.log_path = data_dir / "server.log"
        self._process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 30.0) -> ServerProcess:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PEEPHOLE_")}
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
        with open(self.log_path, "wb") as log:
            self._process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"the server exited early:\n{self.log()}")
            try:
                if httpx.get(f"{self.url}/api/v1/health", timeout=1).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"the server did not answer within {timeout} s:\n{self.log()}")

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(15)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()

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
