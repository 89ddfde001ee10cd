"""Request bodies. Responses are the plain dicts built in ``peephole.server.store``.

Every field has a size limit, so that a whole probe stays well under
``protocol.MAX_PROBE_BYTES`` (a test builds the largest one the API accepts) and the probe
lists sent to agents stay small. Text never contains NUL characters (PostgreSQL refuses
them, SQLite would store them): they are a 422 like any other bad field.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal, Optional

from pydantic import AfterValidator, BaseModel, Field, field_validator
from pydantic_core import PydanticCustomError

from peephole import protocol
from peephole.server import regex_safety

__all__ = [
    "DEFAULT_EXPIRY",
    "DEFAULT_TRACEPOINT_HITS",
    "MAX_CONDITION",
    "MAX_FILE",
    "MAX_INSTANCES",
    "MAX_INSTANCE_ID",
    "MAX_NAME",
    "MAX_POLICY_ITEMS",
    "MAX_POLICY_TEXT",
    "MAX_TAGS",
    "MAX_TAG_KEY",
    "MAX_TAG_VALUE",
    "MAX_TEMPLATE",
    "MAX_WATCH",
    "MAX_WATCHES",
    "AgentKeyCreate",
    "PolicyBody",
    "ProbeCreate",
    "ProbeEdit",
    "Role",
    "TokenCreate",
]

MAX_NAME = 200  # services, versions, environments, token and key names, loggers
MAX_TAGS = 20
MAX_TAG_KEY = 100
MAX_TAG_VALUE = 200
MAX_INSTANCES = 50  # instance ids in one target
MAX_INSTANCE_ID = 64
MAX_FILE = 1000
MAX_CONDITION = 2000
MAX_WATCHES = 20
MAX_WATCH = 1000
MAX_TEMPLATE = 4000
MAX_POLICY_ITEMS = 200  # names or patterns in a policy list
MAX_POLICY_TEXT = 500
MAX_CREDENTIAL_SECONDS = 10 * 365 * 86400.0


def no_nul(value: str) -> str:
    if "\x00" in value:
        raise ValueError("text must not contain NUL characters")
    return value


NoNul = AfterValidator(no_nul)
Name = Annotated[str, Field(max_length=MAX_NAME), NoNul]
CredentialName = Annotated[str, Field(min_length=1, max_length=MAX_NAME), NoNul]
TagKey = Annotated[str, Field(max_length=MAX_TAG_KEY), NoNul]
TagValue = Annotated[str, Field(max_length=MAX_TAG_VALUE), NoNul]
InstanceId = Annotated[str, Field(max_length=MAX_INSTANCE_ID), NoNul]
FilePath = Annotated[str, Field(min_length=1, max_length=MAX_FILE), NoNul]
Condition = Annotated[str, Field(max_length=MAX_CONDITION), NoNul]
Watch = Annotated[str, Field(max_length=MAX_WATCH), NoNul]
Template = Annotated[str, Field(max_length=MAX_TEMPLATE), NoNul]
PolicyText = Annotated[str, Field(max_length=MAX_POLICY_TEXT), NoNul]

MAX_HIT_LIMIT = 1000
DEFAULT_TRACEPOINT_HITS = 10
DEFAULT_EXPIRY = 3600.0
MAX_EXPIRY = 7 * 24 * 3600.0

Role = Literal["viewer", "debugger", "admin"]


class LimitsBody(BaseModel):
    max_depth: int = Field(protocol.Limits.max_depth, ge=0, le=20)
    max_items: int = Field(protocol.Limits.max_items, ge=1, le=10_000)
    max_string: int = Field(protocol.Limits.max_string, ge=1, le=1_000_000)
    max_fields: int = Field(protocol.Limits.max_fields, ge=1, le=1000)
    max_bytes: int = Field(protocol.Limits.max_bytes, ge=1024, le=protocol.MAX_MESSAGE_BYTES // 2)
    max_frames: int = Field(protocol.Limits.max_frames, ge=1, le=200)
    frames_with_locals: int = Field(protocol.Limits.frames_with_locals, ge=0, le=200)


class TargetBody(BaseModel):
    service: Optional[Name] = None
    version: Optional[Name] = None
    environment: Optional[Name] = None
    tags: dict[TagKey, TagValue] = Field(default_factory=dict, max_length=MAX_TAGS)
    instances: list[InstanceId] = Field(default_factory=list, max_length=MAX_INSTANCES)


def _expression(value: Optional[str]) -> Optional[str]:
    """Refuse what does not parse, with the column and a caret (see ``protocol``); a
    ``PydanticCustomError`` so the message has no "Value error, " prefix."""
    problem = None if value is None else protocol.expression_problem(value)
    if problem:
        raise PydanticCustomError("expression", "{problem}", {"problem": problem})
    return value


def _template(value: Optional[str]) -> Optional[str]:
    problem = None if value is None else protocol.template_problem(value)
    if problem:
        raise PydanticCustomError("template", "{problem}", {"problem": problem})
    return value


class ProbeEdit(BaseModel):
    """Fields a probe can change after creation (PATCH): only those sent are applied."""

    condition: Optional[Condition] = None
    watches: list[Watch] = Field(default_factory=list, max_length=MAX_WATCHES)
    template: Optional[Template] = None
    level: protocol.LogLevel = "info"
    logger: Optional[Name] = None
    hit_limit: Optional[int] = Field(None, ge=1, le=MAX_HIT_LIMIT)
    expire_seconds: Optional[float] = Field(None, gt=0, le=MAX_EXPIRY)
    rate: Optional[float] = Field(None, gt=0, le=100_000)
    enabled: bool = True
    limits: Optional[LimitsBody] = None
    file: Optional[FilePath] = None  # a move (`peephole probes move`): a new version
    line: Optional[int] = Field(None, ge=1, le=10_000_000)

    @field_validator("condition")
    @classmethod
    def _condition(cls, value: Optional[str]) -> Optional[str]:
        return _expression(value)

    @field_validator("watches")
    @classmethod
    def _watches(cls, value: list[str]) -> list[str]:
        for item in value:
            _expression(item)
        return value

    @field_validator("template")
    @classmethod
    def _template(cls, value: Optional[str]) -> Optional[str]:
        return _template(value)


class ProbeCreate(ProbeEdit):
    kind: protocol.ProbeKind
    file: FilePath
    line: int = Field(ge=1, le=10_000_000)
    target: TargetBody = Field(
        default_factory=lambda: TargetBody(service=None, version=None, environment=None)
    )


class PolicyBody(BaseModel):
    redact_names: list[PolicyText] = Field(default_factory=list, max_length=MAX_POLICY_ITEMS)
    allow_names: list[PolicyText] = Field(default_factory=list, max_length=MAX_POLICY_ITEMS)
    redact_patterns: list[PolicyText] = Field(default_factory=list, max_length=MAX_POLICY_ITEMS)
    capture_exceptions: bool = True
    serve_source: bool = True
    source_deny: list[PolicyText] = Field(default_factory=list, max_length=MAX_POLICY_ITEMS)

    @field_validator("redact_patterns")
    @classmethod
    def _patterns(cls, value: list[str]) -> list[str]:
        for pattern in value:
            try:
                regex_safety.check(pattern)
            except (re.error, regex_safety.UnsafePattern) as exc:
                raise ValueError(f"bad regular expression {pattern!r}: {exc}") from None
        return value


class TokenCreate(BaseModel):
    name: CredentialName
    role: Role
    expires_seconds: Optional[float] = Field(None, gt=0, le=MAX_CREDENTIAL_SECONDS)


class AgentKeyCreate(BaseModel):
    name: CredentialName
    expires_seconds: Optional[float] = Field(None, gt=0, le=MAX_CREDENTIAL_SECONDS)
    services: Optional[list[Name]] = Field(  # None: any service
        None, min_length=1, max_length=MAX_POLICY_ITEMS
    )
