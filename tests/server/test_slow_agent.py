"""An agent that stops reading is dropped after the send deadline and never holds up an API
request, with peephole's WebSocket protocol (the socket is aborted) and with uvicorn's own
(the gateway cancels its tasks), as under ``uvicorn --factory``."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from websockets.asyncio.client import connect

from peephole import protocol
from peephole.server.main import uvicorn_config

from . import conftest
from .conftest import AGENT_KEY, FakeAgent, client_for, tracepoint

pytestmark = pytest.mark.server

BIG = ["1" * 1000] * 20


@pytest.mark.parametrize("ws", ["peephole", "uvicorn"])
async def test_an_agent_that_stops_reading_is_dropped(
    server_factory: Any, monkeypatch: pytest.MonkeyPatch, ws: str
) -> None:
    if ws == "uvicorn":
        original = uvicorn_config

        def stock(settings: Any, app: Any) -> Any:
            config = original(settings, app)
            config.ws = "auto"
            return config

        monkeypatch.setattr(conftest, "uvicorn_config", stock)
    server = server_factory(send_timeout=3.0)
    good = await FakeAgent(server, "other").connect()
    info = FakeAgent(server, "slow").info
    # max_queue=1: the client takes one message, then lets the socket fill.
    async with connect(server.ws_url + protocol.AGENT_PATH, max_queue=1) as stalled:
        await stalled.send(
            protocol.encode({"type": "hello", "key": AGENT_KEY, "instance": info.to_dict()})
        )
        with client_for(server) as api:
            slowest = 0.0
            for _ in range(300):  # whole lists of ~20 KB probes: far more than sockets hold
                began = time.monotonic()
                body = tracepoint("slow", watches=BIG)
                assert (await asyncio.to_thread(api.post, "/probes", json=body)).status_code == 201
                slowest = max(slowest, time.monotonic() - began)
                if info.instance_id not in server.broker.hub.agents:
                    break
            assert slowest < 1.5, slowest  # never the 3 s send timeout
            deadline = time.monotonic() + 10
            while info.instance_id in server.broker.hub.agents:
                assert time.monotonic() < deadline, "the stalled agent was never dropped"
                await asyncio.sleep(0.05)
            probe = await asyncio.to_thread(api.post, "/probes", json=tracepoint("other"))
            await good.wait_probes(lambda p: [x["id"] for x in p] == [probe.json()["id"]])

            def reason() -> str:
                gone = api.get("/instances", params={"service": "slow", "include_gone": True})
                return str(gone.json()[0]["last_disconnect"])

            deadline = time.monotonic() + 5
            while "did not read" not in reason():
                assert time.monotonic() < deadline, reason()
                await asyncio.sleep(0.05)
    await good.close()
