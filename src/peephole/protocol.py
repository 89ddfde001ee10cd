"""The wire contract between agents, the server and clients.

Both ends import this module, so it must stay importable on every Python the agent
supports (3.9+) and depend on nothing but the standard library.

Messages are JSON objects with a ``"type"`` field, sent as WebSocket text frames; each one,
and each event type, is defined once in :mod:`peephole.messages` (the agent sends ``hello``,
``heartbeat``, ``events``, ``status`` and the answers ``source`` and ``files``; the server
sends ``welcome``, ``probes`` or ``probes_delta``, ``policy``, ``ack``, ``get_source``,
``list_files`` and ``error``). This module holds the constants, the dataclasses carried inside
messages and the bounds of their fields.

Captured values use one JSON shape everywhere (snapshots, watches, exception frames)::

    {"t": "int", "v": 3}                                 scalar (None, bool, int, float, str)
    {"t": "str", "v": "abc...", "len": 1000000, "cut": "length"}     truncated string
    {"t": "list", "len": 5, "items": [<value>, ...]}     list, tuple, set, frozenset, deque
    {"t": "dict", "len": 2, "entries": [[<key value>, <value>], ...]}
    {"t": "shop.Cart", "fields": {"id": <value>, ...}}   any other object (__dict__/__slots__)
    {"t": "bytes", "v": "<hex or escaped text>", "len": 10}

Cuts: ``"cut"`` is one of ``CUTS`` and says why a value is incomplete; a container with
``"omitted": N`` lost N items to the item limit; ``{"t": ..., "cut": "depth"}`` was not walked;
``{"t": ..., "ref": <path>}`` is a value already shown at ``path`` (shared or cyclic);
``{"t": ..., "cut": "redacted"}`` had a secret name or value.
"""

from __future__ import annotations

import ast
import json
import re
import time
import uuid
from dataclasses import asdict, dataclass, field, fields
from typing import (
    TYPE_CHECKING,
    Annotated,
    Any,
    Dict,
    List,
    Literal,
    Mapping,
    Optional,
    Tuple,
    Type,
    TypeVar,
    Union,
    get_args,
    get_origin,
    get_type_hints,
)

__all__ = [
    "ACTIVE",
    "AGENT_PATH",
    "CONTROL_RANGES",
    "CUTS",
    "DISABLED",
    "DONE",
    "EDITABLE_FIELDS",
    "ERROR",
    "EVENT_TYPES",
    "EXCEPTION",
    "EXPIRED",
    "FEATURES",
    "HEARTBEAT_SECONDS",
    "INSTANCE_STALE_SECONDS",
    "LOG",
    "LOGPOINT",
    "LOG_LEVELS",
    "MAX_COUNT",
    "MAX_COUNTER",
    "MAX_HELLO_BYTES",
    "MAX_MESSAGE_BYTES",
    "MAX_PROBE_BYTES",
    "OLDEST_PROTOCOL_VERSION",
    "PENDING",
    "PROBE_DELTA",
    "PROBE_KINDS",
    "PROBE_STATES",
    "PROTOCOL_VERSION",
    "SNAPSHOT",
    "THROTTLED",
    "TRACEPOINT",
    "AgentHealth",
    "AgentPolicy",
    "Count",
    "EnvError",
    "EventType",
    "InstanceInfo",
    "Limits",
    "LogLevel",
    "OneOf",
    "ProbeKind",
    "ProbeSpec",
    "ProbeState",
    "ProbeStatus",
    "Problem",
    "ProtocolError",
    "Range",
    "Shallow",
    "Shape",
    "Size",
    "SmallCount",
    "Time",
    "decode",
    "encode",
    "env_kinds",
    "env_settings",
    "expression_problem",
    "expression_problem_at",
    "is_library_path",
    "key_text",
    "new_event",
    "printable",
    "readable_ref",
    "scalar_text",
    "template_problem",
    "template_problem_at",
]

# The version of this contract. A peer says its own (``protocol`` in ``hello`` and ``welcome``;
# absent means 1). Later versions only add: both ends speak the lower of the two versions,
# and refuse a peer older than ``OLDEST_PROTOCOL_VERSION`` with a reason.
PROTOCOL_VERSION = 1
OLDEST_PROTOCOL_VERSION = 1
AGENT_PATH = "/agent/v1/ws"
MAX_MESSAGE_BYTES = 4 * 1024 * 1024  # the largest message either end accepts
MAX_HELLO_BYTES = 32 * 1024  # the largest first message (checked before the key is known)
MAX_PROBE_BYTES = 64 * 1024  # the largest probe spec the API can produce, encoded
HEARTBEAT_SECONDS = 10.0
INSTANCE_STALE_SECONDS = 60.0

# What an agent may say it understands in ``hello`` (``"features": [...]``).
PROBE_DELTA = "probe_delta"  # takes ``probes_delta`` instead of whole ``probes`` lists
FEATURES = (PROBE_DELTA,)

TRACEPOINT = "tracepoint"
LOGPOINT = "logpoint"
PROBE_KINDS = (TRACEPOINT, LOGPOINT)
ProbeKind = Literal["tracepoint", "logpoint"]  # the same, as a type (Pydantic, TypedDicts)

SNAPSHOT = "snapshot"
LOG = "log"
EXCEPTION = "exception"
EVENT_TYPES = (SNAPSHOT, LOG, EXCEPTION)
EventType = Literal["snapshot", "log", "exception"]

# Probe states, as reported per instance.
PENDING = "pending"  # the module is not loaded yet; installed at import
ACTIVE = "active"
ERROR = "error"  # see ProbeStatus.message
THROTTLED = "throttled"  # a rate or the CPU budget is exceeded; hits are skipped for now
EXPIRED = "expired"
DONE = "done"  # hit limit reached
DISABLED = "disabled"
PROBE_STATES = (PENDING, ACTIVE, ERROR, THROTTLED, EXPIRED, DONE, DISABLED)
ProbeState = Literal["pending", "active", "error", "throttled", "expired", "done", "disabled"]

# What a person may change on a probe after creating it (the API's edit, the CLI, the UI).
EDITABLE_FIELDS = (
    "condition",
    "watches",
    "template",
    "level",
    "logger",
    "hit_limit",
    "rate",
    "enabled",
    "limits",
    "file",
    "line",
)

CUTS = ("depth", "items", "length", "budget", "redacted", "unsupported")

LogLevel = Literal["debug", "info", "warning", "error", "critical"]
LOG_LEVELS: Tuple[str, ...] = get_args(LogLevel)


class ProtocolError(ValueError):
    """A message that does not follow this contract."""


# --- Field constraints, read by :mod:`peephole.messages`' validator from ``Annotated`` hints ----

MAX_COUNTER = 2**63 - 1  # what a BIGINT column holds
MAX_COUNT = 2**31 - 1  # what an INTEGER column holds (versions, pids, exception counts)
MAX_TIME = 1e11  # epoch seconds a float column holds (JSON has no NaN or Infinity)


@dataclass(frozen=True)
class Range:
    """An ``int`` or ``float`` field's bounds (booleans are not numbers on the wire);
    ``what`` names the field's meaning in a refusal."""

    low: float
    high: float
    what: str = ""


@dataclass(frozen=True)
class Size:
    """Bounds on the length of a text or list field (``high`` None: no upper bound)."""

    low: int = 0
    high: Optional[int] = None


@dataclass(frozen=True)
class OneOf:
    """A text field that takes one of ``values``."""

    values: Tuple[str, ...]


@dataclass(frozen=True)
class Shape:
    """A dict field holding ``cls`` (a dataclass of this module) in its ``to_dict()`` form."""

    cls: type


@dataclass(frozen=True)
class Shallow:
    """A list whose items are objects the server stores and shows but never reads
    (captured frames and values): checked to be objects, not walked, which would cost
    more than storing them."""


Count = Annotated[int, Range(0, MAX_COUNTER)]
SmallCount = Annotated[int, Range(0, MAX_COUNT)]
Time = Annotated[float, Range(0, MAX_TIME, "a time in seconds")]
State = Annotated[str, OneOf(PROBE_STATES)]


@dataclass
class Limits:
    """Capture limits. The defaults are the design brief's; each probe may override them."""

    max_depth: int = 3
    max_items: int = 100
    max_string: int = 256
    max_fields: int = 30
    max_bytes: int = 64 * 1024
    max_frames: int = 20
    frames_with_locals: int = 3

    @classmethod
    def from_dict(cls, data: Optional[Dict[str, Any]]) -> Limits:
        return _from_dict(cls, data or {})


@dataclass
class ProbeSpec:
    """What a person asked for, as the server sends it to agents."""

    id: str
    kind: str
    file: str
    line: int
    condition: Optional[str] = None
    watches: List[str] = field(default_factory=list)
    template: Optional[str] = None  # logpoints: "total={total:.2f} items={len(items)}"
    level: str = "info"  # logpoints
    logger: Optional[str] = None  # logpoints: also write the line to this `logging` logger
    hit_limit: Optional[int] = None  # None: unlimited (logpoints); tracepoints default 10
    expires_at: Optional[float] = None  # epoch seconds
    rate: Optional[float] = None  # hits per second for this probe; None: the kind's default
    enabled: bool = True
    version: int = 1  # bumped on every edit
    limits: Limits = field(default_factory=Limits)

    def __post_init__(self) -> None:
        if isinstance(self.limits, dict):
            self.limits = Limits.from_dict(self.limits)

    def to_dict(self) -> Dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Dict[str, Any]) -> ProbeSpec:
        spec = _from_dict(cls, data)
        if spec.kind not in PROBE_KINDS:
            raise ProtocolError(f"probe kind must be one of {PROBE_KINDS}, not {spec.kind!r}")
        if spec.kind == LOGPOINT and not spec.template:
            raise ProtocolError("a logpoint needs a template")
        if not isinstance(spec.line, int) or spec.line < 1:
            raise ProtocolError(f"line must be a positive integer, not {spec.line!r}")
        return spec


@dataclass
class ProbeStatus:
    """How one probe is doing in one process."""

    probe_id: str
    state: State
    message: Optional[str] = None  # why, for error/throttled/pending
    version: SmallCount = 1
    path: Optional[str] = None  # the deployed file the probe resolved to
    hits: Count = 0  # times the line ran (condition true or not)
    captures: Count = 0  # events produced
    drops: Count = 0  # hits skipped by rate limits, CPU budget or a full buffer
    condition_errors: Count = 0
    time_ns: Count = 0  # time spent in the probe on application threads

    def to_dict(self) -> Dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Dict[str, Any]) -> ProbeStatus:
        return _from_dict(cls, data)


@dataclass
class AgentHealth:
    """The agent's own state, sent with every ``status`` message as ``agent``."""

    internal_errors: Count = 0  # failures inside the agent, caught and counted
    last_internal_error: Optional[str] = None  # where, and the exception type and message
    abandoned_events: Count = 0  # events still buffered when the process exited, never sent

    def to_dict(self) -> Dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Dict[str, Any]) -> AgentHealth:
        return _from_dict(cls, data)


@dataclass
class InstanceInfo:
    """Who an agent is; sent in ``hello``. Text sizes are the database columns'."""

    instance_id: Annotated[str, Size(1, 64)]
    service: Annotated[str, Size(1, 200)]
    version: Optional[Annotated[str, Size(0, 200)]] = None
    environment: Optional[Annotated[str, Size(0, 200)]] = None
    tags: Dict[str, str] = field(default_factory=dict)
    host: Annotated[str, Size(0, 255)] = ""
    pid: SmallCount = 0
    runtime: Annotated[str, Size(0, 100)] = ""  # "CPython 3.12.1"
    agent_version: Annotated[str, Size(0, 50)] = ""
    started_at: Time = 0.0

    def to_dict(self) -> Dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Dict[str, Any]) -> InstanceInfo:
        return _from_dict(cls, data)


@dataclass
class AgentPolicy:
    """Settings the server can change on running agents without a restart."""

    redact_names: List[str] = field(default_factory=list)  # added to the built-in list
    allow_names: List[str] = field(default_factory=list)  # removed from it
    redact_patterns: List[str] = field(default_factory=list)  # regexes over string values
    capture_exceptions: bool = True
    serve_source: bool = True  # False: the agents serve no source (admin's choice)
    source_deny: List[str] = field(default_factory=list)  # file patterns never served

    def to_dict(self) -> Dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Optional[Dict[str, Any]]) -> AgentPolicy:
        return _from_dict(cls, data or {})


def new_event(event_type: str, **payload: Any) -> Dict[str, Any]:
    """Start an event dict with the fields every event has (``id``, ``type``, ``time``); the
    fields of each type are defined in :mod:`peephole.messages` (``SnapshotEvent``,
    ``LogEvent``, ``ExceptionEvent``)."""
    if event_type not in EVENT_TYPES:
        raise ProtocolError(f"unknown event type {event_type!r}")
    event: Dict[str, Any] = {"id": uuid.uuid4().hex, "type": event_type, "time": time.time()}
    event.update(payload)
    return event


def encode(message: Mapping[str, Any]) -> str:
    """Serialize a message; values the JSON encoder cannot take become their type name."""
    return json.dumps(message, separators=(",", ":"), default=_fallback)


def decode(text: str | bytes) -> Dict[str, Any]:
    """Parse one message, checking its size and that it is an object with a ``type``."""
    if len(text) > MAX_MESSAGE_BYTES:
        raise ProtocolError(f"message of {len(text)} bytes exceeds {MAX_MESSAGE_BYTES}")
    try:
        message = json.loads(text)
    except ValueError as exc:
        raise ProtocolError(f"not JSON: {exc}") from None
    if not isinstance(message, dict) or not isinstance(message.get("type"), str):
        raise ProtocolError("a message must be a JSON object with a string 'type'")
    return message


def _fallback(value: object) -> str:
    return f"<{type(value).__name__}>"


if TYPE_CHECKING:
    from _typeshed import DataclassInstance

_Data = TypeVar("_Data", bound="DataclassInstance")


def _from_dict(cls: Type[_Data], data: Dict[str, Any]) -> _Data:
    if not isinstance(data, dict):
        raise ProtocolError(f"{cls.__name__} must be an object")
    known = {f.name for f in fields(cls)}
    try:
        return cls(**{k: v for k, v in data.items() if k in known})
    except TypeError as exc:
        raise ProtocolError(f"{cls.__name__}: {exc}") from None


# --- expression syntax, checked the same way by the API and shown the same way everywhere ---


@dataclass(frozen=True)
class Problem:
    """Why an expression or a template is refused, kept apart so that a form can place its
    own caret: ``reason`` (one line that names the column) and the 1-based ``column`` of
    ``text`` it points at (0: no one place, as for text nested too deeply)."""

    reason: str
    text: str
    column: int = 0

    def __str__(self) -> str:
        """The reason, then the text with a caret under the column (the API's and CLI's
        three lines), or the reason alone when there is no column."""
        return _caret(self.text, self.column, self.reason) if self.column else self.reason


def expression_problem(source: str) -> Optional[str]:
    """Why ``source`` is not a Python expression: the column, then the text with a caret
    under it (``None`` when it parses; the agent still decides what is allowed)."""
    found = expression_problem_at(source)
    return None if found is None else str(found)


def expression_problem_at(source: str) -> Optional[Problem]:
    """:func:`expression_problem` with the reason and the column apart."""
    found = _syntax_error(source)
    if found is None:
        return None
    column, reason = found
    if not column:
        return Problem(reason, source)
    return Problem(f"syntax error at column {column}: {reason}", source, column)


def template_problem(source: str) -> Optional[str]:
    """Why a logpoint template is refused (an unclosed or stray brace, a placeholder that is
    not an expression), with the column in the template and a caret; ``None`` if it parses.
    ``{{`` and ``}}`` are literal braces; a placeholder may end in ``!r``/``!s`` and a
    ``:format`` spec, as in an f-string."""
    found = template_problem_at(source)
    return None if found is None else str(found)


def template_problem_at(source: str) -> Optional[Problem]:
    """:func:`template_problem` with the reason and the column apart."""
    index = 0
    while index < len(source):
        if source.startswith(("{{", "}}"), index):
            index += 2
        elif source[index] == "}":
            column = index + 1
            return Problem(
                f"single '}}' at column {column}; write '}}}}' for a brace", source, column
            )
        elif source[index] != "{":
            index += 1
        else:
            end, expression_end = _placeholder_end(source, index + 1)
            if end < 0:
                column = index + 1
                return Problem(
                    f"placeholder at column {column} is not closed with '}}'", source, column
                )
            problem = _placeholder_problem(source, index + 1, expression_end)
            if problem:
                return problem
            index = end + 1
    return None


def _placeholder_end(source: str, start: int) -> Tuple[int, int]:
    """Where the placeholder starting at ``start`` ends and where its expression ends (before
    ``!r`` or ``:spec``); ``(-1, -1)`` when it is not closed. Brackets and strings inside
    the expression are skipped."""
    depth, quote, expression_end, index = 0, "", -1, start
    while index < len(source):
        char = source[index]
        if quote:
            if char == "\\":
                index += 1
            elif source.startswith(quote, index):
                index += len(quote) - 1
                quote = ""
        elif expression_end >= 0:
            if char == "}":
                return index, expression_end
        elif char in "'\"":
            quote = char * 3 if source.startswith(char * 3, index) else char
            index += len(quote) - 1
        elif char in "([{":
            depth += 1
        elif char in ")]" or (char == "}" and depth > 0):
            depth -= 1
        elif char == "}":
            return index, index
        elif depth == 0 and (char == ":" or (char == "!" and source[index + 1 : index + 2] != "=")):
            expression_end = index
        index += 1
    return -1, -1


def _placeholder_problem(source: str, start: int, end: int) -> Optional[Problem]:
    expression = source[start:end]
    if not expression.strip():
        return Problem(f"empty placeholder at column {start}", source, start)
    found = _syntax_error(expression)
    if found is None:
        return None
    offset, reason = found
    if not offset:
        return Problem(f"the placeholder at column {start} is {reason}", source)
    column = start + offset
    return Problem(f"syntax error at column {column}: {reason}", source, column)


def _syntax_error(text: str) -> Optional[Tuple[int, str]]:
    """The column in ``text`` (1-based, counting every character) and the reason of its
    syntax error, parsed as the agent parses it (surrounding whitespace ignored); column 0
    when it is too deeply nested to parse."""
    stripped = text.strip()
    try:
        ast.parse(stripped, mode="eval")
    except SyntaxError as exc:
        lines = stripped.split("\n")
        number = min(max(1, exc.lineno or 1), len(lines))
        line = lines[number - 1]
        offset = min(exc.offset or len(line) + 1, len(line) + 1)  # 0 or none: at the end
        before = sum(len(previous) + 1 for previous in lines[: number - 1])
        return len(text) - len(text.lstrip()) + before + offset, exc.msg
    except (RecursionError, MemoryError):
        return 0, "nested too deeply"
    return None


def _caret(text: str, column: int, message: str) -> str:
    """``message``, then ``text`` on one line with a caret under ``column``: the same three
    lines in the API's answer, the CLI and the docs."""
    flat = "".join(" " if char in "\t\r\n" else char for char in text)
    column = max(1, min(column, len(flat) + 1))
    return f"{message}\n    {flat}\n    {' ' * (column - 1)}^"


# --- captured values: where a shared value was first shown, as a person reads it ----------


def readable_ref(ref: Any, event: Dict[str, Any]) -> str:
    """The place a ``{"ref": ...}`` value points at, as a person reads it: the JSON Pointer
    ``/frames/0/locals/lines/items/2`` becomes ``frames[0].locals.lines[2]``, a dict entry
    shows its key and a watch its expression. The CLI and the web UI both show this."""
    if isinstance(ref, (list, tuple)):
        return ".".join(str(part) for part in ref)
    if not isinstance(ref, str) or not ref.startswith("/"):
        return str(ref)
    parts = [p.replace("~1", "/").replace("~0", "~") for p in ref[1:].split("/")]
    parts = [p for p in parts if p not in ("", "None")]  # no segment: the value itself
    text, node, index = "", event, 0
    while index < len(parts):
        step, arg = parts[index], parts[index + 1] if index + 1 < len(parts) else None
        text, node, used = _ref_step(text, node, step, arg)
        index += used
    return text or "the event"


def _ref_step(text: str, node: Any, step: str, arg: Optional[str]) -> Tuple[str, Any, int]:
    """One step of :func:`readable_ref`: the text so far, the node reached (``None`` when
    the pointer leaves the data) and how many segments the step used."""
    if step in ("frames", "watches") and arg is not None and arg.isdigit():
        return f"{text}{step}[{arg}]", _child(_child(node, step), int(arg)), 2
    if step == "value" and isinstance(node, dict) and "expr" in node:
        return f"{text} ({node['expr']})", node.get("value"), 1
    if step == "locals" and arg is not None:
        return f"{text}.locals.{arg}", _child(_child(node, "locals"), arg), 2
    if step == "items" and arg is not None and arg.isdigit():
        return f"{text}[{arg}]", _child(_child(node, "items"), int(arg)), 2
    if step == "entries" and arg is not None and arg.isdigit():
        entry = _child(_child(node, "entries"), int(arg))
        ok = isinstance(entry, (list, tuple)) and len(entry) == 2
        key = key_text(entry[0]) if ok else f"#{arg}"
        return f"{text}[{key}]", entry[1] if ok else None, 3
    if step == "fields" and arg is not None:
        return f"{text}.{arg}", _child(_child(node, "fields"), arg), 2
    return f"{text}.{step}" if text else step, None, 1


def _child(node: Any, key: Any) -> Any:
    try:
        return node[key]
    except (KeyError, IndexError, TypeError):
        return None


def key_text(key: Any) -> str:
    """A captured dict key as Python would write it (``'sku'``, ``3``, ``b'k'``); a key
    that was cut or is no scalar shows its type in angle quotes."""
    if isinstance(key, dict) and "v" in key and "cut" not in key:
        return scalar_text(str(key.get("t", "")), key["v"])
    if isinstance(key, dict):
        return f"\u2039{key.get('t', '?')}\u203a"
    return repr(key)


# --- Settings from PEEPHOLE_* environment variables ---------------------------------------------
# The agent (``PEEPHOLE_*``) and the server (``PEEPHOLE_SERVER_*``) read their variables with
# this one loader, so a value means the same in both and a bad one is refused the same way.

ENV_TRUE = ("1", "true", "yes", "on")
ENV_FALSE = ("0", "false", "no", "off", "")  # empty: the switch is off
_KIND_NAMES = {bool: "boolean (1/true/yes/on or 0/false/no/off)", int: "integer", float: "number"}


class EnvError(ValueError):
    """A variable whose value cannot be used; the message names the variable and the value."""


def env_value(variable: str, raw: str, kind: type) -> Any:
    """``raw`` read as ``kind``: bool, int, float, list (comma-separated, blanks dropped) or
    str (empty: ``None``, the setting is not set)."""
    text = raw.strip()
    try:
        if kind is bool:
            if text.lower() in ENV_TRUE or text.lower() in ENV_FALSE:
                return text.lower() in ENV_TRUE
            raise ValueError(text)
        if kind in (int, float):
            return kind(text)
    except ValueError:
        raise EnvError(f"{variable}={text!r} is not a valid {_KIND_NAMES[kind]}") from None
    if kind is list:
        return [item.strip() for item in text.split(",") if item.strip()]
    return text or None


def env_kinds(settings: type) -> Dict[str, type]:
    """Field name -> kind for a settings dataclass, from its type hints (``Optional[X]`` is X);
    fields of other types (dicts, nested dataclasses) are left out for the caller to handle."""
    kinds: Dict[str, type] = {}
    for name, hint in get_type_hints(settings).items():
        if get_origin(hint) is Union:
            hint = next(arg for arg in get_args(hint) if arg is not type(None))
        kind = get_origin(hint) or hint
        if kind in (bool, int, float, str, list):
            kinds[name] = kind
    return kinds


def env_settings(
    environ: Mapping[str, str],
    prefix: str,
    kinds: Mapping[str, type],
    aliases: Optional[Mapping[str, str]] = None,
) -> Dict[str, Any]:
    """The settings named in ``kinds`` that ``environ`` sets as ``<prefix><NAME>`` (or by an
    alias: variable -> name), each parsed by :func:`env_value`; other variables are ignored."""
    values: Dict[str, Any] = {}
    for variable, raw in environ.items():
        if not variable.startswith(prefix):
            continue
        name = (aliases or {}).get(variable, variable[len(prefix) :].lower())
        if name in kinds:
            values[name] = env_value(variable, raw, kinds[name])
    return values


def scalar_text(kind: str, value: Any) -> str:
    """A captured scalar's ``v`` as Python would write it: ``'text'``, ``b'raw'``, ``None``,
    ``3``; a value already sent as text (a date, a Decimal) as it is."""
    if kind == "str" and isinstance(value, str):
        return repr(value)
    if kind == "bytes":
        return f"b'{value}'" if isinstance(value, str) else repr(value)
    if value is None:
        return "None"
    return repr(value) if not isinstance(value, str) else value


# --- text shown to people: control characters escaped, in the CLI and the web UI alike ------

# C0 and C1 control characters, DEL, and the bidirectional marks and overrides that reorder
# what a terminal or a page shows: captured text (an exception message, a log line, a value,
# a name) may hold any of them, and printed raw an ESC sequence rewrites the operator's
# terminal. Inclusive ranges of code points; the web UI's tree.js mirrors them (its CONTROL),
# and a test compares the two.
CONTROL_RANGES = ((0x00, 0x1F), (0x7F, 0x9F), (0x200E, 0x200F), (0x202A, 0x202E), (0x2066, 0x2069))
_NAMED_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
_ESCAPES = {
    code: _NAMED_ESCAPES.get(chr(code)) or (f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}")
    for first, last in CONTROL_RANGES
    for code in range(first, last + 1)
}


# Installed packages and the standard library, as the agent reports paths (POSIX or Windows).
_LIBRARY_PATH = re.compile(
    r"[\\/](site-packages|dist-packages)[\\/]|[\\/]lib[\\/]python\d[\d.]*[\\/]|[\\/]Lib[\\/]"
)


def is_library_path(path: str) -> bool:
    """Whether a file the agent reports is an installed package's or the standard library's:
    the CLI and the web UI list the application's files first and fold these away."""
    return _LIBRARY_PATH.search(path) is not None


def printable(text: str) -> str:
    """``text`` with every control character escaped (``\\x1b``, ``\\n``, ``\\u202e``), so
    shown text never moves the cursor, clears the screen or reorders what follows."""
    return text if text.isprintable() else text.translate(_ESCAPES)
