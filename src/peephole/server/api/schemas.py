"""Request bodies. Responses are the plain dicts built in ``peephole.server.store``."""

from __future__ import annotations

import ast
import re
from typing import Literal, Optional

from pydantic import BaseModel, Field, field_validator

from peephole import protocol

MAX_HIT_LIMIT = 1000
DEFAULT_TRACEPOINT_HITS = 10
DEFAULT_EXPIRY = 3600.0
MAX_EXPIRY = 7 * 24 * 3600.0

Kind = Literal["tracepoint", "logpoint"]
Level = Literal["debug", "info", "warning", "error", "critical"]
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
    service: Optional[str] = Field(None, max_length=200)
    version: Optional[str] = Field(None, max_length=200)
    environment: Optional[str] = Field(None, max_length=200)
    tags: dict[str, str] = Field(default_factory=dict)
    instances: list[str] = Field(default_factory=list)


def _expression(value: Optional[str]) -> Optional[str]:
    if value is not None:
        try:
            ast.parse(value, mode="eval")
        except SyntaxError as exc:
            raise ValueError(f"not a Python expression: {exc.msg}") from None
    return value


class ProbeEdit(BaseModel):
    """Fields a probe can change after creation (PATCH): only those sent are applied."""

    condition: Optional[str] = Field(None, max_length=2000)
    watches: list[str] = Field(default_factory=list, max_length=50)
    template: Optional[str] = Field(None, max_length=4000)
    level: Level = "info"
    logger: Optional[str] = Field(None, max_length=200)
    hit_limit: Optional[int] = Field(None, ge=1, le=MAX_HIT_LIMIT)
    expire_seconds: Optional[float] = Field(None, gt=0, le=MAX_EXPIRY)
    rate: Optional[float] = Field(None, gt=0, le=100_000)
    enabled: bool = True
    limits: Optional[LimitsBody] = None

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


class ProbeCreate(ProbeEdit):
    kind: Kind
    file: str = Field(min_length=1, max_length=1000)
    line: int = Field(ge=1, le=10_000_000)
    target: TargetBody = Field(
        default_factory=lambda: TargetBody(service=None, version=None, environment=None)
    )


class PolicyBody(BaseModel):
    redact_names: list[str] = Field(default_factory=list)
    allow_names: list[str] = Field(default_factory=list)
    redact_patterns: list[str] = Field(default_factory=list)
    capture_exceptions: bool = True

    @field_validator("redact_patterns")
    @classmethod
    def _patterns(cls, value: list[str]) -> list[str]:
        for pattern in value:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"bad regular expression {pattern!r}: {exc}") from None
        return value


class TokenCreate(BaseModel):
    name: str = Field(min_length=1, max_length=200)
    role: Role


class AgentKeyCreate(BaseModel):
    name: str = Field(min_length=1, max_length=200)
