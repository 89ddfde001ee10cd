"""Who am I, health, the audit log, user tokens and agent keys. Each route answers through
its model in ``responses`` (``response_model``), which the OpenAPI document describes."""

from __future__ import annotations

import time
from typing import Any, Callable, Optional

from fastapi import APIRouter, Depends, Path, Query
from sqlalchemy.orm import Session

import peephole
from peephole.protocol import MAX_COUNTER
from peephole.server import auth
from peephole.server.api import responses
from peephole.server.api.deps import ProbeFilter, get_broker
from peephole.server.api.schemas import AgentKeyCreate, TokenCreate
from peephole.server.broker import Broker
from peephole.server.store import audit, credentials
from peephole.server.store.credentials import Principal

__all__ = ["audit_log", "create_agent_key", "create_token", "list_tokens", "router"]

router = APIRouter(tags=["admin"])


@router.get("/health", response_model=responses.Health)
async def health() -> dict[str, str]:
    return {"status": "ok", "version": peephole.__version__}


@router.get("/me", response_model=responses.Me)
async def me(principal: Principal = Depends(auth.viewer)) -> dict[str, Any]:
    return {
        "name": principal.name,
        "role": principal.role,
        "id": principal.id,
        "expires_at": principal.expires_at,
    }


@router.get("/audit", response_model=list[responses.AuditEntry])
async def audit_log(
    limit: int = Query(100, ge=1, le=10_000),
    probe_id: ProbeFilter = None,
    broker: Broker = Depends(get_broker),
    _: Principal = Depends(auth.admin),
) -> list[dict[str, Any]]:
    return await broker.db.read(lambda s: audit.recent(s, limit, probe_id))


@router.post("/tokens", status_code=201, response_model=responses.NewToken)
async def create_token(
    body: TokenCreate,
    principal: Principal = Depends(auth.admin),
    broker: Broker = Depends(get_broker),
) -> dict[str, Any]:
    expires_at = _expiry(body.expires_seconds)

    def work(session: Session) -> tuple[int, str]:
        created = credentials.create_token(session, body.name, body.role, expires_at=expires_at)
        audit.record(
            session,
            principal,
            "token.create",
            None,
            {"id": created[0], "name": body.name, "role": body.role, "expires_at": expires_at},
        )
        return created

    token_id, token = await broker.db.write(work)
    return {
        "id": token_id,
        "name": body.name,
        "role": body.role,
        "expires_at": expires_at,
        "token": token,
    }


@router.get("/tokens", response_model=list[responses.Token])
async def list_tokens(
    broker: Broker = Depends(get_broker), _: Principal = Depends(auth.admin)
) -> list[dict[str, Any]]:
    return await broker.db.read(credentials.list_tokens)


@router.post("/tokens/{token_id}/revoke", response_model=responses.Token)
async def revoke_token(
    token_id: int = Path(ge=1, le=MAX_COUNTER),
    principal: Principal = Depends(auth.admin),
    broker: Broker = Depends(get_broker),
) -> dict[str, Any]:
    """Revoke a user token now, on every server: its requests get 401 and its live streams
    are closed."""
    return await _revoke(broker, principal, "token", token_id, credentials.revoke_token)


@router.post("/agent-keys", status_code=201, response_model=responses.NewAgentKey)
async def create_agent_key(
    body: AgentKeyCreate,
    principal: Principal = Depends(auth.admin),
    broker: Broker = Depends(get_broker),
) -> dict[str, Any]:
    expires_at = _expiry(body.expires_seconds)

    def work(session: Session) -> tuple[int, str]:
        created = credentials.create_agent_key(
            session, body.name, expires_at=expires_at, services=body.services
        )
        audit.record(
            session,
            principal,
            "agent_key.create",
            None,
            {
                "id": created[0],
                "name": body.name,
                "expires_at": expires_at,
                "services": body.services,
            },
        )
        return created

    key_id, key = await broker.db.write(work)
    return {
        "id": key_id,
        "name": body.name,
        "expires_at": expires_at,
        "services": body.services,
        "key": key,
    }


@router.get("/agent-keys", response_model=list[responses.AgentKey])
async def list_agent_keys(
    broker: Broker = Depends(get_broker), _: Principal = Depends(auth.admin)
) -> list[dict[str, Any]]:
    return await broker.db.read(credentials.list_agent_keys)


@router.post("/agent-keys/{key_id}/revoke", response_model=responses.AgentKey)
async def revoke_agent_key(
    key_id: int = Path(ge=1, le=MAX_COUNTER),
    principal: Principal = Depends(auth.admin),
    broker: Broker = Depends(get_broker),
) -> dict[str, Any]:
    """Revoke an agent key now, on every server: agents connected with it are disconnected
    and cannot connect again with it."""
    return await _revoke(broker, principal, "agent_key", key_id, credentials.revoke_agent_key)


async def _revoke(
    broker: Broker,
    principal: Principal,
    kind: str,
    credential_id: int,
    revoke: Callable[[Session, int, float], dict[str, Any]],
) -> dict[str, Any]:
    def work(session: Session) -> dict[str, Any]:
        row = revoke(session, credential_id, time.time())
        audit.record(
            session, principal, f"{kind}.revoke", None, {"id": credential_id, "name": row["name"]}
        )
        return row

    row = await broker.db.write(work)
    broker.credential_revoked(kind, credential_id)
    return row


def _expiry(seconds: Optional[float]) -> Optional[float]:
    return None if seconds is None else time.time() + seconds
