"""From ``file.py:LINE`` as a person wrote it to the code objects and instructions to arm.

Paths are matched by suffix at a path-component boundary against the files of loaded
modules, since the deployed path (``/srv/app/src/shop/cart.py``) rarely equals the
repository path (``shop/cart.py``).

A line is mapped to the *statement* that contains it, and a probe fires once each time
control enters that statement from outside it. Interpreters disagree on how many line
events a multi-line statement produces (3.9 revisits the first line after the arguments;
3.10+ do not), so counting statement entries is what makes "one hit per execution of the
statement" hold on every version: re-entries from within the statement (the call after its
arguments, a generator resuming after ``yield``, a loop jumping back from its own body) do
not count.
"""

from __future__ import annotations

import ast
import dis
import gc
import linecache
import os
import sys
import sysconfig
import threading
import types
import warnings
from dataclasses import dataclass, field
from typing import (
    Any,
    Callable,
    Dict,
    FrozenSet,
    Hashable,
    Iterable,
    List,
    NamedTuple,
    Optional,
    Sequence,
    Set,
    Tuple,
)

CodeType = types.CodeType
TEMPLATE_SUFFIXES = (".html", ".htm", ".jinja", ".jinja2", ".j2", ".txt", ".xml")
OUTSIDE = -1  # the unit of instructions that belong to no statement of interest


class LocateError(Exception):
    """The probe cannot be placed; ``str()`` is the reason, written for the person."""


class NotLoaded(LocateError):
    """No loaded module matches the path yet: the probe waits for the import."""


# --- files ------------------------------------------------------------------------------


def normalize(path: str) -> str:
    """``./shop//cart.py`` -> ``shop/cart.py``; absolute paths stay absolute."""
    path = path.strip().replace("\\", "/")
    normalized = os.path.normpath(path).replace("\\", "/")
    while normalized.startswith("./"):
        normalized = normalized[2:]
    return normalized


def matches(wanted: str, filename: str) -> bool:
    """Whether ``filename`` is the file ``wanted`` names (suffix at a component boundary)."""
    if os.path.isabs(wanted):
        return os.path.normpath(filename) == wanted or _real(filename) == _real(wanted)
    filename = filename.replace("\\", "/")
    return filename == wanted or filename.endswith("/" + wanted)


def _real(path: str) -> str:
    try:
        return os.path.realpath(path)
    except (OSError, ValueError):
        return path


def loaded_files() -> Dict[str, str]:
    """Source files of loaded modules: ``{path as the interpreter knows it: module name}``."""
    files: Dict[str, str] = {}
    for name, module in list(sys.modules.items()):
        if not isinstance(module, types.ModuleType):
            continue
        try:
            filename = vars(module).get("__file__")
        except Exception:
            continue
        if isinstance(filename, str) and filename.endswith(".py"):
            files.setdefault(filename, name)
    return files


def namespaces_of(filenames: Iterable[str]) -> List[dict]:
    """The ``__dict__`` of each loaded module whose file is one of ``filenames``."""
    wanted = set(filenames)
    found: List[dict] = []
    for module in list(sys.modules.values()):
        if not isinstance(module, types.ModuleType):
            continue
        try:
            namespace = vars(module)
        except TypeError:
            continue
        if namespace.get("__file__") in wanted and not any(n is namespace for n in found):
            found.append(namespace)
    return found


def check_kind(path: str) -> None:
    """Refuse files that are not Python source, with the reason."""
    lowered = path.lower()
    if lowered.endswith(TEMPLATE_SUFFIXES):
        raise LocateError(
            f"{path} is a template: template engines such as Jinja2 compile templates into "
            "generated code whose lines do not match the template's, so a probe there would "
            "never fire. Place the probe in the Python view or function that renders it."
        )
    if not lowered.endswith(".py"):
        raise LocateError(f"{path} is not a Python source file (.py)")


def resolve_file(path: str) -> str:
    """The one loaded file that ``path`` names.

    Raises :class:`NotLoaded` when no loaded module matches but a file on ``sys.path`` does
    (the module is imported later), :class:`LocateError` when nothing matches or the path
    is ambiguous.
    """
    wanted = normalize(path)
    check_kind(wanted)
    found: Dict[str, str] = {}
    for filename in loaded_files():
        if matches(wanted, filename):
            found.setdefault(_real(filename), filename)
    if len(found) == 1:
        return next(iter(found.values()))
    if len(found) > 1:
        candidates = ", ".join(sorted(found.values()))
        raise LocateError(
            f"{path} is ambiguous: it matches {len(found)} loaded files ({candidates}); "
            "give more of the path"
        )
    on_disk = find_on_sys_path(wanted)
    if on_disk:
        raise NotLoaded(f"waiting for {on_disk} to be imported")
    raise LocateError(f"no such file: no loaded module or file on sys.path matches {path}")


def find_on_sys_path(wanted: str) -> Optional[str]:
    """A file under a ``sys.path`` entry (or one of its parents) that ``wanted`` names."""
    if os.path.isabs(wanted):
        return wanted if os.path.isfile(wanted) else None
    parts = wanted.split("/")
    for entry in list(sys.path):
        if not isinstance(entry, str):
            continue
        base = os.path.abspath(entry or ".")
        # ``src/shop/cart.py`` with ``/srv/app/src`` on sys.path: drop leading components.
        for start in range(len(parts)):
            candidate = os.path.join(base, *parts[start:])
            if os.path.isfile(candidate) and matches(wanted, candidate):
                return candidate
    return None


def application_files() -> List[str]:
    """Loaded source files a person may want to browse: not the standard library, not us."""
    stdlib = {
        os.path.normpath(p)
        for key in ("stdlib", "platstdlib")
        for p in [sysconfig.get_paths().get(key)]
        if p
    }
    own = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    result = []
    for filename in loaded_files():
        normalized = os.path.normpath(os.path.abspath(filename))
        if normalized.startswith(own + os.sep):
            continue
        in_stdlib = any(normalized.startswith(root + os.sep) for root in stdlib)
        if in_stdlib and "site-packages" not in normalized:
            continue
        result.append(filename)
    return sorted(result)


def source_lines(filename: str, module_globals: Optional[dict] = None) -> List[str]:
    return linecache.getlines(filename, module_globals)


# --- statements -------------------------------------------------------------------------


@dataclass
class Unit:
    """A statement (or ``except``/``case`` clause) and the lines that belong to it."""

    index: int
    first: int
    last: int  # last line of the statement itself (the header, for compound statements)
    depth: int
    ancestors: FrozenSet[int]
    in_function: bool  # False: module or class body, which ran at import
    has_code: bool
    kind: str  # the AST node's class name: "Assign", "FunctionDef", "ExceptHandler"...


_NO_CODE = (ast.Global, ast.Nonlocal)


class SourceMap:
    """The statements of one source file, by line."""

    def __init__(self, units: List[Unit]) -> None:
        self.units = units
        self.by_line: Dict[int, Unit] = {}
        for unit in sorted(units, key=lambda u: u.depth):
            for line in range(unit.first, unit.last + 1):
                current = self.by_line.get(line)
                if current is None or current.depth < unit.depth:
                    self.by_line[line] = unit

    @classmethod
    def parse(cls, text: str, filename: str = "<source>") -> SourceMap:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            tree = ast.parse(text, filename)
        units: List[Unit] = []
        _collect(tree, units, (), 0, False)
        return cls(units)

    def unit_at(self, line: int) -> Optional[Unit]:
        return self.by_line.get(line)

    def probe_lines(self) -> List[int]:
        """Lines where a probe can go: statements inside functions that compile to code."""
        return sorted(
            line for line, unit in self.by_line.items() if unit.in_function and unit.has_code
        )

    def nearest(self, line: int) -> List[int]:
        """The closest probe-able lines before and after ``line``."""
        lines = self.probe_lines()
        before = [n for n in lines if n < line]
        after = [n for n in lines if n > line]
        return ([before[-1]] if before else []) + ([after[0]] if after else [])


def _collect(
    node: ast.AST, units: List[Unit], ancestors: Tuple[int, ...], depth: int, in_function: bool
) -> None:
    body_fields = ("body", "orelse", "finalbody", "handlers", "cases")
    for name, value in ast.iter_fields(node):
        if name not in body_fields or not isinstance(value, list):
            continue
        for index, child in enumerate(value):
            if (
                not isinstance(child, (ast.stmt, ast.excepthandler))
                and type(child).__name__ != "match_case"
            ):
                continue
            first = _first_line(child)
            last = _header_end(child, first)
            docstring = (
                index == 0
                and name == "body"
                and isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
                and isinstance(child, ast.Expr)
                and isinstance(child.value, ast.Constant)
                and isinstance(child.value.value, str)
            )
            unit = Unit(
                index=len(units),
                first=first,
                last=last,
                depth=depth,
                ancestors=frozenset(ancestors),
                in_function=in_function,
                has_code=not docstring and not isinstance(child, _NO_CODE),
                kind=type(child).__name__,
            )
            units.append(unit)
            inner = in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef))
            _collect(child, units, (*ancestors, unit.index), depth + 1, inner)


def _first_line(node: ast.AST) -> int:
    line: int = getattr(node, "lineno", None) or 0
    if not line:  # match_case has no position of its own
        line = getattr(getattr(node, "pattern", None), "lineno", 1)
    for decorator in getattr(node, "decorator_list", ()):
        line = min(line, decorator.lineno)
    return line


def _header_end(node: ast.AST, first: int) -> int:
    body = getattr(node, "body", None)
    if isinstance(body, list) and body and isinstance(body[0], ast.AST):
        start = _first_line(body[0])
        return max(start - 1, getattr(node, "lineno", first), first)
    return max(getattr(node, "end_lineno", None) or first, first)


# --- instructions -------------------------------------------------------------------------


class Ins(NamedTuple):
    """One instruction, as far as statement analysis needs it."""

    key: Hashable  # offset (dis) or position (bytecode library)
    line: Optional[int]
    falls_through: bool  # execution can continue to the next instruction
    targets: Tuple[Hashable, ...]  # keys this instruction can jump to
    prologue: bool  # RESUME/MAKE_CELL/... before the first statement


def statement_starts(instrs: Sequence[Ins], source: SourceMap, unit: Unit) -> List[Hashable]:
    """Keys of the instructions where control enters ``unit`` from outside it."""
    units: List[int] = []
    previous = OUTSIDE
    for position, ins in enumerate(instrs):
        if ins.prologue:
            current = OUTSIDE
        elif ins.line is None:
            before_falls = position > 0 and instrs[position - 1].falls_through
            current = previous if before_falls else OUTSIDE
        else:
            found = source.unit_at(ins.line)
            current = found.index if found is not None else OUTSIDE
        units.append(current)
        previous = current
    if unit.index not in units:
        return []
    jumpers: Dict[Hashable, List[int]] = {}
    for position, ins in enumerate(instrs):
        for target in ins.targets:
            jumpers.setdefault(target, []).append(units[position])

    def outside(other: int) -> bool:
        return other == OUTSIDE or (
            other != unit.index and unit.index not in source.units[other].ancestors
        )

    starts: List[Hashable] = []
    for position, ins in enumerate(instrs):
        if units[position] != unit.index:
            continue
        entries: List[int] = []
        if position == 0:
            entries.append(OUTSIDE)
        elif instrs[position - 1].falls_through:
            entries.append(units[position - 1])
        entries.extend(jumpers.get(ins.key, ()))
        if not entries or any(outside(entry) for entry in entries):
            starts.append(ins.key)
    return starts


# --- code objects -------------------------------------------------------------------------


@dataclass
class CodeIndex:
    """The live code objects of one file, found through the functions that hold them."""

    codes: Dict[int, CodeType] = field(default_factory=dict)
    parents: Dict[int, CodeType] = field(default_factory=dict)
    functions: Dict[int, List[types.FunctionType]] = field(default_factory=dict)

    def ancestors(self, code: CodeType) -> List[CodeType]:
        chain = []
        parent = self.parents.get(id(code))
        while parent is not None:
            chain.append(parent)
            parent = self.parents.get(id(parent))
        return chain


def index_code(
    filenames: Iterable[str],
    unwrap: Callable[[CodeType], CodeType],
    namespaces: Sequence[dict] = (),
) -> CodeIndex:
    """Every code object of these files reachable from a live function (and its constants).

    Functions hold code; code holds nested code in ``co_consts``. Module and class bodies
    are not held by anything once they ran, which is why a probe there cannot fire.
    Every function refers to its module's namespace, so with ``namespaces`` the collector
    finds them in C (closures and functions kept only by a registry included); without,
    every object is looked at.
    """
    wanted = set(filenames)
    index = CodeIndex()
    function_type = types.FunctionType
    candidates = gc.get_referrers(*namespaces) if namespaces else gc.get_objects()
    functions = [obj for obj in candidates if type(obj) is function_type]
    del candidates
    for function in functions:
        code = function.__code__
        if code.co_filename not in wanted:
            continue
        code = unwrap(code)
        index.functions.setdefault(id(code), []).append(function)
        index.codes.setdefault(id(code), code)
    del functions
    pending = list(index.codes.values())
    while pending:
        code = pending.pop()
        for const in code.co_consts:
            if isinstance(const, CodeType):
                index.parents[id(const)] = code
                if id(const) not in index.codes:
                    index.codes[id(const)] = const
                    pending.append(const)
    return index


@dataclass
class Target:
    """Where to arm one probe in one code object."""

    code: CodeType
    keys: List[Hashable]


@dataclass
class Resolution:
    path: str
    line: int
    targets: List[Target]
    index: CodeIndex


def locate(
    path: str,
    line: int,
    instructions: Callable[[CodeType], Sequence[Ins]],
    unwrap: Callable[[CodeType], CodeType],
) -> Resolution:
    """Resolve ``path:line`` to the instructions to arm, or raise why it cannot be done."""
    filename = resolve_file(path)
    source = source_map(filename)
    unit = source.unit_at(line) if source is not None else None
    if source is not None and (unit is None or not unit.has_code):
        raise LocateError(_no_code(line, source))
    names = {filename, _real(filename), os.path.abspath(filename)}
    index = index_code(names, unwrap, namespaces_of(names))
    if source is None or unit is None:
        raise LocateError(f"the source of {filename} cannot be read, so line {line} is unknown")
    found: Dict[int, Target] = {}
    for code in index.codes.values():
        if not any(unit.first <= n <= unit.last for n in code_lines(code)):
            continue
        keys = statement_starts(instructions(code), source, unit)
        if keys:
            found[id(code)] = Target(code, keys)
    # Outermost only: a line in both a function and a lambda or comprehension inside it
    # is one statement of the function.
    targets = [
        target
        for target in found.values()
        if not any(id(parent) in found for parent in index.ancestors(target.code))
    ]
    if not targets:
        if unit.kind in ("FunctionDef", "AsyncFunctionDef", "ClassDef") and not unit.in_function:
            raise LocateError(
                f"line {line} of {filename} is a {unit.kind.replace('Def', '').lower()} "
                "statement, which ran once when the module was imported; place the probe on "
                "a line of its body. " + _nearest_text(line, source)
            )
        if not unit.in_function:
            raise LocateError(
                f"line {line} of {filename} is module-level or class-level code, which ran "
                "once when the module was imported; place the probe inside a function"
            )
        raise LocateError(
            f"line {line} of {filename} is not in any loaded function "
            "(the code may have been replaced or never defined); " + _nearest_text(line, source)
        )
    return Resolution(filename, line, targets, index)


def code_lines(code: CodeType) -> Set[int]:
    """The lines that have instructions in ``code`` (not in the code nested in it)."""
    if sys.version_info >= (3, 10):
        return {line for _, _, line in code.co_lines() if line is not None}
    return {line for _, line in dis.findlinestarts(code)}


_MAPS: Dict[str, Tuple[str, Optional[SourceMap]]] = {}
_MAPS_SIZE = 64


def source_map(filename: str) -> Optional[SourceMap]:
    """The statements of a file, parsed once per version of its text."""
    text = "".join(source_lines(filename))
    if not text:
        return None
    cached = _MAPS.get(filename)
    if cached is not None and cached[0] == text:
        return cached[1]
    try:
        parsed: Optional[SourceMap] = SourceMap.parse(text, filename)
    except (SyntaxError, ValueError):
        parsed = None
    if len(_MAPS) >= _MAPS_SIZE:
        _MAPS.clear()
    _MAPS[filename] = (text, parsed)
    return parsed


def _no_code(line: int, source: SourceMap) -> str:
    return f"no code at line {line}; " + _nearest_text(line, source)


def _nearest_text(line: int, source: SourceMap) -> str:
    nearest = source.nearest(line)
    if not nearest:
        return "the file has no lines that can take a probe"
    return "nearest lines with code: " + ", ".join(str(n) for n in nearest)


# --- source serving -------------------------------------------------------------------------


def get_source(path: str) -> Dict[str, object]:
    """The deployed text of a loaded file and the lines that can take a probe."""
    try:
        filename = resolve_file(path)
    except NotLoaded as exc:
        return {"path": path, "error": f"{path} is not loaded yet ({exc})"}
    except LocateError as exc:
        return {"path": path, "error": str(exc)}
    text = "".join(source_lines(filename))
    if not text:
        return {"path": filename, "error": f"the source of {filename} cannot be read"}
    source = source_map(filename)
    return {"path": filename, "text": text, "lines": source.probe_lines() if source else []}


# --- imports ------------------------------------------------------------------------------


class ImportWatcher:
    """Tells the agent when a module whose file a pending probe names is executed.

    It sits at the front of ``sys.meta_path`` only while probes are pending, asks the
    finders behind it for the spec, and, only for a matching file, wraps that one loader
    instance's ``exec_module`` so the callback runs right after the module body.
    """

    def __init__(self, wanted: Callable[[str], bool], loaded: Callable[[str], None]) -> None:
        self._wanted = wanted
        self._loaded = loaded
        self._busy: Set[int] = set()

    def install(self) -> None:
        meta_path: List[Any] = sys.meta_path
        if self not in meta_path:
            meta_path.insert(0, self)

    def uninstall(self) -> None:
        meta_path: List[Any] = sys.meta_path
        try:
            meta_path.remove(self)
        except ValueError:
            pass

    def find_spec(self, fullname: str, path: object = None, target: object = None) -> object:
        me = threading.get_ident()
        if me in self._busy:
            return None
        self._busy.add(me)
        try:
            return self._find(fullname, path, target)
        except Exception:
            return None
        finally:
            self._busy.discard(me)

    def invalidate_caches(self) -> None:
        return None

    def _find(self, fullname: str, path: object, target: object) -> object:
        spec = None
        for finder in list(sys.meta_path):
            if finder is self:
                continue
            find = getattr(finder, "find_spec", None)
            if find is None:  # a legacy finder: let the import system ask it as usual
                return None
            spec = find(fullname, path, target)
            if spec is not None:
                break
        if spec is None:
            return None
        origin = getattr(spec, "origin", None)
        loader = getattr(spec, "loader", None)
        if not isinstance(origin, str) or not self._wanted(origin):
            return spec
        exec_module = getattr(loader, "exec_module", None)
        if exec_module is None:
            return spec
        loaded = self._loaded

        def exec_and_tell(module: types.ModuleType) -> None:
            exec_module(module)
            try:
                loaded(origin)
            except Exception:
                pass

        try:
            loader.exec_module = exec_and_tell  # type: ignore[union-attr]
        except Exception:
            pass
        return spec
