"""Hostile text and shapes over a real gateway: lone surrogates, NUL, deep nesting and
mistyped probe ids are refused with a reason or stored safely; nothing answers 500 or 1011,
and the agent's later events are stored."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import httpx
import orjson
import pytest

from peephole import protocol
from peephole.server import wire
from peephole.server.api import responses
from peephole.server.db import Database
from peephole.server.store import events as event_store

from .conftest import FakeAgent, exception, placed

pytestmark = pytest.mark.server

BAD = "\udcff bad \x00 end"  # what the agent's stdlib fallback sends for undecodable bytes
STORED = "\ufffd bad \x00 end"  # the payload is JSON text: NUL is held escaped
COLUMN = "\ufffd bad \ufffd end"  # text columns: PostgreSQL refuses NUL


async def refused(agent: FakeAgent, payload: str) -> tuple[int, str]:
    """Send ``payload`` raw; the close code and reason the server answered with."""
    assert agent.ws is not None and agent._reader is not None
    await agent.ws.send(payload)
    await asyncio.wait_for(agent._reader, 10)
    assert agent.closed is not None
    return agent.closed[0] or 0, agent.closed[1]


async def test_surrogates_and_nul_are_stored_as_replacement_characters(
    api: httpx.Client, agents: Any
) -> None:
    agent = await agents("shop")
    probe_id = await placed(api, agent, kind="logpoint", template="x")
    crash = {**exception("Key\udcffError", "fp\x00\udcff"), "message": BAD}
    line = protocol.new_event(protocol.LOG, probe_id=probe_id, message=BAD, level="info")
    await agent.send_events([crash, line])  # acked: stored, not rolled back
    later = exception(fingerprint="later")
    await agent.send_events([later])
    page = api.get("/events")
    assert page.status_code == 200, page.text
    by_id = {e["id"]: e for e in page.json()["events"]}
    assert by_id[crash["id"]]["message"] == STORED
    assert by_id[line["id"]]["message"] == STORED
    assert later["id"] in by_id
    one = api.get(f"/events/{line['id']}")
    assert one.status_code == 200, one.text
    assert one.json()["message"] == STORED
    groups = api.get("/exceptions")
    assert groups.status_code == 200, groups.text
    [group] = [g for g in groups.json() if g["last_event_id"] == crash["id"]]
    assert (group["exc_type"], group["message"]) == ("Key\ufffdError", COLUMN)
    assert "\x00" not in group["fingerprint"] and "\udcff" not in group["fingerprint"]


async def test_deep_nesting_is_refused_with_a_reason(agents: Any) -> None:
    agent = await agents("shop")
    deep = '{"type":"heartbeat","time":1,"x":' + "[" * 30000 + "]" * 30000 + "}"
    code, reason = await refused(agent, deep)
    assert code == 1008 and "nested" in reason, reason


async def test_deep_value_in_an_event_is_refused(api: httpx.Client, agents: Any) -> None:
    agent = await agents("shop")
    probe_id = await placed(api, agent)
    value: Any = "leaf"
    for _ in range(260):
        value = {"v": value}
    event = protocol.new_event(protocol.SNAPSHOT, probe_id=probe_id, frames=[{"locals": value}])
    message = {"type": "events", "seq": 1, "events": [event]}
    code, reason = await refused(agent, json.dumps(message))
    assert code == 1008 and "nested" in reason, reason
    assert api.get("/events").status_code == 200


async def test_exception_with_a_list_probe_id_is_refused(api: httpx.Client, agents: Any) -> None:
    agent = await agents("shop")
    odd = exception(probe_id=["not", "text"])
    fine = exception(fingerprint="fine")
    await agent.send_events([odd, fine])  # acked: the connection lives on
    assert agent.closed is None
    assert [e["id"] for e in api.get("/events").json()["events"]] == [fine["id"]]


def test_an_escaped_backslash_before_u_is_text_not_a_surrogate() -> None:
    event = {"id": "a", "v": "\\udcff", "n": 2**70}  # the wide number takes the exact path
    decoded = wire.decode(json.dumps({"type": "events", "seq": 1, "events": [event]}))
    assert decoded["events"] == [event]
    assert json.loads(decoded.raw_events[0]) == event


def nested(levels: int) -> Any:
    """``levels`` levels of arrays and objects, alternating."""
    value: Any = 1
    for level in range(levels):
        value = [value] if level % 2 else {"v": value}
    return value


def test_orjson_writes_exactly_the_depth_the_wire_counts_on() -> None:
    orjson.dumps(nested(wire._ORJSON_DEPTH))
    with pytest.raises(orjson.JSONEncodeError):
        orjson.dumps(nested(wire._ORJSON_DEPTH + 1))


@pytest.mark.parametrize("exact", [False, True])
def test_the_deepest_event_accepted_on_either_path(exact: bool) -> None:
    def message(levels: int) -> str:
        event = {"id": "a", "v": nested(levels - 1), "n": 2**70 if exact else 1}
        return json.dumps({"type": "events", "seq": 1, "events": [event]})

    deepest = message(wire.MAX_DEPTH - 2)  # the message and its events hold the event
    assert (wire._fast(deepest) is None) == exact
    assert wire.decode(deepest).raw_events
    with pytest.raises(protocol.ProtocolError, match="nested deeper than 128"):
        wire.decode(message(wire.MAX_DEPTH - 1))


def test_a_stored_payload_with_mistyped_required_fields_is_still_served(db: Database) -> None:
    """An event stored before the gateway checked types: its columns win over its text."""
    event = exception()
    text = json.dumps({**event, "id": 5, "type": ["x"], "time": "now", "message": 3})
    origin = event_store.Origin("shop", "i1", None)
    db.run(lambda s: event_store.insert(s, origin, [dict(event)], time.time(), [text]))
    [page] = [
        responses.event(e)
        for e in db.run(lambda s: event_store.query(s, event_store.EventFilter(), 10)[0])
    ]
    one = responses.event(db.run(lambda s: event_store.get(s, event["id"])))
    [listed] = [responses.event(e) for e in db.run(lambda s: event_store.by_ids(s, [event["id"]]))]
    for served in (page, one, listed):
        assert isinstance(served, responses.ExceptionEvent)
        assert (served.id, served.message) == (event["id"], "")


def test_text_columns_never_hold_a_surrogate_from_any_path(db: Database) -> None:
    """Events built by the server (Sidekick) skip the wire: the columns are safe anyway."""
    event = {**exception("Key\udcffError", "fp\udcff"), "message": "\udcff bad"}
    origin = event_store.Origin("shop", "i1", None)
    db.run(lambda s: event_store.insert(s, origin, [event], time.time()))
    [group] = db.run(lambda s: event_store.exception_groups(s, None, 10))
    assert (group["fingerprint"], group["exc_type"], group["message"]) == (
        "fp\ufffd",
        "Key\ufffdError",
        "\ufffd bad",
    )
