"""The safe expression language of conditions, watch expressions and logpoint templates.

An expression is Python syntax, parsed with :mod:`ast` and checked against a small subset
(docs/expressions.md lists it). The checked tree is turned into Python source in which every
operation that could reach the application's code goes through a small helper that refuses
it (a property, ``__getattr__``, an operator or ``len`` of a foreign type), and that source is
compiled once, when the probe is installed. Evaluating a false condition is therefore a
handful of dict lookups and type checks, not a tree walk.

Every operation whose cost grows with an operand (``**``, ``*``, ``<<``, ``round``, int to text,
format widths, look-ups...) checks its bound *before* it runs, and charges an evaluation
budget (``MAX_WORK``) as it goes, so one expression costs at most a few milliseconds whatever
the data. A look-up or membership test never compares the needle with a stored key of an
application class (its ``__eq__`` would run).

Taint: an operation that derives something from a secret-shaped value (a slice, a format
spec, a comparison, arithmetic...) marks the evaluation, and a marked evaluation yields
:data:`MASK` instead of its value: a fragment of a token or a yes/no answer about a secret
never leaves the process. Reading a value is not a derivation: a value shown whole is masked
by capture and rendering as usual.

Two errors: :class:`ExpressionError` when an expression is refused at compile time (its text
is meant for the person who wrote it) and :class:`EvaluationError` when it fails on a hit.
"""

from __future__ import annotations

import ast
import builtins
import collections
import itertools
import re
import threading
import types
import warnings
from typing import Any, Callable, Dict, FrozenSet, List, Mapping, Optional, Set, Tuple, Union

from peephole.agent import speedups
from peephole.agent.safe.access import (
    describe,
    module_dict,
    safe_type_name,
    type_dict,
    type_info,
    type_module,
    type_mro,
    type_qualname,
)
from peephole.agent.safe.redaction import MASK, Redactor

__all__ = [
    "EvaluationError",
    "Expression",
    "ExpressionError",
    "Template",
    "compile_expression",
    "compile_template",
]

MAX_SOURCE = 2000  # characters in one expression
MAX_NODES = 300  # syntax tree nodes in one expression
MAX_ITEMS = 10_000  # items min/max/sum/any/all/in/== may look at
MAX_RESULT = 100_000  # items or characters an operator may produce
MAX_INT_BITS = 100_000
MAX_PLACEHOLDER = 1000  # characters one template placeholder may render to
MAX_FORMAT_WIDTH = 1000  # width and precision of a format spec
MAX_ROUND_DIGITS = 1000  # digits round() may be asked for, either way
MAX_INT_TEXT_BITS = 14_000  # ints written or parsed as text (about 4,200 decimal digits)
MAX_INT_TEXT = 4300  # characters int() parses (the interpreter's own default limit)
MAX_WORK = 10_000  # units one evaluation may spend (see _charge)
MAX_KEYS = 50_000  # keys a look-up checks are not of an application class
MAX_TAINT_SCAN = 8192  # characters searched for a secret; a longer text counts as secret
MAX_TAINT_SCANS = 16_384  # characters searched in one evaluation; past them, text is secret
MAX_LINE = 10_000  # characters of one rendered template line
TAINTED = f"{MASK} (computed from a secret value)"

CALLS = ("len", "isinstance", "str", "repr", "int", "float", "bool", "abs", "round", "min",
         "max", "sum", "any", "all", "type")  # fmt: skip


class ExpressionError(ValueError):
    """The expression is refused; the message says why, for the person who wrote it."""


class EvaluationError(Exception):
    """The expression failed on this hit (a missing name, a refused attribute, ...)."""


_MISSING = object()
NoneType = type(None)
_SCALAR_TYPES = (NoneType, bool, int, float, complex, str, bytes)
_SCALAR_IDS = frozenset(id(t) for t in _SCALAR_TYPES)
_NUMBER_IDS = frozenset({id(int), id(float), id(bool)})
_INT_IDS = frozenset({id(int), id(bool)})
_ORDERED_IDS = frozenset({id(int), id(float), id(bool), id(str), id(bytes)})
_SEQUENCE_IDS = frozenset({id(list), id(tuple), id(str), id(bytes), id(bytearray)})
_DICT_IDS = frozenset(
    id(t) for t in (dict, collections.OrderedDict, collections.defaultdict, collections.Counter)
)
_SIZED: Dict[int, Callable[[Any], int]] = {
    id(str): str.__len__,
    id(bytes): bytes.__len__,
    id(bytearray): bytearray.__len__,
    id(list): list.__len__,
    id(tuple): tuple.__len__,
    id(set): set.__len__,
    id(frozenset): frozenset.__len__,
    id(collections.deque): collections.deque.__len__,
    **{type_id: dict.__len__ for type_id in _DICT_IDS},
}
# Classes whose comparison, hashing and truth methods are C code that only looks at the
# object itself: a dunder inherited unchanged from one of these is safe to run.
_C_OWNERS = frozenset(id(t) for t in (object, int, float, complex, str, bytes, bool, type))
_BUILTIN_VALUES: Dict[str, object] = {
    name: value
    for name, value in vars(builtins).items()
    if isinstance(value, type)
    and (
        issubclass(value, BaseException)
        or value
        in (
            int,
            float,
            bool,
            str,
            bytes,
            bytearray,
            complex,
            list,
            tuple,
            dict,
            set,
            frozenset,
            type,
            object,
            range,
        )
    )
}


def _fail(message: str) -> EvaluationError:
    return EvaluationError(message)


# --- the state of one evaluation: its budget and whether it touched a secret ---------------

# One list per evaluation (cheaper to make than an object): work left, tainted, redactor,
# characters that may still be searched for secrets.
State = List[Any]
_WORK, _TAINTED, _REDACTOR, _SCAN = 0, 1, 2, 3


def _charge(S: State, units: int) -> None:
    """Spend ``units`` of the evaluation budget before the work is done; fail when over.

    A unit is about the cost of looking at one item in Python (a fraction of a microsecond):
    an item checked in C (``_kinds``, a copy) costs a quarter, 16 characters copied or 64 bits
    of an int one, so ``MAX_WORK`` is a few milliseconds whatever the operations."""
    left = S[_WORK] - units
    S[_WORK] = left
    if left < 0:
        raise _fail(
            f"the expression went over its evaluation budget of {MAX_WORK} units: "
            "it looks at too many items or characters to run at every hit"
        )


_SMALL_NUMBER = 10**12  # shorter than any card number: no secret can hide in it
_CARD_NUMBER = 10**19  # longer than any card number


def _taint(S: State, value: Any) -> None:
    """Mark the evaluation if ``value`` is a scalar holding a secret-shaped token (what the
    redactor would mask): whatever is derived from it must not leave the process. Once
    marked, nothing more is searched: a fragment of a secret must not reach the redactor's
    cache either."""
    if S[_TAINTED]:
        return
    cls = type(value)
    if cls is str:
        text = value
    elif cls is int:
        if -_SMALL_NUMBER < value < _SMALL_NUMBER or not -_CARD_NUMBER < value < _CARD_NUMBER:
            return
        text = repr(value)
    elif cls is float:  # a card number read into a float is a whole number
        if -_SMALL_NUMBER < value < _SMALL_NUMBER or not -_CARD_NUMBER < value < _CARD_NUMBER:
            return  # (NaN too)
        if not value.is_integer():
            return
        text = repr(int(value))
    elif cls is bytes or cls is bytearray:
        text = bytes(value[: MAX_TAINT_SCAN + 1]).decode("latin-1")
    else:
        return
    size = len(text)
    if size > MAX_TAINT_SCAN or size > S[_SCAN]:
        S[_TAINTED] = True  # too long to search at every hit: treated as secret
        return
    S[_SCAN] -= size  # searching costs far more per character than copying: its own budget
    if S[_REDACTOR].contains_secret(text):
        S[_TAINTED] = True


def _charge_looked_at(S: State, budget: List[int]) -> None:
    """Charge what a check with a local budget of ``MAX_ITEMS`` looked at: items checked in C
    count one, in Python ``_SLOW``, each a quarter of a unit."""
    _charge(S, (MAX_ITEMS - budget[0]) >> 2)


def _taint_deep(S: State, value: Any) -> None:
    """:func:`_taint` for a builtin container and what it holds: secret-shaped scalars,
    entries under secret names, ``(name, value)`` pairs with a secret name."""
    budget = [MAX_ITEMS]
    _taint_walk(S, value, budget)
    _charge_looked_at(S, budget)


def _hidden_entry(redactor: Redactor, key: Any, value: Any) -> bool:
    """A dict entry that capture hides: a secret name (``str`` or ``bytes``) over a value
    that can hold a secret."""
    return (type(key) is str or type(key) is bytes) and (
        redactor.is_secret_name(key) and redactor.hides(key, value)
    )


def _taint_walk(S: State, value: Any, budget: List[int]) -> None:
    cls = type(value)
    if id(cls) in _SCALAR_IDS or cls is bytearray:
        _taint(S, value)
        return
    redactor: Redactor = S[_REDACTOR]
    if redactor.is_secret_container(value):
        S[_TAINTED] = True  # header or cookie pairs, the environment: hidden by capture too
        return
    if id(cls) in _DICT_IDS:
        items: List[Any] = []
        for key, item in list(itertools.islice(dict.items(value), budget[0] + 1)):
            if _hidden_entry(redactor, key, item):
                S[_TAINTED] = True
                return
            items += (key, item)
    elif cls is list or cls is tuple or cls is set or cls is frozenset:
        if (cls is list or cls is tuple) and len(value) <= budget[0]:
            items = value  # no copy: min and max read a list another thread changes safely
        else:
            items = list(itertools.islice(value, budget[0] + 1))  # exact builtins: C iterators
        kinds = _kinds(items)
        if kinds <= _SCALAR_IDS:
            budget[0] -= len(items)
            _taint_scalars(S, items, kinds)
            return
    else:
        return  # other objects compare by identity only
    budget[0] -= _SLOW * len(items)
    if budget[0] < 0:
        S[_TAINTED] = True  # too much to search: treated as secret
        return
    for item in items:
        _taint_walk(S, item, budget)
        if S[_TAINTED]:
            return


def _taint_scalars(S: State, items: List[Any], kinds: Any) -> None:
    """:func:`_taint` of many scalars: numbers checked in C when all are short, the texts'
    characters counted against the search budget before any is searched."""
    if not items or (  # the common case, all in C: no number long enough to be a card
        kinds <= _REAL_IDS and sum(map(abs, items)) < _SMALL_NUMBER  # (NaN: checked below)
    ):
        return
    if kinds & _TEXT_IDS:
        texts = [item for item in items if id(type(item)) in _TEXT_IDS]
        if sum(map(len, texts)) > S[_SCAN]:
            S[_TAINTED] = True  # more text than may be searched: treated as secret
            return
    _charge(S, len(items))  # one by one, in Python
    for item in items:
        _taint(S, item)
        if S[_TAINTED]:
            return


def _ids(*classes: type) -> FrozenSet[int]:
    """Ids of classes: membership tests on them never hash or compare a foreign class (a
    metaclass may define ``__hash__`` or ``__eq__``)."""
    return frozenset(id(cls) for cls in classes)


def _subclass(cls: type, base: type) -> bool:
    return any(klass is base for klass in type_mro(cls))


_SEQUENCE_BUILD_IDS = _ids(str, bytes, list, tuple)
_SET_IDS = _ids(set, frozenset)
_TEXT_IDS = _ids(str, bytes, bytearray)
_NUMBER_KIND_IDS = _ids(int, float, bool, complex)
_REAL_IDS = _ids(int, float, bool)
_SLOW = 4  # units an item costs when it is checked one by one in Python, not in C
_FORMATTABLE_IDS = _ids(int, float, bool, str, NoneType)
_INT_PARSE_IDS = _ids(int, bool, float, str, bytes)
_FLOAT_PARSE_IDS = _ids(int, bool, float, str)
_CLASS_CALLABLE_IDS = _ids(staticmethod, classmethod, types.FunctionType, property)


# --- safe reads ----------------------------------------------------------------------------


def _owner(cls: type, name: str) -> Tuple[Optional[type], Any]:
    """The class in ``cls``'s MRO that defines ``name``, and what it defines."""
    for klass in type_mro(cls):
        namespace = type_dict(klass)
        found = namespace.get(name, _MISSING)
        if found is not _MISSING:
            return klass, found
    return None, _MISSING


# (class id, dunder) -> (class, runs code?): a container of many objects of one class is
# checked with one MRO walk. Cleared with the attribute plans when a probe is saved.
_runs: Dict[Tuple[int, str], Tuple[type, bool]] = {}


def _runs_code(cls: type, dunder: str) -> bool:
    """True if ``dunder`` of ``cls`` is not the C method of a builtin scalar type or object."""
    known = _runs.get((id(cls), dunder))
    if known is not None and known[0] is cls:
        return known[1]
    owner, _ = _owner(cls, dunder)
    runs = owner is not None and id(owner) not in _C_OWNERS
    if len(_runs) >= 4096:
        _runs.clear()
    _runs[(id(cls), dunder)] = (cls, runs)
    return runs


class _AttributePlan:
    """How to read one attribute name on one class, decided once."""

    __slots__ = ("cls", "data", "kind")

    def __init__(self, cls: type, kind: str, data: Any = None) -> None:
        self.cls = cls
        self.kind = kind
        self.data = data


_plans: Dict[int, Tuple[type, Dict[str, _AttributePlan]]] = {}


def _descriptor_kind(value: Any) -> str:
    """'plain' (no __get__), 'data' (__get__ with __set__ or __delete__) or 'non-data'."""
    cls = type(value)
    if _owner(cls, "__get__")[0] is None:
        return "plain"
    if _owner(cls, "__set__")[0] is not None or _owner(cls, "__delete__")[0] is not None:
        return "data"
    return "non-data"


def _plan_for(cls: type, name: str) -> _AttributePlan:
    info = type_info(cls)
    if info.enum and name in ("name", "value"):
        return _AttributePlan(cls, "enum", "_" + name + "_")
    if info.kind == "module":
        return _AttributePlan(cls, "module")
    if info.kind == "type":
        return _AttributePlan(cls, "class")
    _, descriptor = _owner(cls, name)
    what = "missing" if descriptor is _MISSING else _descriptor_kind(descriptor)
    getattr_hook = _owner(cls, "__getattr__")[0] is not None
    getter = info.dict_getter
    if type(descriptor) is types.MemberDescriptorType:
        return _AttributePlan(cls, "slot", descriptor.__get__)
    if type(descriptor) is types.GetSetDescriptorType:
        return _AttributePlan(cls, "getset", descriptor.__get__)
    if what == "data":
        kind = "property" if _subclass(type(descriptor), property) else "descriptor"
        return _AttributePlan(cls, kind, (getter, safe_type_name(descriptor)))
    if what == "plain":
        return _AttributePlan(cls, "class-value", (getter, descriptor))
    if what == "non-data":
        return _AttributePlan(cls, "method", (getter, safe_type_name(descriptor)))
    return _AttributePlan(cls, "instance", (getter, getattr_hook))


def _plan(cls: type, name: str) -> _AttributePlan:
    cached = _plans.get(id(cls))
    if cached is None or cached[0] is not cls:
        if len(_plans) >= 1024:
            _plans.clear()
        cached = (cls, {})
        _plans[id(cls)] = cached
    plan = cached[1].get(name)
    if plan is None:
        plan = cached[1][name] = _plan_for(cls, name)
    return plan


def _instance_value(obj: Any, getter: Optional[Callable[[Any], Any]], name: str) -> Any:
    if getter is None:
        return _MISSING
    namespace = getter(obj)
    if type(namespace) is not dict:
        return _MISSING
    return namespace.get(name, _MISSING)


def _attr(obj: Any, name: str, text: str) -> Any:
    """``obj.name``, read from stored state only; anything computed is refused. ``text`` is
    the attribute as written, for messages."""
    cls = type(obj)
    plan = _plan(cls, name)
    kind = plan.kind
    if kind == "instance":
        getter, has_getattr = plan.data
        value = _instance_value(obj, getter, name)
        if value is not _MISSING:
            return value
        if has_getattr:
            raise _fail(
                f"{text}: {safe_type_name(obj)} has no stored attribute {name!r} and its "
                "__getattr__ is not run; peephole does not run application code"
            )
        raise _fail(f"{text}: {safe_type_name(obj)} has no attribute {name!r}")
    if kind == "slot" or kind == "getset":
        try:
            return plan.data(obj, cls)
        except AttributeError:
            raise _fail(f"{text} is not set") from None
    if kind == "module":
        return _module_attr(obj, name)
    if kind == "enum":
        value = _instance_value(obj, type_info(cls).dict_getter, plan.data)
        if value is _MISSING:
            raise _fail(f"{text}: the enum member has no {plan.data}")
        return value
    if kind == "class":
        return _class_attr(obj, name)
    getter, detail = plan.data
    value = _instance_value(obj, getter, name)
    if value is not _MISSING and kind != "property":
        return value  # stored in the instance (a loaded ORM column, a computed cache, ...)
    if kind == "class-value":
        return detail
    if kind == "property":
        raise _fail(f"{text} is a property; peephole does not run application code")
    if kind == "method" and detail in ("function", "method_descriptor", "classmethod"):
        raise _fail(f"{text} is a method; peephole does not call application code")
    raise _fail(f"{text} is computed by a {detail}; peephole does not run application code")


def _attribute_site(name: str, text: str) -> Callable[[Any], Any]:
    """A reader for one ``x.name`` of an expression that remembers the last class it read
    ``name`` from: the common case (a plain attribute of the same class of object as last
    time) then costs a type check, the C read of the instance ``__dict__`` and one lookup."""
    last: Tuple[Any, Any] = (None, None)  # (class, its __dict__ getter), swapped whole

    def read(obj: Any) -> Any:
        nonlocal last
        cls, getter = last
        if type(obj) is cls:
            namespace = getter(obj)
            if type(namespace) is dict:
                value = namespace.get(name, _MISSING)
                if value is not _MISSING:
                    return value
        value = _attr(obj, name, text)
        plan = _plan(type(obj), name)
        if plan.kind == "instance" and plan.data[0] is not None:
            last = (type(obj), plan.data[0])
        return value

    return read


def _module_attr(module: Any, name: str) -> Any:
    value = dict.get(module_dict(module), name, _MISSING)
    if value is _MISSING:
        raise _fail(f"module has no attribute {name!r} (a module __getattr__ is not run)")
    return value


def _class_attr(cls: Any, name: str) -> Any:
    owner, value = _owner(cls, name)
    if owner is None:
        members = _owner(cls, "_member_map_")[1]
        if type(members) is dict and name in members:
            return members[name]
        raise _fail(f"class {safe_type_name(cls)} has no attribute {name!r}")
    if id(type(value)) in _CLASS_CALLABLE_IDS:
        raise _fail(
            f"{type_info(cls).name}.{name} is a {safe_type_name(value)}; peephole "
            "does not call application code"
        )
    if _descriptor_kind(value) != "plain":
        raise _fail(
            f"{type_info(cls).name}.{name} is computed by a descriptor; peephole "
            "does not run application code"
        )
    return value


def _global(globals_: Any, name: str) -> Any:
    if type(globals_) is dict:
        value = globals_.get(name, _MISSING)
        if value is not _MISSING:
            return value
    value = _BUILTIN_VALUES.get(name, _MISSING)
    if value is _MISSING:
        raise _fail(f"name {name!r} is not defined")
    return value


def _kinds(items: Any) -> Any:
    """The ids of the exact types of ``items`` (a builtin container), found in C: a
    container of scalars is then checked at a fraction of the cost of a loop over it."""
    return set(map(id, map(type, items)))


def _hashable(value: Any, budget: List[int]) -> bool:
    """True if hashing and comparing ``value`` runs no application code."""
    type_id = id(type(value))
    if type_id in _SCALAR_IDS:
        return True
    if type(value) is tuple or type(value) is frozenset:
        if _kinds(value) <= _SCALAR_IDS:
            budget[0] -= len(value)
            return budget[0] >= 0
        budget[0] -= _SLOW * len(value)
        return budget[0] >= 0 and all(_hashable(item, budget) for item in value)
    return False


def _item(obj: Any, key: Any, S: State) -> Any:
    """``obj[key]`` for builtin containers only."""
    type_id = id(type(obj))
    _taint(S, key)
    redactor: Redactor = S[_REDACTOR]
    if redactor.is_secret_container(obj):
        S[_TAINTED] = True  # a value out of header pairs or the environment is hidden too
    if type_id in _SEQUENCE_IDS:
        _taint(S, obj)  # a character or a slice of a secret is a fragment of it
        if id(type(key)) in _INT_IDS:
            return obj[key]
        if type(key) is slice:
            if not all(
                id(type(part)) in _INT_IDS or part is None
                for part in (key.start, key.stop, key.step)
            ):
                raise _fail("slice bounds must be integers")
            size = len(range(*key.indices(len(obj))))
            if size > MAX_RESULT:
                raise _fail(f"a slice of more than {MAX_RESULT} items")
            _charge(S, size >> 4)
            return obj[key]
        raise _fail(f"{safe_type_name(obj)} indices must be integers, not {safe_type_name(key)}")
    if type_id in _DICT_IDS:
        if not _hashable(key, [MAX_ITEMS]):
            raise _fail(f"a dict key of type {safe_type_name(key)} would run its __hash__")
        if (type(key) is str or type(key) is bytes) and redactor.is_secret_name(key):
            raise _fail(f"expression reads {key!r}, which is redacted")
        _check_stored_keys(S, obj, "a look-up")
        value = dict.get(obj, key, _MISSING)
        if value is _MISSING:
            shown = "(redacted)" if S[_TAINTED] else _short(key, redactor)
            raise _fail(f"key {shown} is not in the {safe_type_name(obj)}")
        return value
    if type(obj) is collections.deque and id(type(key)) in _INT_IDS:
        return collections.deque.__getitem__(obj, key)
    raise _fail(
        f"{safe_type_name(obj)}[...] would run its __getitem__; peephole does not run "
        "application code"
    )


# Stored keys whose __eq__ is the builtin's own C code, whatever they are compared with.
_PLAIN_KEY_IDS = _ids(str, int, float, bool, NoneType, bytes, complex)


def _check_stored_keys(S: State, container: Any, what: str) -> None:
    """Refuse a look-up in a dict or set that holds a key whose comparison would run the
    application's code: a key hashed like the needle is compared with it, with the *stored*
    key's ``__eq__`` (an ORM model hashed by its primary key, say)."""
    is_dict = id(type(container)) in _DICT_IDS
    count = dict.__len__(container) if is_dict else len(container)
    if count > MAX_KEYS:
        raise _fail(
            f"{what} in a {safe_type_name(container)} of {count} keys: peephole checks "
            f"at most {MAX_KEYS} keys for application classes first"
        )
    _charge(S, count >> 4)  # the cheapest pass there is: no copy, C calls only
    keys = dict.keys(container) if is_dict else container
    if set(map(id, map(type, keys))) <= _PLAIN_KEY_IDS:  # C all the way: no key's code runs
        return
    budget = [MAX_ITEMS]
    for key in list(keys):
        if id(type(key)) not in _PLAIN_KEY_IDS and not _comparable(key, "__eq__", budget):
            raise _fail(
                f"{what} in this {safe_type_name(container)} would compare with a "
                f"stored key of type {safe_type_name(key)} and run its __eq__; peephole "
                "does not run application code"
            )
    _charge_looked_at(S, budget)


def _slice(start: Any, stop: Any, step: Any) -> slice:
    return slice(start, stop, step)


# --- operators -----------------------------------------------------------------------------


def _comparable(value: Any, dunder: str, budget: List[int]) -> bool:
    """True if comparing ``value`` with ``dunder`` runs no application code."""
    type_id = id(type(value))
    if type_id in _SCALAR_IDS:
        return True
    cls = type(value)
    if cls is list or cls is tuple or cls is set or cls is frozenset:
        if _kinds(value) <= _SCALAR_IDS:
            budget[0] -= len(value)
            return budget[0] >= 0
        budget[0] -= _SLOW * len(value)
        return budget[0] >= 0 and all(_comparable(item, dunder, budget) for item in value)
    if type_id in _DICT_IDS:
        budget[0] -= 2 * _SLOW * dict.__len__(value)
        return budget[0] >= 0 and all(
            _comparable(k, "__eq__", budget) and _comparable(v, "__eq__", budget)
            for k, v in list(dict.items(value))
        )
    return not _runs_code(cls, dunder) and not (dunder == "__eq__" and _runs_code(cls, "__ne__"))


_COMPARE_DUNDERS = {"==": "__eq__", "!=": "__eq__", "<": "__lt__", "<=": "__le__",
                    ">": "__gt__", ">=": "__ge__"}  # fmt: skip
_REFLECTED = {"__lt__": "__gt__", "__gt__": "__lt__", "__le__": "__ge__", "__ge__": "__le__",
              "__eq__": "__eq__"}  # fmt: skip


def _compare(op: str, left: Any, right: Any, S: State) -> bool:
    if op in ("in", "not in"):
        found = _contains(right, left, S)
        return found if op == "in" else not found
    if id(type(left)) in _ORDERED_IDS and id(type(right)) in _ORDERED_IDS:
        _taint(S, left)  # the common case: two scalars, one of which may be a secret
        _taint(S, right)
        return _ORDERED_COMPARE[op](left, right)
    dunder = _COMPARE_DUNDERS[op]
    budget = [MAX_ITEMS]
    if not (_comparable(left, dunder, budget) and _comparable(right, _REFLECTED[dunder], budget)):
        raise _fail(
            f"comparing {safe_type_name(left)} with {safe_type_name(right)} using {op} "
            "would run application code (or look at too many items)"
        )
    _charge_looked_at(S, budget)
    _taint_deep(S, left)  # an answer about a secret (creds == {...}, key < 'M') is an oracle
    _taint_deep(S, right)
    if op == "==":
        return bool(left == right)
    if op == "!=":
        return bool(left != right)
    if op == "<":
        return bool(left < right)
    if op == "<=":
        return bool(left <= right)
    if op == ">":
        return bool(left > right)
    return bool(left >= right)


_ORDERED_COMPARE: Dict[str, Callable[[Any, Any], bool]] = {
    "==": lambda a, b: a == b, "!=": lambda a, b: a != b, "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b, ">": lambda a, b: a > b, ">=": lambda a, b: a >= b,
}  # fmt: skip


def _contains(container: Any, needle: Any, S: State) -> bool:
    cls = type(container)
    budget = [MAX_ITEMS]
    _taint(S, needle)
    if cls is str or cls is bytes:
        if type(needle) is not cls:
            raise _fail(f"'in <{cls.__name__}>' needs a {cls.__name__} on the left")
        _taint(S, container)  # 'abc' in secret: a substring oracle
        _charge(S, len(container) >> 4)
        return needle in container
    if id(cls) in _DICT_IDS or cls is set or cls is frozenset:
        if not _hashable(needle, budget):
            raise _fail(f"looking up a {safe_type_name(needle)} would run its __hash__")
        _check_stored_keys(S, container, "a membership test")
        return dict.__contains__(container, needle) if id(cls) in _DICT_IDS else needle in container
    if cls is list or cls is tuple or cls is collections.deque:
        if len(container) > MAX_ITEMS:
            raise _fail(f"'in' looks at {MAX_ITEMS} items at most; this has {len(container)}")
        if not _comparable(needle, "__eq__", budget) or not _comparable(
            list(container) if cls is collections.deque else container, "__eq__", budget
        ):
            raise _fail(
                f"'in' over this {cls.__name__} would compare application objects "
                "(or too many items)"
            )
        _charge_looked_at(S, budget)
        _charge(S, len(container) >> 1)  # the scan compares the needle with each item
        return needle in container
    raise _fail(f"'in' on {safe_type_name(container)} would run its __contains__")


def _number(value: Any) -> bool:
    return id(type(value)) in _NUMBER_IDS or type(value) is complex


def _size(value: Any) -> int:
    sized = _SIZED.get(id(type(value)))
    return sized(value) if sized is not None else 0


def _bits(value: Any) -> int:
    return int.bit_length(value) if id(type(value)) in _INT_IDS else 0


def _int_bounds(op: str, left: Any, right: Any) -> None:
    """Refuse an integer operation whose cost or result grows past ``MAX_INT_BITS``."""
    if op == "**":
        if (
            _bits(left) > 1
            and id(type(right)) in _INT_IDS
            and right > 0
            and (_bits(left) * right > MAX_INT_BITS)
        ):
            raise _fail(f"the result of ** would exceed {MAX_INT_BITS} bits")
    elif op == "<<":
        if id(type(right)) in _INT_IDS and left and _bits(left) + right > MAX_INT_BITS:
            raise _fail(f"the result of << would exceed {MAX_INT_BITS} bits")
    elif op == "*":
        if _bits(left) + _bits(right) > MAX_INT_BITS:
            raise _fail(f"the result of * would exceed {MAX_INT_BITS} bits")
    elif op in ("//", "%", "/") and max(_bits(left), _bits(right)) > MAX_INT_BITS:
        raise _fail(f"{op} works on integers of {MAX_INT_BITS} bits at most")


def _arith(op: str, left: Any, right: Any, S: State) -> Any:
    """A binary operator on builtin values, with caps on the size of what it may build."""
    _taint(S, left)
    _taint(S, right)
    if _number(left) and _number(right):
        _int_bounds(op, left, right)
        if op in ("<<", ">>", "&", "|", "^") and not (
            id(type(left)) in _INT_IDS and id(type(right)) in _INT_IDS
        ):
            raise _fail(f"{op} needs integers")
        _charge(S, (_bits(left) + _bits(right)) >> 6)
        return _BINARY[op](left, right)
    lt, rt = type(left), type(right)
    if op == "+" and lt is rt and id(lt) in _SEQUENCE_BUILD_IDS:
        size = _size(left) + _size(right)
        if size > MAX_RESULT:
            raise _fail(f"the result of + would exceed {MAX_RESULT} items")
        _charge(S, size >> 4)
        return left + right
    if op == "*" and (
        (id(lt) in _SEQUENCE_BUILD_IDS and id(rt) in _INT_IDS)
        or (id(rt) in _SEQUENCE_BUILD_IDS and id(lt) in _INT_IDS)
    ):
        count, seq = (right, left) if id(rt) in _INT_IDS else (left, right)
        size = _size(seq) * count if count > 0 else 0
        if size > MAX_RESULT:
            raise _fail(f"the result of * would exceed {MAX_RESULT} items")
        _charge(S, size >> 4)
        return left * right
    if op in ("&", "|", "^", "-") and id(lt) in _SET_IDS and id(rt) in _SET_IDS:
        budget = [MAX_ITEMS]
        if len(left) + len(right) <= MAX_ITEMS and (
            _hashable(frozenset.union(frozenset(), left), budget)  # a copy made in C
            and _hashable(frozenset.union(frozenset(), right), budget)
        ):
            _charge_looked_at(S, budget)
            _taint_deep(S, left)
            _taint_deep(S, right)
            return _BINARY[op](left, right)
    raise _fail(
        f"{safe_type_name(left)} {op} {safe_type_name(right)} is not supported "
        "(operators work on numbers, strings, bytes, lists, tuples and sets of scalars)"
    )


_BINARY: Dict[str, Callable[[Any, Any], Any]] = {
    "+": lambda a, b: a + b,
    "-": lambda a, b: a - b,
    "*": lambda a, b: a * b,
    "/": lambda a, b: a / b,
    "//": lambda a, b: a // b,
    "%": lambda a, b: a % b,
    "**": lambda a, b: a**b,
    "<<": lambda a, b: a << b,
    ">>": lambda a, b: a >> b,
    "&": lambda a, b: a & b,
    "|": lambda a, b: a | b,
    "^": lambda a, b: a ^ b,
}


def _unary(op: str, value: Any, S: State) -> Any:
    _taint(S, value)
    if op == "~":
        if id(type(value)) in _INT_IDS:
            return ~value
        raise _fail(f"~ needs an integer, not {safe_type_name(value)}")
    if not _number(value):
        raise _fail(f"unary {op} needs a number, not {safe_type_name(value)}")
    return -value if op == "-" else +value


def _truth(value: Any) -> bool:
    """``bool(value)`` when that runs no application code."""
    cls = type(value)
    if id(cls) in _SCALAR_IDS or id(cls) in _SIZED:
        return bool(value)
    if _runs_code(cls, "__bool__") or _runs_code(cls, "__len__"):
        raise _fail(
            f"the truth value of {safe_type_name(value)} would run its __bool__ or "
            "__len__; compare it instead (x is not None)"
        )
    return bool(value)  # only object's, int's, str's... methods: C code


# --- builtins ------------------------------------------------------------------------------


def _bounded(S: State, value: Any, what: str) -> List[Any]:
    """The items of a builtin container, if there are at most MAX_ITEMS."""
    cls = type(value)
    size = _SIZED.get(id(cls))
    if size is None:
        raise _fail(f"{what}() needs a builtin container, not {safe_type_name(value)}")
    count = size(value)
    if count > MAX_ITEMS:
        raise _fail(f"{what}() looks at {MAX_ITEMS} items at most; this has {count}")
    _charge(S, count >> 2 if id(cls) not in _TEXT_IDS else count >> 4)  # a copy, in C
    if id(cls) in _DICT_IDS:
        return list(dict.keys(value))
    return list(value)


def _len(S: State, value: Any) -> int:
    size = _SIZED.get(id(type(value)))
    if size is None:
        raise _fail(
            f"len() of {safe_type_name(value)} would run its __len__; peephole does not "
            "run application code"
        )
    _taint(S, value)  # the length of a secret is a fact about it
    return size(value)


def _isinstance(S: State, value: Any, classes: Any) -> bool:
    wanted = classes if type(classes) is tuple else (classes,)
    if len(wanted) > MAX_ITEMS:
        raise _fail(f"isinstance() looks at {MAX_ITEMS} classes at most; this has {len(wanted)}")
    _charge(S, len(wanted))
    for cls in wanted:
        if not type_info(type(cls)).kind == "type":
            raise _fail(
                f"isinstance() needs a class or a tuple of classes, not {safe_type_name(cls)}"
            )
    mro = type_mro(type(value))
    return any(klass is cls for klass in mro for cls in wanted)


def _scalar(S: State, value: Any, what: str) -> Any:
    """``value`` if it is a builtin scalar that can be written as text within the bounds."""
    cls = type(value)
    if id(cls) not in _SCALAR_IDS:
        raise _fail(
            f"{what}() of {safe_type_name(value)} would run its code; it works on "
            "numbers, strings, bytes, booleans and None"
        )
    if cls is int and int.bit_length(value) > MAX_INT_TEXT_BITS:
        raise _fail(
            f"{what}() of an int of {int.bit_length(value)} bits: ints are written as "
            f"text up to {MAX_INT_TEXT_BITS} bits"
        )
    if what == "repr" and (cls is str or cls is bytes) and len(value) > MAX_RESULT:
        raise _fail(f"repr() of more than {MAX_RESULT} characters")
    _taint(S, value)
    return value


def _str(S: State, value: Any) -> str:
    value = _scalar(S, value, "str")
    if type(value) is bytes:
        return _repr(S, value)
    return str(value)


def _repr(S: State, value: Any) -> str:
    value = _scalar(S, value, "repr")
    _charge(S, _size(value) >> 2)  # up to 4 characters per character (\xNN)
    return repr(value)


def _int(S: State, value: Any, base: Any = _MISSING) -> int:
    if id(type(value)) not in _INT_PARSE_IDS:
        raise _fail(f"int() of {safe_type_name(value)} is not supported")
    if (type(value) is str or type(value) is bytes) and len(value) > MAX_INT_TEXT:
        raise _fail(f"int() parses {MAX_INT_TEXT} characters at most; this has {len(value)}")
    _taint(S, value)
    if base is _MISSING:
        return int(value)
    if not (type(value) is str or type(value) is bytes) or id(type(base)) not in _INT_IDS:
        raise _fail("int(x, base) needs a string and an integer base")
    return int(value, base)


def _float(S: State, value: Any) -> float:
    if id(type(value)) not in _FLOAT_PARSE_IDS:
        raise _fail(f"float() of {safe_type_name(value)} is not supported")
    if type(value) is str and len(value) > MAX_INT_TEXT:
        raise _fail(f"float() parses {MAX_INT_TEXT} characters at most; this has {len(value)}")
    _taint(S, value)
    return float(value)


def _abs(S: State, value: Any) -> Any:
    if not _number(value):
        raise _fail(f"abs() of {safe_type_name(value)} is not supported")
    _taint(S, value)
    return abs(value)


def _round(S: State, value: Any, digits: Any = None) -> Any:
    if id(type(value)) not in _NUMBER_IDS or not (digits is None or id(type(digits)) in _INT_IDS):
        raise _fail("round() needs a number and an optional integer")
    if digits is not None and not -MAX_ROUND_DIGITS <= digits <= MAX_ROUND_DIGITS:
        raise _fail(f"round() takes {MAX_ROUND_DIGITS} digits at most, either way")
    if _bits(value) > MAX_INT_BITS:
        raise _fail(f"round() works on integers of {MAX_INT_BITS} bits at most")
    _taint(S, value)
    return round(value, digits)


def _ordered_items(S: State, args: Tuple[Any, ...], what: str) -> List[Any]:
    items = _bounded(S, args[0], what) if len(args) == 1 else list(args)
    if not items:
        raise _fail(f"{what}() of an empty sequence")
    kinds = _kinds(items)
    _charge(S, len(items) >> 2)
    if kinds <= _SCALAR_IDS:
        _taint_scalars(S, items, kinds)  # which one is larger is an answer about each
        return items
    budget = [MAX_ITEMS]
    if not (_comparable(items, "__lt__", budget) and _comparable(items, "__gt__", budget)):
        raise _fail(f"{what}() would compare application objects (or too many items)")
    _charge_looked_at(S, budget)
    _taint_deep(S, items)
    return items


def _min(S: State, *args: Any) -> Any:
    return min(_ordered_items(S, args, "min"))


def _max(S: State, *args: Any) -> Any:
    return max(_ordered_items(S, args, "max"))


def _sum(S: State, values: Any, start: Any = 0) -> Any:
    items = _bounded(S, values, "sum")
    kinds = _kinds(items)
    if not kinds <= _NUMBER_KIND_IDS or not _number(start):
        raise _fail("sum() adds numbers only")
    _taint_scalars(S, items, kinds)
    _taint(S, start)
    return sum(items, start)


def _truths(S: State, values: Any, what: str) -> Any:
    """The items of ``values`` if their truth runs no code (in C for scalars), or their truth
    values taken one by one."""
    items = _bounded(S, values, what)
    if _kinds(items) <= _SCALAR_IDS:
        return items
    _charge(S, len(items))
    return map(_truth, items)


def _any(S: State, values: Any) -> bool:
    return any(_truths(S, values, "any"))


def _all(S: State, values: Any) -> bool:
    return all(_truths(S, values, "all"))


def _bool(S: State, value: Any) -> bool:
    return _truth(value)  # whether a value is empty is not a secret of it


def _type(S: State, value: Any) -> type:
    return type(value)


def _type_name(value: Any, attribute: str) -> str:
    """``type(x).__name__`` (or ``__qualname__``, ``__module__``), read safely."""
    cls = type(value)
    text = type_module(cls) if attribute == "__module__" else type_qualname(cls)
    if type(text) is not str:
        return "?"
    return text.rpartition(".")[2] if attribute == "__name__" else text


_HELPERS: Dict[str, Any] = {
    "_attr": _attr,
    "_global": _global,
    "_item": _item,
    "_slice": _slice,
    "_compare": _compare,
    "_arith": _arith,
    "_unary": _unary,
    "_truth": _truth,
    "_type_name": _type_name,
    "_tp": type,
    "_int": int,
    "_float": float,
    "_fmt": None,  # set below
    "_set": None,
    "_dict": None,
    "__builtins__": {},
}
_CALL_HELPERS: Dict[str, Tuple[Callable[..., Any], int, int]] = {
    # name: (helper, fewest arguments, most arguments)
    "len": (_len, 1, 1),  # each helper takes the evaluation's State first
    "isinstance": (_isinstance, 2, 2),
    "str": (_str, 1, 1),
    "repr": (_repr, 1, 1),
    "int": (_int, 1, 2),
    "float": (_float, 1, 1),
    "bool": (_bool, 1, 1),
    "abs": (_abs, 1, 1),
    "round": (_round, 1, 2),
    "min": (_min, 1, 20),
    "max": (_max, 1, 20),
    "sum": (_sum, 1, 2),
    "any": (_any, 1, 1),
    "all": (_all, 1, 1),
    "type": (_type, 1, 1),
}


def _make_set(*items: Any) -> Set[Any]:
    budget = [MAX_ITEMS]
    for item in items:
        if not _hashable(item, budget):
            raise _fail(f"a set of {safe_type_name(item)} would run its __hash__")
    return set(items)


def _make_dict(*pairs: Any) -> Dict[Any, Any]:
    budget = [MAX_ITEMS]
    result = {}
    for key, value in zip(pairs[::2], pairs[1::2]):
        if not _hashable(key, budget):
            raise _fail(f"a dict key of type {safe_type_name(key)} would run its __hash__")
        result[key] = value
    return result


# --- rendering for templates and f-strings -------------------------------------------------


_SHORT_BRACKETS = {
    id(list): ("[", "]"),
    id(tuple): ("(", ")"),
    id(set): ("{", "}"),
    id(frozenset): ("{", "}"),
    id(collections.deque): ("[", "]"),
}


def _short(value: Any, redactor: Optional[Redactor], depth: int = 2, width: int = 200) -> str:
    """A compact text of ``value`` that runs none of its code: scalars as Python writes
    them, builtin containers with their first items, other objects as ``<module.Type>``."""
    cls = type(value)
    if cls is str:
        if len(value) > width:  # masked before it is cut: a cut token no longer looks like one
            head = value[: width + 64]
            masked = redactor.redact_text(head) if redactor is not None else None
            value = (head if masked is None else masked)[:width] + "..."
        return repr(value)
    if id(cls) in _SCALAR_IDS:
        if cls is int and int.bit_length(value) > MAX_INT_TEXT_BITS:
            return f"<int of {value.bit_length()} bits>"
        return repr(value)
    info = type_info(cls)
    if info.format is not None or info.kind != "object" or info.enum:
        described = describe(value, info)
        return described if described is not None else f"<{info.name}>"
    if redactor is not None and redactor.is_secret_container(value):
        return f"<{info.name} {MASK}>"  # headers, cookies, the environment (redaction.py)
    if depth <= 0:
        return f"<{info.name}>" if id(cls) not in _SIZED else f"<{info.name} of {_size(value)}>"
    parts: List[str] = []
    used = 0
    if id(cls) in _DICT_IDS:
        count = dict.__len__(value)
        for key, item in list(itertools.islice(dict.items(value), 10)):
            if (
                (type(key) is str or type(key) is bytes)
                and redactor is not None
                and (redactor.is_secret_name(key) and redactor.hides(key, item))
            ):
                text = f"{_short(key, redactor, 1, 40)}: {MASK}"
            else:
                text = f"{_short(key, redactor, 1, 40)}: {_short(item, redactor, depth - 1, 60)}"
            parts.append(text)
            used += len(text)
            if used > width:
                break
        opening, closing = "{", "}"
    elif id(cls) in _SHORT_BRACKETS:
        count = len(value)
        shown = value[:10] if cls is list or cls is tuple else list(itertools.islice(value, 10))
        for item in shown:
            text = _short(item, redactor, depth - 1, 60)
            parts.append(text)
            used += len(text)
            if used > width:
                break
        opening, closing = _SHORT_BRACKETS[id(cls)]
    else:
        return f"<{info.name}>"
    if count > len(parts):
        parts.append(f"... {count - len(parts)} more")
    return opening + ", ".join(parts) + closing


def _render(value: Any, conversion: Optional[str], spec: str, S: State) -> str:
    """One template placeholder's text (format spec on scalars only), masked if secret."""
    redactor: Redactor = S[_REDACTOR]
    if spec:
        cls = type(value)
        if id(cls) not in _FORMATTABLE_IDS:
            raise _fail(
                f"format spec ':{spec}' needs a number or a string, not {safe_type_name(value)}"
            )
        if cls is int and int.bit_length(value) > MAX_INT_TEXT_BITS:
            raise _fail(
                f"format spec ':{spec}' on an int of {int.bit_length(value)} bits: ints "
                f"are written as text up to {MAX_INT_TEXT_BITS} bits"
            )
        if cls is str and len(value) > MAX_PLACEHOLDER:
            value = value[: MAX_PLACEHOLDER + 64]  # all that can be shown, and a token across
        _taint(S, value)  # a spec can cut a secret ({key:.19}) or pad it
        if conversion == "r":
            value = repr(value)
        if type(value) is str and len(value) > MAX_PLACEHOLDER:
            value = value[: MAX_PLACEHOLDER + 1]
        try:
            text = format(value, spec)
        except (ValueError, TypeError) as exc:
            raise _fail(f"format spec ':{spec}' does not apply: {exc}") from None
    elif conversion != "r" and type(value) is str:
        text = value if len(value) <= MAX_PLACEHOLDER + 64 else value[: MAX_PLACEHOLDER + 64]
    elif (type(value) is int and -_CARD_SIZED < value < _CARD_SIZED) or type(value) is bool:
        return repr(value)  # too short to be a card number: nothing to mask
    else:
        text = _short(value, redactor)
    if S[_TAINTED]:
        return MASK  # a fragment of a secret: not even searched (the cache would keep it)
    masked = redactor.redact_text(text)  # masked before it is cut, like capture does
    if masked is not None:
        text = masked
    if len(text) > MAX_PLACEHOLDER:
        text = text[:MAX_PLACEHOLDER] + "..."
    return text


def _fmt(value: Any, conversion: Optional[str], spec: str, S: State) -> str:
    """An f-string field inside an expression: rendered, then its work charged."""
    text = _render(value, conversion, spec, S)
    _charge(S, len(text) >> 4)
    return text


# Fill and align, then the rest of a format spec, whose digits are its width and precision.
_FILL_ALIGN = re.compile(r"\A(?:.?[<>=^])", re.S)
_DIGITS = re.compile(r"[0-9]+")


def check_format_spec(spec: str) -> None:
    """Refuse a format spec whose width or precision would build a huge text at each hit."""
    rest = _FILL_ALIGN.sub("", spec, count=1)
    for run in _DIGITS.findall(rest):
        number = run.lstrip("0")
        if len(number) > 6 or (number and int(number) > MAX_FORMAT_WIDTH):
            raise ExpressionError(
                f"format spec ':{spec}': width and precision are at most {MAX_FORMAT_WIDTH}"
            )


_CARD_SIZED = 10**12


# --- the compiler --------------------------------------------------------------------------

_COMPARE_OPS = {
    ast.Eq: "==", ast.NotEq: "!=", ast.Lt: "<", ast.LtE: "<=", ast.Gt: ">", ast.GtE: ">=",
    ast.Is: "is", ast.IsNot: "is not", ast.In: "in", ast.NotIn: "not in",
}  # fmt: skip
_BIN_OPS = {
    ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/", ast.FloorDiv: "//", ast.Mod: "%",
    ast.Pow: "**", ast.LShift: "<<", ast.RShift: ">>", ast.BitAnd: "&", ast.BitOr: "|",
    ast.BitXor: "^",
}  # fmt: skip
# Operators whose inline fast path is safe when both operands are exact int/float/bool.
_FAST_NUMERIC = {"+", "-", "*", "/", "//", "%"}
_REFUSED = {
    ast.Lambda: "lambdas are not allowed",
    ast.ListComp: "comprehensions are not allowed",
    ast.SetComp: "comprehensions are not allowed",
    ast.DictComp: "comprehensions are not allowed",
    ast.GeneratorExp: "generator expressions are not allowed",
    ast.Await: "await is not allowed",
    ast.Yield: "yield is not allowed",
    ast.YieldFrom: "yield is not allowed",
    ast.NamedExpr: "assignments (:=) are not allowed",
    ast.Starred: "* unpacking is not allowed",
}


def _snippet(node: ast.AST) -> str:
    try:
        text = ast.unparse(node)  # type: ignore[attr-defined,unused-ignore]
    except Exception:
        text = type(node).__name__
    return text if len(text) <= 60 else text[:57] + "..."


_BOOL_CALLS = ("isinstance", "bool", "any", "all")


def _short_number(name: str) -> str:
    """Source testing that the number in ``name`` is too short to be a card number (the
    bound as a literal: a constant is the cheapest load)."""
    return f"-{_CARD_SIZED} < {name} < {_CARD_SIZED}"


def _small_number(node: ast.AST) -> bool:
    """A literal int or float too short to be a card number."""
    if not isinstance(node, ast.Constant):
        return False
    value = node.value
    return (type(value) is int or type(value) is float) and -_CARD_SIZED < value < _CARD_SIZED


def _is_bool(node: ast.AST) -> bool:
    """True for expressions that always give a bool (so `and`/`or` on them are safe)."""
    if isinstance(node, ast.Compare):
        return True
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
        return True
    if isinstance(node, ast.Constant) and type(node.value) is bool:
        return True
    if isinstance(node, ast.BoolOp):
        return all(_is_bool(value) for value in node.values)
    return (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id in _BOOL_CALLS
    )


def _is_dunder(name: str) -> bool:
    return name.startswith("__") and name.endswith("__")


class _Compiler:
    """Checks a parsed expression and writes the equivalent safe Python source."""

    def __init__(self, redactor: Redactor) -> None:
        self.redactor = redactor
        self.temps = 0
        self.constants: Dict[str, Any] = {}

    def temp(self) -> str:
        self.temps += 1
        return f"_t{self.temps}"

    def constant(self, value: Any) -> str:
        name = f"_k{len(self.constants)}"
        self.constants[name] = value
        return name

    def secret(self, name: str) -> None:
        if self.redactor.is_secret_name(name):
            raise ExpressionError(f"expression reads {name!r}, which is redacted")

    def expr(self, node: ast.AST) -> str:
        method = getattr(self, f"do_{type(node).__name__}", None)
        if method is None:
            reason = _REFUSED.get(type(node))
            if reason is None:
                reason = f"{type(node).__name__} is not supported in expressions"
            raise ExpressionError(f"{reason}: {_snippet(node)}")
        return method(node)  # type: ignore[no-any-return]

    def do_Constant(self, node: ast.Constant) -> str:
        value = node.value
        if type(value) in (int, bool, str, bytes, NoneType):
            return repr(value)
        if type(value) in (float, complex):
            return self.constant(value)
        raise ExpressionError(f"constant {_snippet(node)} is not supported")

    def do_Name(self, node: ast.Name) -> str:
        name = node.id
        if _is_dunder(name):
            raise ExpressionError(f"dunder names are not allowed: {name}")
        self.secret(name)
        return f"(L[{name!r}] if {name!r} in L else _global(G, {name!r}))"

    def do_Attribute(self, node: ast.Attribute) -> str:
        name = node.attr
        target = node.value
        if _is_dunder(name):
            if (
                name in ("__name__", "__qualname__", "__module__")
                and isinstance(target, ast.Call)
                and isinstance(target.func, ast.Name)
                and target.func.id == "type"
                and len(target.args) == 1
                and not target.keywords
            ):
                return f"_type_name({self.expr(target.args[0])}, {name!r})"
            raise ExpressionError(
                f"dunder attributes are not allowed: {_snippet(node)} "
                "(type(x).__name__ is the one exception)"
            )
        self.secret(name)
        site = self.constant(_attribute_site(name, _snippet(node)))
        return f"{site}({self.expr(target)})"

    def do_Subscript(self, node: ast.Subscript) -> str:
        key = node.slice
        if isinstance(key, ast.Constant) and type(key.value) is str:
            self.secret(key.value)
        if isinstance(key, ast.Slice):
            parts = [
                self.expr(part) if part is not None else "None"
                for part in (key.lower, key.upper, key.step)
            ]
            key_source = f"_slice({', '.join(parts)})"
        else:
            key_source = self.expr(key)
        return f"_item({self.expr(node.value)}, {key_source}, S)"

    def do_Compare(self, node: ast.Compare) -> str:
        left = self.expr(node.left)
        terms = []
        for op, comparator in zip(node.ops, node.comparators):
            symbol = _COMPARE_OPS[type(op)]
            right_temp = self.temp()
            right = f"({right_temp} := {self.expr(comparator)})"
            if symbol in ("is", "is not"):
                terms.append(f"({left} {symbol} {right})")
            elif symbol in ("in", "not in"):
                terms.append(f"_compare({symbol!r}, {left}, {right}, S)")
            elif isinstance(comparator, ast.Constant) and _small_number(comparator):
                # A small number on the right: the left one being exactly a number too short
                # to be a card number is the fast, safe case; anything else (a string, which
                # may be a secret) is checked by _compare.
                left_temp, kind = self.temp(), self.temp()
                number = comparator.value
                right = repr(number) if type(number) is not float else self.constant(number)
                fast = (
                    f"(({kind} := _tp({left_temp} := {left})) is _int "
                    f"or {kind} is _float) and {_short_number(left_temp)}"
                )
                terms.append(
                    f"({left_temp} {symbol} {right} if {fast} "
                    f"else _compare({symbol!r}, {left_temp}, {right}, S))"
                )
                right_temp = right
            else:
                left_temp = self.temp()
                terms.append(
                    f"({left_temp} {symbol} {right_temp} "
                    f"if _tp({left_temp} := {left}) is _tp({right}) is _int "
                    f"and {_short_number(left_temp)} and {_short_number(right_temp)} "
                    f"else _compare({symbol!r}, {left_temp}, {right_temp}, S))"
                )
            left = right_temp
        if len(terms) == 1:
            return terms[0]
        return "(" + " and ".join(terms) + ")"

    def do_BoolOp(self, node: ast.BoolOp) -> str:
        # a and b -> b if truth(a) else a; a or b -> a if truth(a) else b (truth checked safely)
        values = [self.expr(value) for value in node.values]
        if all(_is_bool(value) for value in node.values[:-1]):
            # Operands that are booleans: Python's own and/or cannot run application code.
            joiner = " and " if isinstance(node.op, ast.And) else " or "
            return "(" + joiner.join(values) + ")"
        result = values[-1]
        for value in reversed(values[:-1]):
            temp = self.temp()
            test = f"(({temp} := {value}) is True or ({temp} is not False and _truth({temp})))"
            if isinstance(node.op, ast.And):
                result = f"({result} if {test} else {temp})"
            else:
                result = f"({temp} if {test} else {result})"
        return result

    def do_UnaryOp(self, node: ast.UnaryOp) -> str:
        operand = self.expr(node.operand)
        if isinstance(node.op, ast.Not):
            temp = self.temp()
            return (
                f"(({temp} := {operand}) is False or ({temp} is not True and not _truth({temp})))"
            )
        symbol = {ast.USub: "-", ast.UAdd: "+", ast.Invert: "~"}[type(node.op)]
        return f"_unary({symbol!r}, {operand}, S)"

    def do_BinOp(self, node: ast.BinOp) -> str:
        symbol = _BIN_OPS.get(type(node.op))
        if symbol is None:
            raise ExpressionError(
                f"operator {type(node.op).__name__} is not supported: {_snippet(node)}"
            )
        left, right = self.expr(node.left), self.expr(node.right)
        if symbol in _FAST_NUMERIC:
            # Two ints too short to be card numbers: the result is small, the inline path safe.
            a, b = self.temp(), self.temp()
            return (
                f"({a} {symbol} {b} if _tp({a} := {left}) is _tp({b} := {right}) is _int "
                f"and {_short_number(a)} and {_short_number(b)} "
                f"else _arith({symbol!r}, {a}, {b}, S))"
            )
        return f"_arith({symbol!r}, {left}, {right}, S)"

    def do_IfExp(self, node: ast.IfExp) -> str:
        temp = self.temp()
        test = (
            f"(({temp} := {self.expr(node.test)}) is True "
            f"or ({temp} is not False and _truth({temp})))"
        )
        return f"({self.expr(node.body)} if {test} else {self.expr(node.orelse)})"

    def do_Call(self, node: ast.Call) -> str:
        func = node.func
        if not isinstance(func, ast.Name) or func.id not in _CALL_HELPERS:
            raise ExpressionError(
                f"{_snippet(node)} calls {_snippet(func)}: peephole does not call application "
                f"code; the functions available are {', '.join(CALLS)}"
            )
        if node.keywords or any(isinstance(arg, ast.Starred) for arg in node.args):
            raise ExpressionError(f"{func.id}() takes positional arguments only: {_snippet(node)}")
        _, fewest, most = _CALL_HELPERS[func.id]
        if not fewest <= len(node.args) <= most:
            raise ExpressionError(
                f"{func.id}() takes {fewest}"
                f"{'' if fewest == most else f' to {most}'} argument"
                f"{'' if most == 1 else 's'}: {_snippet(node)}"
            )
        args = "".join(f", {self.expr(arg)}" for arg in node.args)
        return f"_call_{func.id}(S{args})"

    def do_Tuple(self, node: ast.Tuple) -> str:
        items = [self.expr(item) for item in node.elts]
        return "(" + "".join(f"{item}, " for item in items) + ")"

    def do_List(self, node: ast.List) -> str:
        return "[" + ", ".join(self.expr(item) for item in node.elts) + "]"

    def do_Set(self, node: ast.Set) -> str:
        return "_set(" + ", ".join(self.expr(item) for item in node.elts) + ")"

    def do_Dict(self, node: ast.Dict) -> str:
        parts = []
        for key, value in zip(node.keys, node.values):
            if key is None:
                raise ExpressionError(f"** unpacking is not allowed: {_snippet(node)}")
            parts += [self.expr(key), self.expr(value)]
        return "_dict(" + ", ".join(parts) + ")"

    def do_JoinedStr(self, node: ast.JoinedStr) -> str:
        pieces = []
        for part in node.values:
            if isinstance(part, ast.Constant) and type(part.value) is str:
                pieces.append(repr(part.value))
            elif isinstance(part, ast.FormattedValue):
                spec = ""
                if part.format_spec is not None:
                    spec_node = part.format_spec
                    if not (
                        isinstance(spec_node, ast.JoinedStr)
                        and all(isinstance(v, ast.Constant) for v in spec_node.values)
                    ):
                        raise ExpressionError(
                            f"nested fields in a format spec are not supported: {_snippet(node)}"
                        )
                    spec = "".join(
                        str(v.value)  # type: ignore[attr-defined]
                        for v in spec_node.values
                    )
                    check_format_spec(spec)
                conversion = {-1: None, 115: "s", 114: "r", 97: "a"}.get(part.conversion)
                pieces.append(f"_fmt({self.expr(part.value)}, {conversion!r}, {spec!r}, S)")
            else:
                raise ExpressionError(f"unsupported f-string part: {_snippet(node)}")
        return "''.join((" + "".join(f"{p}, " for p in pieces) + "))"


_warnings_lock = threading.Lock()


def quietly(function: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Run the compiler without warnings: ``x == "\\d"`` warns on 3.12 (an error under
    ``-W error``), and the host's warning filters must neither see it nor change what an
    expression means. ``catch_warnings`` swaps the process-wide filters for these few
    microseconds at compile time (never at a hit); the lock keeps two compilations apart."""
    with _warnings_lock, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return function(*args, **kwargs)


def _parse(source: str) -> ast.expr:
    if type(source) is not str:
        raise ExpressionError("an expression must be a string")
    if not source.strip():
        raise ExpressionError("the expression is empty")
    if len(source) > MAX_SOURCE:
        raise ExpressionError(f"the expression is longer than {MAX_SOURCE} characters")
    try:
        tree: ast.Expression = quietly(ast.parse, source.strip(), mode="eval")
    except SyntaxError as exc:
        raise ExpressionError(_syntax_reason(source, exc)) from None
    except (ValueError, RecursionError, MemoryError) as exc:
        raise ExpressionError(f"the expression cannot be parsed: {type(exc).__name__}") from None
    for count, _ in enumerate(ast.walk(tree)):
        if count >= MAX_NODES:
            raise ExpressionError(f"the expression is too complex (over {MAX_NODES} parts)")
    return tree.body


def _syntax_reason(source: str, exc: SyntaxError) -> str:
    """A clearer reason for statements written where an expression belongs."""
    try:
        statements = quietly(ast.parse, source.strip(), mode="exec").body
    except Exception:
        statements = []
    for statement in statements:
        if isinstance(statement, (ast.Assign, ast.AugAssign, ast.AnnAssign)):
            return "assignments are not allowed"
        if isinstance(statement, (ast.Import, ast.ImportFrom)):
            return "imports are not allowed"
        if isinstance(statement, (ast.Delete, ast.Raise, ast.Global, ast.Nonlocal)):
            return f"{type(statement).__name__.lower()} statements are not allowed"
    return f"syntax error: {exc.msg} (column {exc.offset})"


# How evaluate_frame reads the frame's variables: f_locals copies them all into a dict before
# 3.13; the C speed-ups read one at a time on 3.9, 3.10 and 3.12.
_FRAME_LOCALS = "_frame_vars(F)" if speedups.frame_vars is not None else "F.f_locals"
_CALL_NAMES = {f"_call_{name}": helper for name, (helper, _, _) in _CALL_HELPERS.items()}


class Expression:
    """A checked, compiled expression; :meth:`evaluate` raises only EvaluationError.

    ``evaluate(f_locals, f_globals)`` is the value, or EvaluationError; a value derived from
    a secret is an error that says only that (a yes/no answer about a secret is one too). It
    is generated with the expression inlined, so a hit makes one Python call, not two.
    ``evaluate_frame(frame)`` is the same for a frame's own variables and globals: a probe's
    condition, read without copying every local where the C speed-ups allow (3.9, 3.10,
    3.12)."""

    __slots__ = ("_function", "evaluate", "evaluate_frame", "python", "redactor", "source")

    def __init__(self, source: str, redactor: Redactor) -> None:
        self.source = source
        self.redactor = redactor
        body = _parse(source)
        compiler = _Compiler(redactor)
        try:
            python = compiler.expr(body)
        except RecursionError:
            raise ExpressionError("the expression is nested too deeply") from None
        self.python = python  # the generated source, for debugging peephole itself
        namespace: Dict[str, Any] = dict(_HELPERS)
        namespace.update(_CALL_NAMES)
        namespace.update(compiler.constants)
        namespace["_fmt"] = _fmt
        namespace["_set"] = _make_set
        namespace["_dict"] = _make_dict
        namespace["_failure"] = _failure
        namespace["_Exception"] = Exception  # the namespace has no builtins
        namespace["_tainted"] = _tainted
        namespace["_redactor"] = redactor
        namespace["_frame_vars"] = speedups.frame_vars
        block = (
            f"    S = [{MAX_WORK}, False, _redactor, {MAX_TAINT_SCANS}]\n"
            f"    try:\n        value = {python}\n"
            f"    except _Exception as exc:\n        raise _failure(exc, S) from None\n"
            f"    if S[1]:\n        raise _tainted()\n"
            f"    return value\n"
        )
        code = (
            f"def _evaluate(L, G, S):\n    return {python}\n"
            f"def evaluate(L, G):\n{block}"
            f"def evaluate_frame(F):\n    L = {_FRAME_LOCALS}\n    G = F.f_globals\n{block}"
        )
        try:
            compiled = quietly(compile, code, f"<peephole expression {source[:40]!r}>", "exec")
            exec(compiled, namespace)
        except (SyntaxError, RecursionError, MemoryError, ValueError) as exc:
            raise ExpressionError(f"the expression cannot be compiled: {exc}") from None
        self._function: Callable[[Any, Any, State], Any] = namespace["_evaluate"]
        self.evaluate: Callable[[Mapping[str, object], Mapping[str, object]], object] = namespace[
            "evaluate"
        ]
        self.evaluate_frame: Callable[[types.FrameType], object] = namespace["evaluate_frame"]

    def __repr__(self) -> str:
        return f"Expression({self.source!r})"


def _failure(exc: Exception, S: State) -> EvaluationError:
    """What :meth:`Expression.evaluate` raises for ``exc``: the taint hides its reason."""
    if S[_TAINTED]:
        return EvaluationError(TAINTED)
    if isinstance(exc, EvaluationError):
        return exc
    return EvaluationError(_describe_error(exc))


def _tainted() -> EvaluationError:
    return EvaluationError(TAINTED)


def _describe_error(exc: BaseException) -> str:
    """``TypeError: ...`` for errors of builtin operations (their messages are plain text)."""
    name = type(exc).__name__ if type(exc).__module__ == "builtins" else safe_type_name(exc)
    args = exc.args if type(exc.args) is tuple else ()
    if len(args) == 1 and type(args[0]) is str:
        return f"{name}: {args[0]}"
    if type(exc) is KeyError and len(args) == 1 and id(type(args[0])) in _SCALAR_IDS:
        return f"KeyError: {args[0]!r}"
    return name


def compile_expression(source: str, redactor: Redactor) -> Expression:
    """Check and compile ``source``; raise :class:`ExpressionError` with a clear reason."""
    _plans.clear()  # a probe saved again sees classes as they are now
    _runs.clear()
    try:
        return Expression(source, redactor)
    except ExpressionError:
        raise
    except RecursionError:
        raise ExpressionError("the expression is nested too deeply") from None
    except Exception as exc:  # a bug in the checker must not become an unexplained crash
        raise ExpressionError(
            f"the expression cannot be compiled: {type(exc).__name__}: {exc}"
        ) from None


# --- templates -----------------------------------------------------------------------------


class _Field:
    __slots__ = ("conversion", "expression", "plain", "spec", "text")

    def __init__(self, text: str, expression: Expression, conversion: Optional[str], spec: str):
        self.text = text
        self.expression = expression
        self.conversion = conversion
        self.spec = spec
        self.plain = not spec and conversion != "r"  # a short int or a bool is its repr()


class Template:
    """A logpoint template: text with ``{expression[!r|!s][:spec]}`` placeholders.

    ``render(f_locals, f_globals)`` is the rendered line and the reasons of the placeholders
    that failed. It is generated for the template, as :class:`Expression` is for an
    expression: one function with each placeholder's steps written out, so a hit pays for
    no loop over the parts and no dispatch on their kind."""

    __slots__ = ("parts", "redactor", "render", "source")

    def __init__(self, source: str, redactor: Redactor) -> None:
        self.source = source
        self.redactor = redactor
        self.parts: List[Union[str, _Field]] = _parse_template(source, redactor)
        self.render: Callable[
            [Mapping[str, object], Mapping[str, object]], Tuple[str, List[str]]
        ] = _render_function(self.parts, redactor)

    def __repr__(self) -> str:
        return f"Template({self.source!r})"


def _render_function(
    parts: List[Union[str, _Field]], redactor: Redactor
) -> Callable[[Mapping[str, object], Mapping[str, object]], Tuple[str, List[str]]]:
    """The generated ``render(L, G)`` of a template's parts. Per placeholder: its taint
    cleared (taint is per placeholder, the work budget is the line's), its expression
    called, a short int or a bool written as its repr (what ``_render`` gives, without the
    call), anything else through ``_render``; a failure becomes ``{!error: reason}``."""
    namespace: Dict[str, Any] = {
        "_redactor": redactor,
        "_render": _render,
        "_MASK": MASK,
        "_card": _CARD_SIZED,
        "_type": type,
        "_repr": repr,
        "_bool": bool,
        "_int": int,
        "_join": "".join,
        "_EvaluationError": EvaluationError,
        "_Exception": Exception,
        "_evaluation_reason": _evaluation_reason,
        "_describe_error": _describe_error,
        "_failed": _placeholder_failed,
        "_finish": _finish_line,
    }
    code = [
        "def render(L, G):",
        f"    S = [{MAX_WORK}, False, _redactor, {MAX_TAINT_SCANS}]",
        "    errors = []",
    ]
    pieces: List[str] = []
    for index, part in enumerate(parts):
        if type(part) is str:
            namespace[f"_literal{index}"] = part
            pieces.append(f"_literal{index}")
            continue
        assert type(part) is _Field
        namespace[f"_evaluate{index}"] = part.expression._function
        namespace[f"_conversion{index}"] = part.conversion
        namespace[f"_spec{index}"] = part.spec
        namespace[f"_text{index}"] = part.text
        text = f"t{index}"
        rendered = f"_render(v, _conversion{index}, _spec{index}, S)"
        code += ["    S[1] = False", "    try:", f"        v = _evaluate{index}(L, G, S)"]
        if part.plain:
            code += [
                "        c = _type(v)",
                "        if c is _bool or (c is _int and -_card < v < _card):",
                f"            {text} = _repr(v)",
                "        else:",
                f"            {text} = {rendered}",
            ]
        else:
            code.append(f"        {text} = {rendered}")
        code += [
            "        if S[1]:",
            f"            {text} = _MASK",
            "    except _EvaluationError as exc:",
            f"        {text} = _failed(_evaluation_reason(exc), S, errors, _text{index})",
            "    except _Exception as exc:  # a builtin operation failed (ZeroDivisionError, ...)",
            f"        {text} = _failed(_describe_error(exc), S, errors, _text{index})",
        ]
        pieces.append(text)
    line = f"_join(({', '.join(pieces)},))" if pieces else "''"
    code.append(f"    return _finish({line}, errors, _redactor)")
    compiled = quietly(compile, "\n".join(code) + "\n", "<peephole template>", "exec")
    exec(compiled, namespace)
    return namespace["render"]  # type: ignore[no-any-return]


def _evaluation_reason(exc: EvaluationError) -> str:
    return exc.args[0] if exc.args and type(exc.args[0]) is str else "failed"


def _placeholder_failed(reason: str, S: State, errors: List[str], text: str) -> str:
    """What a failed placeholder shows, its reason (only that it is secret, if tainted)
    added to ``errors``."""
    if S[_TAINTED]:
        reason = TAINTED
    errors.append(f"{{{text}}}: {reason}")
    return f"{{!error: {reason}}}"


def _finish_line(line: str, errors: List[str], redactor: Redactor) -> Tuple[str, List[str]]:
    """The line cut to ``MAX_LINE`` and masked, and the errors masked."""
    if len(line) > MAX_LINE:
        line = _masked(line[: MAX_LINE + 64], redactor)[:MAX_LINE] + "..."
    else:
        line = _masked(line, redactor)
    return line, [_masked(e, redactor) for e in errors] if errors else errors


def _masked(text: str, redactor: Redactor) -> str:
    """The whole line masked too: two placeholders can put the halves of a token together."""
    masked = redactor.redact_text(text)
    return text if masked is None else masked


def _parse_template(source: str, redactor: Redactor) -> List[Union[str, _Field]]:
    if type(source) is not str:
        raise ExpressionError("a template must be a string")
    parts: List[Union[str, _Field]] = []
    literal: List[str] = []
    index, size = 0, len(source)
    while index < size:
        char = source[index]
        if char == "}":
            if source.startswith("}}", index):
                literal.append("}")
                index += 2
                continue
            raise ExpressionError(f"single '}}' at column {index + 1}; write '}}}}' for a brace")
        if char != "{":
            literal.append(char)
            index += 1
            continue
        if source.startswith("{{", index):
            literal.append("{")
            index += 2
            continue
        end, conversion_at, spec_at = _field_end(source, index + 1)
        text = source[index + 1 : end]
        expr_end = conversion_at if conversion_at >= 0 else spec_at if spec_at >= 0 else end
        expression_source = source[index + 1 : expr_end]
        conversion: Optional[str] = None
        if conversion_at >= 0:
            conversion = source[conversion_at + 1 : spec_at if spec_at >= 0 else end].strip()
            if conversion not in ("r", "s"):
                raise ExpressionError(f"placeholder {{{text}}}: conversion must be !r or !s")
        spec = source[spec_at + 1 : end] if spec_at >= 0 else ""
        if "{" in spec or "}" in spec:
            raise ExpressionError(
                f"placeholder {{{text}}}: nested fields in a format spec are not supported"
            )
        try:
            check_format_spec(spec)
        except ExpressionError as exc:
            raise ExpressionError(f"placeholder {{{text}}}: {exc}") from None
        try:
            expression = compile_expression(expression_source, redactor)
        except ExpressionError as exc:
            raise ExpressionError(f"placeholder {{{text}}}: {exc}") from None
        if literal:
            parts.append("".join(literal))
            literal = []
        parts.append(_Field(text, expression, conversion, spec))
        index = end + 1
    if literal:
        parts.append("".join(literal))
    return parts


def _field_end(source: str, start: int) -> Tuple[int, int, int]:
    """Where a placeholder ends, and where its ``!conversion`` and ``:spec`` start (or -1),
    skipping brackets and string literals inside the expression."""
    depth = 0
    quote = ""
    conversion_at = spec_at = -1
    index = start
    while index < len(source):
        char = source[index]
        if spec_at >= 0:
            if char == "}":
                return index, conversion_at, spec_at
            index += 1
            continue
        if quote:
            if char == "\\":
                index += 2
                continue
            if source.startswith(quote, index):
                index += len(quote)
                quote = ""
                continue
        elif char in "'\"":
            quote = char * 3 if source.startswith(char * 3, index) else char
            index += len(quote)
            continue
        elif char in "([{":
            depth += 1
        elif char in ")]":
            depth -= 1
        elif char == "}":
            if depth == 0:
                return index, conversion_at, spec_at
            depth -= 1
        elif depth == 0 and char == "!" and not source.startswith("!=", index):
            conversion_at = index
        elif depth == 0 and char == ":":
            spec_at = index
        index += 1
    raise ExpressionError(f"placeholder starting at column {start} is not closed with '}}'")


def compile_template(source: str, redactor: Redactor) -> Template:
    """Parse and compile a logpoint template; raise :class:`ExpressionError` if refused."""
    try:
        return Template(source, redactor)
    except ExpressionError:
        raise
    except RecursionError:
        raise ExpressionError("the template is nested too deeply") from None
    except Exception as exc:
        raise ExpressionError(
            f"the template cannot be compiled: {type(exc).__name__}: {exc}"
        ) from None
