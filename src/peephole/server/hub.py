"""In-process fan-out: probe lists and policies to connected agents, events and probe
changes to people watching the live stream."""

from __future__ import annotations

import asyncio
import itertools
import logging
from dataclasses import dataclass, field
from typing import Any, Iterable, Optional

from peephole import protocol
from peephole.server.connection import POLICY_VIOLATION, AgentConnection, ProbeLists
from peephole.server.models import ProbeRow

__all__ = ["Hub", "Subscriber"]

log = logging.getLogger("peephole.server")

STREAM_QUEUE = 1000  # messages buffered per live-stream subscriber before the oldest go


@dataclass(eq=False)
class Subscriber:
    """A person's live stream with its filters; a slow reader loses the oldest messages.

    ``token_id`` is the token it was opened with: when that is revoked or expires,
    housekeeping or a revocation notice ends the stream with
    ``{"type": "error", "reason": ...}``."""

    service: Optional[str] = None
    probe_id: Optional[str] = None
    type: Optional[str] = None
    queue: asyncio.Queue[dict[str, Any]] = field(
        default_factory=lambda: asyncio.Queue(STREAM_QUEUE)
    )
    dropped: int = 0
    token_id: Optional[int] = None
    ended: Optional[str] = None  # why the server ends this stream

    def end(self, reason: str) -> None:
        """Stop sending anything but ``reason`` (an ``error`` message), then close."""
        if self.ended is None:
            self.ended = reason
            self.offer({"type": "error", "reason": reason})

    def wants_event(self, event: dict[str, Any]) -> bool:
        return (
            (self.service is None or event.get("service") == self.service)
            and (self.probe_id is None or event.get("probe_id") == self.probe_id)
            and (self.type is None or event.get("type") == self.type)
        )

    def wants_probe(self, probe: dict[str, Any]) -> bool:
        return (
            (self.service is None or probe["target"].get("service") == self.service)
            and (self.probe_id is None or probe["id"] == self.probe_id)
            and (self.type is None or self.type == "probe")
        )

    def offer(self, message: dict[str, Any]) -> None:
        if self.ended is not None and message.get("type") != "error":
            return
        if self.queue.full():
            self.queue.get_nowait()
            self.dropped += 1
        self.queue.put_nowait(message)


class Hub:
    """Who is connected to this server process, and pushing to them."""

    def __init__(self) -> None:
        self.agents: dict[str, AgentConnection] = {}
        self.subscribers: set[Subscriber] = set()
        self.unauthenticated = 0  # agent connections that have not said hello yet
        self._encoded: dict[tuple[str, int], str] = {}  # see ProbeLists
        self._generations = itertools.count()

    def next_generation(self) -> int:
        """Take a number before reading probes from the database; newer reads win."""
        return next(self._generations)

    def add_agent(self, connection: AgentConnection) -> None:
        self.agents[connection.instance_id] = connection

    def remove_agent(self, connection: AgentConnection) -> bool:
        """Forget ``connection``; False when a newer connection of the instance replaced it."""
        if self.agents.get(connection.instance_id) is connection:
            del self.agents[connection.instance_id]
            return True
        return False

    def agents_of(self, service: str) -> list[AgentConnection]:
        found = [c for c in self.agents.values() if c.info.service == service]
        found.sort(key=lambda c: c.last_message, reverse=True)
        return found

    def credential_revoked(self, kind: str, credential_id: int, why: str = "revoked") -> int:
        """End the streams and agent connections that use a credential no longer valid
        (``why``: revoked or expired); return how many."""
        ended = 0
        if kind == "token":
            for subscriber in list(self.subscribers):
                if subscriber.token_id == credential_id:
                    subscriber.end(f"token {why}")
                    ended += 1
        elif kind == "agent_key":
            for connection in list(self.agents.values()):
                if connection.key_id == credential_id:
                    connection.close(POLICY_VIOLATION, f"agent key {why}")
                    ended += 1
        return ended

    def credentials_in_use(self) -> tuple[set[int], set[int]]:
        """The ids of the tokens behind open streams and of the keys of connected agents."""
        tokens = {s.token_id for s in self.subscribers if s.token_id is not None}
        keys = {c.key_id for c in self.agents.values() if c.key_id is not None}
        return tokens, keys

    def probe_lists(self, probes: list[ProbeRow]) -> ProbeLists:
        return ProbeLists(probes, self._encoded)

    def push_probes(self, generation: int, probes: list[ProbeRow]) -> None:
        """Give every agent its new probe list (sent by each agent's writer, never awaited)."""
        lists = self.probe_lists(probes)
        for connection in list(self.agents.values()):
            connection.want_probes(generation, lists)

    def push_policy(self, service: str, policy: protocol.AgentPolicy) -> None:
        message = {"type": "policy", "config": policy.to_dict()}
        for connection in self.agents_of(service):
            connection.send(message)

    def publish_events(self, events: Iterable[dict[str, Any]]) -> None:
        if not self.subscribers:
            return
        for event in events:
            for subscriber in self.subscribers:
                if subscriber.wants_event(event):
                    subscriber.offer({"type": "event", "event": event})

    def publish_probes(self, probes: Iterable[dict[str, Any]]) -> None:
        for probe in probes:
            for subscriber in self.subscribers:
                if subscriber.wants_probe(probe):
                    subscriber.offer({"type": "probe", "probe": probe})
