"""Instances (agent processes) and the services they make up."""

from __future__ import annotations

from typing import Any, Iterable, Optional

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from peephole.protocol import INSTANCE_STALE_SECONDS, AgentHealth, InstanceInfo
from peephole.server.models import InstanceRow

__all__ = [
    "InstanceHeld",
    "add_dropped",
    "as_target_view",
    "disconnect",
    "disconnect_all",
    "listing",
    "live",
    "live_target_views",
    "record_health",
    "register",
    "services",
    "touch",
]


class InstanceHeld(Exception):
    """The instance id is connected to another server process."""


def register(
    session: Session, info: InstanceInfo, now: float, held_within: float = 0.0
) -> Optional[str]:
    """Insert or refresh the instance from its ``hello``; it is connected from now on.

    ``held_within``: refuse (:class:`InstanceHeld`) an instance another server process saw
    connected that recently (it refreshes ``last_seen`` while connected). Returns why a
    server last disconnected it (None if none did)."""
    row = session.get(InstanceRow, info.instance_id)
    if row is not None and row.connected and now - row.last_seen < held_within:
        raise InstanceHeld(info.instance_id)
    if row is None:
        row = InstanceRow(instance_id=info.instance_id, registered_at=now, dropped=0)
        session.add(row)
    row.service = info.service
    row.version = info.version
    row.environment = info.environment
    row.tags = dict(info.tags or {})
    row.host = info.host or ""
    row.pid = int(info.pid or 0)
    row.runtime = info.runtime or ""
    row.agent_version = info.agent_version or ""
    row.started_at = float(info.started_at or 0.0)
    row.last_seen = now
    row.connected = True
    return row.last_disconnect


def disconnect(
    session: Session, instance_id: str, now: float, reason: Optional[str] = None
) -> None:
    """Mark the instance gone; ``reason``: why the server ended its connection."""
    values: dict[str, Any] = {"connected": False, "last_seen": now}
    if reason is not None:
        values["last_disconnect"] = reason[:300]
    session.execute(
        update(InstanceRow).where(InstanceRow.instance_id == instance_id).values(**values)
    )


def disconnect_all(session: Session) -> None:
    """Forget connections a previous run of a single-process server held."""
    session.execute(update(InstanceRow).where(InstanceRow.connected).values(connected=False))


def touch(session: Session, instance_ids: Iterable[str], now: float) -> None:
    ids = list(instance_ids)
    if ids:
        session.execute(
            update(InstanceRow).where(InstanceRow.instance_id.in_(ids)).values(last_seen=now)
        )


def add_dropped(session: Session, instance_id: str, dropped: int) -> None:
    session.execute(
        update(InstanceRow)
        .where(InstanceRow.instance_id == instance_id)
        .values(dropped=InstanceRow.dropped + dropped)
    )


def record_health(session: Session, instance_id: str, health: AgentHealth) -> None:
    """Keep what the agent last said about itself (its counts only grow)."""
    last = health.last_internal_error
    session.execute(
        update(InstanceRow)
        .where(InstanceRow.instance_id == instance_id)
        .values(
            internal_errors=health.internal_errors,
            last_internal_error=last[:300] if last else None,
            abandoned_events=health.abandoned_events,
        )
    )


def is_live(row: InstanceRow, now: float) -> bool:
    return bool(row.connected) and now - row.last_seen < INSTANCE_STALE_SECONDS


def live(session: Session, now: float, service: Optional[str] = None) -> list[InstanceRow]:
    query = select(InstanceRow).where(
        InstanceRow.connected, InstanceRow.last_seen > now - INSTANCE_STALE_SECONDS
    )
    if service:
        query = query.where(InstanceRow.service == service)
    return list(session.scalars(query))


def live_target_views(session: Session, now: float) -> list[dict[str, Any]]:
    """:func:`as_target_view` of every live instance, read as plain rows (ten times cheaper
    than ORM objects: probe views read them after every status report)."""
    rows = session.execute(
        select(
            InstanceRow.instance_id,
            InstanceRow.service,
            InstanceRow.version,
            InstanceRow.environment,
            InstanceRow.tags,
        ).where(InstanceRow.connected, InstanceRow.last_seen > now - INSTANCE_STALE_SECONDS)
    )
    return [
        {
            "instance_id": instance_id,
            "service": service,
            "version": version,
            "environment": environment,
            "tags": tags or {},
        }
        for instance_id, service, version, environment, tags in rows
    ]


def listing(
    session: Session, now: float, service: Optional[str], include_gone: bool
) -> list[dict[str, Any]]:
    if include_gone:
        query = select(InstanceRow)
        if service:
            query = query.where(InstanceRow.service == service)
        rows = list(session.scalars(query))
    else:
        rows = live(session, now, service)
    rows.sort(key=lambda r: (r.service, -r.last_seen))
    return [to_dict(r, now) for r in rows]


def to_dict(row: InstanceRow, now: float) -> dict[str, Any]:
    return {
        "instance_id": row.instance_id,
        "service": row.service,
        "version": row.version,
        "environment": row.environment,
        "tags": row.tags or {},
        "host": row.host,
        "pid": row.pid,
        "runtime": row.runtime,
        "agent_version": row.agent_version,
        "started_at": row.started_at,
        "last_seen": row.last_seen,
        "connected": is_live(row, now),
        "dropped": row.dropped,
        "last_disconnect": row.last_disconnect,
        "internal_errors": row.internal_errors or 0,
        "last_internal_error": row.last_internal_error,
        "abandoned_events": row.abandoned_events or 0,
    }


def as_target_view(row: InstanceRow) -> dict[str, Any]:
    """The fields targeting looks at."""
    return {
        "instance_id": row.instance_id,
        "service": row.service,
        "version": row.version,
        "environment": row.environment,
        "tags": row.tags or {},
    }


def services(session: Session, now: float) -> list[dict[str, Any]]:
    """Every service that ever registered, with its live instance count."""
    summary: dict[str, dict[str, Any]] = {}
    for row in session.scalars(select(InstanceRow)):
        entry = summary.setdefault(
            row.service,
            {
                "name": row.service,
                "instances": 0,
                "versions": set(),
                "environments": set(),
                "last_seen": 0.0,
            },
        )
        entry["last_seen"] = max(entry["last_seen"], row.last_seen)
        if is_live(row, now):
            entry["instances"] += 1
            if row.version:
                entry["versions"].add(row.version)
            if row.environment:
                entry["environments"].add(row.environment)
    return [
        {
            **entry,
            "versions": sorted(entry["versions"]),
            "environments": sorted(entry["environments"]),
        }
        for _, entry in sorted(summary.items())
    ]
