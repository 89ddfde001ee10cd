"""Probes: create, list, get, edit, enable, disable, delete. Every change is audited and
pushed to the matching agents before the response is sent."""

from __future__ import annotations

import time
from typing import Any, Optional

from fastapi import APIRouter, Depends, Query, Response
from sqlalchemy.orm import Session

from peephole import protocol
from peephole.server import auth
from peephole.server.api import responses
from peephole.server.api.deps import ProbeId, ServiceFilter, get_broker, invalid
from peephole.server.api.schemas import (
    DEFAULT_EXPIRY,
    DEFAULT_TRACEPOINT_HITS,
    ProbeCreate,
    ProbeEdit,
)
from peephole.server.broker import Broker
from peephole.server.store import audit
from peephole.server.store import probes as probe_store
from peephole.server.store.credentials import Principal

__all__ = [
    "create_probe",
    "delete_probe",
    "disable_probe",
    "edit_probe",
    "enable_probe",
    "get_probe",
    "list_probes",
    "router",
]

router = APIRouter(prefix="/probes", tags=["probes"])

StateName = Optional[str]


@router.post("", status_code=201, response_model=responses.Probe)
async def create_probe(
    body: ProbeCreate,
    principal: Principal = Depends(auth.debugger),
    broker: Broker = Depends(get_broker),
) -> dict[str, Any]:
    fields = body.model_dump()
    if body.kind == protocol.LOGPOINT and not body.template:
        invalid("body", "template", "a logpoint needs a template")
    if body.kind == protocol.TRACEPOINT and fields["hit_limit"] is None:
        fields["hit_limit"] = DEFAULT_TRACEPOINT_HITS
    if fields["expire_seconds"] is None:
        fields["expire_seconds"] = DEFAULT_EXPIRY
    now = time.time()

    def work(session: Session) -> str:
        probe = probe_store.create(session, fields, principal.name, now)
        audit.record(session, principal, "probe.create", probe.id, _audit_fields(fields))
        return probe.id

    probe_id = await broker.db.write(work)
    views = await broker.probes_changed([probe_id])
    return views[0]


@router.get("", response_model=list[responses.Probe])
async def list_probes(
    service: ServiceFilter = None,
    state: Optional[str] = Query(None, description="one of " + ", ".join(protocol.PROBE_STATES)),
    broker: Broker = Depends(get_broker),
    _: Principal = Depends(auth.viewer),
) -> list[dict[str, Any]]:
    if state is not None and state not in protocol.PROBE_STATES:
        invalid("query", "state", f"state must be one of {', '.join(protocol.PROBE_STATES)}")
    now = time.time()
    views = await broker.db.read(
        lambda s: probe_store.to_dicts(s, probe_store.listing(s, service), now)
    )
    return [v for v in views if state is None or v["state"] == state]


@router.get("/{probe_id}", response_model=responses.Probe)
async def get_probe(
    probe_id: ProbeId, broker: Broker = Depends(get_broker), _: Principal = Depends(auth.viewer)
) -> dict[str, Any]:
    now = time.time()
    return await broker.db.read(
        lambda s: probe_store.to_dicts(s, [probe_store.get(s, probe_id)], now)[0]
    )


@router.patch("/{probe_id}", response_model=responses.Probe)
async def edit_probe(
    probe_id: ProbeId,
    body: ProbeEdit,
    principal: Principal = Depends(auth.debugger),
    broker: Broker = Depends(get_broker),
) -> dict[str, Any]:
    changes = body.model_dump(include=body.model_fields_set)
    if "expire_seconds" in changes and changes["expire_seconds"] is None:
        invalid("body", "expire_seconds", "expire_seconds must be a number of seconds")
    for moved in ("file", "line"):  # a probe can move (a new version), never lose its place
        if moved in changes and changes[moved] is None:
            invalid("body", moved, f"{moved} cannot be removed")
    return await _change(broker, principal, probe_id, "probe.update", changes)


@router.post("/{probe_id}/enable", response_model=responses.Probe)
async def enable_probe(
    probe_id: ProbeId,
    principal: Principal = Depends(auth.debugger),
    broker: Broker = Depends(get_broker),
) -> dict[str, Any]:
    return await _change(broker, principal, probe_id, "probe.enable", {"enabled": True})


@router.post("/{probe_id}/disable", response_model=responses.Probe)
async def disable_probe(
    probe_id: ProbeId,
    principal: Principal = Depends(auth.debugger),
    broker: Broker = Depends(get_broker),
) -> dict[str, Any]:
    return await _change(broker, principal, probe_id, "probe.disable", {"enabled": False})


@router.delete("/{probe_id}", status_code=204)
async def delete_probe(
    probe_id: ProbeId,
    principal: Principal = Depends(auth.debugger),
    broker: Broker = Depends(get_broker),
) -> Response:
    def work(session: Session) -> None:
        probe = probe_store.get(session, probe_id)
        details = {"kind": probe.kind, "file": probe.file, "line": probe.line}
        probe_store.remove(session, probe)
        audit.record(session, principal, "probe.delete", probe.id, details)

    await broker.db.write(work)
    await broker.probes_changed()
    return Response(status_code=204)


async def _change(
    broker: Broker, principal: Principal, probe_id: str, action: str, changes: dict[str, Any]
) -> dict[str, Any]:
    now = time.time()

    def work(session: Session) -> str:
        probe = probe_store.get(session, probe_id)  # or the one whose id starts so
        logpoint = probe.kind == protocol.LOGPOINT
        if logpoint and "template" in changes and not changes["template"]:
            invalid("body", "template", "a logpoint needs a template")
        if not logpoint and "hit_limit" in changes and not changes["hit_limit"]:
            invalid("body", "hit_limit", "a tracepoint needs a hit limit (at most 1000)")
        applied = probe_store.update_fields(probe, changes, now)
        audit.record(session, principal, action, probe.id, _audit_fields(applied))
        return probe.id

    full_id = await broker.db.write(work)
    views = await broker.probes_changed([full_id])
    return views[0]


def _audit_fields(fields: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in fields.items() if v is not None and v != [] and v != {}}
