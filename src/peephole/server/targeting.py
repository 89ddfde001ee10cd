"""Which probes apply to which instance: by service, version, environment, tags and ids.

A target field left empty matches everything; tags must all be present with equal values;
a non-empty ``instances`` list restricts the probe to those instance ids.
"""

from __future__ import annotations

from typing import Any, Mapping, Optional

__all__ = ["normalize_target", "target_matches"]


def normalize_target(target: Optional[Mapping[str, Any]]) -> dict[str, Any]:
    target = target or {}
    return {
        "service": target.get("service") or None,
        "version": target.get("version") or None,
        "environment": target.get("environment") or None,
        "tags": dict(target.get("tags") or {}),
        "instances": list(target.get("instances") or []),
    }


def target_matches(target: Mapping[str, Any], instance: Mapping[str, Any]) -> bool:
    """True when ``instance`` (an InstanceInfo-like mapping) is one the target asks for."""
    for name in ("service", "version", "environment"):
        wanted = target.get(name)
        if wanted and instance.get(name) != wanted:
            return False
    tags = instance.get("tags") or {}
    for key, value in (target.get("tags") or {}).items():
        if tags.get(key) != value:
            return False
    ids = target.get("instances")
    return not ids or instance.get("instance_id") in ids
