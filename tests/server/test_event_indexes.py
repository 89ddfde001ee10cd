"""Migration 0005: the events table without its type index and with an exceptions-only
fingerprint index, on a new database and on one upgraded from 0004 with events in it."""

from __future__ import annotations

import time

import pytest
from alembic import command
from sqlalchemy import inspect, select, text

from peephole.server.db import Database
from peephole.server.migrations import alembic_config
from peephole.server.models import EventRow
from peephole.server.store import events as event_store

from .conftest import exception, snapshot

pytestmark = pytest.mark.server

ORIGIN = event_store.Origin("shop", "i1", "1.0")


def _indexes(db: Database) -> dict[str, list[str]]:
    indexes = inspect(db.engine).get_indexes("events")
    return {str(index["name"]): [str(c) for c in index["column_names"]] for index in indexes}


def _plan(db: Database) -> str:
    """How the database reads the events of one exception group, newest first."""
    query = (
        select(EventRow.id)
        .where(EventRow.fingerprint == "fp1")
        .order_by(EventRow.time.desc())
        .limit(10)
    )
    sql = str(query.compile(db.engine, compile_kwargs={"literal_binds": True}))
    with db.engine.begin() as connection:
        if db.is_sqlite:
            return " ".join(
                str(row[-1]) for row in connection.exec_driver_sql(f"EXPLAIN QUERY PLAN {sql}")
            )
        connection.exec_driver_sql("SET LOCAL enable_seqscan TO off")  # a tiny table
        return " ".join(str(row[0]) for row in connection.exec_driver_sql(f"EXPLAIN {sql}"))


def test_exception_groups_read_the_exceptions_only_index(db: Database) -> None:
    assert "ix_events_type" not in _indexes(db)
    assert _indexes(db)["ix_events_fingerprint_time"] == ["fingerprint", "time"]
    assert "ix_events_fingerprint_time" in _plan(db)


def test_upgrade_from_0004_keeps_the_events(database_url: str) -> None:
    db = Database(database_url)
    try:
        with db.engine.begin() as connection:
            command.upgrade(alembic_config(connection), "0004")
        assert "ix_events_type" in _indexes(db)
        now = time.time()
        events = [exception(time=now - 1), snapshot("p1", time=now), exception("ValueError", "fp2")]
        db.run(lambda s: event_store.insert(s, ORIGIN, events, now))
        db.migrate()
        assert "ix_events_type" not in _indexes(db)
        assert "ix_events_fingerprint_time" in _plan(db)
        found, _ = db.run(
            lambda s: event_store.query(s, event_store.EventFilter(fingerprint="fp1"), 10)
        )
        assert [e["id"] for e in found] == [events[0]["id"]]
        assert db.run(lambda s: event_store.count(s)) == 3
        with db.engine.connect() as connection:
            version = connection.execute(text("SELECT version_num FROM alembic_version"))
            assert version.scalar() == "0005"
    finally:
        db.close()
