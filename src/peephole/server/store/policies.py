"""Per-service agent policies (redaction additions, exception capture)."""

from __future__ import annotations

import time

from sqlalchemy.orm import Session

from peephole.protocol import AgentPolicy
from peephole.server.models import ServicePolicyRow

__all__ = ["get", "put"]


def get(session: Session, service: str) -> AgentPolicy:
    row = session.get(ServicePolicyRow, service)
    return AgentPolicy.from_dict(row.policy) if row else AgentPolicy()


def put(session: Session, service: str, policy: AgentPolicy, actor: str) -> None:
    row = session.get(ServicePolicyRow, service)
    if row is None:
        row = ServicePolicyRow(service=service)
        session.add(row)
    row.policy = policy.to_dict()
    row.updated_at = time.time()
    row.updated_by = actor
