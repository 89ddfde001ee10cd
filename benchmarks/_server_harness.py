"""What the server benchmarks share: a real ``peephole server`` process on a free loopback
port, a fresh PostgreSQL schema, fake agents speaking the wire protocol over real
WebSockets, and the Markdown table every script prints.

The fake agents live in the benchmark's own asyncio loop (many connections in one process)
and behave as :mod:`peephole.agent.delivery.transport` does on the wire: ``hello`` with the
agent key,
a ``status`` message reporting each new probe (or new probe version) ``active`` as soon as a
``probes`` list brings it, heartbeats, and ``events`` batches with a ``seq`` that wait for
their ``ack``. They never execute probes: the benchmarks measure the server, not the agent.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import platform
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional
from urllib.parse import quote

import httpx
from websockets.asyncio.client import ClientConnection, connect

from peephole import protocol

ADMIN_TOKEN = "bench-admin-token"
AGENT_KEY = "bench-agent-key"
SERVICE = "bench"
START_TIMEOUT = 60.0  # seconds for the server to migrate and answer /health
STOP_TIMEOUT = 15.0
CONNECT_TIMEOUT = 30.0  # seconds for one agent's hello to be welcomed
ACK_TIMEOUT = 30.0  # seconds for one events message to be acknowledged


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# --- the machine and the table ------------------------------------------------------------


def cpu_model() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        out = ""
    for line in out.splitlines():
        if line.startswith("Model name:"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def machine_rows() -> list[tuple[str, str]]:
    """Rows describing where the numbers come from (the load matters on a shared machine)."""
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    return [
        ("CPU", f"{cpu_model()}, {os.cpu_count()} cores"),
        ("Python", f"{platform.python_implementation()} {platform.python_version()}"),
        ("load average (1, 5, 15 min) at start", load),
    ]


@dataclass
class Result:
    """One measured number, with its target when it has one."""

    name: str
    value: str
    target: str = ""
    passed: Optional[bool] = None


def print_report(title: str, setup: list[tuple[str, str]], results: list[Result]) -> None:
    print(f"### {title}\n")
    print("| | |\n|---|---|")
    for name, value in setup:
        print(f"| {name} | {value} |")
    print("\n| measurement | result | target | pass |\n|---|---:|---:|---|")
    for r in results:
        verdict = "" if r.passed is None else ("pass" if r.passed else "**FAIL**")
        print(f"| {r.name} | {r.value} | {r.target} | {verdict} |")
    print(flush=True)


def percentile(values: list[float], fraction: float) -> float:
    """The nearest-rank percentile: the smallest value with ``fraction`` of ``values`` at or
    below it (with 100 values, p99 is the second highest)."""
    ordered = sorted(values)
    rank = min(len(ordered), max(1, math.ceil(fraction * len(ordered))))
    return ordered[rank - 1]


# --- the server ---------------------------------------------------------------------------


def database_label(database: Optional[str]) -> str:
    return "PostgreSQL" if database and database.startswith("postgres") else "SQLite"


@contextlib.contextmanager
def postgres_schema(url: str) -> Iterator[str]:
    """A fresh schema in the database at ``url`` (as the server's tests use), dropped after."""
    import psycopg

    schema = f"bench_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    try:
        joiner = "&" if "?" in url else "?"
        yield f"{url}{joiner}options={quote(f'-csearch_path={schema}')}"
    finally:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")


class ServerProcess:
    """``peephole server`` in a child process with a temporary data directory."""

    def __init__(self, database: Optional[str] = None) -> None:
        self.database = database
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.ws_url = f"ws://127.0.0.1:{self.port}"
        self._data_dir = tempfile.TemporaryDirectory(prefix="peephole-bench-")
        self._log_path = Path(self._data_dir.name) / "server.log"
        self.process: Optional[subprocess.Popen[bytes]] = None

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def start(self) -> ServerProcess:
        command = [
            _peephole_command(),
            "server",
            "--port",
            str(self.port),
            "--data-dir",
            self._data_dir.name,
            "--admin-token",
            ADMIN_TOKEN,
            "--agent-key",
            AGENT_KEY,
        ]
        if self.database:
            command += ["--database", self.database]
        with open(self._log_path, "wb") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the server exited at start:\n{self.log_tail()}")
            try:
                if httpx.get(f"{self.url}/api/v1/health", timeout=2).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"the server did not answer within {START_TIMEOUT:g} s")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._data_dir.cleanup()

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self._log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def rss_mb(self) -> float:
        """Resident memory now (VmRSS), in MiB."""
        with open(f"/proc/{self.pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
        raise RuntimeError("no VmRSS in /proc status")

    def cpu_seconds(self) -> float:
        """User plus system CPU time the server process has used so far."""
        with open(f"/proc/{self.pid}/stat") as stat:
            after_name = stat.read().rsplit(")", 1)[1].split()
        return (int(after_name[11]) + int(after_name[12])) / os.sysconf("SC_CLK_TCK")

    def metric(self, name: str) -> float:
        """One value from ``/metrics`` (Prometheus text), e.g. ``peephole_events_stored_total``."""
        text = httpx.get(f"{self.url}/metrics", timeout=10).text
        for line in text.splitlines():
            if line.startswith(name + " ") or line.startswith(name + "{"):
                return float(line.rsplit(" ", 1)[1])
        raise KeyError(name)

    def __enter__(self) -> ServerProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _peephole_command() -> str:
    """The ``peephole`` console script of the running environment."""
    beside = Path(sys.executable).with_name("peephole")
    found = str(beside) if beside.exists() else shutil.which("peephole")
    if not found:
        raise RuntimeError("no `peephole` command: install the project (pip install -e .[server])")
    return found


def api_client(server: ServerProcess) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        base_url=server.url + "/api/v1",
        headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
        timeout=30,
    )


# --- fake agents --------------------------------------------------------------------------


@dataclass(eq=False)
class FakeAgent:
    """One agent connection as the server sees it (see the module docstring)."""

    ws_url: str
    service: str = SERVICE
    heartbeat: float = protocol.HEARTBEAT_SECONDS
    info: protocol.InstanceInfo = field(init=False)
    ws: Optional[ClientConnection] = None
    _acks: dict[int, asyncio.Future[None]] = field(default_factory=dict)
    _reported: dict[str, int] = field(default_factory=dict)  # probe id -> version reported
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.info = protocol.InstanceInfo(
            instance_id=uuid.uuid4().hex[:16],
            service=self.service,
            version="1.0",
            environment="bench",
            host=socket.gethostname(),
            pid=os.getpid(),
            runtime=f"CPython {platform.python_version()}",
            agent_version="bench",
            started_at=time.time(),
        )

    async def connect(self) -> FakeAgent:
        self.ws = await connect(
            self.ws_url + protocol.AGENT_PATH, max_size=None, open_timeout=CONNECT_TIMEOUT
        )
        hello = {
            "type": "hello",
            "key": AGENT_KEY,
            "instance": self.info.to_dict(),
            "protocol": protocol.PROTOCOL_VERSION,
        }
        await self.ws.send(protocol.encode(hello))
        welcome = protocol.decode(await asyncio.wait_for(self.ws.recv(), CONNECT_TIMEOUT))
        if welcome["type"] != "welcome":
            raise RuntimeError(f"expected welcome, got {welcome}")
        self._tasks = [asyncio.create_task(self._read()), asyncio.create_task(self._beat())]
        return self

    async def _read(self) -> None:
        assert self.ws is not None
        with contextlib.suppress(Exception):
            async for raw in self.ws:
                message = protocol.decode(raw)
                if message["type"] == "ack":
                    future = self._acks.pop(message["seq"], None)
                    if future is not None and not future.done():
                        future.set_result(None)
                elif message["type"] == "probes":
                    await self._answer_probes(message["probes"])

    async def _answer_probes(self, specs: list[dict[str, Any]]) -> None:
        """Report each new probe (or new version) active, as the real agent does once armed."""
        assert self.ws is not None
        changed = [s for s in specs if self._reported.get(s["id"]) != s["version"]]
        self._reported = {s["id"]: s["version"] for s in specs}
        if changed:
            statuses = [
                protocol.ProbeStatus(
                    probe_id=s["id"],
                    state=protocol.ACTIVE,
                    version=s["version"],
                    path=f"/srv/{s['file']}",
                )
                for s in changed
            ]
            await self.ws.send(
                protocol.encode({"type": "status", "probes": [s.to_dict() for s in statuses]})
            )

    async def _beat(self) -> None:
        assert self.ws is not None
        with contextlib.suppress(Exception):
            while True:
                await asyncio.sleep(self.heartbeat)
                await self.ws.send(protocol.encode({"type": "heartbeat", "time": time.time()}))

    async def send_events(self, seq: int, text: str) -> None:
        """Send one ``events`` message (already encoded, with ``seq``); wait for its ack."""
        assert self.ws is not None
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._acks[seq] = future
        await self.ws.send(text)
        await asyncio.wait_for(future, ACK_TIMEOUT)

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        if self.ws is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.ws.close(), 5)
        await asyncio.gather(*self._tasks, return_exceptions=True)


@contextlib.asynccontextmanager
async def fleet(ws_url: str, count: int, at_once: int = 50) -> AsyncIterator[list[FakeAgent]]:
    """``count`` connected agents (``at_once`` connecting at a time), all closed at the end."""
    agents: list[FakeAgent] = []
    try:
        for start in range(0, count, at_once):
            batch = [FakeAgent(ws_url) for _ in range(min(at_once, count - start))]
            agents += batch
            await asyncio.gather(*(a.connect() for a in batch))
        yield agents
    finally:
        await asyncio.gather(*(a.close() for a in agents), return_exceptions=True)


def snapshot_event(probe_id: str) -> dict[str, Any]:
    """A snapshot like a web handler's: 8 frames, locals in the innermost 3, two watches."""

    def value(i: int) -> dict[str, Any]:
        kinds: list[dict[str, Any]] = [
            {"t": "int", "v": 1000 + i},
            {"t": "str", "v": f"customer-{i:04d}@example.com"},
            {"t": "float", "v": 12.5 * i},
            {"t": "list", "len": 3, "items": [{"t": "int", "v": n} for n in range(3)]},
            {
                "t": "shop.Cart",
                "fields": {"id": {"t": "int", "v": i}, "currency": {"t": "str", "v": "EUR"}},
            },
        ]
        return kinds[i % len(kinds)]

    frames = []
    for depth in range(8):
        frame: dict[str, Any] = {
            "file": f"/srv/app/shop/module_{depth}.py",
            "line": 40 + depth,
            "function": f"handler_{depth}",
            "module": f"shop.module_{depth}",
        }
        if depth < 3:
            frame["locals"] = {f"local_{n}": value(n + depth) for n in range(5)}
        frames.append(frame)
    return protocol.new_event(
        protocol.SNAPSHOT,
        probe_id=probe_id,
        probe_version=1,
        file="shop/cart.py",
        line=42,
        thread="MainThread",
        frames=frames,
        watches=[
            {"expr": "cart.total", "value": {"t": "float", "v": 99.5}},
            {"expr": "len(cart.items)", "value": {"t": "int", "v": 3}},
        ],
        size=2048,
        trace_id=uuid.uuid4().hex,
        span_id=uuid.uuid4().hex[:16],
    )
