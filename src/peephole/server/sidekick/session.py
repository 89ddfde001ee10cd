"""One Sidekick agent's connection: a peephole :class:`AgentConnection` that speaks Sidekick.

The hub and broker treat it like any agent (probe lists, policies, source requests); this
class turns what they send into Sidekick requests, and what the agent sends into peephole
events and probe statuses:

- the agent's ``Filter…Request``s are answered with empty lists, then each probe is put
  with its own request (the filter path loses fields on both agents), and only then: a
  filter answer arriving after a put would wipe it;
- later probe lists are diffed against what the agent was sent: put, update or remove;
- ``GetConfigRequest`` gets the whole config map (Python replaces its config with it);
- hit limits and expiry are the server's (see :mod:`.requests`): a probe that is done or
  expired leaves the list and is removed from the agent.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Optional

from starlette.websockets import WebSocket

from peephole import messages, protocol
from peephole.agent.safe.redaction import Redactor
from peephole.server.broker import Broker
from peephole.server.connection import AgentConnection
from peephole.server.sidekick import events, requests, status

__all__ = ["STATUS_GRACE_SECONDS", "SidekickConnection"]

log = logging.getLogger("peephole.server")

FILTERS = {"FilterTracePointsRequest": "tracePoints", "FilterLogPointsRequest": "logPoints"}
READY_SECONDS = 2.0  # probes go out after the filter answers, or this long after connecting
STATUS_GRACE_SECONDS = 150.0  # the agent sends its status every 60 s: two may be late
NOT_AVAILABLE = "not available for Sidekick agents"
MAX_PATH = 1000  # the status column
PROBE_EVENTS = {"TracePointSnapshotEvent": protocol.TRACEPOINT, "LogPointEvent": protocol.LOGPOINT}
MAX_PENDING = 10_000  # requests awaiting the agent's answer


@dataclass
class Tracked:
    """A probe the agent was sent, and how it is doing there."""

    spec: protocol.ProbeSpec
    file_name: str  # as sent
    state: str = protocol.PENDING
    message: Optional[str] = "sent to the Sidekick agent"
    captures: int = 0
    failed_hits: int = 0
    listed: bool = False  # seen in the agent's status list
    refused: bool = False  # the agent (or the translation) said no: a listing does not heal it


def config_map(policy: protocol.AgentPolicy) -> dict[str, Any]:
    """Every key the agents read (a missing one falls back to its default on Python)."""
    limits = protocol.Limits()
    return {
        "maxFrames": limits.max_frames,
        "maxExpandFrames": limits.frames_with_locals,
        "maxProperties": limits.max_fields,
        "maxParseDepth": limits.max_depth,
        "errorCollectionEnable": policy.capture_exceptions,
        "errorCollectionEnableCaptureFrame": policy.capture_exceptions,
        "silent": False,
    }


class SidekickConnection(AgentConnection):
    """A connected Sidekick agent, driven by the hub like a peephole agent."""

    def __init__(
        self,
        websocket: WebSocket,
        info: protocol.InstanceInfo,
        broker: Broker,
        runtime: str,
        sidekick_id: str,
        abort: Optional[Callable[[], None]] = None,
    ) -> None:
        super().__init__(websocket, info, (), broker.settings.send_timeout, abort)
        self.broker = broker
        self.runtime = runtime
        self.sidekick_id = sidekick_id  # the agent's own instance id (ours may be shortened)
        self.policy = protocol.AgentPolicy()
        self.redactor = Redactor()
        self.tracked: dict[str, Tracked] = {}
        self.placed: set[str] = set()  # probes the agent holds (puts it was sent)
        self.last_frame = time.time()
        self._requests: dict[str, str] = {}  # request id -> probe id
        self._filtered: set[str] = set()
        self._ready = False
        self._latest: Optional[dict[str, str]] = None  # the last probe list wanted
        self._tasks: set[asyncio.Task[None]] = set()
        self.ended = asyncio.Event()  # set once unregistered: a reconnect waits for it

    # --- what the hub and broker send ----------------------------------------------------

    def set_policy(self, policy: protocol.AgentPolicy) -> None:
        self.policy = policy
        self.redactor = Redactor(policy.redact_names, policy.allow_names, policy.redact_patterns)

    def send(self, message: Mapping[str, Any]) -> None:
        """Sidekick frames go out; peephole messages are translated or answered here."""
        kind = message.get("type")
        if kind in ("Request", "Response"):
            super().send(message)
        elif kind == "policy":
            self.set_policy(protocol.AgentPolicy.from_dict(message.get("config")))
            super().send(requests.request("UpdateConfigRequest", config=config_map(self.policy)))
        elif kind == "get_source":
            request_id, path = message.get("request_id"), str(message.get("path"))
            self.answer(
                messages.Source(
                    type="source", request_id=request_id, path=path, error=NOT_AVAILABLE
                )
            )
        elif kind == "list_files":
            self.answer(
                messages.Files(type="files", request_id=message.get("request_id"), files=[])
            )

    def start(self) -> asyncio.Task[None]:
        """Start the writer; probes wait for the agent's filter requests (or a deadline)."""
        writer = self.start_writer()
        loop = asyncio.get_running_loop()
        loop.call_later(READY_SECONDS, self._make_ready)
        return writer

    def _make_ready(self) -> None:
        if not self._ready:
            self._ready = True
            self._resend()

    def _resend(self) -> None:
        """Put every probe again (the agent has none after a filter answer); their events
        are still taken meanwhile; answers to the earlier requests no longer count."""
        self.sent = {}
        self.placed.clear()
        self._requests.clear()
        for tracked in self.tracked.values():
            tracked.listed = False  # its next list is empty until the puts arrive
        if self._wanted is None:
            self._wanted = self._latest
        self._wake.set()

    def _probe_messages(self, wanted: dict[str, str]) -> list[str]:
        """The requests that give the agent ``wanted`` (probe id -> encoded spec)."""
        self._latest = wanted
        if not self._ready:
            return []
        previous, self.sent, self._synced = self.sent, wanted, True
        out: list[dict[str, Any]] = []
        for probe_id in previous:
            if probe_id not in wanted:
                out.extend(self._forget(probe_id))
        refused = []
        for probe_id, text in wanted.items():
            if previous.get(probe_id) == text:
                continue
            spec = protocol.ProbeSpec.from_dict(json.loads(text))
            try:
                out.extend(self._place(spec))
            except requests.Untranslatable as exc:
                out.extend(self._forget(probe_id))
                refused.append(
                    protocol.ProbeStatus(spec.id, protocol.ERROR, str(exc), spec.version)
                )
        if refused:
            self._later(self.broker.statuses(self, refused))
        return [protocol.encode(frame) for frame in out]

    def _place(self, spec: protocol.ProbeSpec) -> list[dict[str, Any]]:
        old = self.tracked.get(spec.id)
        frames = []
        held = old is not None and spec.id in self.placed
        # an update keeps what the agent has: not a probe it failed (Python keeps those listed)
        if (
            held
            and old is not None
            and not old.refused
            and (old.spec.file, old.spec.line) == (spec.file, spec.line)
        ):
            frame = requests.update(spec, self.runtime)
        else:
            frame = requests.put(spec, self.runtime)
            if held:
                frames.extend(self._forget(spec.id))
        self.tracked[spec.id] = Tracked(spec, frame["fileName"])
        self.placed.add(spec.id)
        if len(self._requests) >= MAX_PENDING:  # never answered: the oldest is forgotten
            del self._requests[next(iter(self._requests))]
        self._requests[frame["id"]] = spec.id
        return [*frames, frame]

    def _forget(self, probe_id: str) -> list[dict[str, Any]]:
        gone = self.tracked.pop(probe_id, None)
        if gone is None or probe_id not in self.placed:
            return []
        self.placed.discard(probe_id)
        return [requests.remove(probe_id, gone.spec.kind)]

    def _later(self, work: Any) -> None:
        """Run ``work`` in the background until the connection closes; a failure is logged."""
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Future[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.warning(
                "Sidekick agent %s: background work failed",
                self.instance_id,
                exc_info=task.exception(),
            )

    def closed(self) -> None:
        """Also cancel the background work still running for this connection."""
        super().closed()
        for task in list(self._tasks):
            task.cancel()

    # --- what the agent sends ------------------------------------------------------------

    async def handle(self, frame: dict[str, Any]) -> None:
        """One frame from the agent; names it does not know are ignored, as agents do."""
        self.last_frame = time.time()
        kind, name = frame.get("type"), str(frame.get("name") or "")
        if kind == "Request":
            self._answer(name, frame)
        elif kind == "Response":
            probe_id = self._requests.pop(str(frame.get("requestId")), None)
            change = status.response_change(frame, self.redactor)
            tracked = self.tracked.get(probe_id or "")
            # Python reports a line it cannot take before it answers the put with a success:
            # a probe refused since its put was sent (each put is tracked anew) stays refused
            if tracked is not None and not (tracked.refused and change.state == protocol.ACTIVE):
                await self._apply({tracked.spec.id: change})
        elif kind == "Event":
            await self._event(name, frame)

    def _answer(self, name: str, frame: dict[str, Any]) -> None:
        answer: dict[str, Any] = {
            "type": "Response",
            "name": name.replace("Request", "Response"),
            "source": "Broker",
            "requestId": frame.get("id"),
            "erroneous": False,
            "errorCode": 0,
            "client": requests.CLIENT,
            "applicationInstanceId": self.sidekick_id,
            "applicationName": self.info.service,
        }
        if name in FILTERS:
            super().send({**answer, FILTERS[name]: []})
            self._filtered.add(name)
            if len(self._filtered) == len(FILTERS):  # both answered: (re)put every probe
                self._filtered.clear()
                self._ready = True
                self._resend()
        elif name == "GetConfigRequest":
            super().send({**answer, "config": config_map(self.policy)})
        else:
            log.debug("Sidekick agent %s: ignoring request %r", self.instance_id, name)

    async def _event(self, name: str, frame: dict[str, Any]) -> None:
        if name in PROBE_EVENTS:
            tracked = self.tracked.get(events.probe_id(frame) or "")
            # not a probe this connection holds, or one of the other kind: never stored
            if tracked is None or tracked.spec.kind != PROBE_EVENTS[name]:
                self.broker.metrics.events_refused_total += 1
                return
            spec = tracked.spec
            if name == "LogPointEvent":
                event = events.log(frame, spec, self.redactor)
            else:
                event = events.snapshot(frame, spec, self.runtime, self.redactor)
            tracked.captures += 1
            await self._store(event)
            state = tracked.state if tracked.refused else protocol.ACTIVE
            await self._apply({spec.id: status.Change(state, None)})
        elif name == "ErrorStackSnapshotEvent":
            if self.policy.capture_exceptions:
                await self._store(events.exception(frame, self.runtime, self.redactor))
        elif name == "ApplicationStatusEvent":
            await self._listing(frame)
        elif name in status.EXCEPTION_NOTICES:  # about exception capture, not a probe
            log.info(
                "Sidekick agent %s: %s %s",
                self.instance_id,
                name,
                status.error_text(frame, self.redactor),
            )
        else:
            change = status.event_change(name, frame, self.redactor)
            if change is not None:
                found = self._located(status.event_kind(name), *status.where(frame))
                await self._apply(dict.fromkeys(found, change))

    async def _store(self, event: dict[str, Any]) -> None:
        """Store ``event`` once it passes the checks a peephole agent's events get."""
        try:
            messages.agent_message({"type": "events", "seq": 0, "events": [event]})
        except protocol.ProtocolError as exc:
            self.broker.metrics.events_refused_total += 1
            log.warning("Sidekick agent %s: event refused: %s", self.instance_id, exc)
            return
        await self.broker.ingest(self, [event], 0)

    def _located(self, kind: Optional[str], file: str, line: Any) -> list[str]:
        """The probes an event names by file and line (failure events carry no id)."""
        return [
            probe_id
            for probe_id, t in self.tracked.items()
            if t.spec.line == line
            and (kind is None or t.spec.kind == kind)
            and status.same_file(t.file_name, file)
        ]

    async def _listing(self, frame: dict[str, Any]) -> None:
        held = status.listed(frame)
        if held is None:
            return
        changes = {}
        for probe_id, tracked in self.tracked.items():
            if probe_id in held:
                tracked.listed = True
                if not tracked.refused:
                    state = protocol.DISABLED if held[probe_id] else protocol.ACTIVE
                    changes[probe_id] = status.Change(state, None)
            elif tracked.listed and not tracked.refused:
                message = "the agent no longer has this probe (it removed it itself)"
                changes[probe_id] = status.Change(protocol.ERROR, message)
        await self._apply(changes)

    async def _apply(self, changes: dict[str, status.Change]) -> None:
        """Record ``changes`` and store the statuses that differ from what was stored."""
        reports = []
        for probe_id, change in changes.items():
            tracked = self.tracked.get(probe_id)
            if tracked is None:
                continue
            before = (tracked.state, tracked.message, tracked.failed_hits)
            if change.failed_hit:
                tracked.failed_hits += 1
                tracked.message = change.message
            if change.state is not None:
                tracked.state, tracked.message = change.state, change.message
                tracked.refused = change.state == protocol.ERROR
            if (tracked.state, tracked.message, tracked.failed_hits) != before:
                reports.append(self._status(tracked))
        if reports:
            await self.broker.statuses(self, reports)

    def _status(self, tracked: Tracked) -> protocol.ProbeStatus:
        return protocol.ProbeStatus(
            probe_id=tracked.spec.id,
            state=tracked.state,
            message=tracked.message,
            version=tracked.spec.version,
            path=tracked.file_name[:MAX_PATH],
            hits=tracked.captures + tracked.failed_hits,
            captures=tracked.captures,
            condition_errors=tracked.failed_hits,
        )

    def keep_fresh(self, now: float) -> None:
        """Count the connection as heard from while the agent's 60 s status is not overdue
        (peephole calls an instance stale after 60 s of silence; the socket's pings, every
        20 s under ``peephole server``, end a dead connection sooner)."""
        if now - self.last_frame < STATUS_GRACE_SECONDS:
            self.last_message = now
