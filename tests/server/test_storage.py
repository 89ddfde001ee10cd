"""The store functions against a real database (SQLite and PostgreSQL)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import select
from sqlalchemy.orm import Session

from peephole import protocol
from peephole.server.db import Database, normalize_url
from peephole.server.models import Base, ProbeRow
from peephole.server.store import NotFound, credentials
from peephole.server.store import events as event_store
from peephole.server.store import probes as probe_store

from .conftest import exception, snapshot

pytestmark = pytest.mark.server


@pytest.fixture
def db(database_url: str) -> Iterator[Database]:
    database = Database(database_url)
    database.migrate()
    yield database
    database.close()


ORIGIN = event_store.Origin("shop", "i1", "1.0")


def test_postgres_urls_use_psycopg3() -> None:
    assert normalize_url("postgresql://u@h/db") == "postgresql+psycopg://u@h/db"
    assert normalize_url("postgres://u@h/db") == "postgresql+psycopg://u@h/db"
    assert normalize_url("sqlite:///x.db") == "sqlite:///x.db"


def test_migrations_create_exactly_the_models(db: Database) -> None:
    with db.engine.connect() as connection:
        diff = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    assert diff == []


def test_migrating_twice_is_harmless(db: Database) -> None:
    db.migrate()
    assert db.run(lambda s: s.scalars(select(ProbeRow)).all()) == []


def test_seed_creates_credentials_once(db: Database) -> None:
    created = db.run(lambda s: credentials.seed(s, None, None))
    assert set(created) == {"admin_token", "agent_key"}
    assert db.run(lambda s: credentials.seed(s, None, None)) == {}
    principal = db.run(lambda s: credentials.find_token(s, created["admin_token"]))
    assert principal == credentials.Principal("admin", "admin", 1)
    grant = db.run(lambda s: credentials.find_agent_key(s, created["agent_key"]))
    assert grant == credentials.AgentGrant(1, "default", None, None)
    assert db.run(lambda s: credentials.find_token(s, "wrong")) is None


def test_secrets_are_stored_hashed(db: Database) -> None:
    _, token = db.run(lambda s: credentials.create_token(s, "ann", "viewer"))
    with db.engine.connect() as connection:
        dump = str(connection.exec_driver_sql("SELECT * FROM tokens").all())
    assert token not in dump
    assert credentials.hash_secret(token) in dump


def _probe(db: Database, **fields: object) -> str:
    body = {
        "kind": "tracepoint",
        "file": "a.py",
        "line": 3,
        "hit_limit": 3,
        "expire_seconds": 60.0,
        "target": {"service": "shop"},
        **fields,
    }
    return db.run(lambda s: probe_store.create(s, body, "ann", time.time()).id)


def test_probe_round_trip_and_not_found(db: Database) -> None:
    probe_id = _probe(db, watches=["x"], condition="x > 1")
    probe = db.run(lambda s: probe_store.get(s, probe_id))
    spec = protocol.ProbeSpec.from_dict(probe_store.spec(probe))
    assert (spec.file, spec.line, spec.watches, spec.condition) == ("a.py", 3, ["x"], "x > 1")
    with pytest.raises(NotFound, match="probe 'nope' not found"):
        db.run(lambda s: probe_store.get(s, "nope"))


def test_captures_count_across_instances_until_done(db: Database) -> None:
    probe_id = _probe(db)
    now = time.time()
    other = event_store.Origin("shop", "i2", "1.0")
    first = db.run(lambda s: event_store.insert(s, ORIGIN, [snapshot(probe_id)] * 1, now))
    assert first.done_probes == []
    second = db.run(
        lambda s: event_store.insert(s, other, [snapshot(probe_id), snapshot(probe_id)], now)
    )
    assert second.done_probes == [probe_id]
    probe = db.run(lambda s: probe_store.get(s, probe_id))
    assert (probe.captures, probe.finished) == (3, "done")
    assert db.run(lambda s: probe_store.live(s, now)) == []


def test_duplicate_events_are_stored_once(db: Database) -> None:
    event = snapshot("p")
    now = time.time()
    assert len(db.run(lambda s: event_store.insert(s, ORIGIN, [dict(event)], now)).events) == 1
    assert db.run(lambda s: event_store.insert(s, ORIGIN, [dict(event)], now)).events == []
    assert db.run(lambda s: event_store.count(s)) == 1


def test_event_pages_follow_the_cursor_newest_first(db: Database) -> None:
    base = time.time()
    events = [snapshot("p", time=base + i % 5) for i in range(23)]  # ties on time
    db.run(lambda s: event_store.insert(s, ORIGIN, events, base))
    seen: list[str] = []
    cursor = None
    while True:
        position = event_store.parse_cursor(cursor) if cursor else None

        def query(
            s: Session, at: tuple[float, int] | None = position
        ) -> tuple[list[dict[str, Any]], str | None]:
            return event_store.query(s, event_store.EventFilter(), 10, at)

        page, next_cursor = db.run(query)
        seen += [e["id"] for e in page]
        times = [e["time"] for e in page]
        assert times == sorted(times, reverse=True)
        if next_cursor is None:
            break
        cursor = next_cursor
    assert sorted(seen) == sorted(e["id"] for e in events)
    assert len(seen) == 23


def test_event_filters(db: Database) -> None:
    now = time.time()
    db.run(
        lambda s: event_store.insert(
            s, ORIGIN, [snapshot("p1", time=now - 100), snapshot("p2"), exception()], now
        )
    )
    other = event_store.Origin("billing", "i9", None)
    db.run(lambda s: event_store.insert(s, other, [snapshot("p1")], now))

    def ids(**where: object) -> int:
        page, _ = db.run(lambda s: event_store.query(s, event_store.EventFilter(**where), 100))  # type: ignore[arg-type]
        return len(page)

    assert ids() == 4
    assert ids(probe_id="p1") == 2
    assert ids(service="billing") == 1
    assert ids(instance_id="i1") == 3
    assert ids(type="exception") == 1
    assert ids(fingerprint="fp1") == 1
    assert ids(since=now - 10) == 3


def test_exceptions_group_by_fingerprint(db: Database) -> None:
    now = time.time()
    v2 = event_store.Origin("billing", "i2", "2.0")
    db.run(
        lambda s: event_store.insert(
            s, ORIGIN, [exception(time=now - 50), exception(time=now - 40, count=7)], now
        )
    )
    db.run(lambda s: event_store.insert(s, v2, [exception(time=now - 10)], now))
    db.run(lambda s: event_store.insert(s, ORIGIN, [exception("ValueError", "fp2", time=now)], now))
    groups = db.run(lambda s: event_store.exception_groups(s, None, 10))
    assert [g["fingerprint"] for g in groups] == ["fp2", "fp1"]
    fp1 = groups[1]
    assert fp1["count"] == 9
    assert fp1["first_seen"] == pytest.approx(now - 50)
    assert fp1["last_seen"] == pytest.approx(now - 10)
    assert fp1["services"] == ["shop", "billing"]
    assert fp1["versions"] == ["1.0", "2.0"]
    assert [
        g["fingerprint"] for g in db.run(lambda s: event_store.exception_groups(s, "billing", 10))
    ] == ["fp1"]
    detail = db.run(lambda s: event_store.exception_group(s, "fp1", 2))
    assert len(detail["events"]) == 2 and detail["events"][0]["id"] == fp1["last_event_id"]


def test_a_group_shows_its_newest_snapshot_not_a_later_count(db: Database) -> None:
    """The agent sends locals once per interval and counts in between (``snapshot: false``,
    spanning first_time..last_time): the group must keep pointing at the locals."""
    now = time.time()
    shown = exception(time=now - 100, snapshot=True)
    counted = exception(time=now, snapshot=False, count=500, first_time=now - 90, last_time=now - 5)
    db.run(lambda s: event_store.insert(s, ORIGIN, [shown], now))
    db.run(lambda s: event_store.insert(s, ORIGIN, [counted], now))
    (group,) = db.run(lambda s: event_store.exception_groups(s, None, 10))
    assert group["last_event_id"] == shown["id"]
    assert group["count"] == 501
    assert group["first_seen"] == pytest.approx(now - 100)
    assert group["last_seen"] == pytest.approx(now - 5)


def test_retention_by_age_and_by_count_per_service(db: Database) -> None:
    now = time.time()
    shop = [snapshot("p", time=now - i) for i in range(10)]
    old = [snapshot("p", time=now - 10 * 86400)]
    billing = [snapshot("p", time=now - i) for i in range(3)]
    db.run(lambda s: event_store.insert(s, ORIGIN, shop + old, now))
    db.run(lambda s: event_store.insert(s, event_store.Origin("billing", "b", None), billing, now))
    deleted = db.run(lambda s: event_store.prune(s, now - 7 * 86400, 4))
    assert deleted == 1 + 6
    kept, _ = db.run(lambda s: event_store.query(s, event_store.EventFilter(service="shop"), 50))
    assert [e["id"] for e in kept] == [e["id"] for e in shop[:4]]
    assert db.run(lambda s: event_store.count(s, "billing")) == 3
