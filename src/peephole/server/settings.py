"""Server settings: keyword arguments (the ``peephole server`` flags), else ``PEEPHOLE_SERVER_*``.

Every field of :class:`ServerSettings` can come from the environment as
``PEEPHOLE_SERVER_<FIELD IN UPPER CASE>`` (``PEEPHOLE_SERVER_PORT=8000``,
``PEEPHOLE_SERVER_DATABASE=postgresql://...``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Mapping, Optional

from peephole.protocol import EnvError, env_kinds, env_settings

__all__ = ["ServerSettings", "SettingsError"]

ENV_PREFIX = "PEEPHOLE_SERVER_"


class SettingsError(ValueError):
    """A server setting with a value that cannot be used."""


def default_data_dir() -> str:
    home_share = os.path.join(os.path.expanduser("~"), ".local", "share")
    base = os.environ.get("XDG_DATA_HOME") or home_share
    return os.path.join(base, "peephole")


@dataclass
class ServerSettings:
    """Everything the server is told at start."""

    host: str = "127.0.0.1"
    port: int = 7777
    data_dir: str = ""  # default: ~/.local/share/peephole
    database: str = ""  # default: sqlite:///<data_dir>/peephole.db
    cert: Optional[str] = None  # TLS certificate (PEM); with ``key`` the server speaks HTTPS/WSS
    key: Optional[str] = None
    trace_link_template: Optional[str] = None  # "https://jaeger/trace/{trace_id}"
    retention_days: float = 7.0
    retention_events: int = 100_000  # per service
    admin_token: Optional[str] = None  # seed this admin token (demo, tests)
    agent_key: Optional[str] = None  # seed this agent key (demo, tests)
    source_timeout: float = 5.0  # seconds to wait for an agent to answer get_source
    send_timeout: float = 10.0  # an agent that takes longer to read one message is dropped
    retention_interval: float = 60.0  # seconds between retention passes
    housekeeping_interval: float = 1.0  # seconds between expiry checks and last-seen updates
    log_level: str = "info"
    # PostgreSQL: wait for the WAL flush before acking an events batch (an ack means durable;
    # probe "done" and capture counts ride in it). Off, ingest takes less CPU, and a database
    # crash can lose the last ~0.6 s of acked events (never half a batch).
    sync_events: bool = True

    def __post_init__(self) -> None:
        if not self.data_dir:
            self.data_dir = default_data_dir()
        self.data_dir = os.path.expanduser(self.data_dir)
        if not self.database:
            self.database = f"sqlite:///{Path(self.data_dir) / 'peephole.db'}"
        if bool(self.cert) != bool(self.key):
            raise SettingsError("TLS needs both --cert and --key")
        if self.retention_days <= 0 or self.retention_events <= 0:
            raise SettingsError("retention days and events must be positive")

    @property
    def tls(self) -> bool:
        return bool(self.cert and self.key)

    @classmethod
    def load(cls, environ: Optional[Mapping[str, str]] = None, **overrides: Any) -> ServerSettings:
        """Build settings from keyword arguments, then the environment, then defaults."""
        environ = os.environ if environ is None else environ
        known = {f.name for f in fields(cls)}
        try:
            values = env_settings(environ, ENV_PREFIX, env_kinds(cls))
        except EnvError as exc:
            raise SettingsError(str(exc)) from None
        for name, value in overrides.items():
            if name not in known:
                raise SettingsError(f"unknown server setting {name!r}")
            if value is not None:
                values[name] = value
        return cls(**values)
