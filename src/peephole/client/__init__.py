"""The Python client of the peephole server, sync and async, with typed results.

    from peephole.client import Client, NewProbe, Target

    with Client() as client:  # PEEPHOLE_URL / PEEPHOLE_TOKEN, or what `peephole login` saved
        probe = client.create_probe(
            NewProbe("tracepoint", "shop/cart.py", 42, target=Target(service="shop"))
        )
        for event in client.events(type="snapshot", probe_id=probe.id).items:
            print(event.frames[0]["locals"])

``Client`` and ``AsyncClient`` (and with them httpx) are imported on first use, so the CLI's
``--help`` and error paths stay fast.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from peephole.client.config import Settings, resolve
from peephole.client.errors import (
    AuthError,
    InvalidRequest,
    NotFound,
    NotPeephole,
    PeepholeError,
    ServerUnreachable,
)
from peephole.client.models import (
    AgentKey,
    AuditEntry,
    Event,
    ExceptionGroup,
    ExceptionGroupDetail,
    Files,
    Health,
    Instance,
    Limits,
    NewAgentKey,
    NewProbe,
    NewToken,
    Page,
    Policy,
    Probe,
    ProbeInstanceStatus,
    Service,
    Source,
    Target,
    Token,
    User,
)

if TYPE_CHECKING:
    from peephole.client.client import AsyncClient, Client
    from peephole.client.stream import AsyncStream, Stream


def __getattr__(name: str) -> Any:
    if name in ("Client", "AsyncClient"):
        from peephole.client import client

        return getattr(client, name)
    if name in ("Stream", "AsyncStream"):
        from peephole.client import stream

        return getattr(stream, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "AgentKey",
    "AsyncClient",
    "AsyncStream",
    "AuditEntry",
    "AuthError",
    "Client",
    "Event",
    "ExceptionGroup",
    "ExceptionGroupDetail",
    "Files",
    "Health",
    "Instance",
    "InvalidRequest",
    "Limits",
    "NewAgentKey",
    "NewProbe",
    "NewToken",
    "NotFound",
    "NotPeephole",
    "Page",
    "PeepholeError",
    "Policy",
    "Probe",
    "ProbeInstanceStatus",
    "ServerUnreachable",
    "Service",
    "Settings",
    "Source",
    "Stream",
    "Target",
    "Token",
    "User",
    "resolve",
]
