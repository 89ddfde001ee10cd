"""Events: stored as the agent's JSON plus indexed columns; exception groups kept alongside."""

from __future__ import annotations

import hashlib
import json
import math
import re
from dataclasses import dataclass
from typing import Any, Optional, cast

from sqlalchemy import Connection, CursorResult, and_, delete, func, or_, select
from sqlalchemy.orm import Session

from peephole import protocol
from peephole.server.models import EventRow, ExceptionGroupRow
from peephole.server.store import NotFound, by_prefix
from peephole.server.store import probes as probe_store

__all__ = [
    "Batch",
    "EventFilter",
    "Origin",
    "Stored",
    "adjacent",
    "by_ids",
    "count",
    "exception_group",
    "exception_groups",
    "get",
    "insert",
    "insert_many",
    "light",
    "parse_cursor",
    "prune",
    "query",
]

CAPTURE_TYPES = (protocol.SNAPSHOT, protocol.LOG)
ID_CHUNK = 900  # ids per "IN (...)" query: SQLite before 3.32 allows 999 parameters a statement


@dataclass
class Origin:
    """The connection events arrived on: the server, not the agent, says who sent them."""

    service: str
    instance_id: str
    version: Optional[str]


@dataclass
class Stored:
    """What one batch changed: the events new to the store (as the batch gave them, with
    the server's columns set) with their stored texts, and the probes now done."""

    events: list[dict[str, Any]]
    done_probes: list[str]
    texts: list[Optional[str]]  # each event's stored text: None where it was serialized

    def whole(self) -> list[dict[str, Any]]:
        """The new events as reading them back gives them: a :func:`light` event's body is
        parsed again from its text (only the live stream shows bodies, and only when
        someone watches it)."""
        return [
            event if text is None else _overlaid(json.loads(text), event)
            for event, text in zip(self.events, self.texts)
        ]


def light(event: dict[str, Any]) -> dict[str, Any]:
    """The event's top-level scalars: all that storing it reads when its text is stored as
    received (see :class:`Batch`). A batch holds its events while it waits for its
    transaction: parsed bodies held that long were scanned by the garbage collector again
    and again, then freed cold after the commit. Keeping only these took the server's CPU
    per stored snapshot from ~60 to ~42 us (``benchmarks/server_ingest.py``)."""
    return {k: v for k, v in event.items() if type(v) is not dict and type(v) is not list}


def fingerprint_of(event: dict[str, Any]) -> str:
    given = event.get("fingerprint")
    if isinstance(given, str) and given:
        return _column_text(given[:128])
    return hashlib.sha256(str(event.get("exc_type", "Exception")).encode()).hexdigest()[:32]


@dataclass
class Batch:
    """One ``events`` message: who sent it, its events and, optionally, their JSON texts.
    With the texts, the events need only their top-level scalars (:func:`light`)."""

    origin: Origin
    events: list[dict[str, Any]]
    texts: Optional[list[str]] = None


def insert(
    session: Session,
    origin: Origin,
    events: list[dict[str, Any]],
    now: float,
    texts: Optional[list[str]] = None,
) -> Stored:
    """Store one batch; see :func:`insert_many`."""
    [stored] = insert_many(session, [Batch(origin, events, texts)], now)
    return stored


def insert_many(session: Session, batches: list[Batch], now: float) -> list[Stored]:
    """Store batches (duplicates by id are skipped: an agent resends what was not acked).

    The batches of many connections go in one INSERT, and the capture counts in one UPDATE
    per probe: statements, not rows, were most of the cost when each batch had its own.
    ``texts`` are the events' JSON as received (see ``peephole.server.wire``), stored as is;
    without them the events are serialized. Either way the indexed columns (service,
    instance, time, fingerprint) are the server's and win when an event is read back.
    A probe that this call finishes is named in the first of the batches that captured for it.
    """
    prepared = [_prepare(batch, now) for batch in batches]
    connection = session.connection()
    ids = [event_id for events, _ in prepared for event_id in events]
    known = _stored_ids(connection, ids)
    rows: list[tuple[Any, ...]] = []
    stored: list[Stored] = []
    captures: dict[str, int] = {}
    first_capture: dict[str, int] = {}  # probe id -> index of the first batch capturing it
    for index, (events, raw) in enumerate(prepared):
        fresh = [e for i, e in events.items() if i not in known]
        known.update(e["id"] for e in fresh)
        texts = [raw.get(e["id"]) for e in fresh]
        rows += [_row(e, text) for e, text in zip(fresh, texts)]
        stored.append(Stored(fresh, [], texts))
        for event in fresh:
            probe_id = event.get("probe_id")
            if event["type"] in CAPTURE_TYPES and isinstance(probe_id, str):
                captures[probe_id] = captures.get(probe_id, 0) + 1
                first_capture.setdefault(probe_id, index)
    if rows:
        _insert_rows(connection, rows)
    done = probe_store.add_captures(session, captures, now)
    for probe_id in done:
        stored[first_capture[probe_id]].done_probes.append(probe_id)
    for batch, new in zip(batches, stored):
        _group_exceptions(
            session, batch.origin, [e for e in new.events if e["type"] == protocol.EXCEPTION]
        )
    return stored


def _prepare(batch: Batch, now: float) -> tuple[dict[str, dict[str, Any]], dict[str, str]]:
    """The batch's events by id with the server's columns set, and their texts by id."""
    texts = batch.texts
    payloads = texts if texts is not None and len(texts) == len(batch.events) else None
    events: dict[str, dict[str, Any]] = {}
    raw: dict[str, str] = {}
    origin = batch.origin
    for index, event in enumerate(batch.events):
        event["service"] = origin.service
        event["instance_id"] = origin.instance_id
        if not isinstance(event.get("time"), (int, float)):
            event["time"] = now
        if event["type"] == protocol.EXCEPTION:
            event["fingerprint"] = fingerprint_of(event)
        events[event["id"]] = event
        if payloads is not None:
            raw[event["id"]] = payloads[index]
    return events, raw


ROW_COLUMNS = (
    "id",
    "type",
    "service",
    "instance_id",
    "probe_id",
    "fingerprint",
    "trace_id",
    "time",
    "payload",
)


def _stored_ids(connection: Connection, ids: list[str]) -> set[str]:
    """Which of ``ids`` are stored already, asked of the driver itself: SQLAlchemy's
    expanding ``IN`` cost 3 us per id on SQLite and 10 on PostgreSQL, this 0.7 and 2.5."""
    known: set[str] = set()
    postgres = connection.dialect.name == "postgresql"
    for start in range(0, len(ids), ID_CHUNK):
        chunk = ids[start : start + ID_CHUNK]
        if postgres:
            rows = connection.exec_driver_sql(_POSTGRES_STORED, (chunk,))
        else:
            marks = ",".join("?" * len(chunk))
            rows = connection.exec_driver_sql(f"{_SQLITE_STORED} ({marks})", tuple(chunk))
        known.update(row[0] for row in rows)
    return known


_SQLITE_STORED = f"SELECT id FROM {EventRow.__tablename__} WHERE id IN"
_POSTGRES_STORED = f"SELECT id FROM {EventRow.__tablename__} WHERE id = ANY(%s)"
_COLUMN_LIST = ", ".join(ROW_COLUMNS)
_SQLITE_INSERT = (
    f"INSERT INTO {EventRow.__tablename__} ({_COLUMN_LIST}) "
    f"VALUES ({', '.join('?' for _ in ROW_COLUMNS)})"
)
_POSTGRES_INSERT = (
    f"INSERT INTO {EventRow.__tablename__} ({_COLUMN_LIST}) "
    f"VALUES ({', '.join('%s' for _ in ROW_COLUMNS)})"
)
_POSTGRES_COPY = f"COPY {EventRow.__tablename__} ({_COLUMN_LIST}) FROM STDIN"


def _insert_rows(connection: Connection, rows: list[tuple[Any, ...]]) -> None:
    """Insert ``rows`` (``ROW_COLUMNS`` tuples) with the driver itself: sqlite3's
    executemany, PostgreSQL's COPY (psycopg's executemany cost the server 20 us of CPU per
    row, COPY 8). SQLAlchemy's per-row parameter handling cost a tenth of ingest, and these
    columns need no conversion. Like a plain INSERT, COPY fails the transaction on an id
    stored meanwhile (by another server process): the batcher then retries each batch."""
    if connection.dialect.name != "postgresql":
        connection.exec_driver_sql(_SQLITE_INSERT, rows)
        return
    if connection.dialect.driver != "psycopg":  # psycopg2 (a URL naming it) has no copy()
        connection.exec_driver_sql(_POSTGRES_INSERT, rows)
        return
    cursor = connection.connection.cursor()
    try:
        with cursor.copy(_POSTGRES_COPY) as copy:
            for row in rows:
                copy.write_row(row)
    finally:
        cursor.close()


# What a text column cannot hold: NUL (PostgreSQL) and lone surrogates (UTF-8 drivers). The
# wire replaces surrogates already (``peephole.server.wire``); events the server builds itself
# (Sidekick) do not pass it. The payload, JSON text, holds NUL escaped.
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def _column_text(value: str) -> str:
    """``value`` as a text column can hold it (ASCII without NUL, most text, is not searched:
    a third of a microsecond a column)."""
    if value.isascii() and "\x00" not in value:
        return value
    return _UNSTORABLE.sub("\ufffd", value)


def _row(event: dict[str, Any], payload: Optional[str]) -> tuple[Any, ...]:
    """The event's ``ROW_COLUMNS`` values."""

    def text(name: str, size: int) -> Optional[str]:
        value = event.get(name)
        return _column_text(value[:size]) if isinstance(value, str) else None

    return (
        event["id"],
        event["type"],
        event["service"],
        event["instance_id"],
        text("probe_id", 32),
        text("fingerprint", 128),
        text("trace_id", 64),
        float(event["time"]),
        payload or json.dumps(event, separators=(",", ":"), default=str),
    )


# What reading an event selects: its text and the columns that win over it (``_loads``).
_READ_COLUMNS = (
    EventRow.payload,
    EventRow.id,
    EventRow.type,
    EventRow.service,
    EventRow.instance_id,
    EventRow.time,
    EventRow.fingerprint,
)


def _loads(row: Any) -> dict[str, Any]:
    """An event read back: its JSON with the server's columns laid over it (a payload stored
    before the gateway checked types cannot fail the required fields of a response)."""
    return _overlaid(json.loads(row.payload), row._mapping)


def _overlaid(event: dict[str, Any], columns: Any) -> dict[str, Any]:
    """``event`` with the server's columns (a row's, or a stored event's) laid over it."""
    for name in _OVERLAID:
        event[name] = columns[name]
    fingerprint = columns.get("fingerprint")
    if fingerprint is not None:
        event["fingerprint"] = fingerprint
    return event


_OVERLAID = ("id", "type", "service", "instance_id", "time")


def _group_exceptions(session: Session, origin: Origin, events: list[dict[str, Any]]) -> None:
    if not events:
        return
    by_print: dict[str, list[dict[str, Any]]] = {}
    for event in events:
        by_print.setdefault(event["fingerprint"], []).append(event)
    groups = {
        g.fingerprint: g
        for g in session.scalars(
            select(ExceptionGroupRow).where(ExceptionGroupRow.fingerprint.in_(list(by_print)))
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
            group = ExceptionGroupRow(
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
            group.exc_type = _column_text(str(shown.get("exc_type") or "Exception")[:300])
            group.message = _column_text(str(shown.get("message") or ""))
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
    if not (math.isfinite(at) and 0 <= seq <= protocol.MAX_COUNTER):  # what the columns can hold
        raise ValueError("cursor out of range")
    return at, seq


def query(
    session: Session, where: EventFilter, limit: int, cursor: Optional[tuple[float, int]] = None
) -> tuple[list[dict[str, Any]], Optional[str]]:
    """A page of events, newest first, and the cursor of the next page (None at the end)."""
    stmt = select(*_READ_COLUMNS, EventRow.seq)
    for column, value in (
        (EventRow.type, where.type),
        (EventRow.probe_id, where.probe_id),
        (EventRow.service, where.service),
        (EventRow.instance_id, where.instance_id),
        (EventRow.fingerprint, where.fingerprint),
    ):
        if value is not None:
            stmt = stmt.where(column == value)
    if where.since is not None:
        stmt = stmt.where(EventRow.time >= where.since)
    if cursor is not None:
        at, seq = cursor
        stmt = stmt.where(or_(EventRow.time < at, and_(EventRow.time == at, EventRow.seq < seq)))
    stmt = stmt.order_by(EventRow.time.desc(), EventRow.seq.desc()).limit(limit + 1)
    rows = session.execute(stmt).all()
    more = len(rows) > limit
    rows = rows[:limit]
    next_cursor = f"{rows[-1].time!r}:{rows[-1].seq}" if more and rows else None
    return [_loads(r) for r in rows], next_cursor


def get(session: Session, event_id: str) -> dict[str, Any]:
    """The event with this id, or with the only id that starts with it."""
    query = select(*_READ_COLUMNS)
    row = session.execute(query.where(EventRow.id == event_id)).first()
    if row is None:
        full_id = by_prefix(session, EventRow.id, event_id, "event")
        row = session.execute(query.where(EventRow.id == full_id)).first()
    if row is None:
        raise NotFound(f"event {event_id!r} not found")
    return _loads(row)


def by_ids(session: Session, event_ids: list[str]) -> list[dict[str, Any]]:
    rows = session.execute(
        select(*_READ_COLUMNS).where(EventRow.id.in_(event_ids)).order_by(EventRow.seq)
    )
    return [_loads(r) for r in rows]


def group_dict(group: ExceptionGroupRow) -> dict[str, Any]:
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
    stmt = select(ExceptionGroupRow).order_by(ExceptionGroupRow.last_seen.desc())
    found = []
    for group in session.scalars(stmt):
        if service is None or service in group.services:
            found.append(group_dict(group))
            if len(found) >= limit:
                break
    return found


def exception_group(session: Session, fingerprint: str, events: int) -> dict[str, Any]:
    group = session.get(ExceptionGroupRow, fingerprint)
    if group is None:
        raise NotFound(f"exception group {fingerprint!r} not found")
    recent, _ = query(session, EventFilter(fingerprint=fingerprint), events)
    return {**group_dict(group), "events": recent}


# --- retention -----------------------------------------------------------------------------


def prune(session: Session, older_than: float, keep_per_service: int) -> int:
    """Delete events older than ``older_than`` and all but the newest N of each service."""
    deleted = _delete(session, EventRow.time < older_than)
    services = list(session.scalars(select(EventRow.service).distinct()))
    for service in services:
        edge = session.execute(
            select(EventRow.time, EventRow.seq)
            .where(EventRow.service == service)
            .order_by(EventRow.time.desc(), EventRow.seq.desc())
            .offset(keep_per_service)
            .limit(1)
        ).first()
        if edge is not None:
            deleted += _delete(
                session,
                EventRow.service == service,
                or_(
                    EventRow.time < edge.time,
                    and_(EventRow.time == edge.time, EventRow.seq <= edge.seq),
                ),
            )
    return deleted


def _delete(session: Session, *where: Any) -> int:
    result = cast(CursorResult[Any], session.execute(delete(EventRow).where(*where)))
    return result.rowcount or 0


def count(session: Session, service: Optional[str] = None) -> int:
    stmt = select(func.count()).select_from(EventRow)
    if service:
        stmt = stmt.where(EventRow.service == service)
    return int(session.scalar(stmt) or 0)


def adjacent(session: Session, event_id: str, newer: bool) -> Optional[str]:
    """The id of the hit of the same probe (and type) just after (``newer``) or just before
    this event in (time, seq) order: one row read, however many hits the probe has, and hits
    stored at the same time are ordered by seq, not skipped."""
    own = session.execute(
        select(EventRow.time, EventRow.seq, EventRow.probe_id, EventRow.type).where(
            EventRow.id == event_id
        )
    ).first()
    if own is None or own.probe_id is None:
        return None
    if newer:
        beyond = or_(
            EventRow.time > own.time, and_(EventRow.time == own.time, EventRow.seq > own.seq)
        )
        order = (EventRow.time.asc(), EventRow.seq.asc())
    else:
        beyond = or_(
            EventRow.time < own.time, and_(EventRow.time == own.time, EventRow.seq < own.seq)
        )
        order = (EventRow.time.desc(), EventRow.seq.desc())
    stmt = (
        select(EventRow.id)
        .where(EventRow.probe_id == own.probe_id, EventRow.type == own.type, beyond)
        .order_by(*order)
        .limit(1)
    )
    return session.scalar(stmt)
