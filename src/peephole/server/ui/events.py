"""Snapshots (stack, frame source, variables, previous/next hit, two hits compared), the
live log page, and exception groups. Reads go through the REST API's event handlers."""

from __future__ import annotations

import asyncio
import time
from typing import Any, Optional, cast

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import Response
from sqlalchemy.orm import Session

from peephole import protocol
from peephole.server.api import events as event_api
from peephole.server.api import services as service_api
from peephole.server.broker import Broker
from peephole.server.store import events as event_store
from peephole.server.store.credentials import Principal
from peephole.server.ui import broker_of, page, render
from peephole.server.ui.session import Viewer, signed_in

__all__ = ["list_events"]

router = APIRouter()

CONTEXT_LINES = 8  # source lines shown on each side of a frame's line
LOG_LINES = 200  # lines the live log page opens with
GROUP_EVENTS = 100  # newest events of an exception group read for its chart


async def list_events(
    broker: Broker,
    principal: Principal,
    *,
    type: Optional[str] = None,
    probe_id: Optional[str] = None,
    service: Optional[str] = None,
    since: Optional[float] = None,
    limit: int = 50,
    cursor: Optional[str] = None,
) -> list[dict[str, Any]]:
    """``GET /api/v1/events`` with keyword arguments (its handler takes them all)."""
    page_ = await event_api.list_events(
        type=cast(Optional[event_api.EventType], type),
        probe_id=probe_id,
        service=service,
        instance_id=None,
        fingerprint=None,
        since=since,
        limit=limit,
        cursor=cursor,
        broker=broker,
        _=principal,
    )
    events: list[dict[str, Any]] = page_["events"]
    return events


async def neighbours(broker: Broker, event: dict[str, Any]) -> tuple[Optional[str], Optional[str]]:
    """The ids of the previous and next hit of the same probe, in (time, seq) order (the
    page read the event itself through the API, which checked the viewer)."""
    if not event.get("probe_id") or event["type"] != protocol.SNAPSHOT:
        return None, None
    event_id = str(event["id"])
    return await broker.db.read(
        lambda s: (
            event_store.adjacent(s, event_id, newer=False),
            event_store.adjacent(s, event_id, newer=True),
        )
    )


async def frame_source(
    broker: Broker, principal: Principal, service: str, frame: dict[str, Any]
) -> tuple[list[tuple[int, Any]], str]:
    """Numbered, highlighted lines around the frame's line, or why there are none."""
    try:
        source = await service_api.get_source(
            service, path=str(frame.get("file")), broker=broker, _=principal
        )
    except HTTPException as exc:
        return [], str(exc.detail)
    lines = await asyncio.to_thread(render.highlight_lines, source["text"])
    line = int(frame.get("line") or 1)
    first = max(1, line - CONTEXT_LINES)
    return [(n, lines[n - 1]) for n in range(first, min(len(lines), line + CONTEXT_LINES) + 1)], ""


def stack(frames: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Frames with ``app`` set (exception frames carry it; others are judged by path)."""
    return [
        {**f, "app": f.get("app", not render.is_library(str(f.get("file", ""))))}
        for f in frames
        if isinstance(f, dict)
    ]


def watch_values(event: dict[str, Any]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for watch in event.get("watches") or []:
        if isinstance(watch, dict):
            expr = str(watch.get("expr"))
            values[expr] = (
                watch.get("value")
                if "value" in watch
                else {"t": "error", "error": str(watch.get("error"))}
            )
    return values


@router.get("/events/{event_id}")
async def event_page(
    request: Request,
    event_id: str,
    frame: int = Query(0, ge=0, le=500),
    viewer: Viewer = Depends(signed_in),
) -> Response:
    broker = broker_of(request)
    event = render.with_readable_refs(
        await event_api.get_event(event_id, broker=broker, _=viewer.principal)
    )
    frames = stack(event.get("frames") or [])
    chosen = frames[frame] if frame < len(frames) else None
    source: list[tuple[int, Any]] = []
    no_source = "no frames"
    if chosen is not None:
        source, no_source = await frame_source(broker, viewer.principal, event["service"], chosen)
    older, newer = await neighbours(broker, event)
    return page(
        request,
        "event.html",
        viewer,
        event=event,
        frames=frames,
        frame=frame,
        chosen=chosen,
        source=source,
        no_source=no_source,
        older=older,
        newer=newer,
        values=(chosen or {}).get("locals") or {},
        watches=watch_values(event),
    )


@router.get("/compare")
async def compare_page(
    request: Request,
    a: str = Query(max_length=64),
    b: str = Query(max_length=64),
    viewer: Viewer = Depends(signed_in),
) -> Response:
    broker = broker_of(request)
    first = render.with_readable_refs(
        await event_api.get_event(a, broker=broker, _=viewer.principal)
    )
    second = render.with_readable_refs(
        await event_api.get_event(b, broker=broker, _=viewer.principal)
    )
    if first["time"] > second["time"]:
        first, second = second, first
    rows = render.compare(
        {**render.top_locals(first), **watch_values(first)},
        {**render.top_locals(second), **watch_values(second)},
    )
    return page(
        request,
        "compare.html",
        viewer,
        a=first,
        b=second,
        rows=rows,
        changed=sum(1 for r in rows if r[3]),
    )


async def recent_logs(
    broker: Broker,
    principal: Principal,
    service: Optional[str],
    probe_id: Optional[str],
    limit: int,
) -> list[dict[str, Any]]:
    """The newest log lines. Without a service or probe they are read service by service
    and merged: the events table is indexed by (service, time) and (probe_id, time), not by
    (type, time), so one query over every service would sort all log lines ever kept."""
    if service or probe_id:
        return await list_events(
            broker, principal, type=protocol.LOG, service=service, probe_id=probe_id, limit=limit
        )
    services = await service_api.list_services(broker=broker, _=principal)
    names = [s["name"] for s in services]
    lines = await broker.db.read(lambda s: _logs_by_service(s, names, limit))
    return [broker.event_view(e) for e in lines]


def _logs_by_service(session: Session, services: list[str], limit: int) -> list[dict[str, Any]]:
    newest: dict[str, float] = {}
    for service in services:  # the service with the newest line first, and so on
        found = event_store.query(
            session, event_store.EventFilter(type=protocol.LOG, service=service), 1
        )[0]
        if found:
            newest[service] = found[0]["time"]
    lines: list[dict[str, Any]] = []
    floor: Optional[float] = None  # once ``limit`` lines are in hand, only newer ones count
    for service in sorted(newest, key=newest.__getitem__, reverse=True):
        where = event_store.EventFilter(type=protocol.LOG, service=service, since=floor)
        lines += event_store.query(session, where, limit)[0]
        lines = sorted(lines, key=lambda e: e["time"], reverse=True)[:limit]
        if len(lines) >= limit:
            floor = lines[-1]["time"]
    return lines


@router.get("/logs")
async def logs_page(
    request: Request,
    service: str = Query("", max_length=200),
    probe_id: str = Query("", max_length=64),
    level: str = Query("", max_length=20),
    q: str = Query("", max_length=500),
    viewer: Viewer = Depends(signed_in),
) -> Response:
    broker = broker_of(request)
    lines = await recent_logs(
        broker,
        viewer.principal,
        service or None,
        probe_id or None,
        500 if level or q else LOG_LINES,
    )
    shown = [
        e
        for e in lines
        if (not level or e.get("level") == level)
        and (not q or q.lower() in str(e.get("message", "")).lower())
    ][:LOG_LINES]
    services = await service_api.list_services(broker=broker, _=viewer.principal)
    return page(
        request,
        "logs.html",
        viewer,
        lines=shown,
        service=service,
        probe_id=probe_id,
        level=level,
        q=q,
        levels=protocol.LOG_LEVELS,
        services=[s["name"] for s in services],
    )


@router.get("/exceptions")
async def exceptions_page(
    request: Request,
    service: str = Query("", max_length=200),
    viewer: Viewer = Depends(signed_in),
) -> Response:
    broker = broker_of(request)
    groups = await event_api.list_exceptions(
        service=service or None, limit=200, broker=broker, _=viewer.principal
    )
    services = await service_api.list_services(broker=broker, _=viewer.principal)
    return page(
        request,
        "exceptions.html",
        viewer,
        groups=groups,
        service=service,
        services=[s["name"] for s in services],
    )


@router.get("/exceptions/{fingerprint}")
async def exception_page(
    request: Request, fingerprint: str, viewer: Viewer = Depends(signed_in)
) -> Response:
    broker = broker_of(request)
    group = await event_api.get_exception_group(
        fingerprint, events=GROUP_EVENTS, broker=broker, _=viewer.principal
    )
    times: list[float] = []
    for event in group["events"]:
        times += [float(event.get("last_time") or event["time"])] * max(
            1, int(event.get("count") or 1)
        )
    chart = render.occurrences(times, time.time())
    newest = None
    if group.get("last_event_id"):
        newest = render.with_readable_refs(
            await event_api.get_event(group["last_event_id"], broker=broker, _=viewer.principal)
        )
    frames = stack((newest or {}).get("frames") or [])
    return page(
        request,
        "exception.html",
        viewer,
        group=group,
        chart=chart,
        peak=max(chart) or 1,
        newest=newest,
        frames=frames,
    )
