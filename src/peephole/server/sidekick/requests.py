"""Peephole probe specs as the requests a Sidekick agent takes, per runtime.

What cannot be said in the agent's terms (a format spec in a template, a call in a
condition) raises :class:`Untranslatable`, whose reason becomes the probe's status on that
instance. Expiry and hit limits are enforced by the server (it counts the stored events and
removes the probe), so the agent is told never to expire a probe itself: ``-1`` for both and a
tag (Node skips its own limits for tagged probes; Python never enforces a hit limit).
"""

from __future__ import annotations

import ast
import re
import uuid
from typing import Any, Optional

from peephole import protocol
from peephole.server.sidekick.identity import NODE, PYTHON

__all__ = [
    "CLIENT",
    "Untranslatable",
    "condition",
    "file_name",
    "put",
    "remove",
    "request",
    "template",
    "update",
]

CLIENT = "peephole"  # the ``client`` the agent stores with a probe and echoes in its events
PROBE_TAGS = ["peephole"]
NO_LIMIT = -1

KINDS = {
    protocol.TRACEPOINT: ("TracePoint", "tracePointId"),
    protocol.LOGPOINT: ("LogPoint", "logPointId"),
}
NAME_PATH = re.compile(r"[A-Za-z_$][\w$]*(?:\.[A-Za-z_$][\w$]*)*")


class Untranslatable(Exception):
    """A probe this runtime's agent cannot take as asked; ``str()`` says why."""


def request(name: str, **fields: Any) -> dict[str, Any]:
    """A Sidekick request frame (``name`` like ``PutTracePointRequest``)."""
    return {"type": "Request", "name": name, "id": str(uuid.uuid4()), "client": CLIENT, **fields}


def put(spec: protocol.ProbeSpec, runtime: str) -> dict[str, Any]:
    return _probe_request("Put", spec, runtime)


def update(spec: protocol.ProbeSpec, runtime: str) -> dict[str, Any]:
    return _probe_request("Update", spec, runtime)


def remove(probe_id: str, kind: str) -> dict[str, Any]:
    noun, id_field = KINDS[kind]
    return request(f"Remove{noun}Request", **{id_field: probe_id})


def _probe_request(verb: str, spec: protocol.ProbeSpec, runtime: str) -> dict[str, Any]:
    noun, id_field = KINDS[spec.kind]
    fields: dict[str, Any] = {
        id_field: spec.id,
        "fileName": file_name(spec.file, runtime),
        "lineNo": spec.line,
        "expireSecs": NO_LIMIT,
        "expireCount": NO_LIMIT,
        "disable": not spec.enabled,
        "tags": PROBE_TAGS,
    }
    if spec.condition:
        fields["conditionExpression"] = condition(spec.condition, runtime)
    if spec.watches:
        raise Untranslatable("Sidekick agents take no watch expressions")
    if spec.kind == protocol.TRACEPOINT:
        fields["enableTracing"] = True  # trace and span ids when the app has a span
    else:
        fields["logExpression"] = template(spec.template or "")
        fields["logLevel"] = spec.level.upper()
        fields["stdoutEnabled"] = False
    return request(f"{verb}{noun}Request", **fields)


def file_name(path: str, runtime: str) -> str:
    """The name the agent finds the file by: Python wants ``<path>?ref=`` relative to a
    ``sys.path`` entry; Node ``/<path relative to the app's working directory>``."""
    if "?" in path:
        raise Untranslatable(f"a file name with '?' cannot be sent to a Sidekick agent: {path!r}")
    if runtime == PYTHON:
        relative = path.lstrip("/")
        if not relative.endswith(".py"):
            raise Untranslatable(f"the Sidekick Python agent takes .py files, not {path!r}")
        return f"{relative}?ref="
    if runtime == NODE:
        return "/" + path.lstrip("/")
    return path


def template(text: str) -> str:
    """A peephole template as Mustache: ``{a.b}`` -> ``{{&a.b}}``, ``{{`` -> ``{``.

    Sidekick agents only look names and dotted paths up: no calls, indexes or formats. The
    ``&`` keeps the value as it is: their renderers (pystache, mustache.js) HTML-escape a
    plain ``{{a.b}}``, which would put ``&lt;`` into a log line.
    """
    out: list[str] = []
    placeholders = index = 0
    while index < len(text):
        if text.startswith(("{{", "}}"), index):
            out.append(text[index])
            index += 2
        elif text[index] == "{":
            end = text.find("}", index)
            inner = text[index + 1 : end].strip() if end > 0 else ""
            if end < 0 or not NAME_PATH.fullmatch(inner):
                shown = text[index : end + 1] if end > 0 else text[index:]
                raise Untranslatable(
                    f"Sidekick templates take names and dotted paths only ({{a.b}}), not {shown!r}"
                )
            out.append("{{&" + inner + "}}")
            placeholders += 1
            index = end + 1
        else:
            out.append(text[index])
            index += 1
    result = "".join(out)
    if _pairs(result, "{{") != placeholders or _pairs(result, "}}") != placeholders:
        raise Untranslatable("a literal brace next to another cannot be written in Mustache")
    return result


def _pairs(text: str, pair: str) -> int:
    """Where ``pair`` starts in ``text``, overlapping ones too (``{{{`` has two)."""
    return sum(1 for i in range(len(text) - 1) if text.startswith(pair, i))


# --- conditions ------------------------------------------------------------------------

JS_COMPARE: dict[type[ast.cmpop], str] = {
    ast.Eq: "===",
    ast.NotEq: "!==",
    ast.Lt: "<",
    ast.LtE: "<=",
    ast.Gt: ">",
    ast.GtE: ">=",
}
SIDEKICK_COMPARE: dict[type[ast.cmpop], str] = {
    ast.Eq: "==",
    ast.NotEq: "!=",
    ast.Lt: "<",
    ast.LtE: "<=",
    ast.Gt: ">",
    ast.GtE: ">=",
}


def condition(source: str, runtime: str) -> str:
    """A peephole (Python) condition in the agent's syntax: a JavaScript expression for
    Node; for Python and Java the Sidekick grammar (comparisons joined by AND/OR, literals
    true/false/null, dotted names). Anything else is refused with the reason."""
    try:
        tree = ast.parse(source.strip(), mode="eval").body
    except (SyntaxError, RecursionError, MemoryError, ValueError) as exc:
        raise Untranslatable(f"condition does not parse: {exc}") from None
    if runtime == NODE:
        return _js(tree, top=True)
    return _grammar(tree, top=True)


def _js(node: ast.AST, top: bool = False) -> str:
    """JavaScript for ``node``; ``top``: no parentheses needed around a compound."""
    if isinstance(node, ast.BoolOp):
        joiner = " && " if isinstance(node.op, ast.And) else " || "
        text = joiner.join(_js(v, top=isinstance(v, ast.Compare)) for v in node.values)
        return text if top else f"({text})"
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
        return f"!{_js(node.operand)}"
    if isinstance(node, ast.Compare):
        text = f"{_js(node.left)} {_compare_op(node, JS_COMPARE)} {_js(node.comparators[0])}"
        return text if top else f"({text})"
    return _operand(node)


def _grammar(node: ast.AST, top: bool = False) -> str:
    if isinstance(node, ast.BoolOp):
        joiner = " AND " if isinstance(node.op, ast.And) else " OR "
        text = joiner.join(_grammar(value) for value in node.values)
        return text if top else f"({text})"  # the grammar has no precedence: group every part
    if isinstance(node, ast.Compare):
        left, right = node.left, node.comparators[0]
        return f"{_operand(left)} {_compare_op(node, SIDEKICK_COMPARE)} {_operand(right)}"
    raise Untranslatable(
        "the Sidekick condition grammar takes comparisons joined by and/or "
        f"(like user.vip == True and total > 10), not {ast.unparse(node)!r}"
    )


def _compare_op(node: ast.Compare, table: dict[type[ast.cmpop], str]) -> str:
    if len(node.ops) != 1:
        raise Untranslatable(f"chained comparisons cannot be translated: {ast.unparse(node)!r}")
    op = table.get(type(node.ops[0]))
    if op is None:
        raise Untranslatable(f"comparison not available to Sidekick agents: {ast.unparse(node)!r}")
    return op


def _operand(node: ast.AST) -> str:
    if isinstance(node, ast.Constant):
        return _literal(node.value)
    if (
        isinstance(node, ast.UnaryOp)
        and isinstance(node.op, ast.USub)
        and isinstance(node.operand, ast.Constant)
        and type(node.operand.value) in (int, float)
    ):
        return f"-{node.operand.value!r}"
    dotted = _dotted(node)
    if dotted is not None:
        return dotted
    raise Untranslatable(
        f"Sidekick conditions take names, dotted paths and literals only, not {ast.unparse(node)!r}"
    )


def _literal(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str) and not set(value) & {'"', "\\", "\n", "\r"}:
        return f'"{value}"'
    raise Untranslatable(f"literal not available to Sidekick agents: {value!r}")


def _dotted(node: ast.AST) -> Optional[str]:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        head = _dotted(node.value)
        return None if head is None else f"{head}.{node.attr}"
    return None
