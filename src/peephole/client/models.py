"""Typed results of the REST API.

Each model declares the fields of one response object of the server's OpenAPI document
(``/openapi.json``, built from ``peephole.server.api.responses``): ``field_names`` says which
fields it reads from a given object, and ``tests/contract`` fails when the server sends a
field the model does not read or leaves out one it reads. At run time ``from_dict`` stays
tolerant (fields it does not know are ignored, so a newer server does not break an older
client) and keeps the JSON in ``raw`` for ``--json`` output.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Generic, TypeVar

__all__ = [
    "AgentKey",
    "AuditEntry",
    "Event",
    "ExceptionGroup",
    "ExceptionGroupDetail",
    "Files",
    "Health",
    "Instance",
    "Limits",
    "Model",
    "NewAgentKey",
    "NewProbe",
    "NewToken",
    "Page",
    "Policy",
    "Probe",
    "ProbeInstanceStatus",
    "Service",
    "Source",
    "Target",
    "Token",
    "User",
]

T = TypeVar("T")
M = TypeVar("M", bound="Model")


class Model:
    """Base of the models: construction from a dict, and the dict it came from (``raw`` is
    not a dataclass field, so subclasses may declare fields without defaults)."""

    raw: dict[str, Any]

    def __post_init__(self) -> None:
        self.raw = {}

    @classmethod
    def field_names(cls, data: Mapping[str, Any]) -> frozenset[str]:
        """The fields this model reads from ``data``: all of its dataclass fields."""
        return frozenset(f.name for f in dataclasses.fields(cls))  # type: ignore[arg-type]

    @classmethod
    def from_dict(cls: type[M], data: dict[str, Any]) -> M:
        known = cls.field_names(data)
        model = cls(**{k: v for k, v in data.items() if k in known})
        model.raw = data
        return model

    def to_dict(self) -> dict[str, Any]:
        """The server's JSON for this object (what ``--json`` prints)."""
        return self.raw or dataclasses.asdict(self)  # type: ignore[call-overload]


@dataclass
class Health(Model):
    status: str = ""
    version: str = ""


@dataclass
class User(Model):
    name: str = ""
    role: str = ""
    id: int | None = None  # the token's id
    expires_at: float | None = None  # when the token stops working (None: never)


@dataclass
class Service(Model):
    name: str
    instances: int = 0  # connected now
    versions: list[str] = field(default_factory=list)
    environments: list[str] = field(default_factory=list)
    last_seen: float | None = None


@dataclass
class Instance(Model):
    instance_id: str
    service: str = ""
    version: str | None = None
    environment: str | None = None
    tags: dict[str, str] = field(default_factory=dict)
    host: str = ""
    pid: int = 0
    runtime: str = ""
    agent_version: str = ""
    started_at: float | None = None
    last_seen: float | None = None
    connected: bool = False
    dropped: int = 0  # events its agent dropped (full buffer) and said so
    last_disconnect: str | None = None  # why the server last closed its connection
    internal_errors: int = 0  # failures inside its agent, caught and counted
    last_internal_error: str | None = None
    abandoned_events: int = 0  # events its agent could not send before the process exited

    def agent_problems(self) -> str | None:
        """ "agent internal errors: N, last: ...; M events abandoned at exit", or None."""
        parts = []
        if self.internal_errors:
            last = f", last: {self.last_internal_error}" if self.last_internal_error else ""
            parts.append(f"agent internal errors: {self.internal_errors}{last}")
        if self.abandoned_events:
            parts.append(f"{self.abandoned_events} events abandoned at exit")
        return "; ".join(parts) or None


@dataclass
class Target(Model):
    """Which instances a probe is for; empty fields match everything."""

    service: str | None = None
    version: str | None = None
    environment: str | None = None
    tags: dict[str, str] = field(default_factory=dict)
    instances: list[str] = field(default_factory=list)

    def describe(self) -> str:
        parts = [f"service {self.service}" if self.service else ""]
        parts.append(f"version {self.version}" if self.version else "")
        parts.append(f"env {self.environment}" if self.environment else "")
        parts.extend(f"{k}={v}" for k, v in sorted(self.tags.items()))
        if self.instances:
            parts.append("instances " + ",".join(self.instances))
        return ", ".join(p for p in parts if p) or "all services"

    def to_request(self) -> dict[str, Any]:
        return {
            "service": self.service,
            "version": self.version,
            "environment": self.environment,
            "tags": dict(self.tags),
            "instances": list(self.instances),
        }


@dataclass
class Limits(Model):
    """What a probe captures at most (``peephole.protocol.Limits``)."""

    max_depth: int
    max_items: int
    max_string: int
    max_fields: int
    max_bytes: int
    max_frames: int
    frames_with_locals: int


@dataclass
class ProbeInstanceStatus(Model):
    instance_id: str
    state: str
    message: str | None = None
    hits: int = 0
    captures: int = 0
    drops: int = 0
    condition_errors: int = 0
    time_ns: int = 0
    path: str | None = None
    version: int = 0
    updated_at: float | None = None


@dataclass
class Probe(Model):
    id: str
    kind: str
    file: str
    line: int
    condition: str | None = None
    watches: list[str] = field(default_factory=list)
    template: str | None = None
    level: str = "info"
    logger: str | None = None
    hit_limit: int | None = None
    expires_at: float | None = None
    rate: float | None = None
    enabled: bool = True
    version: int = 1
    limits: Limits | None = None
    target: Target = field(default_factory=Target)
    created_at: float | None = None
    created_by: str | None = None
    updated_at: float | None = None
    state: str = ""
    captures: int = 0  # events produced, against ``hit_limit``; statuses count line hits too
    statuses: list[ProbeInstanceStatus] = field(default_factory=list)
    summary: str = ""

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Probe:
        probe = super().from_dict(data)
        probe.target = Target.from_dict(data.get("target") or {})
        limits = data.get("limits")
        probe.limits = Limits.from_dict(limits) if isinstance(limits, dict) else None
        probe.statuses = [ProbeInstanceStatus.from_dict(s) for s in data.get("statuses") or ()]
        return probe

    @property
    def location(self) -> str:
        return f"{self.file}:{self.line}"

    def errors(self) -> list[ProbeInstanceStatus]:
        """The instances where the agent could not install this version of the probe, and
        why (an older version's error, say the condition an edit just fixed, is history)."""
        return [
            s
            for s in self.statuses
            if s.state == "error" and (not s.version or s.version >= self.version)
        ]


@dataclass
class NewProbe:
    """What ``create_probe`` sends; ``None`` fields take the server's defaults."""

    kind: str
    file: str
    line: int
    template: str | None = None  # logpoints
    condition: str | None = None
    watches: list[str] = field(default_factory=list)
    level: str = "info"
    logger: str | None = None
    hit_limit: int | None = None
    expire_seconds: float | None = None
    rate: float | None = None
    enabled: bool = True
    limits: dict[str, Any] | None = None
    target: Target = field(default_factory=Target)

    def to_request(self) -> dict[str, Any]:
        body = dataclasses.asdict(self)
        body["target"] = self.target.to_request()
        return body


_AT_PROBE = ("probe_id", "probe_version", "file", "line")  # events of a probe


@dataclass
class Event(Model):
    """A snapshot, log line or exception: one class for the three, whose ``field_names`` say
    which fields each type has (the others keep their defaults)."""

    ENVELOPE: ClassVar[tuple[str, ...]] = (
        "id",
        "type",
        "time",
        "service",
        "instance_id",
        "thread",
        "trace_id",
        "span_id",
        "trace_link",
    )
    PAYLOAD: ClassVar[dict[str, tuple[str, ...]]] = {
        "snapshot": (*_AT_PROBE, "frames", "watches", "size", "cut"),
        "log": (*_AT_PROBE, "level", "message", "errors"),
        "exception": (
            *("fingerprint", "exc_type", "message", "origin", "snapshot", "count"),
            *("first_time", "last_time", "frames", "chain", "size", "cut"),
        ),
    }

    id: str
    type: str
    time: float = 0.0
    service: str | None = None
    instance_id: str | None = None
    probe_id: str | None = None
    probe_version: int | None = None
    file: str | None = None
    line: int | None = None
    thread: str | None = None
    trace_id: str | None = None
    span_id: str | None = None
    trace_link: str | None = None
    size: int = 0  # bytes captured
    frames: list[dict[str, Any]] = field(default_factory=list)  # snapshots, exceptions
    watches: list[dict[str, Any]] = field(default_factory=list)  # snapshots
    errors: list[Any] = field(default_factory=list)  # logs: template expressions that failed
    message: str = ""  # logs, exceptions
    level: str | None = None  # logs
    exc_type: str | None = None  # exceptions from here on
    fingerprint: str | None = None
    origin: str | None = None  # what caught it: "thread", "logging", a framework...
    snapshot: bool = False  # True: this one has the frames' locals
    count: int = 0  # occurrences this event stands for
    first_time: float | None = None
    last_time: float | None = None
    chain: list[dict[str, Any]] = field(default_factory=list)  # causes and contexts
    cut: str | None = None  # "budget": values were cut to fit the size budget

    @classmethod
    def field_names(cls, data: Mapping[str, Any]) -> frozenset[str]:
        payload = cls.PAYLOAD.get(data.get("type") or "")
        if payload is None:  # a type this client does not know: read what it can
            return super().field_names(data)
        return frozenset(cls.ENVELOPE + payload)


@dataclass
class ExceptionGroup(Model):
    """Exception events grouped by fingerprint (named after the REST resource)."""

    fingerprint: str
    exc_type: str = ""
    message: str = ""
    count: int = 0
    first_seen: float | None = None
    last_seen: float | None = None
    services: list[str] = field(default_factory=list)
    versions: list[str] = field(default_factory=list)
    last_event_id: str | None = None


@dataclass
class ExceptionGroupDetail(ExceptionGroup):
    """One group with its most recent events (``Client.exception``)."""

    events: list[Event] = field(default_factory=list)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ExceptionGroupDetail:
        group = super().from_dict(data)
        group.events = [Event.from_dict(e) for e in data.get("events") or ()]
        return group


@dataclass
class Page(Generic[T]):
    """One page of a cursor-paginated listing; pass ``next_cursor`` back for the next."""

    items: list[T]
    next_cursor: str | None = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    FIELDS: ClassVar[tuple[str, ...]] = ("events", "next_cursor")  # of the event page

    def to_dict(self) -> dict[str, Any]:
        return self.raw


@dataclass
class Source(Model):
    path: str
    text: str = ""
    lines: list[int] = field(default_factory=list)


@dataclass
class Files(Model):
    files: list[str] = field(default_factory=list)


@dataclass
class Policy(Model):
    """What the server pushes to a service's agents (``peephole.protocol.AgentPolicy``)."""

    redact_names: list[str] = field(default_factory=list)
    allow_names: list[str] = field(default_factory=list)
    redact_patterns: list[str] = field(default_factory=list)
    capture_exceptions: bool = True
    serve_source: bool = True
    source_deny: list[str] = field(default_factory=list)


@dataclass
class Token(Model):
    name: str
    role: str = ""
    id: int | None = None
    created_at: float | None = None
    expires_at: float | None = None
    revoked_at: float | None = None
    active: bool = True


@dataclass
class NewToken(Model):
    """A token just created: the only time the server shows its secret."""

    name: str
    token: str
    role: str = ""
    id: int | None = None
    expires_at: float | None = None


@dataclass
class AgentKey(Model):
    name: str
    id: int | None = None
    created_at: float | None = None
    expires_at: float | None = None
    revoked_at: float | None = None
    services: list[str] | None = None  # None: any service
    active: bool = True


@dataclass
class NewAgentKey(Model):
    """An agent key just created: the only time the server shows its secret."""

    name: str
    key: str
    id: int | None = None
    expires_at: float | None = None
    services: list[str] | None = None  # None: any service


@dataclass
class AuditEntry(Model):
    time: float
    actor: str = ""
    actor_id: int | None = None  # the token's unique id (names are not unique)
    action: str = ""
    probe_id: str | None = None
    details: Any = None
