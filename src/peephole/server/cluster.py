"""Several server processes on one PostgreSQL: each tells the others what changed through
``LISTEN``/``NOTIFY``, so a load balancer can sit in front of them.

Every change is committed before it is announced, so a process that hears of it reads it
from the database: probe changes are pushed to its own agents, events and probe status go to
its own live-stream subscribers, policies to its own agents. Asking an agent for source
works only through the process that agent is connected to.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from typing import TYPE_CHECKING, Any, Optional

import psycopg
from sqlalchemy.engine import make_url

if TYPE_CHECKING:
    from peephole.server.broker import Broker

__all__ = ["Cluster", "conninfo"]

log = logging.getLogger("peephole.server")

CHANNEL = "peephole"
IDS_PER_NOTICE = 100  # NOTIFY payloads are limited to 8000 bytes
RECONNECT_SECONDS = 1.0


def conninfo(sqlalchemy_url: str) -> str:
    """The libpq URL for a ``postgresql+psycopg://`` SQLAlchemy URL."""
    return (
        make_url(sqlalchemy_url).set(drivername="postgresql").render_as_string(hide_password=False)
    )


class Cluster:
    def __init__(self, broker: Broker, url: str) -> None:
        self.broker = broker
        self.conninfo = conninfo(url)
        self.id = uuid.uuid4().hex
        self._outbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue(10_000)
        self.listening = asyncio.Event()

    def announce(self, kind: str, **fields: Any) -> None:
        """Tell the other processes (without waiting; a full outbox drops the notice)."""
        ids = fields.pop("ids", None)
        if ids is None:
            notices = [{"kind": kind, **fields}]
        else:
            notices = [
                {"kind": kind, "ids": ids[i : i + IDS_PER_NOTICE], **fields}
                for i in range(0, max(len(ids), 1), IDS_PER_NOTICE)
            ]
        for notice in notices:
            try:
                self._outbox.put_nowait({**notice, "origin": self.id})
            except asyncio.QueueFull:
                log.warning("cluster outbox full; a %s notice was dropped", kind)

    async def send_forever(self) -> None:
        connection: Optional[psycopg.AsyncConnection[Any]] = None
        while True:
            notice = await self._outbox.get()
            try:
                if connection is None or connection.closed:
                    connection = await psycopg.AsyncConnection.connect(
                        self.conninfo, autocommit=True
                    )
                await connection.execute("SELECT pg_notify(%s, %s)", (CHANNEL, json.dumps(notice)))
            except Exception as exc:
                log.warning("cluster notice not sent: %s", exc)
                connection = None
                await asyncio.sleep(RECONNECT_SECONDS)

    async def listen_forever(self) -> None:
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(
                    self.conninfo, autocommit=True
                ) as connection:
                    await connection.execute(f"LISTEN {CHANNEL}")
                    self.listening.set()
                    async for notify in connection.notifies():
                        await self._handle(notify.payload)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("cluster listener lost its connection: %s", exc)
            self.listening.clear()
            await asyncio.sleep(RECONNECT_SECONDS)

    async def _handle(self, payload: str) -> None:
        try:
            notice = json.loads(payload)
            if notice.get("origin") == self.id:
                return
            kind = notice.get("kind")
            if kind == "probes":
                await self.broker.probes_changed(notice["ids"], announce=False)
            elif kind == "status":
                self.broker.status_changed(notice["ids"])
            elif kind == "events":
                await self.broker.publish_stored_events(notice["ids"])
            elif kind == "policy":
                await self.broker.policy_changed(notice["service"], announce=False)
            elif kind == "revoked":
                self.broker.credential_revoked(notice["credential"], notice["id"], announce=False)
        except Exception:
            log.exception("cluster notice failed: %.200s", payload)
