"""Sidekick's ``{"@type", "@value"}`` trees as peephole's captured values, redacted.

Sidekick agents do not redact, so the server does it on arrival with the agent's own rules
(:mod:`peephole.agent.safe.redaction`): a secret name hides its value, secret-shaped text is
masked. Their values carry no sizes or cut markers; what is known to be cut (Node's ``"..."``
past its depth, Java's ``@ignored``) is marked as peephole marks it.
"""

from __future__ import annotations

from typing import Any, Optional

from peephole.agent.safe.redaction import Redactor

__all__ = ["MAX_DEPTH", "value", "variables"]

STRING_TYPES = frozenset({"str", "String", "string", "unicode", "java.lang.String"})
MAP_TYPES = frozenset({"dict", "OrderedDict", "defaultdict", "Counter", "Map"})
DEPTH_CUT = "..."  # what Node sends in place of a value past its depth
MAX_DEPTH = 64  # deeper trees (no agent sends them) are cut, not walked


def variables(tree: Any, redactor: Redactor) -> dict[str, Any]:
    """A frame's ``variables`` map as peephole ``locals``."""
    if not isinstance(tree, dict):
        return {}
    return {str(name): value(node, redactor, str(name)) for name, node in tree.items()}


def value(
    node: Any, redactor: Redactor, name: Optional[str] = None, depth: int = 0
) -> dict[str, Any]:
    """One Sidekick value node as a peephole value; ``name`` is what holds it (a variable,
    field or key), for the name rules of redaction."""
    if not isinstance(node, dict):
        if node == DEPTH_CUT:
            return {"t": "?", "cut": "depth"}
        node = {"@type": type(node).__name__, "@value": node}
    kind = str(node.get("@type") or "?")
    if kind in STRING_TYPES:
        kind = "str"
    if node.get("@data-redacted"):
        return {"t": kind, "cut": "redacted"}
    if node.get("@ignored") or node.get("@erroneous"):
        return {"t": kind, "cut": "unsupported"}
    if "@value" not in node:  # Node's undefined
        return {"t": kind, "v": None}
    raw = node["@value"]
    if name is not None and redactor.is_secret_name(name) and redactor.hides(name, raw):
        return {"t": kind, "cut": "redacted"}
    if depth >= MAX_DEPTH:
        return {"t": kind, "cut": "depth"}
    if isinstance(raw, list):
        items = [value(item, redactor, None, depth + 1) for item in raw]
        return {"t": kind, "len": len(items), "items": items}
    if isinstance(raw, dict):
        if kind in MAP_TYPES or node.get("@map"):
            entries = [
                [{"t": "str", "v": key}, value(item, redactor, key, depth + 1)]
                for key, item in raw.items()
            ]
            return {"t": kind, "len": len(entries), "entries": entries}
        fields = {key: value(item, redactor, key, depth + 1) for key, item in raw.items()}
        return {"t": kind, "fields": fields}
    if raw == DEPTH_CUT and kind != "str":
        return {"t": kind, "cut": "depth"}
    if isinstance(raw, str):
        masked = redactor.redact_text(raw)
        if masked is not None:
            return {"t": kind, "v": masked, "cut": "redacted"}
    return {"t": kind, "v": raw}
