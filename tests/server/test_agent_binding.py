"""What an agent key holder can do to others: nothing. An instance id belongs to the
connection that registered it, events count only for probes sent to that connection, and
numbers no column can hold close the sender with 1008 and a reason."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import connect

from peephole import protocol

from .conftest import FakeAgent, LiveServer, placed, snapshot

pytestmark = pytest.mark.server


async def test_an_instance_id_cannot_be_taken_over(
    server: LiveServer, api: httpx.Client, agents: Any
) -> None:
    owner = await agents("shop")
    with pytest.raises(AssertionError, match="is in use by another connection"):
        await FakeAgent(server, "billing", instance_id=owner.instance_id).connect()
    probe_id = await placed(api, owner)  # the owner still gets its probes
    assert owner.closed is None and probe_id
    [instance] = api.get("/instances").json()
    assert (instance["instance_id"], instance["service"]) == (owner.instance_id, "shop")


async def test_events_count_only_for_probes_sent_to_the_connection(
    api: httpx.Client, agents: Any
) -> None:
    victim = await agents("billing")
    attacker = await agents("shop")
    probe_id = await placed(api, victim, hit_limit=2)
    await attacker.send_events([snapshot(probe_id), snapshot(probe_id)])  # acked, not stored
    probe = api.get(f"/probes/{probe_id}").json()
    assert (probe["captures"], probe["state"]) == (0, "pending")
    assert api.get("/events").json()["events"] == []
    await victim.send_events([snapshot(probe_id)])
    assert api.get(f"/probes/{probe_id}").json()["captures"] == 1


@pytest.mark.parametrize(
    "message,reason",
    [
        (
            '{"type": "events", "seq": 1, "events": [{"id": "a", "type": "log", "time": NaN}]}',
            "NaN is not a JSON number",
        ),
        (
            '{"type": "events", "seq": 1, "events": [{"id": "a", "type": "exception", '
            '"time": 1e300}]}',
            "time must be a time in seconds",
        ),
        (
            '{"type": "events", "seq": 1, "events": [{"id": "a", "type": "exception", '
            '"time": 1, "count": ' + str(2**63) + "}]}",
            "count must be an integer",
        ),
        ('{"type": "events", "seq": ' + str(2**64) + ', "events": []}', "seq must be an integer"),
        (
            '{"type": "events", "seq": 1, "events": [], "dropped": ' + str(2**63) + "}",
            "dropped must be",
        ),
        (
            '{"type": "status", "probes": [{"probe_id": "x", "state": "active", "hits": '
            + str(2**63)
            + "}]}",
            "probes[0].hits must be an integer from 0 to 9223372036854775807",
        ),
        ('{"type": "heartbeat", "time": Infinity}', "Infinity is not a JSON number"),
    ],
)
async def test_numbers_no_column_holds_are_1008(
    api: httpx.Client, agents: Any, message: str, reason: str
) -> None:
    bad = await agents("shop")
    good = await agents("shop")
    assert bad.ws is not None
    await bad.ws.send(message)
    await asyncio.wait_for(bad._reader, 5)
    assert bad.closed is not None and bad.closed[0] == 1008 and reason in bad.closed[1], bad.closed
    probe_id = await placed(api, good)
    await good.send_events([snapshot(probe_id)])


async def test_a_hello_with_a_huge_pid_is_refused(server: LiveServer) -> None:
    agent = FakeAgent(server, "shop")
    agent.info.pid = 2**63
    with pytest.raises(AssertionError, match=r"instance\.pid must be an integer"):
        await agent.connect()


async def test_a_first_frame_larger_than_a_hello_is_refused(server: LiveServer) -> None:
    async with connect(server.ws_url + protocol.AGENT_PATH, max_size=None) as ws:
        await ws.send("x" * (protocol.MAX_HELLO_BYTES + 1))
        await ws.wait_closed()
        assert ws.close_code == 1009


@pytest.mark.postgres
async def test_an_instance_id_cannot_be_taken_over_on_another_server(
    server_factory: Any, postgres_url: str
) -> None:
    one = server_factory(postgres_url)
    two = server_factory(postgres_url)
    owner = await FakeAgent(one, "shop").connect()
    try:
        with pytest.raises(AssertionError, match="is in use by another connection"):
            await FakeAgent(two, "billing", instance_id=owner.instance_id).connect()
        await owner.close()
        deadline = time.monotonic() + 5  # once the owner is gone, the id is free again
        while True:
            try:
                again = await FakeAgent(two, "shop", instance_id=owner.instance_id).connect()
                break
            except AssertionError:
                assert time.monotonic() < deadline
                await asyncio.sleep(0.1)
        await again.close()
    finally:
        await owner.close()


async def test_connections_waiting_for_hello_are_limited(
    server: LiveServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    from peephole.server import gateway

    monkeypatch.setattr(gateway, "MAX_UNAUTHENTICATED", 5)
    url = server.ws_url + protocol.AGENT_PATH
    idle = [await connect(url) for _ in range(5)]
    try:
        deadline = time.monotonic() + 5
        while server.broker.hub.unauthenticated < 5:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.01)
        async with connect(url) as refused:
            assert protocol.decode(await refused.recv())["reason"] == (
                "too many connections waiting for hello"
            )
            await refused.wait_closed()
            assert refused.close_code == 1013
    finally:
        for ws in idle:
            await ws.close()
    deadline = time.monotonic() + 5
    while server.broker.hub.unauthenticated:  # room again once they are gone
        assert time.monotonic() < deadline
        await asyncio.sleep(0.01)
    agent = await FakeAgent(server, "shop").connect()
    await agent.close()
