"""A service's page (instances, loaded files) and its deployed source, read by a live agent
through the REST API's source endpoints, with the probeable lines and probes in the gutter."""

from __future__ import annotations

import asyncio
from typing import Any, Optional

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import Response

from peephole.server.api import probes as probe_api
from peephole.server.api import services as service_api
from peephole.server.broker import Broker
from peephole.server.ui import broker_of, page, render
from peephole.server.ui.session import Viewer, signed_in

__all__ = ["probes_on"]

router = APIRouter()


async def files_of(broker: Broker, service: str, viewer: Viewer) -> tuple[list[str], str]:
    """The loaded files a live agent lists, or none and why."""
    try:
        answer = await service_api.list_files(service, broker=broker, _=viewer.principal)
    except HTTPException as exc:
        return [], str(exc.detail)
    files: list[str] = answer["files"]
    if not files:
        return [], "the agent serves no source files"
    return files, ""


@router.get("/services/{name}")
async def service_page(
    request: Request, name: str, viewer: Viewer = Depends(signed_in)
) -> Response:
    broker = broker_of(request)
    instances = await service_api.list_instances(
        service=name, include_gone=True, broker=broker, _=viewer.principal
    )
    files, why = await files_of(broker, name, viewer)
    application = [f for f in files if not render.is_library(f)]
    libraries = [f for f in files if render.is_library(f)]
    return page(
        request,
        "service.html",
        viewer,
        service=name,
        instances=instances,
        application=application,
        libraries=libraries,
        no_files=why,
    )


def probes_on(probes: list[dict[str, Any]], path: str) -> dict[int, list[dict[str, Any]]]:
    """Probes placed on ``path`` (matched by suffix, as agents match), by line."""
    by_line: dict[int, list[dict[str, Any]]] = {}
    for probe in probes:
        resolved = {s.get("path") for s in probe["statuses"]}
        wanted = probe["file"].lstrip("/")
        if path in resolved or path == probe["file"] or path.endswith("/" + wanted):
            by_line.setdefault(probe["line"], []).append(probe)
    return by_line


def gutter_mark(probes: list[dict[str, Any]]) -> tuple[str, str]:
    """The gutter's classes (each probe's state) and tooltip (with error messages)."""
    return " ".join(p["state"] for p in probes), gutter_message(probes)


def gutter_message(probes: list[dict[str, Any]]) -> str:
    """The gutter's tooltip: each probe's state, with error messages."""
    parts = []
    for probe in probes:
        errors = [s["message"] for s in probe["statuses"] if s["state"] == "error" and s["message"]]
        text = f"{probe['kind']} {probe['id']}: {probe['state']}"
        parts.append(f"{text} ({errors[0]})" if errors else text)
    return "; ".join(parts)


@router.get("/services/{name}/source")
async def source_page(
    request: Request,
    name: str,
    path: str = Query(min_length=1, max_length=4000),
    line: Optional[int] = Query(None, ge=1),
    viewer: Viewer = Depends(signed_in),
) -> Response:
    broker = broker_of(request)
    try:
        source = await service_api.get_source(name, path=path, broker=broker, _=viewer.principal)
    except HTTPException as exc:
        return page(
            request,
            "source.html",
            viewer,
            service=name,
            path=path,
            error=str(exc.detail),
            rows="",
            gutter={},
            line=line,
        )
    probes = await probe_api.list_probes(
        service=name, state=None, broker=broker, _=viewer.principal
    )
    gutter = probes_on(probes, source["path"])
    lines = await asyncio.to_thread(render.highlight_lines, source["text"])
    rows = render.source_rows(
        lines,
        set(source["lines"]),
        {n: gutter_mark(p) for n, p in gutter.items()},
        line,
        source["path"],
    )
    return page(
        request,
        "source.html",
        viewer,
        service=name,
        path=source["path"],
        error=None,
        rows=rows,
        gutter=gutter,
        line=line,
    )
