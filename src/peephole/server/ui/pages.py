"""Signing in and out, and the services page (each service with its instances)."""

from __future__ import annotations

import time
from collections import Counter
from typing import Any, Optional

from fastapi import APIRouter, Depends, Form, HTTPException, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from peephole import protocol
from peephole.server.api import services as service_api
from peephole.server.auth import authenticate
from peephole.server.models import EventRow, ProbeRow
from peephole.server.ui import broker_of, page, render
from peephole.server.ui.session import (
    Viewer,
    check_csrf,
    end_session,
    login_nonce_ok,
    new_login_nonce,
    remember_login_nonce,
    signed_in,
    start_session,
)

__all__ = ["instances_by_service"]

router = APIRouter()

GONE_SHOWN = 5  # disconnected instances listed per service (the newest); the rest are counted


def _safe_next(target: Optional[str]) -> str:
    """Only a path on this site: never an open redirect."""
    if target and target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return "/"


@router.get("/login")
async def login_form(request: Request, next: Optional[str] = None) -> Response:
    return _login_page(request, next, None)


def _login_page(
    request: Request, next: Optional[str], error: Optional[str], status: int = 200
) -> Response:
    nonce = new_login_nonce()
    response = page(
        request, "login.html", None, status=status, next=_safe_next(next), error=error, nonce=nonce
    )
    remember_login_nonce(response, nonce, broker_of(request).settings.tls)
    return response


@router.post("/login")
async def login(
    request: Request,
    token: str = Form("", max_length=500),
    nonce: str = Form("", max_length=200),
    next: str = Form("/", max_length=2000),
) -> Response:
    if not login_nonce_ok(request, nonce):
        return _login_page(request, next, "the sign-in form expired; try again", 403)
    try:
        await authenticate(broker_of(request), token.strip())
    except HTTPException:
        return _login_page(request, next, "unknown or revoked token", 401)
    response = RedirectResponse(_safe_next(next), status_code=303)
    start_session(response, token.strip(), broker_of(request).settings.tls)
    return response


@router.post("/logout")
async def logout(
    request: Request, csrf: str = Form(""), viewer: Viewer = Depends(signed_in)
) -> Response:
    check_csrf(request, viewer, csrf)
    response = RedirectResponse("/login", status_code=303)
    end_session(response)
    return response


@router.get("/static/ui/pygments.css")
async def pygments_css() -> Response:
    """Token colours for the highlighted source, made by Pygments (both themes)."""
    return Response(
        render.pygments_css(), media_type="text/css", headers={"Cache-Control": "max-age=3600"}
    )


# --- services ------------------------------------------------------------------------------


def exception_counts(session: Session, since: float) -> dict[str, int]:
    """Exception events per service since ``since`` (the services page's last hour)."""
    rows = session.execute(
        select(EventRow.service, func.count())
        .where(EventRow.type == protocol.EXCEPTION, EventRow.time >= since)
        .group_by(EventRow.service)
    )
    return {service: int(count) for service, count in rows}


def live_probe_counts(session: Session, now: float) -> dict[str, int]:
    """Probes still placed (not done, expired or disabled) per targeted service."""
    rows = session.execute(
        select(ProbeRow.target_service, func.count())
        .where(
            ProbeRow.enabled,
            ProbeRow.finished.is_(None),
            or_(ProbeRow.expires_at.is_(None), ProbeRow.expires_at > now),
        )
        .group_by(ProbeRow.target_service)
    )
    return {service or "*": int(count) for service, count in rows}


def instances_by_service(
    instances: list[dict[str, Any]],
) -> tuple[dict[str, list[dict[str, Any]]], dict[str, int]]:
    """Each service's live instances and its newest gone ones (a service restarted a hundred
    times lists five), with how many gone ones are left out."""
    by_service: dict[str, list[dict[str, Any]]] = {}
    gone: Counter[str] = Counter()
    for instance in instances:  # newest first within each service
        name = instance["service"]
        if instance["connected"] or gone[name] < GONE_SHOWN:
            by_service.setdefault(name, []).append(instance)
        gone[name] += not instance["connected"]
    return by_service, {name: max(0, count - GONE_SHOWN) for name, count in gone.items()}


@router.get("/")
async def services_page(request: Request, viewer: Viewer = Depends(signed_in)) -> Response:
    broker = broker_of(request)
    principal = viewer.principal
    services = await service_api.list_services(broker=broker, _=principal)
    instances = await service_api.list_instances(
        service=None, include_gone=True, broker=broker, _=principal
    )
    since = time.time() - 3600
    exceptions = await broker.db.read(lambda s: exception_counts(s, since))
    probe_counts = await broker.db.read(lambda s: live_probe_counts(s, since + 3600))
    by_service, hidden = instances_by_service(instances)
    return page(
        request,
        "services.html",
        viewer,
        services=services,
        instances=by_service,
        probe_counts=probe_counts,
        exceptions=exceptions,
        hidden=hidden,
    )
