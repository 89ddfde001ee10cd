"""A fleet of 200 agents, one service of which gets more probes than fit in one message (the
"poisoned" list that once put every agent in a reconnect loop): every agent stays connected,
every message fits what an agent accepts, and every agent ends up with its probes."""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from typing import Any, Callable, Optional

import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect

from e2e.server_process import AGENT_KEY, ServerProcess
from peephole import protocol
from waiting import wait_until_async

pytestmark = [pytest.mark.server, pytest.mark.slow]

AGENTS = 200
SERVICES = 20  # ten agents each; service "svc0" gets the huge list
BIG = 20 * 1000  # bytes of watches per probe
BIG_PROBES = protocol.MAX_MESSAGE_BYTES // BIG + 20


class Agent:
    """The wire side of an agent that takes deltas, as the real one does."""

    def __init__(self, url: str, service: str) -> None:
        self.url = url
        self.service = service
        self.probes: dict[str, dict[str, Any]] = {}
        self.largest = 0
        self.closed: Optional[tuple[Optional[int], str]] = None
        self.ws: Optional[ClientConnection] = None

    async def run(self) -> None:
        info = protocol.InstanceInfo(
            uuid.uuid4().hex[:16],
            self.service,
            host="fleet",
            pid=os.getpid(),
            runtime="CPython",
            agent_version="t",
            started_at=time.time(),
        )
        async with connect(self.url, max_size=protocol.MAX_MESSAGE_BYTES) as ws:
            self.ws = ws
            await ws.send(
                protocol.encode(
                    {
                        "type": "hello",
                        "key": AGENT_KEY,
                        "instance": info.to_dict(),
                        "features": list(protocol.FEATURES),
                    }
                )
            )
            try:
                async for raw in ws:
                    self.largest = max(self.largest, len(raw))
                    self.apply(protocol.decode(raw))
            finally:
                self.closed = (ws.close_code, ws.close_reason or "")

    def apply(self, message: dict[str, Any]) -> None:
        if message["type"] != "probes_delta":
            return
        keep = message.get("keep")
        if keep is not None:
            self.probes = {k: v for k, v in self.probes.items() if k in keep}
        for probe_id in message["remove"]:
            self.probes.pop(probe_id, None)
        self.probes.update((p["id"], p) for p in message["set"])


def create(api: httpx.Client, service: str, watches: list[str]) -> str:
    response = api.post(
        "/probes",
        json={
            "kind": "tracepoint",
            "file": "a.py",
            "line": 1,
            "watches": watches,
            "target": {"service": service},
        },
    )
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def test_a_fleet_survives_a_service_with_too_many_probes(
    server_process: Callable[..., ServerProcess],
) -> None:
    server = server_process()

    async def scenario() -> list[Agent]:
        fleet = [
            Agent(server.ws_url + protocol.AGENT_PATH, f"svc{i % SERVICES}") for i in range(AGENTS)
        ]
        tasks = [asyncio.create_task(a.run()) for a in fleet]
        with server.api() as api:
            await until(lambda: len(api.get("/instances").json()) == AGENTS, 60, "registered")
            began = time.monotonic()
            big = ['"' + "x" * (BIG // 20 - 2) + '"'] * 20
            poisoned = [
                await asyncio.to_thread(create, api, "svc0", big) for _ in range(BIG_PROBES)
            ]
            small = [
                await asyncio.to_thread(create, api, f"svc{i}", ["1"]) for i in range(1, SERVICES)
            ]
            print(
                f"\n{len(poisoned) + len(small)} probes placed in "
                f"{time.monotonic() - began:.1f} s for {AGENTS} agents"
            )
            await until(
                lambda: all(
                    len(a.probes) == (BIG_PROBES if a.service == "svc0" else 1) for a in fleet
                ),
                60,
                "every agent got its probes",
            )
            assert len(api.get("/instances").json()) == AGENTS
        for agent in fleet:
            assert agent.ws is not None
            await agent.ws.close()
        await asyncio.gather(*tasks, return_exceptions=True)
        return fleet

    fleet = asyncio.run(scenario())
    assert all(a.closed == (1000, "") for a in fleet), {a.closed for a in fleet}
    assert max(a.largest for a in fleet) <= protocol.MAX_MESSAGE_BYTES
    metrics = httpx.get(server.url + "/metrics").text
    assert f"peephole_agent_connections_total {AGENTS}\n" in metrics  # nobody reconnected


async def until(check: Callable[[], bool], timeout: float, what: str) -> None:
    await wait_until_async(check, timeout, f"timed out: {what}", interval=0.1)
