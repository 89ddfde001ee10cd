"""Two server processes on one PostgreSQL tell each other what changed (LISTEN/NOTIFY)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from websockets.asyncio.client import connect

from peephole.server.cluster import conninfo
from waiting import wait_until_async

from .conftest import FakeAgent, client_for, snapshot, subscribed, tracepoint

pytestmark = [pytest.mark.server, pytest.mark.postgres]


def test_conninfo_keeps_the_options() -> None:
    url = "postgresql+psycopg://postgres@127.0.0.1:5432/test?options=-csearch_path%3Dx"
    assert conninfo(url) == "postgresql://postgres@127.0.0.1:5432/test?options=-csearch_path%3Dx"


async def wait_listening(*servers: Any) -> None:
    await wait_until_async(
        lambda: all(s.broker.cluster.listening.is_set() for s in servers),
        10,
        "the cluster listeners never connected",
    )


async def test_changes_cross_server_processes(server_factory: Any, postgres_url: str) -> None:
    one = server_factory(postgres_url)
    two = server_factory(postgres_url)
    await wait_listening(one, two)
    agent = await FakeAgent(one, "shop").connect()
    other = await FakeAgent(two, "shop").connect()
    try:
        with client_for(two) as api_two:
            probe = api_two.post("/probes", json=tracepoint(hit_limit=2)).json()
            await agent.wait_probes(lambda p: [x["id"] for x in p] == [probe["id"]])
            await other.wait_probes(lambda p: len(p) == 1)

            stream_url = f"{two.ws_url}/api/v1/stream?token=test-admin-token&type=snapshot"
            async with connect(stream_url) as stream:
                await subscribed(two)
                await agent.send_events([snapshot(probe["id"])])
                message = json.loads(await asyncio.wait_for(stream.recv(), 5))
                assert message["event"]["instance_id"] == agent.instance_id

            await agent.send_events([snapshot(probe["id"])])  # the limit, reached on `one`
            await other.wait_probes(lambda p: p == [])  # removed by `two` too

            api_two.put("/services/shop/policy", json={"redact_names": ["pin"]})
            pushed = await agent.next_message("policy")
            assert pushed["config"]["redact_names"] == ["pin"]
    finally:
        await agent.close()
        await other.close()


@pytest.mark.timeout(60)
def test_processes_starting_at_once_migrate_and_seed_once(postgres_url: str, tmp_path: Any) -> None:
    from concurrent.futures import ThreadPoolExecutor

    from peephole.server.app import create_app
    from peephole.server.settings import ServerSettings

    settings = ServerSettings(data_dir=str(tmp_path), database=postgres_url)
    with ThreadPoolExecutor(4) as pool:
        apps = list(pool.map(lambda _: create_app(settings), range(4)))
    created = [app.state.new_credentials for app in apps if app.state.new_credentials]
    assert len(created) == 1 and set(created[0]) == {"admin_token", "agent_key"}
    for app in apps:
        app.state.broker.db.close()
