"""Events (snapshots, log lines, exceptions) and exception groups, answered through the
models in ``responses``."""

from __future__ import annotations

from typing import Any, Literal, Optional

from fastapi import APIRouter, Depends, Query

from peephole.server import auth
from peephole.server.api import responses
from peephole.server.api.deps import (
    EventId,
    Fingerprint,
    FingerprintFilter,
    InstanceFilter,
    ProbeFilter,
    ServiceFilter,
    get_broker,
    invalid,
)
from peephole.server.broker import Broker
from peephole.server.store import events as event_store
from peephole.server.store.credentials import Principal

__all__ = [
    "EventType",
    "get_event",
    "get_exception_group",
    "list_events",
    "list_exceptions",
    "router",
]

router = APIRouter(tags=["events"])

EventType = Literal["snapshot", "log", "exception"]


@router.get("/events", response_model=responses.EventPage)
async def list_events(
    type: Optional[EventType] = None,
    probe_id: ProbeFilter = None,
    service: ServiceFilter = None,
    instance_id: InstanceFilter = None,
    fingerprint: FingerprintFilter = None,
    since: Optional[float] = Query(None, ge=0, le=1e12),
    limit: int = Query(50, ge=1, le=1000),
    cursor: Optional[str] = Query(None, max_length=100),
    broker: Broker = Depends(get_broker),
    _: Principal = Depends(auth.viewer),
) -> dict[str, Any]:
    position = None
    if cursor:
        try:
            position = event_store.parse_cursor(cursor)
        except ValueError:
            invalid("query", "cursor", "cursor must be a next_cursor from a previous page", cursor)
    where = event_store.EventFilter(type, probe_id, service, instance_id, fingerprint, since)
    events, next_cursor = await broker.db.read(
        lambda s: event_store.query(s, where, limit, position)
    )
    return {"events": [broker.event_view(e) for e in events], "next_cursor": next_cursor}


@router.get("/events/{event_id}", response_model=responses.Event)
async def get_event(
    event_id: EventId, broker: Broker = Depends(get_broker), _: Principal = Depends(auth.viewer)
) -> dict[str, Any]:
    return broker.event_view(await broker.db.read(lambda s: event_store.get(s, event_id)))


@router.get("/exceptions", response_model=list[responses.ExceptionGroup])
async def list_exceptions(
    service: ServiceFilter = None,
    limit: int = Query(200, ge=1, le=5000),
    broker: Broker = Depends(get_broker),
    _: Principal = Depends(auth.viewer),
) -> list[dict[str, Any]]:
    return await broker.db.read(lambda s: event_store.exception_groups(s, service, limit))


@router.get("/exceptions/{fingerprint}", response_model=responses.ExceptionGroupDetail)
async def get_exception_group(
    fingerprint: Fingerprint,
    events: int = Query(20, ge=1, le=200),
    broker: Broker = Depends(get_broker),
    _: Principal = Depends(auth.viewer),
) -> dict[str, Any]:
    group = await broker.db.read(lambda s: event_store.exception_group(s, fingerprint, events))
    group["events"] = [broker.event_view(e) for e in group["events"]]
    return group
