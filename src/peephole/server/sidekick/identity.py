"""Who a Sidekick agent is, from its upgrade headers (it sends no hello message)."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping

from peephole import protocol
from peephole.agent.safe.redaction import masked_tags

__all__ = [
    "INSTANCE_ID",
    "JAVA",
    "NODE",
    "PYTHON",
    "Refused",
    "api_key",
    "instance_info",
    "runtime_kind",
]

API_KEY = "x-sidekick-api-key"
INSTANCE_ID = "x-sidekick-app-instance-id"
TAG_PREFIX = "x-sidekick-app-tag-"
AGENT_VERSION = "sidekick"  # what the instance list shows as the agent

NODE = "node"
PYTHON = "python"
JAVA = "java"
RUNTIMES = {"nodejs": NODE, "node": NODE, "python": PYTHON, "java": JAVA}

MAX_INSTANCE_ID = 64  # the database column; Python's ids (<app>:<uuid>@<host>) can be longer
HASHED_SUFFIX = 17  # "~" and 16 hex digits


class Refused(Exception):
    """The upgrade is refused with HTTP ``status`` and ``reason`` (before any frame)."""

    def __init__(self, reason: str, status: int = 401) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status


def api_key(headers: Mapping[str, str]) -> str:
    key = headers.get(API_KEY, "").strip()
    if not key:
        raise Refused(f"missing {API_KEY} header (a peephole agent key)")
    return key


def runtime_kind(headers: Mapping[str, str]) -> str:
    """``node``, ``python`` or ``java``: decides file names, conditions and frame lines."""
    name = headers.get("x-sidekick-app-runtime", "").strip().lower()
    kind = RUNTIMES.get(name)
    if kind is None:
        raise Refused(f"unknown x-sidekick-app-runtime {name!r} (nodejs, python or java)")
    return kind


def instance_id(sidekick_id: str) -> str:
    """The peephole instance id: the agent's own when it fits the column, else a readable
    head and a hash of the whole (stable across the agent's reconnects)."""
    if len(sidekick_id) <= MAX_INSTANCE_ID:
        return sidekick_id
    digest = hashlib.sha256(sidekick_id.encode()).hexdigest()[:16]
    return f"{sidekick_id[: MAX_INSTANCE_ID - HASHED_SUFFIX]}~{digest}"


def instance_info(headers: Mapping[str, str], now: float) -> protocol.InstanceInfo:
    """The instance as peephole lists and targets it; refuses a missing instance id."""
    own_id = headers.get(INSTANCE_ID, "").strip()
    if not own_id:
        raise Refused(f"missing {INSTANCE_ID} header")
    host = headers.get("x-sidekick-app-hostname", "").strip()
    kind = runtime_kind(headers)
    pid = 0
    head = own_id.split(":", 1)[0]
    if kind == NODE and head.isdigit() and len(head) < 10:
        pid = int(head)
    return protocol.InstanceInfo(
        instance_id=instance_id(own_id),
        # Python's default name is empty; Node's default is the host name: use that for both.
        service=headers.get("x-sidekick-app-name", "").strip() or host or "sidekick",
        version=headers.get("x-sidekick-app-version", "").strip() or None,
        environment=headers.get("x-sidekick-app-stage", "").strip() or None,
        tags=tags(headers),
        host=host,
        pid=pid,
        runtime=headers.get("x-sidekick-app-runtime", "").strip(),
        agent_version=AGENT_VERSION,
        started_at=now,
    )


def tags(headers: Mapping[str, str]) -> dict[str, str]:
    """``x-sidekick-app-tag-<name>`` headers; Python's agent sends ``-tag-.<name>``. Masked
    as a peephole agent masks its tags (every viewer sees them): these agents do not."""
    found = {}
    for name, value in headers.items():
        if name.startswith(TAG_PREFIX):
            tag = name[len(TAG_PREFIX) :].lstrip(".")
            if tag:
                found[tag] = value
    return masked_tags(found)
