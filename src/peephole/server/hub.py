"""In-process fan-out: probe lists and policies to connected agents, events and probe
changes to people watching the live stream."""

from __future__ import annotations

import asyncio
import itertools
import logging
import uuid
from dataclasses import dataclass, field
from typing import Any, Iterable, Optional

from starlette.websockets import WebSocket

from peephole import protocol
from peephole.server.models import Probe
from peephole.server.store import probes as probe_store
from peephole.server.targeting import matches

log = logging.getLogger("peephole.server")

STREAM_QUEUE = 1000  # messages buffered per live-stream subscriber before the oldest go


class ProbeLists:
    """The live probes ready to send: specs built once, each distinct list encoded once."""

    def __init__(self, probes: Iterable[Probe]) -> None:
        self._items = [(p.target, probe_store.spec(p)) for p in sorted(probes, key=lambda p: p.id)]
        self._encoded: dict[tuple[int, ...], str] = {}

    def message_for(self, instance: dict[str, Any]) -> str:
        """The ``probes`` message for one instance."""
        chosen = tuple(i for i, (target, _) in enumerate(self._items) if matches(target, instance))
        text = self._encoded.get(chosen)
        if text is None:
            specs = [self._items[i][1] for i in chosen]
            text = self._encoded[chosen] = protocol.encode({"type": "probes", "probes": specs})
        return text


class AgentConnection:
    """One connected agent: its identity, what it was last sent, requests awaiting answers."""

    def __init__(self, websocket: WebSocket, info: protocol.InstanceInfo) -> None:
        self.websocket = websocket
        self.info = info
        self.last_message = 0.0  # epoch seconds of the last message received
        self.probes_sent: Optional[str] = None
        self.probes_generation = -1
        self._send_lock = asyncio.Lock()
        self._pending: dict[str, asyncio.Future[dict[str, Any]]] = {}

    @property
    def instance_id(self) -> str:
        return self.info.instance_id

    def target_view(self) -> dict[str, Any]:
        return {
            "instance_id": self.info.instance_id,
            "service": self.info.service,
            "version": self.info.version,
            "environment": self.info.environment,
            "tags": self.info.tags or {},
        }

    async def send(self, message: dict[str, Any]) -> None:
        async with self._send_lock:
            await self.websocket.send_text(protocol.encode(message))

    async def send_probes(self, generation: int, lists: ProbeLists) -> None:
        """Send this instance's probe list if it changed, never an older list after a newer."""
        text = lists.message_for(self.target_view())
        async with self._send_lock:
            if generation < self.probes_generation or text == self.probes_sent:
                return
            self.probes_generation = generation
            self.probes_sent = text
            await self.websocket.send_text(text)

    async def request(self, message: dict[str, Any], timeout: float) -> dict[str, Any]:
        """Send a request (``get_source``, ``list_files``) and wait for the agent's answer."""
        request_id = uuid.uuid4().hex
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[request_id] = future
        try:
            await self.send({**message, "request_id": request_id})
            return await asyncio.wait_for(future, timeout)
        finally:
            self._pending.pop(request_id, None)

    def answer(self, message: dict[str, Any]) -> None:
        future = self._pending.get(str(message.get("request_id")))
        if future is not None and not future.done():
            future.set_result(message)

    def closed(self) -> None:
        """Fail the requests still waiting for this agent (instead of waiting out a timeout)."""
        for future in self._pending.values():
            if not future.done():
                future.set_exception(ConnectionError("the agent disconnected"))


@dataclass(eq=False)
class Subscriber:
    """A person's live stream with its filters; a slow reader loses the oldest messages."""

    service: Optional[str] = None
    probe_id: Optional[str] = None
    type: Optional[str] = None
    queue: asyncio.Queue[dict[str, Any]] = field(
        default_factory=lambda: asyncio.Queue(STREAM_QUEUE)
    )
    dropped: int = 0

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
        if self.queue.full():
            self.queue.get_nowait()
            self.dropped += 1
        self.queue.put_nowait(message)


class Hub:
    """Who is connected to this server process, and pushing to them."""

    def __init__(self) -> None:
        self.agents: dict[str, AgentConnection] = {}
        self.subscribers: set[Subscriber] = set()
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

    async def push_probes(self, generation: int, probes: list[Probe]) -> None:
        lists = ProbeLists(probes)
        agents = list(self.agents.values())
        await asyncio.gather(*(self._quietly(c.send_probes(generation, lists), c) for c in agents))

    async def push_policy(self, service: str, policy: protocol.AgentPolicy) -> None:
        message = {"type": "policy", "config": policy.to_dict()}
        await asyncio.gather(*(self._quietly(c.send(message), c) for c in self.agents_of(service)))

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

    @staticmethod
    async def _quietly(send: Any, connection: AgentConnection) -> None:
        try:
            await send
        except Exception as exc:  # a closing connection; its own handler cleans up
            log.debug("push to %s failed: %s", connection.instance_id, exc)
