"""``/app``: the WebSocket Sidekick agents connect to, on the server's own port.

Identity and key come in the upgrade headers; a wrong or missing key or instance id is
refused with HTTP 401 before the upgrade (Python's agent then stops retrying, Node's too
when its first attempt is refused). A newer connection of the same instance replaces the
older one, as the Sidekick broker did (these agents reconnect every 1-3 s after a drop), when
it is a Sidekick agent of the same service; any other holder of the id is kept (409).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Any, Optional

from starlette.responses import PlainTextResponse
from starlette.websockets import WebSocket, WebSocketDisconnect

from peephole import messages, protocol
from peephole.server import wire
from peephole.server.broker import Broker
from peephole.server.connection import POLICY_VIOLATION, close_reason
from peephole.server.sidekick import identity
from peephole.server.sidekick.session import SidekickConnection
from peephole.server.store import credentials
from peephole.server.store import instances as instance_store
from peephole.server.wsprotocol import EXTENSION, SocketControl

__all__ = ["PATH", "sidekick_endpoint"]

log = logging.getLogger("peephole.server")

PATH = "/app"
MESSAGE_TOO_BIG = 1009
CONFLICT = 409
FRESH_SECONDS = protocol.HEARTBEAT_SECONDS  # how often an open connection counts as heard from
REPLACE_SECONDS = 10.0  # how long a reconnect waits for the older connection's cleanup


async def sidekick_endpoint(websocket: WebSocket) -> None:
    broker: Broker = websocket.app.state.broker
    try:
        info, runtime, key_id = await _admit(broker, websocket)
    except identity.Refused as exc:
        broker.metrics.agent_messages_rejected_total += 1
        await _deny(websocket, exc.status, exc.reason)
        return
    control: Optional[SocketControl] = websocket.scope.get("extensions", {}).get(EXTENSION)
    connection = SidekickConnection(
        websocket,
        info,
        broker,
        runtime,
        websocket.headers[identity.INSTANCE_ID].strip(),
        control.abort if control is not None else None,
    )
    connection.key_id = key_id  # a revoked key ends the connection
    await websocket.accept()
    tasks: list[asyncio.Task[None]] = []
    registered = False
    try:
        held = broker.hub.agents.get(info.instance_id)
        if held is not None:  # a Sidekick agent of this service reconnecting (see _admit)
            held.kick("replaced by a newer connection of the same Sidekick instance")
            if isinstance(held, SidekickConnection):  # its "disconnected" must come first
                await asyncio.wait_for(held.ended.wait(), REPLACE_SECONDS)
        try:
            policy, _ = await broker.register(connection)
        except instance_store.InstanceHeld:  # connected to another server process
            await websocket.close(POLICY_VIOLATION, close_reason("instance id in use elsewhere"))
            return
        registered = True
        connection.set_policy(policy)
        tasks = [connection.start(), asyncio.create_task(_keep_fresh(connection))]
        await broker.send_probes(connection)
        await _serve(broker, connection)
    except WebSocketDisconnect:
        pass
    except asyncio.CancelledError:
        if connection.kicked is None:
            raise
        asyncio.current_task().uncancel()  # type: ignore[union-attr]
    except Exception:
        log.exception("Sidekick connection failed")
    finally:
        for task in tasks:
            task.cancel()
        connection.closed()
        try:
            if registered:
                await broker.unregister(connection)
        finally:
            connection.ended.set()


async def _admit(broker: Broker, websocket: WebSocket) -> tuple[protocol.InstanceInfo, str, int]:
    """Who the agent is, its runtime and key id, checked before the upgrade (raises
    :class:`identity.Refused`)."""
    headers = websocket.headers
    key = identity.api_key(headers)
    info = identity.instance_info(headers, time.time())
    try:  # the checks a peephole agent's hello gets
        messages.agent_message({"type": "hello", "key": key, "instance": info.to_dict()})
    except protocol.ProtocolError as exc:
        raise identity.Refused(str(exc), 400) from None
    grant = await broker.db.read(lambda s: credentials.find_agent_key(s, key))
    if grant is None:
        raise identity.Refused("unknown agent key")
    if not grant.allows(info.service):
        raise identity.Refused(f"this agent key may not join service {info.service!r}", 403)
    held = broker.hub.agents.get(info.instance_id)
    replaceable = isinstance(held, SidekickConnection) and held.info.service == info.service
    if held is not None and held.kicked is None and not replaceable:
        raise identity.Refused(f"instance id {info.instance_id!r} is in use", CONFLICT)
    return info, identity.runtime_kind(headers), grant.id


async def _serve(broker: Broker, connection: SidekickConnection) -> None:
    """Handle the agent's frames until it leaves; once the server is closing the connection
    (a too-big frame), what still arrives is read and dropped while the close goes out."""
    failures = 0
    closing = False
    while True:
        message = await connection.websocket.receive()
        if message["type"] == "websocket.disconnect":
            raise WebSocketDisconnect(message.get("code", 1000))
        data = message.get("text")
        if data is None:
            data = message.get("bytes") or b""
        if closing:
            continue
        if len(data) > protocol.MAX_MESSAGE_BYTES:
            connection.close(MESSAGE_TOO_BIG, f"message of {len(data)} bytes is too big")
            closing = True
            continue
        broker.metrics.agent_messages_total += 1
        connection.last_message = time.time()
        frame = _decode(data)
        if frame is None:
            broker.metrics.agent_messages_rejected_total += 1
            continue
        try:
            await connection.handle(frame)
        except Exception:  # one bad frame costs that frame, not the connection
            broker.metrics.agent_messages_rejected_total += 1
            failures += 1
            log.log(
                logging.WARNING if failures == 1 else logging.DEBUG,  # the first, not a flood
                "Sidekick agent %s: frame %r failed",
                connection.instance_id,
                frame.get("name"),
                exc_info=True,
            )


def _decode(data: Any) -> Optional[dict[str, Any]]:
    try:
        frame = json.loads(data)
    except (ValueError, RecursionError):
        return None
    if not isinstance(frame, dict):
        return None
    if not isinstance(data, str) or wire.may_hold_surrogates(data):  # bytes: walk to be sure
        frame = dict(wire.without_lone_surrogates(frame))
    return frame


async def _keep_fresh(connection: SidekickConnection) -> None:
    while True:
        connection.keep_fresh(time.time())
        await asyncio.sleep(FRESH_SECONDS)


async def _deny(websocket: WebSocket, status: int, reason: str) -> None:
    """Refuse the upgrade with an HTTP answer; a server without the ASGI denial-response
    extension refuses it with its own 403."""
    try:
        await websocket.send_denial_response(PlainTextResponse(reason + "\n", status_code=status))
    except RuntimeError:
        await websocket.close(POLICY_VIOLATION)
