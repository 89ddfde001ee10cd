"""Who am I, health, the audit log, user tokens and agent keys."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query
from fastapi.responses import JSONResponse
from sqlalchemy.orm import Session

import peephole
from peephole.server import auth
from peephole.server.api.deps import get_broker
from peephole.server.api.schemas import AgentKeyCreate, TokenCreate
from peephole.server.broker import Broker
from peephole.server.store import audit, credentials
from peephole.server.store.credentials import Principal

router = APIRouter(tags=["admin"])


@router.get("/health")
async def health() -> dict[str, str]:
    return {"status": "ok", "version": peephole.__version__}


@router.get("/me")
async def me(principal: Principal = Depends(auth.viewer)) -> dict[str, str]:
    return {"name": principal.name, "role": principal.role}


@router.get("/audit")
async def audit_log(
    limit: int = Query(100, ge=1, le=10_000),
    probe_id: str | None = None,
    broker: Broker = Depends(get_broker),
    _: Principal = Depends(auth.admin),
) -> list[dict[str, Any]]:
    return await broker.db.read(lambda s: audit.recent(s, limit, probe_id))


@router.post("/tokens", status_code=201)
async def create_token(
    body: TokenCreate,
    principal: Principal = Depends(auth.admin),
    broker: Broker = Depends(get_broker),
) -> JSONResponse:
    def work(session: Session) -> str:
        token = credentials.create_token(session, body.name, body.role)
        audit.record(session, principal.name, "token.create", None,
                     {"name": body.name, "role": body.role})
        return token

    token = await broker.db.write(work)
    return JSONResponse({"name": body.name, "role": body.role, "token": token}, 201)


@router.get("/tokens")
async def list_tokens(
    broker: Broker = Depends(get_broker), _: Principal = Depends(auth.admin)
) -> list[dict[str, Any]]:
    return await broker.db.read(credentials.list_tokens)


@router.post("/agent-keys", status_code=201)
async def create_agent_key(
    body: AgentKeyCreate,
    principal: Principal = Depends(auth.admin),
    broker: Broker = Depends(get_broker),
) -> JSONResponse:
    def work(session: Session) -> str:
        key = credentials.create_agent_key(session, body.name)
        audit.record(session, principal.name, "agent_key.create", None, {"name": body.name})
        return key

    key = await broker.db.write(work)
    return JSONResponse({"name": body.name, "key": key}, 201)
