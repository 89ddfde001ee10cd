"""Sidekick's ``{"@type", "@value"}`` trees as peephole's captured values, redacted and bounded.

Sidekick agents do not redact, so the server does it on arrival with the agent's own rules
(:mod:`peephole.agent.safe.redaction`): a secret name hides its value, secret-shaped text (map
keys and field names too) and card-shaped numbers are masked, a list of header pairs and a
``(secret name, value)`` pair hide their text values. Nor do they bound what they send (an
error's stack comes without any probe), so peephole's capture limits apply here, on the event
loop: depth, items, fields and string length per value, and a node budget per event; cuts are marked
as peephole marks them (``items``, ``length``, ``budget``, ``depth``).
"""

from __future__ import annotations

from typing import Any, Optional

from peephole import protocol
from peephole.agent.safe.redaction import Redactor

__all__ = ["MAX_NODES", "Budget", "value", "variables"]

STRING_TYPES = frozenset({"str", "String", "string", "unicode", "java.lang.String"})
MAP_TYPES = frozenset({"dict", "OrderedDict", "defaultdict", "Counter", "Map"})
DEPTH_CUT = "..."  # what Node sends in place of a value past its depth
MAX_NODES = 5000  # value nodes one event converts (the agent's MAX_NODES containers)
CARD_SIZED = (10**12, 10**19)  # ints with as many digits as a card number are checked
PAIR_CHECKED = 8  # pairs of a list looked at to tell a header list


class Budget:
    """The value nodes an event may still convert: a frame of a million ints costs a
    bounded walk, and what is past the budget is marked ``cut: "budget"``."""

    def __init__(self, nodes: int = MAX_NODES) -> None:
        self.left = nodes


def variables(tree: Any, redactor: Redactor, budget: Optional[Budget] = None) -> dict[str, Any]:
    """A frame's ``variables`` map as peephole ``locals`` (the first ``max_items`` names)."""
    if not isinstance(tree, dict):
        return {}
    convert = _Convert(redactor, budget or Budget())
    shown = list(tree.items())[: convert.limits.max_items]
    return {convert.name(str(name)): convert.value(node, str(name), 0) for name, node in shown}


def value(
    node: Any,
    redactor: Redactor,
    name: Optional[str] = None,
    depth: int = 0,
    budget: Optional[Budget] = None,
) -> dict[str, Any]:
    """One Sidekick value node as a peephole value; ``name`` is what holds it (a variable,
    field or key), for the name rules of redaction."""
    return _Convert(redactor, budget or Budget()).value(node, name, depth)


class _Convert:
    """One walk under one redactor, the default capture limits and a shared budget."""

    def __init__(self, redactor: Redactor, budget: Budget) -> None:
        self.redactor = redactor
        self.budget = budget
        self.limits = protocol.Limits()

    def name(self, text: str) -> str:
        """A variable or field name with secret-shaped text masked."""
        return self.redactor.mask(text[: self.limits.max_string])

    def value(
        self, node: Any, name: Optional[str], depth: int, hide_text: bool = False
    ) -> dict[str, Any]:
        if not isinstance(node, dict):
            if node == DEPTH_CUT:
                return {"t": "?", "cut": "depth"}
            node = {"@type": type(node).__name__, "@value": node}
        kind = str(node.get("@type") or "?")[: self.limits.max_string]
        if kind in STRING_TYPES:
            kind = "str"
        if node.get("@data-redacted"):
            return {"t": kind, "cut": "redacted"}
        if node.get("@ignored") or node.get("@erroneous"):
            return {"t": kind, "cut": "unsupported"}
        if "@value" not in node:  # Node's undefined
            return {"t": kind, "v": None}
        raw = node["@value"]
        secret = name is not None and self.redactor.is_secret_name(name)
        if (secret and self.redactor.hides(str(name), raw)) or (hide_text and isinstance(raw, str)):
            return {"t": kind, "cut": "redacted"}
        if depth >= self.limits.max_depth and isinstance(raw, (list, dict)):
            return {"t": kind, "cut": "depth"}
        if self.budget.left <= 0:
            return {"t": kind, "cut": "budget"}
        self.budget.left -= 1
        if isinstance(raw, list):
            return self.sequence(kind, raw, depth)
        if isinstance(raw, dict):
            if kind in MAP_TYPES or node.get("@map"):
                return self.mapping(kind, raw, depth)
            return self.fields(kind, raw, depth)
        if raw == DEPTH_CUT and kind != "str":
            return {"t": kind, "cut": "depth"}
        if isinstance(raw, str):
            return self.string(kind, raw)
        if isinstance(raw, int) and not isinstance(raw, bool) and self.card_shaped(raw):
            return {"t": kind, "cut": "redacted"}
        return {"t": kind, "v": raw}

    def card_shaped(self, number: int) -> bool:
        """An int with a card number's digits (the agent's check: its text is masked)."""
        size = abs(number)
        return CARD_SIZED[0] <= size < CARD_SIZED[1] and self.redactor.contains_secret(repr(size))

    def string(self, kind: str, text: str) -> dict[str, Any]:
        """Text cut to ``max_string`` (looking a little past the cut for a secret), masked."""
        limit = self.limits.max_string
        shown = text if len(text) <= limit else text[: limit + 64]
        node: dict[str, Any] = {"t": kind, "v": shown}
        masked = self.redactor.redact_text(shown)
        if masked is not None:
            node["v"], node["cut"] = masked[:limit], "redacted"
        elif len(text) > limit:
            node["v"], node["cut"] = shown[:limit], "length"
        if len(text) > limit:
            node["len"] = len(text)
        return node

    def sequence(self, kind: str, raw: list[Any], depth: int) -> dict[str, Any]:
        shown = raw[: self.limits.max_items]
        node: dict[str, Any] = {"t": kind, "len": len(raw)}
        pair_name = self.pair_name(shown)
        if pair_name is not None:  # ("password", "...") hides its value
            node["items"] = [
                self.value(shown[0], None, depth + 1),
                self.value(shown[1], pair_name, depth + 1),
            ]
        else:
            headers = self.is_header_list(shown)
            node["items"] = [self.value(item, None, depth + 1, headers) for item in shown]
        return _omitted(node, len(raw), len(shown))

    def mapping(self, kind: str, raw: dict[str, Any], depth: int) -> dict[str, Any]:
        entries = []
        for key, item in list(raw.items())[: self.limits.max_items]:
            entries.append([self.string("str", str(key)), self.value(item, str(key), depth + 1)])
        return _omitted({"t": kind, "len": len(raw), "entries": entries}, len(raw), len(entries))

    def fields(self, kind: str, raw: dict[str, Any], depth: int) -> dict[str, Any]:
        shown = list(raw.items())[: self.limits.max_fields]
        fields = {self.name(str(key)): self.value(item, str(key), depth + 1) for key, item in shown}
        return _omitted({"t": kind, "fields": fields}, len(raw), len(shown))

    def pair_name(self, items: list[Any]) -> Optional[str]:
        """The name of a ``(secret name, value)`` pair, else None."""
        if len(items) != 2:
            return None
        name = _text(items[0])
        return name if name is not None and self.redactor.is_secret_name(name) else None

    def is_header_list(self, items: list[Any]) -> bool:
        """A list of ``(name, text)`` pairs that the agent would call HTTP headers."""
        pairs = []
        for item in items[:PAIR_CHECKED]:
            raw = item.get("@value") if isinstance(item, dict) else None
            if not isinstance(raw, list) or len(raw) != 2:
                return False
            pairs.append((_text(raw[0]), _text(raw[1])))
        return bool(pairs) and self.redactor.is_header_list(pairs)


def _text(node: Any) -> Optional[str]:
    """The text a string node holds, else None."""
    if isinstance(node, dict) and isinstance(node.get("@value"), str):
        return str(node["@value"])
    return None


def _omitted(node: dict[str, Any], total: int, shown: int) -> dict[str, Any]:
    if shown < total:
        node["omitted"] = total - shown
        node["cut"] = "items"
    return node
