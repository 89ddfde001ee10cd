"""The agent gateway over real WebSockets: registration, probe push, events, status, limits,
bad input, source requests, policy, the live stream, and a server restart."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from peephole import protocol

from .conftest import (
    AGENT_KEY,
    FakeAgent,
    LiveServer,
    client_for,
    exception,
    placed,
    snapshot,
    subscribed,
    tracepoint,
)

pytestmark = pytest.mark.server


def ids(probes: list[dict[str, Any]]) -> list[str]:
    return [p["id"] for p in probes]


async def test_registration_shows_instance_and_service(api: httpx.Client, agents: Any) -> None:
    agent = await agents("shop", version="1.2", environment="prod", tags={"zone": "eu"})
    assert agent.welcome["instance_id"] == agent.instance_id
    assert agent.welcome["config"] == protocol.AgentPolicy().to_dict()
    [instance] = api.get("/instances").json()
    assert instance["instance_id"] == agent.instance_id
    assert (instance["service"], instance["version"], instance["tags"]) == (
        "shop",
        "1.2",
        {"zone": "eu"},
    )
    assert instance["connected"] is True and instance["runtime"] == "CPython 3.11"
    [service] = api.get("/services").json()
    assert service == {
        "name": "shop",
        "instances": 1,
        "versions": ["1.2"],
        "environments": ["prod"],
        "last_seen": service["last_seen"],
    }


async def test_disconnected_instance_is_gone_unless_asked(api: httpx.Client, agents: Any) -> None:
    agent = await agents("shop")
    await agent.close()
    deadline = time.monotonic() + 5
    while api.get("/instances").json() and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
    assert api.get("/instances").json() == []
    [gone] = api.get("/instances", params={"include_gone": "true"}).json()
    assert gone["connected"] is False
    assert api.get("/services").json()[0]["instances"] == 0


async def test_bad_agent_key_is_refused(server: LiveServer) -> None:
    agent = FakeAgent(server)
    async with connect(server.ws_url + protocol.AGENT_PATH) as ws:
        await ws.send(
            protocol.encode({"type": "hello", "key": "wrong", "instance": agent.info.to_dict()})
        )
        error = protocol.decode(await ws.recv())
        assert error == {"type": "error", "reason": "unknown agent key"}
        await ws.wait_closed()
        assert (ws.close_code, ws.close_reason) == (1008, "unknown agent key")


async def test_probe_reaches_matching_instances_only(api: httpx.Client, agents: Any) -> None:
    eu = await agents("shop", version="2", environment="prod", tags={"zone": "eu"})
    us = await agents("shop", version="2", environment="prod", tags={"zone": "us"})
    old = await agents("shop", version="1", environment="prod", tags={"zone": "eu"})
    other = await agents("billing")
    probe = api.post(
        "/probes",
        json=tracepoint(target={"service": "shop", "version": "2", "tags": {"zone": "eu"}}),
    ).json()
    await eu.wait_probes(lambda p: ids(p) == [probe["id"]])
    pinned = api.post("/probes", json=tracepoint(target={"instances": [us.instance_id]})).json()
    await us.wait_probes(lambda p: ids(p) == [pinned["id"]])
    # A probe for all four, sent after the others: once each has it, anything the server
    # had wrongly sent one of them before has arrived too (one connection keeps its order).
    everyone = [agent.instance_id for agent in (eu, us, old, other)]
    last = api.post("/probes", json=tracepoint(target={"instances": everyone})).json()
    for agent in (eu, us, old, other):
        await agent.wait_probes(lambda p: last["id"] in ids(p))
    assert sorted(ids(eu.probes)) == sorted([probe["id"], last["id"]])
    assert ids(old.probes) == [last["id"]] and ids(other.probes) == [last["id"]]
    [spec] = [protocol.ProbeSpec.from_dict(p) for p in eu.probes if p["id"] == probe["id"]]
    assert (spec.file, spec.line, spec.hit_limit, spec.version) == ("shop/cart.py", 42, 10, 1)


async def test_probe_waits_for_a_late_instance(api: httpx.Client, agents: Any) -> None:
    probe = api.post("/probes", json=tracepoint("later")).json()
    assert probe["summary"] == "waiting for a matching instance"
    agent = await agents("later")
    assert ids(agent.probes) == [probe["id"]]  # in the first probes message


async def test_edit_bumps_version_and_pushes(api: httpx.Client, agents: Any) -> None:
    agent = await agents("shop")
    probe = api.post("/probes", json=tracepoint()).json()
    await agent.wait_probes(lambda p: ids(p) == [probe["id"]])
    api.patch(f"/probes/{probe['id']}", json={"condition": "total > 100", "watches": ["total"]})
    [spec] = await agent.wait_probes(lambda p: p and p[0]["version"] == 2)
    assert (spec["condition"], spec["watches"]) == ("total > 100", ["total"])


async def test_disable_enable_delete_reach_the_agent(api: httpx.Client, agents: Any) -> None:
    agent = await agents("shop")
    probe = api.post("/probes", json=tracepoint()).json()
    await agent.wait_probes(lambda p: len(p) == 1)
    api.post(f"/probes/{probe['id']}/disable")
    await agent.wait_probes(lambda p: p == [])
    api.post(f"/probes/{probe['id']}/enable")
    await agent.wait_probes(lambda p: ids(p) == [probe["id"]])
    api.delete(f"/probes/{probe['id']}")
    await agent.wait_probes(lambda p: p == [])


async def test_status_makes_the_summary(api: httpx.Client, agents: Any) -> None:
    one, two, three = [await agents("shop") for _ in range(3)]
    probe = api.post("/probes", json=tracepoint()).json()
    await one.send_status({"probe_id": probe["id"], "state": "active", "hits": 4, "captures": 2})
    await two.send_status(
        {
            "probe_id": probe["id"],
            "state": "error",
            "message": "no code at line 42; nearest: 41, 44",
        }
    )
    await three.send_status({"probe_id": "unknown-probe", "state": "active"})
    deadline = time.monotonic() + 5
    while True:
        view = api.get(f"/probes/{probe['id']}").json()
        if len(view["statuses"]) == 2 or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.02)
    assert view["state"] == "active"
    assert view["summary"] == (
        "active on 1 of 3 instances; 1 error: no code at line 42; nearest: 41, 44; 1 pending"
    )
    active = next(s for s in view["statuses"] if s["instance_id"] == one.instance_id)
    assert (active["hits"], active["captures"]) == (4, 2)


async def test_hit_limit_counts_across_agents(api: httpx.Client, agents: Any) -> None:
    first, second = await agents("shop"), await agents("shop")
    probe = api.post("/probes", json=tracepoint(hit_limit=5)).json()
    await first.wait_probes(lambda p: len(p) == 1)
    await second.wait_probes(lambda p: len(p) == 1)
    await first.send_events([snapshot(probe["id"]) for _ in range(3)])
    assert api.get(f"/probes/{probe['id']}").json()["captures"] == 3
    await second.send_events([snapshot(probe["id"]) for _ in range(2)])
    await first.wait_probes(lambda p: p == [])
    await second.wait_probes(lambda p: p == [])
    view = api.get(f"/probes/{probe['id']}").json()
    assert (view["state"], view["captures"]) == ("done", 5)
    assert view["summary"] == "done: hit limit of 5 reached (5 captures)"
    late = await agents("shop")
    assert late.probes == []


async def test_expired_probe_is_removed(api: httpx.Client, agents: Any) -> None:
    agent = await agents("shop")
    probe = api.post("/probes", json=tracepoint(expire_seconds=1.5)).json()
    await agent.wait_probes(lambda p: len(p) == 1)
    await agent.wait_probes(lambda p: p == [], timeout=5)
    assert api.get(f"/probes/{probe['id']}").json()["state"] == "expired"
    revived = api.patch(f"/probes/{probe['id']}", json={"expire_seconds": 60}).json()
    assert revived["state"] == "pending"
    await agent.wait_probes(lambda p: len(p) == 1)


async def test_events_are_acked_stored_and_paged(api: httpx.Client, agents: Any) -> None:
    agent = await agents("shop")
    other = await agents("billing")
    p1, p2 = await placed(api, agent, hit_limit=100), await placed(api, other)
    sent = [snapshot(p1, time=1000.0 + i) for i in range(7)]
    await agent.send_events(sent, dropped=3)
    await other.send_events([snapshot(p2, time=2000.0)])
    page = api.get("/events", params={"service": "shop", "limit": 3}).json()
    assert [e["id"] for e in page["events"]] == [e["id"] for e in reversed(sent[-3:])]
    rest = api.get(
        "/events", params={"service": "shop", "limit": 10, "cursor": page["next_cursor"]}
    ).json()
    assert len(rest["events"]) == 4 and rest["next_cursor"] is None
    first = rest["events"][-1]
    assert (first["service"], first["instance_id"]) == ("shop", agent.instance_id)
    assert api.get(f"/events/{first['id']}").json() == first
    assert len(api.get("/events", params={"probe_id": p2}).json()["events"]) == 1
    assert len(api.get("/events", params={"since": 1003.5}).json()["events"]) == 4
    assert api.get("/events", params={"type": "bogus"}).status_code == 422
    [instance] = api.get("/instances", params={"service": "shop"}).json()
    assert instance["dropped"] == 3


async def test_agent_cannot_claim_another_identity(api: httpx.Client, agents: Any) -> None:
    agent = await agents("shop")
    probe_id = await placed(api, agent)
    await agent.send_events([snapshot(probe_id, service="billing", instance_id="someone-else")])
    [event] = api.get("/events").json()["events"]
    assert (event["service"], event["instance_id"]) == ("shop", agent.instance_id)


async def test_exception_groups_through_the_api(api: httpx.Client, agents: Any) -> None:
    v1 = await agents("shop", version="1.0")
    v2 = await agents("checkout", version="2.0")
    await v1.send_events([exception(count=1), exception(count=4)])
    await v2.send_events([exception(trace_id="ab" * 16)])
    await v2.send_events([exception("TypeError", "fp-other")])
    groups = api.get("/exceptions").json()
    assert [g["fingerprint"] for g in groups] == ["fp-other", "fp1"]
    group = groups[1]
    assert (group["count"], group["exc_type"]) == (6, "KeyError")
    assert sorted(group["services"]) == ["checkout", "shop"]
    assert sorted(group["versions"]) == ["1.0", "2.0"]
    assert group["first_seen"] <= group["last_seen"]
    detail = api.get("/exceptions/fp1").json()
    assert len(detail["events"]) == 3 and detail["events"][0]["id"] == group["last_event_id"]
    assert [
        g["fingerprint"] for g in api.get("/exceptions", params={"service": "shop"}).json()
    ] == ["fp1"]


async def test_trace_link_from_template(server_factory: Any, tmp_path: Path) -> None:
    server = server_factory(trace_link_template="https://jaeger/trace/{trace_id}?span={span_id}")
    agent = await FakeAgent(server).connect()
    try:
        with client_for(server) as api:
            probe_id = await placed(api, agent)
            await agent.send_events(
                [
                    snapshot(probe_id, trace_id="a" * 32, span_id="b" * 16),
                    snapshot(probe_id, time=1.0),
                ]
            )
            linked, plain = api.get("/events").json()["events"]
        assert linked["trace_link"] == f"https://jaeger/trace/{'a' * 32}?span={'b' * 16}"
        assert plain["trace_link"] is None  # every REST event has the field
    finally:
        await agent.close()


@pytest.mark.parametrize(
    ("payload", "code", "reason"),
    [
        ("not json", 1008, "not JSON"),
        ('{"no": "type"}', 1008, "a message must be a JSON object with a string 'type'"),
        (
            '{"type": "events", "seq": 1, "events": [{"id": 5, "type": "exception", "time": 1}]}',
            1008,
            "events: events[0].id must be text of 1 to 64 characters",
        ),
        (
            '{"type": "status", "probes": [{"probe_id": "x", "state": "dancing"}]}',
            1008,
            "status: probes[0].state must be one of 'pending', 'active', 'error',",
        ),
        ("x" * (protocol.MAX_MESSAGE_BYTES + 1), 1009, "exceeds"),
    ],
)
async def test_bad_message_closes_only_that_connection(
    api: httpx.Client, agents: Any, payload: str, code: int, reason: str
) -> None:
    good = await agents("shop")
    bad = await agents("shop")
    assert bad.ws is not None
    await bad.ws.send(payload)
    error = await bad.next_message("error")
    assert reason in error["reason"]
    await asyncio.wait_for(bad._reader, 5)
    assert bad.closed is not None and bad.closed[0] == code and reason in bad.closed[1]
    await good.send_events([snapshot("p")])
    probe = api.post("/probes", json=tracepoint()).json()
    await good.wait_probes(lambda p: ids(p) == [probe["id"]])


async def test_oversized_frame_beyond_uvicorn_limit_is_1009(
    server: LiveServer, agents: Any
) -> None:
    good = await agents("shop")
    bad = await agents("shop")
    assert bad.ws is not None
    with contextlib.suppress(ConnectionClosed):  # the server may close while it is sent
        await bad.ws.send("x" * (20 * 1024 * 1024))
    await asyncio.wait_for(bad._reader, 10)
    assert bad.closed is not None and bad.closed[0] == 1009
    await good.send_events([snapshot("p")])


async def test_source_is_asked_from_a_live_agent(api: httpx.Client, agents: Any) -> None:
    assert api.get("/services/shop/source", params={"path": "a.py"}).status_code == 404
    agent = await agents("shop")
    assert agent.ws is not None

    async def answer() -> None:
        request = await agent.next_message("get_source")
        await agent.ws.send(
            protocol.encode(
                {
                    "type": "source",
                    "request_id": request["request_id"],
                    "path": "/srv/shop/cart.py",
                    "text": "x = 1\n",
                    "lines": [1],
                }
            )
        )

    task = asyncio.create_task(answer())
    response = await asyncio.to_thread(
        api.get, "/services/shop/source", params={"path": "shop/cart.py"}
    )
    await task
    assert response.json() == {"path": "/srv/shop/cart.py", "text": "x = 1\n", "lines": [1]}
    silent = await asyncio.to_thread(api.get, "/services/shop/source", params={"path": "a.py"})
    assert silent.status_code == 504


async def test_policy_is_stored_and_pushed(api: httpx.Client, agents: Any) -> None:
    agent = await agents("shop")
    other = await agents("billing")
    policy = {"redact_names": ["pin"], "capture_exceptions": False}
    stored = api.put("/services/shop/policy", json=policy).json()
    assert stored["redact_names"] == ["pin"] and stored["capture_exceptions"] is False
    pushed = await agent.next_message("policy")
    assert pushed["config"] == stored
    assert other.inbox.empty()
    later = await agents("shop")
    assert later.welcome["config"] == stored
    assert api.get("/services/shop/policy").json() == stored
    bad = api.put("/services/shop/policy", json={"redact_patterns": ["("]})
    assert bad.status_code == 422 and bad.json()["detail"][0]["loc"][-1] == "redact_patterns"


async def test_stream_delivers_events_and_probe_changes(
    server: LiveServer, api: httpx.Client, agents: Any
) -> None:
    agent = await agents("shop")
    url = f"{server.ws_url}/api/v1/stream?token=test-admin-token&service=shop"
    async with connect(url) as stream:
        await subscribed(server)
        probe = await asyncio.to_thread(api.post, "/probes", json=tracepoint())
        message = json.loads(await asyncio.wait_for(stream.recv(), 5))
        assert message["type"] == "probe" and message["probe"]["id"] == probe.json()["id"]
        await agent.send_events([snapshot(probe.json()["id"])])
        message = json.loads(await asyncio.wait_for(stream.recv(), 5))
        assert message["type"] == "event" and message["event"]["service"] == "shop"
        await agent.send_status({"probe_id": probe.json()["id"], "state": "active"})
        message = json.loads(await asyncio.wait_for(stream.recv(), 5))
        assert message["type"] == "probe"
        assert message["probe"]["summary"] == "active on 1 of 1 instance"


async def test_stream_shows_an_event_whole_as_the_api_does(
    server: LiveServer, api: httpx.Client, agents: Any
) -> None:
    """The server keeps only an event's top-level fields while it stores it; the live
    stream still shows its frames and locals, exactly as reading it back does."""
    agent = await agents("shop")
    probe_id = await placed(api, agent)
    frame = {
        "file": "shop/cart.py",
        "line": 42,
        "function": "total",
        "locals": {"cart": {"t": "dict", "len": 1, "items": [[{"t": "str", "v": "sku"}, 2]]}},
    }
    watch = {"expr": "n", "value": {"t": "int", "v": 3}}
    event = {**snapshot(probe_id, watches=[watch]), "frames": [frame]}
    url = f"{server.ws_url}/api/v1/stream?token=test-admin-token&service=shop&type=snapshot"
    async with connect(url) as stream:
        await subscribed(server)
        await agent.send_events([event])
        message = json.loads(await asyncio.wait_for(stream.recv(), 5))
    assert message["type"] == "event"
    assert message["event"]["frames"] == [frame] and message["event"]["watches"] == [watch]
    assert message["event"] == api.get(f"/events/{event['id']}").json()


async def test_stream_refuses_a_bad_token(server: LiveServer) -> None:
    async with connect(f"{server.ws_url}/api/v1/stream?token=nope") as stream:
        assert json.loads(await stream.recv()) == {"type": "error", "reason": "invalid token"}
        await stream.wait_closed()
        assert stream.close_code == 1008


async def test_restart_keeps_probes_and_acked_events(
    server_factory: Any, database_url: str
) -> None:
    first = server_factory(database_url)
    with client_for(first) as api:
        probe = api.post("/probes", json=tracepoint()).json()
    agent = await FakeAgent(first).connect()
    await agent.send_events([snapshot(probe["id"]) for _ in range(3)])
    first.stop()
    await asyncio.wait_for(agent._reader, 10)  # type: ignore[arg-type]

    second = server_factory(database_url, port=first.settings.port)
    again = await FakeAgent(second, instance_id=agent.instance_id).connect(AGENT_KEY)
    try:
        assert ids(again.probes) == [probe["id"]]
        with client_for(second) as api:
            assert len(api.get("/events").json()["events"]) == 3
            assert api.get(f"/probes/{probe['id']}").json()["captures"] == 3
    finally:
        await again.close()


async def test_retention_runs_periodically(server_factory: Any) -> None:
    server = server_factory(retention_events=2, retention_interval=0.2)
    agent = await FakeAgent(server).connect()
    try:
        with client_for(server) as api:
            probe_id = await placed(api, agent)
            sent = [snapshot(probe_id, time=time.time() + i) for i in range(5)]
            await agent.send_events(sent)
            deadline = time.monotonic() + 5
            while len(api.get("/events").json()["events"]) > 2:
                assert time.monotonic() < deadline, "retention never ran"
                await asyncio.sleep(0.05)
            kept = api.get("/events").json()["events"]
        assert [e["id"] for e in kept] == [sent[4]["id"], sent[3]["id"]]
    finally:
        await agent.close()


async def test_first_message_must_be_hello(server: LiveServer) -> None:
    async with connect(server.ws_url + protocol.AGENT_PATH) as ws:
        await ws.send(protocol.encode({"type": "events", "seq": 1, "events": []}))
        assert protocol.decode(await ws.recv())["reason"] == "expected hello, got 'events'"
        await ws.wait_closed()
        assert ws.close_code == 1008


async def test_an_agent_that_goes_silent_is_gone(
    api: httpx.Client, agents: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from peephole.server.store import instances

    # The talking one connects first: when the quiet one is stale, the talking one would be
    # too, but for its heartbeats.
    talking = await agents("shop")
    quiet = await agents("shop")
    monkeypatch.setattr(instances, "INSTANCE_STALE_SECONDS", 1.0)
    monkeypatch.setattr(protocol, "INSTANCE_STALE_SECONDS", 1.0)
    monkeypatch.setattr("peephole.server.broker.TOUCH_SECONDS", 0.1)

    def live() -> list[str]:
        return [i["instance_id"] for i in api.get("/instances").json()]

    deadline = time.monotonic() + 10
    while quiet.instance_id in live():
        assert time.monotonic() < deadline, "the quiet instance never went stale"
        assert talking.ws is not None
        await talking.ws.send(protocol.encode({"type": "heartbeat", "time": time.time()}))
        await asyncio.sleep(0.2)
    assert live() == [talking.instance_id]
    every = api.get("/instances", params={"include_gone": "true"}).json()
    assert {i["instance_id"]: i["connected"] for i in every} == {
        talking.instance_id: True,
        quiet.instance_id: False,
    }


@pytest.mark.parametrize(
    ("instance", "reason"),
    [
        (None, "hello: instance must be an object"),
        (
            {"instance_id": "a", "service": "s", "pid": "12"},
            "hello: instance.pid must be an integer from 0 to 2147483647",
        ),
        (
            {"instance_id": "a", "service": "s", "started_at": 1e300},
            "hello: instance.started_at must be a time in seconds",
        ),
        (
            {"instance_id": "a", "service": "s", "tags": {"k": 1}},
            "hello: instance.tags.k must be text",
        ),
        (
            {"instance_id": "", "service": "s"},
            "hello: instance.instance_id must be text of 1 to 64 characters",
        ),
        ({"service": "s"}, "hello: instance.instance_id is missing"),
        (
            {"instance_id": "a" * 65, "service": "s"},
            "hello: instance.instance_id must be text of 1 to 64 characters",
        ),
    ],
)
async def test_bad_hello_is_refused_with_a_reason(
    server: LiveServer, instance: Any, reason: str
) -> None:
    async with connect(server.ws_url + protocol.AGENT_PATH) as ws:
        await ws.send(protocol.encode({"type": "hello", "key": AGENT_KEY, "instance": instance}))
        assert protocol.decode(await ws.recv()) == {"type": "error", "reason": reason}
        await ws.wait_closed()
        assert (ws.close_code, ws.close_reason) == (1008, reason)


async def test_source_request_fails_fast_when_the_agent_leaves(
    api: httpx.Client, agents: Any
) -> None:
    agent = await agents("shop")

    async def leave() -> None:
        await agent.next_message("get_source")
        await agent.close()

    task = asyncio.create_task(leave())
    response = await asyncio.to_thread(api.get, "/services/shop/source", params={"path": "a.py"})
    await task
    assert response.status_code == 502  # not 504: it did not wait for the timeout
    assert response.json() == {"detail": "no answer from the agent: the agent disconnected"}


async def _hello_with(server: LiveServer, **fields: Any) -> Any:
    """A raw connection that said hello with ``fields`` added; the caller closes it."""
    ws = await connect(server.ws_url + protocol.AGENT_PATH)
    info = FakeAgent(server).info.to_dict()
    await ws.send(protocol.encode({"type": "hello", "key": AGENT_KEY, "instance": info, **fields}))
    return ws


async def test_an_older_agent_protocol_is_refused_with_a_reason(server: LiveServer) -> None:
    ws = await _hello_with(server, protocol=protocol.OLDEST_PROTOCOL_VERSION - 1)
    reason = (
        f"agent protocol {protocol.OLDEST_PROTOCOL_VERSION - 1} is too old: this server needs "
        f"{protocol.OLDEST_PROTOCOL_VERSION} or newer; upgrade the agent"
    )
    assert protocol.decode(await ws.recv()) == {"type": "error", "reason": reason}
    await ws.wait_closed()
    assert (ws.close_code, ws.close_reason) == (1008, reason)


async def test_a_newer_agent_protocol_is_served_in_this_servers_version(
    server: LiveServer,
) -> None:
    """A newer agent may add fields and message types: both are ignored, the welcome says
    which version the server speaks, and the connection works."""
    ws = await _hello_with(server, protocol=protocol.PROTOCOL_VERSION + 1, shiny={"new": 1})
    try:
        welcome = protocol.decode(await ws.recv())
        assert (welcome["type"], welcome["protocol"]) == ("welcome", protocol.PROTOCOL_VERSION)
        assert protocol.decode(await ws.recv())["type"] == "probes"
        await ws.send(protocol.encode({"type": "telemetry", "anything": [1, 2]}))
        event = exception(shiny=True)
        await ws.send(protocol.encode({"type": "events", "seq": 7, "events": [event]}))
        assert protocol.decode(await asyncio.wait_for(ws.recv(), 5)) == {"type": "ack", "seq": 7}
    finally:
        await ws.close()
