"""The agents' WebSocket (``protocol.AGENT_PATH``): hello, then events, status and answers.

Every message is checked against its definition in :mod:`peephole.messages`. A message that
breaks the protocol closes that one connection with a reason naming the field (1008, or 1009
when too big); every other connection is untouched.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, Optional, cast

from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from peephole import messages, protocol
from peephole.server import wire
from peephole.server.broker import Broker
from peephole.server.connection import POLICY_VIOLATION, AgentConnection, close_reason
from peephole.server.store import credentials
from peephole.server.store import events as event_store
from peephole.server.store import instances as instance_store
from peephole.server.wsprotocol import EXTENSION, SocketControl

__all__ = ["agent_endpoint"]

log = logging.getLogger("peephole.server")

HELLO_TIMEOUT = 10.0
MESSAGE_TOO_BIG = 1009
TRY_AGAIN_LATER = 1013
MAX_UNAUTHENTICATED = 256  # connections that have not said hello yet, at once


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
    _check_version(message.get("protocol", 1))
    hello = cast(messages.Hello, _checked(message))
    grant = await broker.db.read(lambda s: credentials.find_agent_key(s, hello["key"]))
    if grant is None:
        raise Rejected(POLICY_VIOLATION, "unknown agent key")
    info = protocol.InstanceInfo.from_dict(hello["instance"])
    if not grant.allows(info.service):
        raise Rejected(POLICY_VIOLATION, f"this agent key may not join service {info.service!r}")
    held = broker.hub.agents.get(info.instance_id)
    if held is not None and held.kicked is None:
        raise Rejected(
            POLICY_VIOLATION, f"instance id {info.instance_id!r} is in use by another connection"
        )
    connection = AgentConnection(
        websocket,
        info,
        hello.get("features", ()),
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
        messages.Welcome(
            type="welcome",
            instance_id=info.instance_id,
            config=policy.to_dict(),
            protocol=protocol.PROTOCOL_VERSION,
            last_disconnect=last_disconnect,
        )
    )
    await broker.send_probes(connection)
    return connection


def _check_version(version: Any) -> None:
    """Refuse an agent older than this server still speaks. A newer one is welcome: the
    ``welcome`` carries this server's version and the agent speaks that one (versions only
    add to the protocol)."""
    if isinstance(version, int) and version < protocol.OLDEST_PROTOCOL_VERSION:
        raise Rejected(
            POLICY_VIOLATION,
            f"agent protocol {version} is too old: this server needs "
            f"{protocol.OLDEST_PROTOCOL_VERSION} or newer; upgrade the agent",
        )


def _checked(message: wire.Message) -> Optional[messages.AgentMessage]:
    """``message`` checked against its definition in :mod:`peephole.messages`."""
    try:
        return messages.agent_message(message)
    except protocol.ProtocolError as exc:
        raise Rejected(POLICY_VIOLATION, str(exc)) from None


async def _serve(broker: Broker, connection: AgentConnection) -> None:
    while True:
        message = await _receive(connection.websocket)
        connection.last_message = time.time()
        broker.metrics.agent_messages_total += 1
        checked = _checked(message)
        if checked is None:  # a newer agent's message: ignored, not an error
            log.debug("ignoring agent message of type %r", message["type"])
        elif checked["type"] == "events":
            seq, dropped = checked["seq"], checked.get("dropped", 0)
            events: list[dict[str, Any]] = cast(Any, checked["events"])
            events, texts = _to_store(broker, connection, events, message.raw_events)
            del message, checked  # the parsed bodies go now, not after the commit (_to_store)
            await broker.ingest(connection, events, dropped, texts)
            connection.send(messages.Ack(type="ack", seq=seq))
        elif checked["type"] == "status":
            statuses = [protocol.ProbeStatus.from_dict(s) for s in checked["probes"]]
            await broker.statuses(connection, statuses)
            health = checked.get("agent")  # older agents omit it
            if health is not None:
                await broker.agent_health(connection, protocol.AgentHealth.from_dict(health))
        elif checked["type"] in ("source", "files"):
            connection.answer(checked)


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


def _to_store(
    broker: Broker,
    connection: AgentConnection,
    events: list[dict[str, Any]],
    texts: list[str],
) -> tuple[list[dict[str, Any]], list[str]]:
    """What to store of an ``events`` message, and the events' texts: the events of probes
    this connection was sent, and those that name no probe (exceptions), so a key holder
    cannot spend another service's hit limit with forged events (an id that is not text, an
    exception's is not checked, names no probe sent: refused). With their texts, only the
    events' top-level fields are kept (``event_store.light``): the batch waits for its
    transaction without the parsed bodies."""
    sent = connection.ever_sent
    kept = [
        i
        for i, e in enumerate(events)
        if (probe_id := e.get("probe_id")) is None or (type(probe_id) is str and probe_id in sent)
    ]
    broker.metrics.events_refused_total += len(events) - len(kept)
    if len(texts) != len(events):
        return [events[i] for i in kept], []
    return [event_store.light(events[i]) for i in kept], [texts[i] for i in kept]


async def _close(websocket: WebSocket, code: int, reason: str) -> None:
    if websocket.application_state != WebSocketState.CONNECTED:
        return
    reason = close_reason(reason)
    try:  # a peer that does not read gets no longer than a hello to do so
        await asyncio.wait_for(
            websocket.send_text(protocol.encode(messages.Error(type="error", reason=reason))),
            HELLO_TIMEOUT,
        )
        await asyncio.wait_for(websocket.close(code, reason), HELLO_TIMEOUT)
    except Exception:  # the peer is already gone, or never read
        pass
