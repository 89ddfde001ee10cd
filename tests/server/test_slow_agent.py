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
SEND_TIMEOUT = 6.0  # seconds the server gives an agent to read, then drops it
HANG = 60.0  # seconds of waiting that only a hang exceeds (the machine may be loaded)


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
    server = server_factory(send_timeout=SEND_TIMEOUT)
    good = await FakeAgent(server, "other").connect()
    info = FakeAgent(server, "slow").info
    # max_queue=1: the client takes one message, then lets the socket fill.
    async with connect(server.ws_url + protocol.AGENT_PATH, max_queue=1) as stalled:
        await stalled.send(
            protocol.encode({"type": "hello", "key": AGENT_KEY, "instance": info.to_dict()})
        )
        with client_for(server) as api:
            answered_unsent = 0
            for _ in range(300):  # whole lists of ~20 KB probes: far more than sockets hold
                body = tracepoint("slow", watches=BIG)
                response = await asyncio.to_thread(api.post, "/probes", json=body)
                assert response.status_code == 201
                held = server.broker.hub.agents.get(info.instance_id)
                if held is None or held.kicked is not None:
                    break
                if response.json()["id"] not in held.sent:
                    answered_unsent += 1
            # A request that waited on the stalled agent would be answered only once the send
            # deadline dropped it; these were answered while it was still connected and its
            # writer (stuck on earlier lists) had not even taken their probe yet.
            assert answered_unsent > 0
            deadline = time.monotonic() + SEND_TIMEOUT + HANG  # a bound that only catches hangs
            while info.instance_id in server.broker.hub.agents:
                assert time.monotonic() < deadline, "the stalled agent was never dropped"
                await asyncio.sleep(0.05)
            probe = await asyncio.to_thread(api.post, "/probes", json=tracepoint("other"))
            await good.wait_probes(lambda p: [x["id"] for x in p] == [probe.json()["id"]])

            def reason() -> str:
                gone = api.get("/instances", params={"service": "slow", "include_gone": True})
                return str(gone.json()[0]["last_disconnect"])

            deadline = time.monotonic() + HANG
            while "did not read" not in reason():
                assert time.monotonic() < deadline, reason()
                await asyncio.sleep(0.05)
    await good.close()
