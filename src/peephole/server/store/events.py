"""Events: stored as the agent's JSON plus indexed columns; exception groups kept alongside."""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from typing import Any, Optional, cast

from sqlalchemy import CursorResult, and_, delete, func, or_, select
from sqlalchemy import insert as sql_insert
from sqlalchemy.orm import Session

from peephole import protocol
from peephole.server.models import Event, ExceptionGroup
from peephole.server.store import NotFound, by_prefix
from peephole.server.store import probes as probe_store

CAPTURE_TYPES = (protocol.SNAPSHOT, protocol.LOG)
MAX_SEQ = 2**63 - 1


@dataclass
class Origin:
    """The connection events arrived on: the server, not the agent, says who sent them."""

    service: str
    instance_id: str
    version: Optional[str]


@dataclass
class Stored:
    """What one batch changed: the events new to the store and the probes now done."""

    events: list[dict[str, Any]]
    done_probes: list[str]


def fingerprint_of(event: dict[str, Any]) -> str:
    given = event.get("fingerprint")
    if isinstance(given, str) and given:
        return given[:128]
    return hashlib.sha256(str(event.get("exc_type", "Exception")).encode()).hexdigest()[:32]


def insert(
    session: Session,
    origin: Origin,
    events: list[dict[str, Any]],
    now: float,
    texts: Optional[list[str]] = None,
) -> Stored:
    """Store a batch (duplicates by id are skipped: an agent resends what was not acked).

    ``texts`` are the events' JSON as received (see ``peephole.server.wire``), stored as is;
    without them the events are serialized. Either way the indexed columns (service,
    instance, time, fingerprint) are the server's and win when an event is read back.
    """
    payloads = texts if texts is not None and len(texts) == len(events) else None
    batch: dict[str, dict[str, Any]] = {}
    raw: dict[str, str] = {}
    for index, event in enumerate(events):
        event["service"] = origin.service
        event["instance_id"] = origin.instance_id
        if not isinstance(event.get("time"), (int, float)):
            event["time"] = now
        if event["type"] == protocol.EXCEPTION:
            event["fingerprint"] = fingerprint_of(event)
        batch[event["id"]] = event
        if payloads is not None:
            raw[event["id"]] = payloads[index]
    connection = session.connection()
    known = set(connection.scalars(select(Event.id).where(Event.id.in_(list(batch)))))
    fresh = [e for i, e in batch.items() if i not in known]
    if fresh:
        connection.execute(sql_insert(Event), [_row(e, raw.get(e["id"])) for e in fresh])
    captures: dict[str, int] = {}
    for event in fresh:
        probe_id = event.get("probe_id")
        if event["type"] in CAPTURE_TYPES and isinstance(probe_id, str):
            captures[probe_id] = captures.get(probe_id, 0) + 1
    done = probe_store.add_captures(session, captures, now)
    _group_exceptions(session, origin, [e for e in fresh if e["type"] == protocol.EXCEPTION])
    return Stored(fresh, done)


def _row(event: dict[str, Any], payload: Optional[str]) -> dict[str, Any]:
    def text(name: str, size: int) -> Optional[str]:
        value = event.get(name)
        return value[:size] if isinstance(value, str) else None

    return {
        "id": event["id"],
        "type": event["type"],
        "service": event["service"],
        "instance_id": event["instance_id"],
        "probe_id": text("probe_id", 32),
        "fingerprint": text("fingerprint", 128),
        "trace_id": text("trace_id", 64),
        "time": float(event["time"]),
        "payload": payload or json.dumps(event, separators=(",", ":"), default=str),
    }


def _loads(row: Any) -> dict[str, Any]:
    """An event read back: its JSON with the server's columns laid over it."""
    event: dict[str, Any] = json.loads(row.payload)
    event["service"] = row.service
    event["instance_id"] = row.instance_id
    event["time"] = row.time
    if row.fingerprint is not None:
        event["fingerprint"] = row.fingerprint
    return event


def _group_exceptions(session: Session, origin: Origin, events: list[dict[str, Any]]) -> None:
    if not events:
        return
    by_print: dict[str, list[dict[str, Any]]] = {}
    for event in events:
        by_print.setdefault(event["fingerprint"], []).append(event)
    groups = {
        g.fingerprint: g
        for g in session.scalars(
            select(ExceptionGroup).where(ExceptionGroup.fingerprint.in_(list(by_print)))
        )
    }
    for fingerprint, items in by_print.items():
        items.sort(key=lambda e: e["time"])
        count = sum(_count(e) for e in items)
        first = min(_seen(e, "first_time") for e in items)
        last = max(_seen(e, "last_time") for e in items)
        # Count-only events (``snapshot: false``) carry no locals: the group points at its
        # newest snapshot with locals, and at a count-only event only until one arrives.
        snapshots = [e for e in items if e.get("snapshot") is not False]
        group = groups.get(fingerprint)
        if group is None:
            group = ExceptionGroup(
                fingerprint=fingerprint,
                count=0,
                first_seen=first,
                services=[],
                versions=[],
            )
            session.add(group)
        group.count += count
        group.first_seen = min(group.first_seen, first)
        group.last_seen = max(group.last_seen or 0, last)
        if snapshots or group.last_event_id is None:
            shown = snapshots[-1] if snapshots else items[-1]
            group.last_event_id = shown["id"]
            group.exc_type = str(shown.get("exc_type") or "Exception")[:300]
            group.message = str(shown.get("message") or "")
        if origin.service not in group.services:
            group.services = [*group.services, origin.service]
        if origin.version and origin.version not in group.versions:
            group.versions = [*group.versions, origin.version]


def _seen(event: dict[str, Any], key: str) -> float:
    """When the agent saw the exception (a count event spans first_time..last_time)."""
    value = event.get(key)
    return float(value) if isinstance(value, (int, float)) else float(event["time"])


def _count(event: dict[str, Any]) -> int:
    count = event.get("count")
    return count if isinstance(count, int) and count > 0 else 1


# --- reading -------------------------------------------------------------------------------


@dataclass
class EventFilter:
    type: Optional[str] = None
    probe_id: Optional[str] = None
    service: Optional[str] = None
    instance_id: Optional[str] = None
    fingerprint: Optional[str] = None
    since: Optional[float] = None


def parse_cursor(cursor: str) -> tuple[float, int]:
    """A cursor is ``"<time>:<seq>"`` of the last event on the previous page."""
    time_text, sep, seq_text = cursor.partition(":")
    if not sep:
        raise ValueError("cursor must come from a previous page's next_cursor")
    at, seq = float(time_text), int(seq_text)
    if not (math.isfinite(at) and 0 <= seq <= MAX_SEQ):  # what the columns can hold
        raise ValueError("cursor out of range")
    return at, seq


def query(
    session: Session, where: EventFilter, limit: int, cursor: Optional[tuple[float, int]] = None
) -> tuple[list[dict[str, Any]], Optional[str]]:
    """A page of events, newest first, and the cursor of the next page (None at the end)."""
    stmt = select(
        Event.payload, Event.service, Event.instance_id, Event.time, Event.fingerprint, Event.seq
    )
    for column, value in (
        (Event.type, where.type),
        (Event.probe_id, where.probe_id),
        (Event.service, where.service),
        (Event.instance_id, where.instance_id),
        (Event.fingerprint, where.fingerprint),
    ):
        if value is not None:
            stmt = stmt.where(column == value)
    if where.since is not None:
        stmt = stmt.where(Event.time >= where.since)
    if cursor is not None:
        at, seq = cursor
        stmt = stmt.where(or_(Event.time < at, and_(Event.time == at, Event.seq < seq)))
    stmt = stmt.order_by(Event.time.desc(), Event.seq.desc()).limit(limit + 1)
    rows = session.execute(stmt).all()
    more = len(rows) > limit
    rows = rows[:limit]
    next_cursor = f"{rows[-1].time!r}:{rows[-1].seq}" if more and rows else None
    return [_loads(r) for r in rows], next_cursor


def get(session: Session, event_id: str) -> dict[str, Any]:
    """The event with this id, or with the only id that starts with it."""
    query = select(Event.payload, Event.service, Event.instance_id, Event.time, Event.fingerprint)
    row = session.execute(query.where(Event.id == event_id)).first()
    if row is None:
        full_id = by_prefix(session, Event.id, event_id, "event")
        row = session.execute(query.where(Event.id == full_id)).first()
    if row is None:
        raise NotFound(f"event {event_id!r} not found")
    return _loads(row)


def by_ids(session: Session, event_ids: list[str]) -> list[dict[str, Any]]:
    rows = session.execute(
        select(Event.payload, Event.service, Event.instance_id, Event.time, Event.fingerprint)
        .where(Event.id.in_(event_ids))
        .order_by(Event.seq)
    )
    return [_loads(r) for r in rows]


def group_dict(group: ExceptionGroup) -> dict[str, Any]:
    return {
        "fingerprint": group.fingerprint,
        "exc_type": group.exc_type,
        "message": group.message,
        "count": group.count,
        "first_seen": group.first_seen,
        "last_seen": group.last_seen,
        "services": list(group.services),
        "versions": list(group.versions),
        "last_event_id": group.last_event_id,
    }


def exception_groups(session: Session, service: Optional[str], limit: int) -> list[dict[str, Any]]:
    stmt = select(ExceptionGroup).order_by(ExceptionGroup.last_seen.desc())
    found = []
    for group in session.scalars(stmt):
        if service is None or service in group.services:
            found.append(group_dict(group))
            if len(found) >= limit:
                break
    return found


def exception_group(session: Session, fingerprint: str, events: int) -> dict[str, Any]:
    group = session.get(ExceptionGroup, fingerprint)
    if group is None:
        raise NotFound(f"exception group {fingerprint!r} not found")
    recent, _ = query(session, EventFilter(fingerprint=fingerprint), events)
    return {**group_dict(group), "events": recent}


# --- retention -----------------------------------------------------------------------------


def prune(session: Session, older_than: float, keep_per_service: int) -> int:
    """Delete events older than ``older_than`` and all but the newest N of each service."""
    deleted = _delete(session, Event.time < older_than)
    services = list(session.scalars(select(Event.service).distinct()))
    for service in services:
        edge = session.execute(
            select(Event.time, Event.seq)
            .where(Event.service == service)
            .order_by(Event.time.desc(), Event.seq.desc())
            .offset(keep_per_service)
            .limit(1)
        ).first()
        if edge is not None:
            deleted += _delete(
                session,
                Event.service == service,
                or_(Event.time < edge.time, and_(Event.time == edge.time, Event.seq <= edge.seq)),
            )
    return deleted


def _delete(session: Session, *where: Any) -> int:
    result = cast(CursorResult[Any], session.execute(delete(Event).where(*where)))
    return result.rowcount or 0


def count(session: Session, service: Optional[str] = None) -> int:
    stmt = select(func.count()).select_from(Event)
    if service:
        stmt = stmt.where(Event.service == service)
    return int(session.scalar(stmt) or 0)
