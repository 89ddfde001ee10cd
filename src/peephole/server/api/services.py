"""Services and instances, the source an agent serves, and per-service agent policy."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Query
from sqlalchemy.orm import Session

from peephole import protocol
from peephole.server import auth
from peephole.server.api import responses
from peephole.server.api.deps import ServiceFilter, ServiceName, get_broker
from peephole.server.api.schemas import PolicyBody
from peephole.server.broker import Broker
from peephole.server.store import audit, policies
from peephole.server.store import instances as instance_store
from peephole.server.store.credentials import Principal

__all__ = [
    "get_policy",
    "get_source",
    "list_files",
    "list_instances",
    "list_services",
    "put_policy",
    "router",
]

router = APIRouter(tags=["services"])


@router.get("/services", response_model=list[responses.Service])
async def list_services(
    broker: Broker = Depends(get_broker), _: Principal = Depends(auth.viewer)
) -> list[dict[str, Any]]:
    now = time.time()
    return await broker.db.read(lambda s: instance_store.services(s, now))


@router.get("/instances", response_model=list[responses.Instance])
async def list_instances(
    service: ServiceFilter = None,
    include_gone: bool = False,
    broker: Broker = Depends(get_broker),
    _: Principal = Depends(auth.viewer),
) -> list[dict[str, Any]]:
    now = time.time()
    return await broker.db.read(lambda s: instance_store.listing(s, now, service, include_gone))


@router.get("/services/{name}/source", response_model=responses.Source)
async def get_source(
    name: ServiceName,
    path: str = Query(min_length=1, max_length=1000),
    broker: Broker = Depends(get_broker),
    _: Principal = Depends(auth.viewer),
) -> dict[str, Any]:
    """The file as deployed, read by a live agent of the service (not from a repository)."""
    answer = await _ask(broker, name, {"type": "get_source", "path": path})
    if answer.get("error") or not isinstance(answer.get("text"), str):
        raise HTTPException(404, str(answer.get("error") or f"no source for {path!r}"))
    lines = answer.get("lines")
    return {
        "path": answer.get("path") or path,
        "text": answer["text"],
        "lines": [n for n in lines if isinstance(n, int)] if isinstance(lines, list) else [],
    }


@router.get("/services/{name}/files", response_model=responses.Files)
async def list_files(
    name: ServiceName, broker: Broker = Depends(get_broker), _: Principal = Depends(auth.viewer)
) -> dict[str, Any]:
    """The source files of the modules a live agent of the service has loaded."""
    answer = await _ask(broker, name, {"type": "list_files"})
    files = answer.get("files")
    return {"files": [f for f in files if isinstance(f, str)] if isinstance(files, list) else []}


async def _ask(broker: Broker, service: str, message: dict[str, Any]) -> dict[str, Any]:
    agents = broker.hub.agents_of(service)
    if not agents:
        raise HTTPException(404, f"no connected agent of service {service!r}")
    timeout = broker.settings.source_timeout
    try:
        return await agents[0].request(message, timeout)
    except asyncio.TimeoutError:
        raise HTTPException(504, f"the agent did not answer within {timeout:g} s") from None
    except Exception as exc:  # the connection closed while waiting
        raise HTTPException(502, f"no answer from the agent: {exc}") from None


@router.get("/services/{name}/policy", response_model=responses.Policy)
async def get_policy(
    name: ServiceName, broker: Broker = Depends(get_broker), _: Principal = Depends(auth.viewer)
) -> dict[str, Any]:
    policy = await broker.db.read(lambda s: policies.get(s, name))
    return policy.to_dict()


@router.put("/services/{name}/policy", response_model=responses.Policy)
async def put_policy(
    name: ServiceName,
    body: PolicyBody,
    principal: Principal = Depends(auth.admin),
    broker: Broker = Depends(get_broker),
) -> dict[str, Any]:
    """Store the policy and push it to the service's live agents (no restart needed)."""
    policy = protocol.AgentPolicy.from_dict(body.model_dump())

    def work(session: Session) -> None:
        policies.put(session, name, policy, principal.name)
        audit.record(
            session, principal, "policy.update", None, {"service": name, **policy.to_dict()}
        )

    await broker.db.write(work)
    return (await broker.policy_changed(name)).to_dict()
