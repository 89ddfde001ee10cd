"""Capture: turn live values into the protocol's value format without running their code.

The hard rule is that capturing never runs the application's code: no ``repr``, ``str``,
``len``, iteration, hashing, comparison, ``__getattr__`` or property of a foreign type. So
builtin scalars and containers are recognised by their *exact* type and read with the
builtin's own C methods, and every other object is read through the C descriptors that
store its state (the instance ``__dict__`` and ``__slots__`` members), found by walking the
type's MRO with the ``type`` descriptors themselves (a metaclass cannot intercept them).

Containers are copied (a slice, or an ``islice`` over the builtin iterator, in one C call)
before they are walked, so another thread mutating them cannot break the walk, and only as
many items as will be shown are copied: a list of a million items costs a slice of 100.

Every value that is incomplete says why (see ``CUTS`` in the protocol). Containers and objects
already shown are referenced by their JSON Pointer (RFC 6901) inside the result, so shared
and cyclic structures are safe: ``{"t": "dict", "ref": "/frames/0/locals/a"}``. The result
has a byte budget; when the estimate is over it, values are replaced by
``{"t": ..., "cut": "budget"}`` from the deepest level up, the last ones of a level first.

A capture also has a walking budget, so that no hit costs more than a few milliseconds
whatever the data (a local holding a 100x100x100 nested list took seconds before): once the
estimate reaches ``WALK_FACTOR`` times the byte budget, ``MAX_NODES`` containers have been
expanded, or ``TIME_BUDGET_NS`` have passed on the capture's clock, the containers not yet
expanded become ``{"t": ..., "cut": "budget"}`` stubs and the snapshot says ``"cut": "budget"``.
"""

from __future__ import annotations

import math
import sys
import types
from itertools import islice
from json.encoder import encode_basestring_ascii
from typing import (
    Any,
    Callable,
    Collection,
    Dict,
    Iterable,
    List,
    Optional,
    Sequence,
    Tuple,
    TypeVar,
)

from peephole.agent import speedups
from peephole.agent.clock import REAL, Clock
from peephole.agent.safe import capture_loops
from peephole.agent.safe.access import (
    COPY,
    DESCRIBED,
    DICT_ITEMS,
    DICT_LEN,
    INSTANCE,
    ITER,
    ITERABLE,
    ITERABLES,
    MAPPING,
    SCALARS,
    SEQUENCE,
    NoneType,
    TypeInfo,
    describe,
    exception_args,
    readable_locals,
    safe_type_name,
    type_cache,
    type_info,
)
from peephole.agent.safe.capture_loops import CodeInfo, KeyInfo
from peephole.agent.safe.redaction import Redactor
from peephole.protocol import Limits

__all__ = ["Capturer", "safe_type_name", "stack_of"]

_Node = TypeVar("_Node")


def _frame_locals_type() -> type:
    return type(sys._getframe().f_locals)  # a function's: FrameLocalsProxy on 3.13+


_FRAME_LOCALS_PROXY = _frame_locals_type()
# A dict key's "last value" before it has one (no value is this object).
_NO_VALUE = object()
_PAIR_PARTS = frozenset({id(str), id(bytes), id(tuple), id(list)})  # first items of pairs
_BIG_INT = 1 << 256  # ints this large are shown by size: str() of a huge int is slow or fails
_MINUS_BIG_INT = -_BIG_INT
_CARD_SIZED = 10**12  # ints shorter than this cannot be card numbers: shown without a check
_MINUS_CARD_SIZED = -_CARD_SIZED
_MAX_CARD_SIZED = 10**19
_STRING_CACHE_SIZE = 1024  # per Capturer (one per probe): a bounded few hundred KB
_STRING_CACHE_MAX_LEN = 64
_CODE_CACHE_SIZE = 2048
# The inner loops (a mapping's entries, named values, a sequence's items): in C where built.
mapping_entries = speedups.mapping_entries or capture_loops.mapping_entries
named_values = speedups.named_values or capture_loops.named_values
item_nodes = speedups.item_nodes or capture_loops.item_nodes
stack_of = speedups.stack_of or capture_loops.stack_of
frame_records = speedups.frame_records or capture_loops.frame_records
WALK_FACTOR = 2  # the walk stops expanding containers at this many times the byte budget
MAX_NODES = 5000  # containers one capture expands
TIME_BUDGET_NS = 5_000_000  # of the capture's clock: a capture over it stops expanding
_CLOCK_EVERY = 16  # containers expanded between two readings of the clock


def _json_size(text: str) -> int:
    """Bytes ``text`` takes in JSON (exact for the common printable ASCII case)."""
    if text.isascii() and text.isprintable():
        return len(text) + 2
    return len(encode_basestring_ascii(text))


def _pointer(location: Any) -> str:
    """JSON Pointer of a location: nested ``(parent, segment)`` pairs."""
    segments: List[str] = []
    while location is not None:
        location, segment = location
        segments.append(str(segment).replace("~", "~0").replace("/", "~1"))
    return "/" + "/".join(reversed(segments)) if segments else ""


class _Walk:
    """The state of one capture: sizes, values already shown, containers by level."""

    __slots__ = (
        "capturer",
        "deadline",
        "entries",
        "hide",
        "limit",
        "max_depth",
        "max_fields",
        "max_items",
        "max_string",
        "nodes",
        "over",
        "parent",
        "redactor",
        "scalars",
        "seen",
        "size",
    )

    def __init__(self, capturer: Capturer) -> None:
        limits = capturer.limits
        self.capturer = capturer
        self.redactor = capturer.redactor
        self.max_depth = limits.max_depth
        self.max_items = limits.max_items
        self.max_string = limits.max_string
        self.max_fields = limits.max_fields
        self.scalars = capturer.scalars
        self.size = 0
        # id -> (value, location): keeps the value alive so its id cannot be reused mid-walk.
        self.seen: Dict[int, Tuple[Any, Any]] = {}
        # Expanded containers in pre-order: [depth, node, size of subtree, parent index].
        self.entries: List[List[Any]] = []
        self.parent = -1  # index in entries of the container being expanded
        # The walking budget: estimated bytes, containers expanded, time on the clock.
        self.limit = limits.max_bytes * WALK_FACTOR
        self.nodes = 0
        self.deadline = 0  # set when the first container is expanded
        self.over = False
        self.hide = False  # inside a secret collection: names shown, text values hidden

    # --- scalars --------------------------------------------------------------------------

    def string(self, value: str) -> Dict[str, Any]:
        """A string node; short strings' nodes and sizes are remembered by the Capturer."""
        if self.hide:
            return self.hidden("str")
        limit = self.max_string
        length = len(value)
        # Look a little past the cut so a secret straddling it is still recognised.
        shown = value if length <= limit else value[: limit + 64]
        node: Dict[str, Any] = {"t": "str", "v": shown}
        masked = self.redactor.redact_text(shown)
        if masked is not None:
            node["v"] = shown = masked if len(masked) <= limit else masked[:limit]
            node["cut"] = "redacted"
        elif length > limit:
            node["v"] = shown = shown[:limit]
            node["cut"] = "length"
        if length > limit:
            node["len"] = length
        size = _json_size(shown) + 30
        self.size += size
        if length <= _STRING_CACHE_MAX_LEN:
            self.remember(node, value, size)
        return node

    def long_int(self, value: int) -> Dict[str, Any]:
        """An int long enough to be a card number: masked if its digits look like one."""
        if value < _MAX_CARD_SIZED and self.redactor.redact_text(repr(value)) is not None:
            return {"t": "int", "cut": "redacted"}
        return {"t": "int", "v": value}

    def remember(self, node: _Node, value: Any, size: int) -> _Node:
        """Keep the node of a short str or of an int long enough to be checked for a card
        number, for the next captures of the same value."""
        scalars = self.scalars
        if len(scalars) >= _STRING_CACHE_SIZE:
            scalars.clear()
        scalars[value] = (node, size)
        return node

    def hidden(self, name: str) -> Dict[str, Any]:
        """A text value inside a secret collection: its type, never its length."""
        self.size += len(name) + 30
        return {"t": name, "cut": "redacted"}

    def binary(self, value: Any, name: str) -> Dict[str, Any]:
        if self.hide:
            return self.hidden(name)
        length = len(value)
        head = bytes(value[: self.max_string])  # a copy, taken in one C call
        text = repr(head)[2:-1]  # printable ASCII as is, the rest escaped (\x00)
        masked = self.redactor.redact_text(text)
        node: Dict[str, Any] = {"t": name, "v": text if masked is None else masked, "len": length}
        if masked is not None:
            node["cut"] = "redacted"
        elif length > self.max_string:
            node["cut"] = "length"
        self.size += _json_size(node["v"]) + 40
        return node

    # --- any value ------------------------------------------------------------------------

    def walk(self, value: Any, depth: int, parent: Any, segment: Any) -> Dict[str, Any]:
        """The value node of ``value`` at ``depth`` (0 for a local, a field is one deeper)."""
        cls = type(value)
        if cls is str:
            known = self.scalars.get(value)
            if known is None:
                return self.string(value)
            self.size += known[1]
            return known[0]  # type: ignore[no-any-return]
        if cls is int:
            self.size += 36
            if _MINUS_CARD_SIZED < value < _CARD_SIZED:
                return {"t": "int", "v": value}  # cheaper to make than to look up
            known = self.scalars.get(value)
            if known is not None:
                return known[0]  # type: ignore[no-any-return]
            if _MINUS_BIG_INT < value < _BIG_INT:
                return self.remember(self.long_int(value), value, 36)
            return {"t": "int", "bits": value.bit_length(), "cut": "length"}
        if cls is bool:
            self.size += 24
            return {"t": "bool", "v": value}
        if cls is NoneType:
            self.size += 26
            return {"t": "NoneType", "v": None}
        if cls is float:
            self.size += 40
            if math.isfinite(value):
                return {"t": "float", "v": value}
            return {"t": "float", "v": repr(value)}  # "nan", "inf": not JSON numbers
        if cls is bytes:
            return self.binary(value, "bytes")
        if cls is bytearray:
            return self.binary(value, "bytearray")
        return self.container(value, cls, depth, parent, segment)

    def container(
        self, value: Any, cls: type, depth: int, parent: Any, segment: Any
    ) -> Dict[str, Any]:
        info = type_cache.get(id(cls))
        if info is None or info.cls is not cls:
            info = type_info(cls)
        shape = info.shape
        if shape == DESCRIBED:
            return self.described(value, info)
        value_id = id(value)
        previous = self.seen.get(value_id)
        if previous is not None and previous[0] is value:
            self.size += info.stub_size + 20
            return {"t": info.name, "ref": _pointer(previous[1])}
        if depth >= self.max_depth:
            return self.too_deep(value, info)
        if not self.hide and (
            self.redactor.is_secret_collection(value)
            if shape == INSTANCE
            else value_id in self.redactor.secret_ids  # a builtin: only the environment's
        ):
            return self.masked(True, self.walk, value, depth, parent, segment)  # type: ignore[no-any-return]
        if self.over or self.spent():
            self.size += info.stub_size
            return {"t": info.name, "cut": "budget"}
        location = None if parent is None and segment is None else (parent, segment)
        self.seen[value_id] = (value, location)
        entries = self.entries
        entry: List[Any] = [depth, None, 0, self.parent]
        self.parent = len(entries)
        entries.append(entry)
        start = self.size
        if shape == MAPPING:
            node = self.mapping(value, id(cls), info.name, depth, location)
        elif shape == INSTANCE:
            node = self.instance(value, info, depth, location)
        elif shape == SEQUENCE:
            node = self.sequence(value, info.name, depth, location)
        else:
            node = self.iterable(value, id(cls), info.name, depth, location)
        self.size += info.stub_size
        entry[1] = node
        entry[2] = self.size - start
        self.parent = entry[3]
        return node

    def masked(self, hide: bool, walk: Callable[..., Any], *args: Any) -> Any:
        """``walk(*args)`` with text values hidden (a header or cookie collection, the
        process environment, a header's value) or shown (a name inside one). Short-str nodes
        remembered meanwhile go to a dict of their own: no node is reused across the two."""
        if self.hide is hide:
            return walk(*args)
        scalars, self.scalars = self.scalars, {}
        self.hide = hide
        try:
            return walk(*args)
        finally:
            self.hide = not hide
            self.scalars = scalars

    def pair_items(self, shown: Any, depth: int, location: Any) -> Optional[List[Any]]:
        """Items of a sequence that may hold header values, or None when it does not: a
        ``(name, value)`` pair with a secret name, a list of pairs that looks like HTTP
        headers, and inside a secret collection a ``(name, [name,] value)`` tuple."""
        redactor = self.redactor
        child = depth + 1
        first = shown[0]
        if self.hide:
            if type(shown) is not tuple or not 2 <= len(shown) <= 3:
                return None
            for name in shown[:-1]:
                if type(name) is not str and type(name) is not bytes:
                    return None
            items = [self.masked(False, self.walk, name, child, None, None) for name in shown[:-1]]
            items.append(self.walk(shown[-1], child, (location, "items"), len(items)))
            return items
        if type(first) is str or type(first) is bytes:
            if len(shown) != 2 or not redactor.is_secret_name(first):
                return None
            if not redactor.hides(first, shown[1]):
                return None
            return [
                self.walk(first, child, None, None),
                self.masked(True, self.walk, shown[1], child, (location, "items"), 1),
            ]
        if redactor.is_header_list(shown):
            return self.masked(True, self.items, shown, depth, location)  # type: ignore[no-any-return]
        return None

    def spent(self) -> bool:
        """True once the walking budget is used up; reads the clock every few containers."""
        self.nodes = nodes = self.nodes + 1
        if nodes == 1:
            self.deadline = self.capturer.clock() + TIME_BUDGET_NS
        elif (
            self.size > self.limit
            or nodes > MAX_NODES
            or (nodes % _CLOCK_EVERY == 0 and self.capturer.clock() > self.deadline)
        ):
            self.over = True
        return self.over

    def too_deep(self, value: Any, info: TypeInfo) -> Dict[str, Any]:
        """A container past the depth limit: its type, and its length when a builtin's."""
        self.size += info.stub_size
        node: Dict[str, Any] = {"t": info.name, "cut": "depth"}
        shape = info.shape
        if shape == SEQUENCE:
            node["len"] = len(value)
        elif shape == MAPPING:
            node["len"] = DICT_LEN(value)
        elif shape == ITERABLE:
            node["len"] = ITERABLES[id(info.cls)](value)
        return node

    def sequence(self, value: Any, name: str, depth: int, location: Any) -> Dict[str, Any]:
        length = len(value)
        shown = value[: self.max_items]  # a copy of only what is shown, in one C call
        items = None
        if shown and id(type(shown[0])) in _PAIR_PARTS:
            items = self.pair_items(shown, depth, location)
        if items is None:
            items = self.items(shown, depth, location)
        node: Dict[str, Any] = {"t": name, "len": length, "items": items}
        if length > len(shown):
            node["omitted"] = length - len(shown)
            node["cut"] = "items"
        return node

    def items(self, shown: Any, depth: int, location: Any) -> List[Dict[str, Any]]:
        items, size = item_nodes(shown, self.scalars, self.walk, depth + 1, (location, "items"))
        self.size += size
        return items

    def iterable(
        self, value: Any, cls_id: int, name: str, depth: int, location: Any
    ) -> Dict[str, Any]:
        length = ITERABLES[cls_id](value)
        try:
            shown = list(islice(ITER[cls_id](value), self.max_items))
        except RuntimeError:  # changed size while being read: read a copy instead
            shown = list(islice(ITER[cls_id](COPY[cls_id](value)), self.max_items))
        node: Dict[str, Any] = {
            "t": name,
            "len": length,
            "items": self.items(shown, depth, location),
        }
        if length > len(shown):
            node["omitted"] = length - len(shown)
            node["cut"] = "items"
        return node

    def mapping(
        self, value: Any, cls_id: int, name: str, depth: int, location: Any
    ) -> Dict[str, Any]:
        length = DICT_LEN(value)
        pairs = _read_items(value, DICT_ITEMS[cls_id], self.max_items)
        capturer = self.capturer
        entries, size = mapping_entries(
            pairs,
            capturer.keys,
            capturer.key_info,
            self.scalars,
            not self.hide,  # a key's last entry holds shown text: not in a secret collection
            self.entry,
            depth + 1,
            (location, "entries"),
        )
        self.size += size
        node: Dict[str, Any] = {"t": name, "len": length, "entries": entries}
        if length > len(pairs):
            node["omitted"] = length - len(pairs)
            node["cut"] = "items"
        return node

    def entry(
        self, key: Any, info: Optional[KeyInfo], item: Any, depth: int, location: Any
    ) -> Tuple[List[Any], int]:
        """A mapping's entry that ``mapping_entries`` does not make itself (a secret key, a
        value to walk, a key that is not a str, whose ``info`` is None), and the bytes it
        adds besides those its value's walk counts."""
        redactor = self.redactor
        if info is not None:
            key_node, key_size, key_secret = info[0], info[1], info[2]
            if key_secret and redactor.hides(key, item):
                redacted = {"t": type_info(type(item)).name, "cut": "redacted"}
                return [key_node, redacted], key_size + 40
            return [key_node, self.walk(item, depth, location, 1)], key_size
        key_node = self.key(key, depth)
        if type(key) is bytes and redactor.is_secret_name(key) and redactor.hides(key, item):
            return [key_node, {"t": type_info(type(item)).name, "cut": "redacted"}], 40
        return [key_node, self.walk(item, depth, location, 1)], 0

    def key(self, key: Any, depth: int) -> Dict[str, Any]:
        """Scalar keys as values; a tuple of scalars too; anything else by its type."""
        cls = type(key)
        if id(cls) in SCALARS:
            return self.masked(False, self.walk, key, depth, None, None)  # type: ignore[no-any-return]
        info = type_info(cls)
        if info.shape == DESCRIBED:
            return self.described(key, info)
        if cls is tuple and len(key) <= self.max_items:
            self.size += 30
            return {"t": "tuple", "len": len(key), "items": [self.key(k, depth) for k in key]}
        self.size += 40
        return {"t": info.name, "cut": "unsupported"}

    def instance(self, value: Any, info: TypeInfo, depth: int, location: Any) -> Dict[str, Any]:
        """Any other object: its ``__dict__`` and ``__slots__`` values, read by descriptor."""
        fields: Dict[str, Any] = {}
        node: Dict[str, Any] = {"t": info.name, "fields": fields}
        limit = self.max_fields
        total = 0
        pairs: List[Tuple[str, Any]] = []
        if info.args:
            try:
                pairs.append(("args", exception_args(value)))
            except Exception:
                pass
        if info.dict_getter is not None:
            try:
                namespace = info.dict_getter(value)
            except Exception:
                namespace = None
            if type(namespace) is dict:
                total += DICT_LEN(namespace)
                pairs.extend(_read_items(namespace, dict.items, limit + 8))
        for member, getter in info.members:
            total += 1
            if len(pairs) < limit + 8:
                try:
                    pairs.append((member, getter(value)))
                except Exception:  # an unset slot
                    total -= 1
        if info.base is not None:
            try:
                node["v"] = self.walk(info.base(value), depth + 1, None, None)["v"]
            except Exception:
                pass
        shown, skipped = self.named(pairs, fields, limit, depth + 1, (location, "fields"))
        total -= skipped
        if total > shown:
            node["omitted"] = total - shown
            node["cut"] = "items"
        if info.dict_getter is None and not info.members and not info.args:
            node["cut"] = "unsupported"  # a C object without readable state
        return node

    def named(
        self,
        pairs: List[Tuple[Any, Any]],
        out: Dict[str, Any],
        limit: int,
        depth: int,
        location: Any,
    ) -> Tuple[int, int]:
        """Fill ``out`` with up to ``limit`` named values (fields or locals), redacting secret
        names and skipping dunders; return how many were shown and how many skipped."""
        capturer = self.capturer
        shown, skipped, size = named_values(
            pairs,
            out,
            limit,
            capturer.names,
            capturer.name_info,
            self.scalars,
            self.walk,
            depth,
            location,
            self.secret,
        )
        self.size += size
        return shown, skipped

    def secret(self, name: str, item: Any, depth: int, location: Any) -> Tuple[Dict[str, Any], int]:
        """The node of a local or field with a secret name, redacted unless it is a bool,
        None or a number (nothing secret in it), and the bytes it adds with its name."""
        if self.redactor.hides(name, item):
            return {"t": type_info(type(item)).name, "cut": "redacted"}, len(name) + 44
        return self.walk(item, depth, location, name), len(name) + 4

    def described(self, value: Any, info: TypeInfo) -> Dict[str, Any]:
        """Functions, methods, modules, classes, enum members and a few stdlib value types
        are shown by a short text rather than their fields."""
        text = describe(value, info)
        if text is None:
            self.size += info.stub_size
            return {"t": info.name, "cut": "unsupported"}
        if len(text) > self.max_string:
            text = text[: self.max_string]
        self.size += _json_size(text) + info.stub_size
        return {"t": info.name, "v": text}


def _read_items(
    mapping: Any, items: Callable[[Any], Iterable[Tuple[Any, Any]]], count: int
) -> List[Tuple[Any, Any]]:
    """Up to ``count`` pairs, copied in one C call before they are walked (no ``islice``
    for a mapping that fits: most do, and it costs as much as copying a few pairs)."""
    for _ in range(3):  # only a free-threaded build can change the mapping while it is read
        try:
            if DICT_LEN(mapping) > count:
                return list(islice(items(mapping), count))
            pairs = list(items(mapping))
        except RuntimeError:
            continue
        if len(pairs) > count:  # it grew between the two C calls
            del pairs[count:]
        return pairs
    return []


class Capturer:
    """Captures values and stacks under one set of limits and one redaction policy.

    Holds no per-capture state, so one Capturer serves every thread at once.
    """

    def __init__(self, limits: Limits, redactor: Redactor, clock: Clock = REAL) -> None:
        self.limits = limits
        self.redactor = redactor
        # Nanoseconds for the walking budget, on the agent's monotonic clock (never ``time``'s,
        # which an application may patch; not ``perf_ns``, whose readings the CPU budget
        # counts per hit); bound once, as it is read during every capture.
        self.clock = clock.monotonic_ns
        # Short strs and card-sized ints seen before (exact types only: a str never equals an
        # int): (node, JSON size); a shorter int's node is cheaper to make than to look up.
        # A plain dict whose single operations are atomic, shared by the threads capturing
        # with this Capturer. The nodes are shared by every capture that shows the value:
        # nothing changes a scalar node or an entry once made (pruning replaces only
        # containers), and a capture's result is only serialised.
        self.scalars: Dict[Any, Tuple[Any, int]] = {}
        # Str dict keys seen before: (node, JSON size, secret name?, and the value last shown
        # under the key in a plain mapping with its entry and the entry's size). The value is
        # a short str or int, held until another replaces it: a dict of prices shows each
        # entry from one lookup while its values stay, and costs one replacement per pair
        # when they change (a cache of (key, value) pairs grew and was cleared every few hits).
        self.keys: Dict[str, KeyInfo] = {}
        # Names of locals and fields seen before: -1 a dunder (skipped), 0 secret, else the
        # bytes the name takes in JSON.
        self.names: Dict[str, int] = {}

    def name_info(self, name: str) -> int:
        if name.startswith("__") and name.endswith("__"):
            info = -1
        elif self.redactor.is_secret_name(name):
            info = 0
        else:
            info = len(name) + 4
        if len(self.names) >= _STRING_CACHE_SIZE:
            self.names.clear()
        self.names[name] = info
        return info

    def key_info(self, key: str) -> KeyInfo:
        """How a str dict key is shown, its JSON size, whether it is a secret name, and no
        last entry yet; kept in ``keys`` unless the key is too long to keep."""
        walk = _Walk(self)
        node = walk.string(key)
        info = (node, walk.size, self.redactor.is_secret_name(key), _NO_VALUE, None, 0)
        if len(key) > _STRING_CACHE_MAX_LEN:
            return info  # not kept
        if len(self.keys) >= _STRING_CACHE_SIZE:
            self.keys.clear()
        self.keys[key] = info
        return info

    def value(self, value: object) -> Dict[str, Any]:
        """One value in the protocol's value format, within the byte budget."""
        walk = _Walk(self)
        node = walk.walk(value, 0, None, None)
        if walk.size > self.limits.max_bytes:
            _prune(walk, self.limits.max_bytes)
        return node

    def frames(
        self,
        frames: Sequence[Tuple[types.FrameType, int]],
        locals_at: Collection[int],
        watches: Sequence[Tuple[str, object]] = (),
    ) -> Dict[str, Any]:
        """A stack (innermost first) with the locals of the frames at ``locals_at`` and the
        values of watch expressions (a value, or the exception its evaluation raised)."""
        walk = _Walk(self)
        result: Dict[str, Any] = {}
        failed: Any = ()
        if watches:
            from peephole.agent.safe.expressions import EvaluationError

            failed = EvaluationError
        watch_nodes: List[Dict[str, Any]] = []
        root = (None, "watches")
        for index, (source, watched) in enumerate(watches):
            walk.size += len(source) + 20
            if type(watched) is failed:
                watch_nodes.append({"expr": source, "error": _error_text(watched)})  # type: ignore[arg-type]
            else:
                watch_nodes.append(
                    {"expr": source, "value": walk.walk(watched, 0, (root, index), "value")}
                )
        frame_nodes, size = frame_records(frames, _codes, _code_info)
        frames_root = (None, "frames")
        max_locals = self.limits.max_items
        for index in sorted(set(locals_at)):  # in stack order, once each
            if 0 <= index < len(frame_nodes):
                node = frame_nodes[index]
                location = (frames_root, index)
                node["locals"] = self._locals(walk, frames[index][0], location, max_locals, node)
        walk.size += size
        result["frames"] = frame_nodes
        result["watches"] = watch_nodes
        if walk.size > self.limits.max_bytes:
            _prune(walk, self.limits.max_bytes)
            result["cut"] = "budget"
            if walk.size > self.limits.max_bytes:
                _drop_locals(walk, frame_nodes, self.limits.max_bytes)
        if walk.over:
            result["cut"] = "budget"
        result["size"] = walk.size
        return result

    def _locals(
        self,
        walk: _Walk,
        frame: types.FrameType,
        location: Any,
        max_locals: int,
        frame_node: Dict[str, Any],
    ) -> Dict[str, Any]:
        f_locals = readable_locals(frame)
        if type(f_locals) is dict:
            pairs = _read_items(f_locals, dict.items, max_locals + 16)
            total = DICT_LEN(f_locals)
        elif type(f_locals) is _FRAME_LOCALS_PROXY:  # 3.13: a C mapping over the frame
            pairs = list(islice(f_locals.items(), max_locals + 16))  # type: ignore[attr-defined]
            total = len(f_locals)  # type: ignore[arg-type]
        else:  # a mapping of the application's own: reading it would run its code
            frame_node["locals_cut"] = "unsupported"
            return {}
        out: Dict[str, Any] = {}
        _, skipped = walk.named(pairs, out, max_locals, 0, (location, "locals"))
        total -= skipped
        if total > len(out):
            frame_node["locals_omitted"] = total - len(out)
        return out


_codes: Dict[int, CodeInfo] = {}


def _code_info(code: types.CodeType, globals_: Any) -> CodeInfo:
    """(code, the record of its frames with line 0, its JSON size, globals), kept per code
    object: a frame record then costs one lookup and a copy. The module name is read from
    a plain dict only (a subclass's ``get`` would be the application's code)."""
    function = getattr(code, "co_qualname", code.co_name)
    module = globals_.get("__name__") if type(globals_) is dict else None
    if type(module) is not str:
        module = None
    size = _json_size(code.co_filename) + len(function) + 90
    record = {"file": code.co_filename, "line": 0, "function": function, "module": module}
    info = code, record, size, globals_
    if len(_codes) >= _CODE_CACHE_SIZE:
        _codes.clear()
    _codes[id(code)] = info
    return info


def _error_text(exc: BaseException) -> str:
    """The message of an evaluation error, without calling ``str`` on foreign objects."""
    name = type_info(type(exc)).name
    try:
        args = exception_args(exc)
    except Exception:
        return name
    if type(args) is tuple and len(args) == 1 and type(args[0]) is str:
        return args[0] if name.startswith("peephole.") else f"{name}: {args[0]}"
    return name


def _prune(walk: _Walk, budget: int) -> None:
    """Replace containers by budget stubs, deepest level first and the last ones of a level
    first, until the estimated size fits ``budget``."""
    entries = walk.entries
    if not entries:
        return
    current = [entry[2] for entry in entries]
    deepest = max(entry[0] for entry in entries)
    for level in range(deepest, -1, -1):
        for index in range(len(entries) - 1, -1, -1):
            if walk.size <= budget:
                return
            entry = entries[index]
            if entry[0] != level:
                continue
            node = entry[1]
            if node is None or node.get("cut") == "budget":
                continue
            name = node.get("t")
            stub = len(name) + 26 if type(name) is str else 30
            saved = current[index] - stub
            if saved <= 0:
                continue
            node.clear()
            node["t"] = name
            node["cut"] = "budget"
            walk.size -= saved
            current[index] = stub
            parent = entry[3]
            while parent >= 0:
                current[parent] -= saved
                parent = entries[parent][3]


def _drop_locals(walk: _Walk, frames: List[Dict[str, Any]], budget: int) -> None:
    """Last resort when even stubs do not fit: drop locals, outermost frame first."""
    for node in reversed(frames):
        if walk.size <= budget:
            return
        local_values = node.get("locals")
        if not local_values:
            continue
        walk.size -= sum(len(name) + 30 for name in local_values)
        node["locals"] = {}
        node["locals_omitted"] = node.get("locals_omitted", 0) + len(local_values)
