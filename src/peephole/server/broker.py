"""The server's moving parts in one place: settings, database, hub, metrics, and the few
operations that touch all of them (an agent message is stored, then pushed on)."""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Any, Iterable, Optional

from sqlalchemy.orm import Session

from peephole import protocol
from peephole.server.api import responses
from peephole.server.batcher import Batcher
from peephole.server.cluster import Cluster
from peephole.server.connection import AgentConnection
from peephole.server.db import Database
from peephole.server.hub import Hub
from peephole.server.metrics import Metrics
from peephole.server.settings import ServerSettings
from peephole.server.store import credentials, policies
from peephole.server.store import events as event_store
from peephole.server.store import instances as instance_store
from peephole.server.store import probes as probe_store

__all__ = ["Broker"]

log = logging.getLogger("peephole.server")

TOUCH_SECONDS = protocol.HEARTBEAT_SECONDS / 2  # how often connected instances' last_seen is saved
HELD_SECONDS = 3 * TOUCH_SECONDS  # a row touched this recently is another process's connection


class Broker:
    """What a server process holds: the database, the connected agents and subscribers
    (``hub``), counters, and the other processes sharing its PostgreSQL (``cluster``)."""

    def __init__(self, settings: ServerSettings, db: Database) -> None:
        self.settings = settings
        self.db = db
        self.hub = Hub()
        self.metrics = Metrics()
        self.started_at = time.time()
        self._last_touch = 0.0
        self.cluster: Optional[Cluster] = None  # several processes on one PostgreSQL
        self._events = Batcher(db, self._store_events)
        self._statuses = Batcher(db, _store_statuses)
        self._health: dict[str, protocol.AgentHealth] = {}  # last stored, per instance
        self._dirty_probes: set[str] = set()
        self._flush: Optional[asyncio.Task[None]] = None

    # --- views ---------------------------------------------------------------------------

    def event_view(self, event: dict[str, Any]) -> dict[str, Any]:
        """An event as people see it, in the REST API, the live stream and the UI alike: its
        response model (``api.responses``), with a trace link when the server has a template."""
        template = self.settings.trace_link_template
        trace_id = event.get("trace_id")
        if template and isinstance(trace_id, str) and trace_id:
            span_id = event.get("span_id")
            event["trace_link"] = template.replace("{trace_id}", trace_id).replace(
                "{span_id}", span_id if isinstance(span_id, str) else ""
            )
        return responses.event(event).model_dump()

    # --- probes --------------------------------------------------------------------------

    async def probes_changed(
        self, probe_ids: Iterable[str] = (), announce: bool = True
    ) -> list[dict[str, Any]]:
        """Push probe lists to every agent whose list changed; tell the live stream and the
        other server processes. Returns the views of ``probe_ids`` (those that still exist).
        """
        ids = list(probe_ids)
        generation = self.hub.next_generation()
        now = time.time()
        loop = asyncio.get_running_loop()

        def load(session: Session) -> list[dict[str, Any]]:
            live = probe_store.live(session, now)
            # The agents' lists go out now, on the loop, while this thread builds the views.
            loop.call_soon_threadsafe(self.hub.push_probes, generation, live)
            changed = [p for p in (session.get(probe_store.ProbeRow, i) for i in ids) if p]
            return probe_store.to_dicts(session, changed, now)

        views = await self.db.read(load)
        self.metrics.probe_pushes_total += 1
        self.hub.publish_probes(views)
        if announce and self.cluster is not None:
            self.cluster.announce("probes", ids=ids)
        return views

    async def send_probes(self, connection: AgentConnection) -> None:
        generation = self.hub.next_generation()
        now = time.time()
        live = await self.db.read(lambda s: probe_store.live(s, now))
        connection.want_probes(generation, self.hub.probe_lists(live))

    def status_changed(self, probe_ids: list[str]) -> None:
        """Tell the live stream: at once, and what arrives while it is told goes in the
        next round (when a probe reaches 500 agents, 500 status messages arrive at once and
        one view of it is enough)."""
        if not probe_ids or not self.hub.subscribers:
            return
        self._dirty_probes.update(probe_ids)
        if self._flush is None or self._flush.done():
            self._flush = asyncio.create_task(self._flush_status())

    async def _flush_status(self) -> None:
        while self._dirty_probes:
            probe_ids, self._dirty_probes = list(self._dirty_probes), set()
            try:
                await self.publish_probe_views(probe_ids)
            except Exception:
                log.exception("publishing probe status failed")

    async def publish_probe_views(self, probe_ids: list[str]) -> None:
        now = time.time()

        def load(session: Session) -> list[dict[str, Any]]:
            changed = [p for p in (session.get(probe_store.ProbeRow, i) for i in probe_ids) if p]
            return probe_store.to_dicts(session, changed, now)

        self.hub.publish_probes(await self.db.read(load))

    async def publish_stored_events(self, event_ids: list[str]) -> None:
        """Send events another server process stored to this one's live stream."""
        if self.hub.subscribers:
            events = await self.db.read(lambda s: event_store.by_ids(s, event_ids))
            self.hub.publish_events(self.event_view(e) for e in events)

    async def policy_changed(self, service: str, announce: bool = True) -> protocol.AgentPolicy:
        """Push the stored policy of ``service`` to its agents (here and in other processes)."""
        policy = await self.db.read(lambda s: policies.get(s, service))
        self.hub.push_policy(service, policy)
        if announce and self.cluster is not None:
            self.cluster.announce("policy", service=service)
        return policy

    # --- credentials -------------------------------------------------------------------

    def credential_revoked(self, kind: str, credential_id: int, announce: bool = True) -> None:
        """A token or agent key was revoked (committed): end what uses it here, and tell the
        other server processes to do the same. Requests need no telling: every request
        looks its token up."""
        ended = self.hub.credential_revoked(kind, credential_id)
        if ended:
            log.info("%s %d revoked: %d connections ended", kind, credential_id, ended)
        if announce and self.cluster is not None:
            self.cluster.announce("revoked", credential=kind, id=credential_id)

    # --- agents --------------------------------------------------------------------------

    async def register(
        self, connection: AgentConnection
    ) -> tuple[protocol.AgentPolicy, Optional[str]]:
        """Store the instance as connected; return its policy and why it was last
        disconnected by a server (None if never)."""
        now = time.time()
        connection.last_message = now

        # With other server processes, a connected row may be theirs (here, the hub knows).
        local = connection.instance_id in self.hub.agents or self.cluster is None
        held_within = 0.0 if local else HELD_SECONDS

        def work(session: Session) -> tuple[protocol.AgentPolicy, Optional[str]]:
            reason = instance_store.register(session, connection.info, now, held_within)
            return policies.get(session, connection.info.service), reason

        registered = await self.db.write(work)
        self.hub.add_agent(connection)
        self.metrics.agent_connections_total += 1
        return registered

    async def unregister(self, connection: AgentConnection) -> None:
        self._health.pop(connection.instance_id, None)
        if self.hub.remove_agent(connection):
            now = time.time()
            reason = connection.ended_by_server
            if reason is not None:
                self.metrics.agents_disconnected_total += 1
                reason = f"{time.strftime('%Y-%m-%d %H:%M:%S', time.gmtime(now))} UTC: {reason}"
            await self.db.write(
                lambda s: instance_store.disconnect(s, connection.instance_id, now, reason)
            )

    async def ingest(
        self,
        connection: AgentConnection,
        events: list[dict[str, Any]],
        dropped: int,
        texts: Optional[list[str]] = None,
    ) -> None:
        """Store a batch in one transaction (the caller acks after this returns)."""
        info = connection.info
        origin = event_store.Origin(info.service, info.instance_id, info.version)
        stored = await self._events.submit(_EventBatch(origin, events, texts, dropped))
        self.metrics.events_received_total += len(events)
        self.metrics.events_stored_total += len(stored.events)
        self.metrics.events_dropped_by_agents_total += dropped
        if self.hub.subscribers:
            self.hub.publish_events(self.event_view(e) for e in stored.whole())
        if stored.events and self.cluster is not None:
            self.cluster.announce("events", ids=[e["id"] for e in stored.events])
        if stored.done_probes:
            await self.probes_changed(stored.done_probes)

    async def agent_health(self, connection: AgentConnection, health: protocol.AgentHealth) -> None:
        """Store what the agent says about itself, when it changed (it comes with every
        status message, and the last one at exit counts the events it abandoned)."""
        if self._health.get(connection.instance_id) == health:
            return
        self._health[connection.instance_id] = health
        await self.db.write(
            lambda s: instance_store.record_health(s, connection.instance_id, health)
        )

    async def statuses(
        self, connection: AgentConnection, statuses: list[protocol.ProbeStatus]
    ) -> None:
        changed = await self._statuses.submit((connection.instance_id, statuses))
        self.status_changed(changed)
        if changed and self.cluster is not None:
            self.cluster.announce("status", ids=changed)

    def _store_events(self, session: Session, items: list[_EventBatch]) -> list[event_store.Stored]:
        if not self.settings.sync_events and not self.db.is_sqlite:
            session.connection().exec_driver_sql("SET LOCAL synchronous_commit TO OFF")
        for batch in items:
            if batch.dropped:
                instance_store.add_dropped(session, batch.origin.instance_id, batch.dropped)
        return event_store.insert_many(session, list(items), time.time())

    # --- periodic work -------------------------------------------------------------------

    async def housekeeping(self) -> None:
        """Expire probes whose time is up; keep connected instances' last-seen fresh."""
        while True:
            await asyncio.sleep(self.settings.housekeeping_interval)
            try:
                await self._housekeeping_pass()
            except Exception:
                log.exception("housekeeping failed; retrying")

    async def _housekeeping_pass(self) -> None:
        now = time.time()
        fresh: list[str] = []
        if now - self._last_touch >= TOUCH_SECONDS:
            self._last_touch = now
            fresh = [
                c.instance_id
                for c in self.hub.agents.values()
                if now - c.last_message < protocol.INSTANCE_STALE_SECONDS
            ]

        tokens, keys = self.hub.credentials_in_use()

        def work(session: Session) -> tuple[list[str], list[tuple[str, int, str]]]:
            instance_store.touch(session, fresh, now)
            invalid = credentials.no_longer_valid(session, tokens, keys, now)
            return probe_store.expire_due(session, now), invalid

        expired, invalid = await self.db.write(work)
        for kind, credential_id, why in invalid:  # expired, or a revocation notice was missed
            self.hub.credential_revoked(kind, credential_id, why)
        if expired:
            await self.probes_changed(expired)

    async def retention(self) -> None:
        while True:
            try:
                await self.prune()
            except Exception:
                log.exception("retention pass failed; retrying")
            await asyncio.sleep(self.settings.retention_interval)

    async def prune(self) -> int:
        older_than = time.time() - self.settings.retention_days * 86400
        keep = self.settings.retention_events
        deleted = await self.db.write(lambda s: event_store.prune(s, older_than, keep))
        self.metrics.events_pruned_total += deleted
        return deleted


@dataclass
class _EventBatch(event_store.Batch):
    dropped: int = 0


def _store_statuses(
    session: Session, items: list[tuple[str, list[protocol.ProbeStatus]]]
) -> list[list[str]]:
    return probe_store.record_statuses(session, items, time.time())
