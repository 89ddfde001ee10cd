"""Every message between agents and the server, and every event, as one typed definition.

Each message is a :class:`typing.TypedDict` whose ``type`` key is a ``Literal``; the agent
and the server build messages by calling these classes and read them through them, so a
renamed or mistyped field is a type error on both sides. ``Annotated`` hints carry the
constraints of :mod:`peephole.protocol` (:class:`~peephole.protocol.Range`,
:class:`~peephole.protocol.Size`, ...), and :func:`agent_message` checks what an agent sends
against these same definitions: adding a field here is all it takes for both ends and the
gateway's validation to know it.

Keys not defined here are allowed and ignored (a newer peer may add fields); a message of an
unknown type is ignored by the receiver. Importable on Python 3.9 (the agent imports it).
"""

import dataclasses
from typing import (
    Annotated,
    Any,
    Callable,
    Dict,
    Iterable,
    List,
    Literal,
    Optional,
    Tuple,
    TypedDict,
    Union,
    get_args,
    get_origin,
    get_type_hints,
)

from peephole import protocol
from peephole.protocol import (
    MAX_COUNT,
    AgentHealth,
    AgentPolicy,
    Count,
    InstanceInfo,
    OneOf,
    ProbeSpec,
    ProbeStatus,
    ProtocolError,
    Range,
    Shallow,
    Shape,
    Size,
    SmallCount,
    Time,
)

__all__ = [
    "Ack",
    "AgentMessage",
    "Error",
    "Event",
    "ExceptionEvent",
    "Files",
    "GetSource",
    "Heartbeat",
    "Hello",
    "ListFiles",
    "LogEvent",
    "Policy",
    "Probes",
    "ProbesDelta",
    "ServerMessage",
    "SnapshotEvent",
    "Source",
    "Status",
    "Welcome",
    "agent_message",
    "check",
    "type_of",
]

MAX_EVENTS_PER_MESSAGE = 10_000

EventId = Annotated[str, Size(1, 64)]
ProbeId = str
Frames = Annotated[List[Dict[str, Any]], Shallow()]  # see protocol.py: captured values
InstanceDict = Annotated[Dict[str, Any], Shape(InstanceInfo)]
StatusDict = Annotated[Dict[str, Any], Shape(ProbeStatus)]
HealthDict = Annotated[Dict[str, Any], Shape(AgentHealth)]
PolicyDict = Annotated[Dict[str, Any], Shape(AgentPolicy)]
SpecDict = Annotated[Dict[str, Any], Shape(ProbeSpec)]


# --- events (in ``events`` messages, the REST API and the live stream) ---------------------


class _EventBase(TypedDict):
    """What every event has. Required keys are what the server needs to store an event
    (an event that names no probe is kept, as exceptions are); the agent sends every key its
    definition lists."""

    id: EventId
    time: Time


class _EventExtras(TypedDict, total=False):
    instance_id: str  # filled by the agent; the server's own value wins when stored
    service: str  # likewise
    trace_id: Optional[str]  # OpenTelemetry, hex, when a span was active
    span_id: Optional[str]
    thread: str


class _ProbeEventExtras(_EventExtras, total=False):
    probe_id: ProbeId  # the server keeps only events of probes it sent to the connection
    probe_version: SmallCount
    file: str  # the deployed file the probe resolved to
    line: SmallCount


class _SnapshotBase(_EventBase):
    type: Literal["snapshot"]  # protocol.SNAPSHOT


class SnapshotEvent(_SnapshotBase, _ProbeEventExtras, total=False):
    """A tracepoint's hit: the stack, some frames' locals, the watches' values."""

    frames: Frames  # innermost first: file, line, function, module, locals (some frames)
    watches: Frames  # [{"expr", "value"} | {"expr", "error"}]
    size: Count  # bytes of captured values
    cut: str  # "budget" when values were pruned to fit


class _LogBase(_EventBase):
    type: Literal["log"]  # protocol.LOG


class LogEvent(_LogBase, _ProbeEventExtras, total=False):
    """A logpoint's line."""

    level: protocol.LogLevel
    message: str
    errors: List[str]  # placeholders that failed, and why


class _ExceptionBase(_EventBase):
    type: Literal["exception"]  # protocol.EXCEPTION


class ExceptionEvent(_ExceptionBase, _EventExtras, total=False):
    """An exception seen by the agent: with locals (``snapshot``), or only counted."""

    fingerprint: Annotated[str, Size(0, 128)]  # the server derives one when absent
    exc_type: str
    message: str
    origin: str  # "thread", "asyncio", "wsgi", "logging"...
    frames: Frames  # each with "app" (and "library" for other code)
    chain: Frames  # causes and contexts: exc_type, message, frames
    snapshot: bool  # False: a count of occurrences without locals
    count: SmallCount
    first_time: Optional[Time]
    last_time: Optional[Time]
    size: Count
    cut: str


Event = Union[SnapshotEvent, LogEvent, ExceptionEvent]


# --- agent -> server ---------------------------------------------------------------------


class _HelloBase(TypedDict):
    type: Literal["hello"]
    key: Annotated[str, Size(1)]
    instance: InstanceDict


class Hello(_HelloBase, total=False):
    """The first message, at most ``protocol.MAX_HELLO_BYTES``."""

    protocol: SmallCount  # the agent's protocol version; absent: 1
    features: List[str]  # what the agent understands, see ``protocol.FEATURES``


class Heartbeat(TypedDict):
    type: Literal["heartbeat"]
    time: Time


class _EventsBase(TypedDict):
    type: Literal["events"]
    seq: Count  # the server answers ``ack`` with it once the events are stored
    events: Annotated[List[Event], Size(0, MAX_EVENTS_PER_MESSAGE)]


class Events(_EventsBase, total=False):
    dropped: SmallCount  # events lost to the full buffer since the last acknowledged batch


class _StatusBase(TypedDict):
    type: Literal["status"]
    probes: List[StatusDict]


class Status(_StatusBase, total=False):
    agent: Optional[HealthDict]  # the agent's own failures, and at exit what it could not send


class _SourceBase(TypedDict):
    type: Literal["source"]
    request_id: Optional[str]
    path: str


class Source(_SourceBase, total=False):
    """The answer to ``get_source``: the text, or why not."""

    text: str
    lines: List[SmallCount]  # the line numbers that can take a probe
    error: str


class Files(TypedDict):
    """The answer to ``list_files``: paths of loaded application modules."""

    type: Literal["files"]
    request_id: Optional[str]
    files: List[str]


AgentMessage = Union[Hello, Heartbeat, Events, Status, Source, Files]


# --- server -> agent ---------------------------------------------------------------------


class Welcome(TypedDict):
    type: Literal["welcome"]
    instance_id: str
    config: PolicyDict
    protocol: int  # the server's protocol version
    last_disconnect: Optional[str]  # why the server last closed this instance


class Probes(TypedDict):
    """The whole list, to agents without the ``probe_delta`` feature."""

    type: Literal["probes"]
    probes: List[SpecDict]


class _ProbesDeltaBase(TypedDict):
    type: Literal["probes_delta"]
    set: List[SpecDict]
    remove: List[ProbeId]


class ProbesDelta(_ProbesDeltaBase, total=False):
    keep: List[ProbeId]  # the first of a connection: uninstall what is in neither list


class Policy(TypedDict):
    type: Literal["policy"]
    config: PolicyDict


class Ack(TypedDict):
    type: Literal["ack"]
    seq: Count


class GetSource(TypedDict):
    type: Literal["get_source"]
    request_id: str
    path: str


class ListFiles(TypedDict):
    type: Literal["list_files"]
    request_id: str


class Error(TypedDict):
    """Sent before the server closes a connection; ``reason`` is also the close reason."""

    type: Literal["error"]
    reason: str


ServerMessage = Union[Welcome, Probes, ProbesDelta, Policy, Ack, GetSource, ListFiles, Error]


# --- validation, driven by the definitions above -------------------------------------------


def agent_message(message: Dict[str, Any]) -> Optional[AgentMessage]:
    """``message`` (decoded, with a string ``type``) checked against its definition;
    ``None`` for a type this server does not know (a newer agent's: ignored).
    Raises :class:`ProtocolError` naming the message, the field and the problem."""
    check = _agent_checks().get(message["type"])
    if check is None:
        return None
    try:
        check(message)
    except _Bad as bad:
        raise ProtocolError(f"{message['type']}: {bad.text()}") from None
    return message  # type: ignore[return-value]


def check(definition: type, value: Any, name: str) -> None:
    """Raise :class:`ProtocolError` (``name: field problem``) when ``value`` does not fit
    ``definition`` (a TypedDict here, or a dataclass of ``protocol`` in its dict form)."""
    try:
        _compile(definition)(value)
    except _Bad as bad:
        raise ProtocolError(f"{name}: {bad.text()}") from None


def type_of(definition: Any) -> str:
    """The ``type`` a message or event definition's ``Literal`` names."""
    return str(get_args(get_type_hints(definition)["type"])[0])


class _Bad(Exception):
    """A value that breaks its definition; the path is collected while unwinding (no cost
    while values are good)."""

    def __init__(self, problem: str, *at: Union[str, int]) -> None:
        super().__init__(problem)
        self.problem = problem
        self.path: List[Union[str, int]] = list(at)

    def text(self) -> str:
        where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in reversed(self.path))
        return f"{where.lstrip('.') or 'the message'} {self.problem}"


Check = Callable[[Any], None]
# Checks the object checker runs inline: check -> (str, min length, max length) or
# (int or float, low, high); the check itself runs only to word a refusal.
_INLINE: Dict[Check, Tuple[type, float, float]] = {}
_DICT = {dict}


def _compile(hint: Any) -> Check:
    """A function that raises :class:`_Bad` when a JSON value does not fit ``hint``."""
    marks: Tuple[Any, ...] = ()
    if get_origin(hint) is Annotated:
        hint, *rest = get_args(hint)
        marks = tuple(rest)
    origin = get_origin(hint)
    if hint is Any:
        return _anything
    if origin is Literal:
        return _literal(get_args(hint))
    if origin is Union:
        return _union(get_args(hint))
    if origin is list:
        return _list(get_args(hint)[0], marks)
    if origin is dict or hint is dict:
        shape = next((m.cls for m in marks if isinstance(m, Shape)), None)
        if shape is not None:
            return _object(shape)
        return _mapping(get_args(hint)[1] if get_args(hint) else Any)
    if isinstance(hint, type) and (dataclasses.is_dataclass(hint) or issubclass(hint, dict)):
        return _object(hint)  # a dataclass in its dict form, or a TypedDict
    if hint is str:
        return _text(marks)
    if hint is bool:
        return _boolean
    if hint in (int, float):
        return _number(hint, marks)
    raise TypeError(f"no check for {hint!r}")


def _anything(value: Any) -> None:
    pass


def _boolean(value: Any) -> None:
    if type(value) is not bool:
        raise _Bad("must be true or false")


def _literal(values: Tuple[Any, ...]) -> Check:
    def check(value: Any) -> None:
        if value not in values:
            raise _Bad(f"must be {' or '.join(repr(v) for v in values)}")

    return check


def _union(options: Tuple[Any, ...]) -> Check:
    """``Optional[X]``, or definitions told apart by their ``type`` (events)."""
    rest = [o for o in options if o is not type(None)]
    if len(rest) < len(options):
        inner = _compile(rest[0] if len(rest) == 1 else Union[tuple(rest)])

        def optional(value: Any) -> None:
            if value is not None:
                inner(value)

        if inner in _INLINE:
            _INLINE[optional] = _INLINE[inner]
        return optional
    by_type = {type_of(o): _compile(o) for o in rest}
    named = f"must be one of {', '.join(repr(t) for t in by_type)}"

    def tagged(value: Any) -> None:
        if not isinstance(value, dict):
            raise _Bad("must be an object")
        check = by_type.get(value.get("type"))  # type: ignore[arg-type]
        if check is None:
            raise _Bad(named, "type")
        check(value)

    return tagged


def _sized(marks: Tuple[Any, ...], noun: str) -> Tuple[int, Optional[int], str]:
    size = next((m for m in marks if isinstance(m, Size)), Size())
    if size.high is None:
        words = " (not empty)" if size.low == 1 else f" of at least {size.low} {noun}"
        words = words if size.low else ""
    elif size.low:
        words = f" of {size.low} to {size.high} {noun}"
    else:
        words = f" of at most {size.high} {noun}"
    return size.low, size.high, words


def _text(marks: Tuple[Any, ...]) -> Check:
    low, high, words = _sized(marks, "characters")
    choices = next((m.values for m in marks if isinstance(m, OneOf)), None)
    problem = f"must be text{words}"
    if choices is not None:
        problem = f"must be one of {', '.join(repr(c) for c in choices)}"
    top = MAX_COUNT if high is None else high

    def check(value: Any) -> None:
        if type(value) is not str or not low <= len(value) <= top:
            raise _Bad(problem)
        if choices is not None and value not in choices:
            raise _Bad(problem)

    if choices is None:
        _INLINE[check] = (str, low, top)
    return check


def _number(kind: type, marks: Tuple[Any, ...]) -> Check:
    bounds = next((m for m in marks if isinstance(m, Range)), None)
    kinds = (int,) if kind is int else (int, float)
    noun = "an integer" if kind is int else "a number"
    if bounds is None:
        low, high, problem = -float("inf"), float("inf"), f"must be {noun}"
    else:
        low, high = bounds.low, bounds.high
        problem = f"must be {bounds.what or f'{noun} from {low} to {high}'}"

    def check(value: Any) -> None:
        if type(value) not in kinds or not low <= value <= high:
            raise _Bad(problem)

    _INLINE[check] = (kind, low, high)
    return check


def _list(item: Any, marks: Tuple[Any, ...]) -> Check:
    low, high, words = _sized(marks, "items")
    top = MAX_COUNT if high is None else high
    problem = f"must be a list{words}"
    if any(isinstance(m, Shallow) for m in marks):

        def objects(value: Any) -> None:
            if type(value) is not list or not low <= len(value) <= top:
                raise _Bad(problem)
            if not set(map(type, value)) <= _DICT:
                at = next(i for i, e in enumerate(value) if not isinstance(e, dict))
                raise _Bad("must be an object", at)

        return objects
    inner = _compile(item)

    def check(value: Any) -> None:
        if type(value) is not list or not low <= len(value) <= top:
            raise _Bad(problem)
        if inner is not _anything:
            _each(enumerate(value), inner)

    return check


def _mapping(item: Any) -> Check:
    inner = _compile(item)

    def check(value: Any) -> None:
        if not isinstance(value, dict):
            raise _Bad("must be an object")
        if not all(type(key) is str for key in value):
            raise _Bad("must have text keys")
        _each(value.items(), inner)

    return check


def _each(pairs: Iterable[Tuple[Union[str, int], Any]], inner: Check) -> None:
    """``inner`` on each value; a failure names the key or index it was found at."""
    for key, element in pairs:
        try:
            inner(element)
        except _Bad as bad:
            bad.path.append(key)
            raise


def _object(definition: type) -> Check:
    """A TypedDict, or a dataclass of ``protocol`` in its ``to_dict()`` form."""
    hints = get_type_hints(definition, include_extras=True)
    if dataclasses.is_dataclass(definition):
        empty = dataclasses.MISSING
        required = frozenset(
            f.name
            for f in dataclasses.fields(definition)
            if f.default is empty and f.default_factory is empty
        )
    else:
        required = frozenset(definition.__required_keys__)  # type: ignore[attr-defined]
    missing = [name for name in hints if name in required]  # reported in definition order
    checks = {name: _compile(hint) for name, hint in hints.items()}
    checks = {name: inner for name, inner in checks.items() if inner is not _anything}
    texts = {n: i[1:] for n, c in checks.items() if (i := _INLINE.get(c)) and i[0] is str}
    ints = {n: i[1:] for n, c in checks.items() if (i := _INLINE.get(c)) and i[0] is int}
    floats = {n: i[1:] for n, c in checks.items() if (i := _INLINE.get(c)) and i[0] is float}

    def check(value: Any) -> None:
        if not isinstance(value, dict):
            raise _Bad("must be an object")
        if not required <= value.keys():
            raise _Bad("is missing", next(name for name in missing if name not in value))
        for name, item in value.items():
            kind = type(item)  # text and numbers within bounds are checked inline: most fields
            if kind is str:
                bounds = texts.get(name)
                if bounds is not None and bounds[0] <= len(item) <= bounds[1]:
                    continue
            elif kind is int or kind is float:
                bounds = floats.get(name) or (ints.get(name) if kind is int else None)
                if bounds is not None and bounds[0] <= item <= bounds[1]:
                    continue
            inner = checks.get(name)
            if inner is not None:
                try:
                    inner(item)
                except _Bad as bad:
                    bad.path.append(name)
                    raise

    return check


_AGENT_CHECKS: Dict[str, Check] = {}  # compiled on first use: only the server checks


def _agent_checks() -> Dict[str, Check]:
    if not _AGENT_CHECKS:
        _AGENT_CHECKS.update((type_of(d), _compile(d)) for d in get_args(AgentMessage))
    return _AGENT_CHECKS
