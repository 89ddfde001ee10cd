"""Several connections' batches stored in one transaction give what storing them one by one
gives: each batch learns its own new events, duplicates are stored once, a finished probe
is reported once, exceptions are grouped per sender."""

from __future__ import annotations

import contextlib
import json
import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.orm import Session

from peephole.server.broker import Broker
from peephole.server.db import SQLITE_PAGE_SIZE, Database
from peephole.server.settings import ServerSettings
from peephole.server.store import events as event_store
from peephole.server.store import probes as probe_store

from .conftest import exception, snapshot

pytestmark = pytest.mark.server


def _probe(db: Database, hit_limit: int) -> str:
    body = {
        "kind": "tracepoint",
        "file": "a.py",
        "line": 3,
        "hit_limit": hit_limit,
        "expire_seconds": 60.0,
        "target": {"service": "shop"},
    }
    return db.run(lambda s: probe_store.create(s, body, "ann", time.time()).id)


def test_batches_of_several_senders_in_one_transaction(db: Database) -> None:
    probe_id = _probe(db, hit_limit=3)
    one = event_store.Origin("shop", "i1", "1.0")
    two = event_store.Origin("shop", "i2", "2.0")
    shared = snapshot(probe_id)
    first = [snapshot(probe_id), dict(shared), exception("KeyError", "fp")]
    second = [dict(shared), snapshot(probe_id), snapshot(probe_id), exception("KeyError", "fp")]
    batches = [event_store.Batch(one, first), event_store.Batch(two, second)]
    now = time.time()

    stored = db.run(lambda s: event_store.insert_many(s, batches, now))

    assert [e["id"] for e in stored[0].events] == [e["id"] for e in first]
    assert [e["id"] for e in stored[1].events] == [
        second[1]["id"],
        second[2]["id"],
        second[3]["id"],
    ]
    assert [s.done_probes for s in stored] == [[probe_id], []]
    assert db.run(lambda s: event_store.count(s)) == 6
    probe = db.run(lambda s: probe_store.get(s, probe_id))
    assert (probe.captures, probe.finished) == (4, "done")
    group = db.run(lambda s: event_store.exception_group(s, "fp", 10))
    assert (group["count"], group["services"], group["versions"]) == (2, ["shop"], ["1.0", "2.0"])
    assert {e["instance_id"] for e in group["events"]} == {"i1", "i2"}


def test_light_events_with_their_texts_store_and_read_back_whole(db: Database) -> None:
    """A batch may hold only its events' top-level fields (the gateway's, with the texts as
    received): the texts are stored, exceptions are grouped from the fields, and the stored
    events come back whole, as reading them gives them."""
    probe_id = _probe(db, hit_limit=10)
    frames = [{"file": "a.py", "line": 3, "function": "f", "locals": {"n": {"t": "int", "v": 1}}}]
    events = [
        {**snapshot(probe_id), "frames": frames},
        {**exception("KeyError", "fp"), "frames": frames, "count": 3},
    ]
    texts = [json.dumps(e) for e in events]
    light = [event_store.light(e) for e in events]
    assert all("frames" not in e for e in light)
    origin = event_store.Origin("shop", "i1", "1.0")

    [stored] = db.run(
        lambda s: event_store.insert_many(s, [event_store.Batch(origin, light, texts)], time.time())
    )

    ids = [e["id"] for e in events]
    read = db.run(lambda s: [event_store.get(s, i) for i in ids])
    assert stored.whole() == read
    assert [e["frames"] for e in read] == [frames, frames]
    group = db.run(lambda s: event_store.exception_group(s, "fp", 10))
    assert (group["count"], group["exc_type"]) == (3, "KeyError")


def test_more_ids_than_one_query_takes(db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(event_store, "ID_CHUNK", 3)
    origin = event_store.Origin("shop", "i1", None)
    events = [snapshot("p") for _ in range(7)]
    now = time.time()
    db.run(lambda s: event_store.insert(s, origin, [dict(e) for e in events[:4]], now))

    [stored] = db.run(
        lambda s: event_store.insert_many(s, [event_store.Batch(origin, events)], now)
    )

    assert [e["id"] for e in stored.events] == [e["id"] for e in events[4:]]
    assert db.run(lambda s: event_store.count(s)) == 7


@pytest.mark.postgres
@pytest.mark.parametrize(
    ("environ", "expected"),
    [({}, "on"), ({"PEEPHOLE_SERVER_SYNC_EVENTS": "false"}, "off")],
)
def test_event_commits_wait_for_the_wal_unless_told_not_to(
    postgres_url: str, environ: dict[str, str], expected: str
) -> None:
    """An ack means durable by default: speed over it is an explicit choice."""
    settings = ServerSettings.load(environ, database=postgres_url)
    database = Database(settings.database)
    try:
        database.migrate()
        broker = Broker(settings, database)

        def work(session: Session) -> Any:
            broker._store_events(session, [])
            return session.connection().exec_driver_sql("SHOW synchronous_commit").scalar()

        assert database.run(work) == expected
        assert (
            database.run(
                lambda s: s.connection().exec_driver_sql("SHOW synchronous_commit").scalar()
            )
            == "on"
        )
    finally:
        database.close()


def test_new_sqlite_databases_get_16_kb_pages_and_old_ones_keep_theirs(tmp_path: Path) -> None:
    old = tmp_path / "old.db"
    with contextlib.closing(sqlite3.connect(old)) as connection:
        connection.execute("CREATE TABLE earlier (x INTEGER)")  # written with 4 KB pages
    for path, size in ((tmp_path / "new.db", SQLITE_PAGE_SIZE), (old, 4096)):
        database = Database(f"sqlite:///{path}")
        try:
            database.migrate()
            page_size = database.run(
                lambda s: s.connection().exec_driver_sql("PRAGMA page_size").scalar()
            )
            assert page_size == size
            assert database.run(lambda s: event_store.count(s)) == 0
        finally:
            database.close()
