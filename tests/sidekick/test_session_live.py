"""A fake Sidekick agent speaking real WebSocket frames to a real server (uvicorn in this
process): key check before the upgrade, registration, probes in, events and statuses out."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import InvalidStatus

from peephole import protocol
from peephole.cli.main import run
from server.conftest import ADMIN_TOKEN, AGENT_KEY, LiveServer, client_for, make_settings
from sidekick.fixture_frames import frames
from waiting import wait_until

pytestmark = pytest.mark.server
SERVICE = "demo-node"


def headers(key: str = AGENT_KEY, **extra: str) -> dict[str, str]:
    values = {
        "x-sidekick-api-key": key,
        "x-sidekick-app-instance-id": f"4242:{uuid.uuid4()}@vm",
        "x-sidekick-app-name": SERVICE,
        "x-sidekick-app-stage": "dev",
        "x-sidekick-app-version": "1.2.3",
        "x-sidekick-app-hostname": "vm",
        "x-sidekick-app-runtime": "nodejs",
        "x-sidekick-app-tag-team": "core",
    }
    values.update(extra)
    return {k: v for k, v in values.items() if v}


class FakeSidekick:
    """The agent side: it asks what Node asks at start and records every request."""

    def __init__(self, ws: ClientConnection, instance_id: str) -> None:
        self.ws = ws
        self.instance_id = instance_id
        self.inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

    async def start(self) -> None:
        for name in ("FilterTracePointsRequest", "FilterLogPointsRequest", "GetConfigRequest"):
            await self.send({"type": "Request", "name": name, "id": str(uuid.uuid4())})
        for name in ("FilterTracePointsResponse", "FilterLogPointsResponse", "GetConfigResponse"):
            assert (await self.next())["name"] == name

    async def send(self, frame: dict[str, Any]) -> None:
        await self.ws.send(json.dumps(frame))

    async def next(self, name: str | None = None, timeout: float = 10.0) -> dict[str, Any]:
        """The next frame the server sends (of ``name``: others are skipped)."""
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            left = deadline - asyncio.get_running_loop().time()
            frame: dict[str, Any] = json.loads(
                await asyncio.wait_for(self.ws.recv(), max(left, 0.01))
            )
            if name is None or frame.get("name") == name:
                return frame

    async def answer(self, request: dict[str, Any], **fields: Any) -> None:
        await self.send(
            {
                "type": "Response",
                "name": request["name"].replace("Request", "Response"),
                "requestId": request["id"],
                "source": "Agent",
                "erroneous": False,
                "errorCode": 0,
                **fields,
            }
        )

    async def status(self, *trace_points: dict[str, Any]) -> None:
        await self.send(
            {
                "type": "Event",
                "name": "ApplicationStatusEvent",
                "id": str(uuid.uuid4()),
                "time": 1796298257000,
                "application": {"tracePoints": list(trace_points), "logPoints": []},
            }
        )


@pytest.fixture
def server(tmp_path: Path) -> Iterator[LiveServer]:
    live = LiveServer(make_settings(f"sqlite:///{tmp_path / 'p.db'}", tmp_path)).start()
    yield live
    live.stop()


@pytest.fixture
def api(server: LiveServer) -> Iterator[httpx.Client]:
    with client_for(server) as client:
        yield client


@pytest.fixture
async def agent(server: LiveServer) -> AsyncIterator[FakeSidekick]:
    sent = headers()
    async with connect(server.ws_url + "/app", additional_headers=sent) as ws:
        fake = FakeSidekick(ws, sent["x-sidekick-app-instance-id"])
        await fake.start()
        yield fake


@pytest.mark.parametrize(
    "sent",
    [
        headers(key="wrong-key"),
        headers(key=""),
        headers(**{"x-sidekick-app-instance-id": ""}),
    ],
    ids=["wrong key", "no key", "no instance id"],
)
async def test_refused_before_the_upgrade(server: LiveServer, sent: dict[str, str]) -> None:
    with pytest.raises(InvalidStatus) as refused:
        await connect(server.ws_url + "/app", additional_headers=sent)
    assert refused.value.response.status_code == 401
    assert not server.broker.hub.agents


async def test_connected_agent_is_an_instance(agent: FakeSidekick, api: httpx.Client) -> None:
    [instance] = api.get("/instances", params={"service": SERVICE}).json()
    assert instance["instance_id"] == agent.instance_id and instance["connected"]
    assert instance["environment"] == "dev" and instance["version"] == "1.2.3"
    assert instance["tags"] == {"team": "core"} and instance["agent_version"] == "sidekick"
    assert instance["pid"] == 4242 and instance["runtime"] == "nodejs"
    source = api.get(f"/services/{SERVICE}/source", params={"path": "app.js"})
    assert source.status_code == 404 and "not available for Sidekick" in source.text


def snapshot(probe_id: str) -> dict[str, Any]:
    """The recorded Node snapshot, now of ``probe_id``."""
    recorded = next(f for n, f in frames("agent", "TracePointSnapshotEvent") if "node-" in n)
    return {**recorded, "id": str(uuid.uuid4()), "tracePointId": probe_id}


async def test_probe_round_trip(agent: FakeSidekick, api: httpx.Client) -> None:
    body = {"kind": "tracepoint", "file": "app.js", "line": 11, "target": {"service": SERVICE}}
    probe = api.post("/probes", json={**body, "condition": "user.vip == True"}).json()
    put = await agent.next("PutTracePointRequest")
    assert put["tracePointId"] == probe["id"] and put["fileName"] == "/app.js"
    assert put["lineNo"] == 11 and put["conditionExpression"] == "user.vip === true"
    await agent.answer(put)
    await agent.status({"id": probe["id"], "fileName": "/app.js", "lineNo": 11})

    def state() -> Any:
        statuses = api.get(f"/probes/{probe['id']}").json()["statuses"]
        return statuses and statuses[0]["state"] == "active"

    wait_until(state, what="the probe never became active")
    await agent.send(snapshot(probe["id"]))
    stored = wait_until(
        lambda: api.get("/events", params={"probe_id": probe["id"]}).json()["events"],
        what="the snapshot was never stored",
    )
    event = api.get(f"/events/{stored[0]['id']}").json()
    assert event["type"] == "snapshot" and event["line"] == 11
    assert event["frames"][0]["locals"]["cart"]["fields"]["id"] == {"t": "str", "v": "c1"}
    assert event["frames"][1]["line"] == 19  # Node's 0-based caller line, made 1-based
    assert api.delete(f"/probes/{probe['id']}").status_code == 204
    removal = await agent.next("RemoveTracePointRequest")
    assert removal["tracePointId"] == probe["id"]


async def test_hit_limit_is_enforced_by_the_server(agent: FakeSidekick, api: httpx.Client) -> None:
    body = {"kind": "tracepoint", "file": "app.js", "line": 11, "hit_limit": 2}
    probe = api.post("/probes", json={**body, "target": {"service": SERVICE}}).json()
    put = await agent.next("PutTracePointRequest")
    assert put["expireCount"] == -1 and put["tags"]  # Node keeps no limit of its own
    for _ in range(2):
        await agent.send(snapshot(probe["id"]))
    removal = await agent.next("RemoveTracePointRequest")
    assert removal["tracePointId"] == probe["id"]
    assert api.get(f"/probes/{probe['id']}").json()["captures"] == 2


async def test_failures_become_probe_statuses(agent: FakeSidekick, api: httpx.Client) -> None:
    body = {"kind": "logpoint", "file": "nope.js", "line": 3, "template": "x={x}"}
    probe = api.post("/probes", json={**body, "target": {"service": SERVICE}}).json()
    put = await agent.next("PutLogPointRequest")
    assert put["logExpression"] == "x={{&x}}"
    await agent.answer(
        put, erroneous=True, errorCode=2050, errorMessage="Error occurred while putting"
    )
    formatted = {"kind": "logpoint", "file": "app.js", "line": 3, "template": "{x:.2f}"}
    refused = api.post("/probes", json={**formatted, "target": {"service": SERVICE}}).json()

    def statuses(probe_id: str) -> Any:
        return api.get(f"/probes/{probe_id}").json()["statuses"]

    failed = wait_until(lambda: statuses(probe["id"]), what="no status for the failed put")
    assert failed[0]["state"] == "error"
    assert failed[0]["message"] == "Error occurred while putting (Sidekick error 2050)"
    translated = wait_until(lambda: statuses(refused["id"]), what="no status for the refusal")
    assert translated[0]["state"] == "error" and "dotted paths only" in translated[0]["message"]


async def test_a_reconnect_replaces_the_older_connection(
    server: LiveServer, api: httpx.Client
) -> None:
    sent = headers()
    url = server.ws_url + "/app"
    async with connect(url, additional_headers=sent) as first:
        await FakeSidekick(first, "").start()  # registered: its answers come after that
        async with connect(url, additional_headers=sent) as second:
            await FakeSidekick(second, "").start()
            await asyncio.wait_for(first.wait_closed(), 10)
            assert len(server.broker.hub.agents) == 1

            def instance() -> dict[str, Any]:
                [found] = api.get("/instances", params={"include_gone": "true"}).json()
                return dict(found)

            # the older connection's cleanup has run once its reason is stored
            replaced = wait_until(
                lambda: "replaced" in (instance()["last_disconnect"] or ""),
                what="the older connection's end was not recorded",
            )
            assert replaced and instance()["connected"]  # the newer one still is


async def test_a_key_for_other_services_is_refused_and_revoking_a_key_ends_it(
    server: LiveServer, api: httpx.Client
) -> None:
    other = api.post("/agent-keys", json={"name": "other", "services": ["shop"]}).json()
    with pytest.raises(InvalidStatus) as refused:
        await connect(server.ws_url + "/app", additional_headers=headers(key=other["key"]))
    assert refused.value.response.status_code == 403
    mine = api.post("/agent-keys", json={"name": "mine", "services": [SERVICE]}).json()
    async with connect(server.ws_url + "/app", additional_headers=headers(key=mine["key"])) as ws:
        await FakeSidekick(ws, "").start()
        assert api.post(f"/agent-keys/{mine['id']}/revoke").status_code == 200
        await asyncio.wait_for(ws.wait_closed(), 10)
    assert ws.close_code == 1008


async def test_a_bad_frame_costs_only_that_frame(server: LiveServer, agent: FakeSidekick) -> None:
    await agent.ws.send("not json")
    await agent.ws.send("[1, 2]")
    broken = {"tracePoints": 5}  # not a list: the status event cannot be read
    await agent.send({"type": "Event", "name": "ApplicationStatusEvent", "application": broken})
    await agent.send({"type": "Request", "name": "GetConfigRequest", "id": "after"})
    answer = await agent.next("GetConfigResponse")
    assert answer["requestId"] == "after"
    assert server.broker.metrics.agent_messages_rejected_total == 3


async def test_an_instance_id_of_another_service_is_not_taken_over(server: LiveServer) -> None:
    url = server.ws_url + "/app"
    theirs = headers(**{"x-sidekick-app-name": "payments"})
    async with connect(url, additional_headers=theirs) as first:
        await FakeSidekick(first, "").start()
        same_id = {**headers(), "x-sidekick-app-instance-id": theirs["x-sidekick-app-instance-id"]}
        with pytest.raises(InvalidStatus) as refused:
            await connect(url, additional_headers=same_id)
        assert refused.value.response.status_code == 409
        await first.send(json.dumps({"type": "Request", "name": "GetConfigRequest", "id": "x"}))
        assert json.loads(await first.recv())["requestId"] == "x"  # still connected


async def test_the_cli_lists_the_instance_and_shows_its_snapshot(
    agent: FakeSidekick,
    api: httpx.Client,
    server: LiveServer,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setenv("PEEPHOLE_URL", server.url)
    monkeypatch.setenv("PEEPHOLE_TOKEN", ADMIN_TOKEN)
    monkeypatch.setenv("COLUMNS", "200")
    body = {"kind": "tracepoint", "file": "app.js", "line": 11, "target": {"service": SERVICE}}
    probe = api.post("/probes", json=body).json()
    await agent.next("PutTracePointRequest")
    await agent.send(snapshot(probe["id"]))
    stored = wait_until(
        lambda: api.get("/events", params={"probe_id": probe["id"]}).json()["events"],
        what="the snapshot was never stored",
    )
    capsys.readouterr()
    assert run(["instances", "--service", SERVICE]) == 0
    assert agent.instance_id in capsys.readouterr().out
    assert run(["snapshots", "show", stored[0]["id"]]) == 0
    shown = capsys.readouterr().out
    assert "checkout" in shown and "app.js:19" in shown  # the caller's line, 1-based
    assert "id = 'c1'" in shown and "vip = True" in shown


async def test_frames_after_a_too_big_one_are_not_handled(
    server: LiveServer, agent: FakeSidekick
) -> None:
    handled = server.broker.metrics.agent_messages_total
    too_big = json.dumps({"type": "Event", "pad": "x" * protocol.MAX_MESSAGE_BYTES})
    await agent.ws.send(too_big)
    await agent.send({"type": "Request", "name": "GetConfigRequest", "id": "after"})
    await asyncio.wait_for(agent.ws.wait_closed(), 10)
    assert agent.ws.close_code == 1009
    wait_until(lambda: not server.broker.hub.agents, what="the connection was not ended")
    assert server.broker.metrics.agent_messages_total == handled  # "after" was not
