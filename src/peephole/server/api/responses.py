"""Response bodies: one Pydantic model per thing a route answers, so ``/openapi.json``
describes responses as well as requests, and a route cannot send a field that is not here.

Every field is always sent (``null`` when it has no value), and the OpenAPI document says so
(``json_schema_serialization_defaults_required``): the client's models
(``peephole.client.models``) read exactly these fields, which ``tests/contract`` checks
against this document and against real responses.

Events are the agent's JSON with the server's columns laid over it; their envelope is typed
here, while captured values (frames, watches, chains) stay JSON trees in the value format of
``peephole.protocol``. Fields an agent sent that are not declared here are not passed on.
"""

from __future__ import annotations

import logging
from typing import Annotated, Any, Literal, Optional, Union, cast

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from peephole.protocol import LogLevel, ProbeKind, ProbeState
from peephole.server.api.schemas import Role

__all__ = [
    "ERRORS",
    "AgentKey",
    "AuditEntry",
    "Event",
    "EventPage",
    "ExceptionGroup",
    "ExceptionGroupDetail",
    "Files",
    "Health",
    "Instance",
    "Me",
    "NewAgentKey",
    "NewToken",
    "Policy",
    "Probe",
    "Service",
    "Source",
    "Token",
    "event",
]

log = logging.getLogger("peephole.server")

Tree = dict[str, Any]  # a captured value or frame, in the value format of ``protocol``


class Response(BaseModel):
    """Base of the response models: every field always present in the JSON and the schema."""

    model_config = ConfigDict(json_schema_serialization_defaults_required=True)


class Health(Response):
    status: Literal["ok"]
    version: str


class Me(Response):
    name: str
    role: Role
    id: Optional[int] = Field(description="the token's id")
    expires_at: Optional[float] = Field(description="when the token stops working (null: never)")


class Service(Response):
    name: str
    instances: int = Field(description="instances connected now")
    versions: list[str]
    environments: list[str]
    last_seen: Optional[float]


class Instance(Response):
    instance_id: str
    service: str
    version: Optional[str]
    environment: Optional[str]
    tags: dict[str, str]
    host: Optional[str]
    pid: Optional[int]
    runtime: Optional[str]
    agent_version: Optional[str]
    started_at: Optional[float]
    last_seen: Optional[float]
    connected: bool
    dropped: int = Field(description="events its agent dropped (full buffer) and said so")
    last_disconnect: Optional[str] = Field(description="why the server last closed it")
    internal_errors: int = Field(description="failures inside its agent, caught and counted")
    last_internal_error: Optional[str]
    abandoned_events: int = Field(description="events its agent could not send at exit")


class Target(Response):
    """Which instances a probe is for; empty fields match everything."""

    service: Optional[str]
    version: Optional[str]
    environment: Optional[str]
    tags: dict[str, str]
    instances: list[str]


class Limits(Response):
    max_depth: int
    max_items: int
    max_string: int
    max_fields: int
    max_bytes: int
    max_frames: int
    frames_with_locals: int


class ProbeInstanceStatus(Response):
    """What one instance's agent reported for a probe."""

    instance_id: str
    state: str
    message: Optional[str]
    hits: int = Field(description="times the line ran (also those not captured)")
    captures: int
    drops: int
    condition_errors: int
    time_ns: int
    path: Optional[str] = Field(description="the file the agent placed the probe in")
    version: int = Field(description="the probe version this status is about")
    updated_at: Optional[float]


class Probe(Response):
    id: str
    kind: ProbeKind
    file: str
    line: int
    condition: Optional[str]
    watches: list[str]
    template: Optional[str]
    level: LogLevel
    logger: Optional[str]
    hit_limit: Optional[int]
    expires_at: Optional[float]
    rate: Optional[float]
    enabled: bool
    version: int
    limits: Limits
    target: Target
    created_at: float
    created_by: Optional[str]
    updated_at: Optional[float]
    state: ProbeState
    captures: int = Field(description="events produced, counted against hit_limit")
    statuses: list[ProbeInstanceStatus]
    summary: str


class _Event(Response):
    """The envelope every event has."""

    id: str
    time: float
    service: str
    instance_id: str
    thread: Optional[str] = None
    trace_id: Optional[str] = None
    span_id: Optional[str] = None
    trace_link: Optional[str] = Field(None, description="set when the server has a template")


class _ProbeEvent(_Event):
    probe_id: Optional[str] = None
    probe_version: Optional[int] = None
    file: Optional[str] = None
    line: Optional[int] = None


class SnapshotEvent(_ProbeEvent):
    type: Literal["snapshot"]
    frames: list[Tree] = Field(default_factory=list)
    watches: list[Tree] = Field(default_factory=list)
    size: int = Field(0, description="bytes captured")
    cut: Optional[str] = Field(None, description='"budget": values were cut to fit')


class LogEvent(_ProbeEvent):
    type: Literal["log"]
    level: Optional[str] = None
    message: str = ""
    errors: list[Any] = Field(default_factory=list, description="template expressions that failed")


class ExceptionEvent(_Event):
    type: Literal["exception"]
    fingerprint: Optional[str] = None
    exc_type: Optional[str] = None
    message: str = ""
    origin: Optional[str] = Field(None, description='what caught it: "thread", "logging"...')
    snapshot: bool = Field(False, description="true: this one has the frames' locals")
    count: int = Field(1, description="occurrences this event stands for")
    first_time: Optional[float] = None
    last_time: Optional[float] = None
    frames: list[Tree] = Field(default_factory=list)
    chain: list[Tree] = Field(default_factory=list, description="causes and contexts")
    size: int = 0
    cut: Optional[str] = None


AnyEvent = Union[SnapshotEvent, LogEvent, ExceptionEvent]
Event = Annotated[AnyEvent, Field(discriminator="type")]
_events: TypeAdapter[AnyEvent] = TypeAdapter(cast("type[AnyEvent]", Event))


def event(data: dict[str, Any]) -> AnyEvent:
    """The response for a stored event. A payload field of the wrong type (an event stored
    before the gateway checked it) is sent as its default rather than failing the listing."""
    try:
        return _events.validate_python(data)
    except ValidationError as exc:
        bad = {str(e["loc"][1]) for e in exc.errors() if len(e["loc"]) > 1}
        log.warning("event %s: ignoring fields of the wrong type: %s", data.get("id"), bad)
        return _events.validate_python({k: v for k, v in data.items() if k not in bad})


class EventPage(Response):
    events: list[Event]
    next_cursor: Optional[str] = Field(description="pass back as cursor for the next page")


class ExceptionGroup(Response):
    """Exception events grouped by fingerprint."""

    fingerprint: str
    exc_type: str
    message: str
    count: int
    first_seen: float
    last_seen: float
    services: list[str]
    versions: list[str]
    last_event_id: Optional[str]


class ExceptionGroupDetail(ExceptionGroup):
    events: list[ExceptionEvent] = Field(description="the most recent, newest first")


class Source(Response):
    path: str
    text: str
    lines: list[int] = Field(description="lines where a probe can be placed")


class Files(Response):
    files: list[str]


class Policy(Response):
    redact_names: list[str]
    allow_names: list[str]
    redact_patterns: list[str]
    capture_exceptions: bool
    serve_source: bool
    source_deny: list[str]


class AuditEntry(Response):
    time: float
    actor: str
    actor_id: Optional[int] = Field(description="the token's id (names are not unique)")
    action: str
    probe_id: Optional[str]
    details: dict[str, Any]


class Token(Response):
    id: int
    name: str
    role: Role
    created_at: float
    expires_at: Optional[float]
    revoked_at: Optional[float]
    active: bool


class NewToken(Response):
    """A token just created: the only time its secret is shown."""

    id: int
    name: str
    role: Role
    expires_at: Optional[float]
    token: str


class AgentKey(Response):
    id: int
    name: str
    created_at: float
    expires_at: Optional[float]
    revoked_at: Optional[float]
    services: Optional[list[str]] = Field(description="null: any service")
    active: bool


class NewAgentKey(Response):
    """An agent key just created: the only time its secret is shown."""

    id: int
    name: str
    expires_at: Optional[float]
    services: Optional[list[str]]
    key: str


class Problem(Response):
    """Why a request was refused (401, 403, 404, 413, 502, 504); a 422 names the field."""

    detail: str


ERRORS: dict[Union[int, str], dict[str, Any]] = {
    401: {"model": Problem, "description": "no token, or one unknown, revoked or expired"},
    403: {"model": Problem, "description": "the token's role is too low"},
    404: {"model": Problem, "description": "no such object (or an ambiguous id prefix)"},
}
