"""Agent settings: keyword arguments to ``peephole.start()``, else ``PEEPHOLE_*`` variables.

Every field of :class:`AgentConfig` can be set from the environment as
``PEEPHOLE_<FIELD NAME IN UPPER CASE>`` (``PEEPHOLE_SERVICE=shop``,
``PEEPHOLE_TAGS=team=payments,region=eu``, ``PEEPHOLE_CAPTURE_EXCEPTIONS=false``);
``PEEPHOLE_ENV`` is accepted for ``environment``. ``docs/agent-settings.md`` lists them all.
"""

from __future__ import annotations

import os
import sys
import uuid
from dataclasses import dataclass, field, fields
from typing import Any, Dict, List, Mapping, Optional

from peephole.protocol import EnvError, Limits, env_kinds, env_settings

__all__ = ["ENV_PREFIX", "AgentConfig", "ConfigError", "new_instance_id", "parse_tags"]

ENV_PREFIX = "PEEPHOLE_"
ENV_ALIASES = {"PEEPHOLE_ENV": "environment"}


class ConfigError(ValueError):
    """A setting with a value the agent cannot use."""


def _env_values(cls: type, environ: Mapping[str, str]) -> Dict[str, Any]:
    """The settings ``environ`` gives as ``PEEPHOLE_*``: tags as ``k=v`` pairs, limits in
    code only (a nested dataclass), the rest by type with the loader the server uses too."""
    try:
        values = env_settings(environ, ENV_PREFIX, {**env_kinds(cls), "tags": list}, ENV_ALIASES)
    except EnvError as exc:
        raise ConfigError(str(exc)) from None
    if "tags" in values:
        values["tags"] = parse_tags(values["tags"])
    return values


@dataclass
class AgentConfig:
    """Everything an agent can be told at start. Per-probe settings override the defaults."""

    # Who this process is.
    service: str = ""  # default: the program's name
    version: Optional[str] = None
    environment: Optional[str] = None
    tags: Dict[str, str] = field(default_factory=dict)
    instance_id: str = ""  # default: a new random id (and a new one in each forked child)

    # Where events go. Without a server the agent works in-process only (see Agent's sink).
    server: Optional[str] = None  # "http://127.0.0.1:7777" or "ws://..."; https/wss for TLS
    key: Optional[str] = None  # agent key given by the server's admin
    wait: float = 0.0  # seconds start() waits for the first connection (0: never waits)
    ca_file: Optional[str] = None  # CA bundle to verify a server with a private certificate

    # Defaults and ceilings for probes.
    tracepoint_hit_limit: int = 10
    max_hit_limit: int = 1000
    probe_expiry: float = 3600.0  # seconds, both kinds
    max_expiry: float = 7 * 24 * 3600.0
    snapshot_rate: float = 5.0  # per probe per second
    snapshot_process_rate: float = 50.0
    log_rate: float = 200.0  # per probe per second
    log_process_rate: float = 1000.0
    cpu_budget: float = 0.01  # fraction of one core spent in probes over a sliding second
    limits: Limits = field(default_factory=Limits)

    # Exceptions.
    capture_exceptions: bool = True
    exception_frames: int = 8  # application frames with locals
    exception_interval: float = 600.0  # seconds between snapshots with locals per fingerprint
    exception_rate: float = 5.0  # exception snapshots per second per process
    otel_span_events: bool = True  # add a span event with the snapshot id to the current span

    # Redaction (the server's policy adds to these at run time).
    redact_names: List[str] = field(default_factory=list)
    allow_names: List[str] = field(default_factory=list)
    redact_patterns: List[str] = field(default_factory=list)
    serve_source: bool = True  # False: no source view (the server's policy can turn it off too)
    source_deny: List[str] = field(default_factory=list)  # file patterns never served

    # Memory, and the end of the process.
    buffer_bytes: int = 8 * 1024 * 1024
    exit_timeout: float = 5.0  # seconds at exit to send what is buffered (most important first)

    def __post_init__(self) -> None:
        if not self.service:
            self.service = _program_name()
        if not self.instance_id:
            self.instance_id = new_instance_id()
        if isinstance(self.limits, dict):
            self.limits = Limits.from_dict(self.limits)

    @classmethod
    def load(cls, environ: Optional[Mapping[str, str]] = None, **overrides: Any) -> AgentConfig:
        """Build a config from keyword arguments, then the environment, then defaults."""
        environ = os.environ if environ is None else environ
        known = {f.name: f for f in fields(cls)}
        values = _env_values(cls, environ)
        for name, value in overrides.items():
            if name not in known:
                raise ConfigError(f"unknown agent setting {name!r}")
            if value is not None:
                values[name] = _check(name, known[name].default, value)
        return cls(**values)


def new_instance_id() -> str:
    return uuid.uuid4().hex[:16]


def _program_name() -> str:
    argv0 = sys.argv[0] if sys.argv and sys.argv[0] else "python"
    name = os.path.basename(argv0)
    if name in ("__main__.py", "-c", "-m", ""):
        name = os.path.basename(os.getcwd()) or "python"
    return name[:-3] if name.endswith(".py") else name


def _check(name: str, default: Any, value: Any) -> Any:
    """Refuse a keyword argument of the wrong type with a clear error, not a crash later."""
    if isinstance(default, bool):
        ok = isinstance(value, bool)
    elif isinstance(default, (int, float)):
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    elif isinstance(default, str) or default is None:
        ok = value is None or (isinstance(value, (str, int, float)) and not isinstance(value, bool))
        value = value if value is None or isinstance(value, str) else str(value)
    else:
        ok = True
    if not ok:
        raise ConfigError(f"agent setting {name}={value!r} must be a {type(default).__name__}")
    return value


def parse_tags(items: List[str]) -> Dict[str, str]:
    """Parse ``["k=v", ...]`` (from a flag or a comma-separated variable)."""
    tags: Dict[str, str] = {}
    for item in items:
        item = item.strip()
        if not item:
            continue
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"tag {item!r} must look like key=value")
        tags[key.strip()] = value.strip()
    return tags
