"""The database engine: SQLite (WAL) in the data directory by default, PostgreSQL by URL.

The server uses SQLAlchemy's synchronous engine from worker threads (see ``writer.py``):
SQLite has no asynchronous driver worth the name and allows one writer at a time anyway,
so one writer thread that commits batches is both the simplest and the fastest design.
"""

from __future__ import annotations

import asyncio
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable, TypeVar

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool

from peephole.server.migrations import upgrade

__all__ = ["Database", "normalize_url"]

T = TypeVar("T")
SQLITE_PAGE_SIZE = 16384
SETUP_LOCK = 0x7065657068  # advisory lock id for migrations and seeding ("peeph")


def normalize_url(url: str) -> str:
    """Map ``postgresql://`` and ``postgres://`` to the psycopg 3 driver."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


class Database:
    """An engine, a session factory and the schema migrations for one database URL.

    :meth:`write` runs every change on one thread, in order: SQLite takes one writer at a
    time, and ordering the writes keeps counters (hits, exception counts) free of races.
    :meth:`read` runs on the shared thread pool, so reads never wait behind writes (WAL).
    """

    def __init__(self, url: str) -> None:
        self.url = normalize_url(url)
        self.engine = _create_engine(self.url)
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)
        self._writer = ThreadPoolExecutor(1, thread_name_prefix="peephole-db-writer")

    @property
    def is_sqlite(self) -> bool:
        return self.engine.dialect.name == "sqlite"

    def migrate(self) -> None:
        """Bring the schema to the newest revision (run at every start)."""
        with self.engine.begin() as connection:
            if not self.is_sqlite:  # several processes starting at once migrate one by one
                connection.exec_driver_sql(f"SELECT pg_advisory_xact_lock({SETUP_LOCK})")
            upgrade(connection)
        database = self.engine.url.database
        if self.is_sqlite and database and os.path.exists(database):
            os.chmod(database, 0o600)

    def run(self, work: Callable[[Session], T], exclusive: bool = False) -> T:
        """Run ``work`` in one transaction on the calling thread; ``exclusive``: one at a time
        across server processes (PostgreSQL advisory lock), for first-start setup."""
        with self.sessions() as session, session.begin():
            if exclusive and not self.is_sqlite:
                session.connection().exec_driver_sql(f"SELECT pg_advisory_xact_lock({SETUP_LOCK})")
            return work(session)

    async def write(self, work: Callable[[Session], T]) -> T:
        """Run ``work`` in one transaction on the writer thread; return after the commit."""
        return await asyncio.get_running_loop().run_in_executor(self._writer, self.run, work)

    async def read(self, work: Callable[[Session], T]) -> T:
        return await run_in_threadpool(self.run, work)

    def close(self) -> None:
        self._writer.shutdown(wait=True)
        self.engine.dispose()


def _create_engine(url: str) -> Engine:
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return create_engine(url, pool_size=10, max_overflow=20, pool_pre_ping=True)
    if parsed.database and parsed.database != ":memory:":
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})
    event.listen(engine, "connect", _sqlite_pragmas)
    return engine


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # A new database gets 16 KB pages (an existing one keeps its own): a commit writes each
    # page to the WAL with its own system calls, and 2 KB events fill 4 KB pages fast; ingest
    # took 40% less CPU and half the writer's time (docs/benchmarks.md "Server").
    cursor.execute(f"PRAGMA page_size={SQLITE_PAGE_SIZE}")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()
