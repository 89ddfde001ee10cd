"""For admins: user tokens, agent keys, a service's redaction policy and the audit log,
through the REST API's admin and policy handlers."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import Response
from pydantic import ValidationError

from peephole.server.api import admin as admin_api
from peephole.server.api import services as service_api
from peephole.server.api.schemas import AgentKeyCreate, PolicyBody, TokenCreate
from peephole.server.ui import broker_of, page
from peephole.server.ui.session import Viewer, check_csrf, require_role, signed_in

__all__ = ["admin_page", "create_agent_key", "create_token", "put_policy"]

router = APIRouter()


async def _admin_page(
    request: Request, viewer: Viewer, status: int = 200, **shown: Any
) -> Response:
    broker = broker_of(request)
    tokens = await admin_api.list_tokens(broker=broker, _=viewer.principal)
    audit = await admin_api.audit_log(limit=200, probe_id=None, broker=broker, _=viewer.principal)
    services = await service_api.list_services(broker=broker, _=viewer.principal)
    policies = {
        s["name"]: await service_api.get_policy(s["name"], broker=broker, _=viewer.principal)
        for s in services
    }
    context: dict[str, Any] = {"created": None, "error": None, **shown}
    return page(
        request,
        "admin.html",
        viewer,
        status=status,
        tokens=tokens,
        audit=audit,
        policies=policies,
        **context,
    )


@router.get("/admin")
async def admin_page(request: Request, viewer: Viewer = Depends(signed_in)) -> Response:
    require_role(viewer, "admin")
    return await _admin_page(request, viewer)


@router.post("/admin/tokens")
async def create_token(
    request: Request,
    csrf: str = Form(""),
    name: str = Form("", max_length=200),
    role: str = Form("viewer", max_length=20),
    viewer: Viewer = Depends(signed_in),
) -> Response:
    return await _create(request, viewer, csrf, "user token", {"name": name, "role": role})


@router.post("/admin/agent-keys")
async def create_agent_key(
    request: Request,
    csrf: str = Form(""),
    name: str = Form("", max_length=200),
    viewer: Viewer = Depends(signed_in),
) -> Response:
    return await _create(request, viewer, csrf, "agent key", {"name": name})


async def _create(
    request: Request, viewer: Viewer, csrf: str, what: str, fields: dict[str, str]
) -> Response:
    """Create a user token or an agent key through the API and show it once."""
    check_csrf(request, viewer, csrf)
    require_role(viewer, "admin")
    broker = broker_of(request)
    try:
        if what == "user token":
            token = TokenCreate.model_validate(fields)
            answer = await admin_api.create_token(token, principal=viewer.principal, broker=broker)
        else:
            key = AgentKeyCreate.model_validate(fields)
            answer = await admin_api.create_agent_key(
                key, principal=viewer.principal, broker=broker
            )
    except ValidationError as exc:
        return await _admin_page(request, viewer, 422, error=exc.errors()[0]["msg"])
    created = answer
    return await _admin_page(
        request, viewer, created=(what, created.get("token") or created.get("key"))
    )


@router.post("/admin/policy")
async def put_policy(
    request: Request,
    csrf: str = Form(""),
    service: str = Query(max_length=200),
    redact_names: str = Form("", max_length=20_000),
    allow_names: str = Form("", max_length=20_000),
    redact_patterns: str = Form("", max_length=20_000),
    capture_exceptions: bool = Form(False),
    serve_source: bool = Form(False),
    source_deny: str = Form("", max_length=20_000),
    viewer: Viewer = Depends(signed_in),
) -> Response:
    check_csrf(request, viewer, csrf)
    require_role(viewer, "admin")

    def lines(text: str) -> list[str]:
        return [item.strip() for item in text.splitlines() if item.strip()]

    try:
        body = PolicyBody.model_validate(
            {
                "redact_names": lines(redact_names),
                "allow_names": lines(allow_names),
                "redact_patterns": lines(redact_patterns),
                "capture_exceptions": capture_exceptions,
                "serve_source": serve_source,
                "source_deny": lines(source_deny),
            }
        )
    except ValidationError as exc:
        return await _admin_page(request, viewer, 422, error=exc.errors()[0]["msg"])
    await service_api.put_policy(
        service, body, principal=viewer.principal, broker=broker_of(request)
    )
    return await _admin_page(request, viewer)
