"""Size limits at the edge: every probe field at the API, and every message the gateway sends
fits what an agent accepts (``protocol.MAX_MESSAGE_BYTES``), whatever the probes."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from peephole import protocol
from peephole.server.api import schemas

from .conftest import FakeAgent, LiveServer, tracepoint

pytestmark = pytest.mark.server


def largest_probe() -> dict[str, Any]:
    """The biggest probe the API takes: every field at its limit."""
    return {
        "kind": "logpoint",
        "file": "f" * schemas.MAX_FILE,
        "line": 10_000_000,
        "condition": "1" * schemas.MAX_CONDITION,
        "watches": ["2" * schemas.MAX_WATCH] * schemas.MAX_WATCHES,
        "template": "t" * schemas.MAX_TEMPLATE,
        "logger": "l" * schemas.MAX_NAME,
        "target": {
            "service": "shop",
            "version": "v" * schemas.MAX_NAME,
            "environment": "e" * schemas.MAX_NAME,
            "tags": {
                f"{i:0{schemas.MAX_TAG_KEY}d}": "x" * schemas.MAX_TAG_VALUE
                for i in range(schemas.MAX_TAGS)
            },
            "instances": [f"{i:0{schemas.MAX_INSTANCE_ID}d}" for i in range(schemas.MAX_INSTANCES)],
        },
    }


def test_the_largest_probe_is_well_under_the_probe_limit(api: httpx.Client) -> None:
    body = largest_probe()
    response = api.post("/probes", json=body)
    assert response.status_code == 201, response.text
    encoded = len(protocol.encode(response.json()))
    assert encoded < protocol.MAX_PROBE_BYTES * 3 // 4, encoded


@pytest.mark.parametrize(
    "field,value",
    [
        ("watches", ["1" * (schemas.MAX_WATCH + 1)]),
        ("watches", ["1"] * (schemas.MAX_WATCHES + 1)),
        ("condition", "1" * (schemas.MAX_CONDITION + 1)),
        ("template", "t" * (schemas.MAX_TEMPLATE + 1)),
        ("file", "f" * (schemas.MAX_FILE + 1)),
        ("logger", "l" * (schemas.MAX_NAME + 1)),
        ("target", {"service": "s" * (schemas.MAX_NAME + 1)}),
        ("target", {"tags": {str(i): "x" for i in range(schemas.MAX_TAGS + 1)}}),
        ("target", {"tags": {"k": "x" * (schemas.MAX_TAG_VALUE + 1)}}),
        ("target", {"instances": ["i"] * (schemas.MAX_INSTANCES + 1)}),
    ],
)
def test_every_probe_field_has_a_limit(api: httpx.Client, field: str, value: Any) -> None:
    response = api.post("/probes", json={**tracepoint(), field: value})
    assert response.status_code == 422, response.text[:300]
    assert response.json()["detail"][0]["loc"][:2] == ["body", field]


def test_a_huge_probe_is_refused_before_it_is_read(api: httpx.Client) -> None:
    """Five 1 MB watches: the probe that once put every agent in a reconnect loop."""
    response = api.post("/probes", json={**tracepoint(), "watches": ["1" * 1_000_000] * 5})
    assert response.status_code == 413
    assert api.get("/probes").json() == []


def test_policy_lists_have_limits(api: httpx.Client) -> None:
    too_many = {"redact_names": ["x"] * (schemas.MAX_POLICY_ITEMS + 1)}
    assert api.put("/services/shop/policy", json=too_many).status_code == 422
    too_long = {"redact_patterns": ["a" * (schemas.MAX_POLICY_TEXT + 1)]}
    assert api.put("/services/shop/policy", json=too_long).status_code == 422


def many_big_probes(api: httpx.Client, count: int) -> None:
    """``count`` probes of ~20 KB each for service ``shop``: together over 4 MiB."""
    body = {**tracepoint(), "watches": ["1" * schemas.MAX_WATCH] * schemas.MAX_WATCHES}
    for _ in range(count):
        assert api.post("/probes", json=body).status_code == 201


@pytest.mark.slow
async def test_no_message_is_larger_than_an_agent_accepts(
    server: LiveServer, api: httpx.Client, agents: Any
) -> None:
    legacy = await agents("shop")  # takes whole lists: the list is cut to fit
    current = await agents("shop", features=(protocol.PROBE_DELTA,))
    count = protocol.MAX_MESSAGE_BYTES // (schemas.MAX_WATCH * schemas.MAX_WATCHES) + 20
    await asyncio.to_thread(many_big_probes, api, count)
    await current.wait_probes(lambda p: len(p) == count, timeout=30)
    late = await agents("shop", features=(protocol.PROBE_DELTA,))  # its first sync is split
    assert len(late.probes) < count
    await late.wait_probes(lambda p: len(p) == count, timeout=30)
    await legacy.wait_probes(lambda p: 0 < len(p) < count, timeout=30)
    for agent in (legacy, current, late):
        assert agent.closed is None, agent.closed
        assert agent.largest <= protocol.MAX_MESSAGE_BYTES


async def test_deltas_carry_changes_not_the_whole_list(api: httpx.Client, agents: Any) -> None:
    agent: FakeAgent = await agents("shop", features=(protocol.PROBE_DELTA,))
    first = api.post("/probes", json=tracepoint()).json()
    await agent.wait_probes(lambda p: [x["id"] for x in p] == [first["id"]])
    second = api.post("/probes", json=tracepoint(line=43)).json()
    delta = await agent.next_message("probes_delta")
    while first["id"] in [p["id"] for p in delta["set"]] or not delta["set"]:
        delta = await agent.next_message("probes_delta")  # the first one's own delta
    assert [p["id"] for p in delta["set"]] == [second["id"]]
    assert delta["remove"] == [] and "keep" not in delta
    api.delete(f"/probes/{first['id']}")
    delta = await agent.next_message("probes_delta")
    assert (delta["set"], delta["remove"]) == ([], [first["id"]])
    await agent.wait_probes(lambda p: [x["id"] for x in p] == [second["id"]])
