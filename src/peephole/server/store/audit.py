"""The audit log: who changed what, and when.

The actor is recorded by its token's unique id (``actor_id``) and shown by its name
(``actor``): names are not unique, ids are.
"""

from __future__ import annotations

import time
from typing import Any, Optional

from sqlalchemy import select
from sqlalchemy.orm import Session

from peephole.server.models import AuditEntryRow
from peephole.server.store.credentials import Principal

__all__ = ["recent", "record"]


def record(
    session: Session,
    actor: Principal,
    action: str,
    probe_id: Optional[str] = None,
    details: Optional[dict[str, Any]] = None,
) -> None:
    session.add(
        AuditEntryRow(
            time=time.time(),
            actor=actor.name,
            actor_id=actor.id,
            action=action,
            probe_id=probe_id,
            details=details or {},
        )
    )


def recent(session: Session, limit: int, probe_id: Optional[str] = None) -> list[dict[str, Any]]:
    query = select(AuditEntryRow).order_by(AuditEntryRow.id.desc()).limit(limit)
    if probe_id:
        query = query.where(AuditEntryRow.probe_id == probe_id)
    return [
        {
            "time": e.time,
            "actor": e.actor,
            "actor_id": e.actor_id,
            "action": e.action,
            "probe_id": e.probe_id,
            "details": e.details,
        }
        for e in session.scalars(query)
    ]
