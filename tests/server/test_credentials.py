"""Revocation and expiry of user tokens and agent keys take effect at once, on every server,
and end the live streams and agent connections that used them; agent keys can be scoped to
services; the audit log names actors by a unique id."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect

from peephole import protocol

from .conftest import ADMIN_TOKEN, FakeAgent, LiveServer, client_for, subscribed
from .test_cluster import wait_listening

pytestmark = pytest.mark.server


async def closed_with(stream: ClientConnection) -> tuple[dict[str, Any], int, str]:
    """The last message before the close, and the close code and reason."""
    last: dict[str, Any] = {}
    try:
        while True:
            last = json.loads(await asyncio.wait_for(stream.recv(), 10))
    except Exception:
        pass
    return last, stream.close_code or 0, stream.close_reason or ""


async def test_a_revoked_token_stops_working_at_once(server: LiveServer, api: httpx.Client) -> None:
    created = api.post("/tokens", json={"name": "ann", "role": "admin"}).json()
    with client_for(server, created["token"]) as as_ann:
        assert as_ann.get("/me").json()["id"] == created["id"]
        url = f"{server.ws_url}/api/v1/stream?token={created['token']}"
        async with connect(url) as stream:
            await subscribed(server)
            revoked = await asyncio.to_thread(api.post, f"/tokens/{created['id']}/revoke")
            assert revoked.status_code == 200 and revoked.json()["active"] is False
            # Within the old 30 s cache window, the token could mint a new admin token.
            assert as_ann.post("/tokens", json={"name": "x", "role": "admin"}).status_code == 401
            assert as_ann.get("/me").status_code == 401
            last, code, reason = await closed_with(stream)
            assert (last, code, reason) == (
                {"type": "error", "reason": "token revoked"},
                1008,
                "token revoked",
            )
    [ann] = [t for t in api.get("/tokens").json() if t["id"] == created["id"]]
    assert ann["revoked_at"] is not None and ann["active"] is False
    audit = api.get("/audit").json()
    assert audit[0]["action"] == "token.revoke" and audit[0]["actor_id"] == 1
    assert audit[0]["details"] == {"id": created["id"], "name": "ann"}
    assert api.post("/tokens/9999/revoke").status_code == 404


async def test_an_expired_token_stops_working(server: LiveServer, api: httpx.Client) -> None:
    created = api.post(
        "/tokens", json={"name": "tmp", "role": "viewer", "expires_seconds": 1.0}
    ).json()
    assert created["expires_at"] > time.time()
    url = f"{server.ws_url}/api/v1/stream?token={created['token']}"
    async with connect(url) as stream:
        with client_for(server, created["token"]) as as_tmp:
            assert as_tmp.get("/me").status_code == 200
            last, code, _ = await closed_with(stream)  # housekeeping ends it on time
            assert (last, code) == ({"type": "error", "reason": "token expired"}, 1008)
            assert as_tmp.get("/me").status_code == 401


async def test_a_revoked_agent_key_disconnects_its_agents(
    server: LiveServer, api: httpx.Client
) -> None:
    created = api.post("/agent-keys", json={"name": "shop-key"}).json()
    agent = await FakeAgent(server, "shop").connect(created["key"])
    bystander = await FakeAgent(server, "shop").connect()
    try:
        await asyncio.to_thread(api.post, f"/agent-keys/{created['id']}/revoke")
        error = await agent.next_message("error")
        assert error["reason"] == "agent key revoked"
        await asyncio.wait_for(agent._reader, 5)  # type: ignore[arg-type]
        assert agent.closed == (1008, "agent key revoked")
        assert bystander.closed is None
        again = FakeAgent(server, "shop")
        with pytest.raises(AssertionError, match="unknown agent key"):
            await again.connect(created["key"])
        [key] = [k for k in api.get("/agent-keys").json() if k["id"] == created["id"]]
        assert key["active"] is False

        def reason() -> str:
            [instance] = [
                i
                for i in api.get("/instances", params={"include_gone": True}).json()
                if i["instance_id"] == agent.instance_id
            ]
            return str(instance["last_disconnect"])

        deadline = time.monotonic() + 5
        while "agent key revoked" not in reason():
            assert time.monotonic() < deadline, reason()
            await asyncio.sleep(0.02)
    finally:
        await bystander.close()


async def test_an_agent_key_scoped_to_services(server: LiveServer, api: httpx.Client) -> None:
    created = api.post("/agent-keys", json={"name": "billing-only", "services": ["billing"]}).json()
    agent = await FakeAgent(server, "billing").connect(created["key"])
    await agent.close()
    with pytest.raises(AssertionError, match="may not join service 'shop'"):
        await FakeAgent(server, "shop").connect(created["key"])


async def test_an_expired_agent_key_is_refused(server: LiveServer, api: httpx.Client) -> None:
    # 3 s: long enough for the first connection to be made on a loaded machine
    created = api.post("/agent-keys", json={"name": "brief", "expires_seconds": 3.0}).json()
    agent = await FakeAgent(server, "shop").connect(created["key"])
    await asyncio.wait_for(agent._reader, 15)  # type: ignore[arg-type]
    assert agent.closed == (1008, "agent key expired")
    with pytest.raises(AssertionError, match="unknown agent key"):
        await FakeAgent(server, "shop").connect(created["key"])


@pytest.mark.postgres
async def test_revocation_reaches_every_server(server_factory: Any, postgres_url: str) -> None:
    one = server_factory(postgres_url)
    two = server_factory(postgres_url)
    await wait_listening(one, two)
    with client_for(one) as api_one:
        token = api_one.post("/tokens", json={"name": "bob", "role": "viewer"}).json()
        key = api_one.post("/agent-keys", json={"name": "k"}).json()
    agent = await FakeAgent(two, "shop").connect(key["key"])
    url = f"{two.ws_url}/api/v1/stream?token={token['token']}"
    async with connect(url) as stream:
        await subscribed(two)
        with client_for(one) as api_one:
            api_one.post(f"/tokens/{token['id']}/revoke")
            api_one.post(f"/agent-keys/{key['id']}/revoke")
        with client_for(two, token["token"]) as as_bob:
            assert as_bob.get("/me").status_code == 401  # no cache on the other server
        last, code, _ = await closed_with(stream)
        assert (last["reason"], code) == ("token revoked", 1008)
    await asyncio.wait_for(agent._reader, 10)  # type: ignore[arg-type]
    assert agent.closed == (1008, "agent key revoked")


def test_credentials_reject_bad_input(api: httpx.Client) -> None:
    assert (
        api.post("/tokens", json={"name": "x", "role": "viewer", "expires_seconds": -1}).status_code
        == 422
    )
    assert api.post("/agent-keys", json={"name": "x", "services": []}).status_code == 422
    assert api.post("/tokens/0/revoke").status_code == 422
    assert protocol.MAX_HELLO_BYTES < protocol.MAX_MESSAGE_BYTES


def test_the_cli_creates_lists_and_revokes(server: LiveServer, api: httpx.Client) -> None:
    from click.testing import CliRunner

    from peephole.cli.main import cli

    def run(*args: str) -> str:
        result = CliRunner().invoke(cli, ["--url", server.url, "--token", ADMIN_TOKEN, *args])
        assert result.exit_code == 0, result.output
        return result.output

    made = json.loads(
        run("tokens", "create", "eve", "--role", "viewer", "--expires", "2h", "--json")
    )
    assert made["expires_at"] == pytest.approx(time.time() + 7200, abs=60)
    assert f"{made['id']}  eve  viewer  active until " in run("tokens", "list")
    assert run("tokens", "revoke", str(made["id"])).startswith(
        f"token {made['id']} for eve: revoked "
    )
    with client_for(server, made["token"]) as as_eve:
        assert as_eve.get("/me").status_code == 401
    key = run("agent-keys", "create", "k", "--service", "shop", "--service", "billing")
    assert key.startswith("agent key 2 k for shop, billing (active), shown once: phk_")
    assert "2  k  shop,billing  active" in run("agent-keys", "list")
    assert "agent key 2 k: revoked " in run("agent-keys", "revoke", "2")


async def test_a_missed_revocation_notice_still_ends_the_stream(
    server: LiveServer, api: httpx.Client
) -> None:
    """A revocation this server was not told about (say its PostgreSQL listener was
    reconnecting) is found by housekeeping: the stream ends within a second or so."""
    from peephole.server.store import credentials

    created = api.post("/tokens", json={"name": "zed", "role": "viewer"}).json()
    async with connect(f"{server.ws_url}/api/v1/stream?token={created['token']}") as stream:
        await subscribed(server)
        await asyncio.to_thread(
            server.broker.db.run, lambda s: credentials.revoke_token(s, created["id"], time.time())
        )
        last, code, _ = await closed_with(stream)
        assert (last, code) == ({"type": "error", "reason": "token revoked"}, 1008)
