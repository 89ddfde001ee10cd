"""The functions and code objects of each source file, found without scanning the heap.

Placing a probe needs every live code object that holds the line, and on 3.9-3.11 every
function that runs it (its ``__code__`` is swapped). Asking the garbage collector for them
(``gc.get_referrers``) walks the whole heap with the GIL held: 170 ms with two million
objects, a stall for every thread of the application. The registry instead looks where a
module keeps its functions: its namespace, the classes defined in it (methods, static and
class methods, properties, nested classes), decorated functions (``__wrapped__`` and
closure cells of the wrapper), and small containers at module level. Nested code (closures,
lambdas, comprehensions) is in its parent's ``co_consts``. While a module is imported
through the import hook, its own code object is known too, so code can be armed before the
module body makes any function from it.

What it cannot see (documented in limits.md): on 3.9-3.11, a closure made before the probe
was placed and kept outside the module keeps the code it was made with, like a frame that is
already running. On 3.12+ probes arm code objects, which the parent's code always reaches.
Each walk is bounded by the size of the module, never by the size of the heap.
"""

from __future__ import annotations

import functools
import threading
import types
import weakref
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Iterable, List, Sequence, Set, Sized, cast

from peephole.agent.placement.paths import modules_of

__all__ = ["REGISTRY", "CodeIndex", "functions_in"]

CodeType = types.CodeType
FunctionType = types.FunctionType
MAX_WALK = 200_000  # objects looked at in one module, whatever the module holds
MAX_CONTAINER = 1_000  # module-level lists, tuples and dicts longer than this are data
IMPORT_SYSTEM = frozenset({"__builtins__", "__loader__", "__spec__"})  # not the module's own
_CLASS_DICT = type.__dict__["__dict__"].__get__  # a class's own namespace, never a property


@dataclass
class CodeIndex:
    """The live code objects of one file, with their parents and the functions seen.

    Keyed by ``id``: the index holds every object it names, so an id cannot be reused by
    another object while the index is alive.
    """

    codes: Dict[int, CodeType] = field(default_factory=dict)
    parents: Dict[int, CodeType] = field(default_factory=dict)
    functions: List[FunctionType] = field(default_factory=list)

    def add(self, code: CodeType) -> None:
        """``code`` and all the code nested in it."""
        if id(code) in self.codes:
            return
        self.codes[id(code)] = code
        pending = [code]
        while pending:
            parent = pending.pop()
            for const in parent.co_consts:
                if isinstance(const, CodeType) and id(const) not in self.codes:
                    self.parents[id(const)] = parent
                    self.codes[id(const)] = const
                    pending.append(const)

    def ancestors(self, code: CodeType) -> List[CodeType]:
        chain = []
        parent = self.parents.get(id(code))
        while parent is not None:
            chain.append(parent)
            parent = self.parents.get(id(parent))
        return chain


class Registry:
    """Functions seen per file, and the code of modules whose body is running now."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._seen: Dict[str, weakref.WeakSet[FunctionType]] = {}
        self._importing: Dict[str, CodeType] = {}

    def importing(self, filename: str, code: CodeType) -> None:
        """The import hook is about to run ``code`` as the body of ``filename``."""
        with self._lock:
            self._importing[filename] = code

    def imported(self, filename: str) -> None:
        """The body of ``filename`` has run: remember the functions it made."""
        with self._lock:
            self._importing.pop(filename, None)
        self.functions([filename])

    def functions(self, filenames: Sequence[str]) -> List[FunctionType]:
        """The functions of these files: those in their modules now and those seen before."""
        wanted = set(filenames)
        found: Dict[int, FunctionType] = {}
        for module in modules_of(wanted):
            for function in functions_in(vars(module), wanted):
                found[id(function)] = function
        with self._lock:
            for filename in wanted:
                seen = self._seen.get(filename)
                if seen is not None:
                    for function in list(seen):
                        found.setdefault(id(function), function)
            for function in found.values():
                filename = function.__code__.co_filename
                self._seen.setdefault(filename, weakref.WeakSet()).add(function)
        return [f for f in found.values() if f.__code__.co_filename in wanted]

    def index(self, filenames: Sequence[str], unwrap: Callable[[CodeType], CodeType]) -> CodeIndex:
        """Every code object of these files that a live function (or a running import) holds.

        ``unwrap`` maps an instrumented copy back to its original.
        """
        index = CodeIndex()
        for function in self.functions(filenames):
            index.functions.append(function)
            index.add(unwrap(function.__code__))
        with self._lock:
            roots = [self._importing[f] for f in filenames if f in self._importing]
        for root in roots:
            index.add(unwrap(root))
        return index


def functions_in(namespace: Dict[str, Any], filenames: Set[str]) -> List[FunctionType]:
    """Functions of ``filenames`` reachable from a module namespace, running no foreign code.

    Only exact builtin types are looked into (functions, classes, method wrappers, small
    containers), through their C-level fields, so no property or ``__getattr__`` runs.
    """
    module_name = namespace.get("__name__")
    found: List[FunctionType] = []
    seen: Set[int] = set()
    stack: List[object] = [v for k, v in list(namespace.items()) if k not in IMPORT_SYSTEM]
    budget = MAX_WALK
    while stack and budget > 0:
        obj = stack.pop()
        budget -= 1
        if id(obj) in seen:
            continue
        seen.add(id(obj))
        if type(obj) is FunctionType:
            assert isinstance(obj, FunctionType)
            if obj.__code__.co_filename in filenames:
                found.append(obj)
        stack.extend(_inside(obj, module_name))
    return found


def _inside(obj: object, module_name: object) -> Iterable[object]:
    """The objects ``obj`` holds that may be (or hold) functions, by its exact type."""
    kind = type(obj)
    if kind is FunctionType:
        return _inside_function(cast(FunctionType, obj))
    if kind in (staticmethod, classmethod, types.MethodType):
        return (cast(Any, obj).__func__,)
    if kind is property:
        prop = cast(property, obj)
        return (prop.fget, prop.fset, prop.fdel)
    if kind is functools.partial:
        return (cast(functools.partial, obj).func,)  # type: ignore[type-arg]
    if isinstance(obj, type):
        return _inside_class(obj, module_name)
    if kind in (list, tuple) and len(cast(Sized, obj)) <= MAX_CONTAINER:
        return cast(Iterable[object], obj)
    if kind is dict and len(cast(dict, obj)) <= MAX_CONTAINER:  # type: ignore[type-arg]
        return list(cast(dict, obj).values())  # type: ignore[type-arg]
    return ()


def _inside_function(function: FunctionType) -> List[object]:
    """What a decorator's wrapper keeps of the function it wraps."""
    held: List[object] = []
    wrapped = function.__dict__.get("__wrapped__")
    if wrapped is not None:
        held.append(wrapped)
    for cell in function.__closure__ or ():
        try:
            held.append(cell.cell_contents)
        except ValueError:  # an empty cell
            continue
    return held


def _inside_class(cls: type, module_name: object) -> Iterable[object]:
    """The attributes of a class defined in the module (others are not ours to walk)."""
    try:
        namespace = _CLASS_DICT(cls)
    except TypeError:
        return ()
    if namespace.get("__module__") != module_name:
        return ()
    return list(namespace.values())


REGISTRY = Registry()
