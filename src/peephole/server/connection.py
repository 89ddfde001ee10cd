"""One connected agent, and everything the server sends it.

Nothing an API request awaits ever writes to an agent's socket. Messages go to the
connection's bounded outbox and one writer task per connection sends them, each within the
send deadline. An agent that stops reading (SIGSTOP, an attached debugger, a frozen VM)
fills its socket, then the deadline passes or its outbox fills: it is disconnected, and the
reason is stored so the agent (in its next ``welcome``) and people (on the instance) see it.

Probe changes are not queued one by one: the connection holds the probes its instance
should have, and the writer sends only what differs from what it sent before (a
``probes_delta``, to agents that understand it), in messages an agent accepts
(``protocol.MAX_MESSAGE_BYTES``). A burst of edits while an agent is slow costs one message.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections import deque
from typing import Any, Callable, Iterable, Mapping, Optional

from starlette.websockets import WebSocket

from peephole import messages, protocol
from peephole.server.models import ProbeRow
from peephole.server.store import probes as probe_store
from peephole.server.targeting import target_matches

__all__ = ["POLICY_VIOLATION", "AgentConnection", "ProbeLists", "close_reason"]

log = logging.getLogger("peephole.server")

OUTBOX_MESSAGES = 1000  # queued messages (acks, answers, policies) before an agent is too slow
ENVELOPE_BYTES = 1024  # room left in a message for its type and fields
POLICY_VIOLATION = 1008
MAX_CLOSE_REASON_BYTES = 120  # a WebSocket close reason holds 123 bytes of UTF-8


def close_reason(reason: str) -> str:
    """``reason`` cut to what a close frame holds, in bytes (a character cut can overflow)."""
    return reason.encode()[:MAX_CLOSE_REASON_BYTES].decode(errors="ignore")


class ProbeLists:
    """The live probes, each encoded once, ready to pick per instance.

    ``encoded`` caches specs by probe id and version across pushes (every edit bumps the
    version): a change re-encodes one probe, not all of them. It keeps only live probes.
    """

    def __init__(
        self, probes: Iterable[ProbeRow], encoded: Optional[dict[tuple[str, int], str]] = None
    ) -> None:
        cache = {} if encoded is None else encoded
        fresh: dict[tuple[str, int], str] = {}
        self._items = []
        for probe in sorted(probes, key=lambda p: p.id):
            key = (probe.id, probe.version)
            text = fresh[key] = cache.get(key) or protocol.encode(probe_store.spec(probe))
            self._items.append((probe.target, probe.id, text))
        cache.clear()
        cache.update(fresh)

    def for_instance(self, instance: dict[str, Any]) -> dict[str, str]:
        """Probe id -> encoded spec, for the probes that target ``instance``."""
        return {pid: text for target, pid, text in self._items if target_matches(target, instance)}


def full_message(specs: dict[str, str]) -> tuple[str, int]:
    """A ``probes`` message (:class:`peephole.messages.Probes`, written as text around specs
    encoded once) with as many specs as fit; returns it and how many were left out."""
    budget = protocol.MAX_MESSAGE_BYTES - ENVELOPE_BYTES
    chosen: list[str] = []
    for text in specs.values():
        if len(text) + 1 > budget:
            break
        budget -= len(text) + 1
        chosen.append(text)
    return '{"type":"probes","probes":[' + ",".join(chosen) + "]}", len(specs) - len(chosen)


def delta_messages(changed: list[str], removed: list[str], keep: Optional[list[str]]) -> list[str]:
    """``probes_delta`` messages (:class:`peephole.messages.ProbesDelta`, written as text)
    carrying ``changed`` specs, each under the message limit.

    The first message carries ``remove`` and ``keep`` (ids only: 20 bytes a probe, so a
    service would need some 200,000 live probes to overflow it), the specs follow in as many
    messages as they need.
    """
    head = {"type": "probes_delta", "remove": removed}
    if keep is not None:
        head["keep"] = keep
    prefix = json.dumps(head, separators=(",", ":"))[:-1] + ',"set":['
    messages: list[str] = []
    batch: list[str] = []
    room = protocol.MAX_MESSAGE_BYTES - len(prefix) - 2
    for text in changed:
        if batch and len(text) + 1 > room:
            messages.append(prefix + ",".join(batch) + "]}")
            prefix, batch = '{"type":"probes_delta","remove":[],"set":[', []
            room = protocol.MAX_MESSAGE_BYTES - len(prefix) - 2
        batch.append(text)
        room -= len(text) + 1
    if batch or not messages:
        messages.append(prefix + ",".join(batch) + "]}")
    return messages


class AgentConnection:
    """One connected agent: who it is, its outbox and writer, requests awaiting answers."""

    def __init__(
        self,
        websocket: WebSocket,
        info: protocol.InstanceInfo,
        features: Iterable[str] = (),
        send_timeout: float = 10.0,
        abort: Optional[Callable[[], None]] = None,
    ) -> None:
        self.websocket = websocket
        self.info = info
        self.deltas = protocol.PROBE_DELTA in features
        self.send_timeout = send_timeout
        self.last_message = 0.0  # epoch seconds of the last message received
        self.key_id: Optional[int] = None  # the agent key it said hello with
        self.kicked: Optional[str] = None  # why the server ended this connection
        self.sent: dict[str, str] = {}  # probe id -> spec as last sent
        self.ever_sent: set[str] = set()  # probes whose events this connection may send
        self._synced = False
        self._wanted: Optional[dict[str, str]] = None
        self._wanted_generation = -1
        self._closing: Optional[tuple[int, str]] = None
        self._outbox: deque[str] = deque()
        self._wake = asyncio.Event()
        self._abort = abort
        self._reader: Optional[asyncio.Task[Any]] = None
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

    # --- what others call (never blocks) -----------------------------------------------

    def send(self, message: Mapping[str, Any]) -> None:
        """Queue ``message``; an agent whose outbox is full is disconnected instead."""
        if self.kicked is not None or self._closing is not None:
            return
        if len(self._outbox) >= OUTBOX_MESSAGES:
            self.kick(f"did not read {OUTBOX_MESSAGES} queued messages")
            return
        self._outbox.append(protocol.encode(message))
        self._wake.set()

    def want_probes(self, generation: int, lists: ProbeLists) -> None:
        """The probes this instance should have now (a newer generation always wins)."""
        if generation < self._wanted_generation:
            return
        self._wanted_generation = generation
        self._wanted = lists.for_instance(self.target_view())
        self.ever_sent.update(self._wanted)
        self._wake.set()

    def close(self, code: int, reason: str) -> None:
        """Send what is queued, then ``error`` and a close frame with ``reason``; the
        reason is also what the instance shows (``last_disconnect``)."""
        if self._closing is None and self.kicked is None:
            self._closing = (code, reason)
            self._wake.set()

    @property
    def ended_by_server(self) -> Optional[str]:
        """Why the server ended this connection (None: the agent left, or it broke)."""
        return self.kicked or (self._closing[1] if self._closing else None)

    def kick(self, reason: str) -> None:
        """End the connection now, without waiting for the agent to read anything."""
        if self.kicked is not None:
            return
        self.kicked = reason
        log.warning("agent %s (%s) disconnected: %s", self.instance_id, self.info.service, reason)
        if self._abort is not None:
            self._abort()  # the transport is gone: the reader gets a disconnect
        elif self._reader is not None:
            self._reader.cancel()
        self._wake.set()

    async def request(self, message: Mapping[str, Any], timeout: float) -> dict[str, Any]:
        """Send a request (``get_source``, ``list_files``) and wait for the agent's answer."""
        request_id = uuid.uuid4().hex
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[request_id] = future
        try:
            self.send({**message, "request_id": request_id})
            if self.kicked is not None:
                raise ConnectionError(f"the agent was disconnected: {self.kicked}")
            return await asyncio.wait_for(future, timeout)
        finally:
            self._pending.pop(request_id, None)

    def answer(self, message: messages.Source | messages.Files) -> None:
        future = self._pending.get(str(message.get("request_id")))
        if future is not None and not future.done():
            future.set_result(dict(message))

    def closed(self) -> None:
        """Fail the requests still waiting for this agent (instead of waiting out a timeout)."""
        for future in self._pending.values():
            if not future.done():
                future.set_exception(ConnectionError("the agent disconnected"))
        self._wake.set()

    # --- the writer ----------------------------------------------------------------------

    def start_writer(self) -> asyncio.Task[None]:
        """Start sending; the calling task is the reader (cancelled on a kick when the server
        cannot abort the transport itself)."""
        self._reader = asyncio.current_task()
        return asyncio.create_task(self._write_forever())

    async def _write_forever(self) -> None:
        try:
            while self.kicked is None:
                await self._wake.wait()
                self._wake.clear()
                while self.kicked is None and (text := self._next()) is not None:
                    if not await self._deliver(text):
                        return
                if self._closing is not None and self.kicked is None:
                    await self._close_now(*self._closing)
                    return
        except Exception as exc:  # the socket closed under us; the reader notices
            log.debug("writer of %s stopped: %s", self.instance_id, exc)

    async def _deliver(self, text: str) -> bool:
        try:
            await asyncio.wait_for(self.websocket.send_text(text), self.send_timeout)
        except asyncio.TimeoutError:
            self.kick(f"did not read for {self.send_timeout:g} s (send deadline)")
            return False
        return True

    async def _close_now(self, code: int, reason: str) -> None:
        reason = close_reason(reason)
        if await self._deliver(protocol.encode(messages.Error(type="error", reason=reason))):
            try:
                await asyncio.wait_for(self.websocket.close(code, reason), self.send_timeout)
            except asyncio.TimeoutError:
                self.kick(reason)

    def _next(self) -> Optional[str]:
        if not self._outbox and self._wanted is not None:
            wanted, self._wanted = self._wanted, None
            self._outbox.extend(self._probe_messages(wanted))
        return self._outbox.popleft() if self._outbox else None

    def _probe_messages(self, wanted: dict[str, str]) -> list[str]:
        """What to send so the agent has ``wanted``; records it as sent."""
        first = not self._synced
        if not first and wanted == self.sent:
            return []
        previous, self.sent, self._synced = self.sent, wanted, True
        if not self.deltas:
            message, withheld = full_message(wanted)
            if withheld:
                log.warning(
                    "instance %s: %d probes left out, its list is over %d bytes",
                    self.instance_id,
                    withheld,
                    protocol.MAX_MESSAGE_BYTES,
                )
            return [message]
        changed = [text for pid, text in wanted.items() if previous.get(pid) != text]
        removed = [pid for pid in previous if pid not in wanted]
        return delta_messages(changed, removed, list(wanted) if first else None)
