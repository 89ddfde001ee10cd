"""Writes that arrive together share a transaction; a bad one fails only its sender."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from peephole.server.batcher import Batcher
from peephole.server.db import Database
from peephole.server.models import AuditEntryRow
from peephole.server.store import audit
from peephole.server.store.credentials import Principal

pytestmark = pytest.mark.server


async def test_batch_commits_together_and_isolates_a_failure(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'b.db'}")
    db.migrate()
    transactions = 0

    def write(session: Session, item: str) -> str:
        nonlocal transactions
        if item == "bad":
            raise ValueError("bad item")
        audit.record(session, Principal("test", "admin", 1), item)
        transactions += 0 if session.info.setdefault("counted", False) else 1
        session.info["counted"] = True
        return item.upper()

    batcher: Batcher[str, str] = Batcher(db, lambda s, items: [write(s, i) for i in items])
    try:
        results = await asyncio.gather(
            *(batcher.submit(item) for item in ["a", "b", "bad", "c"]), return_exceptions=True
        )
        assert results[:2] == ["A", "B"] and results[3] == "C"
        assert isinstance(results[2], ValueError)
        actions = db.run(lambda s: sorted(s.scalars(select(AuditEntryRow.action))))
        assert actions == ["a", "b", "c"]
        transactions = 0
        together = await asyncio.gather(*(batcher.submit(x) for x in ["d", "e", "f", "g"]))
        assert together == ["D", "E", "F", "G"]
        assert transactions <= 2  # the first alone, the rest in one transaction
    finally:
        db.close()
