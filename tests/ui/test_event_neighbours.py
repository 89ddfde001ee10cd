"""The snapshot page's previous and next hit: the hit of the same probe just before and just
after this one in (time, seq) order, however many newer hits there are, and hits stored at
the same time as this one are not skipped."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Optional, cast

import pytest

from peephole.server.broker import Broker
from peephole.server.db import Database
from peephole.server.store import events as event_store
from peephole.server.store import probes as probe_store
from peephole.server.ui.events import neighbours
from server.conftest import snapshot, tracepoint

pytestmark = pytest.mark.server

NEWER = 1005  # more than the 1,000 events one page of the API holds


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    database = Database(f"sqlite:///{tmp_path / 'peephole.db'}")
    database.migrate()
    yield database
    database.close()


def _probe(db: Database) -> str:
    body = tracepoint(hit_limit=10_000, expire_seconds=600.0)
    return db.run(lambda s: probe_store.create(s, body, "ann", time.time()).id)


def _store(db: Database, events: list[dict[str, Any]]) -> None:
    batch = event_store.Batch(event_store.Origin("shop", "i1", None), events)
    db.run(lambda s: event_store.insert_many(s, [batch], time.time()))


def _hit(probe_id: str, at: float) -> dict[str, Any]:
    return snapshot(probe_id, time=at)


def _around(db: Database, event: dict[str, Any]) -> tuple[Optional[str], Optional[str]]:
    """``neighbours`` on a loop of its own thread: the browser tests of this package keep
    one running on the main thread."""
    broker = cast(Broker, SimpleNamespace(db=db, event_view=lambda e: e))
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, neighbours(broker, event)).result(timeout=60)


def test_next_and_previous_follow_time_then_seq(db: Database) -> None:
    probe_id, other_probe = _probe(db), _probe(db)
    start = time.time() - 3600
    first, this, same_time_later = (_hit(probe_id, start) for _ in range(3))
    newer = [_hit(probe_id, start + 1 + i) for i in range(NEWER)]
    _store(db, [first, this, _hit(other_probe, start), same_time_later])
    _store(db, [_hit(other_probe, start + 0.5), *newer])

    assert _around(db, this) == (first["id"], same_time_later["id"])
    assert _around(db, same_time_later) == (this["id"], newer[0]["id"])
    assert _around(db, first) == (None, this["id"])
    assert _around(db, newer[0]) == (same_time_later["id"], newer[1]["id"])
    assert _around(db, newer[-1]) == (newer[-2]["id"], None)
