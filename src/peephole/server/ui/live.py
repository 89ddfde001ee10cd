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
from collections.abc import AsyncIterator, Callable
from typing import Any, Optional

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import StreamingResponse

from peephole import protocol
from peephole.server.api import probes as probe_api
from peephole.server.broker import Broker
from peephole.server.hub import Subscriber
from peephole.server.store import NotFound
from peephole.server.stream import STREAM_TYPES
from peephole.server.ui import render
from peephole.server.ui.events import list_events
from peephole.server.ui.session import Viewer, signed_in

__all__ = ["sse"]

router = APIRouter()

KEEPALIVE_SECONDS = 15.0
TICK_SECONDS = 1.0  # how often an idle stream checks whether the server is stopping


def sse(message: dict[str, Any], replay: bool = False) -> str:
    """One Server-Sent Event: ``data:`` and a JSON line (JSON has no raw newlines).
    ``replay`` marks an event stored before the stream opened (see ``since``)."""
    if message.get("type") == "event":
        body = {"type": "event", "event": render.event_summary(message["event"]), "replay": replay}
    elif message.get("type") == "probe":
        body = {"type": "probe", "probe": render.probe_summary(message["probe"])}
    else:
        body = message
    return f"data: {json.dumps(body, separators=(',', ':'))}\n\n"


async def current_probes(
    broker: Broker, viewer: Viewer, subscriber: Subscriber
) -> list[dict[str, Any]]:
    """The probes a new stream follows, as they are now: a status that arrived between
    rendering the page and opening the stream would otherwise be missed."""
    if subscriber.type not in (None, "probe"):
        return []
    if subscriber.probe_id is not None:
        try:
            return [
                await probe_api.get_probe(subscriber.probe_id, broker=broker, _=viewer.principal)
            ]
        except NotFound:
            return []
    return await probe_api.list_probes(
        service=subscriber.service, state=None, broker=broker, _=viewer.principal
    )


REPLAY_MARGIN = 5.0  # seconds: an event's time is the agent's, taken before it was stored
REPLAY_LIMIT = 200


async def stored_since(
    broker: Broker, viewer: Viewer, subscriber: Subscriber, since: float
) -> list[dict[str, Any]]:
    """Events that may have been stored between rendering the page and opening the stream,
    oldest first (the page drops those it already shows, by id)."""
    kind = subscriber.type if subscriber.type in protocol.EVENT_TYPES else None
    events = await list_events(
        broker,
        viewer.principal,
        type=kind,
        probe_id=subscriber.probe_id,
        service=subscriber.service,
        since=since - REPLAY_MARGIN,
        limit=REPLAY_LIMIT,
    )
    return events[::-1]


@router.get("/live")
async def live(
    request: Request,
    service: Optional[str] = Query(None, max_length=200),
    probe_id: Optional[str] = Query(None, max_length=64),
    type: Optional[str] = Query(None, max_length=20),
    since: Optional[float] = Query(None, description="the page's render time"),
    viewer: Viewer = Depends(signed_in),
) -> StreamingResponse:
    broker: Broker = request.app.state.broker
    kind = type if type in STREAM_TYPES else None
    subscriber = Subscriber(
        service=service or None,
        probe_id=probe_id or None,
        type=kind,
        token_id=viewer.principal.id,
    )

    # Set by ``peephole server``: the stream ends when the server stops, instead of holding
    # up its shutdown (an open page never ends the response by itself).
    stopping: Callable[[], bool] = getattr(request.app.state, "stopping", lambda: False)

    async def messages() -> AsyncIterator[str]:
        broker.hub.subscribers.add(subscriber)  # before reading: no change falls between
        try:
            yield ": connected\n\n"
            for probe in await current_probes(broker, viewer, subscriber):
                yield sse({"type": "probe", "probe": probe})
            if since is not None:
                for event in await stored_since(broker, viewer, subscriber, since):
                    yield sse({"type": "event", "event": event}, replay=True)
            idle = 0.0
            while not await request.is_disconnected() and not stopping():
                try:
                    message = await asyncio.wait_for(subscriber.queue.get(), TICK_SECONDS)
                except asyncio.TimeoutError:
                    idle += TICK_SECONDS
                    if idle >= KEEPALIVE_SECONDS:
                        idle = 0.0
                        yield ": keepalive\n\n"
                    continue
                idle = 0.0
                yield sse(message)
                if message.get("type") == "error":  # the token was revoked or expired
                    return
        finally:
            broker.hub.subscribers.discard(subscriber)

    headers = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}
    return StreamingResponse(messages(), media_type="text/event-stream", headers=headers)
