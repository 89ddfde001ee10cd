"""``GET /live``: the server's live stream (``peephole.server.hub``) for the signed-in page,
as Server-Sent Events.

The REST stream (``/api/v1/stream``) is a WebSocket that takes a bearer token; a page
cannot read its HttpOnly session cookie to send one, and ``EventSource`` sends the cookie
by itself. Messages are small summaries (``render.event_summary``): a page that wants a
whole snapshot opens it.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any, Optional

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import StreamingResponse

from peephole.server.broker import Broker
from peephole.server.hub import Subscriber
from peephole.server.stream import STREAM_TYPES
from peephole.server.ui import render
from peephole.server.ui.session import Viewer, signed_in

router = APIRouter()

KEEPALIVE_SECONDS = 15.0


def sse(message: dict[str, Any]) -> str:
    """One Server-Sent Event: ``data:`` and a JSON line (JSON has no raw newlines)."""
    if message.get("type") == "event":
        body = {"type": "event", "event": render.event_summary(message["event"])}
    elif message.get("type") == "probe":
        body = {"type": "probe", "probe": render.probe_summary(message["probe"])}
    else:
        body = message
    return f"data: {json.dumps(body, separators=(',', ':'))}\n\n"


@router.get("/live")
async def live(
    request: Request,
    service: Optional[str] = Query(None, max_length=200),
    probe_id: Optional[str] = Query(None, max_length=64),
    type: Optional[str] = Query(None, max_length=20),
    viewer: Viewer = Depends(signed_in),
) -> StreamingResponse:
    broker: Broker = request.app.state.broker
    kind = type if type in STREAM_TYPES else None
    subscriber = Subscriber(
        service=service or None, probe_id=probe_id or None, type=kind,
        token_id=viewer.principal.id, expires_at=viewer.principal.expires_at,
    )

    async def messages() -> AsyncIterator[str]:
        broker.hub.subscribers.add(subscriber)
        try:
            yield ": connected\n\n"
            while not await request.is_disconnected():
                try:
                    message = await asyncio.wait_for(subscriber.queue.get(), KEEPALIVE_SECONDS)
                except asyncio.TimeoutError:
                    yield ": keepalive\n\n"
                    continue
                yield sse(message)
                if message.get("type") == "error":  # the token was revoked or expired
                    return
        finally:
            broker.hub.subscribers.discard(subscriber)

    headers = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}
    return StreamingResponse(messages(), media_type="text/event-stream", headers=headers)
