"""Probes: the add form (from a source line or a typed ``file:line``), the table with
per-instance status, one probe's page with its hits, and enable/disable/edit/delete.

Every change goes through the REST API's own handlers (``peephole.server.api.probes``), so
the UI validates, audits and pushes exactly as the API does; expressions and templates are
checked first with the API's own checker (``protocol``) so that an error can point at its
place in the text.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Optional

from fastapi import APIRouter, Depends, Form, HTTPException, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import RedirectResponse, Response
from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from peephole import protocol
from peephole.server.api import probes as probe_api
from peephole.server.api import services as service_api
from peephole.server.api.schemas import DEFAULT_EXPIRY, ProbeCreate, ProbeEdit
from peephole.server.models import ProbeRow
from peephole.server.store import probes as probe_store
from peephole.server.ui import broker_of, page
from peephole.server.ui.events import list_events
from peephole.server.ui.pages import _safe_next
from peephole.server.ui.session import Viewer, check_csrf, require_role, signed_in

__all__ = ["FieldError", "ProbeForm"]

router = APIRouter()


@dataclass
class FieldError:
    """A message for one form field; for expressions, the text as shown (escaped) and the
    0-based column in it that the caret goes under."""

    message: str
    text: Optional[str] = None
    column: Optional[int] = None  # 0-based, into ``text``


def _field_error(problem: Optional[protocol.Problem]) -> Optional[FieldError]:
    """The API's own refusal (``protocol``), its caret moved into the escaped text."""
    if problem is None:
        return None
    if not problem.column:
        return FieldError(problem.reason)
    before = protocol.printable(problem.text[: problem.column - 1])
    return FieldError(problem.reason, protocol.printable(problem.text), len(before))


def _lines(text: str) -> list[str]:
    return [item.strip() for item in text.splitlines() if item.strip()]


def _tags(text: str) -> dict[str, str]:
    pairs = [p.strip() for p in text.replace("\n", ",").split(",") if p.strip()]
    if any("=" not in p for p in pairs):
        raise ValueError("tags are key=value pairs separated by commas")
    return {k.strip(): v.strip() for k, v in (p.split("=", 1) for p in pairs)}


def _number(text: str, kind: type) -> Any:
    return kind(text) if text.strip() else None


@dataclass
class ProbeForm:
    """What the add form sent, kept as text so a refused form comes back as it was typed."""

    service: str = ""
    kind: str = protocol.TRACEPOINT
    file: str = ""
    line: str = ""
    condition: str = ""
    watches: str = ""
    template: str = ""
    level: str = "info"
    hit_limit: str = ""
    expire_minutes: str = str(int(DEFAULT_EXPIRY // 60))
    rate: str = ""
    environment: str = ""
    version: str = ""
    tags: str = ""
    instances: tuple[str, ...] = ()

    def check(self) -> dict[str, FieldError]:
        """Expression errors with their place (the API checks everything else)."""
        errors: dict[str, FieldError] = {}
        if self.condition.strip():
            found = _field_error(protocol.expression_problem_at(self.condition))
            if found:
                errors["condition"] = found
        for watch in _lines(self.watches):
            found = _field_error(protocol.expression_problem_at(watch))
            if found:
                errors["watches"] = found
                break
        if self.kind == protocol.LOGPOINT:
            found = _field_error(protocol.template_problem_at(self.template))
            if found:
                errors["template"] = found
        return errors

    def body(self) -> ProbeCreate:
        """The REST API's request body (raises ``ValueError``/``ValidationError``)."""
        minutes = _number(self.expire_minutes, float)
        return ProbeCreate.model_validate(
            {
                "kind": self.kind,
                "file": self.file.strip(),
                "line": _number(self.line, int),
                "condition": self.condition.strip() or None,
                "watches": _lines(self.watches),
                "template": self.template or None,
                "level": self.level,
                "hit_limit": _number(self.hit_limit, int),
                "expire_seconds": minutes * 60 if minutes is not None else None,
                "rate": _number(self.rate, float),
                "target": {
                    "service": self.service or None,
                    "environment": self.environment.strip() or None,
                    "version": self.version.strip() or None,
                    "tags": _tags(self.tags),
                    "instances": list(self.instances),
                },
            }
        )


SHOWN_FIELDS = {  # fields probe_form.html shows an error beside
    "form",
    "file",
    "line",
    "condition",
    "watches",
    "template",
    "level",
    "hit_limit",
    "expire_minutes",
    "rate",
    "service",
    "environment",
    "version",
    "tags",
    "instances",
}


def _validation_errors(exc: Exception) -> dict[str, FieldError]:
    if isinstance(exc, (ValidationError, RequestValidationError)):
        found: dict[str, FieldError] = {}
        for error in exc.errors():
            loc = [str(p) for p in error.get("loc", ()) if p not in ("body",)]
            name = loc[0] if loc else "form"
            name = {"expire_seconds": "expire_minutes"}.get(name, name)
            if name == "target" and len(loc) > 1:
                name = loc[1]
            message = str(error.get("msg", "invalid"))
            if name not in SHOWN_FIELDS:  # the form has no place for it: say it at the top
                name, message = "form", f"{name}: {message}"
            found.setdefault(name, FieldError(message))
        return found
    return {"form": FieldError(str(exc))}


async def _form_page(
    request: Request,
    viewer: Viewer,
    form: ProbeForm,
    errors: dict[str, FieldError],
    status: int = 200,
) -> Response:
    instances: list[dict[str, Any]] = []
    if form.service:
        instances = await service_api.list_instances(
            service=form.service,
            include_gone=False,
            broker=broker_of(request),
            _=viewer.principal,
        )
    partial = bool(request.headers.get("hx-request"))
    return page(
        request,
        "probe_form.html" if partial else "probe_new.html",
        viewer,
        status=status,
        form=form,
        errors=errors,
        instances=instances,
    )


@router.get("/probes/new")
async def new_probe(
    request: Request,
    service: str = Query("", max_length=200),
    file: str = Query("", max_length=4000),
    line: str = Query("", max_length=12),
    kind: str = Query(protocol.TRACEPOINT, max_length=20),
    viewer: Viewer = Depends(signed_in),
) -> Response:
    require_role(viewer, "debugger")
    form = ProbeForm(service=service, file=file, line=line, kind=kind)
    return await _form_page(request, viewer, form, {})


@router.post("/probes/new")
async def create_probe(request: Request, viewer: Viewer = Depends(signed_in)) -> Response:
    data = await request.form()
    check_csrf(request, viewer, str(data.get("csrf") or ""))
    require_role(viewer, "debugger")
    text = {k: str(v) for k, v in data.items() if k in ProbeForm.__dataclass_fields__}
    text.pop("instances", None)
    form = ProbeForm(**text, instances=tuple(str(v) for v in data.getlist("instances")))
    errors = form.check()
    if not errors:
        try:
            response = await probe_api.create_probe(
                form.body(), principal=viewer.principal, broker=broker_of(request)
            )
        except (ValueError, ValidationError, RequestValidationError) as exc:
            errors = _validation_errors(exc)
        else:
            probe_id = response["id"]
            return _go(request, f"/probes/{probe_id}")
    return await _form_page(request, viewer, form, errors, status=422)


def _go(request: Request, url: str) -> Response:
    """Where to after a change: htmx follows ``HX-Redirect``, a plain form a 303."""
    if request.headers.get("hx-request"):
        return Response(status_code=204, headers={"HX-Redirect": url})
    return RedirectResponse(url, status_code=303)


# --- the table and one probe ---------------------------------------------------------------


PAGE_SIZE = 50  # probes per page of the table


def _page_of_probes(
    session: Session, service: Optional[str], offset: int, now: float
) -> tuple[list[dict[str, Any]], int]:
    """One page of the table, newest first: only its probes get statuses and summaries."""
    query = select(ProbeRow.id).order_by(ProbeRow.created_at.desc())
    if service:
        query = query.where(ProbeRow.target_service == service)
    ids = list(session.scalars(query))
    chosen = ids[offset : offset + PAGE_SIZE]
    rows = {p.id: p for p in session.scalars(select(ProbeRow).where(ProbeRow.id.in_(chosen)))}
    return probe_store.to_dicts(session, [rows[i] for i in chosen if i in rows], now), len(ids)


@router.get("/probes")
async def probes_page(
    request: Request,
    service: Optional[str] = Query(None, max_length=200),
    state: Optional[str] = Query(None, max_length=20),
    page_number: int = Query(1, alias="page", ge=1, le=100_000),
    viewer: Viewer = Depends(signed_in),
) -> Response:
    broker = broker_of(request)
    service = service or None
    state = state if state in protocol.PROBE_STATES else None
    offset = (page_number - 1) * PAGE_SIZE
    if state is None:
        now = time.time()
        probes, total = await broker.db.read(lambda s: _page_of_probes(s, service, offset, now))
    else:  # the state is computed per probe: filter them all, then take the page
        matching = await probe_api.list_probes(
            service=service, state=state, broker=broker, _=viewer.principal
        )
        probes, total = matching[offset : offset + PAGE_SIZE], len(matching)
    services = await service_api.list_services(broker=broker, _=viewer.principal)
    return page(
        request,
        "probes.html",
        viewer,
        probes=probes,
        service=service,
        state=state,
        services=[s["name"] for s in services],
        states=protocol.PROBE_STATES,
        page_number=page_number,
        pages=max(1, -(-total // PAGE_SIZE)),
        total=total,
    )


@router.get("/probes/{probe_id}")
async def probe_page(
    request: Request, probe_id: str, viewer: Viewer = Depends(signed_in)
) -> Response:
    broker = broker_of(request)
    probe = await probe_api.get_probe(probe_id, broker=broker, _=viewer.principal)
    kind = protocol.SNAPSHOT if probe["kind"] == protocol.TRACEPOINT else protocol.LOG
    hits = await list_events(broker, viewer.principal, type=kind, probe_id=probe_id, limit=50)
    return page(request, "probe.html", viewer, probe=probe, hits=hits)


@router.post("/probes/{probe_id}/{action}")
async def change_probe(
    request: Request,
    probe_id: str,
    action: str,
    csrf: str = Form(""),
    back: str = Form("/probes"),
    viewer: Viewer = Depends(signed_in),
) -> Response:
    check_csrf(request, viewer, csrf)
    require_role(viewer, "debugger")
    broker = broker_of(request)
    if action == "enable":
        await probe_api.enable_probe(probe_id, principal=viewer.principal, broker=broker)
    elif action == "disable":
        await probe_api.disable_probe(probe_id, principal=viewer.principal, broker=broker)
    elif action == "delete":
        await probe_api.delete_probe(probe_id, principal=viewer.principal, broker=broker)
        if back.startswith(f"/probes/{probe_id}"):
            back = "/probes"
    elif action == "edit":
        return await _edit(request, viewer, probe_id)
    else:
        raise HTTPException(404, f"no action {action!r}")
    return _go(request, _safe_next(back))


async def _edit(request: Request, viewer: Viewer, probe_id: str) -> Response:
    """A new version of the probe: condition, watches, hit limit, expiry."""
    data = await request.form()
    form = ProbeForm(
        condition=str(data.get("condition") or ""), watches=str(data.get("watches") or "")
    )
    for name, found in form.check().items():
        raise HTTPException(422, f"{name}: {found.message}")
    changes: dict[str, Any] = {
        "condition": form.condition.strip() or None,
        "watches": _lines(form.watches),
    }
    try:
        hit_limit = _number(str(data.get("hit_limit") or ""), int)
        minutes = _number(str(data.get("expire_minutes") or ""), float)
        if hit_limit is not None:
            changes["hit_limit"] = hit_limit
        if minutes is not None:
            changes["expire_seconds"] = minutes * 60
        body = ProbeEdit.model_validate(changes)
        await probe_api.edit_probe(
            probe_id, body, principal=viewer.principal, broker=broker_of(request)
        )
    except (ValueError, RequestValidationError) as exc:
        message = "; ".join(f"{k}: {e.message}" for k, e in _validation_errors(exc).items())
        raise HTTPException(422, message) from None
    return _go(request, f"/probes/{probe_id}")
