"""What pages compute from stored data: highlighted source lines, captured values as one line
of text, two snapshots side by side, and the small summaries the live stream sends.

Everything returned here is text for Jinja2 to escape, except :func:`highlight_lines`,
whose markup is built from escaped token text only.
"""

from __future__ import annotations

import time
from functools import lru_cache
from typing import Any, Optional
from urllib.parse import quote

from markupsafe import Markup, escape
from pygments.formatters import HtmlFormatter
from pygments.lexers import PythonLexer
from pygments.token import STANDARD_TYPES, _TokenType

from peephole.protocol import is_library_path, printable, readable_ref

__all__ = [
    "ago",
    "clock",
    "compare",
    "cut_word",
    "event_summary",
    "highlight_lines",
    "is_library",
    "occurrences",
    "one_line",
    "probe_summary",
    "pygments_css",
    "source_rows",
    "top_locals",
    "until",
    "with_readable_refs",
]

CUT_WORDS = {
    "depth": "depth limit",
    "items": "items omitted",
    "length": "truncated",
    "budget": "budget full",
    "redacted": "redacted",
    "unsupported": "not captured",
}


# --- source --------------------------------------------------------------------------------


def _css_class(kind: _TokenType) -> str:
    while kind not in STANDARD_TYPES:
        kind = kind.parent
    css_class: str = STANDARD_TYPES[kind]
    return css_class


@lru_cache(maxsize=32)
def highlight_lines(text: str) -> tuple[Markup, ...]:
    """One escaped, highlighted HTML fragment per source line (tokens that span lines, such
    as docstrings, are split at each newline so every line stands alone).

    Pygments takes about 0.1 s per 1,000 lines here, so results are kept: an agent serves the
    same text for a file until it is redeployed. Call it off the event loop
    (``asyncio.to_thread``): agents share that loop."""
    lines: list[list[str]] = [[]]
    for kind, value in PythonLexer(stripnl=False, ensurenl=False).get_tokens(text):
        css = _css_class(kind)
        for index, piece in enumerate(value.split("\n")):
            if index:
                lines.append([])
            if piece:
                html = str(escape(printable(piece)))
                lines[-1].append(f'<span class="{css}">{html}</span>' if css else html)
    if text.endswith("\n"):
        lines.pop()
    return tuple(Markup("".join(parts)) for parts in lines)


def source_rows(
    lines: tuple[Markup, ...],
    probeable: set[int],
    gutter: dict[int, tuple[str, str]],
    selected: Optional[int],
    path: str,
) -> Markup:
    """The numbered lines of the source view, built here rather than in a template loop (a
    5,000-line file renders in a few milliseconds). ``gutter`` holds, per line, the states
    of its probes and their one-line description."""
    href = escape(f"?path={quote(path, safe='')}&line=")
    rows = []
    for number, html in enumerate(lines, start=1):
        classes = "ln"
        if number in probeable:
            classes += " probeable"
        if number == selected:
            classes += " selected"
        mark = gutter.get(number)
        gut = (
            f'<span class="gut {escape(mark[0])}" title="{escape(mark[1])}">●</span>'
            if mark
            else '<span class="gut"></span>'
        )
        rows.append(
            f'<div class="{classes}" id="L{number}" data-line="{number}">'
            f'<a class="nr" href="{href}{number}#L{number}">{number}</a>{gut}'
            f"<code>{html}</code></div>"
        )
    return Markup("\n".join(rows))


@lru_cache(maxsize=1)
def pygments_css() -> str:
    """Token colours for both themes (the dark ones apply when the browser prefers dark)."""
    light = HtmlFormatter(style="default").get_style_defs(".code")
    dark = HtmlFormatter(style="monokai").get_style_defs(".code")
    return f"{light}\n@media (prefers-color-scheme: dark) {{\n{dark}\n}}\n"


# --- values --------------------------------------------------------------------------------


def cut_word(value: dict[str, Any]) -> Optional[str]:
    cut = value.get("cut")
    return CUT_WORDS.get(cut, str(cut)) if cut else None


def one_line(value: Any, room: int = 120) -> str:
    """A captured value as a short line of text, its cuts named in angle quotes."""
    if not isinstance(value, dict):
        return printable(repr(value))[:room]
    kind = str(value.get("t", "?"))
    cut = cut_word(value)
    if "ref" in value:
        return f"{kind} \u2039same as {value.get('ref_path', value['ref'])}\u203a"
    if cut and "v" not in value and "items" not in value and "entries" not in value:
        return f"{kind} \u2039{cut}\u203a"
    if "v" in value:
        shown = value["v"]
        text = repr(shown) if kind == "str" else str(shown)
        if kind == "NoneType":
            text = "None"
        text = printable(text)
        if len(text) > room:
            text = text[:room] + "\u2026"
        return f"{text} \u2039{cut}, {value.get('len', '?')} chars\u203a" if cut else text
    size = value.get(
        "len", len(value.get("items") or value.get("entries") or value.get("fields") or [])
    )
    return f"{kind} ({size})" if "fields" not in value else kind


def flatten(values: dict[str, Any], prefix: str = "", depth: int = 0) -> dict[str, str]:
    """``{"cart.items[0].price": "3.5", ...}``: every leaf as one line, for comparing hits."""
    flat: dict[str, str] = {}
    for name, value in values.items():
        _flatten_into(flat, f"{prefix}{name}", value, depth)
    return flat


def _flatten_into(flat: dict[str, str], path: str, value: Any, depth: int) -> None:
    if len(flat) > 5000 or depth > 12 or not isinstance(value, dict):
        flat[path] = one_line(value)
        return
    children: list[tuple[str, Any]] = []
    if isinstance(value.get("items"), list):
        children = [(f"{path}[{i}]", v) for i, v in enumerate(value["items"])]
    elif isinstance(value.get("entries"), list):
        children = [
            (f"{path}[{one_line(pair[0], 40)}]", pair[1])
            for pair in value["entries"]
            if isinstance(pair, list) and len(pair) == 2
        ]
    elif isinstance(value.get("fields"), dict):
        children = [(f"{path}.{k}", v) for k, v in value["fields"].items()]
    if not children:
        flat[path] = one_line(value)
        return
    flat[path] = one_line(value)
    for child_path, child in children:
        _flatten_into(flat, child_path, child, depth + 1)


def compare(a: dict[str, Any], b: dict[str, Any]) -> list[tuple[str, str, str, bool]]:
    """Rows ``(path, value in a, value in b, changed)`` of two frames' locals."""
    left, right = flatten(a), flatten(b)
    paths = list(dict.fromkeys([*left, *right]))
    return [
        (p, left.get(p, "\u2014"), right.get(p, "\u2014"), left.get(p) != right.get(p))
        for p in paths
    ]


def top_locals(event: dict[str, Any]) -> dict[str, Any]:
    frames = event.get("frames") or []
    for frame in frames:
        if isinstance(frame, dict) and isinstance(frame.get("locals"), dict):
            return dict(frame["locals"])
    return {}


# --- the live stream -----------------------------------------------------------------------


def event_summary(event: dict[str, Any]) -> dict[str, Any]:
    """What a page needs to show a new event: never the whole snapshot."""
    keys = (
        "id",
        "type",
        "time",
        "service",
        "instance_id",
        "probe_id",
        "file",
        "line",
        "level",
        "fingerprint",
        "exc_type",
        "count",
    )
    summary = {k: event.get(k) for k in keys}
    message = event.get("message")
    summary["message"] = printable(str(message))[:2000] if message is not None else None
    return summary


def probe_summary(probe: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": probe["id"],
        "state": probe["state"],
        "summary": probe["summary"],
        "captures": probe["captures"],
        "file": probe["file"],
        "line": probe["line"],
        "enabled": probe["enabled"],
        "statuses": [
            {
                k: status.get(k)
                for k in (
                    "instance_id",
                    "state",
                    "hits",
                    "captures",
                    "drops",
                    "condition_errors",
                    "time_ns",
                    "message",
                )
            }
            for status in probe["statuses"]
        ],
    }


def ago(moment: Optional[float], now: Optional[float] = None) -> str:
    """ "12 s ago", "3 min ago", "5 h ago", "2 d ago"."""
    if not moment:
        return "never"
    seconds = max(0.0, (now or time.time()) - moment)
    for size, unit in ((86400, "d"), (3600, "h"), (60, "min")):
        if seconds >= size:
            return f"{int(seconds // size)} {unit} ago"
    return f"{int(seconds)} s ago"


def until(moment: Optional[float], now: Optional[float] = None) -> str:
    if not moment:
        return "never"
    seconds = moment - (now or time.time())
    if seconds <= 0:
        return "expired"
    for size, unit in ((86400, "d"), (3600, "h"), (60, "min")):
        if seconds >= size:
            return f"in {int(seconds // size)} {unit}"
    return f"in {int(seconds)} s"


def clock(moment: Optional[float]) -> str:
    if not moment:
        return "\u2014"
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(moment))


def occurrences(times: list[float], now: float, buckets: int = 24, hours: int = 24) -> list[int]:
    """Counts per bucket over the last ``hours``, oldest first (the exception chart)."""
    width = hours * 3600 / buckets
    counts = [0] * buckets
    for moment in times:
        index = int((now - moment) // width)
        if 0 <= index < buckets:
            counts[buckets - 1 - index] += 1
    return counts


def is_library(path: str) -> bool:
    """Installed packages and the standard library (folded away in stacks and file lists)."""
    return is_library_path(path)


def with_readable_refs(event: dict[str, Any]) -> dict[str, Any]:
    """``event`` with a ``ref_path`` beside every ``ref`` (``frames[0].locals.lines[2]``, not
    a JSON Pointer), so pages and the variable tree say where a shared value was shown."""

    def walk(node: Any) -> Any:
        if isinstance(node, dict):
            copy = {key: walk(value) for key, value in node.items()}
            if isinstance(node.get("t"), str) and isinstance(node.get("ref"), str):
                copy["ref_path"] = readable_ref(node["ref"], event)
            return copy
        if isinstance(node, list):
            return [walk(item) for item in node]
        return node

    return walk(event)  # type: ignore[no-any-return]
