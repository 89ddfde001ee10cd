"""Group writes that arrive together into one transaction.

Fifty agents answering a new probe at once, or fifty sending events, would otherwise be
fifty commits in a row on the writer thread. A :class:`Batcher` takes what arrived while
the previous transaction ran and writes it all in the next one; under no load an item is
written at once, alone. If a grouped transaction fails, each item is retried alone, so a
bad item fails only its own sender.
"""

from __future__ import annotations

import asyncio
from typing import Callable, Generic, Optional, TypeVar

from sqlalchemy.orm import Session

from peephole.server.db import Database

__all__ = ["Batcher"]

Item = TypeVar("Item")
Result = TypeVar("Result")


WriteMany = Callable[[Session, list[Item]], list[Result]]


class Batcher(Generic[Item, Result]):
    """``write_many(session, items)`` returns one result per item, in order."""

    def __init__(self, db: Database, write_many: WriteMany[Item, Result]) -> None:
        self._db = db
        self._write_many = write_many
        self._pending: list[tuple[Item, asyncio.Future[Result]]] = []
        self._task: Optional[asyncio.Task[None]] = None

    async def submit(self, item: Item) -> Result:
        """Write ``item``; return its result once its transaction is committed."""
        future: asyncio.Future[Result] = asyncio.get_running_loop().create_future()
        self._pending.append((item, future))
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._drain())
        return await future

    async def _drain(self) -> None:
        while self._pending:
            batch, self._pending = self._pending, []
            if len(batch) == 1:
                await self._alone(*batch[0])
                continue
            items = [item for item, _ in batch]
            try:
                results = await self._db.write(self._work(items))
            except Exception:
                for item, future in batch:
                    await self._alone(item, future)
                continue
            for (_, future), result in zip(batch, results):
                if not future.done():
                    future.set_result(result)

    def _work(self, items: list[Item]) -> Callable[[Session], list[Result]]:
        return lambda session: self._write_many(session, items)

    async def _alone(self, item: Item, future: asyncio.Future[Result]) -> None:
        try:
            [result] = await self._db.write(self._work([item]))
        except Exception as exc:
            if not future.done():
                future.set_exception(exc)
        else:
            if not future.done():
                future.set_result(result)
