"""The agents' WebSocket (``protocol.AGENT_PATH``): hello, then events, status and answers.

A message that breaks the protocol closes that one connection with a reason (1008, or 1009
when too big); every other connection is untouched.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, Optional

from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from peephole import protocol
from peephole.server import wire
from peephole.server.broker import Broker
from peephole.server.connection import POLICY_VIOLATION, AgentConnection, close_reason
from peephole.server.store import credentials
from peephole.server.store import instances as instance_store
from peephole.server.wsprotocol import EXTENSION, SocketControl

log = logging.getLogger("peephole.server")

HELLO_TIMEOUT = 10.0
MESSAGE_TOO_BIG = 1009
TRY_AGAIN_LATER = 1013
MAX_EVENTS_PER_MESSAGE = 10_000
MAX_UNAUTHENTICATED = 256  # connections that have not said hello yet, at once
MAX_COUNTER = 2**63 - 1  # what a BIGINT column holds
MAX_COUNT = 2**31 - 1  # what an INTEGER column holds (versions, pids, exception counts)
MAX_PID = MAX_COUNT


class Rejected(Exception):
    """Close the connection with ``code`` and ``reason``."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


async def agent_endpoint(websocket: WebSocket) -> None:
    broker: Broker = websocket.app.state.broker
    control: Optional[SocketControl] = websocket.scope.get("extensions", {}).get(EXTENSION)
    await websocket.accept()
    hub = broker.hub
    if hub.unauthenticated >= MAX_UNAUTHENTICATED:
        broker.metrics.agent_messages_rejected_total += 1
        await _close(websocket, TRY_AGAIN_LATER, "too many connections waiting for hello")
        return
    connection = None
    writer: Optional[asyncio.Task[None]] = None
    try:
        hub.unauthenticated += 1
        try:
            connection = await _hello(broker, websocket, control)
        finally:
            hub.unauthenticated -= 1
        writer = connection.start_writer()
        await _serve(broker, connection)
    except Rejected as exc:
        broker.metrics.agent_messages_rejected_total += 1
        await _close(websocket, exc.code, exc.reason)
    except WebSocketDisconnect:
        pass
    except asyncio.CancelledError:
        if connection is None or connection.kicked is None:
            raise
        asyncio.current_task().uncancel()  # type: ignore[union-attr]
    except Exception:
        log.exception("agent connection failed")
        await _close(websocket, 1011, "internal error")
    finally:
        if writer is not None:
            writer.cancel()
        if connection is not None:
            connection.closed()
            await broker.unregister(connection)


async def _hello(
    broker: Broker, websocket: WebSocket, control: Optional[SocketControl]
) -> AgentConnection:
    try:
        message = await asyncio.wait_for(
            _receive(websocket, protocol.MAX_HELLO_BYTES), HELLO_TIMEOUT
        )
    except asyncio.TimeoutError:
        raise Rejected(POLICY_VIOLATION, f"no hello within {HELLO_TIMEOUT:g} s") from None
    if message["type"] != "hello":
        raise Rejected(POLICY_VIOLATION, f"expected hello, got {message['type']!r}")
    key = message.get("key")
    if not isinstance(key, str) or not key:
        raise Rejected(POLICY_VIOLATION, "hello has no agent key")
    grant = await broker.db.read(lambda s: credentials.find_agent_key(s, key))
    if grant is None:
        raise Rejected(POLICY_VIOLATION, "unknown agent key")
    try:
        info = protocol.InstanceInfo.from_dict(message.get("instance"))  # type: ignore[arg-type]
    except protocol.ProtocolError as exc:
        raise Rejected(POLICY_VIOLATION, f"bad instance: {exc}") from None
    check_instance(info)
    if not grant.allows(info.service):
        raise Rejected(POLICY_VIOLATION, f"this agent key may not join service {info.service!r}")
    held = broker.hub.agents.get(info.instance_id)
    if held is not None and held.kicked is None:
        raise Rejected(
            POLICY_VIOLATION, f"instance id {info.instance_id!r} is in use by another connection"
        )
    features = message.get("features")
    connection = AgentConnection(
        websocket,
        info,
        features if isinstance(features, list) else (),
        broker.settings.send_timeout,
        control.abort if control is not None else None,
    )
    connection.key_id = grant.id
    if control is not None:
        control.allow()
    try:
        policy, last_disconnect = await broker.register(connection)
    except instance_store.InstanceHeld:
        raise Rejected(
            POLICY_VIOLATION,
            f"instance id {info.instance_id!r} is in use by another connection (on another server)",
        ) from None
    connection.send(
        {
            "type": "welcome",
            "instance_id": info.instance_id,
            "config": policy.to_dict(),
            "protocol": protocol.PROTOCOL_VERSION,
            "last_disconnect": last_disconnect,
        }
    )
    await broker.send_probes(connection)
    return connection


# Longest accepted text per InstanceInfo field (the database columns' sizes).
INSTANCE_TEXT = {
    "instance_id": 64,
    "service": 200,
    "version": 200,
    "environment": 200,
    "host": 255,
    "runtime": 100,
    "agent_version": 50,
}
OPTIONAL_TEXT = ("version", "environment")


def check_instance(info: protocol.InstanceInfo) -> None:
    """Refuse (:class:`Rejected`) an instance the database columns cannot hold; the Sidekick
    route checks the instance it builds from upgrade headers with this too."""
    for name, size in INSTANCE_TEXT.items():
        value = getattr(info, name)
        if value is None and name in OPTIONAL_TEXT:
            continue
        if not isinstance(value, str) or len(value) > size:
            raise Rejected(POLICY_VIOLATION, f"bad instance: {name} must be text of <= {size}")
    if not info.instance_id or not info.service:
        raise Rejected(POLICY_VIOLATION, "bad instance: instance_id and service are required")
    tags = info.tags
    if not isinstance(tags, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in tags.items()
    ):
        raise Rejected(POLICY_VIOLATION, "bad instance: tags must map strings to strings")
    if not _integer(info.pid, MAX_PID) or not _time(info.started_at):
        raise Rejected(POLICY_VIOLATION, "bad instance: pid and started_at must be numbers")


async def _serve(broker: Broker, connection: AgentConnection) -> None:
    while True:
        message = await _receive(connection.websocket)
        connection.last_message = time.time()
        broker.metrics.agent_messages_total += 1
        kind = message["type"]
        if kind == "events":
            seq, events, dropped = _events(message)
            events, texts = _own_probes_only(broker, connection, events, message.raw_events)
            await broker.ingest(connection, events, dropped, texts)
            connection.send({"type": "ack", "seq": seq})
        elif kind == "status":
            await broker.statuses(connection, _statuses(message))
            health = _health(message)
            if health is not None:
                await broker.agent_health(connection, health)
        elif kind in ("source", "files"):
            connection.answer(message)
        elif kind == "heartbeat":
            pass
        else:  # a newer agent's message: ignored, not an error
            log.debug("ignoring agent message of type %r", kind)


async def _receive(websocket: WebSocket, limit: int = protocol.MAX_MESSAGE_BYTES) -> wire.Message:
    message = await websocket.receive()
    if message["type"] == "websocket.disconnect":
        raise WebSocketDisconnect(message.get("code", 1000))
    data = message.get("text")
    if data is None:
        data = message.get("bytes") or b""
    if len(data) > limit:
        raise Rejected(MESSAGE_TOO_BIG, f"message of {len(data)} bytes exceeds {limit}")
    try:
        return wire.decode(data)
    except protocol.ProtocolError as exc:
        raise Rejected(POLICY_VIOLATION, str(exc)) from None


def _events(message: dict[str, Any]) -> tuple[int, list[dict[str, Any]], int]:
    seq: Any = message.get("seq")
    events: Any = message.get("events")
    dropped: Any = message.get("dropped", 0) or 0
    if not _integer(seq, MAX_COUNTER):
        raise Rejected(POLICY_VIOLATION, "events: seq must be an integer")
    if not isinstance(events, list) or len(events) > MAX_EVENTS_PER_MESSAGE:
        raise Rejected(POLICY_VIOLATION, "events: events must be a list (at most 10000)")
    if not _integer(dropped, MAX_COUNT):
        raise Rejected(POLICY_VIOLATION, "events: dropped must be a non-negative integer")
    for event in events:
        if not isinstance(event, dict):
            raise Rejected(POLICY_VIOLATION, "events: each event must be an object")
        event_id = event.get("id")
        if not isinstance(event_id, str) or not 0 < len(event_id) <= 64:
            raise Rejected(POLICY_VIOLATION, "events: each event needs a string id")
        if event.get("type") not in protocol.EVENT_TYPES:
            raise Rejected(POLICY_VIOLATION, f"events: unknown event type {event.get('type')!r}")
        for name in ("time", "first_time", "last_time"):
            if name in event and not _time(event[name]):
                raise Rejected(POLICY_VIOLATION, f"events: {name} must be a time in seconds")
        if "count" in event and not _integer(event["count"], MAX_COUNT):
            raise Rejected(POLICY_VIOLATION, f"events: count must be an integer <= {MAX_COUNT}")
    return seq, events, dropped


def _health(message: dict[str, Any]) -> protocol.AgentHealth | None:
    """The agent's own health a status message carries (``agent``; older agents omit it)."""
    data = message.get("agent")
    if data is None:
        return None
    try:
        health = protocol.AgentHealth.from_dict(data)
    except protocol.ProtocolError as exc:
        raise Rejected(POLICY_VIOLATION, f"status: agent: {exc}") from None
    counts = (health.internal_errors, health.abandoned_events)
    last = health.last_internal_error
    if not all(_integer(n, MAX_COUNTER) for n in counts) or not isinstance(last, (str, type(None))):
        raise Rejected(POLICY_VIOLATION, "status: agent: counts must be integers, last a string")
    return health


def _own_probes_only(
    broker: Broker, connection: AgentConnection, events: list[dict[str, Any]], texts: list[str]
) -> tuple[list[dict[str, Any]], list[str]]:
    """The events of probes this connection was sent, and those that name no probe
    (exceptions): a key holder cannot spend another service's hit limit with forged events."""
    sent = connection.ever_sent
    kept = [
        i for i, e in enumerate(events) if e.get("probe_id") is None or e.get("probe_id") in sent
    ]
    if len(kept) == len(events):
        return events, texts
    broker.metrics.events_refused_total += len(events) - len(kept)
    same = len(texts) == len(events)
    return [events[i] for i in kept], [texts[i] for i in kept] if same else []


def _integer(value: Any, high: int) -> bool:
    """A JSON integer from 0 to ``high`` (booleans are not numbers here)."""
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= high


def _time(value: Any) -> bool:
    """Epoch seconds that a float column holds (JSON has no NaN; see ``wire``)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and 0 <= value <= 1e11


def _statuses(message: dict[str, Any]) -> list[protocol.ProbeStatus]:
    items = message.get("probes")
    if not isinstance(items, list):
        raise Rejected(POLICY_VIOLATION, "status: probes must be a list")
    statuses = []
    for item in items:
        try:
            status = protocol.ProbeStatus.from_dict(item)
        except protocol.ProtocolError as exc:
            raise Rejected(POLICY_VIOLATION, f"status: {exc}") from None
        if not isinstance(status.probe_id, str) or status.state not in protocol.PROBE_STATES:
            raise Rejected(POLICY_VIOLATION, "status: each needs a probe_id and a known state")
        numbers = (
            status.hits,
            status.captures,
            status.drops,
            status.condition_errors,
            status.time_ns,
        )
        if not all(_integer(n, MAX_COUNTER) for n in numbers) or not _integer(
            status.version, MAX_COUNT
        ):
            raise Rejected(
                POLICY_VIOLATION, f"status: counters must be integers from 0 to {MAX_COUNTER}"
            )
        if not all(isinstance(t, (str, type(None))) for t in (status.message, status.path)):
            raise Rejected(POLICY_VIOLATION, "status: message and path must be strings")
        statuses.append(status)
    return statuses


async def _close(websocket: WebSocket, code: int, reason: str) -> None:
    if websocket.application_state != WebSocketState.CONNECTED:
        return
    reason = close_reason(reason)
    try:  # a peer that does not read gets no longer than a hello to do so
        await asyncio.wait_for(
            websocket.send_text(protocol.encode({"type": "error", "reason": reason})),
            HELLO_TIMEOUT,
        )
        await asyncio.wait_for(websocket.close(code, reason), HELLO_TIMEOUT)
    except Exception:  # the peer is already gone, or never read
        pass
