"""Probes, their per-instance status, and the state and summary a person sees."""

from __future__ import annotations

import uuid
from collections import Counter
from typing import Any, Optional

from sqlalchemy import Row, delete, select, tuple_, update
from sqlalchemy import insert as sql_insert
from sqlalchemy.orm import Session

from peephole import protocol
from peephole.server.models import ProbeRow, ProbeStatusRow
from peephole.server.store import NotFound, by_prefix
from peephole.server.store import instances as instance_store
from peephole.server.targeting import normalize_target, target_matches

__all__ = [
    "ProbeRow",
    "add_captures",
    "create",
    "expire_due",
    "get",
    "listing",
    "live",
    "record_statuses",
    "remove",
    "spec",
    "to_dicts",
    "update_fields",
]


def create(session: Session, fields: dict[str, Any], actor: str, now: float) -> ProbeRow:
    """Store a new probe from validated API fields (``expire_seconds`` becomes ``expires_at``)."""
    target = normalize_target(fields.get("target"))
    probe = ProbeRow(
        id=uuid.uuid4().hex[:16],
        kind=fields["kind"],
        file=fields["file"],
        line=fields["line"],
        condition=fields.get("condition"),
        watches=list(fields.get("watches") or []),
        template=fields.get("template"),
        level=fields.get("level") or "info",
        logger=fields.get("logger"),
        hit_limit=fields.get("hit_limit"),
        expires_at=now + fields["expire_seconds"],
        rate=fields.get("rate"),
        enabled=fields.get("enabled", True),
        version=1,
        limits=fields.get("limits"),
        target=target,
        target_service=target["service"],
        captures=0,
        finished=None,
        created_at=now,
        created_by=actor,
        updated_at=now,
    )
    session.add(probe)
    session.flush()
    return probe


def get(session: Session, probe_id: str) -> ProbeRow:
    """The probe with this id, or with the only id that starts with it."""
    probe = session.get(ProbeRow, probe_id) or session.get(
        ProbeRow, by_prefix(session, ProbeRow.id, probe_id, "probe")
    )
    if probe is None:
        raise NotFound(f"probe {probe_id!r} not found")
    return probe


def update_fields(probe: ProbeRow, changes: dict[str, Any], now: float) -> dict[str, Any]:
    """Apply an edit; bump the version; reopen a finished probe the edit makes live again.

    Returns the changes as recorded in the audit log.
    """
    applied: dict[str, Any] = {}
    for name, value in changes.items():
        if name == "expire_seconds":
            probe.expires_at = now + value
            applied[name] = value
        elif name in protocol.EDITABLE_FIELDS:
            setattr(probe, name, value)
            applied[name] = value
    if probe.finished == protocol.DONE and (
        probe.hit_limit is None or probe.captures < probe.hit_limit
    ):
        probe.finished = None
    if (
        probe.finished == protocol.EXPIRED
        and probe.expires_at is not None
        and probe.expires_at > now
    ):
        probe.finished = None
    probe.version += 1
    probe.updated_at = now
    return applied


def remove(session: Session, probe: ProbeRow) -> None:
    session.execute(delete(ProbeStatusRow).where(ProbeStatusRow.probe_id == probe.id))
    session.delete(probe)


def listing(session: Session, service: Optional[str] = None) -> list[ProbeRow]:
    query = select(ProbeRow).order_by(ProbeRow.created_at.desc())
    if service:
        query = query.where(ProbeRow.target_service == service)
    return list(session.scalars(query))


def is_live(probe: ProbeRow, now: float) -> bool:
    """Whether agents should have this probe installed."""
    return (
        probe.enabled
        and probe.finished is None
        and (probe.expires_at is None or probe.expires_at > now)
    )


def live(session: Session, now: float) -> list[ProbeRow]:
    return [p for p in session.scalars(select(ProbeRow).where(ProbeRow.enabled)) if is_live(p, now)]


def spec(probe: ProbeRow) -> dict[str, Any]:
    """The :class:`peephole.protocol.ProbeSpec` dict agents receive."""
    return protocol.ProbeSpec(
        id=probe.id,
        kind=probe.kind,
        file=probe.file,
        line=probe.line,
        condition=probe.condition,
        watches=list(probe.watches or []),
        template=probe.template,
        level=probe.level,
        logger=probe.logger,
        hit_limit=probe.hit_limit,
        expires_at=probe.expires_at,
        rate=probe.rate,
        enabled=probe.enabled,
        version=probe.version,
        limits=protocol.Limits.from_dict(probe.limits),
    ).to_dict()


def expire_due(session: Session, now: float) -> list[str]:
    """Mark probes whose time is up as expired; return their ids."""
    ids = list(
        session.scalars(
            select(ProbeRow.id).where(
                ProbeRow.finished.is_(None),
                ProbeRow.expires_at.is_not(None),
                ProbeRow.expires_at <= now,
            )
        )
    )
    if ids:
        session.execute(
            update(ProbeRow)
            .where(ProbeRow.id.in_(ids))
            .values(finished=protocol.EXPIRED, updated_at=now)
        )
    return ids


def add_captures(session: Session, counts: dict[str, int], now: float) -> list[str]:
    """Count captures (events) per probe across all instances; return probes now done."""
    if not counts:
        return []
    connection = session.connection()  # Core, not the ORM: this runs for every batch
    for probe_id, count in counts.items():
        connection.execute(
            update(ProbeRow)
            .where(ProbeRow.id == probe_id)
            .values(captures=ProbeRow.captures + count)
        )
    done = list(
        connection.scalars(
            select(ProbeRow.id).where(
                ProbeRow.id.in_(list(counts)),
                ProbeRow.finished.is_(None),
                ProbeRow.hit_limit.is_not(None),
                ProbeRow.captures >= ProbeRow.hit_limit,
            )
        )
    )
    if done:
        connection.execute(
            update(ProbeRow)
            .where(ProbeRow.id.in_(done))
            .values(finished=protocol.DONE, updated_at=now)
        )
    return done


def record_statuses(
    session: Session, reports: list[tuple[str, list[protocol.ProbeStatus]]], now: float
) -> list[list[str]]:
    """Store what agents reported, as ``(instance_id, statuses)`` pairs; return, per report,
    the ids of the probes it concerned that exist. Three statements whatever the number of
    reports: when a probe reaches 500 agents, 500 reports arrive at once."""
    connection = session.connection()
    if connection.dialect.name == "postgresql":  # a lost status is sent again: no fsync wait
        connection.exec_driver_sql("SET LOCAL synchronous_commit TO OFF")
    wanted = {s.probe_id for _, statuses in reports for s in statuses}
    known = set(connection.scalars(select(ProbeRow.id).where(ProbeRow.id.in_(wanted))))
    rows: dict[tuple[str, str], dict[str, Any]] = {}
    for instance_id, statuses in reports:
        for status in statuses:
            if status.probe_id in known:
                rows[(status.probe_id, instance_id)] = {
                    "probe_id": status.probe_id,
                    "instance_id": instance_id,
                    "state": status.state,
                    "message": status.message,
                    "version": status.version,
                    "path": status.path,
                    "hits": status.hits,
                    "captures": status.captures,
                    "drops": status.drops,
                    "condition_errors": status.condition_errors,
                    "time_ns": status.time_ns,
                    "updated_at": now,
                }
    if rows:
        connection.execute(
            delete(ProbeStatusRow).where(
                tuple_(ProbeStatusRow.probe_id, ProbeStatusRow.instance_id).in_(list(rows))
            )
        )
        connection.execute(sql_insert(ProbeStatusRow), list(rows.values()))
    return [
        sorted({s.probe_id for s in statuses if s.probe_id in known}) for _, statuses in reports
    ]


# --- what a person sees --------------------------------------------------------------------


# A status as read for a view: a plain row with ProbeStatusRow's columns as attributes.
StatusRow = Row[Any]


def to_dicts(session: Session, probes: list[ProbeRow], now: float) -> list[dict[str, Any]]:
    """Probe dicts with statuses, overall state and summary (one query per kind of row).
    Statuses and instances are read as plain rows: as ORM objects, a probe on 50 instances
    took 3.7 ms to show, most of it building them (this runs after every status report)."""
    if not probes:
        return []
    live_instances = instance_store.live_target_views(session, now)
    statuses: dict[str, list[StatusRow]] = {}
    rows = session.execute(
        select(*ProbeStatusRow.__table__.columns).where(
            ProbeStatusRow.probe_id.in_([p.id for p in probes])
        )
    )
    for row in rows:
        statuses.setdefault(row.probe_id, []).append(row)
    return [to_dict(p, statuses.get(p.id, []), live_instances, now) for p in probes]


def to_dict(
    probe: ProbeRow,
    statuses: list[StatusRow],
    live_instances: list[dict[str, Any]],
    now: float,
) -> dict[str, Any]:
    targets = [i["instance_id"] for i in live_instances if target_matches(probe.target, i)]
    state = overall_state(probe, statuses, targets, now)
    return {
        "id": probe.id,
        "kind": probe.kind,
        "file": probe.file,
        "line": probe.line,
        "condition": probe.condition,
        "watches": list(probe.watches or []),
        "template": probe.template,
        "level": probe.level,
        "logger": probe.logger,
        "hit_limit": probe.hit_limit,
        "expires_at": probe.expires_at,
        "rate": probe.rate,
        "enabled": probe.enabled,
        "version": probe.version,
        "limits": protocol.Limits.from_dict(probe.limits).__dict__,
        "target": normalize_target(probe.target),
        "created_at": probe.created_at,
        "created_by": probe.created_by,
        "updated_at": probe.updated_at,
        "state": state,
        "captures": probe.captures,  # events, against hit_limit (statuses count line hits)
        "statuses": [status_dict(s) for s in sorted(statuses, key=lambda s: s.instance_id)],
        "summary": summary(probe, state, statuses, targets),
    }


def status_dict(row: StatusRow) -> dict[str, Any]:
    return {
        "instance_id": row.instance_id,
        "state": row.state,
        "message": row.message,
        "hits": row.hits,
        "captures": row.captures,
        "drops": row.drops,
        "condition_errors": row.condition_errors,
        "time_ns": row.time_ns,
        "path": row.path,
        "version": row.version,
        "updated_at": row.updated_at,
    }


def overall_state(
    probe: ProbeRow, statuses: list[StatusRow], targets: list[str], now: float
) -> str:
    if probe.finished == protocol.DONE:
        return protocol.DONE
    if probe.finished == protocol.EXPIRED or (
        probe.expires_at is not None and probe.expires_at <= now
    ):
        return protocol.EXPIRED
    if not probe.enabled:
        return protocol.DISABLED
    live = set(targets)
    if any(s.state == protocol.ACTIVE and s.instance_id in live for s in statuses):
        return protocol.ACTIVE
    if any(
        s.state == protocol.ERROR and s.instance_id in live and s.version >= probe.version
        for s in statuses
    ):
        return protocol.ERROR  # placed nowhere, refused somewhere: never "pending"
    return protocol.PENDING


def summary(probe: ProbeRow, state: str, statuses: list[StatusRow], targets: list[str]) -> str:
    """One line: "active on 3 of 4 instances; 1 error: no code at line 88"."""
    if state == protocol.DONE:
        return f"done: hit limit of {probe.hit_limit} reached ({probe.captures} captures)"
    if state == protocol.EXPIRED:
        return "expired"
    if state == protocol.DISABLED:
        return "disabled"
    if not targets:
        return "waiting for a matching instance"
    by_instance = {s.instance_id: s for s in statuses}
    states: Counter[str] = Counter()
    errors: list[str] = []
    for instance_id in targets:
        status = by_instance.get(instance_id)
        current = status.state if status else protocol.PENDING
        states[current] += 1
        if current == protocol.ERROR and status is not None:
            errors.append(status.message or "unknown error")
    total = len(targets)
    noun = "instance" if total == 1 else "instances"
    parts = [f"active on {states[protocol.ACTIVE]} of {total} {noun}"]
    if errors:
        first = Counter(errors).most_common(1)[0][0]
        parts.append(f"{len(errors)} error{'s' if len(errors) > 1 else ''}: {first}")
    for other in (protocol.PENDING, protocol.THROTTLED, protocol.DONE, protocol.EXPIRED):
        if states[other]:
            parts.append(f"{states[other]} {other}")
    return "; ".join(parts)
