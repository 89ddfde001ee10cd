"""The tables. The Alembic revisions create exactly these (a test compares them)."""

from __future__ import annotations

from typing import Any, Optional

from sqlalchemy import JSON, BigInteger, Float, ForeignKey, Index, Integer, String, Text, text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

__all__ = [
    "AgentKeyRow",
    "AuditEntryRow",
    "Base",
    "EventRow",
    "ExceptionGroupRow",
    "InstanceRow",
    "ProbeRow",
    "ProbeStatusRow",
    "ServicePolicyRow",
    "TokenRow",
]


class Base(DeclarativeBase):
    pass


class InstanceRow(Base):
    """One agent process, as it registered in ``hello``."""

    __tablename__ = "instances"

    instance_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    service: Mapped[str] = mapped_column(String(200), index=True)
    version: Mapped[Optional[str]] = mapped_column(String(200))
    environment: Mapped[Optional[str]] = mapped_column(String(200))
    tags: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    host: Mapped[str] = mapped_column(String(255), default="")
    pid: Mapped[int] = mapped_column(Integer, default=0)
    runtime: Mapped[str] = mapped_column(String(100), default="")
    agent_version: Mapped[str] = mapped_column(String(50), default="")
    started_at: Mapped[float] = mapped_column(Float, default=0.0)
    registered_at: Mapped[float] = mapped_column(Float)
    last_seen: Mapped[float] = mapped_column(Float, index=True)
    connected: Mapped[bool] = mapped_column(default=False)
    dropped: Mapped[int] = mapped_column(BigInteger, default=0)  # events the agent dropped
    last_disconnect: Mapped[Optional[str]] = mapped_column(String(300))  # why the server did
    # The agent's own health, from its status messages (see protocol.AgentHealth).
    internal_errors: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    last_internal_error: Mapped[Optional[str]] = mapped_column(String(300))
    abandoned_events: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")


class ProbeRow(Base):
    """A tracepoint or logpoint as a person asked for it, with its target."""

    __tablename__ = "probes"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    kind: Mapped[str] = mapped_column(String(20))
    file: Mapped[str] = mapped_column(String(1000))
    line: Mapped[int] = mapped_column(Integer)
    condition: Mapped[Optional[str]] = mapped_column(Text)
    watches: Mapped[list[str]] = mapped_column(JSON, default=list)
    template: Mapped[Optional[str]] = mapped_column(Text)
    level: Mapped[str] = mapped_column(String(20), default="info")
    logger: Mapped[Optional[str]] = mapped_column(String(200))
    hit_limit: Mapped[Optional[int]] = mapped_column(Integer)
    expires_at: Mapped[Optional[float]] = mapped_column(Float)
    rate: Mapped[Optional[float]] = mapped_column(Float)
    enabled: Mapped[bool] = mapped_column(default=True)
    version: Mapped[int] = mapped_column(Integer, default=1)
    limits: Mapped[Optional[dict[str, Any]]] = mapped_column(JSON)
    target: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    target_service: Mapped[Optional[str]] = mapped_column(String(200), index=True)
    captures: Mapped[int] = mapped_column(BigInteger, default=0)  # events stored, all instances
    finished: Mapped[Optional[str]] = mapped_column(String(20))  # "done" | "expired" | None
    created_at: Mapped[float] = mapped_column(Float)
    created_by: Mapped[str] = mapped_column(String(200))
    updated_at: Mapped[float] = mapped_column(Float)


class ProbeStatusRow(Base):
    """How one probe is doing on one instance, as the agent last reported."""

    __tablename__ = "probe_statuses"

    probe_id: Mapped[str] = mapped_column(
        ForeignKey("probes.id", ondelete="CASCADE"), primary_key=True
    )
    instance_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    state: Mapped[str] = mapped_column(String(20))
    message: Mapped[Optional[str]] = mapped_column(Text)
    version: Mapped[int] = mapped_column(Integer, default=1)
    path: Mapped[Optional[str]] = mapped_column(String(1000))
    hits: Mapped[int] = mapped_column(BigInteger, default=0)
    captures: Mapped[int] = mapped_column(BigInteger, default=0)
    drops: Mapped[int] = mapped_column(BigInteger, default=0)
    condition_errors: Mapped[int] = mapped_column(BigInteger, default=0)
    time_ns: Mapped[int] = mapped_column(BigInteger, default=0)
    updated_at: Mapped[float] = mapped_column(Float)


class EventRow(Base):
    """A snapshot, log line or exception: the agent's JSON plus indexed columns to filter on."""

    __tablename__ = "events"
    __table_args__ = (
        Index("ix_events_time_seq", "time", "seq"),
        Index("ix_events_service_time", "service", "time"),
        Index("ix_events_probe_time", "probe_id", "time"),
        # Only exceptions have a fingerprint: snapshots and log lines stay out of its index.
        Index(
            "ix_events_fingerprint_time",
            "fingerprint",
            "time",
            postgresql_where=text("fingerprint IS NOT NULL"),
            sqlite_where=text("fingerprint IS NOT NULL"),
        ),
    )

    seq: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    id: Mapped[str] = mapped_column(String(64), unique=True)
    type: Mapped[str] = mapped_column(String(20))  # not indexed: a handful of values
    service: Mapped[str] = mapped_column(String(200))
    instance_id: Mapped[str] = mapped_column(String(64), index=True)
    probe_id: Mapped[Optional[str]] = mapped_column(String(32))
    fingerprint: Mapped[Optional[str]] = mapped_column(String(128))
    trace_id: Mapped[Optional[str]] = mapped_column(String(64))
    time: Mapped[float] = mapped_column(Float)
    payload: Mapped[str] = mapped_column(Text)  # the event as JSON text, exactly as received


class ExceptionGroupRow(Base):
    """All exceptions with one fingerprint (type plus the code locations of the traceback)."""

    __tablename__ = "exception_groups"

    fingerprint: Mapped[str] = mapped_column(String(128), primary_key=True)
    exc_type: Mapped[str] = mapped_column(String(300))
    message: Mapped[str] = mapped_column(Text, default="")
    count: Mapped[int] = mapped_column(BigInteger, default=0)
    first_seen: Mapped[float] = mapped_column(Float)
    last_seen: Mapped[float] = mapped_column(Float, index=True)
    services: Mapped[list[str]] = mapped_column(JSON, default=list)
    versions: Mapped[list[str]] = mapped_column(JSON, default=list)
    last_event_id: Mapped[Optional[str]] = mapped_column(String(64))


class TokenRow(Base):
    """A person's API token (stored as its SHA-256) with a role: viewer, debugger or admin."""

    __tablename__ = "tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(20))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[float] = mapped_column(Float)
    expires_at: Mapped[Optional[float]] = mapped_column(Float)
    revoked_at: Mapped[Optional[float]] = mapped_column(Float)


class AgentKeyRow(Base):
    """A key agents present in ``hello`` (stored as its SHA-256)."""

    __tablename__ = "agent_keys"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(200))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[float] = mapped_column(Float)
    expires_at: Mapped[Optional[float]] = mapped_column(Float)
    revoked_at: Mapped[Optional[float]] = mapped_column(Float)
    services: Mapped[Optional[list[str]]] = mapped_column(JSON)  # None: any service


class AuditEntryRow(Base):
    """Who changed what and when (every probe change, policy and credential change)."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    time: Mapped[float] = mapped_column(Float, index=True)
    actor: Mapped[str] = mapped_column(String(200))  # the token's name, as shown
    actor_id: Mapped[Optional[int]] = mapped_column(Integer)  # the token's id, unique
    action: Mapped[str] = mapped_column(String(50))
    probe_id: Mapped[Optional[str]] = mapped_column(String(32), index=True)
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class ServicePolicyRow(Base):
    """The :class:`peephole.protocol.AgentPolicy` for one service."""

    __tablename__ = "service_policies"

    service: Mapped[str] = mapped_column(String(200), primary_key=True)
    policy: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    updated_at: Mapped[float] = mapped_column(Float)
    updated_by: Mapped[str] = mapped_column(String(200))
