"""The live stream for people: ``WS /api/v1/stream?token=...&service=&probe_id=&type=``.

Pushes ``{"type": "event", "event": ...}`` and ``{"type": "probe", "probe": ...}``. A bad
token or filter gets ``{"type": "error", "reason": ...}`` and close code 1008.
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
from peephole.server.hub import Subscriber

STREAM_TYPES = (*protocol.EVENT_TYPES, "probe")


async def stream_endpoint(websocket: WebSocket) -> None:
    broker: Broker = websocket.app.state.broker
    await websocket.accept()
    params = websocket.query_params
    try:
        token = params.get("token") or bearer_token(websocket.headers.get("authorization"))
        await authenticate(broker, token)
    except HTTPException as exc:
        await _refuse(websocket, str(exc.detail))
        return
    kind: Optional[str] = params.get("type") or None
    if kind is not None and kind not in STREAM_TYPES:
        await _refuse(websocket, f"type must be one of {', '.join(STREAM_TYPES)}")
        return
    subscriber = Subscriber(
        service=params.get("service") or None, probe_id=params.get("probe_id") or None, type=kind
    )
    broker.hub.subscribers.add(subscriber)
    sender = asyncio.create_task(_send(websocket, subscriber))
    try:
        while True:  # people send nothing; this notices when they leave
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                break
    except WebSocketDisconnect:
        pass
    finally:
        broker.hub.subscribers.discard(subscriber)
        sender.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sender


async def _send(websocket: WebSocket, subscriber: Subscriber) -> None:
    with contextlib.suppress(Exception):
        while True:
            message = await subscriber.queue.get()
            await websocket.send_text(protocol.encode(message))


async def _refuse(websocket: WebSocket, reason: str) -> None:
    with contextlib.suppress(Exception):
        await websocket.send_text(protocol.encode({"type": "error", "reason": reason}))
        await websocket.close(1008, reason[:120])
