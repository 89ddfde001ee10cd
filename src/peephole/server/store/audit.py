"""The audit log: who changed what, and when."""

from __future__ import annotations

import time
from typing import Any, Optional

from sqlalchemy import select
from sqlalchemy.orm import Session

from peephole.server.models import AuditEntry


def record(
    session: Session,
    actor: str,
    action: str,
    probe_id: Optional[str] = None,
    details: Optional[dict[str, Any]] = None,
) -> None:
    session.add(
        AuditEntry(
            time=time.time(), actor=actor, action=action, probe_id=probe_id, details=details or {}
        )
    )


def recent(session: Session, limit: int, probe_id: Optional[str] = None) -> list[dict[str, Any]]:
    query = select(AuditEntry).order_by(AuditEntry.id.desc()).limit(limit)
    if probe_id:
        query = query.where(AuditEntry.probe_id == probe_id)
    return [
        {
            "time": e.time,
            "actor": e.actor,
            "action": e.action,
            "probe_id": e.probe_id,
            "details": e.details,
        }
        for e in session.scalars(query)
    ]
