"""Rich renderings of what the server returns: tables for lists, a stack table and a variable
tree for snapshots.

Every cut the agent made stays visible (items omitted, depth reached, redacted, string
truncated, budget full, each in angle quotes), so nobody mistakes a partial value for the
whole. Output depends only on the data (times in UTC, no "5 s ago"), which keeps golden tests
stable.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from typing import Any

from rich import box
from rich.console import Console, ConsoleOptions, Group, RenderableType, RenderResult
from rich.measure import Measurement
from rich.table import Table
from rich.text import Text
from rich.tree import Tree

from peephole.client.models import (
    AuditEntry,
    Event,
    ExceptionGroup,
    ExceptionGroupDetail,
    Instance,
    Probe,
    Service,
)
from peephole.protocol import key_text, printable, readable_ref, scalar_text

__all__ = [
    "CLOSE",
    "OPEN",
    "audit",
    "default_frame",
    "event_line",
    "events",
    "exception_group",
    "exceptions",
    "instances",
    "printable",
    "probe",
    "probes",
    "services",
    "snapshot",
]

SCALARS = ("NoneType", "bool", "int", "float")
OPEN, CLOSE = "\u2039", "\u203a"  # the angle quotes around a cut: <depth>
CUT = "yellow"
DIM = "dim"
ERROR = "red"


def format_time(epoch: float | None) -> str:
    if not epoch:
        return "-"
    return time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime(epoch))


WRAP = frozenset(
    {
        "details",
        "target",
        "versions",
        "environments",
        "services",
        "message",
        "module",
        "service",
        "version",
        "env",
        "process",
        "runtime",
    }
)
ONE_LINE = frozenset({"status", "what"})  # cut with an ellipsis, first to shrink


class _Table(Table):
    """A table that grows past the console's width rather than cut a word: an id, a path or
    an exception type cut in two is worse than a long line (free text still wraps first)."""

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        if self.width is None:
            needed = Measurement.get(console, options.update_width(10_000), self).minimum
            if needed > options.max_width:
                self.width = needed
        yield from super().__rich_console__(console, options)


def _table(*columns: str) -> Table:
    """A borderless table. Ids, times and places never wrap (they are copied into other
    commands); free text gives up its room first and is cut with an ellipsis."""
    table = _Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, header_style="bold")
    for column in columns:
        table.add_column(
            column,
            overflow="fold",
            no_wrap=column not in WRAP | ONE_LINE,
            min_width=10 if column in ONE_LINE else None,
        )
    return table


def _one_line(text: str | Text) -> Text:
    cell = Text(printable(text)) if isinstance(text, str) else text
    cell.no_wrap, cell.overflow = True, "ellipsis"
    return cell


def _row(table: Table, *cells: str | Text) -> None:
    """Add a row of data: plain strings are never read as Rich markup."""
    table.add_row(*(Text(printable(c)) if isinstance(c, str) else c for c in cells))


def _empty(what: str) -> Text:
    return Text(f"no {what}", style=DIM)


# --- lists -----------------------------------------------------------------------------------


def services(items: list[Service]) -> RenderableType:
    if not items:
        return _empty("services have connected yet (start one with `peephole run -- ...`)")
    table = _table("service", "instances", "versions", "environments", "last seen")
    for s in items:
        _row(
            table,
            s.name,
            str(s.instances),
            ", ".join(s.versions) or "-",
            ", ".join(s.environments) or "-",
            format_time(s.last_seen),
        )
    return table


def instances(items: list[Instance]) -> RenderableType:
    if not items:
        return _empty("instances")
    table = _table(
        "instance", "service", "version", "env", "process", "runtime", "state", "last seen"
    )
    for i in items:
        _row(
            table,
            i.instance_id,
            i.service,
            i.version or "-",
            i.environment or "-",
            f"{i.host}:{i.pid}",
            i.runtime,
            Text("connected", "green") if i.connected else Text("gone", DIM),
            format_time(i.last_seen),
        )
    problems = [
        Text(f"{i.instance_id}: {p}", "yellow")
        for i in items
        if (p := i.agent_problems()) is not None
    ]
    return Group(table, *problems) if problems else table


def probes(items: list[Probe]) -> RenderableType:
    if not items:
        return _empty("probes")
    table = _table("id", "kind", "location", "target", "state", "captures", "status")
    for p in items:
        _row(
            table,
            p.id,
            p.kind,
            p.location,
            p.target.describe(),
            _state(p.state),
            _captures(p),
            _one_line(p.summary),
        )
    return table


def events(items: list[Event], kinds: bool = True) -> RenderableType:
    """A table of events; ``kinds=False`` drops the type column (a list of one kind)."""
    if not items:
        return _empty("events")
    table = _table("id", "time", "service", *(["type"] if kinds else []), "where", "what")
    for e in items:
        _row(
            table,
            e.id,
            format_time(e.time),
            e.service or "-",
            *([e.type] if kinds else []),
            _where(e),
            _one_line(_what(e)),
        )
    return table


def event_line(event: Event) -> Text:
    """One line per event for ``events tail`` (print it with ``soft_wrap=True``)."""
    line = Text(printable(f"{format_time(event.time)}  {event.type:<9}  {event.service or '-'}  "))
    line.append(printable(_where(event)))
    line.append("  ")
    level = event.raw.get("level")
    if event.type == "log" and level:
        line.append(printable(f"{level}  "), style=ERROR if level in ("error", "critical") else "")
    line.append(printable(_what(event)))
    if event.type != "log":
        line.append(printable(f"  id {event.id}"), style=DIM)
    return line


def exceptions(items: list[ExceptionGroup]) -> RenderableType:
    """Exception groups: the type is never cut (it is what a person searches for), the
    message gives up its room first."""
    if not items:
        return _empty("exceptions")
    table = _table("fingerprint", "exception", "count", "last seen", "services", "what")
    for g in items:
        _row(
            table,
            g.fingerprint,
            g.exc_type or "?",
            str(g.count),
            format_time(g.last_seen),
            ", ".join(g.services) or "-",
            _one_line(g.message or "-"),
        )
    return table


def audit(entries: list[AuditEntry]) -> RenderableType:
    if not entries:
        return _empty("audit entries")
    table = _table("time", "actor", "action", "probe", "details")
    for e in entries:
        details = e.details if isinstance(e.details, str) else json.dumps(e.details)
        _row(table, format_time(e.time), e.actor, e.action, e.probe_id or "-", details)
    return table


# --- details ---------------------------------------------------------------------------------


def probe(p: Probe) -> RenderableType:
    facts = Table.grid(padding=(0, 2))
    facts.add_column(style="bold")
    facts.add_column(overflow="fold")
    _row(facts, "probe", f"{p.id} ({p.kind}, version {p.version})")
    _row(facts, "location", p.location)
    _row(facts, "target", p.target.describe())
    _row(facts, "state", _state(p.state))
    _row(facts, "status", p.summary or "-")
    if p.template is not None:
        _row(facts, "template", p.template)
        _row(facts, "level", p.level + (f" (logger {p.logger})" if p.logger else ""))
    _row(facts, "condition", p.condition or "-")
    _row(facts, "watches", Text("\n".join(printable(w) for w in p.watches) or "-"))
    _row(facts, "captures", _captures(p))
    _row(facts, "rate", f"{p.rate:g}/s" if p.rate else "default")
    _row(facts, "expires", format_time(p.expires_at) if p.expires_at else "never")
    _row(facts, "created", f"{format_time(p.created_at)} by {p.created_by or '-'}")
    if not p.statuses:
        return Group(facts, Text(""), _empty("instance has reported this probe yet"))
    table = _table(
        "instance", "state", "hits", "captures", "drops", "cond. errors", "time", "path", "message"
    )
    for s in p.statuses:
        _row(
            table,
            s.instance_id,
            _state(s.state),
            str(s.hits),
            str(s.captures),
            str(s.drops),
            str(s.condition_errors),
            _duration_ns(s.time_ns),
            s.path or "-",
            Text(printable(s.message or ""), ERROR if s.state == "error" else ""),
        )
    return Group(facts, Text(""), table)


def exception_group(group: ExceptionGroupDetail) -> RenderableType:
    facts = Table.grid(padding=(0, 2))
    facts.add_column(style="bold")
    facts.add_column(overflow="fold")
    _row(facts, "exception", _exception_title(group.exc_type, group.message))
    _row(facts, "fingerprint", group.fingerprint)
    _row(facts, "count", str(group.count))
    _row(facts, "seen", f"{format_time(group.first_seen)} to {format_time(group.last_seen)}")
    _row(facts, "services", ", ".join(group.services) or "-")
    _row(facts, "versions", ", ".join(group.versions) or "-")
    parts: list[RenderableType] = [facts]
    if group.events:
        parts += [Text(""), Text("Recent events", style="bold"), events(group.events, False)]
    return Group(*parts)


def snapshot(event: Event, frame: int | None = None, depth: int | None = None) -> RenderableType:
    """A snapshot or exception event: header, stack, watches, then one frame's locals.

    ``frame`` picks the frame whose locals are shown (default: the innermost that has any);
    ``depth`` limits how many levels of each variable are expanded (default: all captured).
    """
    frames = event.frames
    chosen = default_frame(event) if frame is None else frame
    parts: list[RenderableType] = [_header(event)]
    if frames:
        parts += [Text(""), Text("Stack", style="bold"), _stack(frames, chosen)]
    watches = event.watches
    if watches:
        parts += [Text(""), _watches(watches, depth, event.raw)]
    if frames and 0 <= chosen < len(frames):
        parts += [Text(""), _locals(frames[chosen], chosen, depth, event.raw)]
    return Group(*parts)


def default_frame(event: Event) -> int:
    """The innermost frame that carries locals (0 when none does)."""
    for index, frame in enumerate(event.frames):
        if frame.get("locals"):
            return index
    return 0


def _header(event: Event) -> RenderableType:
    raw = event.raw
    title = Text()
    if event.type == "exception":
        title.append("Exception ", style="bold")
        title.append(
            printable(_exception_title(raw.get("exc_type", "?"), event.message)), style=ERROR
        )
    else:
        title.append(printable(f"{event.type.capitalize()} "), style="bold")
        title.append(printable(event.id))
    lines: list[RenderableType] = [title]
    if event.type != "exception" and (event.probe_id or event.file):
        probe = Text(f"probe {event.probe_id or '-'}")
        if raw.get("probe_version"):
            probe.append(f" v{raw['probe_version']}")
        if event.file:
            probe.append(f" at {event.file}:{event.line}")
        lines.append(Text(printable(probe.plain)))
    where = [f"service {event.service or '-'}", f"instance {event.instance_id or '-'}"]
    if raw.get("thread"):
        where.append(f"thread {raw['thread']}")
    if raw.get("origin"):
        where.append(f"origin {raw['origin']}")
    where.append(format_time(event.time))
    lines.append(Text(printable(" · ".join(where)), style=DIM))
    if event.type == "exception":
        lines.append(
            Text(
                printable(f"event {event.id} · fingerprint {raw.get('fingerprint', '-')}"),
                style=DIM,
            )
        )
    if event.trace_id:
        trace = Text(f"trace {event.trace_id}")
        if event.span_id:
            trace.append(f" span {event.span_id}")
        lines.append(Text(printable(trace.plain)))
        if event.trace_link:
            lines.append(
                Text("trace link ") + Text(event.trace_link, style=f"link {event.trace_link}")
            )
    if event.type == "log":
        lines.append(Text(printable(f"{raw.get('level', 'info')}: {event.message}")))
    if raw.get("cut") == "budget":
        size = raw.get("size")
        lines.append(
            Text(
                f"{OPEN}budget{CLOSE} pruned to fit the snapshot byte budget"
                f"{f' ({size} bytes)' if size else ''}",
                style=CUT,
            )
        )
    for exc in raw.get("chain") or ():
        if isinstance(exc, dict):
            cause = _exception_title(exc.get("exc_type", "?"), exc.get("message", ""))
            lines.append(Text(printable(f"caused by {cause}"), style=DIM))
    return Group(*lines)


def _stack(frames: list[dict[str, Any]], chosen: int) -> Table:
    table = _table("", "#", "function", "location", "module", "locals")
    for index, f in enumerate(frames):
        has_locals = "locals" in f
        marker = "▶" if index == chosen else ""
        app = f.get("app")
        style = DIM if app is False else ""
        _row(
            table,
            marker,
            str(index),
            Text(printable(str(f.get("function", "?"))), style),
            Text(printable(f"{f.get('file', '?')}:{f.get('line', '?')}"), style),
            Text(printable(str(f.get("module") or "-")), style),
            f"{len(f['locals'])}" if has_locals else "-",
        )
    return table


def _watches(watches: list[dict[str, Any]], depth: int | None, root: dict[str, Any]) -> Tree:
    tree = Tree(Text("Watches", style="bold"), guide_style=DIM)
    for watch in watches:
        expr = str(watch.get("expr", "?"))
        if "error" in watch:
            tree.add(Text(printable(f"{expr} ")) + _mark(f"error: {watch['error']}", ERROR))
        else:
            _add_value(tree, expr, watch.get("value"), depth, root)
    return tree


def _locals(frame: dict[str, Any], index: int, depth: int | None, root: dict[str, Any]) -> Tree:
    where = f"{frame.get('function', '?')} ({frame.get('file', '?')}:{frame.get('line', '?')})"
    tree = Tree(Text(printable(f"Locals of frame {index}: {where}"), style="bold"), guide_style=DIM)
    variables = frame.get("locals")
    if variables is None:
        tree.add(
            Text(
                "no locals captured for this frame (only the innermost frames carry them)",
                style=DIM,
            )
        )
    elif not variables:
        tree.add(Text("no local variables", style=DIM))
    else:
        for name, value in variables.items():
            _add_value(tree, name, value, depth, root)
    return tree


# --- the value format (see peephole.protocol) ------------------------------------------------


def _add_value(
    parent: Tree, name: str, value: Any, depth: int | None, root: dict[str, Any]
) -> None:
    """Add ``name`` and its value to ``parent``; ``depth`` levels of children are expanded.
    ``root`` is the whole event, where references to values shown elsewhere point."""
    name = printable(name)
    if not isinstance(value, dict):
        parent.add(Text(printable(f"{name} = {value!r}")))
        return
    label, children, more = _describe(name, value, root)
    if not children and not more:
        parent.add(label)
        return
    if depth is not None and depth <= 0:
        parent.add(label + Text(f" {OPEN}collapsed, raise --depth{CLOSE}", DIM))
        return
    node = parent.add(label)
    below = None if depth is None else depth - 1
    for child_name, child in children:
        _add_value(node, child_name, child, below, root)
    if more:
        node.add(Text(more, CUT))


def _describe(
    name: str, value: dict[str, Any], root: dict[str, Any]
) -> tuple[Text, list[tuple[str, Any]], str]:
    """The label of a value, its children, and the "… N more" line for omitted ones."""
    kind = printable(str(value.get("t", "?")))
    cut = value.get("cut")
    label = Text(printable(name))
    if "ref" in value:
        where = readable_ref(value["ref"], root)
        return label + Text(f": {kind} ") + _mark(f"same as {where}"), [], ""
    if cut in ("depth", "redacted", "budget", "unsupported"):
        return label + Text(f": {kind} ") + _mark(str(cut)), [], ""
    omitted = int(value.get("omitted") or 0)
    if "items" in value:
        items = value.get("items") or []
        label += Text(f": {kind} ({_count(value.get('len', len(items)), 'item')})", DIM)
        children = [(f"[{i}]", item) for i, item in enumerate(items)]
        return label, children, _more(omitted, "item")
    if "entries" in value:
        entries = value.get("entries") or []
        label += Text(f": {kind} ({_count(value.get('len', len(entries)), 'item')})", DIM)
        children = [(f"[{key_text(k)}]", v) for k, v in entries]
        return label, children, _more(omitted, "item")
    if "fields" in value:
        label += Text(f": {kind}", DIM)
        children = list((value.get("fields") or {}).items())
        return label, children, _more(omitted, "field")
    if "v" in value:
        label += Text(" = ") + Text(printable(scalar_text(kind, value["v"])))
        if kind not in SCALARS and kind != "str":
            label += Text(f"  {kind}", DIM)
        if kind == "bytes" and "len" in value:
            label += Text(f" ({_count(value['len'], 'byte')})", DIM)
        if cut == "length":
            label += Text(f" {OPEN}truncated, {value.get('len', '?')} chars{CLOSE}", CUT)
        return label, [], ""
    return label + Text(f": {kind}", DIM), [], ""


def _mark(text: str, style: str = CUT) -> Text:
    """A cut or error marker, set off by angle quotes."""
    return Text(f"{OPEN}{printable(text)}{CLOSE}", style)


def _count(n: Any, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def _more(omitted: int, noun: str) -> str:
    return f"… {omitted} more {noun}{'' if omitted == 1 else 's'}" if omitted else ""


# --- small pieces ----------------------------------------------------------------------------


def _state(state: str) -> Text:
    style = {"active": "green", "error": ERROR, "throttled": CUT, "pending": CUT}.get(state, DIM)
    return Text(state or "-", style)


def _captures(p: Probe) -> str:
    """Events produced out of the hit limit (a hit is one run of the line, captured or not:
    the per-instance table counts both)."""
    return f"{p.captures}/{p.hit_limit}" if p.hit_limit else str(p.captures)


def _duration_ns(ns: int) -> str:
    if ns < 1_000_000:
        return f"{ns / 1000:.0f} µs"
    return f"{ns / 1_000_000:.1f} ms"


def _where(event: Event) -> str:
    """The event's place, with only the last two parts of its path (lists are narrow)."""
    if event.file:
        return f"{_short(event.file)}:{event.line}"
    frames: Iterable[dict[str, Any]] = event.frames
    for f in frames:
        return f"{_short(str(f.get('file', '?')))}:{f.get('line', '?')}"
    return "-"


def _short(path: str) -> str:
    parts = path.replace("\\", "/").split("/")
    return path if len(parts) <= 2 else "…/" + "/".join(parts[-2:])


def _what(event: Event) -> str:
    raw = event.raw
    if event.type == "log":
        return event.message
    if event.type == "exception":
        return _exception_title(raw.get("exc_type", "?"), event.message)
    return f"probe {event.probe_id or '-'}"


def _exception_title(exc_type: str, message: str) -> str:
    return f"{exc_type}: {message}" if message else exc_type
