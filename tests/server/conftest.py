"""Fixtures: a real server (uvicorn on a loopback port, in a thread) on SQLite or PostgreSQL,
an HTTP client for it, and fake agents speaking the wire protocol over real WebSockets."""

from __future__ import annotations

import asyncio
import os
import socket
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any, Optional

import httpx
import pytest
import uvicorn
from websockets.asyncio.client import ClientConnection, connect

from peephole import protocol
from peephole.server.app import create_app
from peephole.server.db import Database
from peephole.server.main import uvicorn_config
from peephole.server.settings import ServerSettings
from waiting import wait_until_async

pytestmark = pytest.mark.server

ADMIN_TOKEN = "test-admin-token"
AGENT_KEY = "test-agent-key"
PG_URL = "postgresql://postgres@127.0.0.1:5432/test"


async def subscribed(server: LiveServer) -> None:
    """Wait until the server has registered a live-stream subscriber."""
    await wait_until_async(lambda: server.broker.hub.subscribers, 5, "the stream never subscribed")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def postgres_reachable() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 5432), timeout=1):
            return True
    except OSError:
        return False


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh schema in the ``test`` database, dropped afterwards."""
    if not postgres_reachable():
        if os.environ.get("CI"):
            pytest.fail("PostgreSQL on 127.0.0.1:5432 is required in CI")
        pytest.skip("PostgreSQL on 127.0.0.1:5432 is not reachable")
    import psycopg

    schema = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect("host=127.0.0.1 user=postgres dbname=test", autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    try:
        yield f"{PG_URL}?options=-csearch_path%3D{schema}"
    finally:
        _drop_schema(schema)


def _drop_schema(schema: str, attempts: int = 5) -> None:
    """Drop a test's schema. A thread of the stopped server can still be finishing a
    statement on it: PostgreSQL then reports a deadlock and aborts the DROP (seen once in a
    CI run), the statement ends, and the DROP runs again."""
    import psycopg

    for attempt in range(attempts):
        try:
            with psycopg.connect(
                "host=127.0.0.1 user=postgres dbname=test", autocommit=True
            ) as conn:
                conn.execute(f"DROP SCHEMA {schema} CASCADE")
            return
        except psycopg.errors.DeadlockDetected:
            if attempt == attempts - 1:
                raise


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'peephole.db'}"
    url: str = request.getfixturevalue("postgres_url")
    return url


@pytest.fixture
def db(database_url: str) -> Iterator[Database]:
    """A migrated database (SQLite, and PostgreSQL when it runs) for store-level tests."""
    database = Database(database_url)
    database.migrate()
    yield database
    database.close()


class LiveServer:
    """The real app under uvicorn on a free loopback port, run in a background thread."""

    def __init__(self, settings: ServerSettings) -> None:
        self.settings = settings
        self.app: Any = None
        self._server: Optional[uvicorn.Server] = None
        self._thread: Optional[threading.Thread] = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.settings.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.settings.port}"

    def start(self) -> LiveServer:
        self.app = create_app(self.settings)
        self._server = uvicorn.Server(uvicorn_config(self.settings, self.app))
        self._thread = threading.Thread(target=self._server.run, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("the server did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        if self._server is not None and self._thread is not None:
            self._server.should_exit = True
            self._thread.join(15)
            self._server = None

    @property
    def broker(self) -> Any:
        return self.app.state.broker


def make_settings(database: str, tmp_path: Path, **overrides: Any) -> ServerSettings:
    values: dict[str, Any] = {
        "port": free_port(),
        "data_dir": str(tmp_path),
        "database": database,
        "admin_token": ADMIN_TOKEN,
        "agent_key": AGENT_KEY,
        "housekeeping_interval": 0.2,
        "log_level": "warning",
        "source_timeout": 1.0,
    }
    values.update(overrides)
    return ServerSettings(**values)


@pytest.fixture
def server_factory(tmp_path: Path) -> Iterator[Any]:
    servers: list[LiveServer] = []

    def start(database: Optional[str] = None, **overrides: Any) -> LiveServer:
        url = database or f"sqlite:///{tmp_path / 'peephole.db'}"
        server = LiveServer(make_settings(url, tmp_path, **overrides)).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def server(server_factory: Any, database_url: str) -> LiveServer:
    """A live server on each database (SQLite, then PostgreSQL)."""
    live: LiveServer = server_factory(database_url)
    return live


@pytest.fixture
def api(server: LiveServer) -> Iterator[httpx.Client]:
    with client_for(server) as client:
        yield client


def client_for(server: LiveServer, token: Optional[str] = ADMIN_TOKEN) -> httpx.Client:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.Client(base_url=server.url + "/api/v1", headers=headers, timeout=10)


def tracepoint(service: str = "shop", **fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "kind": "tracepoint",
        "file": "shop/cart.py",
        "line": 42,
        "target": {"service": service},
    }
    body.update(fields)
    return body


class FakeAgent:
    """An agent as the server sees it: hello, probes in, events and status out."""

    def __init__(
        self,
        server: LiveServer,
        service: str = "shop",
        features: tuple[str, ...] = (),
        **info: Any,
    ) -> None:
        self.server = server
        self.features = features
        self.largest = 0  # the longest message received, in characters
        self.info = protocol.InstanceInfo(
            instance_id=info.pop("instance_id", uuid.uuid4().hex[:16]),
            service=service,
            host="test-host",
            pid=os.getpid(),
            runtime="CPython 3.11",
            agent_version="test",
            started_at=time.time(),
            **info,
        )
        self.ws: Optional[ClientConnection] = None
        self.welcome: dict[str, Any] = {}
        self.probes: list[dict[str, Any]] = []
        self.inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._seq = 0
        self._reader: Optional[asyncio.Task[None]] = None
        self._acks: dict[int, asyncio.Future[None]] = {}
        self.closed: Optional[tuple[Optional[int], str]] = None

    @property
    def instance_id(self) -> str:
        return self.info.instance_id

    async def connect(self, key: str = AGENT_KEY) -> FakeAgent:
        """Say hello like an agent that accepts messages up to ``MAX_MESSAGE_BYTES``."""
        self.ws = await connect(
            self.server.ws_url + protocol.AGENT_PATH, max_size=protocol.MAX_MESSAGE_BYTES
        )
        await self.ws.send(
            protocol.encode(
                {
                    "type": "hello",
                    "key": key,
                    "instance": self.info.to_dict(),
                    "features": list(self.features),
                }
            )
        )
        self.welcome = protocol.decode(await self.ws.recv())
        assert self.welcome["type"] == "welcome", self.welcome
        first = protocol.decode(await self.ws.recv())
        assert self._apply(first), first
        self._reader = asyncio.create_task(self._read())
        return self

    def _apply(self, message: dict[str, Any]) -> bool:
        """Apply a probe list or delta as an agent would; False for other messages."""
        if message["type"] == "probes":
            self.probes = message["probes"]
        elif message["type"] == "probes_delta":
            keep = message.get("keep")
            have = {
                p["id"]: p
                for p in self.probes
                if (keep is None or p["id"] in keep) and p["id"] not in message["remove"]
            }
            have.update((p["id"], p) for p in message["set"])
            self.probes = sorted(have.values(), key=lambda p: p["id"])
        else:
            return False
        return True

    async def _read(self) -> None:
        assert self.ws is not None
        try:
            async for raw in self.ws:
                self.largest = max(self.largest, len(raw))
                message = protocol.decode(raw)
                if self._apply(message):
                    pass
                elif message["type"] == "ack":
                    future = self._acks.pop(message["seq"], None)
                    if future is not None:
                        future.set_result(None)
                    continue
                await self.inbox.put(message)
        except Exception:
            pass
        finally:
            self.closed = (self.ws.close_code, self.ws.close_reason or "")

    async def send_events(self, events: list[dict[str, Any]], dropped: int = 0) -> None:
        """Send a batch and wait for its ack (stored and committed)."""
        assert self.ws is not None
        self._seq += 1
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._acks[self._seq] = future
        await self.ws.send(
            protocol.encode(
                {"type": "events", "seq": self._seq, "events": events, "dropped": dropped}
            )
        )
        await asyncio.wait_for(future, 10)

    async def send_status(self, *statuses: dict[str, Any]) -> None:
        assert self.ws is not None
        await self.ws.send(protocol.encode({"type": "status", "probes": list(statuses)}))

    async def next_message(self, kind: str, timeout: float = 5.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            message = await asyncio.wait_for(self.inbox.get(), max(remaining, 0.01))
            if message["type"] == kind:
                return message

    async def wait_probes(self, predicate: Any, timeout: float = 5.0) -> list[dict[str, Any]]:
        await wait_until_async(
            lambda: predicate(self.probes),
            timeout,
            lambda: f"probes never matched; last: {self.probes}",
            interval=0.01,
        )
        return self.probes

    async def close(self) -> None:
        if self.ws is not None:
            await self.ws.close()
        if self._reader is not None:
            await self._reader


async def placed(api: httpx.Client, *agents: FakeAgent, **fields: Any) -> str:
    """Place a tracepoint on the agents' service; return its id once they all have it (the
    server takes events only for probes it sent to the connection)."""
    service = agents[0].info.service if agents else "shop"
    probe_id: str = api.post("/probes", json=tracepoint(service, **fields)).json()["id"]
    for agent in agents:
        await agent.wait_probes(lambda probes: probe_id in [p["id"] for p in probes])
    return probe_id


def snapshot(probe_id: str, **fields: Any) -> dict[str, Any]:
    return protocol.new_event(
        protocol.SNAPSHOT,
        probe_id=probe_id,
        probe_version=1,
        file="shop/cart.py",
        line=42,
        frames=[],
        **fields,
    )


def exception(
    exc_type: str = "KeyError", fingerprint: str = "fp1", **fields: Any
) -> dict[str, Any]:
    return protocol.new_event(
        protocol.EXCEPTION,
        exc_type=exc_type,
        message="boom",
        fingerprint=fingerprint,
        frames=[],
        **fields,
    )


@pytest.fixture
async def agents(server: LiveServer) -> AsyncIterator[Any]:
    """Start fake agents on the ``server`` fixture; all are closed at the end."""
    started: list[FakeAgent] = []

    async def start(service: str = "shop", **info: Any) -> FakeAgent:
        agent = await FakeAgent(server, service, **info).connect()
        started.append(agent)
        return agent

    yield start
    for agent in started:
        await agent.close()
