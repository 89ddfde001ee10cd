"""Reading values without running their code: the primitives capture and expressions share.

Builtins are recognised by their *exact* type and read with the builtin's own C methods;
every other object through the C descriptors that store its state, found by walking the
type's MRO with the ``type`` descriptors themselves (a metaclass cannot intercept them).
This module is the one place that knows how; nothing here calls ``repr``, ``str``, ``len``,
hashing or comparison on a foreign object.
"""

from __future__ import annotations

import collections
import sys
import types
from typing import Any, Callable, Dict, Iterable, List, Optional, Tuple

__all__ = [
    "COPY",
    "CO_OPTIMIZED",
    "DESCRIBED",
    "DICT_ITEMS",
    "DICT_LEN",
    "INSTANCE",
    "ITER",
    "ITERABLE",
    "ITERABLES",
    "MAPPING",
    "SCALARS",
    "SEQUENCE",
    "NoneType",
    "TypeInfo",
    "describe",
    "exception_args",
    "module_dict",
    "ordered_items",
    "readable_locals",
    "safe_type_name",
    "type_cache",
    "type_dict",
    "type_info",
    "type_module",
    "type_mro",
    "type_qualname",
]

# The ``type`` descriptors that read a class's own C struct: a metaclass can neither
# override nor intercept them when called directly.
type_mro: Callable[[type], Tuple[type, ...]] = type.__dict__["__mro__"].__get__
type_dict: Callable[[type], Any] = type.__dict__["__dict__"].__get__
type_module: Callable[[type], Any] = type.__dict__["__module__"].__get__
type_qualname: Callable[[type], Any] = type.__dict__["__qualname__"].__get__
_C_DESCRIPTORS = (types.GetSetDescriptorType, types.MemberDescriptorType)
exception_args = BaseException.__dict__["args"].__get__
module_dict: Callable[[Any], Any] = vars(types.ModuleType)["__dict__"].__get__

NoneType = type(None)
DICT_LEN: Callable[[Any], int] = dict.__len__


# Keys whose hash and equality are the builtin's own: safe to look up.
_PLAIN_KEYS = frozenset({id(str), id(int), id(float), id(bool), id(NoneType), id(bytes)})
_ORDER_CHECK_LIMIT = 1000  # keys checked before an OrderedDict's own order is read


def ordered_items(mapping: Any) -> Iterable[Tuple[Any, Any]]:
    """An OrderedDict's pairs in its own order when reading that order runs no code: its C
    iterator hashes every key (and may compare it) to find its link. With another key type,
    or too many keys to check, the pairs come in insertion order (``move_to_end`` unseen)."""
    if DICT_LEN(mapping) <= _ORDER_CHECK_LIMIT:
        plain = _PLAIN_KEYS
        for key in dict.keys(mapping):
            if id(type(key)) not in plain:
                break
        else:
            return collections.OrderedDict.items(mapping)
    return dict.items(mapping)


# Exact dict-like and sequence-like builtins, read with the base type's own C methods.
DICT_ITEMS: Dict[int, Callable[[Any], Iterable[Tuple[Any, Any]]]] = {
    id(dict): dict.items,
    id(collections.defaultdict): dict.items,
    id(collections.Counter): dict.items,
    id(collections.OrderedDict): ordered_items,
}
_SEQUENCES = frozenset({id(list), id(tuple)})
ITERABLES: Dict[int, Callable[[Any], int]] = {
    id(set): set.__len__,
    id(frozenset): frozenset.__len__,
    id(collections.deque): collections.deque.__len__,
}
ITER: Dict[int, Callable[[Any], Any]] = {
    id(set): set.__iter__,
    id(frozenset): frozenset.__iter__,
    id(collections.deque): collections.deque.__iter__,
}
COPY: Dict[int, Callable[[Any], Any]] = {
    id(set): set.copy,
    id(frozenset): frozenset.copy,
    id(collections.deque): collections.deque.copy,
}
_BASE_VALUE: Dict[int, Callable[[Any], Any]] = {
    id(str): str.__str__,  # exact copies, made by the builtin's C code
    id(int): int.__int__,
    id(float): float.__float__,
}
SCALARS = frozenset({id(str), id(int), id(bool), id(float), id(NoneType), id(bytes), id(bytearray)})


_AGENT_PREFIX = "peephole.agent."

# Shapes of values (``TypeInfo.shape``).
DESCRIBED, SEQUENCE, MAPPING, ITERABLE, INSTANCE = range(5)


def _c_format(type_id: int) -> Optional[Callable[[Any], str]]:
    """Text for a few stdlib value types, made by the stdlib's own method: the type is
    matched exactly, so no subclass of the application's can put its code there."""
    for module_name, class_name, method in (
        ("datetime", "datetime", "isoformat"),
        ("datetime", "date", "isoformat"),
        ("datetime", "time", "isoformat"),
        ("datetime", "timedelta", "__str__"),
        ("datetime", "timezone", "__str__"),
        ("decimal", "Decimal", "__str__"),
        ("uuid", "UUID", "__str__"),
        ("builtins", "complex", "__repr__"),
        ("builtins", "range", "__repr__"),
        ("pathlib", "PosixPath", "__str__"),
        ("pathlib", "WindowsPath", "__str__"),
        ("pathlib", "PurePosixPath", "__str__"),
        ("ipaddress", "IPv4Address", "__str__"),
        ("ipaddress", "IPv6Address", "__str__"),
    ):
        module = sys.modules.get(module_name)
        cls = getattr(module, class_name, None) if module is not None else None
        if cls is not None and id(cls) == type_id:
            return getattr(cls, method)  # type: ignore[no-any-return]
    return None


class TypeInfo:
    """What capture needs to know about one class, computed once per class."""

    __slots__ = (
        "args",
        "base",
        "cls",
        "dict_getter",
        "enum",
        "format",
        "kind",
        "members",
        "name",
        "shape",
        "stub_size",
    )

    def __init__(self, cls: type) -> None:
        self.cls = cls
        self.name = _compute_type_name(cls)
        self.stub_size = len(self.name) + 24
        self.dict_getter: Optional[Callable[[Any], Any]] = None
        self.members: List[Tuple[str, Callable[[Any], Any]]] = []
        self.args = False
        self.base: Optional[Callable[[Any], Any]] = None  # the str/int/... inside a subclass
        self.enum = False
        self.format = _c_format(id(cls))
        self.kind = "object"
        if cls is types.FunctionType or cls is types.BuiltinFunctionType:
            self.kind = "function"
        elif cls is types.MethodType:
            self.kind = "method"
        elif cls is types.ModuleType:
            self.kind = "module"
        else:
            self._read_mro(cls)
        self.shape = self._shape()

    def _read_mro(self, cls: type) -> None:
        seen = set()
        mro = type_mro(cls) or (cls,)
        enum_module = sys.modules.get("enum")
        enum_base = getattr(enum_module, "Enum", None) if enum_module is not None else None
        for klass in mro:
            if klass is BaseException:
                self.args = True
            if enum_base is not None and klass is enum_base:
                self.enum = True
            if klass is type:
                self.kind = "type"
            if self.base is None and id(klass) in _BASE_VALUE:
                self.base = _BASE_VALUE[id(klass)]
            namespace = type_dict(klass)
            for attr, descriptor in (
                dict.items(namespace) if type(namespace) is dict else (namespace.items())
            ):
                if type(attr) is not str or attr in seen:
                    continue
                seen.add(attr)
                if attr == "__dict__":
                    if type(descriptor) in _C_DESCRIPTORS:
                        self.dict_getter = descriptor.__get__
                elif type(descriptor) is types.MemberDescriptorType and not (
                    attr.startswith("__") and attr.endswith("__")
                ):
                    self.members.append((attr, descriptor.__get__))

    def _shape(self) -> int:
        """How values of the class are walked, decided once so a walk dispatches on an int."""
        if self.format is not None or self.kind != "object" or self.enum:
            return DESCRIBED
        if self.name.startswith(_AGENT_PREFIX):
            return DESCRIBED  # the agent's own objects: shown by type, never walked (their
            # caches hold the texts redaction has seen, secrets and fragments of them)
        cls_id = id(self.cls)
        if cls_id in _SEQUENCES:
            return SEQUENCE
        if cls_id in DICT_ITEMS:
            return MAPPING
        if cls_id in ITERABLES:
            return ITERABLE
        return INSTANCE


def _compute_type_name(cls: type) -> str:
    try:
        qualname = type_qualname(cls)
        module = type_module(cls)
    except Exception:
        return "?"
    if type(qualname) is not str:
        qualname = "?"
    if type(module) is not str or module == "builtins":
        return qualname
    return f"{module}.{qualname}"


_TYPE_CACHE_SIZE = 2048
type_cache: Dict[int, TypeInfo] = {}


def type_info(cls: type) -> TypeInfo:
    """The cached :class:`TypeInfo` of ``cls`` (keyed by id: hashing a class may run a
    metaclass's ``__hash__``)."""
    info = type_cache.get(id(cls))
    if info is not None and info.cls is cls:
        return info
    info = TypeInfo(cls)
    if len(type_cache) >= _TYPE_CACHE_SIZE:
        type_cache.clear()
    type_cache[id(cls)] = info
    return info


def safe_type_name(value: object) -> str:
    """``module.QualName`` of ``type(value)``, without running any of its code."""
    return type_info(type(value)).name


def describe(value: Any, info: TypeInfo) -> Optional[str]:
    text: Any
    try:
        if info.format is not None:
            text = info.format(value)
        elif info.kind == "function":
            text = value.__qualname__  # a C getset of the exact function type
        elif info.kind == "method":
            function = value.__func__  # a C member of the exact method type
            kind = type(function)
            plain = kind is types.FunctionType or kind is types.BuiltinFunctionType
            text = function.__qualname__ if plain else None
        elif info.kind == "module":
            text = dict.get(module_dict(value), "__name__")
        elif info.kind == "type":
            text = type_info(value).name
        elif info.enum:
            namespace = info.dict_getter(value) if info.dict_getter is not None else None
            member = dict.get(namespace, "_name_") if type(namespace) is dict else None
            text = f"{type_qualname(info.cls)}.{member}" if type(member) is str else None
        else:
            text = None
    except Exception:
        return None
    return text if type(text) is str else None


CO_OPTIMIZED = 0x0001  # inspect.CO_OPTIMIZED (no import of inspect): a function's code
# 3.13+ (PEP 667): f_locals of a module or class body is its namespace, read without writing.
_LOCALS_WRITE_CELLS = sys.version_info < (3, 13)


def readable_locals(frame: types.FrameType) -> Optional[Any]:
    """``frame.f_locals`` if reading it runs no code of the application and the agent may read
    what it gives, else None.

    A function's are (a new dict before 3.13, a view over the frame from 3.13). A module or
    class body or exec()'d code keeps its variables in a mapping, which may be the
    application's own (a metaclass's ``__prepare__``, ``exec(code, globals, mapping)``): only
    an exact dict is read. Before 3.13, reading ``f_locals`` of such code that has cells (a
    class body whose methods use ``super()``) writes the cells into that mapping, so it is not
    read at all there."""
    code = frame.f_code
    if code.co_flags & CO_OPTIMIZED:
        return frame.f_locals
    if _LOCALS_WRITE_CELLS and code.co_cellvars:
        return None
    f_locals = frame.f_locals
    return f_locals if type(f_locals) is dict else None
