"""The wire contract: every message a real agent and a real server exchange fits its one
definition in :mod:`peephole.messages`, in both directions.

A real server (uvicorn on loopback, in this process) and a real agent (``peephole.start``)
run probes of both kinds, an exception, a source and a file-list request. The gateway
already refuses an agent message that breaks its definition; here each one is also recorded,
and each server message the agent decodes is checked against the server's definitions, so a
field one end renames or adds without its definition fails here.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, get_args

import httpx
import pytest

import peephole
from peephole import messages, protocol
from server.conftest import ADMIN_TOKEN, AGENT_KEY, LiveServer, make_settings

TARGET = """\
import logging


def total(items, discount):
    subtotal = sum(items)
    return subtotal - discount


def fail(order):
    try:
        {}[order]
    except KeyError:
        logging.getLogger("wire_target").exception("order failed")
"""
TOTAL_LINE = 6  # ``return subtotal - discount``
FILE = "wire_target/shop.py"
SERVER_DEFINITIONS = {messages.type_of(d): d for d in get_args(messages.ServerMessage)}


class Seen:
    """The agent messages the gateway checked and the server messages the agent read."""

    def __init__(self) -> None:
        self.agent: list[dict[str, Any]] = []
        self.server: list[dict[str, Any]] = []
        self.problems: list[str] = []

    def types(self, side: list[dict[str, Any]]) -> set[str]:
        return {m["type"] for m in side}


@pytest.fixture
def seen(monkeypatch: pytest.MonkeyPatch) -> Seen:
    record = Seen()
    checked = messages.agent_message
    decode = protocol.decode

    def agent_message(message: dict[str, Any]) -> Any:
        record.agent.append(message)
        try:
            return checked(message)
        except protocol.ProtocolError as exc:
            record.problems.append(str(exc))
            raise

    def server_message(text: Any) -> dict[str, Any]:
        message = decode(text)
        record.server.append(message)
        try:
            messages.check(SERVER_DEFINITIONS[message["type"]], message, message["type"])
        except (KeyError, protocol.ProtocolError) as exc:
            record.problems.append(f"server sent {message['type']!r}: {exc}")
        return message

    monkeypatch.setattr(messages, "agent_message", agent_message)
    monkeypatch.setattr(protocol, "decode", server_message)
    return record


@pytest.fixture
def api(tmp_path: Path) -> Iterator[httpx.Client]:
    server = LiveServer(make_settings(f"sqlite:///{tmp_path / 'p.db'}", tmp_path)).start()
    try:
        headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
        with httpx.Client(base_url=f"{server.url}/api/v1", headers=headers, timeout=15) as api:
            yield api
    finally:
        server.stop()


@pytest.fixture
def shop(tmp_path: Path, api: httpx.Client, seen: Seen) -> Iterator[Any]:
    package = tmp_path / "wire_target"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "shop.py").write_text(TARGET)
    sys.path.insert(0, str(tmp_path))
    peephole.start(service="wire", server=str(api.base_url).rsplit("/api/", 1)[0], key=AGENT_KEY)
    try:
        import wire_target.shop as module

        yield module
    finally:
        peephole.stop()
        sys.path.remove(str(tmp_path))
        for name in ("wire_target.shop", "wire_target"):
            sys.modules.pop(name, None)


def until(what: str, ready: Any) -> Any:
    deadline = time.monotonic() + 15
    while not (value := ready()):
        assert time.monotonic() < deadline, f"never got {what}"
        time.sleep(0.05)
    return value


def test_every_message_both_ways_fits_its_definition(
    api: httpx.Client, shop: Any, seen: Seen
) -> None:
    target = {"service": "wire"}
    for probe in (
        {"kind": "tracepoint", "watches": ["subtotal"]},
        {"kind": "logpoint", "template": "subtotal {subtotal}", "level": "warning"},
    ):
        body = {"file": FILE, "line": TOTAL_LINE, "target": target, **probe}
        assert api.post("/probes", json=body).status_code == 201
    until("active probes", lambda: all(p["state"] == "active" for p in api.get("/probes").json()))
    shop.fail(7)

    def each_type() -> bool:
        shop.total([1, 2, 3], 1)  # again while a hit is skipped (the CPU budget, a rate)
        types = {e["type"] for e in api.get("/events").json()["events"]}
        return types == set(protocol.EVENT_TYPES)

    until("an event of each type", each_type)
    assert api.get("/services/wire/source", params={"path": FILE}).status_code == 200
    assert api.get("/services/wire/files").status_code == 200
    assert seen.problems == [], seen.problems
    assert seen.types(seen.agent) >= {"hello", "events", "status", "source", "files"}
    events = [e for m in seen.agent if m["type"] == "events" for e in m["events"]]
    assert {e["type"] for e in events} == set(protocol.EVENT_TYPES)
    assert seen.types(seen.server) >= {"welcome", "probes_delta", "ack", "get_source", "list_files"}


def test_the_definitions_name_the_types_the_protocol_names() -> None:
    """``Literal`` types cannot use the protocol's constants, so they are compared here."""
    event_types = {messages.type_of(d) for d in get_args(messages.Event)}
    assert event_types == set(protocol.EVENT_TYPES)
    assert get_args(protocol.EventType) == protocol.EVENT_TYPES
    assert get_args(protocol.ProbeKind) == protocol.PROBE_KINDS
    assert get_args(protocol.ProbeState) == protocol.PROBE_STATES


@pytest.mark.parametrize(
    ("message", "reason"),
    [
        ({"type": "heartbeat"}, "heartbeat: time is missing"),
        ({"type": "heartbeat", "time": True}, "heartbeat: time must be a time in seconds"),
        (
            {"type": "events", "seq": 1, "events": [{"id": "e", "type": "log"}]},
            "events: events[0].time is missing",
        ),
        (
            {
                "type": "events",
                "seq": 1,
                "events": [{"id": "e", "type": "log", "time": 1, "level": "loud"}],
            },
            "events: events[0].level must be 'debug' or 'info' or 'warning' or 'error' or "
            "'critical'",
        ),
        (
            {"type": "events", "seq": 1, "events": [{"id": "e", "type": "x", "time": 1}]},
            "events: events[0].type must be one of 'snapshot', 'log', 'exception'",
        ),
        (
            {"type": "events", "seq": 1, "events": [], "dropped": -1},
            "events: dropped must be an integer from 0 to 2147483647",
        ),
        (
            {"type": "status", "probes": [{"probe_id": "p", "state": "active"}], "agent": []},
            "status: agent must be an object",
        ),
        ({"type": "files", "request_id": "r", "files": ["a", 3]}, "files: files[1] must be text"),
        ({"type": "hello", "instance": {}}, "hello: key is missing"),
        (
            {"type": "hello", "key": "", "instance": {"instance_id": "i", "service": "s"}},
            "hello: key must be text (not empty)",
        ),
        (
            {"type": "hello", "key": "k", "instance": {"instance_id": "i", "service": "s"}},
            None,
        ),
        ({"type": "from_a_newer_agent", "anything": 1}, None),
    ],
)
def test_agent_messages_are_checked_against_their_definitions(
    message: dict[str, Any], reason: str | None
) -> None:
    if reason is None:
        messages.agent_message(message)
        return
    with pytest.raises(protocol.ProtocolError) as refused:
        messages.agent_message(message)
    assert str(refused.value) == reason
