"""The live stream for people: ``WS /api/v1/stream?token=...&service=&probe_id=&type=``.

Pushes ``{"type": "event", "event": ...}`` and ``{"type": "probe", "probe": ...}``. A bad
token or filter gets ``{"type": "error", "reason": ...}`` and close code 1008, and so does
an open stream whose token is revoked or expires. A reader that takes longer than the send
deadline to read one message is disconnected (others are never held up by it: each stream
has its own bounded queue).
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Optional

from fastapi import HTTPException
from starlette.websockets import WebSocket, WebSocketDisconnect

from peephole import protocol
from peephole.server.auth import authenticate, bearer_token
from peephole.server.broker import Broker
from peephole.server.connection import POLICY_VIOLATION, close_reason
from peephole.server.hub import Subscriber
from peephole.server.wsprotocol import EXTENSION, SocketControl

__all__ = ["STREAM_TYPES", "stream_endpoint"]

STREAM_TYPES = (*protocol.EVENT_TYPES, "probe")


async def stream_endpoint(websocket: WebSocket) -> None:
    broker: Broker = websocket.app.state.broker
    await websocket.accept()
    params = websocket.query_params
    try:
        token = params.get("token") or bearer_token(websocket.headers.get("authorization"))
        principal = await authenticate(broker, token)
    except HTTPException as exc:
        await _refuse(websocket, str(exc.detail))
        return
    kind: Optional[str] = params.get("type") or None
    if kind is not None and kind not in STREAM_TYPES:
        await _refuse(websocket, f"type must be one of {', '.join(STREAM_TYPES)}")
        return
    subscriber = Subscriber(
        service=params.get("service") or None,
        probe_id=params.get("probe_id") or None,
        type=kind,
        token_id=principal.id,
    )
    broker.hub.subscribers.add(subscriber)
    control: Optional[SocketControl] = websocket.scope.get("extensions", {}).get(EXTENSION)
    tasks = {
        asyncio.create_task(_send(websocket, subscriber, broker.settings.send_timeout)),
        asyncio.create_task(_until_gone(websocket)),
    }
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        broker.hub.subscribers.discard(subscriber)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if subscriber.ended is not None and control is not None:
            control.abort()  # whatever the reader did not take is not worth waiting for


async def _until_gone(websocket: WebSocket) -> None:
    """People send nothing; this notices when they leave."""
    with contextlib.suppress(WebSocketDisconnect):
        while (await websocket.receive())["type"] != "websocket.disconnect":
            pass


async def _send(websocket: WebSocket, subscriber: Subscriber, deadline: float) -> None:
    with contextlib.suppress(Exception):
        while True:
            message = await subscriber.queue.get()
            await asyncio.wait_for(websocket.send_text(protocol.encode(message)), deadline)
            if message.get("type") == "error":
                await asyncio.wait_for(
                    websocket.close(POLICY_VIOLATION, close_reason(message["reason"])), deadline
                )
                return
    subscriber.ended = subscriber.ended or "did not read in time"


async def _refuse(websocket: WebSocket, reason: str) -> None:
    with contextlib.suppress(Exception):
        await websocket.send_text(protocol.encode({"type": "error", "reason": reason}))
        await websocket.close(POLICY_VIOLATION, close_reason(reason))
